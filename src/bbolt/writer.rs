//! A streaming bulk writer of new bbolt files: top-level buckets in ascending name order, each
//! holding keys in ascending order — what a snapshot of an etcd backend needs.
//!
//! Pages are built bottom-up while pairs arrive: a leaf page is written as soon as the next
//! pair would not fit (bbolt's split rule `node.splitIndex` with fill percent 1.0: at least two
//! keys per page, otherwise at most one page of bytes), its first key and page id go to the
//! parent branch level, and so on up; memory holds one page per tree level. A bucket that ends
//! as one leaf of at most a quarter page is stored inline in the root bucket, as bbolt's
//! `Bucket.inlineable` does. The file ends with the root bucket's pages and an empty freelist
//! page; the two meta pages at the front are written last (the layout of bbolt `Tx.WriteTo`:
//! meta 0 carries the transaction id, meta 1 the one before). Every page below the high-water
//! mark is reachable exactly once, so bbolt's `Tx.Check` has nothing to report.

use std::io::{Seek, SeekFrom, Write};

use super::page::{
    BRANCH_ELEMENT_BYTES, BUCKET_HEADER_BYTES, FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF, FLAG_META,
    LEAF_ELEMENT_BYTES, LEAF_FLAG_BUCKET, MIN_KEYS_PER_PAGE, Meta, PAGE_HEADER_BYTES, PageHeader,
};
use super::{BboltError, KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// Transaction id written to meta page 0 (meta page 1 gets one less, as bbolt's `WriteTo`
/// does). Even, so bbolt's next commit (meta page `txid % 2` = 1) overwrites the older meta.
const SNAPSHOT_TXID: u64 = 2;

/// What a finished file looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// File length in bytes (`pages × page size`).
    pub bytes: u64,
    /// Pages in the file (bbolt's high-water mark `pgid`).
    pub pages: u64,
}

/// One element of a node being built: a leaf pair, or a branch key with its child page.
struct Inode {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    child: u64,
}

/// A node under construction at one level of a tree.
struct Node {
    inodes: Vec<Inode>,
    /// Page bytes the node occupies so far (header + elements + keys + values).
    bytes: usize,
}

impl Node {
    fn new() -> Node {
        Node {
            inodes: Vec::new(),
            bytes: PAGE_HEADER_BYTES,
        }
    }
}

/// A B+tree being built bottom-up; level 0 holds the leaves.
struct Tree {
    levels: Vec<Node>,
    /// Pages written for each level so far.
    written: Vec<u64>,
    last_key: Option<Vec<u8>>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            levels: vec![Node::new()],
            written: vec![0],
            last_key: None,
        }
    }
}

/// Where a finished tree's root is.
enum Root {
    /// A page id.
    Page(u64),
    /// A leaf small enough to live inside its bucket's header value: the page image.
    Inline(Vec<u8>),
}

/// The output file and page allocation.
struct Pages<W> {
    out: W,
    page_size: usize,
    next_pgid: u64,
}

impl<W: Write> Pages<W> {
    /// Adds `inode` to `level` of `tree`, first writing out the level's node when the new
    /// element would not fit on its page.
    fn add(&mut self, tree: &mut Tree, level: usize, inode: Inode) -> Result<(), BboltError> {
        let leaf = level == 0;
        let elsize = element_bytes(leaf) + inode.key.len() + inode.value.len();
        if tree.levels.len() <= level {
            tree.levels.push(Node::new());
            tree.written.push(0);
        }
        let node = &tree.levels[level];
        if node.inodes.len() >= MIN_KEYS_PER_PAGE && node.bytes + elsize > self.page_size {
            let (key, pgid) = self.flush(tree, level)?;
            let key = key.ok_or_else(empty_node)?;
            self.add(
                tree,
                level + 1,
                Inode {
                    flags: 0,
                    key,
                    value: Vec::new(),
                    child: pgid,
                },
            )?;
        }
        let node = &mut tree.levels[level];
        node.bytes += elsize;
        node.inodes.push(inode);
        Ok(())
    }

    /// Writes the node of `level` as a page and empties it; returns its first key (`None`
    /// for an empty node: only an empty root is ever written) and page id.
    fn flush(&mut self, tree: &mut Tree, level: usize) -> Result<(Option<Vec<u8>>, u64), BboltError> {
        let node = std::mem::replace(&mut tree.levels[level], Node::new());
        tree.written[level] += 1;
        let pgid = self.next_pgid;
        let image = encode_node(&node, level == 0, pgid, self.page_size)?;
        self.next_pgid += (image.len() / self.page_size) as u64;
        self.out.write_all(&image)?;
        Ok((node.inodes.into_iter().next().map(|i| i.key), pgid))
    }

