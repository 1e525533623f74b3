//! etcd's v3 authentication and role-based access control (etcd `server/auth/store.go`,
//! `simple_token.go`, `server/etcdserver/v3_server.go`, `apply_auth.go`; etcd-compat.md §2.10).
//!
//! * [`state`]: the replicated users, roles, enabled flag and auth revision — changed only by
//!   apply, stored in the `meta` keyspace, carried in raft snapshots and in the etcd snapshot
//!   image (`authUsers`, `authRoles`, `auth` buckets).
//! * [`tokens`]: member-local simple tokens (`--auth-token=simple`).
//! * [`perm`]: key-range permission arithmetic.
//!
//! Identity of a request ([`Auth::identity`]): the `token` (or `authorization`) gRPC metadata
//! names a simple token; without one, and with `--client-cert-auth`, the CommonName of the
//! verified client certificate is the user ([`ClientCertCn`], inserted per connection by the
//! listener; requests through the JSON gateway never carry it, as in etcd). Permission checks
//! run on the API side before a request is proposed or served; a proposed write carries the
//! user and the auth revision it was checked at, and apply refuses it with `revision of auth
//! store is old` when users or roles changed in between (etcd's `authApplierV3`).

pub mod perm;
pub mod state;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use self::perm::Access;
use self::state::AuthState;
use self::tokens::SimpleTokens;
use crate::config::limits::{AUTH_TOKEN_TTL_DEFAULT, BCRYPT_COST_DEFAULT, BCRYPT_COST_RANGE};
use crate::error::Error;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};
use crate::proto::mainstaypb::AuthInfo;

/// gRPC metadata keys carrying the token (etcd `rpctypes.TokenFieldNameGRPC` and
/// `TokenFieldNameSwagger`, the latter set by the JSON gateway from `Authorization`).
pub const TOKEN_METADATA_KEYS: [&str; 2] = ["token", "authorization"];

/// The CommonName of a connection's verified client certificate, as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertCn(pub Arc<str>);

/// Marks a request made by the server itself on behalf of a caller whose permissions were
/// already checked (Lock and Election run over the KV service in process); it runs as root.
/// Only server code can set request extensions, so clients cannot forge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalCaller;

/// Member-local auth settings from the command line.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl`.
    pub token_ttl: Duration,
    /// `--client-cert-auth`: the client certificate's CN is the user when no token is sent.
    pub client_cert_auth: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            bcrypt_cost: BCRYPT_COST_DEFAULT,
            token_ttl: AUTH_TOKEN_TTL_DEFAULT,
            client_cert_auth: false,
        }
    }
}

impl AuthSettings {
    /// Settings from `--auth-token`, `--bcrypt-cost`, `--auth-token-ttl` and
    /// `--client-cert-auth`.
    ///
    /// # Errors
    /// A bcrypt cost outside 4..=31 (etcd: `invalid bcrypt-cost`), and `--auth-token=jwt,…`,
    /// which Mainstay does not support yet, or an unknown token type (etcd: `unknown token
    /// type`).
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<AuthSettings> {
        let cost = u32::try_from(config.bcrypt_cost).unwrap_or(u32::MAX);
        if !BCRYPT_COST_RANGE.contains(&cost) {
            anyhow::bail!(
                "invalid bcrypt-cost: {} (must be between {} and {})",
                config.bcrypt_cost,
                BCRYPT_COST_RANGE.start(),
                BCRYPT_COST_RANGE.end()
            );
        }
        let kind = config.auth_token.split(',').next().unwrap_or_default();
        match kind {
            "simple" => {}
            "jwt" => anyhow::bail!(
                "--auth-token=jwt is not supported by mainstay yet; use --auth-token=simple (the default)"
            ),
            other => anyhow::bail!("unknown token type: {other:?} (--auth-token accepts simple or jwt)"),
        }
        Ok(AuthSettings {
            bcrypt_cost: cost,
            token_ttl: config.auth_token_ttl,
            client_cert_auth: config.client_tls.client_cert_auth,
        })
    }
}

/// The auth store of a member: replicated state, tokens and local settings.
#[derive(Debug)]
pub struct Auth {
    state: AuthState,
    tokens: SimpleTokens,
    settings: AuthSettings,
}

impl Default for Auth {
    fn default() -> Self {
        Auth::new(AuthState::default(), AuthSettings::default())
    }
}

/// Who sent a request (etcd `auth.AuthInfo`).
pub type Identity = Option<AuthInfo>;

impl Auth {
    /// An auth store over `state`.
    pub fn new(state: AuthState, settings: AuthSettings) -> Auth {
        Auth {
            tokens: SimpleTokens::new(settings.token_ttl),
            state,
            settings,
        }
    }

    /// The replicated state.
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// The token table.
    pub fn tokens(&self) -> &SimpleTokens {
        &self.tokens
    }

