//! Three-member clusters on loopback (etcd-compat.md §2.8, §2.11; design.md §4): static
//! bootstrap from `--initial-cluster`, one leader, writes and linearizable reads through any
//! member, leases kept by the leader, and surviving the leader's kill -9.

use std::time::{Duration, Instant};

use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::watch_request::RequestUnion;
use mainstay::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, MemberListRequest, PutRequest,
    RangeRequest, StatusRequest, WatchCreateRequest, WatchRequest,
};
use tokio_stream::StreamExt;

use crate::harness::{Kind, Server};

/// How long a cluster gets to elect a new leader after losing one (etcd: a few election
/// timeouts of 1 s).
const ELECTION_DEADLINE: Duration = Duration::from_secs(15);

async fn put(s: &Server, key: &str, value: &str) -> i64 {
    s.kv()
        .await
        .put(PutRequest {
            key: key.to_owned().into(),
            value: value.to_owned().into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("put {key} on {}: {e}", s.name))
        .into_inner()
        .header
        .unwrap()
        .revision
}

/// (value, mod_revision) of `key` read from `s`; `serializable` skips the ReadIndex barrier.
async fn get(s: &Server, key: &str, serializable: bool) -> Option<(String, i64)> {
    let resp = s
        .kv()
        .await
        .range(RangeRequest {
            key: key.to_owned().into(),
            serializable,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("get {key} on {}: {e}", s.name))
        .into_inner();
    resp.kvs
        .first()
        .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.mod_revision))
}

/// (member ID, leader ID) as `s` reports them.
async fn status(s: &Server) -> (u64, u64) {
    let st = s.status().await;
    (st.header.unwrap().member_id, st.leader)
}

/// The index of the member that leads, as every live member in `live` agrees.
async fn leader_index(members: &[Server], live: &[usize]) -> usize {
    let deadline = Instant::now() + ELECTION_DEADLINE;
    loop {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for &i in live {
            if let Ok(mut m) = mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient::connect(
                members[i].endpoint(),
            )
            .await
                && let Ok(st) = m.status(StatusRequest {}).await
            {
                let st = st.into_inner();
                ids.push((i, st.header.unwrap().member_id));
                leaders.push(st.leader);
            }
        }
        if ids.len() == live.len()
            && leaders.iter().all(|l| *l != 0 && *l == leaders[0])
            && let Some((i, _)) = ids.iter().find(|(_, id)| *id == leaders[0])
        {
            return *i;
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {live:?}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// etcd: every member of a static bootstrap knows all members — IDs, names, peer URLs and the
/// client URLs each published — and all agree on one cluster ID and one leader.
#[tokio::test]
async fn members_of_a_new_cluster_agree_on_leader_and_list_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    let leader = leader_index(&members, &[0, 1, 2]).await;
    let mut cluster_ids = Vec::new();
    for m in &members {
        let list = m
            .cluster()
            .await
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        cluster_ids.push(list.header.unwrap().cluster_id);
        let mut seen: Vec<(String, Vec<String>, Vec<String>)> = list
            .members
            .iter()
            .map(|x| (x.name.clone(), x.peer_ur_ls.clone(), x.client_ur_ls.clone()))
            .collect();
        seen.sort();
        let want: Vec<(String, Vec<String>, Vec<String>)> = members
            .iter()
            .map(|x| {
                (
                    x.name.clone(),
                    vec![format!("http://127.0.0.1:{}", x.peer_port)],
                    vec![x.endpoint()],
                )
            })
            .collect();
        assert_eq!(seen, want, "member list on {}", m.name);
        assert!(list.members.iter().all(|x| !x.is_learner));
    }
    assert!(cluster_ids.iter().all(|c| *c == cluster_ids[0] && *c != 0));
    let (leader_id, _) = status(&members[leader]).await;
    for m in &members {
        assert_eq!(status(m).await.1, leader_id);
    }
}

/// Writes through any member go through the leader; a linearizable read on any member right
/// after the write's acknowledgement sees it (ReadIndex), with the same revisions everywhere.
#[tokio::test]
async fn writes_on_any_member_are_read_linearizably_on_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    for round in 0..10 {
        let writer = &members[round % 3];
        let value = format!("v{round}");
        let rev = put(writer, "k", &value).await;
        for reader in &members {
            assert_eq!(
                get(reader, "k", false).await,
                Some((value.clone(), rev)),
                "round {round}: written on {}, read on {}",
                writer.name,
                reader.name
            );
        }
    }
}

/// A watch opened on one member receives the events of writes made through another.
#[tokio::test]
async fn watch_on_a_follower_sees_writes_made_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    let mut w = WatchClient::connect(members[1].endpoint()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "w/".into(),
            range_end: "w0".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = w
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = stream.next().await.unwrap().unwrap();
    assert!(created.created);
    let rev = put(&members[2], "w/a", "1").await;
    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .unwrap()
        .unwrap();
    assert_eq!(got.events.len(), 1);
    let kv = got.events[0].kv.as_ref().unwrap();
    assert_eq!((kv.key.as_ref(), kv.mod_revision), (&b"w/a"[..], rev));
    drop(tx);
}

/// kill -9 of the leader: the other two elect a new leader, acknowledged writes survive, new
/// writes succeed, and the old leader catches up after its restart (design.md §4).
#[tokio::test]
async fn cluster_survives_the_leaders_kill9_and_the_old_leader_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    let old = leader_index(&members, &[0, 1, 2]).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push((
            format!("d/{i}"),
            put(&members[(old + 1) % 3], &format!("d/{i}"), "x").await,
        ));
    }
    members[old].kill9();
    let live: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = leader_index(&members, &live).await;
    assert_ne!(new, old);
    for (key, rev) in &acked {
        for &i in &live {
            assert_eq!(get(&members[i], key, false).await, Some(("x".into(), *rev)));
        }
    }
    let after = put(&members[live[0]], "after", "y").await;
    members[old].restart().await;
    let deadline = Instant::now() + ELECTION_DEADLINE;
    while get(&members[old], "after", true).await != Some(("y".into(), after)) {
        assert!(Instant::now() < deadline, "restarted member never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&members[old], "after", false).await,
        Some(("y".into(), after))
    );
}

