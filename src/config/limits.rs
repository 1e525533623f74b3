//! Named limits and defaults, each with its unit in the name or the type.
//!
//! Every value here mirrors an etcd 3.5 default (source: `server/embed/config.go`,
//! `server/etcdserver/api/v3rpc/grpc.go`, `server/storage/quota.go`) so that a Mainstay member
//! started with no flags behaves like `etcd` started with no flags. Flags and the config file
//! override the defaults; the flag table in `flags.rs` shows the same values as text.

use std::time::Duration;

/// Largest client request the server accepts, in bytes (`--max-request-bytes`, etcd
/// `embed.DefaultMaxRequestBytes` = 1.5 MiB).
pub const REQUEST_BYTES_MAX_DEFAULT: u64 = 1_572_864;

/// Most operations one `Txn` may carry, counting compare-free success and failure branches
/// separately (`--max-txn-ops`, etcd `embed.DefaultMaxTxnOps`).
pub const TXN_OPS_MAX_DEFAULT: usize = 128;

/// Extra bytes a gRPC message may carry beyond `--max-request-bytes`, for framing and
/// metadata. etcd sets the server's max receive size to `max-request-bytes + 512 KiB`
/// (`v3rpc/grpc.go: grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;

/// Backend size at which the NOSPACE alarm is raised when `--quota-backend-bytes` is 0, in
/// bytes (etcd `storage.DefaultQuotaBytes` = 2 GiB).
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;

/// Backend quota above which etcd logs "quota exceeds the maximum value", in bytes
/// (etcd `storage.MaxQuotaBytes` = 8 GiB). Larger values are accepted, with a warning.
pub const QUOTA_BACKEND_BYTES_SUGGESTED_MAX: u64 = 8 * 1024 * 1024 * 1024;

/// Raft heartbeat interval (`--heartbeat-interval`, given in milliseconds; etcd default 100).
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);

/// Raft election timeout (`--election-timeout`, given in milliseconds; etcd default 1000).
pub const ELECTION_TIMEOUT_DEFAULT: Duration = Duration::from_millis(1000);

/// Largest accepted `--election-timeout`, in milliseconds (etcd `embed.maxElectionMs`).
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 50_000;

/// `--election-timeout` must be at least this many times `--heartbeat-interval` (etcd
/// `Config.Validate`: "should be at least as 5 times as --heartbeat-interval").
pub const ELECTION_TIMEOUT_MIN_HEARTBEATS: u64 = 5;

/// Applied entries between two Raft snapshots (`--snapshot-count`; etcd 3.5 default. etcd 3.6
/// lowered it to 10,000, which is what kubeadm passes explicitly).
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 100_000;

/// Entries kept in the Raft log after a snapshot so slow followers can catch up without a
/// snapshot transfer (`--snapshot-catchup-entries`, etcd `DefaultSnapshotCatchUpEntries`).
pub const SNAPSHOT_CATCHUP_ENTRIES_DEFAULT: u64 = 5_000;

/// Interval between watch progress notifications on idle watch streams
/// (`--watch-progress-notify-interval` / `--experimental-watch-progress-notify-interval`).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_secs(10 * 60);

/// Concurrent gRPC streams allowed per client connection (`--max-concurrent-streams`, etcd
/// default `math.MaxUint32`).
pub const GRPC_CONCURRENT_STREAMS_MAX_DEFAULT: u32 = u32::MAX;

/// Minimum time a client must wait between keepalive pings (`--grpc-keepalive-min-time`).
pub const GRPC_KEEPALIVE_MIN_TIME_DEFAULT: Duration = Duration::from_secs(5);

/// Server-to-client keepalive ping interval (`--grpc-keepalive-interval`, 2 h).
pub const GRPC_KEEPALIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(2 * 60 * 60);

/// Time to wait for a keepalive ack before closing the connection (`--grpc-keepalive-timeout`).
pub const GRPC_KEEPALIVE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);

