//! `etcdctl lease ...` and `etcdctl put --lease` (Debian `etcd-client` 3.4.23, API v3) against
//! Mainstay and against the real etcd 3.4.23 side by side (etcd-compat.md §2.7, §3, §8.2):
//! every test starts both servers (each in its own temporary directory), runs the same command
//! sequence against each and requires the same exit code, stdout and stderr for every command.
//! All differing commands are reported together.
//!
//! Normalised, because it must differ between two clusters or runs, and nothing else:
//! - Lease IDs: server-chosen IDs are random (etcd derives them from the member ID and a clock).
//!   Each ID a `lease grant` printed becomes `<Ln>` (n = order of grant) wherever it appears —
//!   as etcdctl's `%016x` hex in simple output, as decimal in `-w json` / `-w fields`. Later
//!   commands name a lease as `{Ln}`, replaced by that server's hex ID. IDs the test picks
//!   itself (e.g. the unknown lease `1234`) are not touched.
//! - `cluster_id`, `member_id`, `raft_term` of response headers (`-w json`) and `ClusterID`,
//!   `MemberID`, `RaftTerm` (`-w fields`): the IDs derive from the peer URL, whose port is
//!   random; the term depends on each election. They stay in place with value 0. Revisions are
//!   compared as printed.
//! - Remaining TTL of `lease timetolive` (`remaining(Rs)`, `"ttl":R`, `"TTL" : R`): a truncated
//!   count of seconds read a few milliseconds after a grant or keep-alive, so etcd prints G-1
//!   for granted TTL G; Mainstay prints G until its expiry task first sees the lease (it starts
//!   a lease's clock then, ≤ 500 ms later) and G-1 afterwards. A value of G-1 or G becomes
//!   `R∈{G-1,G}`; any other value stays as printed and shows as a difference.
//! - Order of `lease list` IDs and of `timetolive --keys` keys: etcd 3.4 lists both from Go maps
//!   (random order on every call), so those lists are sorted after normalisation.
//! - stderr lines with etcdctl 3.4's JSON client warnings (`{"level":"warn",...}`, logged
//!   before each server error): they carry a timestamp and a random client ID.

use std::process::Command;

use crate::harness::{Kind, Pair, Server, etcdctl_bin};

/// A lease ID no test grants (printed by etcdctl as `0000000000001234`).
const UNKNOWN: &str = "1234";

// ---------------------------------------------------------------- servers

// ---------------------------------------------------------------- one command sequence

/// One command as run (with `{Ln}` placeholders) and what it printed, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    cmd: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A command sequence against one server.
struct Session<'a> {
    server: &'a Server,
    /// The hex ID of each granted lease, in grant order (`{L1}` is `leases[0]`).
    leases: Vec<String>,
    steps: Vec<Step>,
}

