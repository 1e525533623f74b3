//! Key ranges as etcd requests express them: `key` plus `range_end`.

use std::ops::Bound;

/// Borrowed `BTreeMap` range bounds over byte keys.
pub type ByteBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The set of keys one request covers (etcd-compat.md §2.2):
/// empty `range_end` → the single `key`; `range_end == "\0"` → every key ≥ `key`;
/// otherwise the half-open interval `[key, range_end)` in bytewise order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key.
    Single(Vec<u8>),
    /// Every key ≥ the given one.
    From(Vec<u8>),
    /// `[start, end)`; empty when `end <= start`.
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    /// Builds the range of a Range/DeleteRange/Watch request or a Txn compare.
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Between(key.to_vec(), end.to_vec()),
        }
    }

    /// Whether `key` lies in this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::From(start) => key >= start.as_slice(),
            KeyRange::Between(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }

    /// The range as `BTreeMap` bounds, `None` when it is empty.
    pub fn bounds(&self) -> Option<ByteBounds<'_>> {
        match self {
            KeyRange::Single(k) => Some((Bound::Included(k), Bound::Included(k))),
            KeyRange::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            KeyRange::Between(start, end) if end > start => {
                Some((Bound::Included(start), Bound::Excluded(end)))
            }
            KeyRange::Between(..) => None,
        }
    }
}

/// etcd's client-side prefix end (`clientv3.GetPrefixRangeEnd`): drop trailing 0xff bytes and
/// increment the last remaining byte; a key of only 0xff bytes (or empty) gives `"\0"` (all keys).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            if let Some(b) = end.last_mut() {
                *b = last + 1;
            }
            return end;
        }
        end.pop();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_range_end_is_a_single_key() {
        let r = KeyRange::new(b"a", b"");
        assert!(r.contains(b"a"));
        assert!(!r.contains(b"ab"));
    }

    #[test]
    fn nul_range_end_means_every_key_at_or_after_key() {
        let r = KeyRange::new(b"b", b"\0");
        assert!(r.contains(b"b") && r.contains(b"zzz") && !r.contains(b"a"));
        let all = KeyRange::new(b"\0", b"\0");
        assert!(all.contains(b"\0") && all.contains(b"\xff\xff"));
    }

    #[test]
    fn range_end_at_or_before_key_is_empty() {
        assert_eq!(KeyRange::new(b"b", b"a").bounds(), None);
        assert_eq!(KeyRange::new(b"b", b"b").bounds(), None);
    }

    #[test]
    fn prefix_end_follows_clientv3() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
