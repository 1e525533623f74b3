//! `etcdctl watch` (Debian `etcd-client` 3.4.23, API v3) against Mainstay and against the real
//! etcd 3.4.23 side by side: every test starts both servers (each in its own temporary
//! directory), makes the same writes on each, runs the same etcdctl command against each and
//! requires the same stdout, stderr and exit code.
//!
//! Normalised, because it must differ between two clusters, and nothing else:
//! - `cluster_id`, `member_id` and `raft_term` in the `Header` of `-w json` output (the IDs are
//!   derived from the peer URL, whose port is random; the term depends on how each server's
//!   election went). The fields stay in place with the value 0, so a missing or extra field
//!   still shows.
//! - In the live watch without `--rev`: how many of the readiness probes (`put live ready`,
//!   repeated until the watcher prints one) arrive after the watcher registered is timing, so
//!   the leading run of probe events is collapsed to one.
//!
//! `etcdctl watch` never exits on its own unless the server cancels the watch. A history replay
//! is read until the expected number of events arrived (with a deadline), then a sentinel write
//! on a watched key is made and its event awaited, so anything the server sends between the
//! replayed history and the sentinel shows up too; then etcdctl is killed. Every wait has a
//! deadline; a wait etcd does not satisfy fails the test (the expectation is wrong), a wait
//! Mainstay does not satisfy only ends early and the comparison reports the difference.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Kind, Pair, Server, etcdctl_bin};

/// How long one wait for etcdctl output may take.
const WAIT: Duration = Duration::from_secs(10);
/// Upper bound on the chunks one wait consumes (every loop is bounded in count as in time).
const MAX_CHUNKS: usize = 100_000;
/// The value of the sentinel write that ends a history replay.
const SENTINEL: &str = "sentinel";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

// ---------------------------------------------------------------- servers

/// Runs an etcdctl command that must succeed with nothing on stderr; returns stdout.
fn ctl(s: &Server, args: &[&str]) -> String {
    let (success, stdout, stderr) = s.etcdctl(args);
    assert!(
        success && stderr.is_empty(),
        "{:?}: etcdctl {args:?}: {stderr}",
        s.kind
    );
    stdout
}

fn put(s: &Server, key: &str, value: &str) {
    assert_eq!(
        ctl(s, &["put", key, value]),
        "OK\n",
        "{:?}: put {key} {value}",
        s.kind
    );
}

/// `etcdctl del ARGS`; asserts the number of deleted keys.
fn del(s: &Server, args: &[&str], deleted: usize) {
    let argv: Vec<&str> = ["del"].iter().chain(args).copied().collect();
    assert_eq!(
        ctl(s, &argv),
        format!("{deleted}\n"),
        "{:?}: del {args:?}",
        s.kind
    );
}