/// Slow unary requests are logged after this long (`--warning-unary-request-duration`).
pub const WARNING_UNARY_REQUEST_DURATION_DEFAULT: Duration = Duration::from_millis(300);

// The gRPC receive limit must leave room for the largest allowed request.
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT + GRPC_OVERHEAD_BYTES > REQUEST_BYTES_MAX_DEFAULT);
const _: () = assert!(QUOTA_BACKEND_BYTES_DEFAULT <= QUOTA_BACKEND_BYTES_SUGGESTED_MAX);
const _: () = assert!(
    ELECTION_TIMEOUT_DEFAULT.as_millis()
        >= HEARTBEAT_INTERVAL_DEFAULT.as_millis() * ELECTION_TIMEOUT_MIN_HEARTBEATS as u128
);

// Internal bounds of the server (not etcd flags).

/// fjall block cache, in bytes.
pub const STORAGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Log-flush requests queued for the group-commit thread before `append` waits (entries).
pub const LOG_FLUSH_QUEUE_MAX: usize = 4096;

/// Revision-key deletions per fjall batch when compaction frees old versions.
pub const COMPACTION_BATCH_KEYS_MAX: usize = 1000;

/// Queued compaction jobs before `Compact` apply waits for the background deleter.
pub const COMPACTION_QUEUE_MAX: usize = 16;

/// etcd's limit on committed-but-unapplied entries before writes get `too many requests`.
pub const APPLY_BACKLOG_ENTRIES_MAX: u64 = 5000;

/// How long a request waits for its raft proposal or read barrier before
/// `etcdserver: request timed out` (etcd: 5 s plus 2 × election timeout).
pub const REQUEST_TIMEOUT_SECS_BASE: u64 = 5;

/// Committed entries applied in one fjall batch (entries already delivered together by raft).
pub const APPLY_BATCH_ENTRIES_MAX: usize = 1024;

/// Committed revisions queued per watch stream before the stream is marked lagging and
/// replays from the store instead (revisions).
pub const WATCH_STREAM_REVISIONS_MAX: usize = 1024;

/// Responses queued per watch stream towards gRPC (etcd: 128 per stream).
pub const WATCH_STREAM_RESPONSES_MAX: usize = 128;

/// Revisions one catch-up response may cover (etcd `watchBatchMaxRevs`).
pub const WATCH_CATCHUP_REVISIONS_MAX: usize = 1000;

/// How often the leader looks for expired leases (etcd: every 500 ms).
pub const LEASE_EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Expired leases revoked per second at most (etcd `leaseRevokeRate`).
pub const LEASE_REVOKES_PER_SEC_MAX: usize = 1000;

/// Expired leases revoked by one raft entry (leases). A tick's expired leases are split into
/// entries of this size, proposed one after another, so a client write waits behind at most
/// one small revoke instead of a whole tick's worth (the 10,000-lease expiry benchmark).
pub const LEASE_REVOKE_ENTRY_LEASES_MAX: usize = 50;

/// Lease checkpoints proposed in one raft entry per expiry tick (etcd
/// `maxLeaseCheckpointBatchSize`).
pub const LEASE_CHECKPOINTS_PER_ENTRY_MAX: usize = 1000;

/// How long an expired lease whose revoke is in flight waits before it is proposed again.
pub const LEASE_REVOKE_RETRY: Duration = Duration::from_secs(3);

/// Largest lease TTL, in seconds (etcd `MaxLeaseTTL`); above it: `etcdserver: too large lease TTL`.
pub const LEASE_TTL_SECS_MAX: i64 = 9_000_000_000;

/// How long a member waits for a TCP connection to a peer before reporting it unreachable.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 keep-alive ping interval on peer connections, so a dead peer is noticed.
pub const PEER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Pause between attempts to publish this member's attributes (name, client URLs).
pub const PUBLISH_RETRY: Duration = Duration::from_millis(500);

