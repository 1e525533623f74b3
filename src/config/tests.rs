//! Behaviour tests for [`super::parse`]: each pins one etcd start-up behaviour.

use super::*;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}
fn outcome(a: &[&str], env: &[(&str, &str)]) -> ParseOutcome {
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_with_env_vars(&args(a), &vars)
}
fn config(a: &[&str], env: &[(&str, &str)]) -> Config {
    match outcome(a, env) {
        ParseOutcome::Run(c) => c,
        other => panic!("expected Run for {a:?}, got {other:?}"),
    }
}
/// (exit code, stderr) of a run that must exit.
fn exit(a: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    match outcome(a, env) {
        ParseOutcome::Exit { code, stderr, .. } => (code, stderr),
        ParseOutcome::Run(c) => panic!("expected Exit for {a:?}, got {c:?}"),
    }
}
fn strs(urls: &[Url]) -> Vec<String> {
    urls.iter().map(go_url).collect()
}
fn write_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_match_etcd() {
    let c = config(&[], &[]);
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir, None);
    assert_eq!(strs(&c.listen_client_urls), ["http://localhost:2379"]);
    assert_eq!(strs(&c.advertise_client_urls), ["http://localhost:2379"]);
    assert_eq!(strs(&c.listen_peer_urls), ["http://localhost:2380"]);
    assert_eq!(strs(&c.initial_advertise_peer_urls), ["http://localhost:2380"]);
    assert_eq!(c.initial_cluster.len(), 1);
    assert_eq!(
        (
            c.initial_cluster[0].0.as_str(),
            go_url(&c.initial_cluster[0].1).as_str()
        ),
        ("default", "http://localhost:2380")
    );
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert!(c.listen_metrics_urls.is_empty() && c.listen_client_http_urls.is_empty());
    assert_eq!(c.max_request_bytes, limits::REQUEST_BYTES_MAX_DEFAULT);
    assert_eq!(c.max_txn_ops, limits::TXN_OPS_MAX_DEFAULT);
    assert_eq!(c.heartbeat_interval, limits::HEARTBEAT_INTERVAL_DEFAULT);
    assert_eq!(c.election_timeout, limits::ELECTION_TIMEOUT_DEFAULT);
    assert_eq!(c.snapshot_count, limits::SNAPSHOT_COUNT_DEFAULT);
    assert_eq!(c.quota_backend_bytes, limits::QUOTA_BACKEND_BYTES_DEFAULT);
    assert_eq!(
        c.watch_progress_notify_interval,
        limits::WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT
    );
    assert_eq!(c.logging.level, "info");
    assert!(c.enable_grpc_gateway);
    assert!(!c.client_tls.enabled() && !c.peer_tls.enabled());
    assert_eq!(c.feature_gates.get("TxnModeWriteWithSharedBuffer"), Some(&true));
    assert_eq!(c.value("pre-vote"), Some(&FlagValue::Bool(true)));
    assert_eq!(
        c.value("max-concurrent-streams"),
        Some(&FlagValue::Uint(u64::from(u32::MAX)))
    );
    assert!(c.not_yet_effective.is_empty() && c.warnings.is_empty() && c.sources.is_empty());
    assert!(c.verify_bootstrap().is_ok());
}

#[test]
fn flag_values_work_with_equals_space_and_single_dash() {
    for a in [&["--name=a"][..], &["--name", "a"], &["-name", "a"], &["-name=a"]] {
        assert_eq!(config(a, &[]).name, "a", "{a:?}");
    }
    // A value may itself start with a dash, as in Go.
    assert_eq!(config(&["--name", "-x"], &[]).name, "-x");
    assert_eq!(config(&["--name="], &[]).data_dir, PathBuf::from(".etcd"));
}

#[test]
fn empty_url_list_flag_keeps_the_default() {
    // etcd's UniqueURLs accepts "" as an exception that leaves the value unchanged.
    let c = config(&["--listen-peer-urls="], &[]);
    assert_eq!(strs(&c.listen_peer_urls), ["http://localhost:2380"]);
    assert!(c.is_set("listen-peer-urls") && c.not_yet_effective.is_empty());
}

#[test]
fn repeated_flag_last_occurrence_wins() {
    assert_eq!(config(&["--name=a", "--name=b"], &[]).name, "b");
}

