//! The grpc-gateway JSON API (`POST /v3/...`, etcd-compat.md §1.1): every path, grpc-gateway
//! v1's JSON conventions and error shapes (checked against the real etcd 3.4 with curl; see the
//! differential test), ndjson streams that end with the client, and the PyPI client `etcd3gw`'s
//! own functional tests.
//!
//! Requests go over a raw HTTP/1.1 connection so the tests see exactly what curl would.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Kind, Pair, Server};

/// One HTTP response: status, headers (lower-case names) and the de-chunked body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    headers: Headers,
    pub(crate) body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Response headers as (lower-case name, value).
type Headers = Vec<(String, String)>;

/// Splits a raw response into (status, headers, rest of the bytes).
fn split_head(raw: &[u8]) -> Option<(u16, Headers, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, raw[end + 4..].to_vec()))
}

/// Moves complete chunks of a chunked body from `raw` to `out`; true once the last chunk came.
fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        if size == 0 {
            return true;
        }
        if raw.len() < line_end + 2 + size + 2 {
            return false;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw.drain(..line_end + 2 + size + 2);
    }
}

fn request_text(port: u16, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// Sends one request (no Content-Type unless given, as curl `-d` with etcd's e2e tests would
/// not matter) and reads the whole response.
pub(crate) async fn send(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request_text(port, method, path, body, headers).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no complete response in 20 s"))
        .unwrap();
    let (status, headers, mut rest) =
        split_head(&raw).unwrap_or_else(|| panic!("not HTTP: {}", String::from_utf8_lossy(&raw)));
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        dechunk(&mut rest, &mut out);
        out
    } else {
        rest
    };
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

async fn post(port: u16, path: &str, body: &str) -> HttpResponse {
    send(port, "POST", path, body, &[]).await
}

/// A streamed (chunked, newline-delimited JSON) response being read line by line.
struct NdjsonStream {
    socket: TcpStream,
    status: u16,
    raw: Vec<u8>,
    body: Vec<u8>,
    ended: bool,
}

impl NdjsonStream {
    async fn open(port: u16, path: &str, body: &str) -> NdjsonStream {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        socket
            .write_all(request_text(port, "POST", path, body, &[]).as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((status, _, rest)) = split_head(&raw) {
                let mut s = NdjsonStream {
                    socket,
                    status,
                    raw: rest,
                    body: Vec::new(),
                    ended: false,
                };
                s.ended = dechunk(&mut s.raw, &mut s.body);
                return s;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), socket.read(&mut buf))
                .await
                .expect("no response head in 10 s")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        }
    }

    /// The next line as JSON, or None when the stream ended; panics after `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            if self.ended {
                if self.body.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut self.body);
                return Some(serde_json::from_slice(&rest).unwrap());
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), self.socket.read(&mut buf))
                .await
                .expect("no stream line in time")
                .unwrap();
            if n == 0 {
                self.ended = true;
                continue;
            }
            self.raw.extend_from_slice(&buf[..n]);
            self.ended = dechunk(&mut self.raw, &mut self.body);
        }
    }
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub(crate) fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The open watch streams, from `etcd_debugging_mvcc_watch_stream_total`.
async fn watch_streams(port: u16) -> i64 {
    let text = crate::harness::http_get(port, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watch_stream_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("watch stream gauge")
}

async fn wait_for_watch_streams(port: u16, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = watch_streams(port).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{n} watch streams open, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kv_paths_use_grpc_gateway_json_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let p = s.client_port;
    // No Content-Type: accepted (etcd's e2e tests post with curl -d).
    let put = post(p, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#).await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(put.header("grpc-metadata-content-type"), Some("application/grpc"));
    let header = &put.json()["header"];
    // uint64/int64 as strings; raft_term present, etc.
    for field in ["cluster_id", "member_id", "revision", "raft_term"] {
        assert!(header[field].is_string(), "{field} in {header}");
    }
    assert_eq!(header["revision"], "2");

    // Proto field names on output, defaults omitted (no "more", no "lease"); camelCase accepted on
    // input (keysOnly) next to snake_case, unknown fields ignored.
    let range = post(p, "/v3/kv/range", r#"{"key":"Zm9v"}"#).await.json();
    assert_eq!(
        range["kvs"],
        json!([{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}])
    );
    assert_eq!(range["count"], "1");
    assert!(range.get("more").is_none());
    for body in [
        r#"{"key":"Zm9v","keysOnly":true}"#,
        r#"{"key":"Zm9v","keys_only":true,"bogus":1}"#,
    ] {
        let r = post(p, "/v3/kv/range", body).await.json();
        assert!(r["kvs"][0].get("value").is_none(), "{body}: {r}");
    }
    // /v3beta is rewritten to /v3 (etcd embed/serve.go accessController).
    let beta = post(p, "/v3beta/kv/range", r#"{"key":"Zm9v"}"#).await.json();
    assert_eq!(beta["kvs"], range["kvs"]);

    // Txn with enum names, camelCase oneof names and numbers given as strings.
    let txn = post(
        p,
        "/v3/kv/txn",
        r#"{"compare":[{"result":"EQUAL","target":"CREATE","key":"Zm9v","createRevision":"0"}],
            "success":[{"requestPut":{"key":"Zm9v","value":"YmF6"}}],
            "failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    )
    .await
    .json();
    assert!(txn.get("succeeded").is_none(), "{txn}");
    assert_eq!(txn["responses"][0]["response_range"]["count"], "1");
    // Enum numbers are accepted too (Go's json.Marshal of pb.Compare in etcd's e2e test).
    let txn = post(
        p,
        "/v3/kv/txn",
        r#"{"compare":[{"result":0,"target":0,"key":"Zm9v","version":1}],
            "success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}]}"#,
    )
    .await
    .json();
    assert_eq!(txn["succeeded"], true, "{txn}");
    assert_eq!(txn["responses"][0]["response_put"]["header"]["revision"], "3");

    let del = post(p, "/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#)
        .await
        .json();
    assert_eq!(del["deleted"], "1");
    assert_eq!(del["prev_kvs"][0]["value"], "YmF6");
    let compact = post(p, "/v3/kv/compaction", r#"{"revision":"3"}"#).await;
    assert_eq!(compact.status, 200, "{compact:?}");
}

#[tokio::test]
async fn errors_have_grpc_gateway_shape_and_http_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let p = s.client_port;
    // Byte for byte as etcd 3.4 answers (curl against /usr/bin/etcd).
    let cases = [
        (
            "/v3/kv/range",
            "",
            400,
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#,
        ),
        (
            "/v3/kv/compaction",
            r#"{"revision":200}"#,
            400,
            r#"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#,
        ),
        (
            "/v3/kv/lease/revoke",
            r#"{"ID":1234}"#,
            404,
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#,
        ),
        (
            "/v3/maintenance/transfer-leadership",
            r#"{"targetID":5}"#,
            412,
            r#"{"error":"etcdserver: bad leader transferee","message":"etcdserver: bad leader transferee","code":9}"#,
        ),
        // etcd's e2e v3_curl_test.go: TestV3CurlProclaimMissiongLeaderKey / ResignMissiongLeaderKey.
        (
            "/v3/election/proclaim",
            r#"{"value":"djI="}"#,
            500,
            r#"{"error":"\"leader\" field must be provided","message":"\"leader\" field must be provided","code":2}"#,
        ),
        (
            "/v3/election/resign",
            "{}",
            500,
            r#"{"error":"\"leader\" field must be provided","message":"\"leader\" field must be provided","code":2}"#,
        ),
        // e2e testV3CurlTxn "was crashing etcd server": unknown fields dropped, empty RequestOp.
        (
            "/v3/kv/txn",
            r#"{"compare":[{"result":0,"target":1,"key":"Zm9v","TargetUnion":null}],"success":[{"Request":{"RequestPut":{"key":"Zm9v","value":"YmFy"}}}]}"#,
            400,
            r#"{"error":"etcdserver: key not found","message":"etcdserver: key not found","code":3}"#,
        ),
    ];
    for (path, body, status, want) in cases {
        let r = post(p, path, body).await;
        assert_eq!((r.status, r.body.as_str()), (status, want), "{path} {body}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    // Malformed JSON and bad base64: InvalidArgument / 400 (serde's text, not Go's).
    for body in [
        "xx",
        r#"{"key":"!!"}"#,
        r#"{"key":"#,
        r#"{"key":"Zm9v","sort_order":"NOPE"}"#,
    ] {
        let r = post(p, "/v3/kv/range", body).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["code"], 3, "{body}");
    }
    // The first watch message decoded badly: grpc-gateway v1 answers Unknown / 500.
    let r = post(p, "/v3/watch", r#"{"create_request":{"key":"!!"}}"#).await;
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!(2)), "{r:?}");

    // Over the gRPC receive limit (1.5 MiB + 512 KiB): grpc-go's text, ResourceExhausted / 429.
    let big = format!(r#"{{"key":"Zm9v","value":"{}"}}"#, b64(&vec![7u8; 2_200_000]));
    let r = post(p, "/v3/kv/put", &big).await;
    assert_eq!(r.status, 429, "{}", &r.body[..r.body.len().min(200)]);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("grpc: received message larger than max ("),
        "{}",
        r.body
    );

    // Unknown paths and other methods: grpc-gateway's plain-text answers.
    for path in ["/v3/nope", "/v3/kv/range/", "/v3/lock", "/v3/watch/x", "/v3/"] {
        let r = post(p, path, "{}").await;
        assert_eq!((r.status, r.body.as_str()), (404, "Not Found\n"), "{path}");
    }
    let r = send(p, "GET", "/v3/kv/range", "", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (405, "Method Not Allowed\n"));
}

/// `--enable-grpc-gateway=false` (etcd embed: no `/v3/` handler) leaves no JSON API behind.
#[tokio::test]
async fn a_disabled_gateway_serves_no_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(Kind::Mainstay, dir.path(), &["--enable-grpc-gateway=false"]).await;
    let r = post(s.client_port, "/v3/kv/range", r#"{"key":"Zm9v"}"#).await;
    assert_ne!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert!(!r.body.contains("header"), "{r:?}");
}

#[tokio::test]
async fn lease_paths_and_their_kv_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let p = s.client_port;
    // etcd e2e v3_curl_lease_test.go: ID and TTL are accepted as numbers or strings.
    let grant = post(p, "/v3/lease/grant", r#"{"TTL":30,"ID":"1234"}"#)
        .await
        .json();
    assert_eq!(
        (grant["ID"].clone(), grant["TTL"].clone()),
        (json!("1234"), json!("30"))
    );
    let again = post(p, "/v3/lease/grant", r#"{"TTL":"30","ID":1234}"#).await;
    assert_eq!(
        (again.status, again.json()["message"].clone()),
        (412, json!("etcdserver: lease already exists"))
    );
    let put = post(p, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy","lease":"1234"}"#).await;
    assert_eq!(put.status, 200);
    for path in ["/v3/lease/timetolive", "/v3/kv/lease/timetolive"] {
        let ttl = post(p, path, r#"{"ID":1234,"keys":true}"#).await.json();
        assert_eq!(ttl["grantedTTL"], "30", "{path}");
        assert_eq!(ttl["keys"], json!(["Zm9v"]), "{path}");
    }
    for path in ["/v3/lease/leases", "/v3/kv/lease/leases"] {
        let leases = post(p, path, "{}").await.json();
        assert_eq!(leases["leases"], json!([{"ID":"1234"}]), "{path}");
    }
    // Keep-alive is a stream: one result per request object, then the stream ends.
    let ka = post(p, "/v3/lease/keepalive", r#"{"ID":1234} {"ID":"99"}"#).await;
    assert_eq!(ka.status, 200);
    let lines: Vec<Value> = ka
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", ka.body);
    assert_eq!(lines[0]["result"]["TTL"], "30");
    // An unknown lease: TTL 0, omitted as a default.
    assert_eq!(lines[1]["result"]["ID"], "99");
    assert!(lines[1]["result"].get("TTL").is_none());
    let revoke = post(p, "/v3/lease/revoke", r#"{"ID":1234}"#).await;
    assert_eq!(revoke.status, 200);
    let revoke = post(p, "/v3/kv/lease/revoke", r#"{"ID":1234}"#).await;
    assert_eq!(revoke.status, 404);
    let gone = post(p, "/v3/kv/range", r#"{"key":"Zm9v"}"#).await.json();
    assert!(gone.get("kvs").is_none(), "{gone}");
}

#[tokio::test]
async fn watch_streams_ndjson_results_and_ends_when_the_client_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let p = s.client_port;
    post(p, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#).await;
    let before = watch_streams(p).await;
    // etcd e2e testV3CurlWatch: a create request from revision 1 replays the first put.
    let mut w = NdjsonStream::open(
        p,
        "/v3/watch",
        r#"{"create_request":{"key":"Zm9v","start_revision":1}}"#,
    )
    .await;
    assert_eq!(w.status, 200);
    let created = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(created["result"]["created"], true, "{created}");
    let replay = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(replay["result"]["events"][0]["kv"]["value"], "YmFy", "{replay}");
    // The request body has ended, yet the watch goes on (etcd keeps a half-closed watch).
    post(p, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmF6"}"#).await;
    let live = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live["result"]["events"][0]["kv"]["value"], "YmF6", "{live}");
    assert_eq!(live["result"]["events"][0]["kv"]["mod_revision"], "3");
    assert_eq!(watch_streams(p).await, before + 1);
    drop(w);
    wait_for_watch_streams(p, before).await;

    // Several requests in one body: each JSON value is one WatchRequest.
    let mut w = NdjsonStream::open(
        p,
        "/v3/watch",
        r#"{"create_request":{"key":"eA=="}} {"create_request":{"key":"eQ==","watch_id":"7"}}"#,
    )
    .await;
    let first = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first["result"]["created"], true, "{first}");
    let second = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(second["result"]["created"], true, "{second}");
    assert_eq!(second["result"]["watch_id"], "7", "{second}");
    drop(w);
    // An empty body opens a stream that waits for nothing; leaving still ends it.
    let mut idle = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    idle.write_all(request_text(p, "POST", "/v3/watch", "", &[]).as_bytes())
        .await
        .unwrap();
    wait_for_watch_streams(p, before + 1).await;
    drop(idle);
    wait_for_watch_streams(p, before).await;
}

#[tokio::test]
async fn cluster_maintenance_lock_and_election_paths() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let p = s.client_port;
    let members = post(p, "/v3/cluster/member/list", "{}").await.json();
    let m = &members["members"][0];
    assert!(
        m["ID"].is_string() && m["peerURLs"].is_array() && m["clientURLs"].is_array(),
        "{m}"
    );
    let status = post(p, "/v3/maintenance/status", "{}").await.json();
    for field in [
        "version",
        "dbSize",
        "leader",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
    ] {
        assert!(status[field].is_string(), "{field} in {status}");
    }
    assert_eq!(post(p, "/v3/maintenance/alarm", "{}").await.status, 200);
    assert_eq!(post(p, "/v3/maintenance/defragment", "{}").await.status, 200);
    // 3.4: /v3/maintenance/hash is Hash (registered before HashKV on the same path); uint32 is
    // a JSON number.
    let hash = post(p, "/v3/maintenance/hash", "{}").await.json();
    assert!(
        hash["hash"].is_number() && hash.get("compact_revision").is_none(),
        "{hash}"
    );
    let hashkv = post(p, "/v3/maintenance/hashkv", "{}").await.json();
    assert!(hashkv["hash_revision"].is_string(), "{hashkv}");
    // Snapshot streams the database image as ndjson chunks, the last one carrying the 32-byte
    // SHA-256 trailer (44 base64 characters), as etcd's gateway streams SnapshotResponse.
    let snap = post(p, "/v3/maintenance/snapshot", "{}").await;
    assert_eq!(snap.status, 200);
    let blobs: Vec<String> = snap
        .body
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["result"]["blob"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(blobs.len() >= 2, "{} chunks", blobs.len());
    assert_eq!(blobs.last().unwrap().len(), 44, "SHA-256 trailer chunk");

    let lease = post(p, "/v3/lease/grant", r#"{"TTL":60,"ID":77}"#).await.json();
    assert_eq!(lease["ID"], "77");
    let lock = post(
        p,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":77}}"#, b64(b"lock")),
    )
    .await;
    assert_eq!(lock.status, 200, "{lock:?}");
    let key = lock.json()["key"].as_str().unwrap().to_string();
    assert_eq!(key, b64(b"lock/4d"));
    let unlock = post(p, "/v3/lock/unlock", &format!(r#"{{"key":"{key}"}}"#)).await;
    assert_eq!(unlock.status, 200);

    // etcd e2e testV3CurlCampaign: campaign, then proclaim with the returned leader key.
    let campaign = post(
        p,
        "/v3/election/campaign",
        &format!(
            r#"{{"name":"{}","lease":77,"value":"{}"}}"#,
            b64(b"e"),
            b64(b"v1")
        ),
    )
    .await
    .json();
    let leader = campaign["leader"].clone();
    assert_eq!(leader["name"], b64(b"e"), "{campaign}");
    assert_eq!(leader["lease"], "77");
    let current = post(
        p,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64(b"e")),
    )
    .await
    .json();
    assert_eq!(current["kv"]["value"], b64(b"v1"));
    let proclaim = post(
        p,
        "/v3/election/proclaim",
        &json!({"leader": leader, "value": b64(b"v2")}).to_string(),
    )
    .await;
    assert!(proclaim.body.contains(r#""revision":"#), "{proclaim:?}");
    let mut observe = NdjsonStream::open(
        p,
        "/v3/election/observe",
        &format!(r#"{{"name":"{}"}}"#, b64(b"e")),
    )
    .await;
    let seen = observe.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(seen["result"]["kv"]["value"], b64(b"v2"), "{seen}");
    let resign = post(p, "/v3/election/resign", &json!({ "leader": leader }).to_string()).await;
    assert_eq!(resign.status, 200, "{resign:?}");
}

/// Drops what legitimately differs between two servers: member and cluster IDs, raft terms,
/// and the request's own lease IDs never appear; revisions stay.
fn normalize(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for id in ["cluster_id", "member_id", "raft_term"] {
                    map.remove(id);
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The same JSON requests sent to the real etcd 3.4 and to Mainstay give the same status and the
/// same normalized bodies (revisions included). Skipped requests are where 3.5+ (which Mainstay
/// follows) differs from 3.4: Status fields, Alarm/Defragment headers, `hash_revision`.
#[tokio::test]
async fn gateway_answers_match_etcd_3_4() {
    let pair = Pair::start().await;
    let foo = b64(b"foo");
    let requests: Vec<(&str, String)> = vec![
        ("/v3/kv/put", json!({"key": foo, "value": b64(b"bar")}).to_string()),
        ("/v3/kv/put", json!({"key": b64(b"foo2"), "value": b64(b"x"), "prev_kv": true}).to_string()),
        ("/v3/kv/put", json!({"key": foo, "value": b64(b"baz"), "prev_kv": true}).to_string()),
        ("/v3/kv/range", json!({"key": foo}).to_string()),
        (
            "/v3/kv/range",
            json!({"key": foo, "range_end": b64(b"fop"), "sort_order": "DESCEND", "sort_target": "KEY"})
                .to_string(),
        ),
        ("/v3/kv/range", json!({"key": foo, "range_end": b64(b"fop"), "countOnly": true}).to_string()),
        ("/v3/kv/range", json!({"key": foo, "range_end": b64(b"fop"), "limit": 1}).to_string()),
        ("/v3/kv/range", json!({"key": foo, "revision": 2}).to_string()),
        ("/v3/kv/range", json!({"key": b64(b"missing")}).to_string()),
        ("/v3/kv/range", "{}".to_string()),
        ("/v3/kv/put", json!({"key": foo, "ignore_value": true}).to_string()),
        (
            "/v3/kv/txn",
            json!({"compare": [{"key": foo, "result": "EQUAL", "target": "VALUE", "value": b64(b"baz")}],
                   "success": [{"request_range": {"key": foo}}, {"request_put": {"key": b64(b"t"), "value": b64(b"1")}}],
                   "failure": [{"request_delete_range": {"key": foo}}]})
            .to_string(),
        ),
        (
            "/v3/kv/txn",
            json!({"compare": [{"key": foo, "result": "GREATER", "target": "MOD", "mod_revision": "100"}],
                   "failure": [{"request_delete_range": {"key": b64(b"t"), "prev_kv": true}}]})
            .to_string(),
        ),
        ("/v3/kv/deleterange", json!({"key": b64(b"foo2"), "prev_kv": true}).to_string()),
        ("/v3/kv/deleterange", json!({"key": b64(b"nothing")}).to_string()),
        ("/v3/kv/compaction", json!({"revision": 3}).to_string()),
        ("/v3/kv/range", json!({"key": foo, "revision": 2}).to_string()),
        ("/v3/kv/compaction", json!({"revision": 1000}).to_string()),
        ("/v3/lease/grant", json!({"ID": 1000, "TTL": 60}).to_string()),
        ("/v3/lease/grant", json!({"ID": 1000, "TTL": 60}).to_string()),
        ("/v3/kv/put", json!({"key": b64(b"l"), "value": b64(b"v"), "lease": 1000}).to_string()),
        ("/v3/kv/put", json!({"key": b64(b"l"), "value": b64(b"v"), "lease": 555}).to_string()),
        ("/v3/kv/lease/leases", "{}".to_string()),
        ("/v3/lease/revoke", json!({"ID": 1000}).to_string()),
        ("/v3/lease/revoke", json!({"ID": 1000}).to_string()),
        ("/v3/lease/timetolive", json!({"ID": 1000}).to_string()),
        ("/v3/kv/range", json!({"key": b64(b"l")}).to_string()),
        ("/v3/lease/keepalive", json!({"ID": 1000}).to_string()),
        ("/v3/maintenance/transfer-leadership", json!({"targetID": 1}).to_string()),
        ("/v3/nope", "{}".to_string()),
        ("/v3/kv/txn/", "{}".to_string()),
    ];
    for (path, body) in &requests {
        let [e, m] = pair.both().map(|s| post(s.client_port, path, body));
        let (e, m) = tokio::join!(e, m);
        assert_eq!(
            e.status, m.status,
            "{path} {body}\netcd: {}\nmainstay: {}",
            e.body, m.body
        );
        if e.header("content-type") == Some("application/json") {
            assert_eq!(
                normalize(e.json()),
                normalize(m.json()),
                "{path} {body}\netcd: {}\nmainstay: {}",
                e.body,
                m.body
            );
        } else {
            assert_eq!(e.body, m.body, "{path} {body}");
        }
    }
    // The same watch on both: created, then the replayed events from the compacted revision on.
    for server in pair.both() {
        post(
            server.client_port,
            "/v3/kv/put",
            &json!({"key": foo, "value": b64(b"w")}).to_string(),
        )
        .await;
    }
    let mut lines = Vec::new();
    for server in pair.both() {
        let mut w = NdjsonStream::open(
            server.client_port,
            "/v3/watch",
            &json!({"create_request": {"key": foo, "start_revision": 3, "prev_kv": true}}).to_string(),
        )
        .await;
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(normalize(w.next(Duration::from_secs(10)).await.unwrap()));
        }
        lines.push(got);
    }
    assert_eq!(lines[0][1], lines[1][1], "watch events differ");
    assert_eq!(lines[0][0]["result"]["created"], lines[1][0]["result"]["created"]);
}

/// etcd3gw's own functional tests (`etcd3gw/tests/test_etcd3gw.py`: put/get/delete, prefix
/// sorting, replace/create transactions, leases, watches, locks) against Mainstay. They skip
/// themselves when no server answers, so the run must report no skips. `scripts/test` creates
/// the venv (target/venv, or `$MAINSTAY_VENV`) with a pinned etcd3gw.
#[tokio::test]
async fn etcd3gw_functional_tests_pass_against_mainstay() {
    let venv = std::env::var_os("MAINSTAY_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/test, which creates the venv with etcd3gw",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    // The tests log every HTTP request at DEBUG: output goes to a file, not a pipe that could fill.
    let log_path = dir.path().join("etcd3gw.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(&python)
        .args(["-m", "unittest", "etcd3gw.tests.test_etcd3gw"])
        .env("TOOZ_TEST_HTTP_URL", s.endpoint())
        .env("TOOZ_TEST_ETCD_PORT", s.client_port.to_string())
        .env_remove("ETCD3GW_API_PATH")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("etcd3gw tests did not finish in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = std::fs::read(&log_path).unwrap();
    let stderr = String::from_utf8_lossy(&out);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("DEBUG")).collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };
    assert!(status.success(), "etcd3gw tests failed:\n{tail}");
    let summary = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert_eq!(summary.trim(), "OK", "skipped or failed tests:\n{tail}");
    assert!(stderr.contains("Ran 23 tests"), "{tail}");
}

/// `--max-concurrent-streams` bounds the gateway's calls in flight, as etcd's gateway shares
/// one gRPC connection limited by it (etcd `tests/e2e/v3_curl_maxstream_test.go`): with the
/// limit taken by open watches, a Range waits; it completes as soon as one watch ends.
#[tokio::test]
async fn gateway_calls_beyond_max_concurrent_streams_wait_for_a_free_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(Kind::Mainstay, dir.path(), &["--max-concurrent-streams=3"]).await;
    let p = s.client_port;
    let watch = r#"{"create_request":{"key":"d2F0Y2g="}}"#;
    let mut watches = Vec::new();
    for _ in 0..3 {
        let mut w = NdjsonStream::open(p, "/v3/watch", watch).await;
        assert_eq!(w.status, 200);
        w.next(Duration::from_secs(10)).await.unwrap();
        watches.push(w);
    }
    let range = tokio::spawn(async move { post(p, "/v3/kv/range", r#"{"key":"Zm9v"}"#).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!range.is_finished(), "a 4th call ran past the limit of 3");
    drop(watches.pop());
    let done = tokio::time::timeout(Duration::from_secs(10), range)
        .await
        .expect("the range runs once a watch ends")
        .unwrap();
    assert_eq!(done.status, 200);
    assert!(done.body.contains("\"revision\""), "{}", done.body);
}