    /// The local settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.state.enabled()
    }

    /// The identity of a request (etcd `EtcdServer.AuthInfoFromCtx`): a token from the
    /// metadata, else the client certificate's CN with `--client-cert-auth`, else none.
    ///
    /// # Errors
    /// `InvalidAuthToken` for a token that is unknown or expired.
    pub fn identity<T>(&self, request: &tonic::Request<T>) -> Result<Identity, Error> {
        if request.extensions().get::<InternalCaller>().is_some() {
            return Ok(Some(AuthInfo {
                username: state::ROOT.to_owned(),
                revision: self.state.revision(),
            }));
        }
        self.identity_of(request.metadata(), request.extensions().get::<ClientCertCn>())
    }

    /// [`Auth::identity`] from a request's metadata and client-certificate CN (for streams
    /// that check again on every watch creation).
    ///
    /// # Errors
    /// As [`Auth::identity`].
    pub fn identity_of(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        cn: Option<&ClientCertCn>,
    ) -> Result<Identity, Error> {
        let token = TOKEN_METADATA_KEYS
            .iter()
            .find_map(|k| metadata.get(*k))
            .map(|v| v.to_str().map_err(|_| Error::InvalidAuthToken));
        if let Some(token) = token {
            let token = token?;
            let token = token.strip_prefix("Bearer ").unwrap_or(token);
            let user = self.tokens.user(token).ok_or(Error::InvalidAuthToken)?;
            return Ok(Some(AuthInfo {
                username: user,
                revision: self.state.revision(),
            }));
        }
        if self.settings.client_cert_auth
            && let Some(cn) = cn
        {
            return Ok(Some(AuthInfo {
                username: cn.0.to_string(),
                revision: self.state.revision(),
            }));
        }
        Ok(None)
    }

    /// etcd `isOpPermitted` for `access` on a key (empty `range_end`) or range.
    ///
    /// # Errors
    /// `UserEmpty` without an identity, `AuthOldRevision` when the identity predates an
    /// auth change, `PermissionDenied`.
    pub fn check_range(
        &self,
        who: &Identity,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), Error> {
        let state = self.state.read();
        if !state.enabled {
            return Ok(());
        }
        let who = who.as_ref().filter(|w| w.revision != 0).ok_or(Error::UserEmpty)?;
        if who.revision < state.revision {
            return Err(Error::AuthOldRevision);
        }
        state.check_range(&who.username, key, range_end, access)
    }

    /// etcd `IsAdminPermitted`: root role required while auth is enabled.
    ///
    /// # Errors
    /// `UserEmpty`, `UserNotFound`, `PermissionDenied`.
    pub fn check_admin(&self, who: &Identity) -> Result<(), Error> {
        let state = self.state.read();
        if !state.enabled {
            return Ok(());
        }
        state.check_admin(who.as_ref().map_or("", |w| w.username.as_str()))
    }

    /// Range: READ over the range.
    ///
    /// # Errors
    /// As [`Auth::check_range`].
    pub fn check_range_request(&self, who: &Identity, r: &RangeRequest) -> Result<(), Error> {
        self.check_range(who, &r.key, &r.range_end, Access::Read)
    }

    /// Put: WRITE on the key, READ too with `prev_kv`; `lease_keys` are the keys already
    /// attached to the request's lease, which need WRITE as well (etcd `checkLeasePuts`: a user
    /// who could not revoke the lease may not attach to it).
    ///
    /// # Errors
    /// As [`Auth::check_range`].
    pub fn check_put(
        &self,
        who: &Identity,
        p: &PutRequest,
        lease_keys: &[bytes::Bytes],
    ) -> Result<(), Error> {
        self.check_range(who, &p.key, &[], Access::Write)?;
        for k in lease_keys {
            self.check_range(who, k, &[], Access::Write)?;
        }
        if p.prev_kv {
            self.check_range(who, &p.key, &[], Access::Read)?;
        }
        Ok(())
    }

    /// DeleteRange: WRITE over the range, READ too with `prev_kv`.
    ///
    /// # Errors
    /// As [`Auth::check_range`].
    pub fn check_delete(&self, who: &Identity, d: &DeleteRangeRequest) -> Result<(), Error> {
        if d.prev_kv {
            self.check_range(who, &d.key, &d.range_end, Access::Read)?;
        }
        self.check_range(who, &d.key, &d.range_end, Access::Write)
    }

    /// Txn: READ for every compare, then every operation of both branches, nested Txns too
    /// (etcd `CheckTxnAuth`).
    ///
    /// # Errors
    /// As [`Auth::check_range`].
    pub fn check_txn(&self, who: &Identity, t: &TxnRequest) -> Result<(), Error> {
        if !self.enabled() {
            return Ok(());
        }
        for c in &t.compare {
            self.check_range(who, &c.key, &c.range_end, Access::Read)?;
        }
        self.check_ops(who, &t.success)?;
        self.check_ops(who, &t.failure)
    }

    fn check_ops(&self, who: &Identity, ops: &[RequestOp]) -> Result<(), Error> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.check_range_request(who, r)?,
                // etcd checks only WRITE for a Put inside a Txn.
                Some(request_op::Request::RequestPut(p)) => {
                    self.check_range(who, &p.key, &[], Access::Write)?
                }
                Some(request_op::Request::RequestDeleteRange(d)) => self.check_delete(who, d)?,
                Some(request_op::Request::RequestTxn(t)) => self.check_txn(who, t)?,
                None => {}
            }
        }
        Ok(())
    }

    /// The auth info a proposed command carries: the identity checked at the current auth
    /// revision, `None` while auth is disabled.
    pub fn stamp(&self, who: &Identity) -> Option<AuthInfo> {
        if self.enabled() { who.clone() } else { None }
    }
}

/// Hashes `password` with bcrypt at `cost` off the async runtime (etcd hashes on the API side
/// before proposing, 3.5+). Returns the `$2a$` encoded hash, as Go's `x/crypto/bcrypt` writes.
///
/// # Errors
/// `Internal` when hashing fails.
pub async fn hash_password(password: String, cost: u32) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, cost).map(|h| h.format_for_version(bcrypt::Version::TwoA))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing: {e}")))?
    .map_err(|e| Error::Internal(format!("password hashing: {e}")))
}

/// Checks `password` against a stored bcrypt hash off the async runtime.
pub async fn verify_password(password: String, hash: Vec<u8>) -> bool {
    tokio::task::spawn_blocking(move || {
        std::str::from_utf8(&hash)
            .ok()
            .and_then(|h| bcrypt::verify(password, h).ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}
