//! `mainstayctl snapshot save`: the client side of `Maintenance.Snapshot`, as etcdctl's
//! (etcd 3.5 `client/v3/snapshot/v3_snapshot.go` `SaveWithVersion`): the stream is written to
//! `<file>.part` (mode 0600), checked to end in a SHA-256 trailer (`size % 512 == 32`, else
//! etcd's `sha256 checksum not found [bytes: N]`), fsynced and renamed to `<file>`. Unlike
//! etcdctl, the trailer is also verified against the received bytes, so a backup that would
//! fail `snapshot restore` is refused when it is taken.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::restore::TRAILER_BYTES;
use crate::proto::etcdserverpb::SnapshotResponse;

/// Permissions of the saved file (etcd `fileutil.PrivateFileMode`).
const FILE_MODE: u32 = 0o600;
/// Sector size the trailer rule is stated in (etcd `hasChecksum`).
const SECTOR_BYTES: u64 = 512;

/// Why a snapshot could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// More than one endpoint was given (etcd's text; Go's `%v` of the list).
    #[error("snapshot must be requested to one selected node, not multiple [{}]", .0.join(" "))]
    MultipleEndpoints(Vec<String>),
    /// The stream did not end in a SHA-256 trailer.
    #[error("sha256 checksum not found [bytes: {0}]")]
    NoChecksum(u64),
    /// The trailer does not match the received bytes (etcdutl's restore text).
    #[error("expected sha256 {expected}, got {actual}")]
    HashMismatch {
        /// The trailer, as Go prints a byte slice.
        expected: String,
        /// The SHA-256 of the received database bytes.
        actual: String,
    },
    /// The server failed the stream.
    #[error("{0}")]
    Rpc(String),
    /// Writing the file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Writes the snapshot `stream` to `path` through `<path>.part`; returns the bytes saved
/// (database plus trailer). The partial file is removed on failure.
///
/// # Errors
/// [`SaveError::NoChecksum`], [`SaveError::HashMismatch`], [`SaveError::Rpc`] for a stream
/// error, [`SaveError::Io`].
pub async fn save_stream<S>(stream: S, path: &Path) -> Result<u64, SaveError>
where
    S: Stream<Item = Result<SnapshotResponse, tonic::Status>> + Unpin,
{
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = write_part(stream, &part).await;
    let result = match result {
        Ok(n) => tokio::fs::rename(&part, path)
            .await
            .map(|()| n)
            .map_err(|e| SaveError::Io(path.to_path_buf(), e)),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

async fn write_part<S>(mut stream: S, part: &Path) -> Result<u64, SaveError>
where
    S: Stream<Item = Result<SnapshotResponse, tonic::Status>> + Unpin,
{
    let io = |e| SaveError::Io(part.to_path_buf(), e);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(part)
        .await
        .map_err(io)?;
    let mut hasher = Sha256::new();
    // The last TRAILER_BYTES seen so far are held back from the hash: they may be the trailer.
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TRAILER_BYTES as usize);
    let mut total = 0u64;
    while let Some(message) = stream.next().await {
        let blob = message.map_err(|s| SaveError::Rpc(s.message().to_owned()))?.blob;
        file.write_all(&blob).await.map_err(io)?;
        total += blob.len() as u64;
        tail.extend_from_slice(&blob);
        let keep = TRAILER_BYTES as usize;
        if tail.len() > keep {
            let cut = tail.len() - keep;
            hasher.update(&tail[..cut]);
            tail.drain(..cut);
        }
    }
    if total % SECTOR_BYTES != TRAILER_BYTES {
        return Err(SaveError::NoChecksum(total));
    }
    let actual = hasher.finalize();
    if actual.as_slice() != tail.as_slice() {
        return Err(SaveError::HashMismatch {
            expected: go_bytes(&tail),
            actual: go_bytes(&actual),
        });
    }
    file.sync_all().await.map_err(io)?;
    Ok(total)
}

/// Go's `%v` of a byte slice.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn messages(data: &[u8], chunk: usize) -> Vec<Result<SnapshotResponse, tonic::Status>> {
        data.chunks(chunk)
            .map(|c| {
                Ok(SnapshotResponse {
                    blob: Bytes::copy_from_slice(c),
                    ..SnapshotResponse::default()
                })
            })
            .collect()
    }

    fn with_trailer(db: &[u8]) -> Vec<u8> {
        let mut out = db.to_vec();
        out.extend_from_slice(&Sha256::digest(db));
        out
    }

    #[tokio::test]
    async fn a_stream_with_a_good_trailer_is_saved_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let db: Vec<u8> = (0..4096u32 * 3).map(|i| (i % 251) as u8).collect();
        let data = with_trailer(&db);
        for chunk in [7, 32, 1000, 4096, data.len()] {
            let path = dir.path().join(format!("s{chunk}.db"));
            let n = save_stream(futures::stream::iter(messages(&data, chunk)), &path)
                .await
                .unwrap();
            assert_eq!(n, data.len() as u64);
            assert_eq!(std::fs::read(&path).unwrap(), data);
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert!(!dir.path().join(format!("s{chunk}.db.part")).exists());
        }
    }

    #[tokio::test]
    async fn a_missing_or_wrong_trailer_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = vec![1u8; 4096];
        let e = save_stream(futures::stream::iter(messages(&db, 1000)), &path)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "sha256 checksum not found [bytes: 4096]");
        let mut bad = with_trailer(&db);
        bad[10] ^= 1;
        let e = save_stream(futures::stream::iter(messages(&bad, 1000)), &path)
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("expected sha256 ["), "{e}");
        let mut failing = messages(&with_trailer(&db), 1000);
        failing.insert(2, Err(tonic::Status::unavailable("gone")));
        let e = save_stream(futures::stream::iter(failing), &path)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "gone");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
