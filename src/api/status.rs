//! The one place where request errors become gRPC statuses with etcd's exact texts and codes
//! (etcd `api/v3rpc/rpctypes/error.go`, 3.6 codes; etcd-compat.md §3). Go clients map errors
//! back by message string, so every text is pinned byte for byte by the tests below.

use tonic::{Code, Status};

use crate::error::Error;

/// The gRPC code and message etcd sends for `e`.
pub fn code_and_message(e: &Error) -> (Code, String) {
    let (code, text) = match e {
        Error::KeyNotProvided => (Code::InvalidArgument, "etcdserver: key is not provided"),
        Error::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
        Error::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        Error::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        Error::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        Error::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        Error::InvalidSortOption => (Code::InvalidArgument, "etcdserver: invalid sort option"),
        Error::Compacted => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        Error::FutureRevision => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        Error::NoSpace => (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        Error::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
        Error::LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
        Error::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        Error::MemberExists => (Code::FailedPrecondition, "etcdserver: member ID already exist"),
        Error::PeerUrlExists => (Code::FailedPrecondition, "etcdserver: Peer URLs already exists"),
        Error::MemberNotFound => (Code::NotFound, "etcdserver: member not found"),
        Error::MemberBadUrls => (Code::InvalidArgument, "etcdserver: given member URLs are invalid"),
        Error::MemberNotLearner => (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member",
        ),
        Error::LearnerNotReady => (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        Error::TooManyLearners => (
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster",
        ),
        Error::RequestTooLarge => (Code::InvalidArgument, "etcdserver: request is too large"),
        Error::TooManyRequests => (Code::ResourceExhausted, "etcdserver: too many requests"),
        Error::NoLeader => (Code::Unavailable, "etcdserver: no leader"),
        Error::NotLeader => (Code::FailedPrecondition, "etcdserver: not leader"),
        Error::LeaderChanged => (Code::Unavailable, "etcdserver: leader changed"),
        Error::Stopped => (Code::Unavailable, "etcdserver: server stopped"),
        Error::Timeout => (Code::Unavailable, "etcdserver: request timed out"),
        Error::Corrupt => (Code::DataLoss, "etcdserver: corrupt cluster"),
        Error::NotSupportedForLearner => (
            Code::FailedPrecondition,
            "etcdserver: rpc not supported for learner",
        ),
        Error::Canceled => (Code::Cancelled, "etcdserver: request canceled"),
        Error::BadLeaderTransferee => (Code::FailedPrecondition, "etcdserver: bad leader transferee"),
        Error::WrongDowngradeVersionFormat => (
            Code::InvalidArgument,
            "etcdserver: wrong downgrade target version format",
        ),
        Error::InvalidDowngradeTargetVersion => (
            Code::InvalidArgument,
            "etcdserver: invalid downgrade target version",
        ),
        Error::NoInflightDowngrade => (Code::FailedPrecondition, "etcdserver: no inflight downgrade job"),
        Error::RootUserNotExist => (Code::FailedPrecondition, "etcdserver: root user does not exist"),
        Error::RootRoleNotExist => (
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role",
        ),
        Error::UserAlreadyExist => (Code::FailedPrecondition, "etcdserver: user name already exists"),
        Error::UserEmpty => (Code::InvalidArgument, "etcdserver: user name is empty"),
        Error::UserNotFound => (Code::FailedPrecondition, "etcdserver: user name not found"),
        Error::RoleAlreadyExist => (Code::FailedPrecondition, "etcdserver: role name already exists"),
        Error::RoleNotFound => (Code::FailedPrecondition, "etcdserver: role name not found"),
        Error::RoleEmpty => (Code::InvalidArgument, "etcdserver: role name is empty"),
        Error::AuthFailed => (
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
        Error::PermissionNotGiven => (Code::InvalidArgument, "etcdserver: permission not given"),
        Error::PermissionDenied => (Code::PermissionDenied, "etcdserver: permission denied"),
        Error::RoleNotGranted => (
            Code::FailedPrecondition,
            "etcdserver: role is not granted to the user",
        ),
        Error::PermissionNotGranted => (
            Code::FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        ),
        Error::AuthNotEnabled => (
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        ),
        Error::InvalidAuthToken => (Code::Unauthenticated, "etcdserver: invalid auth token"),
        Error::InvalidAuthMgmt => (Code::InvalidArgument, "etcdserver: invalid auth management"),
        Error::AuthOldRevision => (Code::InvalidArgument, "etcdserver: revision of auth store is old"),
        Error::Unimplemented(rpc) => {
            return (
                Code::Unimplemented,
                format!("mainstay: {rpc} is not implemented yet"),
            );
        }
        Error::Internal(text) => return (Code::Unknown, text.clone()),
    };
    (code, text.to_string())
}

/// The text grpc-go's `status.Error` gives for `e` (`rpc error: code = <Code> desc = <text>`),
/// which etcd puts in watch cancel reasons (e.g. `rpctypes.ErrGRPCPermissionDenied.Error()`).
pub fn go_status_text(e: &Error) -> String {
    let (code, message) = code_and_message(e);
    format!("rpc error: code = {code:?} desc = {message}")
}

/// Converts a request error into the gRPC status etcd would send.
pub fn to_status(e: &Error) -> Status {
    let (code, message) = code_and_message(e);
    Status::new(code, message)
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        to_status(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden table: etcd v3.6.14 api/v3rpc/rpctypes/error.go (ErrGRPC* values).
    const GOLDEN: &[(Error, Code, &str)] = &[
        (
            Error::KeyNotProvided,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            Error::KeyNotFound,
            Code::InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            Error::ValueProvided,
            Code::InvalidArgument,
            "etcdserver: value is provided",
        ),
        (
            Error::LeaseProvided,
            Code::InvalidArgument,
            "etcdserver: lease is provided",
        ),
        (
            Error::TooManyOps,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        (
            Error::DuplicateKey,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        (
            Error::InvalidSortOption,
            Code::InvalidArgument,
            "etcdserver: invalid sort option",
        ),
        (
            Error::Compacted,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        (
            Error::FutureRevision,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            Error::NoSpace,
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        (
            Error::LeaseNotFound,
            Code::NotFound,
            "etcdserver: requested lease not found",
        ),
        (
            Error::LeaseExists,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        ),
        (
            Error::LeaseTtlTooLarge,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        ),
        (
            Error::MemberExists,
            Code::FailedPrecondition,
            "etcdserver: member ID already exist",
        ),
        (
            Error::PeerUrlExists,
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        ),
        (
            Error::MemberNotFound,
            Code::NotFound,
            "etcdserver: member not found",
        ),
        (
            Error::MemberBadUrls,
            Code::InvalidArgument,
            "etcdserver: given member URLs are invalid",
        ),
        (
            Error::MemberNotLearner,
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member",
        ),
        (
            Error::LearnerNotReady,
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        (
            Error::TooManyLearners,
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster",
        ),
        (
            Error::RequestTooLarge,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            Error::TooManyRequests,
            Code::ResourceExhausted,
            "etcdserver: too many requests",
        ),
        (Error::NoLeader, Code::Unavailable, "etcdserver: no leader"),
        (
            Error::NotLeader,
            Code::FailedPrecondition,
            "etcdserver: not leader",
        ),
        (
            Error::LeaderChanged,
            Code::Unavailable,
            "etcdserver: leader changed",
        ),
        (Error::Stopped, Code::Unavailable, "etcdserver: server stopped"),
        (Error::Timeout, Code::Unavailable, "etcdserver: request timed out"),
        (Error::Corrupt, Code::DataLoss, "etcdserver: corrupt cluster"),
        (
            Error::NotSupportedForLearner,
            Code::FailedPrecondition,
            "etcdserver: rpc not supported for learner",
        ),
        (Error::Canceled, Code::Cancelled, "etcdserver: request canceled"),
        (
            Error::BadLeaderTransferee,
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ),
        (
            Error::WrongDowngradeVersionFormat,
            Code::InvalidArgument,
            "etcdserver: wrong downgrade target version format",
        ),
        (
            Error::InvalidDowngradeTargetVersion,
            Code::InvalidArgument,
            "etcdserver: invalid downgrade target version",
        ),
        (
            Error::NoInflightDowngrade,
            Code::FailedPrecondition,
            "etcdserver: no inflight downgrade job",
        ),
        // Auth errors (same file, ErrGRPCRootUserNotExist … ErrGRPCAuthOldRevision).
        (
            Error::RootUserNotExist,
            Code::FailedPrecondition,
            "etcdserver: root user does not exist",
        ),
        (
            Error::RootRoleNotExist,
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role",
        ),
        (
            Error::UserAlreadyExist,
            Code::FailedPrecondition,
            "etcdserver: user name already exists",
        ),
        (
            Error::UserEmpty,
            Code::InvalidArgument,
            "etcdserver: user name is empty",
        ),
        (
            Error::UserNotFound,
            Code::FailedPrecondition,
            "etcdserver: user name not found",
        ),
        (
            Error::RoleAlreadyExist,
            Code::FailedPrecondition,
            "etcdserver: role name already exists",
        ),
        (
            Error::RoleNotFound,
            Code::FailedPrecondition,
            "etcdserver: role name not found",
        ),
        (
            Error::RoleEmpty,
            Code::InvalidArgument,
            "etcdserver: role name is empty",
        ),
        (
            Error::AuthFailed,
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
        (
            Error::PermissionNotGiven,
            Code::InvalidArgument,
            "etcdserver: permission not given",
        ),
        (
            Error::PermissionDenied,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        ),
        (
            Error::RoleNotGranted,
            Code::FailedPrecondition,
            "etcdserver: role is not granted to the user",
        ),
        (
            Error::PermissionNotGranted,
            Code::FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        ),
        (
            Error::AuthNotEnabled,
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        ),
        (
            Error::InvalidAuthToken,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        ),
        (
            Error::InvalidAuthMgmt,
            Code::InvalidArgument,
            "etcdserver: invalid auth management",
        ),
        (
            Error::AuthOldRevision,
            Code::InvalidArgument,
            "etcdserver: revision of auth store is old",
        ),
    ];

    #[test]
    fn every_error_maps_to_etcds_exact_text_and_code() {
        for (err, code, text) in GOLDEN {
            let status = to_status(err);
            assert_eq!(status.code(), *code, "{err:?}");
            assert_eq!(status.message(), *text, "{err:?}");
        }
    }

    #[test]
    fn unimplemented_rpcs_answer_grpc_unimplemented() {
        assert_eq!(
            to_status(&Error::Unimplemented("Watch")).code(),
            Code::Unimplemented
        );
    }

    #[test]
    fn internal_errors_pass_their_text_as_unknown() {
        // etcd returns unmapped errors as codes.Unknown with the raw text (v3rpc/util.go).
        let s = to_status(&Error::Internal("mvcc: watcher does not exist".into()));
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "mvcc: watcher does not exist")
        );
    }
}