    /// Writes what is left of `tree` and returns its root. `inline` allows a small single
    /// leaf to be returned as an inline page image instead of a page.
    fn finish(&mut self, mut tree: Tree, inline: bool) -> Result<Root, BboltError> {
        let mut level = 0;
        loop {
            if tree.written[level] == 0 {
                // Nothing of this level was written yet: its node is the root.
                let node = &tree.levels[level];
                if inline && level == 0 && node.bytes <= self.page_size / 4 {
                    return Ok(Root::Inline(encode_node(node, true, 0, node.bytes)?));
                }
                let (_, pgid) = self.flush(&mut tree, level)?;
                return Ok(Root::Page(pgid));
            }
            let (key, pgid) = self.flush(&mut tree, level)?;
            let key = key.ok_or_else(empty_node)?;
            self.add(
                &mut tree,
                level + 1,
                Inode {
                    flags: 0,
                    key,
                    value: Vec::new(),
                    child: pgid,
                },
            )?;
            level += 1;
        }
    }
}

/// Writes a bbolt file to `W`: [`Writer::bucket`], then [`Writer::put`] for its pairs, for
/// each bucket in order; then [`Writer::finish`].
pub struct Writer<W: Write + Seek> {
    pages: Pages<W>,
    root: Tree,
    /// The open bucket: its name and tree.
    current: Option<(Vec<u8>, Tree)>,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a file of `page_size`-byte pages at the start of `out` (which should be empty).
    ///
    /// # Errors
    /// I/O failures reserving the meta pages; [`BboltError::BadInput`] for a page size that
    /// is not a power of two within [`super::PAGE_SIZE_MIN`]..=[`super::PAGE_SIZE_MAX`].
    pub fn new(mut out: W, page_size: usize) -> Result<Writer<W>, BboltError> {
        if !(super::PAGE_SIZE_MIN..=super::PAGE_SIZE_MAX).contains(&page_size) || !page_size.is_power_of_two()
        {
            return Err(BboltError::BadInput(format!("unsupported page size {page_size}")));
        }
        out.seek(SeekFrom::Start(0))?;
        // Meta pages 0 and 1 are reserved now and written by `finish`.
        out.write_all(&vec![0u8; 2 * page_size])?;
        Ok(Writer {
            pages: Pages {
                out,
                page_size,
                next_pgid: 2,
            },
            root: Tree::new(),
            current: None,
        })
    }

    /// Opens the next top-level bucket, closing the previous one. Names must be non-empty and
    /// strictly ascending (bytewise).
    ///
    /// # Errors
    /// [`BboltError::BadInput`] for an out-of-order, empty or oversized name; I/O failures.
    pub fn bucket(&mut self, name: &[u8]) -> Result<(), BboltError> {
        self.close_bucket()?;
        check_key(self.root.last_key.as_deref(), name)?;
        self.root.last_key = Some(name.to_vec());
        self.current = Some((name.to_vec(), Tree::new()));
        Ok(())
    }

    /// Adds a pair to the open bucket. Keys must be non-empty and strictly ascending.
    ///
    /// # Errors
    /// [`BboltError::BadInput`] when no bucket is open, for an out-of-order, empty or
    /// oversized key or an oversized value; I/O failures.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BboltError> {
        let Some((_, tree)) = self.current.as_mut() else {
            return Err(BboltError::BadInput("put outside a bucket".into()));
        };
        check_key(tree.last_key.as_deref(), key)?;
        if value.len() > VALUE_BYTES_MAX {
            return Err(BboltError::BadInput(format!(
                "value of {} bytes is too large",
                value.len()
            )));
        }
        tree.last_key = Some(key.to_vec());
        self.pages.add(
            tree,
            0,
            Inode {
                flags: 0,
                key: key.to_vec(),
                value: value.to_vec(),
                child: 0,
            },
        )
    }

    fn close_bucket(&mut self) -> Result<(), BboltError> {
        let Some((name, tree)) = self.current.take() else {
            return Ok(());
        };
        let mut value = vec![0u8; BUCKET_HEADER_BYTES];
        match self.pages.finish(tree, true)? {
            Root::Page(pgid) => value[0..8].copy_from_slice(&pgid.to_le_bytes()),
            // root = 0 and sequence = 0, then the page image.
            Root::Inline(image) => value.extend_from_slice(&image),
        }
        self.pages.add(
            &mut self.root,
            0,
            Inode {
                flags: LEAF_FLAG_BUCKET,
                key: name,
                value,
                child: 0,
            },
        )
    }

    /// Closes the open bucket, writes the root bucket, the freelist and both meta pages, and
    /// returns the underlying writer (positioned at the end of the file) with a summary.
    ///
    /// # Errors
    /// I/O failures.
    pub fn finish(mut self) -> Result<(W, WriteSummary), BboltError> {
        self.close_bucket()?;
        let root = std::mem::replace(&mut self.root, Tree::new());
        let Root::Page(root) = self.pages.finish(root, false)? else {
            return Err(BboltError::BadInput("internal: inline root bucket".into()));
        };
        let ps = self.pages.page_size;
        let freelist = self.pages.next_pgid;
        let mut page = vec![0u8; ps];
        PageHeader {
            id: freelist,
            flags: FLAG_FREELIST,
            count: 0,
            overflow: 0,
        }
        .encode(&mut page);
        self.pages.out.write_all(&page)?;
        let pgid = freelist + 1;
        let meta = Meta {
            page_size: u32::try_from(ps).map_err(|_| BboltError::BadInput("page size".into()))?,
            flags: 0,
            root,
            sequence: 0,
            freelist,
            pgid,
            txid: SNAPSHOT_TXID,
        };
        let out = &mut self.pages.out;
        out.seek(SeekFrom::Start(0))?;
        for (id, txid) in [(0u64, SNAPSHOT_TXID), (1, SNAPSHOT_TXID - 1)] {
            let mut page = vec![0u8; ps];
            PageHeader {
                id,
                flags: FLAG_META,
                count: 0,
                overflow: 0,
            }
            .encode(&mut page);
            Meta { txid, ..meta }.encode(&mut page[PAGE_HEADER_BYTES..]);
            out.write_all(&page)?;
        }
        let bytes = pgid * ps as u64;
        out.seek(SeekFrom::Start(bytes))?;
        out.flush()?;
        Ok((self.pages.out, WriteSummary { bytes, pages: pgid }))
    }
}