#[test]
fn booleans_follow_go_strconv_parse_bool() {
    assert!(config(&["--client-cert-auth"], &[]).client_tls.client_cert_auth);
    assert!(config(&["-client-cert-auth"], &[]).client_tls.client_cert_auth);
    for t in ["1", "t", "T", "true", "TRUE", "True"] {
        assert!(
            config(&[&format!("--client-cert-auth={t}")], &[])
                .client_tls
                .client_cert_auth,
            "{t}"
        );
    }
    for f in ["0", "f", "F", "false", "FALSE", "False"] {
        assert!(
            !config(&[&format!("--enable-grpc-gateway={f}")], &[]).enable_grpc_gateway,
            "{f}"
        );
    }
    let (code, err) = exit(&["--client-cert-auth=yes"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("invalid boolean value \"yes\" for -client-cert-auth: parse error\nUsage:"),
        "{err}"
    );
}

#[test]
fn bool_flag_does_not_consume_the_next_argument() {
    // Go: `--client-cert-auth false` sets true and leaves "false" as a stray argument.
    assert_eq!(
        exit(&["--client-cert-auth", "false"], &[]),
        (
            1,
            "failed to verify flags: 'false' is not a valid flag\n".to_owned()
        )
    );
}

#[test]
fn unknown_flag_exits_2_naming_the_flag() {
    for a in ["--bogus", "-bogus=1"] {
        let (code, err) = exit(&[a], &[]);
        assert_eq!(code, 2);
        assert!(
            err.starts_with("flag provided but not defined: -bogus\nUsage:\n"),
            "{err}"
        );
    }
}

#[test]
fn go_flag_syntax_errors_exit_2() {
    assert_eq!(
        exit(&["---name", "x"], &[]).1.lines().next(),
        Some("bad flag syntax: ---name")
    );
    assert_eq!(
        exit(&["--name"], &[]).1.lines().next(),
        Some("flag needs an argument: -name")
    );
    let (code, err) = exit(&["--snapshot-count=abc"], &[]);
    assert_eq!(
        (code, err.lines().next()),
        (
            2,
            Some("invalid value \"abc\" for flag -snapshot-count: parse error")
        )
    );
    assert_eq!(
        exit(&["--heartbeat-interval=-1"], &[]).1.lines().next(),
        Some("invalid value \"-1\" for flag -heartbeat-interval: parse error")
    );
    assert_eq!(
        exit(&["--initial-cluster-state=bogus"], &[]).1.lines().next(),
        Some("invalid value \"bogus\" for flag -initial-cluster-state: invalid value")
    );
    assert_eq!(
        exit(&["--listen-client-urls=http://127.0.0.1"], &[])
            .1
            .lines()
            .next(),
        Some(
            "invalid value \"http://127.0.0.1\" for flag -listen-client-urls: URL address does not have the form \"host:port\": http://127.0.0.1"
        )
    );
}

#[test]
fn integer_flags_accept_go_syntax() {
    assert_eq!(config(&["--snapshot-count=0x10"], &[]).snapshot_count, 16);
    assert_eq!(config(&["--max-txn-ops", "1_000"], &[]).max_txn_ops, 1000);
}

#[test]
fn stray_positional_arguments_are_rejected() {
    assert_eq!(
        exit(&["stray"], &[]),
        (
            1,
            "failed to verify flags: 'stray' is not a valid flag\n".to_owned()
        )
    );
    assert_eq!(
        exit(&["--name", "x", "stray", "--bogus"], &[]).0,
        1,
        "parsing stops at the first positional"
    );
    assert_eq!(
        exit(&["--", "--name", "x"], &[]).1,
        "failed to verify flags: '--name' is not a valid flag\n"
    );
    assert_eq!(config(&["--name=x", "--"], &[]).name, "x");
}

#[test]
fn help_prints_flags_and_exits_0() {
    for a in ["-h", "--help", "-help", "--h"] {
        match outcome(&[a, "--bogus"], &[]) {
            ParseOutcome::Exit {
                code: 0,
                stdout,
                stderr,
            } => {
                assert!(stdout.contains("  --name 'default'\n"), "{a}");
                assert!(stderr.starts_with("Usage:\n"), "{a}");
            }
            other => panic!("{a}: {other:?}"),
        }
    }
}

#[test]
fn version_prints_version_text_and_exits_0() {
    for a in ["--version", "-version", "--version=true"] {
        let want = ParseOutcome::Exit {
            code: 0,
            stdout: VERSION_TEXT.to_owned(),
            stderr: String::new(),
        };
        assert_eq!(outcome(&[a], &[]), want);
    }
    assert!(VERSION_TEXT.starts_with("etcd Version: 3.5.21\nGit SHA: mainstay "));
    assert!(matches!(outcome(&["--version=false"], &[]), ParseOutcome::Run(_)));
}

#[test]
fn env_vars_fill_flags_not_on_the_command_line() {
    let env = [
        ("ETCD_NAME", "envname"),
        ("ETCD_DATA_DIR", "/d"),
        ("ETCD_INITIAL_CLUSTER_STATE", "existing"),
    ];
    let c = config(&["--snapshot-count=5"], &env);
    assert_eq!((c.name.as_str(), c.data_dir.to_str()), ("envname", Some("/d")));
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(c.snapshot_count, 5);
    assert_eq!(c.source("name"), ValueSource::Environment);
    assert_eq!(c.source("snapshot-count"), ValueSource::CommandLine);
    assert_eq!(c.source("wal-dir"), ValueSource::Default);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // An empty variable is not used (and, being unused, is reported like etcd does).
    let c = config(&[], &[("ETCD_NAME", "")]);
    assert_eq!(c.name, "default");
    assert_eq!(c.warnings, ["unrecognized environment variable ETCD_NAME="]);
    // The lookup-only entry point reads the same variables.
    let lookup = |k: &str| (k == "ETCD_NAME").then(|| "viafn".to_owned());
    assert!(matches!(parse(&[], &lookup), ParseOutcome::Run(c) if c.name == "viafn"));
}

#[test]
fn flag_and_env_both_set_is_fatal() {
    let want = "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag \
                (either unset environment variable or disable flag)\n";
    assert_eq!(
        exit(&["--name", "b"], &[("ETCD_NAME", "a")]),
        (1, want.to_owned())
    );
    assert_eq!(exit(&["-name=b"], &[("ETCD_NAME", "")]), (1, want.to_owned()));
}

#[test]
fn bad_env_values_and_unknown_env_vars() {
    assert_eq!(
        exit(&[], &[("ETCD_SNAPSHOT_COUNT", "abc")]),
        (
            1,
            "failed to verify flags: invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error\n".to_owned()
        )
    );
    let c = config(
        &[],
        &[("ETCD_BOGUS", "1"), ("HOME", "/root"), ("ETCD_VERSION", "1")],
    );
    assert_eq!(
        c.warnings,
        [
            "cannot set special environment variable ETCD_VERSION=1",
            "unrecognized environment variable ETCD_BOGUS=1"
        ]
    );
}

/// The command kubeadm 1.31-1.33 writes into etcd.yaml (spec 5.1), verbatim.
const KUBEADM_1_33: &[&str] = &[
    "--advertise-client-urls=https://10.0.0.11:2379",
    "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
    "--client-cert-auth=true",
    "--data-dir=/var/lib/etcd",
    "--experimental-initial-corrupt-check=true",
    "--experimental-watch-progress-notify-interval=5s",
    "--initial-advertise-peer-urls=https://10.0.0.11:2380",
    "--initial-cluster=cp1=https://10.0.0.11:2380",
    "--key-file=/etc/kubernetes/pki/etcd/server.key",
    "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379",
    "--listen-metrics-urls=http://127.0.0.1:2381",
    "--listen-peer-urls=https://10.0.0.11:2380",
    "--name=cp1",
    "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
    "--peer-client-cert-auth=true",
    "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
    "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    "--snapshot-count=10000",
    "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
];

#[test]
fn kubeadm_manifest_flags_parse_with_expected_values() {
    let c = config(KUBEADM_1_33, &[]);
    assert_eq!(c.name, "cp1");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/etcd"));
    // etcd's UniqueURLs sorts the list.
    assert_eq!(
        strs(&c.listen_client_urls),
        ["https://10.0.0.11:2379", "https://127.0.0.1:2379"]
    );
    assert_eq!(strs(&c.advertise_client_urls), ["https://10.0.0.11:2379"]);
    assert_eq!(strs(&c.listen_peer_urls), ["https://10.0.0.11:2380"]);
    assert_eq!(strs(&c.initial_advertise_peer_urls), ["https://10.0.0.11:2380"]);
    assert_eq!(strs(&c.listen_metrics_urls), ["http://127.0.0.1:2381"]);
    assert_eq!(
        c.initial_cluster
            .iter()
            .map(|(n, u)| format!("{n}={}", go_url(u)))
            .collect::<Vec<_>>(),
        ["cp1=https://10.0.0.11:2380"]
    );
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.snapshot_count, 10_000);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
    assert_eq!(
        c.client_tls.cert_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/server.crt"))
    );
    assert_eq!(
        c.client_tls.key_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/server.key"))
    );
    assert_eq!(
        c.client_tls.trusted_ca_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt"))
    );
    assert!(c.client_tls.client_cert_auth && c.client_tls.enabled());
    assert_eq!(
        c.peer_tls.cert_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/peer.crt"))
    );
    assert_eq!(
        c.peer_tls.key_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/peer.key"))
    );
    assert_eq!(
        c.peer_tls.trusted_ca_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt"))
    );
    assert!(c.peer_tls.client_cert_auth && c.peer_tls.enabled());
    assert_eq!(c.feature_gates.get("InitialCorruptCheck"), Some(&true));
    assert_eq!(c.not_yet_effective, ["experimental-initial-corrupt-check"]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.verify_bootstrap().is_ok());
}

