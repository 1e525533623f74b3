//! KV behaviour as a user reaches it through the real `etcdctl` (API v3, Debian `etcd-client`
//! 3.4.23) against the built binary. Every expected output below is what real etcd 3.4.23 prints
//! for the same command sequence (checked with `MAINSTAY_ETCDCTL_TARGET=etcd`, which runs these
//! tests against `/usr/bin/etcd` instead). Errors are compared with etcdctl's own `Error: ...`
//! line; the JSON `retrying of unary invoker failed` warning etcdctl 3.4 logs before each server
//! error is dropped.
//!
//! Not reachable through etcdctl 3.4: `get --count-only` (added in etcdctl 3.5; the count is
//! pinned through `-w json`/`-w fields` instead). Leases through etcdctl are covered in
//! `etcdctl_lease.rs`.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::harness::{Kind, Server, etcdctl_bin};

/// What one etcdctl run produced.
struct Out {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// stderr without etcdctl 3.4's JSON client warnings (`{"level":"warn",...}`).
    fn stderr_no_warn(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("{\"level\":\"warn\""))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// Starts the server under test: mainstay, or the real etcd with `MAINSTAY_ETCDCTL_TARGET=etcd`
/// (to check that the expectations are etcd's).
async fn start(dir: &std::path::Path) -> Server {
    let kind = match std::env::var("MAINSTAY_ETCDCTL_TARGET").as_deref() {
        Ok("etcd") => Kind::Etcd,
        _ => Kind::Mainstay,
    };
    Server::start(kind, dir, &[]).await
}

/// Runs etcdctl against `endpoint` (as given to `--endpoints`) with raw, possibly non-UTF-8,
/// arguments and optional stdin.
fn run_at<A: AsRef<OsStr>>(endpoint: &str, args: &[A], stdin: Option<&str>) -> Out {
    let mut child = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(s: &Server, args: &[&str]) -> Out {
    run_at(&s.endpoint(), args, None)
}

/// Runs a command that must succeed silently on stderr; returns stdout.
fn ok(s: &Server, args: &[&str]) -> String {
    let (success, stdout, stderr) = s.etcdctl(args);
    assert!(success, "etcdctl {args:?} failed: {stderr}");
    assert_eq!(stderr, "", "etcdctl {args:?} wrote to stderr");
    stdout
}

/// Runs a command the server must refuse (etcdctl exits 1, prints nothing on stdout); returns
/// the `Error: ...` text.
fn refused(s: &Server, args: &[&str]) -> String {
    let out = run(s, args);
    assert_eq!(
        out.code,
        Some(1),
        "etcdctl {args:?}: stdout {:?} stderr {:?}",
        out.stdout(),
        out.stderr
    );
    assert_eq!(out.stdout(), "", "etcdctl {args:?} printed on stdout");
    out.stderr_no_warn()
}

/// `etcdctl txn` in non-interactive mode, reading `script` from stdin.
fn txn(s: &Server, script: &str, extra: &[&str]) -> Out {
    let args: Vec<&str> = ["txn"].iter().chain(extra).copied().collect();
    run_at(&s.endpoint(), &args, Some(script))
}

fn txn_ok(s: &Server, script: &str) -> String {
    let out = txn(s, script, &[]);
    assert_eq!(out.code, Some(0), "txn {script:?} failed: {}", out.stderr);
    assert_eq!(out.stderr, "", "txn {script:?} wrote to stderr");
    out.stdout()
}

/// etcd's member ID for a member bootstrapped with one peer URL and the default cluster token
/// (`membership.NewMember`: first 8 bytes of SHA-1 over peer URLs + token), and the cluster ID
/// (`genID`: first 8 bytes of SHA-1 over the sorted member IDs, big-endian).
fn ids(s: &Server) -> (u64, u64) {
    let first_u64 = |d: &[u8]| u64::from_be_bytes(d[..8].try_into().unwrap());
    let member = first_u64(&Sha1::digest(format!(
        "http://127.0.0.1:{}etcd-cluster",
        s.peer_port
    )));
    let cluster = first_u64(&Sha1::digest(member.to_be_bytes()));
    (member, cluster)
}

/// The `endpoint status -w json` object for the one endpoint, asked through `endpoint` (see
/// `endpoint_status_accepts_an_http_url_endpoint` for why the tests that read the status
/// content pass `127.0.0.1:PORT` without the scheme).
fn status_json(endpoint: &str) -> Value {
    let out = run_at(endpoint, &["endpoint", "status", "-w", "json"], None);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(0), ""),
        "endpoint status at {endpoint}"
    );
    let v: Value = serde_json::from_str(&out.stdout()).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{v}");
    arr[0].clone()
}

/// `127.0.0.1:PORT`: the client endpoint without its scheme.
fn bare_endpoint(s: &Server) -> String {
    format!("127.0.0.1:{}", s.client_port)
}

