//! The on-disk layout: every fjall keyspace, every meta key, and the format version.
//!
//! One fjall database per member lives in `<data-dir>/mainstay/` (etcd's own layout is
//! `<data-dir>/member/{snap,wal}`; a directory holding that is refused at open, not mistaken for
//! ours). Changing any encoding below means bumping [`FORMAT_VERSION`] and adding an upgrade step.

/// The on-disk format version, written when a data directory is created and checked at open.
pub const FORMAT_VERSION: u32 = 1;

/// Sub-directory of `--data-dir` holding the fjall database.
pub const DB_DIR: &str = "mainstay";

/// File next to [`DB_DIR`] holding the last raft snapshot image (`raft::snapshot` format).
pub const RAFT_SNAPSHOT_FILE: &str = "mainstay-raft.snap";

/// Raft log: key = log index (u64 big-endian), value = postcard-encoded openraft entry.
pub const KEYSPACE_RAFT_LOG: &str = "raft_log";
/// Raft hard state: keys [`RAFT_META_VOTE`], [`RAFT_META_COMMITTED`], [`RAFT_META_PURGED`].
pub const KEYSPACE_RAFT_META: &str = "raft_meta";
/// MVCC history: key = revision key (`mvcc::revision`), value = protobuf `mvccpb.KeyValue`.
pub const KEYSPACE_KV: &str = "kv";
/// State-machine metadata: keys `META_*` below.
pub const KEYSPACE_META: &str = "meta";

/// Leases: key = lease ID (i64 big-endian), value = protobuf `Lease` (`mainstay.proto`).
pub const KEYSPACE_LEASE: &str = "lease";

/// Raft vote (postcard).
pub const RAFT_META_VOTE: &[u8] = b"vote";
/// Last committed log id (postcard).
pub const RAFT_META_COMMITTED: &[u8] = b"committed";
/// Last purged log id (postcard).
pub const RAFT_META_PURGED: &[u8] = b"purged";

/// Format version (u32 big-endian).
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
/// Last applied log id (postcard), written in the same batch as the data it describes.
pub const META_APPLIED: &[u8] = b"applied";
/// Last applied membership (postcard `StoredMembership`).
pub const META_MEMBERSHIP: &[u8] = b"membership";
/// Current store revision (i64 big-endian).
pub const META_REVISION: &[u8] = b"revision";
/// Compaction revision (i64 big-endian); 0 when never compacted.
pub const META_COMPACT_REVISION: &[u8] = b"compact_revision";
/// The alarm table (protobuf `AlarmResponse` listing the active alarms).
pub const META_ALARMS: &[u8] = b"alarms";
/// This member's ID (u64 big-endian).
pub const META_MEMBER_ID: &[u8] = b"member_id";
/// The cluster ID (u64 big-endian).
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// The members raft bootstraps with while its log is empty (postcard `BTreeMap<u64,
/// MemberNode>`): written with [`META_MEMBER_ID`] and [`META_CLUSTER_ID`] at a member's first
/// start, or by `mainstayctl snapshot restore`; read at every start, used only until raft is
/// initialized.
pub const META_BOOTSTRAP_MEMBERS: &[u8] = b"bootstrap_members";

/// The auth state: protobuf `AuthState` (`mainstay.proto`; format `auth::state::AUTH_STATE_FORMAT`)
/// holding the enabled flag, the auth revision, users and roles. Absent until the first auth
/// change (then auth is disabled, revision 1, no users or roles).
pub const META_AUTH: &[u8] = b"auth";