fn empty_node() -> BboltError {
    BboltError::BadInput("internal: an empty non-root node".into())
}

fn element_bytes(leaf: bool) -> usize {
    if leaf {
        LEAF_ELEMENT_BYTES
    } else {
        BRANCH_ELEMENT_BYTES
    }
}

fn check_key(last: Option<&[u8]>, key: &[u8]) -> Result<(), BboltError> {
    if key.is_empty() {
        return Err(BboltError::BadInput("empty key".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(BboltError::BadInput(format!(
            "key of {} bytes is too large",
            key.len()
        )));
    }
    if last.is_some_and(|l| l >= key) {
        return Err(BboltError::BadInput("keys out of order".into()));
    }
    Ok(())
}

/// Encodes `node` as page `pgid`: a buffer of whole pages of `page_size` bytes (an inline
/// image passes its exact size as `page_size`).
fn encode_node(node: &Node, leaf: bool, pgid: u64, page_size: usize) -> Result<Vec<u8>, BboltError> {
    let pages = node.bytes.div_ceil(page_size).max(1);
    let mut buf = vec![0u8; pages * page_size];
    let count = u16::try_from(node.inodes.len())
        .ok()
        .filter(|c| *c < u16::MAX)
        .ok_or_else(|| BboltError::BadInput("too many elements on one page".into()))?;
    let overflow =
        u32::try_from(pages - 1).map_err(|_| BboltError::BadInput("page overflow too large".into()))?;
    PageHeader {
        id: pgid,
        flags: if leaf { FLAG_LEAF } else { FLAG_BRANCH },
        count,
        overflow,
    }
    .encode(&mut buf);
    let elsize = element_bytes(leaf);
    let mut off = PAGE_HEADER_BYTES + elsize * node.inodes.len();
    let as_u32 = |n: usize| u32::try_from(n).map_err(|_| BboltError::BadInput("page too large".into()));
    for (i, inode) in node.inodes.iter().enumerate() {
        let at = PAGE_HEADER_BYTES + i * elsize;
        let pos = as_u32(off - at)?;
        let ksize = as_u32(inode.key.len())?;
        let e = &mut buf[at..at + elsize];
        if leaf {
            e[0..4].copy_from_slice(&inode.flags.to_le_bytes());
            e[4..8].copy_from_slice(&pos.to_le_bytes());
            e[8..12].copy_from_slice(&ksize.to_le_bytes());
            e[12..16].copy_from_slice(&as_u32(inode.value.len())?.to_le_bytes());
        } else {
            e[0..4].copy_from_slice(&pos.to_le_bytes());
            e[4..8].copy_from_slice(&ksize.to_le_bytes());
            e[8..16].copy_from_slice(&inode.child.to_le_bytes());
        }
        buf[off..off + inode.key.len()].copy_from_slice(&inode.key);
        off += inode.key.len();
        buf[off..off + inode.value.len()].copy_from_slice(&inode.value);
        off += inode.value.len();
    }
    Ok(buf)
}