/// The current raft term as the server reports it over gRPC. JSON expectations take the term
/// from the server itself: a fresh single etcd member is at term 2 (it campaigns from term 1),
/// and how raft terms are numbered is not part of the KV behaviour these tests pin.
async fn raft_term(s: &Server) -> u64 {
    let st = s.status().await;
    assert!(st.raft_term > 0);
    st.raft_term
}

/// The response header as etcdctl `-w json` prints it.
async fn header(s: &Server, revision: i64) -> String {
    let (member, cluster) = ids(s);
    let term = raft_term(s).await;
    format!(r#"{{"cluster_id":{cluster},"member_id":{member},"revision":{revision},"raft_term":{term}}}"#)
}

/// One `mvccpb.KeyValue` as etcdctl `-w json` prints it: key and value in base64 (Go's
/// encoding/json for `[]byte`), no value with `--keys-only`, zero lease omitted.
fn kv_json(key_b64: &str, create: i64, modified: i64, version: i64, value_b64: Option<&str>) -> String {
    let value = value_b64
        .map(|v| format!(",\"value\":\"{v}\""))
        .unwrap_or_default();
    format!(
        "{{\"key\":\"{key_b64}\",\"create_revision\":{create},\
         \"mod_revision\":{modified},\"version\":{version}{value}}}"
    )
}

/// `key\nvalue\n` per pair: etcdctl's simple format.
fn kvs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
}

/// `key\n\n` per key: etcdctl's simple format with `--keys-only` (empty value line).
fn keys(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("{k}\n\n")).collect()
}

/// Puts b=2, a=3, c=1, a=4, d=0 at revisions 2..=6: a has version 2, every other key version 1.
fn put_sort_fixture(s: &Server) {
    for (k, v) in [("b", "2"), ("a", "3"), ("c", "1"), ("a", "4"), ("d", "0")] {
        assert_eq!(ok(s, &["put", k, v]), "OK\n");
    }
}

// ---------------------------------------------------------------- put

#[tokio::test]
async fn put_prints_ok_and_prev_kv_shows_the_replaced_pair() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    assert_eq!(ok(&s, &["put", "k", "v1"]), "OK\n");
    assert_eq!(ok(&s, &["put", "k", "v2", "--prev-kv"]), "OK\nk\nv1\n");
    assert_eq!(
        ok(&s, &["put", "new", "n", "--prev-kv"]),
        "OK\n",
        "no previous pair for a new key"
    );
    assert_eq!(ok(&s, &["get", "k"]), kvs(&[("k", "v2")]));
    assert_eq!(ok(&s, &["put", "empty", ""]), "OK\n");
    assert_eq!(ok(&s, &["get", "empty"]), "empty\n\n");
}

#[tokio::test]
async fn put_json_carries_header_revision_and_prev_kv() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    assert_eq!(
        ok(&s, &["put", "k", "v1", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 2).await)
    );
    // key "k" = "aw==", value "v1" = "djE=" (base64, as Go's encoding/json prints []byte).
    assert_eq!(
        ok(&s, &["put", "k", "v2", "--prev-kv", "-w", "json"]),
        format!(
            "{{\"header\":{},\"prev_kv\":{}}}\n",
            header(&s, 3).await,
            kv_json("aw==", 2, 2, 1, Some("djE="))
        )
    );
}

#[tokio::test]
async fn put_ignore_value_keeps_the_value_and_needs_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "iv", "orig"]);
    assert_eq!(ok(&s, &["put", "iv", "--ignore-value"]), "OK\n");
    assert_eq!(ok(&s, &["get", "iv", "--print-value-only"]), "orig\n");
    // The write still makes a new version and revision.
    assert_eq!(
        ok(&s, &["get", "iv", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"count\":1}}\n",
            header(&s, 3).await,
            kv_json("aXY=", 2, 3, 2, Some("b3JpZw=="))
        )
    );
    assert_eq!(
        refused(&s, &["put", "missing", "--ignore-value"]),
        "Error: etcdserver: key not found\n"
    );
}

#[tokio::test]
async fn put_ignore_lease_on_a_key_without_lease_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v1"]);
    assert_eq!(ok(&s, &["put", "k", "v2", "--ignore-lease"]), "OK\n");
    assert_eq!(ok(&s, &["get", "k"]), kvs(&[("k", "v2")]));
    assert_eq!(ok(&s, &["put", "k", "--ignore-value", "--ignore-lease"]), "OK\n");
    assert_eq!(ok(&s, &["get", "k", "--print-value-only"]), "v2\n");
    assert_eq!(
        refused(&s, &["put", "missing", "v", "--ignore-lease"]),
        "Error: etcdserver: key not found\n"
    );
    assert_eq!(
        refused(&s, &["put", "k", "v", "--lease=1234abcd", "--ignore-lease"]),
        "Error: etcdserver: lease is provided\n"
    );
}

