//! Revision keys: `(main, sub)` pairs and their order-preserving byte encoding.
//!
//! The encoding is etcd's bucket-`key` layout (etcd-compat.md §8.5): 8 bytes big-endian `main`,
//! a `_` separator, 8 bytes big-endian `sub`, and a trailing `t` for a tombstone (a deletion).
//! Byte order equals (main, sub) order, so a scan of the `kv` keyspace walks history in
//! revision order (watch catch-up, compaction, hashing).

use crate::types::Revision;

/// Length in bytes of an encoded revision key without the tombstone mark.
pub const REVISION_KEY_BYTES: usize = 17;
/// Length in bytes of an encoded tombstone revision key.
pub const TOMBSTONE_KEY_BYTES: usize = 18;
const TOMBSTONE_MARK: u8 = b't';
const SEPARATOR: u8 = b'_';

/// One change inside a revision: `main` is the store revision, `sub` the position of the change
/// within that write transaction (0, 1, 2, … in execution order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RevisionKey {
    /// The store revision of the write transaction.
    pub main: i64,
    /// The change's index inside the transaction.
    pub sub: i64,
}

impl RevisionKey {
    /// The revision key `(main, sub)`.
    pub fn new(main: Revision, sub: i64) -> RevisionKey {
        RevisionKey { main: main.0, sub }
    }

    /// Encodes this key; `tombstone` appends etcd's `t` mark.
    pub fn encode(self, tombstone: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOMBSTONE_KEY_BYTES);
        out.extend_from_slice(&self.main.to_be_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            out.push(TOMBSTONE_MARK);
        }
        out
    }

    /// Decodes an encoded key into `(key, tombstone)`.
    ///
    /// # Errors
    /// `None` when the bytes are not a revision key (wrong length, separator or mark); the
    /// caller reports the data directory as corrupt.
    pub fn decode(bytes: &[u8]) -> Option<(RevisionKey, bool)> {
        let tombstone = match bytes.len() {
            REVISION_KEY_BYTES => false,
            TOMBSTONE_KEY_BYTES if bytes[REVISION_KEY_BYTES] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if bytes[8] != SEPARATOR {
            return None;
        }
        let main = i64::from_be_bytes(bytes[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
        Some((RevisionKey { main, sub }, tombstone))
    }

    /// The smallest encoded key of revision `main` (a scan bound).
    pub fn lower_bound(main: Revision) -> Vec<u8> {
        RevisionKey { main: main.0, sub: 0 }.encode(false)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn encoding_matches_etcd_bucket_key_layout() {
        // etcd: revToBytes writes main BE, '_', sub BE; tombstones get a trailing 't'.
        let k = RevisionKey { main: 2, sub: 1 }.encode(true);
        assert_eq!(k, [0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 1, b't']);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(RevisionKey::decode(b"short"), None);
        let mut k = RevisionKey { main: 5, sub: 0 }.encode(false);
        k[8] = b'x';
        assert_eq!(RevisionKey::decode(&k), None);
        let mut t = RevisionKey { main: 5, sub: 0 }.encode(true);
        t[17] = b'q';
        assert_eq!(RevisionKey::decode(&t), None);
    }

    proptest! {
        #[test]
        fn byte_order_equals_revision_order(a in 0i64..i64::MAX, b in 0i64..i64::MAX,
                                            sa in 0i64..1_000_000, sb in 0i64..1_000_000,
                                            ta: bool, tb: bool) {
            let ka = RevisionKey { main: a, sub: sa };
            let kb = RevisionKey { main: b, sub: sb };
            let ea = ka.encode(ta);
            let eb = kb.encode(tb);
            if ka != kb {
                prop_assert_eq!(ka.cmp(&kb), ea.cmp(&eb));
            }
            prop_assert_eq!(RevisionKey::decode(&ea), Some((ka, ta)));
        }
    }
}