/// An apply slower than this counts in `etcd_server_slow_apply_total` (etcd
/// `--warning-apply-duration` default, `etcdserver/util.go` warnOfExpensiveRequest).
pub const APPLY_WARN_DURATION: Duration = Duration::from_millis(100);

/// A read barrier slower than this counts in `etcd_server_slow_read_indexes_total` (etcd
/// `readIndexRetryTime`, after which it considers a read index slow and retries).
pub const READ_INDEX_SLOW: Duration = Duration::from_millis(500);

/// How many JSON bytes the grpc-gateway reads per byte of the largest request message before
/// refusing a body (base64 makes bytes fields 4/3 larger, field names and quotes add more); the
/// decoded message is then held to the gRPC receive limit exactly.
pub const GATEWAY_JSON_BYTES_PER_MESSAGE_BYTE: usize = 4;

/// Bytes of database image per `Maintenance.Snapshot` message (etcd
/// `v3rpc/maintenance.go: snapshotSendBufferSize` = 32 KiB).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

/// How long `Maintenance.Snapshot` waits for an in-flight compaction's deletions before it
/// images the store anyway (and filters the dropped versions out itself).
pub const SNAPSHOT_COMPACTION_WAIT: Duration = Duration::from_secs(10);

/// How long a TLS handshake (and the first byte of it) may take before the connection is
/// dropped, so idle or slow clients cannot hold accept slots (Go's `http.Server` has no such
/// default; etcd's listeners rely on keepalives).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Quiet period after a change to a watched certificate, key, CA or CRL file before it is
/// reloaded: writers replace a certificate and its key in separate steps.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(250);

/// Longest a reload waits for the files to go quiet before reading them anyway.
pub const RELOAD_DEBOUNCE_MAX: Duration = Duration::from_secs(2);

/// Interval of the fallback poll of TLS files, for file systems where inotify sees nothing.
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// After SIGTERM/SIGINT, how long in-flight requests and streams may run before the server
/// exits anyway. etcd's bound is its request timeout (5 s + 2 × the 1 s default election
/// timeout).
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(7);

/// Learners a cluster may have (etcd `--max-learners` default; the flag is not yet effective).
pub const LEARNERS_MAX: usize = 1;

/// A learner may be promoted once its replicated log reaches this share of the leader's, in
/// percent (etcd `readyPercentThreshold`).
pub const LEARNER_PROMOTE_IN_SYNC_PERCENT: u64 = 90;

/// How long MemberAdd waits for a voter addition to commit before answering (it cannot commit
/// before the new member runs when the old members are not a majority of the new set).
pub const MEMBER_ADD_WAIT: Duration = Duration::from_secs(2);

/// Bytes of key/value data `mainstayctl snapshot restore` writes per fjall batch (bounds its
/// memory whatever the snapshot's size; values are at most `--max-request-bytes`).
pub const RESTORE_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Bytes read per step while hashing a snapshot file for its SHA-256 trailer check.
pub const RESTORE_HASH_READ_BYTES: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// kubeadm node tooling (`mainstayctl certs` / `manifest`), values as kubeadm uses them
// (source: `cmd/kubeadm/app/constants/constants.go`, `cmd/kubeadm/app/phases/etcd/local.go`).

/// Validity of the etcd CA kubeadm creates, in days (10 × 365 days, `duration365d * 10`).
pub const KUBE_CA_VALIDITY_DAYS: i64 = 3650;

/// Validity of a leaf certificate kubeadm signs, in days (`CertificateValidityPeriod`, 365 days).
pub const KUBE_CERT_VALIDITY_DAYS: i64 = 365;

/// How far a new CA's NotBefore is back-dated against clock skew (`CertificateBackdate`,
/// 5 minutes).
pub const KUBE_CERT_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The etcd client port kubeadm uses (`EtcdListenClientPort`).
pub const KUBE_ETCD_CLIENT_PORT: u16 = 2379;

/// The etcd peer port kubeadm uses (`EtcdListenPeerPort`).
pub const KUBE_ETCD_PEER_PORT: u16 = 2380;

