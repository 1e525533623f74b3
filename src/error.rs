//! Crate-level error types. Request errors are etcd's error kinds without their texts; the texts
//! and gRPC codes are attached in exactly one place, `api::status`.

use std::path::PathBuf;

/// Failures of the storage engine. All of them are fatal for the member.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// fjall reported an error (I/O, corruption, poisoned after a failed persist).
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    /// A filesystem operation failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The data directory was written by an incompatible on-disk format.
    #[error("data directory format version {found} is not supported (this binary reads version {expected})")]
    FormatVersion {
        /// Version found on disk (0 when the marker is missing).
        found: u32,
        /// Version this binary reads and writes.
        expected: u32,
    },
    /// The data directory holds etcd's own layout (`member/wal`, `member/snap`).
    #[error(
        "{0} holds an etcd data directory (member/wal, member/snap); Mainstay keeps its data in <data-dir>/mainstay and does not read etcd's format in place"
    )]
    ForeignDataDir(PathBuf),
    /// Stored bytes do not decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// An etcd request error kind. Each maps to one exact etcd message and gRPC code in
/// `api::status` (etcd `api/v3rpc/rpctypes/error.go`, 3.6 codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("key is not provided")]
    KeyNotProvided,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("required revision has been compacted")]
    Compacted,
    #[error("required revision is a future revision")]
    FutureRevision,
    #[error("database space exceeded")]
    NoSpace,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("member ID already exist")]
    MemberExists,
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    #[error("member not found")]
    MemberNotFound,
    #[error("given member URLs are invalid")]
    MemberBadUrls,
    #[error("can only promote a learner member")]
    MemberNotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("request is too large")]
    RequestTooLarge,
    #[error("too many requests")]
    TooManyRequests,
    #[error("no leader")]
    NoLeader,
    #[error("not leader")]
    NotLeader,
    #[error("leader changed")]
    LeaderChanged,
    #[error("server stopped")]
    Stopped,
    #[error("request timed out")]
    Timeout,
    #[error("corrupt cluster")]
    Corrupt,
    #[error("rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("request canceled")]
    Canceled,
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("wrong downgrade target version format")]
    WrongDowngradeVersionFormat,
    #[error("invalid downgrade target version")]
    InvalidDowngradeTargetVersion,
    #[error("no inflight downgrade job")]
    NoInflightDowngrade,
    #[error("root user does not exist")]
    RootUserNotExist,
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("user name already exists")]
    UserAlreadyExist,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleAlreadyExist,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission not given")]
    PermissionNotGiven,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("authentication is not enabled")]
    AuthNotEnabled,
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    #[error("revision of auth store is old")]
    AuthOldRevision,
    /// An RPC whose implementation arrives in a later issue; answered as gRPC `Unimplemented`.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// Any other failure, returned as gRPC `Unknown` with this text (as etcd does for
    /// unmapped errors).
    #[error("{0}")]
    Internal(String),
}