impl<'a> Session<'a> {
    fn new(server: &'a Server) -> Session<'a> {
        Session {
            server,
            leases: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Runs etcdctl with `args` (`{Ln}` replaced by the hex ID of the n-th grant) and records
    /// the normalised result. `expect_ok` is checked on etcd only: it pins that the sequence
    /// does what the test means; Mainstay's answers are judged by the comparison.
    fn run(&mut self, args: &[&str], expect_ok: bool) {
        let argv: Vec<String> = args.iter().map(|a| self.fill(a)).collect();
        let out = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.server.endpoint()))
            .args(&argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if self.server.kind == Kind::Etcd {
            assert_eq!(
                out.status.success(),
                expect_ok,
                "etcd: etcdctl {argv:?}: stdout {stdout:?} stderr {stderr:?}"
            );
        }
        let granting = args.starts_with(&["lease", "grant"]);
        if granting && out.status.success() {
            let id = granted_id(&stdout)
                .unwrap_or_else(|| panic!("{:?}: no lease ID in {stdout:?}", self.server.kind));
            self.leases.push(id);
        }
        let cmd = args.join(" ");
        let step = Step {
            stdout: self.normalise(&cmd, &stdout),
            stderr: self.normalise(&cmd, &drop_warnings(&stderr)),
            code: out.status.code(),
            cmd,
        };
        self.steps.push(step);
    }

    fn ok(&mut self, args: &[&str]) {
        self.run(args, true);
    }

    fn fails(&mut self, args: &[&str]) {
        self.run(args, false);
    }

    fn fill(&self, arg: &str) -> String {
        let mut a = arg.to_string();
        // Highest first, so `{L1}` does not eat the start of `{L10}`.
        for (i, hex) in self.leases.iter().enumerate().rev() {
            a = a.replace(&format!("{{L{}}}", i + 1), hex);
        }
        a
    }

    fn normalise(&self, cmd: &str, text: &str) -> String {
        let mut t = zero_header_fields(text);
        for (i, hex) in self.leases.iter().enumerate().rev() {
            let dec = i64::from_str_radix(hex, 16).unwrap().to_string();
            let name = format!("<L{}>", i + 1);
            t = t.replace(hex.as_str(), &name).replace(&dec, &name);
        }
        if cmd.starts_with("lease timetolive") {
            t = remaining_ttl(&t);
            t = sort_keys(&t);
        }
        if cmd.starts_with("lease list") {
            t = sort_lease_list(&t);
        }
        t
    }
}

/// The ID `lease grant` printed: `lease <hex> granted ...` (simple), `"ID":<dec>` (json) or
/// `"ID" : <dec>` (fields); returned as etcdctl's `%016x`.
fn granted_id(stdout: &str) -> Option<String> {
    if let Some(rest) = stdout.strip_prefix("lease ") {
        return rest.split(' ').next().map(str::to_string);
    }
    let pos = stdout
        .find("\"ID\":")
        .map(|p| p + 5)
        .or_else(|| stdout.find("\"ID\" : ").map(|p| p + 7))?;
    let digits: String = stdout[pos..].chars().take_while(char::is_ascii_digit).collect();
    Some(format!("{:016x}", digits.parse::<i64>().ok()?))
}

fn drop_warnings(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Replaces the number after each `pattern` (e.g. `"raft_term":`) by `0`.
fn zero_number_after(text: &str, pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(p) = rest.find(pattern) {
        let (head, tail) = rest.split_at(p + pattern.len());
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push('0');
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn zero_header_fields(text: &str) -> String {
    let mut t = text.to_string();
    for pattern in [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
    ] {
        t = zero_number_after(&t, pattern);
    }
    t
}

/// The integer right after `pattern` in `text`, and where it starts and ends.
fn number_after(text: &str, pattern: &str) -> Option<(i64, usize, usize)> {
    let start = text.find(pattern)? + pattern.len();
    let len = text[start..]
        .char_indices()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
        .count();
    let n = text[start..start + len].parse().ok()?;
    Some((n, start, start + len))
}

/// How far below the granted TTL a remaining TTL may read: G-1 normally (see the module
/// comment), more when etcdctl itself takes seconds to start on a loaded 2-core CI machine.
const REMAINING_SLACK_SECS: i64 = 3;

/// Remaining TTL R next to granted TTL G: `R∈{G-1,G}` when R is within
/// [`REMAINING_SLACK_SECS`] below G (see the module comment), otherwise unchanged. Handles the simple, json and fields formats of timetolive.
fn remaining_ttl(text: &str) -> String {
    let formats = [
        ("TTL(", "remaining("),
        ("\"granted-ttl\":", "\"ttl\":"),
        ("\"GrantedTTL\" : ", "\"TTL\" : "),
    ];
    for (granted_pat, remaining_pat) in formats {
        if let (Some((g, ..)), Some((r, from, to))) =
            (number_after(text, granted_pat), number_after(text, remaining_pat))
            && g > 0
            && (g - REMAINING_SLACK_SECS..=g).contains(&r)
        {
            return format!("{}R∈{{G-1,G}}{}", &text[..from], &text[to..]);
        }
    }
    text.to_string()
}

/// Sorts the attached keys of timetolive: `attached keys([b a])`, `"keys":["Yg==","YQ=="]` and
/// runs of `"Key" : ...` lines.
fn sort_keys(text: &str) -> String {
    let mut t = text.to_string();
    if let Some(start) = t.find("attached keys([").map(|p| p + "attached keys([".len())
        && let Some(len) = t[start..].find("])")
    {
        let mut keys: Vec<&str> = t[start..start + len].split(' ').collect();
        keys.sort_unstable();
        t = format!("{}{}{}", &t[..start], keys.join(" "), &t[start + len..]);
    }
    t = sort_json_array(&t, "\"keys\":[");
    sort_line_runs(&t, "\"Key\" : ")
}

/// Sorts the IDs of `lease list`: the lines after `found N leases`, the json `leases` array,
/// and runs of `"ID" : ` lines (fields).
fn sort_lease_list(text: &str) -> String {
    let t = if text.starts_with("found ") {
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1..].sort_unstable();
        lines.iter().map(|l| format!("{l}\n")).collect()
    } else {
        text.to_string()
    };
    let t = sort_json_array(&t, "\"leases\":[");
    sort_line_runs(&t, "\"ID\" : ")
}

/// Sorts the elements of the flat json array right after `pattern` (elements contain no `,`
/// of their own except inside `{...}` objects without nesting).
fn sort_json_array(text: &str, pattern: &str) -> String {
    let Some(start) = text.find(pattern).map(|p| p + pattern.len()) else {
        return text.to_string();
    };
    let Some(len) = text[start..].find(']') else {
        return text.to_string();
    };
    let body = &text[start..start + len];
    let mut items: Vec<&str> = if body.starts_with('{') {
        body.split_inclusive("},")
            .map(|s| s.trim_end_matches(','))
            .collect()
    } else {
        body.split(',').collect()
    };
    items.sort_unstable();
    format!("{}{}{}", &text[..start], items.join(","), &text[start + len..])
}

/// Sorts each run of consecutive lines starting with `prefix`.
fn sort_line_runs(text: &str, prefix: &str) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let run = lines[i..].iter().take_while(|l| l.starts_with(prefix)).count();
        lines[i..i + run].sort_unstable();
        i += run.max(1);
    }
    lines.concat()
}

/// Runs `script` against etcd and Mainstay and requires the same normalised result for every
/// command; reports every differing command at once.
async fn same_as_etcd(script: fn(&mut Session<'_>)) {
    let pair = Pair::start().await;
    let mut etcd = Session::new(&pair.etcd);
    script(&mut etcd);
    let mut mainstay = Session::new(&pair.mainstay);
    script(&mut mainstay);
    assert_eq!(etcd.steps.len(), mainstay.steps.len());
    let diffs: Vec<String> = etcd
        .steps
        .iter()
        .zip(&mainstay.steps)
        .filter(|(e, m)| e != m)
        .map(|(e, m)| format!("=== etcdctl {}\n=== etcd:\n{e}\n=== mainstay:\n{m}", e.cmd))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} commands differ from etcd:\n{}",
        diffs.len(),
        etcd.steps.len(),
        diffs.join("\n")
    );
}

// ---------------------------------------------------------------- tests

/// etcd §2.7: `lease grant` prints the ID and the effective TTL (below the 2 s minimum raised
/// to 2 s) in every output format; TTL > 9e9 s is refused with `too large lease TTL`.
#[tokio::test]
async fn lease_grant_prints_the_id_and_effective_ttl_like_etcd() {
    same_as_etcd(|s| {
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["lease", "grant", "1"]);
        s.ok(&["lease", "grant", "0"]);
        s.ok(&["lease", "grant", "600", "-w", "json"]);
        s.ok(&["lease", "grant", "600", "-w", "fields"]);
        s.ok(&["lease", "grant", "9000000000"]);
        s.fails(&["lease", "grant", "9000000001"]);
        s.fails(&["lease", "grant", "9000000001", "-w", "json"]);
        // Grants make no revision.
        s.ok(&["get", "k", "-w", "json"]);
    })
    .await;
}