#[tokio::test]
async fn put_with_unknown_lease_or_empty_key_is_refused_with_etcds_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    assert_eq!(
        refused(&s, &["put", "k", "v", "--lease=1234abcd"]),
        "Error: etcdserver: requested lease not found\n"
    );
    assert_eq!(
        refused(&s, &["put", "", "v"]),
        "Error: etcdserver: key is not provided\n"
    );
    assert_eq!(ok(&s, &["get", "k"]), "", "a refused put writes nothing");
    assert_eq!(
        ok(&s, &["get", "k", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 1).await),
        "and makes no revision"
    );
}

// ---------------------------------------------------------------- get

#[tokio::test]
async fn get_single_key_missing_key_and_print_value_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "a", "1"]);
    ok(&s, &["put", "ab", "2"]);
    assert_eq!(
        ok(&s, &["get", "a"]),
        kvs(&[("a", "1")]),
        "a single key, not a prefix"
    );
    assert_eq!(ok(&s, &["get", "a", "--print-value-only"]), "1\n");
    assert_eq!(ok(&s, &["get", "missing"]), "");
    assert_eq!(
        ok(&s, &["get", "missing", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 3).await)
    );
}

#[tokio::test]
async fn get_prefix_from_key_and_explicit_range() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for k in ["r/b", "r/a", "r/d", "r/c", "r/e", "rz", "q"] {
        ok(&s, &["put", k, &format!("val-{k}")]);
    }
    let pairs = |ks: &[&str]| -> String { ks.iter().map(|k| format!("{k}\nval-{k}\n")).collect() };
    assert_eq!(
        ok(&s, &["get", "r/", "--prefix"]),
        pairs(&["r/a", "r/b", "r/c", "r/d", "r/e"])
    );
    assert_eq!(
        ok(&s, &["get", "r/", "--prefix", "--keys-only"]),
        keys(&["r/a", "r/b", "r/c", "r/d", "r/e"])
    );
    // [r/b, r/d): the end is exclusive.
    assert_eq!(ok(&s, &["get", "r/b", "r/d"]), pairs(&["r/b", "r/c"]));
    assert_eq!(
        ok(&s, &["get", "r/d", "--from-key"]),
        pairs(&["r/d", "r/e", "rz"])
    );
    // An empty prefix and an empty from-key both mean the whole keyspace.
    let all = ["q", "r/a", "r/b", "r/c", "r/d", "r/e", "rz"];
    assert_eq!(ok(&s, &["get", "", "--prefix", "--keys-only"]), keys(&all));
    assert_eq!(ok(&s, &["get", "", "--from-key", "--keys-only"]), keys(&all));
    assert_eq!(ok(&s, &["get", "s", "--from-key"]), "");
}

#[tokio::test]
async fn get_limit_returns_the_first_keys_and_reports_more_and_the_full_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for k in ["b", "a", "d", "c"] {
        ok(&s, &["put", k, &format!("v{k}")]); // b@2 a@3 d@4 c@5
    }
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--limit=2"]),
        kvs(&[("a", "va"), ("b", "vb")])
    );
    assert_eq!(
        ok(&s, &["get", "b", "--from-key", "--keys-only", "--limit", "2"]),
        keys(&["b", "c"])
    );
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--limit=1", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"more\":true,\"count\":4}}\n",
            header(&s, 5).await,
            kv_json("YQ==", 3, 3, 1, Some("dmE="))
        )
    );
    let (member, cluster) = ids(&s);
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--limit=1", "-w", "fields"]),
        format!(
            "\"ClusterID\" : {cluster}\n\"MemberID\" : {member}\n\"Revision\" : 5\n\"RaftTerm\" : {}\n\
             \"Key\" : \"a\"\n\"CreateRevision\" : 3\n\"ModRevision\" : 3\n\"Version\" : 1\n\"Value\" : \"va\"\n\
             \"Lease\" : 0\n\"More\" : true\n\"Count\" : 4\n",
            raft_term(&s).await
        )
    );
    // A limit at or above the number of keys: everything, more=false (omitted), count 4.
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--limit=4", "--keys-only"]),
        keys(&["a", "b", "c", "d"])
    );
    let j: Value =
        serde_json::from_str(&ok(&s, &["get", "", "--prefix", "--limit=4", "-w", "json"])).unwrap();
    assert_eq!((j.get("more"), &j["count"]), (None, &Value::from(4)), "{j}");
}

