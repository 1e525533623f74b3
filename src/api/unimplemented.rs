//! Services whose implementation arrives in later issues (Auth: #7).
//! Every RPC answers gRPC `Unimplemented` — never a silent fake success — and the README's
//! compatibility table lists them as such.

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::etcdserverpb as pb;

/// The Auth service, not implemented yet.
pub struct AuthService;

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        _r: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(Error::Unimplemented("Auth.AuthEnable").into())
    }

    async fn auth_disable(
        &self,
        _r: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Err(Error::Unimplemented("Auth.AuthDisable").into())
    }

    async fn auth_status(
        &self,
        _r: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Err(Error::Unimplemented("Auth.AuthStatus").into())
    }

    async fn authenticate(
        &self,
        _r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(Error::Unimplemented("Auth.Authenticate").into())
    }

    async fn user_add(
        &self,
        _r: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserAdd").into())
    }

    async fn user_get(
        &self,
        _r: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserGet").into())
    }

    async fn user_list(
        &self,
        _r: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserList").into())
    }

    async fn user_delete(
        &self,
        _r: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserDelete").into())
    }

    async fn user_change_password(
        &self,
        _r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserChangePassword").into())
    }

    async fn user_grant_role(
        &self,
        _r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserGrantRole").into())
    }

    async fn user_revoke_role(
        &self,
        _r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(Error::Unimplemented("Auth.UserRevokeRole").into())
    }

    async fn role_add(
        &self,
        _r: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleAdd").into())
    }

    async fn role_get(
        &self,
        _r: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleGet").into())
    }

    async fn role_list(
        &self,
        _r: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleList").into())
    }

    async fn role_delete(
        &self,
        _r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleDelete").into())
    }

    async fn role_grant_permission(
        &self,
        _r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleGrantPermission").into())
    }

    async fn role_revoke_permission(
        &self,
        _r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(Error::Unimplemented("Auth.RoleRevokePermission").into())
    }
}
