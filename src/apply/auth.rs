//! Apply of auth commands (etcd `applierV3backend.Auth*` over `authStore`) and the auth
//! revision guard of every stamped command (etcd `authApplierV3`).

use super::Applier;
use super::command::Command;
use crate::auth::state::Change;
use crate::error::Error;
use crate::mvcc::ApplyBatch;
use crate::proto::mainstaypb::{ApplyErrorCode, ApplyResult, AuthApplied, apply_result, internal_request};
use crate::storage::schema;

impl Applier {
    /// `AUTH_OLD_REVISION` when the command was checked at an auth revision older than the
    /// current one while auth is enabled: users or roles changed after its permission check.
    pub(super) fn stale_auth(&self, command: &Command) -> Option<ApplyErrorCode> {
        let info = command.0.auth.as_ref()?;
        let state = self.auth.state().read();
        (state.enabled && info.revision < state.revision).then_some(ApplyErrorCode::AuthOldRevision)
    }

    /// Applies an auth command; `None` for any other command.
    pub(super) fn apply_auth(
        &self,
        request: &internal_request::Request,
        batch: &mut ApplyBatch<'_>,
    ) -> Option<ApplyResult> {
        use internal_request::Request as R;
        let change = match request {
            R::AuthEnable(_) => Change::Enable,
            R::AuthDisable(_) => Change::Disable,
            R::AuthUserAdd(r) => Change::UserAdd(r),
            R::AuthUserDelete(r) => Change::UserDelete(r),
            R::AuthUserChangePassword(r) => Change::UserChangePassword(r),
            R::AuthUserGrantRole(r) => Change::UserGrantRole(r),
            R::AuthUserRevokeRole(r) => Change::UserRevokeRole(r),
            R::AuthRoleAdd(r) => Change::RoleAdd(r),
            R::AuthRoleDelete(r) => Change::RoleDelete(r),
            R::AuthRoleGrantPermission(r) => Change::RoleGrantPermission(r),
            R::AuthRoleRevokePermission(r) => Change::RoleRevokePermission(r),
            R::Authenticate(a) => return Some(self.authenticate(&a.name, &a.simple_token_prefix)),
            _ => return None,
        };
        let mut state = self.auth.state().write();
        let result = match state.apply(&change) {
            Ok(effects) => {
                if effects.changed {
                    batch.put_meta(schema::META_AUTH, state.encode());
                }
                if let Some(user) = &effects.invalidate_user {
                    self.auth.tokens().invalidate_user(user);
                }
                if effects.disabled {
                    self.auth.tokens().clear();
                }
                ok(String::new())
            }
            Err(e) => failed(&e),
        };
        Some(result)
    }

    /// etcd `authStore.Authenticate` at apply: the password was checked on the API side;
    /// the token is `<prefix>.<raft index>`, recorded on every member.
    fn authenticate(&self, name: &str, prefix: &str) -> ApplyResult {
        let state = self.auth.state().read();
        if !state.enabled {
            return failed(&Error::AuthNotEnabled);
        }
        if !state.users.contains_key(name) {
            return failed(&Error::AuthFailed);
        }
        let token = format!(
            "{prefix}.{}",
            self.index.load(std::sync::atomic::Ordering::Relaxed)
        );
        self.auth.tokens().assign(token.clone(), name.to_owned());
        ok(token)
    }
}

fn ok(token: String) -> ApplyResult {
    ApplyResult {
        error: ApplyErrorCode::ApplyOk as i32,
        response: Some(apply_result::Response::Auth(AuthApplied { token })),
    }
}

fn failed(e: &Error) -> ApplyResult {
    ApplyResult {
        error: error_code(e).unwrap_or(ApplyErrorCode::EmptyCommand) as i32,
        response: None,
    }
}

/// The apply error code of an auth error.
pub(super) fn error_code(e: &Error) -> Option<ApplyErrorCode> {
    Some(match e {
        Error::UserAlreadyExist => ApplyErrorCode::AuthUserAlreadyExists,
        Error::UserEmpty => ApplyErrorCode::AuthUserEmpty,
        Error::UserNotFound => ApplyErrorCode::AuthUserNotFound,
        Error::RoleAlreadyExist => ApplyErrorCode::AuthRoleAlreadyExists,
        Error::RoleNotFound => ApplyErrorCode::AuthRoleNotFound,
        Error::RoleEmpty => ApplyErrorCode::AuthRoleEmpty,
        Error::AuthFailed => ApplyErrorCode::AuthFailed,
        Error::PermissionNotGiven => ApplyErrorCode::AuthPermissionNotGiven,
        Error::PermissionDenied => ApplyErrorCode::AuthPermissionDenied,
        Error::RoleNotGranted => ApplyErrorCode::AuthRoleNotGranted,
        Error::PermissionNotGranted => ApplyErrorCode::AuthPermissionNotGranted,
        Error::AuthNotEnabled => ApplyErrorCode::AuthNotEnabled,
        Error::InvalidAuthMgmt => ApplyErrorCode::AuthInvalidManagement,
        Error::AuthOldRevision => ApplyErrorCode::AuthOldRevision,
        Error::RootUserNotExist => ApplyErrorCode::AuthRootUserNotExist,
        Error::RootRoleNotExist => ApplyErrorCode::AuthRootRoleNotExist,
        _ => return None,
    })
}