#[tokio::test]
async fn get_sort_by_every_target_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    put_sort_fixture(&s); // b=2@2, a=3@3, c=1@4, a=4@5 (version 2), d=0@6
    // Ties (VERSION: b, c, d all at 1) come out in key order in both directions: etcd sorts the
    // key-ordered result with Go's sort.Sort, which for small results is an insertion sort.
    let cases: [(&str, &str, [&str; 4]); 10] = [
        ("KEY", "ASCEND", ["a", "b", "c", "d"]),
        ("KEY", "DESCEND", ["d", "c", "b", "a"]),
        ("VERSION", "ASCEND", ["b", "c", "d", "a"]),
        ("VERSION", "DESCEND", ["a", "b", "c", "d"]),
        ("CREATE", "ASCEND", ["b", "a", "c", "d"]),
        ("CREATE", "DESCEND", ["d", "c", "a", "b"]),
        ("MODIFY", "ASCEND", ["b", "c", "a", "d"]),
        ("MODIFY", "DESCEND", ["d", "a", "c", "b"]),
        ("VALUE", "ASCEND", ["d", "c", "b", "a"]),
        ("VALUE", "DESCEND", ["a", "b", "c", "d"]),
    ];
    for (target, order, want) in cases {
        let sort = format!("--sort-by={target}");
        let order_flag = format!("--order={order}");
        assert_eq!(
            ok(&s, &["get", "", "--prefix", "--keys-only", &sort, &order_flag]),
            keys(&want),
            "--sort-by={target} --order={order}"
        );
    }
    // --order alone sorts by key; --sort-by alone sorts ascending.
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--order=DESCEND", "--keys-only"]),
        keys(&["d", "c", "b", "a"])
    );
    assert_eq!(
        ok(
            &s,
            &["get", "", "--prefix", "--sort-by=VALUE", "--print-value-only"]
        ),
        "0\n1\n2\n4\n"
    );
    // Sorting happens before the limit.
    assert_eq!(
        ok(
            &s,
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--limit=2"
            ]
        ),
        kvs(&[("d", "0"), ("a", "4")])
    );
    let j: Value = serde_json::from_str(&ok(
        &s,
        &[
            "get",
            "",
            "--prefix",
            "--sort-by=MODIFY",
            "--limit=2",
            "-w",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (&j["more"], &j["count"]),
        (&Value::from(true), &Value::from(4)),
        "{j}"
    );
}

#[tokio::test]
async fn get_rev_reads_history_and_refuses_future_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    put_sort_fixture(&s); // b=2@2, a=3@3, c=1@4, a=4@5, d=0@6
    ok(&s, &["del", "b"]); // @7
    assert_eq!(ok(&s, &["get", "a", "--rev=3"]), kvs(&[("a", "3")]));
    assert_eq!(ok(&s, &["get", "a", "--rev=2"]), "", "a did not exist yet");
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--rev=4"]),
        kvs(&[("a", "3"), ("b", "2"), ("c", "1")])
    );
    assert_eq!(
        ok(&s, &["get", "b", "--rev=6", "--print-value-only"]),
        "2\n",
        "deleted later, visible before"
    );
    assert_eq!(ok(&s, &["get", "b"]), "");
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--keys-only", "--rev=0"]),
        keys(&["a", "c", "d"]),
        "0 = latest"
    );
    // The header carries the current revision, the kvs the requested one.
    assert_eq!(
        ok(&s, &["get", "a", "--rev=4", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"count\":1}}\n",
            header(&s, 7).await,
            kv_json("YQ==", 3, 3, 1, Some("Mw=="))
        )
    );
    assert_eq!(
        ok(&s, &["get", "a", "--rev=7", "--print-value-only"]),
        "4\n",
        "the current revision itself"
    );
    assert_eq!(
        refused(&s, &["get", "a", "--rev=8"]),
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
}

#[tokio::test]
async fn get_keys_only_prints_keys_and_json_omits_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "a", "1"]);
    ok(&s, &["put", "a", "2"]);
    ok(&s, &["put", "b", "3"]);
    assert_eq!(ok(&s, &["get", "a", "--keys-only"]), "a\n\n");
    assert_eq!(ok(&s, &["get", "", "--prefix", "--keys-only"]), keys(&["a", "b"]));
    assert_eq!(
        ok(&s, &["get", "", "--prefix", "--keys-only", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{},{}],\"count\":2}}\n",
            header(&s, 4).await,
            kv_json("YQ==", 2, 3, 2, None),
            kv_json("Yg==", 4, 4, 1, None)
        )
    );
}

#[tokio::test]
async fn get_json_reports_create_mod_version_and_header_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    put_sort_fixture(&s); // b=2@2, a=3@3, c=1@4, a=4@5, d=0@6
    assert_eq!(
        ok(&s, &["get", "a", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"count\":1}}\n",
            header(&s, 6).await,
            kv_json("YQ==", 3, 5, 2, Some("NA=="))
        )
    );
    // Deleted and re-created: a new generation, version restarts at 1.
    ok(&s, &["del", "a"]); // @7
    ok(&s, &["put", "a", "5"]); // @8
    assert_eq!(
        ok(&s, &["get", "a", "b", "-w", "json"]),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"count\":1}}\n",
            header(&s, 8).await,
            kv_json("YQ==", 8, 8, 1, Some("NQ=="))
        )
    );
}

#[tokio::test]
async fn get_serializable_consistency_reads_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]);
    assert_eq!(ok(&s, &["get", "k", "--consistency=s"]), kvs(&[("k", "v")]));
    assert_eq!(ok(&s, &["get", "k", "--consistency=l"]), kvs(&[("k", "v")]));
    assert_eq!(
        ok(
            &s,
            &["get", "", "--prefix", "--consistency=s", "--print-value-only"]
        ),
        "v\n"
    );
    assert_eq!(ok(&s, &["get", "missing", "--consistency=s"]), "");
}

