//! Unit tests of the etcd static Pod generator (kubeadm `phases/etcd/local.go` behaviour).

use super::*;

fn cfg() -> ManifestConfig {
    ManifestConfig {
        node_name: Some("cp1".to_owned()),
        advertise_address: Some("10.0.0.11".parse().unwrap()),
        ..ManifestConfig::default()
    }
}

#[test]
fn the_command_line_is_kubeadms_sorted_flag_list_with_mainstay_as_binary() {
    let pod = build(&cfg()).unwrap();
    let cmd = &pod.spec.containers[0].command;
    assert_eq!(cmd[0], "mainstay");
    let names: Vec<&str> = cmd[1..]
        .iter()
        .map(|a| a.trim_start_matches("--").split('=').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(cmd.contains(&"--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379".to_owned()));
    assert!(cmd.contains(&"--initial-cluster=cp1=https://10.0.0.11:2380".to_owned()));
    assert!(cmd.contains(&"--experimental-watch-progress-notify-interval=5s".to_owned()));
    assert!(!cmd.iter().any(|a| a.starts_with("--initial-cluster-state")));
    assert_eq!(pod.spec.containers[0].image, default_image());
}

#[test]
fn etcd_36_names_replace_the_experimental_flags() {
    let mut c = cfg();
    c.etcd_flag_names = Some(FlagNames::Etcd36);
    let args = command_args(&c).unwrap();
    assert_eq!(args["feature-gates"], "InitialCorruptCheck=true");
    assert_eq!(args["watch-progress-notify-interval"], "5s");
    assert!(!args.contains_key("experimental-initial-corrupt-check"));
    assert!(!args.contains_key("experimental-watch-progress-notify-interval"));
}

#[test]
fn an_ipv6_address_uses_the_ipv6_loopback_and_brackets() {
    let mut c = cfg();
    c.advertise_address = Some("fd00::11".parse().unwrap());
    let pod = build(&c).unwrap();
    let args = command_args(&c).unwrap();
    assert_eq!(
        args["listen-client-urls"],
        "https://[::1]:2379,https://[fd00::11]:2379"
    );
    assert_eq!(args["listen-metrics-urls"], "http://[::1]:2381");
    assert_eq!(pod.spec.containers[0].liveness_probe.http_get.host, "::1");
}

#[test]
fn join_writes_the_given_cluster_and_state_existing() {
    let mut c = cfg();
    c.initial_cluster = Some("cp0=https://10.0.0.10:2380,cp1=https://10.0.0.11:2380".to_owned());
    c.initial_cluster_state = Some("existing".to_owned());
    let args = command_args(&c).unwrap();
    assert_eq!(args["initial-cluster-state"], "existing");
    assert_eq!(
        args["initial-cluster"],
        "cp0=https://10.0.0.10:2380,cp1=https://10.0.0.11:2380"
    );
    c.initial_cluster_state = Some("bogus".to_owned());
    assert!(command_args(&c).is_err());
}

#[test]
fn extra_args_override_defaults_and_unknown_flags_are_refused() {
    let mut c = cfg();
    c.extra_args
        .insert("snapshot-count".to_owned(), "5000".to_owned());
    c.extra_args.insert(
        "listen-metrics-urls".to_owned(),
        "http://127.0.0.1:9999".to_owned(),
    );
    let pod = build(&c).unwrap();
    let cmd = &pod.spec.containers[0].command;
    assert!(cmd.contains(&"--snapshot-count=5000".to_owned()));
    // kubeadm points the probes at the first metrics URL.
    assert_eq!(pod.spec.containers[0].startup_probe.http_get.port, 9999);
    c.extra_args.insert("no-such-flag".to_owned(), "1".to_owned());
    let err = build(&c).unwrap_err();
    assert!(err.to_string().contains("--no-such-flag"), "{err}");
}

#[test]
fn node_name_and_address_are_required() {
    let mut c = cfg();
    c.node_name = None;
    assert!(build(&c).is_err());
    let mut c = cfg();
    c.advertise_address = None;
    assert!(build(&c).is_err());
}

#[test]
fn yaml_11_booleans_and_numbers_in_strings_are_quoted() {
    let mut pod = build(&cfg()).unwrap();
    for v in ["true", "yes", "on", "off", "n", "10", "1e3", "null", "~"] {
        pod.metadata.labels.insert(format!("k-{v}"), v.to_owned());
    }
    let yaml = render(&pod).unwrap();
    for v in ["true", "yes", "on", "off", "n", "10", "1e3", "null", "~"] {
        let plain = format!("k-{v}: {v}\n");
        assert!(!yaml.contains(&plain), "{v} left plain:\n{yaml}");
    }
    let back: Pod = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, pod);
}

#[test]
fn the_rendered_pod_round_trips_and_has_kubeadms_empty_fields() {
    let pod = build(&cfg()).unwrap();
    let yaml = render(&pod).unwrap();
    assert!(yaml.contains("creationTimestamp: null\n"), "{yaml}");
    assert!(yaml.ends_with("status: {}\n"), "{yaml}");
    assert!(
        yaml.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"),
        "{yaml}"
    );
    let back: Pod = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, pod);
    // The readiness probe starts at once: initialDelaySeconds is omitted, as Go's omitempty.
    let readiness = yaml
        .split("readinessProbe:")
        .nth(1)
        .unwrap()
        .split("resources:")
        .next()
        .unwrap();
    assert!(!readiness.contains("initialDelaySeconds"), "{readiness}");
}

#[test]
fn command_line_flags_override_the_config_file() {
    let file = ManifestConfig::from_yaml(
        Path::new("c.yaml"),
        "node-name: fromfile\nadvertise-address: 10.0.0.1\nimage: img:1\nextra-args:\n  snapshot-count: \"5\"\n",
    )
    .unwrap();
    let mut flags = ManifestConfig {
        node_name: Some("fromflag".to_owned()),
        ..ManifestConfig::default()
    };
    flags.extra_args.insert("max-txn-ops".to_owned(), "64".to_owned());
    let merged = file.overridden_by(flags);
    assert_eq!(merged.node_name.as_deref(), Some("fromflag"));
    assert_eq!(merged.image.as_deref(), Some("img:1"));
    assert_eq!(merged.extra_args.len(), 2);
    let err = ManifestConfig::from_yaml(Path::new("c.yaml"), "nodename: x\n").unwrap_err();
    assert!(err.to_string().starts_with("c.yaml: "), "{err}");
}

#[test]
fn write_creates_the_directory_and_a_0600_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    let path = write(&manifests, "x: 1\n").unwrap();
    assert_eq!(path, manifests.join("etcd.yaml"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