#[test]
fn kubeadm_etcd_3_6_and_join_flags_parse() {
    let mut a: Vec<&str> = KUBEADM_1_33
        .iter()
        .copied()
        .filter(|f| !f.starts_with("--experimental"))
        .collect();
    a.extend([
        "--feature-gates=InitialCorruptCheck=true",
        "--watch-progress-notify-interval=5s",
    ]);
    let c = config(&a, &[]);
    assert_eq!(c.feature_gates.get("InitialCorruptCheck"), Some(&true));
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
    a.retain(|f| !f.starts_with("--initial-cluster="));
    a.extend([
        "--initial-cluster=cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380",
        "--initial-cluster-state=existing",
    ]);
    let c = config(&a, &[]);
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(
        c.initial_cluster
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["cp1", "cp2"]
    );
    assert!(c.verify_bootstrap().is_ok());
}

#[test]
fn both_watch_progress_notify_spellings_work_but_not_together() {
    let old = config(&["--experimental-watch-progress-notify-interval=7s"], &[]);
    let new = config(&["--watch-progress-notify-interval", "1m30s"], &[]);
    assert_eq!(old.watch_progress_notify_interval, Duration::from_secs(7));
    assert_eq!(new.watch_progress_notify_interval, Duration::from_secs(90));
    let (code, err) = exit(
        &[
            "--experimental-watch-progress-notify-interval=7s",
            "--watch-progress-notify-interval=5s",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot set --experimental-watch-progress-notify-interval and --watch-progress-notify-interval at the same time"), "{err}");
    let (code, err) = exit(
        &[
            "--experimental-initial-corrupt-check=true",
            "--feature-gates=InitialCorruptCheck=false",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot specify both flags: --experimental-initial-corrupt-check=true and --feature-gates=InitialCorruptCheck=false"), "{err}");
    assert_eq!(
        exit(&["--watch-progress-notify-interval=5x"], &[])
            .1
            .lines()
            .next(),
        Some("invalid value \"5x\" for flag -watch-progress-notify-interval: parse error")
    );
}

#[test]
fn config_file_overrides_flags_and_env() {
    let f = write_file(
        "name: fromfile\nlisten-client-urls: http://127.0.0.1:2379\ninitial-cluster-state: existing\nenable-v2: true\nheartbeat-interval: 50\nelection-timeout: 500\n",
    );
    let path = f.path().to_str().unwrap();
    let env = [("ETCD_NAME", "fromenv"), ("ETCD_SNAPSHOT_COUNT", "abc")];
    let c = config(
        &["--config-file", path, "--name=fromcli", "--max-txn-ops=1"],
        &env,
    );
    assert_eq!(c.name, "fromfile");
    assert_eq!(c.data_dir, PathBuf::from("fromfile.etcd"));
    assert_eq!(c.max_txn_ops, 128, "command-line flags are ignored");
    assert_eq!(c.snapshot_count, limits::SNAPSHOT_COUNT_DEFAULT, "env is ignored");
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(c.heartbeat_interval, Duration::from_millis(50));
    // A config file keeps the default advertise URL when it sets only listen URLs.
    assert_eq!(strs(&c.advertise_client_urls), ["http://localhost:2379"]);
    assert_eq!(c.sources.get("name"), Some(&ValueSource::ConfigFile));
    assert_eq!(c.not_yet_effective, ["enable-v2"]);
    let via_env = config(&[], &[("ETCD_CONFIG_FILE", path), ("ETCD_NAME", "fromenv")]);
    assert_eq!(via_env.name, "fromfile");
}

#[test]
fn unreadable_or_bad_config_file_exits_1() {
    let (code, err) = exit(&["--config-file=/nonexistent/mainstay.yaml"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "failed to verify flags: open /nonexistent/mainstay.yaml: no such file or directory\n"
    );
    let f = write_file("name: [oops\n");
    let (code, err) = exit(&["--config-file", f.path().to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("error parsing config file"), "{err}");
}

#[test]
fn initial_cluster_default_follows_name_and_peer_urls() {
    let c = config(
        &[
            "--name=cp1",
            "--initial-advertise-peer-urls=https://10.0.0.11:2380,https://[fd00::11]:2380",
        ],
        &[],
    );
    let got: Vec<String> = c
        .initial_cluster
        .iter()
        .map(|(n, u)| format!("{n}={}", go_url(u)))
        .collect();
    assert_eq!(got, ["cp1=https://10.0.0.11:2380", "cp1=https://[fd00::11]:2380"]);
    assert!(
        config(&["--discovery-srv=example.com"], &[])
            .initial_cluster
            .is_empty()
    );
    let (code, err) = exit(
        &[
            "--discovery-srv=example.com",
            "--initial-cluster=a=http://10.0.0.1:2380",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "failed to verify flags: multiple discovery or bootstrap flags are set. \
         Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"\n"
    );
    // etcd parses --initial-cluster only after the other checks.
    assert!(
        exit(&["--initial-cluster=foo", "--election-timeout=1"], &[])
            .1
            .contains("--election-timeout[1ms]")
    );
}

#[test]
fn bad_initial_cluster_is_rejected_and_bootstrap_checks_membership() {
    assert_eq!(
        exit(&["--initial-cluster=foo"], &[]).1,
        "failed to verify flags: error setting up initial cluster: URL scheme must be http, https, unix, or unixs: \n"
    );
    let c = config(&["--initial-cluster=other=http://localhost:2380"], &[]);
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "couldn't find local name \"default\" in the initial cluster configuration"
    );
    let c = config(
        &["--initial-cluster=default=http://localhost:2380,b=http://localhost:2380"],
        &[],
    );
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "initial cluster default=http://localhost:2380,b=http://localhost:2380 has duplicate url"
    );
    let c = config(&["--initial-cluster=default=http://10.0.0.1:2380"], &[]);
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "--initial-cluster has default=http://10.0.0.1:2380 but missing from \
         --initial-advertise-peer-urls=http://localhost:2380"
    );
    let c = config(
        &[
            "--initial-cluster=default=http://localhost:2380",
            "--initial-advertise-peer-urls=http://localhost:2380,http://127.0.0.1:2380",
        ],
        &[],
    );
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "--initial-advertise-peer-urls has http://127.0.0.1:2380 but missing from \
         --initial-cluster=default=http://127.0.0.1:2380,default=http://localhost:2380"
    );
}

#[test]
fn listen_client_urls_without_advertise_client_urls_is_rejected() {
    let want = (1, "failed to verify flags: --advertise-client-urls is required when --listen-client-urls is set explicitly\n".to_owned());
    assert_eq!(exit(&["--listen-client-urls=http://127.0.0.1:2379"], &[]), want);
    assert_eq!(
        exit(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]),
        want
    );
    let c = config(
        &[
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
        ],
        &[],
    );
    assert_eq!(strs(&c.advertise_client_urls), ["http://127.0.0.1:2379"]);
}

#[test]
fn election_timeout_must_be_5_heartbeats_and_at_most_50s() {
    let e = |a: &[&str]| exit(a, &[]).1;
    assert_eq!(
        e(&["--election-timeout=1"]),
        "failed to verify flags: --election-timeout[1ms] should be at least as 5 times as --heartbeat-interval[100ms]\n"
    );
    assert_eq!(
        e(&["--election-timeout=60000", "--heartbeat-interval=1000"]),
        "failed to verify flags: --election-timeout[60000ms] is too long, and should be set less than 50000ms\n"
    );
    assert_eq!(
        e(&["--heartbeat-interval=0"]),
        "failed to verify flags: --heartbeat-interval must be >0 (set to 0ms)\n"
    );
    let c = config(&["--heartbeat-interval=200", "--election-timeout=1000"], &[]);
    assert_eq!(
        (c.heartbeat_interval, c.election_timeout),
        (Duration::from_millis(200), Duration::from_secs(1))
    );
    assert_eq!(
        config(&["--election-timeout=50000", "--heartbeat-interval=10000"], &[]).election_timeout,
        Duration::from_secs(50)
    );
}

#[test]
fn quota_zero_means_default_and_negative_disables() {
    assert_eq!(
        config(&["--quota-backend-bytes=0"], &[]).quota_backend_bytes,
        limits::QUOTA_BACKEND_BYTES_DEFAULT
    );
    assert_eq!(
        config(&["--quota-backend-bytes=-1"], &[]).quota_backend_bytes,
        u64::MAX
    );
    assert_eq!(
        config(&["--quota-backend-bytes=1048576"], &[]).quota_backend_bytes,
        1 << 20
    );
    let big = config(&["--quota-backend-bytes=17179869184"], &[]);
    assert_eq!(
        big.warnings,
        ["--quota-backend-bytes 17179869184 exceeds the suggested maximum of 8 GiB"]
    );
}

#[test]
fn only_non_default_unimplemented_flags_are_not_yet_effective() {
    let c = config(
        &[
            "--enable-pprof",
            "--enable-grpc-gateway=true",
            "--wal-dir=/w",
            "--name=x",
            "--enable-v2=false",
        ],
        &[],
    );
    assert_eq!(c.not_yet_effective, ["wal-dir", "enable-pprof"]);
    assert_eq!(c.wal_dir, Some(PathBuf::from("/w")));
}

#[test]
fn legacy_and_version_specific_flags_are_accepted() {
    let c = config(
        &[
            "--v",
            "--vv=1",
            "-snapshot",
            "--enable-v2=true",
            "--proxy=off",
            "--v2-deprecation=write-only",
        ],
        &[],
    );
    assert_eq!(c.warnings[0], "flag \"-v\" is no longer supported - ignoring.");
    assert_eq!(c.warnings.len(), 3);
    assert_eq!(c.not_yet_effective, ["enable-v2", "v2-deprecation"]);
    for a in [
        "--experimental-compact-hash-check-enabled",
        "--compact-hash-check-time=2m",
        "--max-learners=2",
        "--experimental-max-learners=2",
        "--snapshot-catchup-entries=10",
        "--feature-gates=AllAlpha=false",
    ] {
        assert!(matches!(outcome(&[a], &[]), ParseOutcome::Run(_)), "{a}");
    }
}

#[test]
fn url_checks_follow_etcd() {
    let (code, err) = exit(&["--listen-peer-urls=http://example.com:2380"], &[]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "failed to verify flags: expected IP in URL for binding (http://example.com:2380)\n"
        )
    );
    let c = config(
        &["--listen-peer-urls=http://127.0.0.1:2380,http://127.0.0.1:2380"],
        &[],
    );
    assert_eq!(strs(&c.listen_peer_urls), ["http://127.0.0.1:2380"]);
    assert_eq!(
        c.warnings,
        ["--listen-peer-urls: duplicate URL http://127.0.0.1:2380/ ignored"]
    );
}

#[test]
fn log_level_is_checked_like_zap() {
    assert_eq!(config(&["--log-level=DEBUG"], &[]).logging.level, "debug");
    assert_eq!(
        exit(&["--log-level=verbose"], &[]).1,
        "failed to verify flags: unrecognized level: \"verbose\"\n"
    );
    assert_eq!(
        exit(&["--logger=capnslog"], &[]).1,
        "failed to verify flags: --logger=capnslog is removed in v3.5\n"
    );
}