/// The auth error an apply error code stands for (`None` for non-auth codes).
pub(super) fn code_error(code: ApplyErrorCode) -> Option<Error> {
    Some(match code {
        ApplyErrorCode::AuthUserAlreadyExists => Error::UserAlreadyExist,
        ApplyErrorCode::AuthUserEmpty => Error::UserEmpty,
        ApplyErrorCode::AuthUserNotFound => Error::UserNotFound,
        ApplyErrorCode::AuthRoleAlreadyExists => Error::RoleAlreadyExist,
        ApplyErrorCode::AuthRoleNotFound => Error::RoleNotFound,
        ApplyErrorCode::AuthRoleEmpty => Error::RoleEmpty,
        ApplyErrorCode::AuthFailed => Error::AuthFailed,
        ApplyErrorCode::AuthPermissionNotGiven => Error::PermissionNotGiven,
        ApplyErrorCode::AuthPermissionDenied => Error::PermissionDenied,
        ApplyErrorCode::AuthRoleNotGranted => Error::RoleNotGranted,
        ApplyErrorCode::AuthPermissionNotGranted => Error::PermissionNotGranted,
        ApplyErrorCode::AuthNotEnabled => Error::AuthNotEnabled,
        ApplyErrorCode::AuthInvalidManagement => Error::InvalidAuthMgmt,
        ApplyErrorCode::AuthOldRevision => Error::AuthOldRevision,
        ApplyErrorCode::AuthRootUserNotExist => Error::RootUserNotExist,
        ApplyErrorCode::AuthRootRoleNotExist => Error::RootRoleNotExist,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::state::AuthState;
    use crate::auth::{Auth, AuthSettings};
    use crate::proto::etcdserverpb as pb;
    use crate::proto::mainstaypb::AuthInfo;
    use crate::storage::Storage;

    fn applier(storage: &Storage) -> Applier {
        let store = crate::mvcc::Store::open(storage.clone()).unwrap();
        let lessor = crate::lease::Lessor::load(storage, &store).unwrap();
        let alarms = crate::alarm::Alarms::load(storage).unwrap();
        let auth = Auth::new(AuthState::load(storage).unwrap(), AuthSettings::default());
        Applier::new(store, lessor, alarms).with_auth(Arc::new(auth))
    }

    fn run(a: &Applier, command: &Command) -> ApplyResult {
        let store = a.store().clone();
        let mut batch = store.batch();
        let r = a.apply(command, &mut batch).unwrap();
        batch.commit(|_| {}).unwrap();
        r.0
    }

    #[test]
    fn a_write_checked_before_an_auth_change_is_refused_and_auth_state_persists() {
        // etcd authApplierV3 / isOpPermitted: `revision of auth store is old`.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let a = applier(&storage);
        let add = |name: &str| {
            Command::new(internal_request::Request::AuthUserAdd(pb::AuthUserAddRequest {
                name: name.into(),
                hashed_password: "$2a$04$x".into(),
                ..Default::default()
            }))
        };
        assert_eq!(run(&a, &add("root")).error, ApplyErrorCode::ApplyOk as i32);
        let grant = Command::new(internal_request::Request::AuthUserGrantRole(
            pb::AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            },
        ));
        run(&a, &grant);
        let enable = Command::new(internal_request::Request::AuthEnable(pb::AuthEnableRequest {}));
        assert_eq!(run(&a, &enable).error, ApplyErrorCode::ApplyOk as i32);
        let checked_at = a.auth().state().revision();
        let stamped = |revision| {
            Command::new(internal_request::Request::Put(pb::PutRequest {
                key: "k".into(),
                ..Default::default()
            }))
            .with_auth(Some(AuthInfo {
                username: "root".into(),
                revision,
            }))
        };
        assert_eq!(
            run(&a, &stamped(checked_at)).error,
            ApplyErrorCode::ApplyOk as i32
        );
        run(&a, &add("other"));
        assert_eq!(
            run(&a, &stamped(checked_at)).error,
            ApplyErrorCode::AuthOldRevision as i32
        );
        // Authenticate mints `<prefix>.<raft index>` and records the token.
        a.set_index(42);
        let login = Command::new(internal_request::Request::Authenticate(
            crate::proto::mainstaypb::AuthenticateCommand {
                name: "root".into(),
                simple_token_prefix: "abcdefghijklmnop".into(),
            },
        ));
        match run(&a, &login).response {
            Some(apply_result::Response::Auth(r)) => assert_eq!(r.token, "abcdefghijklmnop.42"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.auth().tokens().user("abcdefghijklmnop.42").as_deref(),
            Some("root")
        );
        // The state is in `meta` and survives a reload.
        let reloaded = AuthState::load(&storage).unwrap();
        assert!(reloaded.enabled());
        assert_eq!(reloaded.read().users.len(), 2);
    }

    #[test]
    fn every_auth_error_survives_the_apply_code_round_trip() {
        for e in [
            Error::UserAlreadyExist,
            Error::UserEmpty,
            Error::UserNotFound,
            Error::RoleAlreadyExist,
            Error::RoleNotFound,
            Error::RoleEmpty,
            Error::AuthFailed,
            Error::PermissionNotGiven,
            Error::PermissionDenied,
            Error::RoleNotGranted,
            Error::PermissionNotGranted,
            Error::AuthNotEnabled,
            Error::InvalidAuthMgmt,
            Error::AuthOldRevision,
            Error::RootUserNotExist,
            Error::RootRoleNotExist,
        ] {
            let code = error_code(&e).unwrap();
            assert_eq!(code_error(code), Some(e));
        }
    }
}
