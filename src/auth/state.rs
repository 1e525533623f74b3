//! The replicated auth state: the enabled flag, the auth revision, users and roles (etcd
//! `server/auth/store.go`). Changed only by apply ([`AuthState::apply`]), deterministically;
//! stored as one `AuthState` protobuf under the `meta` key `auth`, rewritten whenever it
//! changes (auth changes are rare and small).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prost::Message;

use super::perm::{self, Access};
use crate::error::{Error, StorageError};
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};
use crate::proto::etcdserverpb as pb;
use crate::proto::mainstaypb::AuthState as StoredState;
use crate::storage::{Storage, schema};

/// Format of the stored `AuthState` record this binary reads and writes.
pub const AUTH_STATE_FORMAT: u32 = 1;

/// etcd's root user and role names.
pub const ROOT: &str = "root";

/// The in-memory auth state.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Whether auth is enabled.
    pub enabled: bool,
    /// etcd's `authRevision`: 1 on a fresh store, +1 on every change of users or roles.
    pub revision: u64,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

impl Default for Snapshot {
    fn default() -> Self {
        // etcd `NewAuthStore` commits revision 1 on a fresh backend.
        Snapshot {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// One auth-management command, decoded from the log.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// AuthEnable.
    Enable,
    /// AuthDisable.
    Disable,
    /// UserAdd with the password already hashed.
    UserAdd(&'a pb::AuthUserAddRequest),
    /// UserDelete.
    UserDelete(&'a pb::AuthUserDeleteRequest),
    /// UserChangePassword with the password already hashed.
    UserChangePassword(&'a pb::AuthUserChangePasswordRequest),
    /// UserGrantRole.
    UserGrantRole(&'a pb::AuthUserGrantRoleRequest),
    /// UserRevokeRole.
    UserRevokeRole(&'a pb::AuthUserRevokeRoleRequest),
    /// RoleAdd.
    RoleAdd(&'a pb::AuthRoleAddRequest),
    /// RoleDelete.
    RoleDelete(&'a pb::AuthRoleDeleteRequest),
    /// RoleGrantPermission.
    RoleGrantPermission(&'a pb::AuthRoleGrantPermissionRequest),
    /// RoleRevokePermission.
    RoleRevokePermission(&'a pb::AuthRoleRevokePermissionRequest),
}

/// What a change did besides changing the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Whether the state changed (and must be stored).
    pub changed: bool,
    /// Users whose tokens must be dropped (deleted user, changed password).
    pub invalidate_user: Option<String>,
    /// Auth was disabled: every token must be dropped.
    pub disabled: bool,
}

/// The replicated auth state, shared by apply (writer) and the API side (readers).
#[derive(Debug, Default)]
pub struct AuthState {
    inner: RwLock<Snapshot>,
}

impl Snapshot {
    /// Whether `user` holds the root role (etcd `hasRootRole`).
    pub fn has_root_role(user: &User) -> bool {
        user.roles.iter().any(|r| r == ROOT)
    }

    /// etcd `isOpPermitted` once the user is known: root role passes, else the union of the
    /// user's roles must grant `access` on the key or range.
    ///
    /// # Errors
    /// `PermissionDenied` for an unknown user or a missing permission.
    pub fn check_range(&self, user: &str, key: &[u8], range_end: &[u8], access: Access) -> Result<(), Error> {
        let u = self.users.get(user).ok_or(Error::PermissionDenied)?;
        if Self::has_root_role(u) {
            return Ok(());
        }
        let perms: Vec<&Permission> = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.key_permission.iter())
            .collect();
        if perm::permitted(&perms, key, range_end, access) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// etcd `IsAdminPermitted`: the user must exist and hold the root role.
    ///
    /// # Errors
    /// `UserEmpty` without a user, `UserNotFound`, `PermissionDenied`.
    pub fn check_admin(&self, user: &str) -> Result<(), Error> {
        if user.is_empty() {
            return Err(Error::UserEmpty);
        }
        let u = self.users.get(user).ok_or(Error::UserNotFound)?;
        if Self::has_root_role(u) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    fn to_stored(&self) -> StoredState {
        StoredState {
            format: AUTH_STATE_FORMAT,
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }

    /// Decodes a stored record.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for bytes that do not decode or another format.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, StorageError> {
        let s = StoredState::decode(bytes).map_err(|e| StorageError::Corrupt(format!("auth state: {e}")))?;
        if s.format != AUTH_STATE_FORMAT {
            return Err(StorageError::Corrupt(format!(
                "auth state format {} (this binary reads {AUTH_STATE_FORMAT})",
                s.format
            )));
        }
        let name = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(Snapshot {
            enabled: s.enabled,
            revision: s.revision,
            users: s.users.into_iter().map(|u| (name(&u.name), u)).collect(),
            roles: s.roles.into_iter().map(|r| (name(&r.name), r)).collect(),
        })
    }

    /// The stored record.
    pub fn encode(&self) -> Vec<u8> {
        self.to_stored().encode_to_vec()
    }

    /// Applies one change (etcd `authStore.<Op>`), deterministic.
    ///
    /// # Errors
    /// etcd's auth errors; nothing changes then.
    pub fn apply(&mut self, change: &Change<'_>) -> Result<Effects, Error> {
        let mut effects = Effects {
            changed: true,
            ..Effects::default()
        };
        match change {
            Change::Enable => {
                if self.enabled {
                    return Ok(Effects::default());
                }
                let root = self.users.get(ROOT).ok_or(Error::RootUserNotExist)?;
                if !Self::has_root_role(root) {
                    return Err(Error::RootRoleNotExist);
                }
                self.enabled = true;
                // etcd 3.5 AuthEnable re-reads the revision without committing a new one.
                return Ok(effects);
            }
            Change::Disable => {
                if !self.enabled {
                    return Ok(Effects::default());
                }
                self.enabled = false;
                effects.disabled = true;
                return Ok(effects);
            }
            Change::UserAdd(r) => {
                if r.name.is_empty() {
                    return Err(Error::UserEmpty);
                }
                if self.users.contains_key(&r.name) {
                    return Err(Error::UserAlreadyExist);
                }
                let options = r.options.unwrap_or(UserAddOptions { no_password: false });
                let password = if options.no_password {
                    Vec::new()
                } else {
                    r.hashed_password.as_bytes().to_vec()
                };
                self.users.insert(
                    r.name.clone(),
                    User {
                        name: r.name.as_bytes().to_vec().into(),
                        password: password.into(),
                        roles: Vec::new(),
                        options: Some(options),
                    },
                );
            }
            Change::UserDelete(r) => {
                if self.enabled && r.name == ROOT {
                    return Err(Error::InvalidAuthMgmt);
                }
                self.users.remove(&r.name).ok_or(Error::UserNotFound)?;
                effects.invalidate_user = Some(r.name.clone());
            }
            Change::UserChangePassword(r) => {
                let u = self.users.get_mut(&r.name).ok_or(Error::UserNotFound)?;
                u.password = r.hashed_password.as_bytes().to_vec().into();
                effects.invalidate_user = Some(r.name.clone());
            }
            Change::UserGrantRole(r) => {
                if !self.users.contains_key(&r.user) {
                    return Err(Error::UserNotFound);
                }
                if r.role != ROOT && !self.roles.contains_key(&r.role) {
                    return Err(Error::RoleNotFound);
                }
                let u = self.users.get_mut(&r.user).ok_or(Error::UserNotFound)?;
                match u.roles.binary_search(&r.role) {
                    // etcd ignores a grant of a role the user already has.
                    Ok(_) => return Ok(Effects::default()),
                    Err(at) => u.roles.insert(at, r.role.clone()),
                }
            }
            Change::UserRevokeRole(r) => {
                if self.enabled && r.name == ROOT && r.role == ROOT {
                    return Err(Error::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(&r.name).ok_or(Error::UserNotFound)?;
                let at = u
                    .roles
                    .iter()
                    .position(|x| *x == r.role)
                    .ok_or(Error::RoleNotGranted)?;
                u.roles.remove(at);
            }
            Change::RoleAdd(r) => {
                if r.name.is_empty() {
                    return Err(Error::RoleEmpty);
                }
                if self.roles.contains_key(&r.name) {
                    return Err(Error::RoleAlreadyExist);
                }
                self.roles.insert(
                    r.name.clone(),
                    Role {
                        name: r.name.as_bytes().to_vec().into(),
                        key_permission: Vec::new(),
                    },
                );
            }
            Change::RoleDelete(r) => {
                if self.enabled && r.role == ROOT {
                    return Err(Error::InvalidAuthMgmt);
                }
                self.roles.remove(&r.role).ok_or(Error::RoleNotFound)?;
                for u in self.users.values_mut() {
                    u.roles.retain(|x| *x != r.role);
                }
            }
            Change::RoleGrantPermission(r) => {
                let role = self.roles.get_mut(&r.name).ok_or(Error::RoleNotFound)?;
                let p = r.perm.as_ref().ok_or(Error::PermissionNotGiven)?;
                if !perm::valid_permission_range(&p.key, &p.range_end) {
                    return Err(Error::InvalidAuthMgmt);
                }
                match role
                    .key_permission
                    .iter_mut()
                    .find(|x| x.key == p.key && x.range_end == p.range_end)
                {
                    Some(existing) => existing.perm_type = p.perm_type,
                    None => {
                        role.key_permission.push(p.clone());
                        // etcd keeps permissions sorted by key.
                        role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
            }
            Change::RoleRevokePermission(r) => {
                let role = self.roles.get_mut(&r.role).ok_or(Error::RoleNotFound)?;
                let at = role
                    .key_permission
                    .iter()
                    .position(|x| x.key == r.key && x.range_end == r.range_end)
                    .ok_or(Error::PermissionNotGranted)?;
                role.key_permission.remove(at);
            }
        }
        // etcd `commitRevision` after every change of users or roles.
        self.revision = self.revision.saturating_add(1);
        Ok(effects)
    }
}

impl AuthState {
    /// Loads the state from `storage` (a fresh state when none is stored).
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the stored record does not decode.
    pub fn load(storage: &Storage) -> Result<AuthState, StorageError> {
        let state = AuthState::default();
        state.reload(storage)?;
        Ok(state)
    }

    /// Replaces the state with the stored one (start-up, snapshot install).
    ///
    /// # Errors
    /// As [`AuthState::load`].
    pub fn reload(&self, storage: &Storage) -> Result<(), StorageError> {
        let snapshot = match storage.meta.get(schema::META_AUTH)? {
            None => Snapshot::default(),
            Some(v) => Snapshot::decode(&v)?,
        };
        *self.write() = snapshot;
        Ok(())
    }

    /// A read guard over the current state.
    pub fn read(&self) -> RwLockReadGuard<'_, Snapshot> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write guard (apply only).
    pub fn write(&self) -> RwLockWriteGuard<'_, Snapshot> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.read().enabled
    }

    /// The current auth revision.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::permission::Type as PermType;

    fn user_add(s: &mut Snapshot, name: &str) -> Result<Effects, Error> {
        s.apply(&Change::UserAdd(&pb::AuthUserAddRequest {
            name: name.into(),
            hashed_password: "$2a$hash".into(),
            ..Default::default()
        }))
    }

    fn grant(s: &mut Snapshot, user: &str, role: &str) -> Result<Effects, Error> {
        s.apply(&Change::UserGrantRole(&pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        }))
    }

    #[test]
    fn enabling_needs_a_root_user_with_the_root_role() {
        // etcd server/auth/store.go AuthEnable.
        let mut s = Snapshot::default();
        assert_eq!(s.apply(&Change::Enable), Err(Error::RootUserNotExist));
        user_add(&mut s, ROOT).unwrap();
        assert_eq!(s.apply(&Change::Enable), Err(Error::RootRoleNotExist));
        // The root role need not exist as a role to be granted.
        grant(&mut s, ROOT, ROOT).unwrap();
        assert!(s.apply(&Change::Enable).unwrap().changed);
        assert!(s.enabled);
        assert!(
            !s.apply(&Change::Enable).unwrap().changed,
            "enable twice is a no-op"
        );
    }

    #[test]
    fn root_cannot_lose_root_while_auth_is_enabled() {
        let mut s = Snapshot::default();
        user_add(&mut s, ROOT).unwrap();
        s.apply(&Change::RoleAdd(&pb::AuthRoleAddRequest { name: ROOT.into() }))
            .unwrap();
        grant(&mut s, ROOT, ROOT).unwrap();
        s.apply(&Change::Enable).unwrap();
        let revoke = pb::AuthUserRevokeRoleRequest {
            name: ROOT.into(),
            role: ROOT.into(),
        };
        assert_eq!(
            s.apply(&Change::UserRevokeRole(&revoke)),
            Err(Error::InvalidAuthMgmt)
        );
        let del = pb::AuthUserDeleteRequest { name: ROOT.into() };
        assert_eq!(s.apply(&Change::UserDelete(&del)), Err(Error::InvalidAuthMgmt));
        let del_role = pb::AuthRoleDeleteRequest { role: ROOT.into() };
        assert_eq!(
            s.apply(&Change::RoleDelete(&del_role)),
            Err(Error::InvalidAuthMgmt)
        );
        s.apply(&Change::Disable).unwrap();
        assert!(s.apply(&Change::UserRevokeRole(&revoke)).is_ok());
    }

    #[test]
    fn every_change_bumps_the_revision_and_errors_change_nothing() {
        let mut s = Snapshot::default();
        assert_eq!(s.revision, 1);
        user_add(&mut s, "u").unwrap();
        assert_eq!(s.revision, 2);
        assert_eq!(user_add(&mut s, "u"), Err(Error::UserAlreadyExist));
        assert_eq!(user_add(&mut s, ""), Err(Error::UserEmpty));
        assert_eq!(grant(&mut s, "u", "nope"), Err(Error::RoleNotFound));
        assert_eq!(grant(&mut s, "nobody", "r"), Err(Error::UserNotFound));
        assert_eq!(s.revision, 2);
        s.apply(&Change::RoleAdd(&pb::AuthRoleAddRequest { name: "r".into() }))
            .unwrap();
        grant(&mut s, "u", "r").unwrap();
        assert_eq!(s.revision, 4);
        assert!(
            !grant(&mut s, "u", "r").unwrap().changed,
            "a second grant is ignored"
        );
        let revoke = pb::AuthUserRevokeRoleRequest {
            name: "u".into(),
            role: "x".into(),
        };
        assert_eq!(
            s.apply(&Change::UserRevokeRole(&revoke)),
            Err(Error::RoleNotGranted)
        );
    }

    #[test]
    fn permissions_are_granted_updated_and_revoked_by_key_and_range_end() {
        let mut s = Snapshot::default();
        s.apply(&Change::RoleAdd(&pb::AuthRoleAddRequest { name: "r".into() }))
            .unwrap();
        let grant_perm = |t: PermType, key: &str, end: &str| pb::AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(Permission {
                perm_type: t as i32,
                key: key.as_bytes().to_vec().into(),
                range_end: end.as_bytes().to_vec().into(),
            }),
        };
        let missing = pb::AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: None,
        };
        assert_eq!(
            s.apply(&Change::RoleGrantPermission(&missing)),
            Err(Error::PermissionNotGiven)
        );
        s.apply(&Change::RoleGrantPermission(&grant_perm(
            PermType::Read,
            "b",
            "c",
        )))
        .unwrap();
        s.apply(&Change::RoleGrantPermission(&grant_perm(
            PermType::Write,
            "a",
            "",
        )))
        .unwrap();
        s.apply(&Change::RoleGrantPermission(&grant_perm(
            PermType::Readwrite,
            "b",
            "c",
        )))
        .unwrap();
        let role = &s.roles["r"];
        assert_eq!(role.key_permission.len(), 2);
        assert_eq!(&role.key_permission[0].key[..], b"a");
        assert_eq!(role.key_permission[1].perm_type, PermType::Readwrite as i32);
        let revoke = |key: &str, end: &str| pb::AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
        };
        assert_eq!(
            s.apply(&Change::RoleRevokePermission(&revoke("b", ""))),
            Err(Error::PermissionNotGranted)
        );
        s.apply(&Change::RoleRevokePermission(&revoke("b", "c"))).unwrap();
        assert_eq!(s.roles["r"].key_permission.len(), 1);
    }

    #[test]
    fn the_stored_record_round_trips() {
        let mut s = Snapshot::default();
        user_add(&mut s, ROOT).unwrap();
        grant(&mut s, ROOT, ROOT).unwrap();
        s.apply(&Change::Enable).unwrap();
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        assert!(Snapshot::decode(b"\xff\xff").is_err());
    }

    #[test]
    fn permission_checks_follow_the_users_roles() {
        let mut s = Snapshot::default();
        user_add(&mut s, "u").unwrap();
        user_add(&mut s, ROOT).unwrap();
        grant(&mut s, ROOT, ROOT).unwrap();
        assert_eq!(
            s.check_range("u", b"k", b"", Access::Read),
            Err(Error::PermissionDenied)
        );
        assert_eq!(
            s.check_range("ghost", b"k", b"", Access::Read),
            Err(Error::PermissionDenied)
        );
        assert!(s.check_range(ROOT, b"k", b"\0", Access::Write).is_ok());
        assert_eq!(s.check_admin("u"), Err(Error::PermissionDenied));
        assert_eq!(s.check_admin("ghost"), Err(Error::UserNotFound));
        assert_eq!(s.check_admin(""), Err(Error::UserEmpty));
        assert!(s.check_admin(ROOT).is_ok());
    }
}
