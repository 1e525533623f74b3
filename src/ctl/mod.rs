//! `mainstayctl`'s node tooling for Kubernetes control planes, as kubeadm does it for etcd
//! (etcd-compat.md §5):
//!
//! * [`certs`]: the kubeadm PKI layout under `/etc/kubernetes/pki` (etcd CA, server, peer,
//!   healthcheck-client and apiserver-etcd-client certificates), reusing an existing CA and
//!   never replacing a valid certificate unless asked; [`expiration`] reports expiry dates the
//!   way `kubeadm certs check-expiration` does.
//! * [`manifest`]: the static Pod `/etc/kubernetes/manifests/etcd.yaml` kubelet runs, built from
//!   the typed Pod subset in [`pod`] with the image and binary set to Mainstay.
//!
//! These modules are clients of files and of the public flag table only; they never reach
//! into the server.

pub mod certs;
pub mod expiration;
pub mod keys;
pub mod manifest;
pub mod pod;
mod tabwriter;

use std::path::PathBuf;

/// Why a `mainstayctl` node-tooling command failed. Messages name the file involved.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not hold what it should (PEM, certificate, key, YAML).
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An existing certificate cannot be reused and `--renew` was not given (kubeadm refuses
    /// in the same situation rather than replace a file silently).
    #[error(
        "certificate {name} ({path}) exists but cannot be used: {reason}; rerun with --renew to replace it"
    )]
    Invalid {
        /// kubeadm's name of the certificate, e.g. `etcd-server`.
        name: &'static str,
        /// Its `.crt` file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Key or certificate generation failed.
    #[error("generating {name}: {reason}")]
    Generate {
        /// kubeadm's name of the certificate.
        name: &'static str,
        /// The generator's error.
        reason: String,
    },
    /// The options are incomplete or contradictory.
    #[error("{0}")]
    Config(String),
}

impl CtlError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CtlError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &std::path::Path, reason: impl ToString) -> Self {
        CtlError::Parse {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same directory, then a rename)
/// with the given Unix permission bits, so a crash never leaves a half-written certificate,
/// key or manifest behind.
///
/// # Errors
/// [`CtlError::Io`] when the directory is not writable.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<(), CtlError> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| CtlError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| CtlError::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| CtlError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.as_file().sync_all().map_err(|e| CtlError::io(path, e))?;
    tmp.persist(path).map_err(|e| CtlError::io(path, e.error))?;
    Ok(())
}

/// Creates `dir` and its parents with permission bits `mode` where they are missing
/// (client-go's `certutil.WriteCert` creates PKI directories 0755; kubeadm's
/// `WriteStaticPodToDisk` the manifest directory 0700).
///
/// # Errors
/// [`CtlError::Io`].
pub fn create_dir(dir: &std::path::Path, mode: u32) -> Result<(), CtlError> {
    #[cfg(not(unix))]
    let _ = mode;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    builder.create(dir).map_err(|e| CtlError::io(dir, e))
}