/// Leases in a cluster: granted and kept alive through a follower (the leader keeps the
/// clocks), and not expired by a leader change — the new leader renews every lease (etcd
/// `lessor.Promote`), so the lease outlives the failover.
#[tokio::test]
async fn leases_are_kept_alive_through_followers_and_survive_a_leader_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    let leader = leader_index(&members, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let mut l = LeaseClient::connect(members[follower].endpoint()).await.unwrap();
    let id = l
        .lease_grant(LeaseGrantRequest { ttl: 8, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut responses = l
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let renewed = responses.next().await.unwrap().unwrap();
    assert_eq!((renewed.id, renewed.ttl), (id, 8));
    drop(tx);
    let ttl = l
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert!(ttl.ttl > 0 && ttl.ttl <= 8 && ttl.granted_ttl == 8, "{ttl:?}");

    members[leader].kill9();
    let live: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new = leader_index(&members, &live).await;
    let mut l = LeaseClient::connect(members[new].endpoint()).await.unwrap();
    let ttl = l
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert!(ttl.ttl >= 6, "the new leader renews the lease: {ttl:?}");
}

/// etcd's membership changes (etcd-compat.md §2.11): MemberAdd as learner and as voter (3 → 4
/// with the new member down still commits: the old members are a majority), MemberPromote of
/// a learner that is not in sync, MemberUpdate, MemberRemove, and etcd's errors for an
/// existing peer URL and an unknown member; a removed member no longer counts and writes go on.
#[tokio::test]
async fn members_are_added_promoted_updated_and_removed_with_etcds_errors() {
    use mainstay::proto::etcdserverpb::{
        MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let members = Server::start_cluster(Kind::Mainstay, dir.path(), 3, &[]).await;
    let mut c = members[1].cluster().await;
    let learner_url = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let added = c
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![learner_url.clone()],
            is_learner: true,
        })
        .await
        .unwrap()
        .into_inner();
    let learner = added.member.unwrap();
    assert!(learner.is_learner && learner.name.is_empty());
    assert!(added.members.iter().any(|m| m.id == learner.id && m.is_learner));
    let e = c
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![learner_url.clone()],
            is_learner: true,
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: Peer URLs already exists");
    // etcd `ErrGRPCMemberBadURLs` for an unparsable or empty peer URL list.
    for bad in [vec!["not a url".to_owned()], vec![]] {
        let e = c
            .member_add(MemberAddRequest {
                peer_ur_ls: bad,
                is_learner: true,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: given member URLs are invalid"
            )
        );
    }
    let e = c
        .member_promote(MemberPromoteRequest { id: learner.id })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "etcdserver: can only promote a learner member which is in sync with leader"
    );
    let voter_url = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let voter = c
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![voter_url],
            is_learner: false,
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    let moved = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let updated = c
        .member_update(MemberUpdateRequest {
            id: voter.id,
            peer_ur_ls: vec![moved.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let v = updated.members.iter().find(|m| m.id == voter.id).unwrap();
    assert_eq!((v.peer_ur_ls.clone(), v.is_learner), (vec![moved], false));
    let e = c
        .member_promote(MemberPromoteRequest { id: voter.id })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: can only promote a learner member");
    for id in [voter.id, learner.id] {
        c.member_remove(MemberRemoveRequest { id }).await.unwrap();
    }
    let e = c
        .member_remove(MemberRemoveRequest { id: learner.id })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::NotFound, "etcdserver: member not found")
    );
    let list = c
        .member_list(MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.members.len(), 3);
    // Removing a running follower shrinks the cluster; the other two keep serving writes.
    let leader = leader_index(&members, &[0, 1, 2]).await;
    let follower = (0..3).find(|i| *i != leader && *i != 1).unwrap();
    let (gone, _) = status(&members[follower]).await;
    c.member_remove(MemberRemoveRequest { id: gone }).await.unwrap();
    let list = c
        .member_list(MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.members.len(), 2);
    let rev = put(&members[leader], "after-remove", "x").await;
    assert_eq!(
        get(&members[1], "after-remove", false).await,
        Some(("x".into(), rev))
    );
}
