//! Member and cluster IDs, derived exactly as etcd derives them
//! (etcd `server/etcdserver/api/membership/member.go` NewMember, `cluster.go` genID), so a
//! Mainstay member bootstrapped with etcd's flags gets the IDs an etcd member would.

use sha1::{Digest, Sha1};

use crate::types::{ClusterId, MemberId};

/// A member ID: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs joined with
/// nothing, then the cluster token, then — for members added at runtime — the decimal Unix time.
pub fn member_id(peer_urls: &[String], cluster_token: &str, unix_time: Option<i64>) -> MemberId {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut input = urls.concat().into_bytes();
    input.extend_from_slice(cluster_token.as_bytes());
    if let Some(t) = unix_time {
        input.extend_from_slice(t.to_string().as_bytes());
    }
    MemberId(first_u64(&Sha1::digest(&input)))
}

/// The cluster ID: the first 8 bytes of SHA-1 over the sorted member IDs, each as 8 bytes
/// big-endian.
pub fn cluster_id(members: &[MemberId]) -> ClusterId {
    let mut ids: Vec<u64> = members.iter().map(|m| m.0).collect();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    ClusterId(first_u64(&Sha1::digest(&bytes)))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_single_member_ids_match_etcd() {
        // `etcd` with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32
        // (printed by etcd 3.4/3.5 at first start with the defaults).
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(m.to_string(), "8e9e05c52164694d");
        assert_eq!(cluster_id(&[m]).to_string(), "cdf818194e3a8c32");
    }

    #[test]
    fn peer_url_order_does_not_matter() {
        let a = member_id(&["http://b:2380".into(), "http://a:2380".into()], "t", None);
        let b = member_id(&["http://a:2380".into(), "http://b:2380".into()], "t", None);
        assert_eq!(a, b);
    }
}
