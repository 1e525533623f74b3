//! The replicated command (openraft's `D`) and apply result (openraft's `R`).
//!
//! Both are protobuf messages from `proto/mainstay.proto`; serde (which openraft requires)
//! writes them as protobuf bytes, so the log-entry encoding is versioned the protobuf way and
//! `InternalRequest.format` is checked at apply time.

use std::fmt;

use prost::Message;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::proto::mainstaypb::{ApplyResult, InternalRequest, internal_request};

/// The command format this binary writes and applies.
pub const COMMAND_FORMAT: u32 = 1;

/// A replicated command: one etcd write request.
#[derive(Clone, Debug, PartialEq)]
pub struct Command(pub InternalRequest);

impl Command {
    /// Wraps one request in the current command format.
    pub fn new(request: internal_request::Request) -> Command {
        Command(InternalRequest {
            format: COMMAND_FORMAT,
            request: Some(request),
            auth: None,
        })
    }

    /// The command stamped with the user and auth revision its permissions were checked at
    /// (`None` while auth is disabled); apply refuses it if the auth state moved on.
    #[must_use]
    pub fn with_auth(mut self, auth: Option<crate::proto::mainstaypb::AuthInfo>) -> Command {
        self.0.auth = auth;
        self
    }

    /// Encoded size in bytes (what `--max-request-bytes` limits).
    pub fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0.request {
            Some(internal_request::Request::Put(_)) => "put",
            Some(internal_request::Request::DeleteRange(_)) => "delete_range",
            Some(internal_request::Request::Txn(_)) => "txn",
            Some(internal_request::Request::Compaction(_)) => "compaction",
            Some(internal_request::Request::LeaseGrant(_)) => "lease_grant",
            Some(internal_request::Request::LeaseRevoke(_)) => "lease_revoke",
            Some(internal_request::Request::Alarm(_)) => "alarm",
            Some(internal_request::Request::LeaseRevokeBatch(_)) => "lease_revoke_batch",
            Some(internal_request::Request::LeaseCheckpoint(_)) => "lease_checkpoint",
            Some(internal_request::Request::AuthEnable(_)) => "auth_enable",
            Some(internal_request::Request::AuthDisable(_)) => "auth_disable",
            Some(internal_request::Request::Authenticate(_)) => "authenticate",
            Some(internal_request::Request::AuthUserAdd(_)) => "auth_user_add",
            Some(internal_request::Request::AuthUserDelete(_)) => "auth_user_delete",
            Some(internal_request::Request::AuthUserChangePassword(_)) => "auth_user_change_password",
            Some(internal_request::Request::AuthUserGrantRole(_)) => "auth_user_grant_role",
            Some(internal_request::Request::AuthUserRevokeRole(_)) => "auth_user_revoke_role",
            Some(internal_request::Request::AuthRoleAdd(_)) => "auth_role_add",
            Some(internal_request::Request::AuthRoleDelete(_)) => "auth_role_delete",
            Some(internal_request::Request::AuthRoleGrantPermission(_)) => "auth_role_grant_permission",
            Some(internal_request::Request::AuthRoleRevokePermission(_)) => "auth_role_revoke_permission",
            None => "empty",
        };
        write!(f, "{kind}(format {})", self.0.format)
    }
}

/// The result of applying one [`Command`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response(pub ApplyResult);

macro_rules! serde_as_protobuf {
    ($ty:ident, $msg:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0.encode_to_vec())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: Vec<u8> = serde_bytes_compat::deserialize(d)?;
                $msg::decode(bytes.as_slice())
                    .map($ty)
                    .map_err(D::Error::custom)
            }
        }
    };
}

serde_as_protobuf!(Command, InternalRequest);
serde_as_protobuf!(Response, ApplyResult);

mod serde_bytes_compat {
    use serde::Deserializer;
    use serde::de::{SeqAccess, Visitor};

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("protobuf bytes")
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    #[test]
    fn command_round_trips_through_postcard() {
        let cmd = Command::new(internal_request::Request::Put(PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        }));
        let bytes = postcard::to_allocvec(&cmd).unwrap();
        let back: Command = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, cmd);
        assert_eq!(back.0.format, COMMAND_FORMAT);
    }
}
