//! Key-range permission checks (etcd `server/auth/range_perm_cache.go` and
//! `pkg/adt/interval_tree.go`).
//!
//! etcd compares interval bounds "affinely": an empty byte string is greater than every other
//! (it stands for +infinity), and a permission or request `range_end` of `"\0"` means "to the
//! end of the keyspace". A single key `k` is the interval `[k, k+"\0")`. A single-key request
//! needs one permitted interval that *intersects* the key; a range request needs the union of
//! the permitted intervals to *contain* the whole `[key, range_end)`.

use std::cmp::Ordering;

use crate::proto::authpb::Permission;
use crate::proto::authpb::permission::Type as PermType;

/// What a request needs on a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// READ or READWRITE permission.
    Read,
    /// WRITE or READWRITE permission.
    Write,
}

/// One interval bound; `Inf` is etcd's empty `BytesAffineComparable`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bound<'a> {
    Key(&'a [u8]),
    Inf,
}

impl<'a> Bound<'a> {
    fn of(b: &'a [u8]) -> Bound<'a> {
        if b.is_empty() { Bound::Inf } else { Bound::Key(b) }
    }
}

impl Ord for Bound<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Bound::Inf, Bound::Inf) => Ordering::Equal,
            (Bound::Inf, _) => Ordering::Greater,
            (_, Bound::Inf) => Ordering::Less,
            (Bound::Key(a), Bound::Key(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Bound<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `range_end` `"\0"` (from key to the end) as etcd normalises it: no end, i.e. +infinity.
fn open_end(range_end: &[u8]) -> &[u8] {
    if range_end == [0] { &[] } else { range_end }
}

/// Whether a permission of type `t` grants `access`.
fn grants(t: i32, access: Access) -> bool {
    match PermType::try_from(t) {
        Ok(PermType::Readwrite) => true,
        Ok(PermType::Read) => access == Access::Read,
        Ok(PermType::Write) => access == Access::Write,
        Err(_) => false,
    }
}

/// A permission's interval as etcd's `getMergedPerms` builds it: a point for an empty
/// `range_end`, else `[key, range_end)` with `"\0"` meaning +infinity. Returns (begin, end)
/// with `end` as an owned key for the point case.
fn perm_interval(p: &Permission) -> (Bound<'_>, Option<Vec<u8>>, Bound<'_>) {
    if p.range_end.is_empty() {
        let mut end = p.key.to_vec();
        end.push(0);
        (Bound::of(&p.key), Some(end), Bound::Inf)
    } else {
        (Bound::of(&p.key), None, Bound::of(open_end(&p.range_end)))
    }
}

/// Whether `perms` (the union of a user's roles) allow `access` on `key` (when `range_end` is
/// empty) or on all of `[key, range_end)` (etcd `isRangeOpPermitted`).
pub fn permitted(perms: &[&Permission], key: &[u8], range_end: &[u8], access: Access) -> bool {
    let relevant = perms.iter().filter(|p| grants(p.perm_type, access));
    if range_end.is_empty() {
        // Point query: some interval intersects [key, key+"\0"), i.e. begin <= key < end.
        let k = Bound::of(key);
        return relevant.into_iter().any(|p| {
            let (begin, owned, end) = perm_interval(p);
            let end = owned.as_deref().map_or(end, Bound::of);
            begin <= k && k < end
        });
    }
    let (want_begin, want_end) = (Bound::of(key), Bound::of(open_end(range_end)));
    let mut intervals: Vec<(Bound<'_>, Bound<'_>)> = Vec::new();
    let owned: Vec<(Bound<'_>, Option<Vec<u8>>, Bound<'_>)> = relevant.map(|p| perm_interval(p)).collect();
    for (begin, point_end, end) in &owned {
        let end = point_end.as_deref().map_or_else(|| end.clone(), Bound::of);
        // Only intervals overlapping the request take part (etcd visits those).
        if *begin < want_end && want_begin < end {
            intervals.push((begin.clone(), end));
        }
    }
    intervals.sort();
    let mut iter = intervals.into_iter();
    let Some((min_begin, mut max_end)) = iter.next() else {
        return false;
    };
    for (begin, end) in iter {
        if max_end < begin {
            return false;
        }
        if end > max_end {
            max_end = end;
        }
    }
    min_begin <= want_begin && max_end >= want_end
}

/// etcd 3.5 `isValidPermissionRange`: a non-empty key, and an empty `range_end`, `"\0"`, or a
/// `range_end` after the key.
pub fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec().into(),
            range_end: end.to_vec().into(),
        }
    }

    fn check(perms: &[Permission], key: &str, end: &[u8], access: Access) -> bool {
        let refs: Vec<&Permission> = perms.iter().collect();
        permitted(&refs, key.as_bytes(), end, access)
    }

    #[test]
    fn a_single_key_permission_covers_only_that_key() {
        let p = [perm(PermType::Read, "foo", b"")];
        assert!(check(&p, "foo", b"", Access::Read));
        assert!(!check(&p, "foo0", b"", Access::Read));
        assert!(!check(&p, "fo", b"", Access::Read));
        assert!(!check(&p, "foo", b"", Access::Write));
        // A range of exactly that key ([foo, foo\0)) is covered too.
        assert!(check(&p, "foo", b"foo\0", Access::Read));
        assert!(!check(&p, "foo", b"fop", Access::Read));
    }

    #[test]
    fn a_prefix_permission_covers_keys_and_sub_ranges_but_not_wider_ranges() {
        // etcdctl role grant-permission r readwrite /a/ --prefix → [/a/, /a0)
        let p = [perm(PermType::Readwrite, "/a/", b"/a0")];
        assert!(check(&p, "/a/x", b"", Access::Write));
        assert!(check(&p, "/a/", b"/a0", Access::Read));
        assert!(check(&p, "/a/b", b"/a/c", Access::Read));
        assert!(!check(&p, "/a/", b"/b", Access::Read));
        assert!(!check(&p, "/a", b"/a0", Access::Read));
        assert!(!check(&p, "/b", b"", Access::Read));
        // A from-key request is unbounded; the prefix does not cover it.
        assert!(!check(&p, "/a/", b"\0", Access::Read));
    }

    #[test]
    fn adjacent_permissions_union_into_one_range() {
        let p = [
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Readwrite, "c", b"e"),
        ];
        assert!(check(&p, "a", b"e", Access::Read));
        assert!(!check(&p, "a", b"e", Access::Write));
        assert!(check(&p, "c", b"e", Access::Write));
        // A gap breaks the union.
        let gap = [perm(PermType::Read, "a", b"c"), perm(PermType::Read, "d", b"e")];
        assert!(!check(&gap, "a", b"e", Access::Read));
        assert!(check(&gap, "d", b"", Access::Read));
        assert!(!check(&gap, "c", b"", Access::Read));
    }

    #[test]
    fn a_from_key_permission_covers_everything_after_its_key() {
        let p = [perm(PermType::Write, "m", b"\0")];
        assert!(check(&p, "z", b"", Access::Write));
        assert!(check(&p, "m", b"\0", Access::Write));
        assert!(check(&p, "n", b"zz", Access::Write));
        assert!(!check(&p, "a", b"\0", Access::Write));
        assert!(!check(&p, "z", b"", Access::Read));
    }

    #[test]
    fn no_permissions_deny_everything() {
        assert!(!check(&[], "a", b"", Access::Read));
        assert!(!check(&[], "a", b"b", Access::Write));
    }

    #[test]
    fn permission_ranges_are_validated_like_etcd() {
        assert!(valid_permission_range(b"a", b""));
        assert!(valid_permission_range(b"a", b"\0"));
        assert!(valid_permission_range(b"a", b"b"));
        assert!(!valid_permission_range(b"b", b"a"));
        assert!(!valid_permission_range(b"", b"a"));
    }
}