/// etcd §2.3/§2.7: `put --lease` attaches a key (its `lease` field, `timetolive --keys`); a put
/// without lease detaches, `--ignore-lease` keeps the attachment, an unknown lease is
/// `requested lease not found`; timetolive of an unknown lease prints `already expired`.
#[tokio::test]
async fn put_lease_and_timetolive_with_keys_like_etcd() {
    same_as_etcd(|s| {
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["put", "--lease={L1}", "k/b", "1"]);
        s.ok(&["put", "--lease={L1}", "k/a", "2"]);
        s.ok(&["put", "k/c", "3"]);
        s.ok(&["lease", "timetolive", "{L1}"]);
        s.ok(&["lease", "timetolive", "--keys", "{L1}"]);
        s.ok(&["lease", "timetolive", "--keys", "{L1}", "-w", "json"]);
        s.ok(&["lease", "timetolive", "--keys", "{L1}", "-w", "fields"]);
        s.ok(&["lease", "timetolive", "{L1}", "-w", "json"]);
        s.ok(&["get", "k/a", "-w", "json"]);
        s.ok(&["get", "k/a", "-w", "fields"]);
        s.fails(&["put", &format!("--lease={UNKNOWN}"), "k/x", "4"]);
        // Detach k/a; keep k/b with --ignore-lease.
        s.ok(&["put", "k/a", "5"]);
        s.ok(&["put", "--ignore-lease", "k/b", "6"]);
        s.ok(&["get", "--prefix", "k/", "-w", "json"]);
        s.ok(&["lease", "timetolive", "--keys", "{L1}"]);
        s.fails(&["put", "--ignore-lease", "k/none", "7"]);
        // Move k/c to a second lease.
        s.ok(&["lease", "grant", "300"]);
        s.ok(&["put", "--lease={L2}", "k/c", "8"]);
        s.ok(&["lease", "timetolive", "--keys", "{L2}"]);
        s.ok(&["lease", "timetolive", UNKNOWN]);
        s.ok(&["lease", "timetolive", "--keys", UNKNOWN, "-w", "json"]);
        s.ok(&["lease", "timetolive", "--keys", UNKNOWN, "-w", "fields"]);
    })
    .await;
}

