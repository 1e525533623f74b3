//! The gateway's path table and the call each path makes.
//!
//! Paths from etcd's generated gateways: 3.4 `etcdserver/etcdserverpb/gw/rpc.pb.gw.go`,
//! `etcdserver/api/v3lock/v3lockpb/gw`, `etcdserver/api/v3election/v3electionpb/gw`, and 3.5+
//! `api/etcdserverpb/gw/rpc.pb.gw.go`. In 3.4 Hash and HashKV share `/v3/maintenance/hash`
//! and the first registered (Hash) wins; 3.5 moved HashKV to `/v3/maintenance/hashkv`.

use axum::response::Response;

use super::stream::AfterBody;
use super::{Gateway, Input};
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3lockpb::lock_server::Lock;

/// One gateway endpoint (a gRPC method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    HashKv,
    Snapshot,
    MoveLeader,
    Downgrade,
    AuthEnable,
    AuthDisable,
    AuthStatus,
    Authenticate,
    UserAdd,
    UserGet,
    UserList,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleGet,
    RoleList,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
    Lock,
    Unlock,
    Campaign,
    Proclaim,
    Leader,
    Observe,
    Resign,
}

impl Op {
    /// The endpoint for a path below `/v3/` (exact match, as grpc-gateway's patterns).
    pub fn parse(path: &str) -> Option<Op> {
        Some(match path {
            "kv/range" => Op::Range,
            "kv/put" => Op::Put,
            "kv/deleterange" => Op::DeleteRange,
            "kv/txn" => Op::Txn,
            "kv/compaction" => Op::Compact,
            "watch" => Op::Watch,
            "lease/grant" => Op::LeaseGrant,
            "lease/revoke" | "kv/lease/revoke" => Op::LeaseRevoke,
            "lease/keepalive" => Op::LeaseKeepAlive,
            "lease/timetolive" | "kv/lease/timetolive" => Op::LeaseTimeToLive,
            "lease/leases" | "kv/lease/leases" => Op::LeaseLeases,
            "cluster/member/add" => Op::MemberAdd,
            "cluster/member/remove" => Op::MemberRemove,
            "cluster/member/update" => Op::MemberUpdate,
            "cluster/member/list" => Op::MemberList,
            "cluster/member/promote" => Op::MemberPromote,
            "maintenance/alarm" => Op::Alarm,
            "maintenance/status" => Op::Status,
            "maintenance/defragment" => Op::Defragment,
            "maintenance/hash" => Op::Hash,
            "maintenance/hashkv" => Op::HashKv,
            "maintenance/snapshot" => Op::Snapshot,
            "maintenance/transfer-leadership" => Op::MoveLeader,
            "maintenance/downgrade" => Op::Downgrade,
            "auth/enable" => Op::AuthEnable,
            "auth/disable" => Op::AuthDisable,
            "auth/status" => Op::AuthStatus,
            "auth/authenticate" => Op::Authenticate,
            "auth/user/add" => Op::UserAdd,
            "auth/user/get" => Op::UserGet,
            "auth/user/list" => Op::UserList,
            "auth/user/delete" => Op::UserDelete,
            "auth/user/changepw" => Op::UserChangePassword,
            "auth/user/grant" => Op::UserGrantRole,
            "auth/user/revoke" => Op::UserRevokeRole,
            "auth/role/add" => Op::RoleAdd,
            "auth/role/get" => Op::RoleGet,
            "auth/role/list" => Op::RoleList,
            "auth/role/delete" => Op::RoleDelete,
            "auth/role/grant" => Op::RoleGrantPermission,
            "auth/role/revoke" => Op::RoleRevokePermission,
            "lock/lock" => Op::Lock,
            "lock/unlock" => Op::Unlock,
            "election/campaign" => Op::Campaign,
            "election/proclaim" => Op::Proclaim,
            "election/leader" => Op::Leader,
            "election/observe" => Op::Observe,
            "election/resign" => Op::Resign,
            _ => return None,
        })
    }
}

/// A unary call of `$svc.$method`.
macro_rules! unary {
    ($gw:expr, $input:expr, $svc:ident, $method:ident) => {{
        let svc = $gw.services.$svc.clone();
        $gw.unary($input, move |r| async move { svc.$method(r).await })
            .await
    }};
}

