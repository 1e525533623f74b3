//! A validating reader of bbolt files: picks the valid meta page with the highest transaction
//! id, then walks B+trees page by page, checking every header, element bound and key order
//! instead of trusting the file (no panics on corrupt data; errors name the page).
//!
//! Page types must be exact (bbolt zeroes page buffers before writing a type flag), so a
//! damaged flags field is reported rather than guessed at.
//!
//! [`Reader::check`] is the equivalent of bbolt's `Tx.Check` (what `etcdctl snapshot status`
//! runs first): every page below the high-water mark is reachable exactly once or free.

use std::io;
use std::os::unix::fs::FileExt;

use super::page::{
    BRANCH_ELEMENT_BYTES, BUCKET_HEADER_BYTES, FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF,
    FREELIST_COUNT_OVERFLOW, LEAF_ELEMENT_BYTES, LEAF_FLAG_BUCKET, META_BYTES, Meta, PAGE_HEADER_BYTES,
    PGID_NO_FREELIST, PageHeader, u32_at, u64_at,
};
use super::{BboltError, PAGE_SIZE_DEFAULT};

/// Deepest B+tree the reader follows; deeper means a cycle in a corrupt file (a bbolt tree of
/// 4 KiB pages is a handful of levels deep even at terabytes).
const TREE_DEPTH_MAX: usize = 64;

