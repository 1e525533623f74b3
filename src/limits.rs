//! Internal bounds of the server, each with its unit in the name (style.md §8.5 rule 5).
//! Flag defaults that mirror etcd live in `config::limits`.

/// fjall block cache, in bytes.
pub const STORAGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Log-flush requests queued for the group-commit thread before `append` waits (entries).
pub const LOG_FLUSH_QUEUE_MAX: usize = 4096;

/// Revision-key deletions per fjall batch when compaction frees old versions.
pub const COMPACTION_BATCH_KEYS_MAX: usize = 1000;

/// Queued compaction jobs before `Compact` apply waits for the background deleter.
pub const COMPACTION_QUEUE_MAX: usize = 16;

/// etcd's limit on committed-but-unapplied entries before writes get `too many requests`.
pub const APPLY_BACKLOG_ENTRIES_MAX: u64 = 5000;

/// HTTP/2 concurrent streams per client connection (etcd's `--max-concurrent-streams` default).
pub const GRPC_CONCURRENT_STREAMS_MAX: u32 = u32::MAX;

/// How long a request waits for its raft proposal or read barrier before
/// `etcdserver: request timed out` (etcd: 5 s plus 2 × election timeout).
pub const REQUEST_TIMEOUT_SECS_BASE: u64 = 5;

/// Committed entries applied in one fjall batch (entries already delivered together by raft).
pub const APPLY_BATCH_ENTRIES_MAX: usize = 1024;