/// The plain-HTTP metrics/health port kubeadm probes (`EtcdMetricsPort`).
pub const KUBE_ETCD_METRICS_PORT: u16 = 2381;

/// `--snapshot-count` kubeadm passes, in applied entries.
pub const KUBE_ETCD_SNAPSHOT_COUNT: u64 = 10_000;

/// Static-pod `priority` kubeadm writes (the value of `system-node-critical`).
pub const KUBE_STATIC_POD_PRIORITY: i32 = 2_000_001_000;

/// Liveness probe: consecutive failures before kubelet restarts the container.
pub const KUBE_LIVENESS_FAILURE_THRESHOLD: i32 = 8;

/// Readiness probe: consecutive failures before the pod is marked not ready.
pub const KUBE_READINESS_FAILURE_THRESHOLD: i32 = 3;

/// Startup probe: tries before kubelet gives up, `ceil(240 s / 10 s)` (kubeadm's
/// control-plane component health-check timeout over the probe period).
pub const KUBE_STARTUP_FAILURE_THRESHOLD: i32 = 24;

/// Delay before the liveness and startup probes start, in seconds.
pub const KUBE_PROBE_INITIAL_DELAY_SECS: i32 = 10;

/// Period of the liveness and startup probes, in seconds.
pub const KUBE_PROBE_PERIOD_SECS: i32 = 10;

/// Period of the readiness probe, in seconds.
pub const KUBE_READINESS_PERIOD_SECS: i32 = 1;

/// Timeout of every probe request, in seconds.
pub const KUBE_PROBE_TIMEOUT_SECS: i32 = 15;

/// bcrypt cost for auth passwords (`--bcrypt-cost`, etcd `bcrypt.DefaultCost`).
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// Smallest and largest accepted `--bcrypt-cost` (etcd `embed.Config.Validate`: bcrypt's
/// `MinCost` 4 and `MaxCost` 31).
pub const BCRYPT_COST_RANGE: std::ops::RangeInclusive<u32> = 4..=31;

/// Lifetime of a simple auth token since its last use (`--auth-token-ttl`, in seconds; etcd
/// default 300).
pub const AUTH_TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// Random ASCII letters in a simple token before `.<raft index>` (etcd
/// `auth/simple_token.go: defaultSimpleTokenLength`).
pub const SIMPLE_TOKEN_LETTERS: usize = 16;

/// Simple tokens assigned between two sweeps of expired tokens from the token table.
pub const SIMPLE_TOKEN_SWEEP_EVERY: usize = 1024;

/// Most simple tokens a member keeps at once; beyond it the oldest-expiring are dropped first
/// (etcd keeps an unbounded map; a bound keeps a login loop from exhausting memory).
pub const SIMPLE_TOKENS_MAX: usize = 1_000_000;

// ---- mainstayctl bench (client-side load generator) ----

/// Significant decimal digits of the benchmark's latency histogram (HdrHistogram; 3 means
/// any percentile is within 0.1 % of the recorded value).
pub const BENCH_HISTOGRAM_SIGFIGS: u8 = 3;

/// Connect timeout of a benchmark connection when `--dial-timeout` is 0 (etcd's `benchmark`
/// then waits forever; a bounded wait reports an unreachable endpoint instead).
pub const BENCH_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a single benchmark request may take before it counts as an error (etcd's
/// `benchmark` uses no deadline; a bound keeps a run finite against a stuck server).
pub const BENCH_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the watch benchmarks wait, after the last put, for every event to arrive.
pub const BENCH_EVENT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the watch benchmarks wait for all watchers to be created.
pub const BENCH_WATCH_CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Requests buffered per watch or keep-alive stream on the client side (bounded channel).
pub const BENCH_STREAM_BUFFER: usize = 1024;

/// TTL in seconds of the lease each `lease-keepalive` client grants (etcd `cmd/lease.go`).
pub const BENCH_LEASE_TTL_SECS: i64 = 100;