// ---------------------------------------------------------------- del

#[tokio::test]
async fn del_prints_the_deleted_count_and_prev_kvs() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for k in ["a", "b", "c", "d"] {
        ok(&s, &["put", k, &format!("v{k}")]); // @2..=5
    }
    assert_eq!(ok(&s, &["del", "a"]), "1\n");
    assert_eq!(ok(&s, &["del", "a"]), "0\n", "deleting a missing key");
    assert_eq!(ok(&s, &["del", "b", "--prev-kv"]), "1\nb\nvb\n");
    assert_eq!(ok(&s, &["del", "b", "--prev-kv"]), "0\n");
    assert_eq!(ok(&s, &["get", "", "--prefix", "--keys-only"]), keys(&["c", "d"]));
    // A delete matching nothing makes no revision: a@6, b@7, so the header is at 7.
    assert_eq!(
        ok(&s, &["del", "zz", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 7).await),
        "deleted: 0 is omitted"
    );
    assert_eq!(
        ok(&s, &["del", "c", "--prev-kv", "-w", "json"]),
        format!(
            "{{\"header\":{},\"deleted\":1,\"prev_kvs\":[{}]}}\n",
            header(&s, 8).await,
            kv_json("Yw==", 4, 4, 1, Some("dmM="))
        )
    );
}

#[tokio::test]
async fn del_prefix_from_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for k in ["p/a", "p/b", "p/c", "pz", "x", "y", "z", "zz"] {
        ok(&s, &["put", k, &format!("v-{k}")]);
    }
    assert_eq!(
        ok(&s, &["del", "p/", "--prefix", "--prev-kv"]),
        "3\np/a\nv-p/a\np/b\nv-p/b\np/c\nv-p/c\n"
    );
    assert_eq!(ok(&s, &["del", "x", "z"]), "2\n", "[x, z) deletes x and y");
    assert_eq!(
        ok(&s, &["del", "z", "--from-key", "--prev-kv"]),
        "2\nz\nv-z\nzz\nv-zz\n"
    );
    assert_eq!(ok(&s, &["get", "", "--prefix"]), kvs(&[("pz", "v-pz")]));
    assert_eq!(ok(&s, &["del", "nothing/", "--prefix"]), "0\n");
    assert_eq!(
        ok(&s, &["del", "", "--prefix"]),
        "1\n",
        "an empty prefix deletes everything"
    );
    assert_eq!(ok(&s, &["get", "", "--from-key"]), "");
}

// ---------------------------------------------------------------- txn

#[tokio::test]
async fn txn_value_compare_runs_the_success_branch() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]); // @2
    let out = txn_ok(&s, "value(\"k\") = \"v\"\n\nput res ok\nget k\n\nput res bad\n\n");
    assert_eq!(out, "SUCCESS\n\nOK\n\nk\nv\n");
    assert_eq!(ok(&s, &["get", "res", "--print-value-only"]), "ok\n");
    let out = txn_ok(&s, "mod(\"k\") = \"2\"\n\nget k\n\n\n");
    assert_eq!(out, "SUCCESS\n\nk\nv\n");
}

#[tokio::test]
async fn txn_failed_compare_runs_the_failure_branch() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]); // @2
    let out = txn_ok(&s, "mod(\"k\") = \"0\"\n\nput r ok\n\nput r bad\nget r\n\n");
    assert_eq!(out, "FAILURE\n\nOK\n\nr\nbad\n");
    let out = txn_ok(&s, "value(\"k\") = \"nope\"\n\nput r ok\n\n\n");
    assert_eq!(
        out, "FAILURE\n",
        "an empty failure branch prints only the verdict"
    );
    assert_eq!(ok(&s, &["get", "r", "--print-value-only"]), "bad\n");
    // A value compare on a missing key is false whatever the operator.
    let out = txn_ok(&s, "value(\"missing\") != \"x\"\n\n\nget k\n\n");
    assert_eq!(out, "FAILURE\n\nk\nv\n");
}

#[tokio::test]
async fn txn_version_create_and_mod_compares_then_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]); // @2
    let out = txn_ok(
        &s,
        "value(\"k\") = \"v\"\nversion(\"k\") = \"1\"\ncreate(\"k\") = \"2\"\n\ndel k\nget k\n\n\n",
    );
    assert_eq!(
        out, "SUCCESS\n\n1\n\n",
        "del prints its count; get of the deleted key prints nothing"
    );
    // Every compare on the deleted key sees version/create/mod 0.
    let out = txn_ok(&s, "version(\"k\") > \"0\"\n\n\nput k again\n\n");
    assert_eq!(out, "FAILURE\n\nOK\n");
    let out = txn_ok(&s, "mod(\"k\") > \"3\"\n\nget k\n\n\n");
    assert_eq!(out, "SUCCESS\n\nk\nagain\n", "k was re-created at revision 4");
}

