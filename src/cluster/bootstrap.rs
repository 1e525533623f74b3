//! The identity a new member starts with: its member ID, the cluster ID and the members of
//! `--initial-cluster`, derived from the bootstrap flags as etcd derives them
//! (`membership.NewClusterFromURLsMap`, `config.ServerConfig.VerifyBootstrap`), and recorded in
//! the data directory so that later starts — and a first start on a directory written by
//! `mainstayctl snapshot restore` — use the recorded values instead of the flags (etcd, too,
//! ignores `--initial-cluster` once its WAL exists).
//!
//! Shared by the server's first start and by `mainstayctl snapshot restore`, so both give a
//! member the same IDs.

use std::collections::BTreeMap;

use crate::cluster::ids::{cluster_id, member_id};
use crate::config::{Config, ConfigError, go_url};
use crate::error::StorageError;
use crate::raft::types::MemberNode;
use crate::storage::{Storage, schema};
use crate::types::{ClusterId, MemberId};

/// A member's identity and the voters its raft bootstraps with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// This member's ID (SHA-1 of its peer URLs and the cluster token).
    pub member: MemberId,
    /// The cluster ID (SHA-1 of the sorted member IDs).
    pub cluster: ClusterId,
    /// Every member of `--initial-cluster` by ID, with its name and peer URLs (client URLs are
    /// published by each member once it runs).
    pub members: BTreeMap<u64, MemberNode>,
}

impl Bootstrap {
    /// Derives the identity from `--name`, `--initial-cluster`, `--initial-cluster-token` and
    /// `--initial-advertise-peer-urls`, after etcd's bootstrap checks.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with etcd's message when the flags disagree
    /// ([`Config::verify_bootstrap`]).
    pub fn from_config(config: &Config) -> Result<Bootstrap, ConfigError> {
        config.verify_bootstrap()?;
        let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, url) in &config.initial_cluster {
            by_name.entry(name.as_str()).or_default().push(go_url(url));
        }
        let mut members = BTreeMap::new();
        for (name, urls) in by_name {
            let id = member_id(&urls, &config.initial_cluster_token, None);
            members.insert(
                id.0,
                MemberNode {
                    name: name.to_owned(),
                    peer_urls: urls,
                    client_urls: Vec::new(),
                },
            );
        }
        let own: Vec<String> = config.own_initial_peer_urls().into_iter().map(go_url).collect();
        let member = member_id(&own, &config.initial_cluster_token, None);
        let ids: Vec<MemberId> = members.keys().map(|id| MemberId(*id)).collect();
        Ok(Bootstrap {
            member,
            cluster: cluster_id(&ids),
            members,
        })
    }

    /// Records the identity in `storage` (meta keys [`schema::META_MEMBER_ID`],
    /// [`schema::META_CLUSTER_ID`], [`schema::META_BOOTSTRAP_MEMBERS`]) in one batch and makes
    /// it durable.
    ///
    /// # Errors
    /// Storage failures.
    pub fn record(&self, storage: &Storage) -> Result<(), StorageError> {
        let members = postcard::to_allocvec(&self.members)
            .map_err(|e| StorageError::Corrupt(format!("encoding the bootstrap members: {e}")))?;
        let mut batch = storage.db.batch();
        batch.insert(
            &storage.meta,
            schema::META_MEMBER_ID,
            (self.member.0 as i64).to_be_bytes(),
        );
        batch.insert(
            &storage.meta,
            schema::META_CLUSTER_ID,
            (self.cluster.0 as i64).to_be_bytes(),
        );
        batch.insert(&storage.meta, schema::META_BOOTSTRAP_MEMBERS, members);
        batch.commit()?;
        storage.sync()
    }

    /// The identity recorded in `storage`, if any. `members` is empty for a data directory
    /// recorded before [`schema::META_BOOTSTRAP_MEMBERS`] existed.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when a recorded value does not decode.
    pub fn load(storage: &Storage) -> Result<Option<Bootstrap>, StorageError> {
        let (Some(member), Some(cluster)) = (
            storage.meta_i64(schema::META_MEMBER_ID)?,
            storage.meta_i64(schema::META_CLUSTER_ID)?,
        ) else {
            return Ok(None);
        };
        let members = match storage.meta.get(schema::META_BOOTSTRAP_MEMBERS)? {
            None => BTreeMap::new(),
            Some(v) => postcard::from_bytes(&v)
                .map_err(|e| StorageError::Corrupt(format!("bootstrap members: {e}")))?,
        };
        Ok(Some(Bootstrap {
            member: MemberId(member as u64),
            cluster: ClusterId(cluster as u64),
            members,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match crate::config::parse(&args, &|_| None) {
            crate::config::ParseOutcome::Run(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_give_etcds_default_ids() {
        // etcd with no flags: member 8e9e05c52164694d, cluster cdf818194e3a8c32.
        let b = Bootstrap::from_config(&config(&[])).unwrap();
        assert_eq!(b.member.to_string(), "8e9e05c52164694d");
        assert_eq!(b.cluster.to_string(), "cdf818194e3a8c32");
        assert_eq!(b.members.len(), 1);
    }

    #[test]
    fn the_identity_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bootstrap::from_config(&config(&[
            "--name",
            "b",
            "--initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380",
            "--initial-advertise-peer-urls",
            "http://10.0.0.2:2380",
        ]))
        .unwrap();
        assert_eq!(b.members.len(), 3);
        assert_eq!(b.members[&b.member.0].name, "b");
        {
            let s = Storage::open(dir.path()).unwrap();
            assert_eq!(Bootstrap::load(&s).unwrap(), None);
            b.record(&s).unwrap();
        }
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(Bootstrap::load(&s).unwrap(), Some(b));
    }

    #[test]
    fn a_member_missing_from_the_initial_cluster_is_refused() {
        let c = config(&["--name", "x", "--initial-cluster", "a=http://10.0.0.1:2380"]);
        let e = Bootstrap::from_config(&c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "couldn't find local name \"x\" in the initial cluster configuration"
        );
    }
}