/// Random-access bytes a bbolt file is read from.
pub trait PageSource {
    /// Length in bytes.
    ///
    /// # Errors
    /// I/O failures.
    fn byte_len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`.
    ///
    /// # Errors
    /// I/O failures, `UnexpectedEof` past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl PageSource for std::fs::File {
    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl PageSource for [u8] {
    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl PageSource for Vec<u8> {
    fn byte_len(&self) -> io::Result<u64> {
        self.as_slice().byte_len()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// Where a top-level bucket's tree starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRoot {
    /// The root page id.
    Page(u64),
    /// An inline bucket: the leaf page image stored in the bucket's header value, and the
    /// root-bucket page holding it (for error messages).
    Inline {
        /// The page image.
        image: Vec<u8>,
        /// The page that holds the bucket header.
        in_page: u64,
    },
}

/// Per-walk bookkeeping: the last key seen (keys must ascend) and, when checking, which
/// pages were reached.
struct Walk {
    last: Option<Vec<u8>>,
    marks: Option<Vec<bool>>,
}

/// A validated, opened bbolt file.
pub struct Reader<S: PageSource> {
    src: S,
    meta: Meta,
    page_size: usize,
    file_bytes: u64,
}

impl<S: PageSource> Reader<S> {
    /// Opens `src`: validates both meta pages (bbolt uses the valid one with the higher
    /// transaction id) and the file length.
    ///
    /// # Errors
    /// [`BboltError::InvalidMeta`] when no meta page is valid, [`BboltError::Truncated`] when
    /// the file is shorter than the meta says, I/O failures.
    pub fn open(src: S) -> Result<Reader<S>, BboltError> {
        let file_bytes = src.byte_len()?;
        let read_meta = |offset: u64| -> Result<Meta, BboltError> {
            let mut b = [0u8; PAGE_HEADER_BYTES + META_BYTES];
            src.read_exact_at(&mut b, offset).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => BboltError::InvalidMeta("file too short".into()),
                _ => BboltError::Io(e),
            })?;
            Meta::decode(&b[PAGE_HEADER_BYTES..])
        };
        let m0 = read_meta(0);
        let ps1 = m0.as_ref().map_or(PAGE_SIZE_DEFAULT, |m| m.page_size as usize);
        let m1 = read_meta(ps1 as u64);
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(e),
        };
        let page_size = meta.page_size as usize;
        let needed = meta
            .pgid
            .checked_mul(page_size as u64)
            .ok_or_else(|| BboltError::InvalidMeta("page count overflows".into()))?;
        if needed > file_bytes {
            return Err(BboltError::Truncated {
                needed,
                actual: file_bytes,
            });
        }
        Ok(Reader {
            src,
            meta,
            page_size,
            file_bytes,
        })
    }

    /// The meta page in use.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Bytes of the file in use (`pgid × page size`); the file may be longer (bbolt grows
    /// files ahead, and etcd snapshot files carry a 32-byte SHA-256 trailer).
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.page_size as u64
    }

    /// The length of the underlying file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// The top-level buckets in name order.
    ///
    /// # Errors
    /// [`BboltError::Corrupt`] for malformed pages or a non-bucket entry in the root bucket.
    pub fn buckets(&self) -> Result<Vec<(Vec<u8>, BucketRoot)>, BboltError> {
        self.root_buckets(&mut Walk {
            last: None,
            marks: None,
        })
    }

    /// The root of top-level bucket `name`.
    ///
    /// # Errors
    /// [`BboltError::NoSuchBucket`], or as [`Reader::buckets`].
    pub fn bucket(&self, name: &[u8]) -> Result<BucketRoot, BboltError> {
        self.buckets()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, root)| root)
            .ok_or_else(|| BboltError::NoSuchBucket(String::from_utf8_lossy(name).into_owned()))
    }

    /// Calls `f` with every key/value pair of the bucket at `root`, in key order.
    ///
    /// # Errors
    /// The first error of `f`; [`BboltError::Corrupt`] for malformed pages or keys out of
    /// order; [`BboltError::NestedBucket`] for a sub-bucket.
    pub fn for_each<E, F>(&self, root: &BucketRoot, mut f: F) -> Result<(), E>
    where
        E: From<BboltError>,
        F: FnMut(&[u8], &[u8]) -> Result<(), E>,
    {
        let mut walk = Walk {
            last: None,
            marks: None,
        };
        self.walk_bucket(root, &mut walk, &mut f)
    }

    /// bbolt's `Tx.Check`: validates every page of every bucket and the freelist, and that
    /// every page below the high-water mark is either reachable exactly once or free.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), BboltError> {
        let pages = usize::try_from(self.meta.pgid)
            .map_err(|_| BboltError::InvalidMeta("page count overflows".into()))?;
        let mut walk = Walk {
            last: None,
            marks: Some(vec![false; pages]),
        };
        let free = self.free_pages()?;
        for id in [0, 1] {
            mark(&mut walk, id, 0)?;
        }
        if self.meta.freelist != PGID_NO_FREELIST {
            let overflow = self.header(self.meta.freelist)?.overflow;
            mark(&mut walk, self.meta.freelist, overflow)?;
        }
        for (_, root) in self.root_buckets(&mut walk)? {
            walk.last = None;
            self.walk_bucket(&root, &mut walk, &mut |_: &[u8], _: &[u8]| {
                Ok::<(), BboltError>(())
            })?;
        }
        let marks = walk.marks.unwrap_or_default();
        for (id, reached) in marks.iter().enumerate() {
            let freed = free.get(id).copied().unwrap_or(false);
            if *reached && freed {
                return corrupt(id as u64, "reachable freed");
            }
            // Without a persisted freelist bbolt treats every unreachable page as free
            // (`DB.freepages`); etcd 3.4+ opens its backend with `NoFreelistSync`.
            if !*reached && !freed && self.meta.freelist != PGID_NO_FREELIST {
                return corrupt(id as u64, "unreachable unfreed");
            }
        }
        Ok(())
    }

    /// The freelist as one flag per page (empty when the freelist is not persisted).
    fn free_pages(&self) -> Result<Vec<bool>, BboltError> {
        let pages = usize::try_from(self.meta.pgid)
            .map_err(|_| BboltError::InvalidMeta("page count overflows".into()))?;
        let mut free = vec![false; pages];
        if self.meta.freelist == PGID_NO_FREELIST {
            return Ok(free);
        }
        let id = self.meta.freelist;
        let (hdr, buf) = self.page(id)?;
        if hdr.flags != FLAG_FREELIST {
            return corrupt(id, "freelist page has the wrong type");
        }
        let (first, count) = if hdr.count == FREELIST_COUNT_OVERFLOW {
            let n = u64_at(&buf, PAGE_HEADER_BYTES).ok_or_else(|| bad(id, "freelist count missing"))?;
            (PAGE_HEADER_BYTES + 8, n)
        } else {
            (PAGE_HEADER_BYTES, u64::from(hdr.count))
        };
        for i in 0..count {
            let at = usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(8))
                .and_then(|o| o.checked_add(first))
                .ok_or_else(|| bad(id, "freelist too long"))?;
            let free_id = u64_at(&buf, at).ok_or_else(|| bad(id, "freelist runs past its page"))?;
            let slot = usize::try_from(free_id)
                .ok()
                .filter(|_| free_id >= 2)
                .and_then(|i| free.get_mut(i))
                .ok_or_else(|| bad(id, &format!("free page {free_id} outside the file")))?;
            if *slot {
                return corrupt(id, &format!("page {free_id} freed twice"));
            }
            *slot = true;
        }
        Ok(free)
    }

    fn root_buckets(&self, walk: &mut Walk) -> Result<Vec<(Vec<u8>, BucketRoot)>, BboltError> {
        let mut out = Vec::new();
        let root = self.meta.root;
        self.walk_page(
            root,
            0,
            None,
            walk,
            &mut |page, flags, key: &[u8], value: &[u8]| {
                if flags & LEAF_FLAG_BUCKET == 0 {
                    return corrupt(page, "a plain key in the root bucket");
                }
                out.push((key.to_vec(), bucket_root(page, value)?));
                Ok::<(), BboltError>(())
            },
        )?;
        Ok(out)
    }

    fn walk_bucket<E, F>(&self, root: &BucketRoot, walk: &mut Walk, f: &mut F) -> Result<(), E>
    where
        E: From<BboltError>,
        F: FnMut(&[u8], &[u8]) -> Result<(), E>,
    {
        let mut leaf = |page: u64, flags: u32, key: &[u8], value: &[u8]| -> Result<(), E> {
            if flags & LEAF_FLAG_BUCKET != 0 {
                let _ = page;
                return Err(E::from(BboltError::NestedBucket(
                    String::from_utf8_lossy(key).into_owned(),
                )));
            }
            f(key, value)
        };
        match root {
            BucketRoot::Page(id) => self.walk_page(*id, 0, None, walk, &mut leaf),
            BucketRoot::Inline { image, in_page } => {
                let hdr =
                    PageHeader::decode(image).ok_or_else(|| bad(*in_page, "inline bucket too short"))?;
                if hdr.flags != FLAG_LEAF {
                    return Err(E::from(bad(*in_page, "inline bucket is not a leaf")));
                }
                walk_leaf(*in_page, &hdr, image, None, walk, &mut leaf)
            }
        }
    }

    /// Walks the subtree at page `id`; every key must be below `hi` (the next branch key).
    fn walk_page<E, F>(
        &self,
        id: u64,
        depth: usize,
        hi: Option<&[u8]>,
        walk: &mut Walk,
        f: &mut F,
    ) -> Result<(), E>
    where
        E: From<BboltError>,
        F: FnMut(u64, u32, &[u8], &[u8]) -> Result<(), E>,
    {
        if depth > TREE_DEPTH_MAX {
            return Err(E::from(bad(id, "tree too deep (a cycle?)")));
        }
        if id < 2 {
            return Err(E::from(bad(id, "a tree points at a meta page")));
        }
        let (hdr, buf) = self.page(id)?;
        mark(walk, id, hdr.overflow)?;
        if hdr.flags == FLAG_LEAF {
            return walk_leaf(id, &hdr, &buf, hi, walk, f);
        }
        if hdr.flags != FLAG_BRANCH {
            return Err(E::from(bad(id, &format!("invalid page type {:#04x}", hdr.flags))));
        }
        if hdr.count == 0 {
            return Err(E::from(bad(id, "empty branch page")));
        }
        let mut children = Vec::with_capacity(usize::from(hdr.count));
        for i in 0..usize::from(hdr.count) {
            let at = PAGE_HEADER_BYTES + i * BRANCH_ELEMENT_BYTES;
            let (pos, ksize, child) = match (u32_at(&buf, at), u32_at(&buf, at + 4), u64_at(&buf, at + 8)) {
                (Some(p), Some(k), Some(c)) => (p, k, c),
                _ => return Err(E::from(bad(id, "branch elements run past the page"))),
            };
            let key = slice(&buf, at, pos, ksize, 0).ok_or_else(|| bad(id, "branch key outside the page"))?;
            if let Some((prev, _)) = children.last()
                && prev >= &key
            {
                return Err(E::from(bad(id, "branch keys out of order")));
            }
            children.push((key, child));
        }
        for (i, (_, child)) in children.iter().enumerate() {
            let next = children.get(i + 1).map(|(k, _)| k.as_slice()).or(hi);
            self.walk_page(*child, depth + 1, next, walk, f)?;
        }
        Ok(())
    }

    fn header(&self, id: u64) -> Result<PageHeader, BboltError> {
        let mut b = [0u8; PAGE_HEADER_BYTES];
        self.src.read_exact_at(&mut b, id * self.page_size as u64)?;
        let hdr = PageHeader::decode(&b).ok_or_else(|| bad(id, "short header"))?;
        if hdr.id != id {
            return corrupt(id, &format!("header says page {}", hdr.id));
        }
        if id + u64::from(hdr.overflow) >= self.meta.pgid {
            return corrupt(id, "overflow runs past the high-water mark");
        }
        Ok(hdr)
    }

    /// Reads page `id` with its overflow pages.
    pub(crate) fn page(&self, id: u64) -> Result<(PageHeader, Vec<u8>), BboltError> {
        if id >= self.meta.pgid {
            return corrupt(id, "beyond the high-water mark");
        }
        let hdr = self.header(id)?;
        let len = (u64::from(hdr.overflow) + 1) * self.page_size as u64;
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| bad(id, "page too large"))?];
        self.src.read_exact_at(&mut buf, id * self.page_size as u64)?;
        Ok((hdr, buf))
    }
}

/// Walks the elements of a leaf page image.
fn walk_leaf<E, F>(
    id: u64,
    hdr: &PageHeader,
    buf: &[u8],
    hi: Option<&[u8]>,
    walk: &mut Walk,
    f: &mut F,
) -> Result<(), E>
where
    E: From<BboltError>,
    F: FnMut(u64, u32, &[u8], &[u8]) -> Result<(), E>,
{
    for i in 0..usize::from(hdr.count) {
        let at = PAGE_HEADER_BYTES + i * LEAF_ELEMENT_BYTES;
        let (flags, pos, ksize, vsize) = match (
            u32_at(buf, at),
            u32_at(buf, at + 4),
            u32_at(buf, at + 8),
            u32_at(buf, at + 12),
        ) {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err(E::from(bad(id, "leaf elements run past the page"))),
        };
        if flags & !LEAF_FLAG_BUCKET != 0 {
            return Err(E::from(bad(
                id,
                &format!("unknown leaf element flags {flags:#x}"),
            )));
        }
        let kv = slice(buf, at, pos, ksize, vsize).ok_or_else(|| bad(id, "leaf element outside the page"))?;
        let (key, value) = kv.split_at(ksize as usize);
        if key.is_empty() {
            return Err(E::from(bad(id, "empty key")));
        }
        if walk.last.as_deref().is_some_and(|last| last >= key) {
            return Err(E::from(bad(id, "keys out of order")));
        }
        if hi.is_some_and(|hi| key >= hi) {
            return Err(E::from(bad(id, "key above its branch bound")));
        }
        walk.last = Some(key.to_vec());
        f(id, flags, key, value)?;
    }
    Ok(())
}

/// Bytes `[at + pos, at + pos + ksize + vsize)` of `buf`, `None` when out of bounds.
fn slice(buf: &[u8], at: usize, pos: u32, ksize: u32, vsize: u32) -> Option<Vec<u8>> {
    let start = at.checked_add(usize::try_from(pos).ok()?)?;
    let len = usize::try_from(ksize)
        .ok()?
        .checked_add(usize::try_from(vsize).ok()?)?;
    Some(buf.get(start..start.checked_add(len)?)?.to_vec())
}

fn bucket_root(page: u64, value: &[u8]) -> Result<BucketRoot, BboltError> {
    let root = u64_at(value, 0).ok_or_else(|| bad(page, "bucket header too short"))?;
    if root != 0 {
        return Ok(BucketRoot::Page(root));
    }
    let image = value
        .get(BUCKET_HEADER_BYTES..)
        .filter(|i| i.len() >= PAGE_HEADER_BYTES)
        .ok_or_else(|| bad(page, "inline bucket too short"))?;
    Ok(BucketRoot::Inline {
        image: image.to_vec(),
        in_page: page,
    })
}

fn mark(walk: &mut Walk, id: u64, overflow: u32) -> Result<(), BboltError> {
    let Some(marks) = walk.marks.as_mut() else {
        return Ok(());
    };
    for p in id..=id + u64::from(overflow) {
        let slot = usize::try_from(p)
            .ok()
            .and_then(|i| marks.get_mut(i))
            .ok_or_else(|| bad(p, "beyond the high-water mark"))?;
        if *slot {
            return corrupt(p, "multiple references");
        }
        *slot = true;
    }
    Ok(())
}

fn bad(page: u64, what: &str) -> BboltError {
    BboltError::Corrupt {
        page,
        what: what.to_string(),
    }
}

fn corrupt<T>(page: u64, what: &str) -> Result<T, BboltError> {
    Err(bad(page, what))
}
