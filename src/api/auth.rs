//! The Auth service (etcd `v3rpc/auth.go`, `etcdserver/v3_server.go`, `apply_auth.go`).
//!
//! Changes are proposed through raft with the caller's identity stamped on them; passwords are
//! bcrypt-hashed here, before proposing (etcd 3.5+), so the log never holds plaintext.
//! Reads (AuthStatus, UserGet/List, RoleGet/List) are served locally after a read barrier.
//! While auth is enabled every RPC but Authenticate needs the root role, except UserGet of the
//! caller itself and RoleGet of a role the caller holds.

use tonic::{Request, Response, Status};

use super::Ctx;
use crate::apply::command::Command;
use crate::auth::state::Snapshot;
use crate::auth::{self, Identity};
use crate::error::Error;
use crate::proto::authpb::Permission;
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb as pb;
use crate::proto::mainstaypb::{AuthenticateCommand, apply_result, internal_request::Request as R};

/// The Auth service.
pub struct AuthService {
    ctx: Ctx,
}

impl AuthService {
    /// An Auth service over `ctx`.
    pub fn new(ctx: Ctx) -> AuthService {
        AuthService { ctx }
    }

    fn auth(&self) -> &auth::Auth {
        self.ctx.applier.auth()
    }

    /// The caller's identity after the admin check.
    fn admin<T>(&self, request: &Request<T>) -> Result<Identity, Error> {
        let who = self.auth().identity(request)?;
        self.auth().check_admin(&who)?;
        Ok(who)
    }

    /// Proposes an auth change stamped with `who`; returns the token Authenticate minted.
    async fn change(&self, who: &Identity, request: R) -> Result<String, Error> {
        let command = Command::new(request).with_auth(self.auth().stamp(who));
        if command.encoded_len() as u64 > self.ctx.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let result = self.ctx.raft.propose(command).await?;
        match result.0.response {
            Some(apply_result::Response::Auth(a)) => Ok(a.token),
            _ => Err(Error::Internal("apply returned no auth response".into())),
        }
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        self.ctx.complete(None)
    }

    fn user_roles(&self, name: &str) -> Result<Vec<String>, Error> {
        let state = self.auth().state().read();
        state
            .users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(Error::UserNotFound)
    }
}