/// etcd §2.7: `lease keep-alive --once` prints the granted TTL after renewing; for an unknown
/// (or revoked) lease etcdctl gets TTL 0 and reports `requested lease not found`.
#[tokio::test]
async fn lease_keep_alive_once_like_etcd() {
    same_as_etcd(|s| {
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["lease", "keep-alive", "--once", "{L1}"]);
        s.ok(&["lease", "keep-alive", "--once", "{L1}", "-w", "json"]);
        s.ok(&["lease", "keep-alive", "--once", "{L1}", "-w", "fields"]);
        s.ok(&["lease", "timetolive", "{L1}"]);
        s.fails(&["lease", "keep-alive", "--once", UNKNOWN]);
        s.ok(&["lease", "revoke", "{L1}"]);
        s.fails(&["lease", "keep-alive", "--once", "{L1}"]);
    })
    .await;
}

/// etcd §2.7: `lease list` shows every live lease (`found N leases` and the IDs).
#[tokio::test]
async fn lease_list_shows_every_live_lease_like_etcd() {
    same_as_etcd(|s| {
        s.ok(&["lease", "list"]);
        s.ok(&["lease", "list", "-w", "json"]);
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["lease", "grant", "700"]);
        s.ok(&["lease", "grant", "800"]);
        s.ok(&["lease", "list"]);
        s.ok(&["lease", "list", "-w", "json"]);
        s.ok(&["lease", "list", "-w", "fields"]);
        s.ok(&["lease", "revoke", "{L2}"]);
        s.ok(&["lease", "list"]);
    })
    .await;
}

/// etcd §2.7: `lease revoke` deletes every attached key in one revision and forgets the lease;
/// revoking it again, or an unknown lease, fails with `requested lease not found`.
#[tokio::test]
async fn lease_revoke_deletes_attached_keys_like_etcd() {
    same_as_etcd(|s| {
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["lease", "grant", "600"]);
        s.ok(&["put", "--lease={L1}", "k/b", "1"]);
        s.ok(&["put", "--lease={L1}", "k/a", "2"]);
        s.ok(&["put", "k/c", "3"]);
        s.ok(&["get", "--prefix", "k/", "-w", "json"]);
        s.ok(&["lease", "revoke", "{L1}"]);
        s.ok(&["get", "--prefix", "k/", "-w", "json"]);
        s.fails(&["lease", "revoke", "{L1}"]);
        s.ok(&["lease", "timetolive", "--keys", "{L1}"]);
        s.fails(&["lease", "revoke", UNKNOWN]);
        s.fails(&["put", "--lease={L1}", "k/d", "4"]);
        // A lease without keys: no revision.
        s.ok(&["lease", "revoke", "{L2}", "-w", "json"]);
        s.ok(&["lease", "list"]);
    })
    .await;
}
