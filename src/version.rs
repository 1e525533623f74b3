//! The etcd version Mainstay reports: in Status (`version`), `/version` (`etcdserver`,
//! `etcdcluster`), the `etcd_server_version` / `etcd_cluster_version` metrics, the snapshot
//! image's cluster version and the start-up log line.
//!
//! kube-apiserver needs ≥ 3.5.13 to use watch progress requests (etcd-compat.md §6), so the
//! default is a 3.5 release. Tools pinned to another release (etcd 3.4.23's own e2e suite
//! compares the `etcd_server_version` metric with 3.4.23) set `--emulated-etcd-version`, like
//! kine's emulated version. Set once at start-up; process-wide like the metrics registry.

use std::sync::OnceLock;

/// The default reported etcd version.
pub const DEFAULT_ETCD_VERSION: &str = "3.5.21";

/// The lowest release `--emulated-etcd-version` accepts (the oldest API Mainstay speaks).
const MIN_EMULATED: (u64, u64, u64) = (3, 4, 0);

static EMULATED: OnceLock<Version> = OnceLock::new();

/// A reported etcd release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    text: String,
    major: u64,
    minor: u64,
}

impl Version {
    /// Parses `major.minor.patch` (a `-pre` suffix is kept in the text).
    ///
    /// # Errors
    /// Not a 3.x.y release at or above 3.4.0.
    pub fn parse(text: &str) -> Result<Version, String> {
        let core = text.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<Option<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [Some(major), Some(minor), Some(patch)]
                if *major == 3 && (*major, *minor, *patch) >= MIN_EMULATED =>
            {
                Ok(Version {
                    text: text.to_owned(),
                    major: *major,
                    minor: *minor,
                })
            }
            _ => Err(format!(
                "--emulated-etcd-version={text:?}: must be an etcd 3.x.y release, at least {}.{}.{}",
                MIN_EMULATED.0, MIN_EMULATED.1, MIN_EMULATED.2
            )),
        }
    }

    /// The server version, e.g. `3.5.21`.
    pub fn server(&self) -> &str {
        &self.text
    }

    /// The cluster version as etcd stores and serves it, `major.minor.0` (e.g. `3.5.0`).
    pub fn cluster(&self) -> String {
        format!("{}.{}.0", self.major, self.minor)
    }

    /// The cluster version as the metrics label and capability log carry it, `major.minor`.
    pub fn cluster_minor(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// (major, minor) of the cluster version, for Downgrade's target check.
    pub fn cluster_pair(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

/// Sets the reported version; the first call wins (the server calls it once at start-up).
pub fn set(version: Version) {
    let _ = EMULATED.set(version);
}

/// The reported version: the one set at start-up, else [`DEFAULT_ETCD_VERSION`].
pub fn current() -> &'static Version {
    EMULATED.get_or_init(|| Version {
        text: DEFAULT_ETCD_VERSION.to_owned(),
        major: 3,
        minor: 5,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_into_server_and_cluster_forms() {
        let v = Version::parse("3.4.23").unwrap();
        assert_eq!(
            (v.server(), v.cluster(), v.cluster_minor()),
            ("3.4.23", "3.4.0".into(), "3.4".into())
        );
        assert_eq!(Version::parse("3.6.0-rc.1").unwrap().cluster(), "3.6.0");
        assert_eq!(
            Version::parse(DEFAULT_ETCD_VERSION).unwrap().cluster_pair(),
            (3, 5)
        );
        for bad in ["3.3.9", "2.3.8", "4.0.0", "3.5", "v3.5.0", "latest"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
