//! Logging as etcd's zap logger does it: `--logger`, `--log-level`, `--log-outputs` and
//! `--log-format` (etcd `embed/config_logging.go`).
//!
//! The default format is one JSON object per line with zap's keys — `level` (lower case),
//! `ts` (RFC 3339 UTC, microseconds), `caller` (file:line), `msg`, then the event's fields —
//! so log pipelines built for etcd parse Mainstay's lines unchanged. Values of keys are never
//! logged (a rule of the code base, not of this module).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// `--log-outputs` value meaning "stderr, or the journal under systemd" (etcd `DefaultLogOutput`).
pub const OUTPUT_DEFAULT: &str = "default";
/// `--log-outputs` value for the systemd journal (etcd `JournalLogOutput`); Mainstay writes
/// to stderr, which systemd hands to the journal.
pub const OUTPUT_JOURNAL: &str = "systemd/journal";

/// The logging settings taken from the etcd flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `--logger`; only `zap` passes the configuration check (etcd 3.5 removed `capnslog`).
    pub logger: String,
    /// `--log-level`, lower case.
    pub level: String,
    /// `--log-outputs`: `default`, `stderr`, `stdout`, `systemd/journal` or file paths.
    pub outputs: Vec<String>,
    /// `--log-format` (etcd 3.6): `json` or `console`.
    pub format: String,
}

/// Installs the global subscriber for `settings`, which the configuration has already checked
/// with etcd's rules (`config::resolve`: logger, level, outputs, format).
///
/// # Errors
/// An output file that cannot be opened.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let writer = make_writer(settings)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},openraft=warn,fjall=warn,lsm_tree=warn",
            tracing_level(&settings.level)
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match settings.format.as_str() {
        "console" => builder.with_ansi(false).try_init(),
        _ => builder.event_format(ZapJson).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

/// The writer for `--log-outputs` (empty means `default`).
fn make_writer(settings: &LogSettings) -> Result<BoxMakeWriter, String> {
    let outputs: Vec<&str> = if settings.outputs.is_empty() {
        vec![OUTPUT_DEFAULT]
    } else {
        settings.outputs.iter().map(String::as_str).collect()
    };
    let mut targets = Vec::new();
    for output in outputs {
        targets.push(match output {
            OUTPUT_DEFAULT | OUTPUT_JOURNAL | "stderr" => Target::Stderr,
            "stdout" => Target::Stdout,
            path => Target::File(Arc::new(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open log output {path}: {e}"))?,
            ))),
        });
    }
    Ok(BoxMakeWriter::new(Outputs(targets)))
}

/// etcd's `--log-level` (debug, info, warn, error, dpanic, panic, fatal) as a tracing level.
pub fn tracing_level(etcd_level: &str) -> &'static str {
    match etcd_level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" | "dpanic" => "error",
        _ => "info",
    }
}

#[derive(Clone)]
enum Target {
    Stderr,
    Stdout,
    File(Arc<Mutex<File>>),
}

/// Every `--log-outputs` target; each log line is written to all of them.
#[derive(Clone)]
struct Outputs(Vec<Target>);

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Outputs;
    fn make_writer(&'a self) -> Outputs {
        self.clone()
    }
}

impl io::Write for Outputs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for target in &self.0 {
            match target {
                Target::Stderr => io::stderr().write_all(buf)?,
                Target::Stdout => io::stdout().write_all(buf)?,
                Target::File(f) => f
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .write_all(buf)?,
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// zap's production JSON encoder layout.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::from(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("ts".into(), Value::from(timestamp()));
        let file = meta.file().unwrap_or(meta.target());
        let caller = match meta.line() {
            Some(n) => format!("{}:{n}", file.trim_start_matches("src/")),
            None => file.to_owned(),
        };
        line.insert("caller".into(), Value::from(caller));
        let mut fields = Fields {
            msg: String::new(),
            rest: Map::new(),
        };
        event.record(&mut fields);
        line.insert("msg".into(), Value::from(fields.msg));
        for (k, v) in fields.rest {
            line.insert(k, v);
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct Fields {
    msg: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), Value::from(value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = text;
        } else {
            self.rest.insert(field.name().to_owned(), Value::from(text));
        }
    }
}

/// Now as RFC 3339 UTC with microseconds, e.g. `2026-11-29T12:00:00.123456Z` (zap's ISO 8601
/// time encoder, in UTC).
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_epoch_map_to_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
    }
}