#[tokio::test]
async fn txn_create_if_absent_succeeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let script = "create(\"new\") = \"0\"\n\nput new first\n\n\n";
    assert_eq!(txn_ok(&s, script), "SUCCESS\n\nOK\n");
    assert_eq!(txn_ok(&s, script), "FAILURE\n");
    assert_eq!(ok(&s, &["get", "new", "--print-value-only"]), "first\n");
}

#[tokio::test]
async fn txn_short_compare_names_operators_and_prefix_ops() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for k in ["a", "b", "c"] {
        ok(&s, &["put", &format!("k/{k}"), &format!("v{k}")]); // @2..=4
    }
    let out = txn_ok(
        &s,
        "version(\"k/a\") = \"1\"\nval(\"k/b\") != \"x\"\nc(\"k/c\") < \"5\"\nm(\"k/a\") > \"1\"\n\n\
         get --prefix k/\nput k/d vd --prev-kv\ndel --prefix --prev-kv k/a\n\n\n",
    );
    // etcdctl's txn printer shows only OK for a put, even with --prev-kv.
    assert_eq!(out, "SUCCESS\n\nk/a\nva\nk/b\nvb\nk/c\nvc\n\nOK\n\n1\nk/a\nva\n");
    assert_eq!(
        ok(&s, &["get", "k/", "--prefix", "--keys-only"]),
        keys(&["k/b", "k/c", "k/d"])
    );
}

#[tokio::test]
async fn txn_json_output_carries_the_nested_response_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]); // @2
    let out = txn(&s, "value(\"k\") = \"v\"\n\nput x 1\n\n\n", &["-w", "json"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    // Nested responses carry a header with only the revision (etcd fills in the rest only on
    // the outer header).
    assert_eq!(
        out.stdout(),
        format!(
            "{{\"header\":{},\"succeeded\":true,\
             \"responses\":[{{\"Response\":{{\"ResponsePut\":{{\"header\":{{\"revision\":3}}}}}}}}]}}\n",
            header(&s, 3).await
        )
    );
}

#[tokio::test]
async fn txn_with_a_duplicate_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for script in [
        "\nput x 1\nput x 2\n\n\n",
        "\nput x 1\ndel x\n\n\n",
        "\ndel --prefix a\nput ab 1\n\n\n",
    ] {
        let out = txn(&s, script, &[]);
        assert_eq!(
            (out.code, out.stdout().as_str()),
            (Some(1), ""),
            "{script:?}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr_no_warn(),
            "Error: etcdserver: duplicate key given in txn request\n",
            "{script:?}"
        );
    }
    assert_eq!(
        ok(&s, &["get", "x", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 1).await),
        "nothing was applied"
    );
}

// ---------------------------------------------------------------- compaction

#[tokio::test]
async fn compaction_hides_older_revisions_and_refuses_to_compact_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for v in 1..=4 {
        ok(&s, &["put", "h", &format!("v{v}")]); // @2..=5
    }
    assert_eq!(ok(&s, &["compaction", "3"]), "compacted revision 3\n");
    assert_eq!(
        refused(&s, &["get", "h", "--rev=2"]),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        ok(&s, &["get", "h", "--rev=3"]),
        kvs(&[("h", "v2")]),
        "reading at the compaction revision"
    );
    assert_eq!(ok(&s, &["get", "h"]), kvs(&[("h", "v4")]));
    assert_eq!(
        refused(&s, &["compaction", "3"]),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        refused(&s, &["compaction", "2"]),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        refused(&s, &["compaction", "99"]),
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
}

#[tokio::test]
async fn compaction_physical_waits_and_history_below_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for v in 1..=4 {
        ok(&s, &["put", "h", &format!("v{v}")]); // @2..=5
    }
    ok(&s, &["del", "h"]); // @6
    assert_eq!(
        ok(&s, &["compaction", "5", "--physical"]),
        "compacted revision 5\n"
    );
    for rev in ["2", "4"] {
        assert_eq!(
            refused(&s, &["get", "h", &format!("--rev={rev}")]),
            "Error: etcdserver: mvcc: required revision has been compacted\n"
        );
    }
    assert_eq!(ok(&s, &["get", "h", "--rev=5"]), kvs(&[("h", "v4")]));
    assert_eq!(ok(&s, &["get", "h"]), "");
    assert_eq!(
        ok(&s, &["compaction", "6", "--physical"]),
        "compacted revision 6\n"
    );
    assert_eq!(
        ok(&s, &["get", "h", "--rev=6"]),
        "",
        "the tombstone compacted away"
    );
    assert_eq!(
        refused(&s, &["compaction", "6", "--physical"]),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    // Writes continue at the next revision.
    assert_eq!(
        ok(&s, &["put", "h", "again", "-w", "json"]),
        format!("{{\"header\":{}}}\n", header(&s, 7).await)
    );
}

// ---------------------------------------------------------------- binary keys

