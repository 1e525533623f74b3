//! bbolt files: the on-disk format of etcd's backend and of its snapshots (etcd-compat.md §8.4,
//! etcd-io/bbolt `page.go`, `db.go`, `node.go`, `bucket.go`, `freelist.go`).
//!
//! [`Writer`] bulk-writes top-level buckets of sorted key/value pairs into a new file that
//! bbolt opens and `Tx.Check` accepts (this is what `Maintenance.Snapshot` streams);
//! [`Reader`] validates a file written by either side and iterates its buckets (for
//! `mainstayctl snapshot status` / `restore` of real etcd files, and for tests).
//!
//! The format in brief: the file is an array of pages of `page_size` bytes. Pages 0 and 1 are
//! meta pages (the one with the higher transaction id and a valid FNV-1a checksum wins); the
//! meta names the root bucket's B+tree and the freelist page. Branch and leaf pages start with
//! a 16-byte header, then fixed-size elements pointing at key/value bytes later in the page;
//! a page longer than one page size spans `overflow` extra pages. Byte order is little-endian
//! (bbolt uses the native order; every platform etcd and Kubernetes ship on is little-endian).
//! Nothing here knows about etcd's buckets — `snapshot::etcd_image` gives them meaning.

mod page;
mod reader;
mod writer;

pub use page::{Meta, fnv1a64};
pub use reader::{BucketRoot, PageSource, Reader};
pub use writer::{WriteSummary, Writer};

/// bbolt's magic number in every meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data-file format version bbolt reads and writes.
pub const VERSION: u32 = 2;
/// Page size of files Mainstay writes, in bytes (bbolt uses the OS page size: 4096 on the
/// amd64/arm64 Linux machines etcd runs on).
pub const PAGE_SIZE_DEFAULT: usize = 4096;
/// Largest key bbolt accepts, in bytes (`bbolt.MaxKeySize`).
pub const KEY_BYTES_MAX: usize = 32_768;
/// Largest value bbolt accepts, in bytes (`bbolt.MaxValueSize`).
pub const VALUE_BYTES_MAX: usize = (1 << 31) - 2;
/// Smallest page size the reader accepts, in bytes (must hold a meta page).
pub const PAGE_SIZE_MIN: usize = 512;
/// Largest page size the reader accepts, in bytes (bbolt has no limit; 64 KiB covers every
/// platform page size).
pub const PAGE_SIZE_MAX: usize = 64 * 1024;

/// What is wrong with a bbolt file, or why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum BboltError {
    /// Reading or writing the underlying file failed.
    #[error("bbolt file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Neither meta page is valid (wrong magic, version or checksum, or impossible values).
    #[error("bbolt file has no valid meta page: {0}")]
    InvalidMeta(String),
    /// The file is shorter than its meta page says.
    #[error("bbolt file is truncated: {needed} bytes needed, {actual} present")]
    Truncated {
        /// Bytes the meta page requires (`pgid × page size`).
        needed: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// A page is malformed (bad id, type, bounds, element or order).
    #[error("bbolt page {page}: {what}")]
    Corrupt {
        /// The page id (for an inline bucket: the page holding the bucket's header).
        page: u64,
        /// What is wrong.
        what: String,
    },
    /// A bucket holds a sub-bucket; Mainstay only handles top-level buckets (etcd uses no
    /// nested buckets).
    #[error("bucket {0:?} holds nested buckets, which are not supported")]
    NestedBucket(String),
    /// A bucket named to the reader does not exist.
    #[error("bucket {0:?} not found")]
    NoSuchBucket(String),
    /// The writer was given keys or bucket names out of order, empty, or too large.
    #[error("bbolt writer: {0}")]
    BadInput(String),
}

#[cfg(test)]
mod tests;
