//! Newtypes for the identities and counters that cross module boundaries (etcd's terms).
//!
//! Raw integers appear only at the protobuf boundary (`api/`) and in storage encodings.

use std::fmt;

/// A store revision: etcd's global, monotonically increasing `main` revision.
///
/// A fresh store is at revision 1; every write transaction that changes something adds
/// exactly 1 (etcd-compat.md §2.1). Values ≤ 0 in requests mean "latest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub i64);

impl Revision {
    /// The revision of an empty store (etcd starts at 1, the first write makes 2).
    pub const INITIAL: Revision = Revision(1);

    /// The next revision.
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A lease identifier (etcd `LeaseID`, int64). `LeaseId::NONE` (0) means "no lease".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaseId(pub i64);

impl LeaseId {
    /// No lease attached.
    pub const NONE: LeaseId = LeaseId(0);
}

/// A member identifier (etcd `types.ID`, uint64), shown as lowercase hex without padding.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A cluster identifier (etcd `types.ID`, uint64), derived from the member IDs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct ClusterId(pub u64);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_displays_as_unpadded_lowercase_hex() {
        // etcd prints types.ID with strconv.FormatUint(id, 16).
        assert_eq!(MemberId(0x8e9e05c52164694d).to_string(), "8e9e05c52164694d");
        assert_eq!(MemberId(0xabc).to_string(), "abc");
    }

    #[test]
    fn revision_next_adds_one() {
        assert_eq!(Revision::INITIAL.next(), Revision(2));
    }
}