/// A non-interactive `etcdctl txn` reading `script` from stdin (one revision for all its ops).
fn txn(s: &Server, script: &str) {
    let mut child = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", s.endpoint()))
        .arg("txn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.starts_with(b"SUCCESS\n"),
        "{:?}: txn {script:?}: {}",
        s.kind,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server's current revision (the header of a `get -w json`).
fn revision(s: &Server) -> i64 {
    let v: Value = serde_json::from_str(&ctl(s, &["get", "-w", "json", "any"])).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

// ---------------------------------------------------------------- a running etcdctl

/// Everything etcdctl printed, and how it ended (`None`: killed by the test).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// An etcdctl process whose stdout and stderr are collected by reader threads; killed when
/// dropped.
struct Etcdctl {
    kind: Kind,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Chunk>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Etcdctl {
    fn spawn(s: &Server, args: &[&str]) -> Etcdctl {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", s.endpoint()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || pipe_reader(out, tx, Chunk::Stdout));
        std::thread::spawn(move || pipe_reader(err, tx2, Chunk::Stderr));
        Etcdctl {
            kind: s.kind,
            stdin: child.stdin.take(),
            child,
            rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Takes output until `done(stdout, stderr)` holds or `within` has passed (or both pipes
    /// closed); returns whether `done` held. A wait etcd does not satisfy fails the test.
    fn wait_for(&mut self, what: &str, within: Duration, done: impl Fn(&str, &str) -> bool) -> bool {
        let reached = self.wait_quiet(within, done);
        if self.kind == Kind::Etcd {
            assert!(
                reached,
                "etcd: no {what} within {within:?}; stdout {:?} stderr {:?}",
                self.stdout(),
                self.stderr()
            );
        }
        reached
    }

    /// [`Etcdctl::wait_for`] without the etcd check (for polls that may time out).
    fn wait_quiet(&mut self, within: Duration, done: impl Fn(&str, &str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        for _ in 0..MAX_CHUNKS {
            if done(&self.stdout(), &self.stderr()) {
                return true;
            }
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Chunk::Stdout(b)) => self.stdout.extend(b),
                Ok(Chunk::Stderr(b)) => self.stderr.extend(b),
                Err(_) => return done(&self.stdout(), &self.stderr()),
            }
        }
        false
    }

    /// Writes one line to etcdctl's stdin (interactive mode).
    fn line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Kills etcdctl and returns what it printed.
    fn kill(mut self) -> Out {
        let _ = self.child.kill();
        self.finish()
    }

    /// Closes stdin and waits (bounded) for etcdctl to exit; kills it at the deadline.
    fn exit(mut self) -> Out {
        self.finish()
    }

    fn finish(&mut self) -> Out {
        self.stdin = None;
        // Both pipes reach EOF when the process is gone (it starts no children).
        let deadline = Instant::now() + WAIT;
        for _ in 0..MAX_CHUNKS {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Chunk::Stdout(b)) => self.stdout.extend(b),
                Ok(Chunk::Stderr(b)) => self.stderr.extend(b),
                Err(_) => break,
            }
        }
        if Instant::now() >= deadline {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        Out {
            code: status.code(),
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Etcdctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards everything read from `pipe` until EOF.
fn pipe_reader(mut pipe: impl Read, tx: mpsc::Sender<Chunk>, wrap: fn(Vec<u8>) -> Chunk) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(wrap(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- history replays

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// etcdctl's default: per event its type, then (with --prev-kv) the previous key and
    /// value, then the key and value, one per line.
    Simple,
    /// `-w json`: one `clientv3.WatchResponse` per line.
    Json,
}

/// Events etcdctl printed so far: `PUT`/`DELETE` lines (no test key or value is spelled so),
/// or the events of the complete JSON lines.
fn events(format: Format, stdout: &str) -> usize {
    match format {
        Format::Simple => stdout.lines().filter(|l| *l == "PUT" || *l == "DELETE").count(),
        Format::Json => stdout
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
                v["Events"].as_array().map_or(0, Vec::len)
            })
            .sum(),
    }
}

/// Runs `etcdctl ARGS` (a watch from a past revision), waits for `replayed` events, writes
/// `SENTINEL` to `sentinel_key` (which the watch covers), waits for its event, kills etcdctl.
fn replay(s: &Server, args: &[&str], replayed: usize, sentinel_key: &str) -> Out {
    let format = if args.windows(2).any(|w| w == ["-w", "json"]) {
        Format::Json
    } else {
        Format::Simple
    };
    let mut w = Etcdctl::spawn(s, args);
    w.wait_for(&format!("{replayed} replayed events"), WAIT, |o, _| {
        events(format, o) >= replayed
    });
    put(s, sentinel_key, SENTINEL);
    w.wait_for("the sentinel event", WAIT, |o, _| match format {
        // The last replayed event may be an earlier sentinel: count, and see the new one whole.
        Format::Simple => events(format, o) > replayed && o.ends_with(&format!("\n{SENTINEL}\n")),
        Format::Json => events(format, o) > replayed,
    });
    let mut out = w.kill();
    if format == Format::Json {
        out.stdout = normalise_json(&out.stdout);
    }
    out
}

/// Sets `cluster_id`, `member_id` and `raft_term` to 0 wherever they appear (only response
/// headers carry these names; keys and values are base64 in JSON output).
fn normalise_json(stdout: &str) -> String {
    let mut text = stdout.to_string();
    for field in ["cluster_id", "member_id", "raft_term"] {
        let pat = format!("\"{field}\":");
        let mut res = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find(&pat) {
            let after = &rest[i + pat.len()..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            res.push_str(&rest[..i + pat.len()]);
            res.push_str(if digits > 0 { "0" } else { "" });
            rest = &after[digits..];
        }
        res.push_str(rest);
        text = res;
    }
    text
}

/// Collects etcd's and Mainstay's results per case; `check` fails listing every difference.
#[derive(Default)]
struct Cases(Vec<(String, Out, Out)>);

impl Cases {
    fn add(&mut self, case: &str, etcd: Out, mainstay: Out) {
        self.0.push((case.to_string(), etcd, mainstay));
    }

    /// Runs `run` against etcd, then Mainstay, and records the pair.
    fn run(&mut self, p: &Pair, case: &str, run: impl Fn(&Server) -> Out) {
        let etcd = run(&p.etcd);
        let mainstay = run(&p.mainstay);
        self.add(case, etcd, mainstay);
    }

    fn check(&self) {
        let diffs: Vec<String> = self
            .0
            .iter()
            .filter(|(_, e, m)| e != m)
            .map(|(case, e, m)| format!("`{case}`\n  etcd:     {e:?}\n  mainstay: {m:?}"))
            .collect();
        assert!(
            diffs.is_empty(),
            "etcdctl output differs from etcd's:\n{}",
            diffs.join("\n")
        );
    }
}

// ---------------------------------------------------------------- tests

/// `watch KEY --rev=N` replays the key's history: puts, deletes, a re-create, and nothing of
/// neighbouring keys.
#[tokio::test]
async fn watch_key_from_a_revision_replays_puts_deletes_and_recreates() {
    let p = Pair::start().await;
    for s in p.both() {
        put(s, "a", "1"); // @2
        put(s, "a", "2"); // @3
        put(s, "ab", "x"); // @4, not key a
        put(s, "0", "y"); // @5
        del(s, &["a"], 1); // @6
        del(s, &["a"], 0); // no revision
        put(s, "a", "3"); // @7, version 1 again
        put(s, "a", "4"); // @8
        del(s, &["a", "b"], 2); // @9: a and ab
        put(s, "a", "5"); // @10
        assert_eq!(revision(s), 10);
    }
    let mut cases = Cases::default();
    cases.run(&p, "watch a --rev=1", |s| {
        replay(s, &["watch", "a", "--rev=1"], 7, "a")
    });
    // Each replay's sentinel is one more event of `a`.
    cases.run(&p, "watch a --rev=2", |s| {
        replay(s, &["watch", "a", "--rev=2"], 8, "a")
    });
    cases.run(&p, "watch --rev=6 a", |s| {
        replay(s, &["watch", "--rev=6", "a"], 7, "a")
    });
    cases.run(&p, "watch a --rev=10", |s| {
        replay(s, &["watch", "a", "--rev=10"], 4, "a")
    });
    cases.run(&p, "watch ab --rev 3", |s| {
        replay(s, &["watch", "ab", "--rev", "3"], 2, "ab")
    });
    cases.check();
}

/// `watch --prefix P --rev=N`: every key under the prefix, a range delete as one event per key
/// in one revision, keys beside the prefix left out.
#[tokio::test]
async fn watch_prefix_from_a_revision() {
    let p = Pair::start().await;
    for s in p.both() {
        put(s, "p/b", "1"); // @2
        put(s, "p/a", "2"); // @3
        put(s, "p", "3"); // @4, outside p/
        put(s, "p0", "4"); // @5, outside p/ ('0' > '/')
        put(s, "p/", "5"); // @6, the prefix itself
        put(s, "p/b", "6"); // @7
        txn(s, "\nput p/c 7\nput p/a 8\nput q 9\n\n\n"); // @8: two events under p/
        del(s, &["p/", "--prefix"], 4); // @9: p/, p/a, p/b, p/c
        put(s, "p/a", "10"); // @10
        del(s, &["p", "--prefix"], 3); // @11: p, p/a, p0
    }
    let mut cases = Cases::default();
    cases.run(&p, "watch --prefix p/ --rev=1", |s| {
        replay(s, &["watch", "--prefix", "p/", "--rev=1"], 12, "p/z")
    });
    cases.run(&p, "watch --prefix p/ --rev=8", |s| {
        replay(s, &["watch", "--prefix", "p/", "--rev=8"], 9, "p/z")
    });
    cases.run(&p, "watch --prefix p --rev=9", |s| {
        replay(s, &["watch", "--prefix", "p", "--rev=9"], 10, "p/z")
    });
    cases.run(&p, "watch --prefix '' --rev=11", |s| {
        replay(s, &["watch", "--prefix", "", "--rev=11"], 6, "z")
    });
    cases.check();
}

/// `watch KEY END --rev=N`: the half-open range [KEY, END).
#[tokio::test]
async fn watch_key_range_from_a_revision() {
    let p = Pair::start().await;
    for s in p.both() {
        for (k, v) in [
            ("a", "1"),
            ("b", "2"),
            ("bb", "3"),
            ("c", "4"),
            ("cz", "5"),
            ("d", "6"),
            ("e", "7"),
        ] {
            put(s, k, v); // @2..=8
        }
        put(s, "b", "8"); // @9
        del(s, &["bb"], 1); // @10
        del(s, &["a", "z"], 6); // @11: a b c cz d e
        put(s, "d", "9"); // @12, END is exclusive
        put(s, "c", "10"); // @13
    }
    let mut cases = Cases::default();
    cases.run(&p, "watch b d --rev=1", |s| {
        replay(s, &["watch", "b", "d", "--rev=1"], 10, "c")
    });
    cases.run(&p, "watch --rev=10 bb c", |s| {
        replay(s, &["watch", "--rev=10", "bb", "c"], 1, "bb")
    });
    cases.run(&p, "watch c d --rev=11", |s| {
        replay(s, &["watch", "c", "d", "--rev=11"], 4, "c")
    });
    cases.check();
}

/// `watch --prev-kv`: PUT events carry the replaced pair (none for a create), DELETE events the
/// deleted one.
#[tokio::test]
async fn watch_prev_kv_on_put_and_delete_events() {
    let p = Pair::start().await;
    for s in p.both() {
        put(s, "k", "v1"); // @2, a create: no prev
        put(s, "k", "v2"); // @3
        del(s, &["k"], 1); // @4
        put(s, "k", "v3"); // @5, a re-create: no prev
        put(s, "k/x", "x1"); // @6
        put(s, "k/x", "x2"); // @7
        del(s, &["k", "--prefix"], 2); // @8: k, k/x
    }
    let mut cases = Cases::default();
    cases.run(&p, "watch k --prev-kv --rev=1", |s| {
        replay(s, &["watch", "k", "--prev-kv", "--rev=1"], 5, "k")
    });
    cases.run(&p, "watch --prev-kv --prefix k --rev=4", |s| {
        replay(s, &["watch", "--prev-kv", "--prefix", "k", "--rev=4"], 7, "k/x")
    });
    cases.run(&p, "watch --prev-kv k k0 --rev=7", |s| {
        replay(s, &["watch", "--prev-kv", "k", "k0", "--rev=7"], 5, "k/x")
    });
    cases.check();
}

/// `-w json` of a history replay: the responses (their batching, header revisions, events,
/// prev_kv, the `CompactRevision`/`Canceled`/`Created` fields etcdctl prints).
#[tokio::test]
async fn watch_json_history_replay() {
    let p = Pair::start().await;
    for s in p.both() {
        put(s, "j/a", "1"); // @2
        put(s, "j/a", "2"); // @3
        put(s, "j/b", ""); // @4, empty value
        txn(s, "\nput j/c 3\nput j/a 4\n\n\n"); // @5
        del(s, &["j/a"], 1); // @6
        del(s, &["j/", "--prefix"], 2); // @7
        put(s, "j/a", "5"); // @8
    }
    let mut cases = Cases::default();
    cases.run(&p, "watch --prefix j/ --rev=1 -w json", |s| {
        replay(s, &["watch", "--prefix", "j/", "--rev=1", "-w", "json"], 9, "j/a")
    });
    cases.run(&p, "watch --prefix j/ --rev=3 --prev-kv -w json", |s| {
        replay(
            s,
            &["watch", "--prefix", "j/", "--rev=3", "--prev-kv", "-w", "json"],
            9,
            "j/a",
        )
    });
    cases.run(&p, "watch j/a --rev=6 -w json", |s| {
        replay(s, &["watch", "j/a", "--rev=6", "-w", "json"], 4, "j/a")
    });
    cases.check();
}

/// `watch --rev` below the compaction revision: the server cancels the watch, etcdctl prints
/// why and exits 5; from the compaction revision itself history is still there.
#[tokio::test]
async fn watch_from_a_compacted_revision_is_cancelled() {
    let p = Pair::start().await;
    for s in p.both() {
        for v in 1..=4 {
            put(s, "c", &format!("v{v}")); // @2..=5
        }
        assert_eq!(ctl(s, &["compaction", "4"]), "compacted revision 4\n");
    }
    let mut cases = Cases::default();
    for rev in ["--rev=1", "--rev=3"] {
        for json in [false, true] {
            let mut args = vec!["watch", "c", rev];
            if json {
                args.extend(["-w", "json"]);
            }
            cases.run(&p, &args.join(" "), |s| {
                let mut out = Etcdctl::spawn(s, &args).exit();
                out.stdout = normalise_json(&out.stdout);
                out
            });
        }
    }
    // Expected of etcd, so that the comparison above is not between two hangs.
    let (_, etcd, _) = &cases.0[0];
    assert_eq!(
        (etcd.code, etcd.stdout.as_str(), etcd.stderr.as_str()),
        (
            Some(5),
            "",
            format!("watch was canceled ({COMPACTED})\nError: watch is canceled by the server\n").as_str()
        )
    );
    cases.run(&p, "watch c --rev=4", |s| {
        replay(s, &["watch", "c", "--rev=4"], 2, "c")
    });
    cases.check();
}

/// Interactive `watch -i` fed on stdin: `watch KEY` and `watch --prefix P` lines add watchers on
/// one stream, `progress` makes every watcher print a progress line, a watch from a compacted
/// revision is cancelled by the server, `cancel` is no command in etcdctl 3.4, and the end of
/// stdin ends etcdctl (exit 3).
#[tokio::test]
async fn watch_interactive_on_stdin() {
    let p = Pair::start().await;
    let session = |s: &Server| -> Vec<(String, Out)> {
        put(s, "a", "1"); // @2
        put(s, "a", "2"); // @3
        assert_eq!(ctl(s, &["compaction", "3"]), "compacted revision 3\n");
        let mut w = Etcdctl::spawn(s, &["watch", "-i"]);
        let mut steps = Vec::new();
        let mut snap = |step: &str, w: &Etcdctl| {
            steps.push((
                step.to_string(),
                Out {
                    code: None,
                    stdout: w.stdout(),
                    stderr: w.stderr(),
                },
            ));
        };
        // --rev: the put below is seen whether or not the watcher registered first.
        w.line("watch --rev=4 x");
        put(s, "x", "1"); // @4
        w.wait_for("x=1", WAIT, |o, _| o.ends_with("PUT\nx\n1\n"));
        snap("watch --rev=4 x; put x 1", &w);
        w.line("watch --prefix --rev=5 y");
        put(s, "y/1", "2"); // @5
        w.wait_for("y/1=2", WAIT, |o, _| o.ends_with("PUT\ny/1\n2\n"));
        put(s, "x", "3"); // @6
        put(s, "z", "0"); // @7, watched by neither
        w.wait_for("x=3", WAIT, |o, _| o.ends_with("PUT\nx\n3\n"));
        snap("watch --prefix --rev=5 y; put y/1 2; put x 3; put z 0", &w);
        w.line("progress");
        let progress = "progress notify: 7\n".repeat(2);
        w.wait_for("two progress lines", WAIT, |o, _| o.ends_with(&progress));
        snap("progress", &w);
        w.line("watch --rev=2 a");
        let cancelled = format!("watch was canceled ({COMPACTED})\n");
        w.wait_for("the cancellation", WAIT, |_, e| e.ends_with(&cancelled));
        snap("watch --rev=2 a", &w);
        // The cancelled watcher is gone: still two progress lines.
        w.line("progress");
        let progress = format!("{progress}{progress}");
        w.wait_for("two more progress lines", WAIT, |o, _| o.ends_with(&progress));
        snap("progress again", &w);
        w.line("cancel");
        let invalid = "Invalid command cancel (only support watch)\n";
        w.wait_for("the invalid-command line", WAIT, |_, e| e.ends_with(invalid));
        put(s, "y/2", "4"); // @8: the watchers still run
        w.wait_for("y/2=4", WAIT, |o, _| o.ends_with("PUT\ny/2\n4\n"));
        snap("cancel; put y/2 4", &w);
        let out = w.exit();
        steps.push(("end of stdin".to_string(), out));
        steps
    };
    let etcd = session(&p.etcd);
    let mainstay = session(&p.mainstay);
    assert_eq!(
        etcd.last().unwrap().1.stderr.lines().last(),
        Some("Error: Error reading watch request line: EOF")
    );
    let mut cases = Cases::default();
    for ((step, e), (_, m)) in etcd.into_iter().zip(mainstay) {
        cases.add(&format!("watch -i, after: {step}"), e, m);
    }
    cases.check();
}

/// A live `etcdctl watch KEY` (no `--rev`: the server starts it at the next revision), and a
/// live `watch --prev-kv KEY --rev=N` beside it, see the writes made while they run.
#[tokio::test]
async fn watch_live_key_sees_later_writes() {
    let p = Pair::start().await;
    let live = |s: &Server| -> [Out; 2] {
        put(s, "live", "before"); // @2, before the watch: not shown
        let mut plain = Etcdctl::spawn(s, &["watch", "live"]);
        // Poll until the watcher is registered: probe puts until one is printed.
        let probe = "PUT\nlive\nready\n";
        let mut ready = false;
        for _ in 0..40 {
            put(s, "live", "ready");
            if plain.wait_quiet(Duration::from_millis(250), |o, _| o.contains(probe)) {
                ready = true;
                break;
            }
        }
        assert!(ready || s.kind == Kind::Mainstay, "etcd never printed a probe");
        let rev = revision(s) + 1;
        let mut prev = Etcdctl::spawn(s, &["watch", "--prev-kv", "live", &format!("--rev={rev}")]);
        put(s, "live2", "x"); // neither key
        put(s, "liv", "y");
        put(s, "live", "1");
        del(s, &["live"], 1);
        del(s, &["live"], 0);
        put(s, "live", "again");
        txn(s, "\nput live t\nput other o\n\n\n");
        del(s, &["live", "livf"], 2); // live, live2
        put(s, "live", SENTINEL);
        let end = format!("\n{SENTINEL}\n");
        plain.wait_for("the sentinel", WAIT, |o, _| o.ends_with(&end));
        prev.wait_for("the sentinel with --prev-kv", WAIT, |o, _| o.ends_with(&end));
        let mut plain = plain.kill();
        // How many probes landed after the watcher registered is timing: keep one.
        let after = plain.stdout.trim_start_matches(probe).to_string();
        if after.len() < plain.stdout.len() {
            plain.stdout = format!("{probe}{after}");
        }
        [plain, prev.kill()]
    };
    let [etcd_plain, etcd_prev] = live(&p.etcd);
    let [m_plain, m_prev] = live(&p.mainstay);
    let mut cases = Cases::default();
    cases.add("watch live", etcd_plain, m_plain);
    cases.add("watch --prev-kv live --rev=N", etcd_prev, m_prev);
    cases.check();
}
