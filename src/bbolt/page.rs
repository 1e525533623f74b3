//! Page headers, elements and meta pages: bbolt's fixed-size records, encoded little-endian
//! (bbolt `page.go`, `db.go` `meta`).

use super::{BboltError, MAGIC, PAGE_SIZE_MAX, PAGE_SIZE_MIN, VERSION};

/// Page header size in bytes: `id u64, flags u16, count u16, overflow u32`.
pub(crate) const PAGE_HEADER_BYTES: usize = 16;
/// Branch element size in bytes: `pos u32, ksize u32, pgid u64`.
pub(crate) const BRANCH_ELEMENT_BYTES: usize = 16;
/// Leaf element size in bytes: `flags u32, pos u32, ksize u32, vsize u32`.
pub(crate) const LEAF_ELEMENT_BYTES: usize = 16;
/// Bucket header size in bytes (a bucket's value in its parent): `root u64, sequence u64`.
pub(crate) const BUCKET_HEADER_BYTES: usize = 16;
/// Meta body size in bytes; the checksum covers the first 56.
pub(crate) const META_BYTES: usize = 64;
const META_CHECKSUMMED_BYTES: usize = 56;

pub(crate) const FLAG_BRANCH: u16 = 0x01;
pub(crate) const FLAG_LEAF: u16 = 0x02;
pub(crate) const FLAG_META: u16 = 0x04;
pub(crate) const FLAG_FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a bucket.
pub(crate) const LEAF_FLAG_BUCKET: u32 = 0x01;
/// `meta.freelist` when the freelist is not persisted.
pub(crate) const PGID_NO_FREELIST: u64 = u64::MAX;
/// `count` value meaning "the real count is the first u64 of the freelist page".
pub(crate) const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;
/// A node cannot be split below this many keys per page (bbolt `minKeysPerPage`).
pub(crate) const MIN_KEYS_PER_PAGE: usize = 2;

/// FNV-1a 64-bit hash (Go `hash/fnv.New64a`), bbolt's meta checksum.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.flags.to_le_bytes());
        out[10..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }

    /// Decodes the header at the start of `b` (`None` when `b` is shorter than a header).
    pub fn decode(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: u64_at(b, 0)?,
            flags: u16::from_le_bytes(b.get(8..10)?.try_into().ok()?),
            count: u16::from_le_bytes(b.get(10..12)?.try_into().ok()?),
            overflow: u32_at(b, 12)?,
        })
    }
}

/// Reads a little-endian u32 at `at`, `None` when out of bounds.
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian u64 at `at`, `None` when out of bounds.
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A meta page body (bbolt `meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Page size in bytes.
    pub page_size: u32,
    /// bbolt's meta flags (always 0).
    pub flags: u32,
    /// Page id of the root bucket's root page.
    pub root: u64,
    /// The root bucket's sequence.
    pub sequence: u64,
    /// Page id of the freelist ([`u64::MAX`] = not persisted).
    pub freelist: u64,
    /// High-water mark: number of pages the file uses.
    pub pgid: u64,
    /// Transaction id of the commit this meta describes.
    pub txid: u64,
}

impl Meta {
    /// Encodes the meta body with its checksum into `out` (≥ 64 bytes).
    pub(crate) fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.root.to_le_bytes());
        out[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        out[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        out[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        out[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a64(&out[..META_CHECKSUMMED_BYTES]);
        out[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    /// Decodes and validates a meta body (bbolt `meta.validate`, plus sanity checks bbolt
    /// leaves to later panics): magic, version, checksum, page size, and root/freelist below
    /// the high-water mark.
    ///
    /// # Errors
    /// [`BboltError::InvalidMeta`] naming the first problem.
    pub(crate) fn decode(b: &[u8]) -> Result<Meta, BboltError> {
        let bad = |what: &str| BboltError::InvalidMeta(what.to_string());
        let body = b.get(..META_BYTES).ok_or_else(|| bad("short meta page"))?;
        let word = |at| u32_at(body, at).ok_or_else(|| bad("short meta page"));
        let long = |at| u64_at(body, at).ok_or_else(|| bad("short meta page"));
        if word(0)? != MAGIC {
            return Err(bad("wrong magic"));
        }
        if word(4)? != VERSION {
            return Err(bad("unsupported version"));
        }
        let checksum = long(56)?;
        // bbolt accepts a zero checksum (files from before checksums existed).
        if checksum != 0 && checksum != fnv1a64(&body[..META_CHECKSUMMED_BYTES]) {
            return Err(bad("checksum mismatch"));
        }
        let meta = Meta {
            page_size: word(8)?,
            flags: word(12)?,
            root: long(16)?,
            sequence: long(24)?,
            freelist: long(32)?,
            pgid: long(40)?,
            txid: long(48)?,
        };
        let ps = meta.page_size as usize;
        if !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&ps) || !ps.is_power_of_two() {
            return Err(bad("unsupported page size"));
        }
        if meta.root < 2 || meta.root >= meta.pgid {
            return Err(bad("root page outside the file"));
        }
        if meta.freelist != PGID_NO_FREELIST && (meta.freelist < 2 || meta.freelist >= meta.pgid) {
            return Err(bad("freelist page outside the file"));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_go_hash_fnv() {
        // Go: fnv.New64a() over "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_meta_round_trips_and_a_flipped_byte_fails_the_checksum() {
        let m = Meta {
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 7,
        };
        let mut b = [0u8; META_BYTES];
        m.encode(&mut b);
        assert_eq!(Meta::decode(&b).unwrap(), m);
        b[20] ^= 1;
        assert!(matches!(Meta::decode(&b), Err(BboltError::InvalidMeta(_))));
    }
}