/// etcd's RoleGet answer: root's implicit whole-keyspace READWRITE first, then the stored ones.
fn role_perms(state: &Snapshot, role: &str) -> Result<Vec<Permission>, Error> {
    let r = state.roles.get(role).ok_or(Error::RoleNotFound)?;
    let mut perms = Vec::new();
    if role == auth::state::ROOT {
        perms.push(Permission {
            perm_type: PermType::Readwrite as i32,
            key: bytes::Bytes::new(),
            range_end: bytes::Bytes::from_static(b"\0"),
        });
    }
    perms.extend(r.key_permission.iter().cloned());
    Ok(perms)
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        r: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthEnable(r.into_inner())).await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: self.header(),
        }))
    }

    async fn auth_disable(
        &self,
        r: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthDisable(r.into_inner())).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.header(),
        }))
    }

    async fn auth_status(
        &self,
        r: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        self.admin(&r)?;
        self.ctx.raft.read_barrier().await?;
        let state = self.auth().state().read();
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.header(),
            enabled: state.enabled,
            auth_revision: state.revision,
        }))
    }

    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = r.into_inner();
        self.ctx.raft.read_barrier().await?;
        // etcd `CheckPassword`, then propose; retried when users or roles changed meanwhile.
        let token = loop {
            let (hash, checked_revision) = {
                let state = self.auth().state().read();
                if !state.enabled {
                    return Err(Error::AuthNotEnabled.into());
                }
                let user = state.users.get(&r.name).ok_or(Error::AuthFailed)?;
                if user.options.is_some_and(|o| o.no_password) {
                    return Err(Error::AuthFailed.into());
                }
                (user.password.to_vec(), state.revision)
            };
            if !auth::verify_password(r.password.clone(), hash).await {
                tracing::warn!(user = %r.name, "invalid authentication was requested");
                return Err(Error::AuthFailed.into());
            }
            let prefix = auth::tokens::token_prefix()
                .map_err(|e| Error::Internal(format!("random token prefix: {e}")))?;
            let token = self
                .change(
                    &None,
                    R::Authenticate(AuthenticateCommand {
                        name: r.name.clone(),
                        simple_token_prefix: prefix,
                    }),
                )
                .await?;
            if checked_revision == self.auth().state().revision() {
                break token;
            }
            tracing::info!("revision when password checked became stale; retrying");
        };
        Ok(Response::new(pb::AuthenticateResponse {
            header: self.header(),
            token,
        }))
    }

    async fn user_add(
        &self,
        r: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let who = self.admin(&r)?;
        let mut r = r.into_inner();
        if !r.options.is_some_and(|o| o.no_password) {
            let cost = self.auth().settings().bcrypt_cost;
            r.hashed_password = auth::hash_password(std::mem::take(&mut r.password), cost).await?;
        }
        r.password.clear();
        self.change(&who, R::AuthUserAdd(r)).await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: self.header(),
        }))
    }

    async fn user_get(
        &self,
        r: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let who = self.auth().identity(&r)?;
        let r = r.into_inner();
        if let Err(e) = self.auth().check_admin(&who)
            && who.as_ref().is_none_or(|w| w.username != r.name)
        {
            return Err(e.into());
        }
        self.ctx.raft.read_barrier().await?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: self.header(),
            roles: self.user_roles(&r.name)?,
        }))
    }

    async fn user_list(
        &self,
        r: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.admin(&r)?;
        self.ctx.raft.read_barrier().await?;
        let users = self.auth().state().read().users.keys().cloned().collect();
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.header(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        r: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthUserDelete(r.into_inner())).await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: self.header(),
        }))
    }

    async fn user_change_password(
        &self,
        r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let who = self.admin(&r)?;
        let mut r = r.into_inner();
        let cost = self.auth().settings().bcrypt_cost;
        r.hashed_password = auth::hash_password(std::mem::take(&mut r.password), cost).await?;
        self.change(&who, R::AuthUserChangePassword(r)).await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: self.header(),
        }))
    }

    async fn user_grant_role(
        &self,
        r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthUserGrantRole(r.into_inner())).await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: self.header(),
        }))
    }

    async fn user_revoke_role(
        &self,
        r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthUserRevokeRole(r.into_inner())).await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: self.header(),
        }))
    }

    async fn role_add(
        &self,
        r: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthRoleAdd(r.into_inner())).await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: self.header(),
        }))
    }

    async fn role_get(
        &self,
        r: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let who = self.auth().identity(&r)?;
        let r = r.into_inner();
        if let Err(e) = self.auth().check_admin(&who) {
            let holds = who.as_ref().is_some_and(|w| {
                self.auth()
                    .state()
                    .read()
                    .users
                    .get(&w.username)
                    .is_some_and(|u| u.roles.contains(&r.role))
            });
            if !holds {
                return Err(e.into());
            }
        }
        self.ctx.raft.read_barrier().await?;
        let perm = role_perms(&self.auth().state().read(), &r.role)?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: self.header(),
            perm,
        }))
    }

    async fn role_list(
        &self,
        r: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.admin(&r)?;
        self.ctx.raft.read_barrier().await?;
        let roles = self.auth().state().read().roles.keys().cloned().collect();
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthRoleDelete(r.into_inner())).await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: self.header(),
        }))
    }

    async fn role_grant_permission(
        &self,
        r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthRoleGrantPermission(r.into_inner()))
            .await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: self.header(),
        }))
    }

    async fn role_revoke_permission(
        &self,
        r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let who = self.admin(&r)?;
        self.change(&who, R::AuthRoleRevokePermission(r.into_inner()))
            .await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: self.header(),
        }))
    }
}
