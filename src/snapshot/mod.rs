//! Backups in etcd's format: the image `Maintenance.Snapshot` streams and `etcdctl snapshot
//! save` stores, i.e. a bbolt file with etcd's buckets (etcd-compat.md §8.1, §8.5), built from a
//! fjall read view of the store so writes never wait for it.
//!
//! [`etcd_image`] lays out the buckets; [`spool`] writes one image into an unnamed temporary
//! file next to the database (memory stays bounded by a few pages whatever the store's size)
//! for the gRPC handler to stream; [`status`] reports on a snapshot file as `etcdctl snapshot
//! status` does; [`restore`] builds a data directory from one (`mainstayctl snapshot restore`);
//! [`save`] stores the stream as `etcdctl snapshot save` does.

pub mod etcd_image;
pub mod restore;
pub mod save;
pub mod status;

use std::fs::File;
use std::path::Path;

pub use etcd_image::{ImageInfo, ImageSettings, write_image};

use crate::bbolt::BboltError;

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Writing the bbolt file failed (I/O, or the writer refused its input).
    #[error(transparent)]
    Bbolt(#[from] BboltError),
    /// Reading the store's read view failed.
    #[error("reading the store: {0}")]
    Storage(#[from] fjall::Error),
    /// A stored record does not decode.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// Creating or reading the temporary file failed.
    #[error("snapshot temporary file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the image of `view` into an unnamed temporary file in `dir` (removed by the OS when
/// the handle is dropped, even after a crash) and returns it positioned at its start, with
/// what it holds.
///
/// Blocking: call it from `spawn_blocking`.
///
/// # Errors
/// As [`write_image`], plus failures creating the file.
pub fn spool(
    dir: &Path,
    storage: &crate::storage::Storage,
    view: &fjall::Snapshot,
    settings: &ImageSettings,
) -> Result<(File, ImageInfo), SnapshotError> {
    use std::io::{Seek, SeekFrom};
    let file = tempfile::tempfile_in(dir)?;
    // No fsync: the file has no name and dies with its handle; only its bytes matter.
    let (mut file, info) = write_image(file, storage, view, settings)?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, info))
}