#[tokio::test]
async fn keys_ending_in_0xff_round_trip_and_prefix_ranges_skip_trailing_ff() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    // Arguments as raw bytes, as a shell passes $'p\xff'.
    let run_bytes = |args: &[&[u8]]| -> Out {
        let args: Vec<&OsStr> = args.iter().map(|a| OsStr::from_bytes(a)).collect();
        let out = run_at(&s.endpoint(), &args, None);
        assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{args:?}");
        out
    };
    let puts: [(&[u8], &[u8]); 6] = [
        (b"p\xff", b"v1"),
        (b"p\xff\xff", b"v2"),
        (b"p\xff\x01", b"v3"),
        (b"q", b"v4"),
        (b"\xff", b"v5"),
        (b"\xff\xff", b"v6"),
    ];
    for (k, v) in puts {
        assert_eq!(run_bytes(&[b"put", k, v]).stdout(), "OK\n");
    }
    // Prefix "p\xff" ends at "q": the trailing 0xff is dropped and 'p' incremented.
    assert_eq!(
        run_bytes(&[b"get", b"p\xff", b"--prefix", b"--hex"]).stdout(),
        "\\x70\\xff\n\\x76\\x31\n\\x70\\xff\\x01\n\\x76\\x33\n\\x70\\xff\\xff\n\\x76\\x32\n"
    );
    // Without --hex etcdctl writes the raw bytes.
    assert_eq!(
        run_bytes(&[b"get", b"p\xff", b"--prefix", b"--keys-only"]).stdout,
        b"p\xff\n\np\xff\x01\n\np\xff\xff\n\n"
    );
    // A prefix of only 0xff bytes has no successor: it means every key from it on.
    assert_eq!(
        run_bytes(&[b"get", b"\xff", b"--prefix", b"--keys-only", b"--hex"]).stdout(),
        "\\xff\n\n\\xff\\xff\n\n"
    );
    assert_eq!(
        run_bytes(&[b"get", b"p\xff", b"-w", b"json"]).stdout(),
        format!(
            "{{\"header\":{},\"kvs\":[{}],\"count\":1}}\n",
            header(&s, 7).await,
            kv_json("cP8=", 2, 2, 1, Some("djE="))
        )
    );
    assert_eq!(
        run_bytes(&[b"del", b"p\xff", b"--prefix", b"--prev-kv", b"--hex"]).stdout(),
        "3\n\\x70\\xff\n\\x76\\x31\n\\x70\\xff\\x01\n\\x76\\x33\n\\x70\\xff\\xff\n\\x76\\x32\n"
    );
    assert_eq!(
        run_bytes(&[b"get", b"", b"--from-key", b"--keys-only", b"--hex"]).stdout(),
        "\\x71\n\n\\xff\n\n\\xff\\xff\n\n"
    );
}

// ---------------------------------------------------------------- endpoint, member

#[tokio::test]
async fn endpoint_health_reports_a_committed_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    // etcdctl 3.4 prints the health line on stderr.
    let out = run(&s, &["endpoint", "health"]);
    assert_eq!(
        (out.code, out.stdout()),
        (Some(0), String::new()),
        "{}",
        out.stderr
    );
    let prefix = format!(
        "{} is healthy: successfully committed proposal: took = ",
        s.endpoint()
    );
    let took = out
        .stderr
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix('\n'));
    let took = took.unwrap_or_else(|| panic!("unexpected health output {:?}", out.stderr));
    assert!(is_go_duration(took), "took = {took:?}");
    let j: Value = serde_json::from_str(&ok(&s, &["endpoint", "health", "-w", "json"])).unwrap();
    let j = &j.as_array().unwrap()[0];
    assert_eq!(
        (&j["endpoint"], &j["health"]),
        (&Value::from(s.endpoint()), &Value::from(true)),
        "{j}"
    );
    assert!(is_go_duration(j["took"].as_str().unwrap()), "{j}");
}

/// A Go `time.Duration` string such as `1.885831ms` or `950µs`.
fn is_go_duration(t: &str) -> bool {
    let unit_at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(unit_at);
    !num.is_empty() && num.parse::<f64>().is_ok() && ["ns", "µs", "ms", "s"].contains(&unit)
}

#[tokio::test]
async fn endpoint_status_json_reports_ids_leader_indexes_and_a_recent_version() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]); // @2
    let (member, cluster) = ids(&s);
    let st = status_json(&bare_endpoint(&s));
    assert_eq!(st["Endpoint"], Value::from(bare_endpoint(&s)), "{st}");
    let st = &st["Status"];
    let h = &st["header"];
    assert_eq!(
        (&h["cluster_id"], &h["member_id"], &h["revision"]),
        (&Value::from(cluster), &Value::from(member), &Value::from(2)),
        "{st}"
    );
    assert_eq!(h["raft_term"], st["raftTerm"], "{st}");
    assert_eq!(st["leader"], Value::from(member), "the only member leads: {st}");
    let n = |f: &str| st[f].as_u64().unwrap_or_else(|| panic!("{f} missing: {st}"));
    assert!(
        n("dbSize") > 0 && n("dbSizeInUse") > 0 && n("dbSizeInUse") <= n("dbSize"),
        "{st}"
    );
    assert!(n("raftIndex") > 0 && n("raftTerm") > 0, "{st}");
    assert_eq!(
        n("raftAppliedIndex"),
        n("raftIndex"),
        "a quiet member has applied all it committed: {st}"
    );
    // Exactly the fields etcd 3.4 sets (errors empty and isLearner false are omitted).
    let mut fields: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "dbSize",
            "dbSizeInUse",
            "header",
            "leader",
            "raftAppliedIndex",
            "raftIndex",
            "raftTerm",
            "version"
        ],
        "{st}"
    );
    let version = st["version"].as_str().unwrap();
    let parsed = semver(version).unwrap_or_else(|| panic!("version {version:?} is not semver"));
    if s.kind == Kind::Mainstay {
        // kube-apiserver uses watch progress requests only from etcd 3.5.13 on.
        assert!(parsed >= (3, 5, 13), "version {version} < 3.5.13");
    } // the real etcd here is 3.4.23.
}