/// Runs `op` with `input`.
pub async fn dispatch(gw: &Gateway, op: Op, input: Input) -> Response {
    match op {
        Op::Range => unary!(gw, input, kv, range),
        Op::Put => unary!(gw, input, kv, put),
        Op::DeleteRange => unary!(gw, input, kv, delete_range),
        Op::Txn => unary!(gw, input, kv, txn),
        Op::Compact => unary!(gw, input, kv, compact),
        Op::Watch => {
            let svc = gw.services.watch.clone();
            gw.bidi(
                input,
                AfterBody::HoldOpen,
                move |r| async move { svc.watch(r).await },
            )
            .await
        }
        Op::LeaseGrant => unary!(gw, input, lease, lease_grant),
        Op::LeaseRevoke => unary!(gw, input, lease, lease_revoke),
        Op::LeaseKeepAlive => {
            let svc = gw.services.lease.clone();
            gw.bidi(input, AfterBody::End, move |r| async move {
                svc.lease_keep_alive(r).await
            })
            .await
        }
        Op::LeaseTimeToLive => unary!(gw, input, lease, lease_time_to_live),
        Op::LeaseLeases => unary!(gw, input, lease, lease_leases),
        Op::MemberAdd => unary!(gw, input, cluster, member_add),
        Op::MemberRemove => unary!(gw, input, cluster, member_remove),
        Op::MemberUpdate => unary!(gw, input, cluster, member_update),
        Op::MemberList => unary!(gw, input, cluster, member_list),
        Op::MemberPromote => unary!(gw, input, cluster, member_promote),
        Op::Alarm => unary!(gw, input, maintenance, alarm),
        Op::Status => unary!(gw, input, maintenance, status),
        Op::Defragment => unary!(gw, input, maintenance, defragment),
        Op::Hash => unary!(gw, input, maintenance, hash),
        Op::HashKv => unary!(gw, input, maintenance, hash_kv),
        Op::Snapshot => {
            let svc = gw.services.maintenance.clone();
            gw.server_stream(input, move |r| async move { svc.snapshot(r).await })
                .await
        }
        Op::MoveLeader => unary!(gw, input, maintenance, move_leader),
        Op::Downgrade => unary!(gw, input, maintenance, downgrade),
        Op::AuthEnable => unary!(gw, input, auth, auth_enable),
        Op::AuthDisable => unary!(gw, input, auth, auth_disable),
        Op::AuthStatus => unary!(gw, input, auth, auth_status),
        Op::Authenticate => unary!(gw, input, auth, authenticate),
        Op::UserAdd => unary!(gw, input, auth, user_add),
        Op::UserGet => unary!(gw, input, auth, user_get),
        Op::UserList => unary!(gw, input, auth, user_list),
        Op::UserDelete => unary!(gw, input, auth, user_delete),
        Op::UserChangePassword => unary!(gw, input, auth, user_change_password),
        Op::UserGrantRole => unary!(gw, input, auth, user_grant_role),
        Op::UserRevokeRole => unary!(gw, input, auth, user_revoke_role),
        Op::RoleAdd => unary!(gw, input, auth, role_add),
        Op::RoleGet => unary!(gw, input, auth, role_get),
        Op::RoleList => unary!(gw, input, auth, role_list),
        Op::RoleDelete => unary!(gw, input, auth, role_delete),
        Op::RoleGrantPermission => unary!(gw, input, auth, role_grant_permission),
        Op::RoleRevokePermission => unary!(gw, input, auth, role_revoke_permission),
        Op::Lock => unary!(gw, input, lock, lock),
        Op::Unlock => unary!(gw, input, lock, unlock),
        Op::Campaign => unary!(gw, input, election, campaign),
        Op::Proclaim => unary!(gw, input, election, proclaim),
        Op::Leader => unary!(gw, input, election, leader),
        Op::Observe => {
            let svc = gw.services.election.clone();
            gw.server_stream(input, move |r| async move { svc.observe(r).await })
                .await
        }
        Op::Resign => unary!(gw, input, election, resign),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_exact_paths() {
        assert_eq!(Op::parse("kv/lease/revoke"), Some(Op::LeaseRevoke));
        assert_eq!(Op::parse("kv/lease/leases"), Some(Op::LeaseLeases));
        assert_eq!(Op::parse("maintenance/hash"), Some(Op::Hash));
        assert_eq!(Op::parse("lock/lock"), Some(Op::Lock));
        // grpc-gateway matches whole paths: no trailing slash, no prefix match.
        assert_eq!(Op::parse("kv/range/"), None);
        assert_eq!(Op::parse("lock"), None);
        assert_eq!(Op::parse("watch/x"), None);
    }
}