/// `MAJOR.MINOR.PATCH` as numbers.
fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let t = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(t)
}

#[tokio::test]
async fn endpoint_status_table_matches_the_json_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    ok(&s, &["put", "k", "v"]);
    let (member, _) = ids(&s);
    let ep = bare_endpoint(&s);
    let before = status_json(&ep);
    let out = run_at(&ep, &["endpoint", "status", "-w", "table"], None);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    let table = out.stdout();
    let after = status_json(&ep);
    let st = &before["Status"];
    let n = |f: &str| st[f].as_u64().unwrap().to_string();
    // The database may grow in the background between the calls: accept either size.
    let sizes: Vec<String> = [&before, &after]
        .iter()
        .map(|j| humanize_bytes(j["Status"]["dbSize"].as_u64().unwrap()))
        .collect();
    let size = sizes
        .iter()
        .find(|sz| table.contains(&format!(" {sz} |")))
        .unwrap_or(&sizes[0])
        .clone();
    let want = render_table(
        &[
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS",
        ],
        &[vec![
            ep.clone(),
            format!("{member:x}"),
            st["version"].as_str().unwrap().to_string(),
            size,
            "true".into(),
            "false".into(),
            n("raftTerm"),
            n("raftIndex"),
            n("raftAppliedIndex"),
            String::new(),
        ]],
    );
    assert_eq!(table, want, "\n{table}\n{want}");
}

/// etcdctl 3.4 asks each endpoint for its status over a connection of its own, dialled with
/// the endpoint exactly as given, so the HTTP/2 `:authority` it sends is the whole URL
/// (`http://127.0.0.1:PORT`); etcd (Go's HTTP/2 server) accepts that. The same holds for
/// `endpoint hashkv`, `defrag`, `snapshot save` and `move-leader`.
#[tokio::test]
async fn endpoint_status_accepts_an_http_url_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let st = status_json(&s.endpoint());
    assert_eq!(st["Endpoint"], Value::from(s.endpoint()), "{st}");
    let out = run(&s, &["endpoint", "status"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    let (member, _) = ids(&s);
    let prefix = format!("{}, {member:x}, ", s.endpoint());
    assert!(out.stdout().starts_with(&prefix), "{:?}", out.stdout());
}

/// go-humanize `Bytes` (SI units), which etcdctl uses for DB SIZE.
fn humanize_bytes(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let x = n as f64;
    let e = x.log(1000.0).floor();
    let val = (x / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = units[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

/// An olekukonko/tablewriter table as etcdctl renders it: headers centred, cells right-aligned.
fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = line.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - h.len();
        out += &format!("| {}{}{} ", " ".repeat(gap / 2), h, " ".repeat(gap - gap / 2));
    }
    out += "|\n";
    out += &line;
    for row in rows {
        for (c, w) in row.iter().zip(&widths) {
            out += &format!("| {c:>w$} ");
        }
        out += "|\n";
    }
    out + &line
}

#[tokio::test]
async fn member_list_shows_the_single_started_member() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (member, cluster) = ids(&s);
    let peer = format!("http://127.0.0.1:{}", s.peer_port);
    let row = vec![
        format!("{member:x}"),
        "started".into(),
        "n1".into(),
        peer.clone(),
        s.endpoint(),
        "false".into(),
    ];
    assert_eq!(
        ok(&s, &["member", "list", "-w", "table"]),
        render_table(
            &["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
            std::slice::from_ref(&row)
        )
    );
    assert_eq!(ok(&s, &["member", "list"]), format!("{}\n", row.join(", ")));
    // MemberList's header has no revision in etcd (ClusterServer.header sets only the IDs and
    // the term).
    assert_eq!(
        ok(&s, &["member", "list", "-w", "json"]),
        format!(
            "{{\"header\":{{\"cluster_id\":{cluster},\"member_id\":{member},\"raft_term\":{}}},\
             \"members\":[{{\"ID\":{member},\"name\":\"n1\",\"peerURLs\":[\"{peer}\"],\"clientURLs\":[\"{}\"]}}]}}\n",
            raft_term(&s).await,
            s.endpoint()
        )
    );
}
