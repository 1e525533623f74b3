//! The YAML config file (`--config-file` / `ETCD_CONFIG_FILE`).
//!
//! etcd reads the file with `sigs.k8s.io/yaml` into `embed.Config`, whose JSON tags are the flag
//! names: `name: x`, `data-dir: /var/lib/etcd`, `listen-client-urls: http://a:2379,http://b:2379`
//! (a comma string), `client-cert-auth: true` (a YAML boolean), `heartbeat-interval: 100`
//! (milliseconds) and durations as integer nanoseconds (`watch-progress-notify-interval:
//! 600000000000`). TLS settings live in nested `client-transport-security` and
//! `peer-transport-security` maps. Mainstay reads all of that, and is a little more lenient:
//! every flag name is accepted as a top-level key (including the TLS ones), durations may also be
//! Go duration strings (`5s`), lists may be YAML sequences, and scalars may be quoted. Unknown
//! keys, which etcd ignores silently, produce a warning.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::ConfigError;
use super::duration::{go_quote, parse_go_duration};
use super::flags::{self, FlagKind, FlagSpec, FlagValue};

/// Flags read from a config file, by name, plus warnings about what was skipped.
#[derive(Debug, Default)]
pub(super) struct FileSettings {
    pub values: BTreeMap<&'static str, FlagValue>,
    pub warnings: Vec<String>,
}

/// Reads and interprets the config file at `path`.
///
/// # Errors
/// [`ConfigError::Invalid`] if the file cannot be read, is not YAML, is not a mapping, or holds
/// a value of the wrong type for its key.
pub(super) fn load(path: &str) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        // Go's wording, e.g. "open /etc/etcd.yaml: no such file or directory".
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
        ConfigError::Invalid(format!("open {path}: {reason}"))
    })?;
    parse(path, &text)
}

/// Interprets config file `text`; `path` is only used in messages.
pub(super) fn parse(path: &str, text: &str) -> Result<FileSettings, ConfigError> {
    let bad = |msg: String| ConfigError::Invalid(format!("error parsing config file {path}: {msg}"));
    let doc: Option<Yaml> = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
    let entries = match doc {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::Map(entries)) => entries,
        Some(_) => {
            return Err(bad(
                "the top level must be a mapping of flag names to values".to_owned()
            ));
        }
    };
    let mut out = FileSettings::default();
    for (key, value) in entries {
        match key.as_str() {
            "client-transport-security" | "peer-transport-security" => {
                let peer = key.starts_with("peer");
                let Yaml::Map(inner) = value else {
                    if value == Yaml::Null {
                        continue;
                    }
                    return Err(bad(format!("invalid {key}: expected a mapping")));
                };
                for (inner_key, inner_value) in inner {
                    match transport_security_flag(peer, &inner_key).and_then(flags::lookup) {
                        Some(spec) => set(&mut out, spec, inner_value, &format!("{key}.{inner_key}"), &bad)?,
                        None => out.warnings.push(format!(
                            "unknown key {key}.{inner_key} in config file {path} ignored"
                        )),
                    }
                }
            }
            _ => {
                let name = if key == "experimental-snapshot-catch-up-entries" {
                    // etcd 3.6 reads this misspelt JSON tag too (etcd-io/etcd#15033).
                    "experimental-snapshot-catchup-entries"
                } else {
                    key.as_str()
                };
                match flags::lookup(name).filter(|s| !matches!(s.name, "config-file" | "version")) {
                    Some(spec) => set(&mut out, spec, value, &key, &bad)?,
                    None => out
                        .warnings
                        .push(format!("unknown key {key} in config file {path} ignored")),
                }
            }
        }
    }
    Ok(out)
}

fn set(
    out: &mut FileSettings,
    spec: &'static FlagSpec,
    value: Yaml,
    key: &str,
    bad: &dyn Fn(String) -> ConfigError,
) -> Result<(), ConfigError> {
    if let (Yaml::Str(v), "initial-cluster-state") = (&value, spec.name)
        && !spec.choices.contains(&v.as_str())
    {
        // etcd's Validate wording for the config-file case.
        return Err(ConfigError::Invalid(format!(
            "unexpected clusterState {}",
            go_quote(v)
        )));
    }
    if spec.kind == FlagKind::Ignored {
        out.warnings
            .push(format!("config key {key} is no longer supported - ignoring"));
        return Ok(());
    }
    if let Some(v) = convert(spec, value).map_err(|e| bad(format!("invalid value for {key}: {e}")))? {
        out.values.insert(spec.name, v);
    }
    Ok(())
}

/// The flag a key of `client-transport-security` / `peer-transport-security` stands for
/// (etcd `embed.securityConfig`).
fn transport_security_flag(peer: bool, key: &str) -> Option<&'static str> {
    Some(match (peer, key) {
        (false, "cert-file") => "cert-file",
        (false, "key-file") => "key-file",
        (false, "client-cert-file") => "client-cert-file",
        (false, "client-key-file") => "client-key-file",
        (false, "client-cert-auth") => "client-cert-auth",
        (false, "trusted-ca-file") => "trusted-ca-file",
        (false, "auto-tls") => "auto-tls",
        (false, "crl-file") => "client-crl-file",
        (false, "allowed-hostname") => "client-cert-allowed-hostname",
        (true, "cert-file") => "peer-cert-file",
        (true, "key-file") => "peer-key-file",
        (true, "client-cert-file") => "peer-client-cert-file",
        (true, "client-key-file") => "peer-client-key-file",
        (true, "client-cert-auth") => "peer-client-cert-auth",
        (true, "trusted-ca-file") => "peer-trusted-ca-file",
        (true, "auto-tls") => "peer-auto-tls",
        (true, "crl-file") => "peer-crl-file",
        (true, "allowed-cn") => "peer-cert-allowed-cn",
        (true, "allowed-hostname") => "peer-cert-allowed-hostname",
        (true, "skip-client-san-verification") => "peer-skip-client-san-verification",
        _ => return None,
    })
}

/// Converts one YAML value to the flag's value; `Ok(None)` for null (keep the default, as a
/// JSON `null` leaves a Go field untouched).
fn convert(spec: &FlagSpec, value: Yaml) -> Result<Option<FlagValue>, String> {
    let from_text = |s: &str| flags::parse_value(spec, s);
    let v = match (spec.kind, value) {
        (_, Yaml::Null) => return Ok(None),
        (FlagKind::Bool, Yaml::Bool(b)) => FlagValue::Bool(b),
        (FlagKind::Bool, Yaml::Str(s)) => from_text(&s)?,
        (FlagKind::Int | FlagKind::Uint | FlagKind::Uint32, Yaml::Int(i)) => from_text(&i.to_string())?,
        (FlagKind::Duration, Yaml::Int(ns)) => {
            // embed.Config durations are time.Duration: integer nanoseconds in JSON/YAML.
            let ns = u64::try_from(ns).map_err(|_| format!("negative or too large duration {ns}"))?;
            FlagValue::Duration(std::time::Duration::from_nanos(ns))
        }
        (FlagKind::Duration, Yaml::Str(s)) => {
            FlagValue::Duration(parse_go_duration(&s).map_err(|e| e.to_string())?)
        }
        (FlagKind::String, Yaml::Bool(b)) => from_text(&b.to_string())?,
        (FlagKind::String, Yaml::Int(i)) => from_text(&i.to_string())?,
        (FlagKind::String, Yaml::Float(f)) => from_text(&f.to_string())?,
        (FlagKind::UrlList | FlagKind::StringList, Yaml::Seq(items)) => {
            let items = items.into_iter().map(Yaml::into_text).collect::<Option<Vec<_>>>();
            from_text(&items.ok_or("expected a list of strings")?.join(","))?
        }
        (FlagKind::FeatureGates, Yaml::Map(gates)) => {
            let pairs: Option<Vec<String>> = gates
                .into_iter()
                .map(|(k, v)| v.into_text().map(|v| format!("{k}={v}")))
                .collect();
            from_text(&pairs.ok_or("expected Name: bool pairs")?.join(","))?
        }
        (_, Yaml::Str(s)) => from_text(&s)?,
        (kind, other) => return Err(format!("expected {}, got {other}", kind_name(kind))),
    };
    Ok(Some(v))
}

fn kind_name(kind: FlagKind) -> &'static str {
    match kind {
        FlagKind::Bool => "a boolean",
        FlagKind::Int | FlagKind::Uint | FlagKind::Uint32 => "an integer",
        FlagKind::Duration => "a duration (integer nanoseconds or a string like \"5s\")",
        FlagKind::UrlList | FlagKind::StringList => "a comma-separated string or a list",
        FlagKind::FeatureGates => "a string like \"Name=true\"",
        FlagKind::String | FlagKind::Ignored => "a string",
    }
}

/// A YAML node, as much of it as a config file needs. serde-saphyr has no dynamic value type.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The scalar as text, for lists and feature-gate maps; `None` for collections and null.
    fn into_text(self) -> Option<String> {
        match self {
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Str(s) => Some(s),
            Yaml::Null | Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }
}

impl fmt::Display for Yaml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Yaml::Null => "null",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a float",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a mapping",
        })
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(i128::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Yaml::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Yaml, Yaml>()? {
            let key = key
                .into_text()
                .ok_or_else(|| serde::de::Error::custom("mapping keys must be scalars"))?;
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load_str(text: &str) -> FileSettings {
        parse("test.yaml", text).unwrap()
    }

    #[test]
    fn etcd_style_config_file_keys_parse() {
        let s = load_str(
            "name: 'cp1'\n\
             data-dir: /var/lib/etcd\n\
             listen-client-urls: https://127.0.0.1:2379,https://10.0.0.11:2379\n\
             initial-cluster-state: existing\n\
             client-cert-auth: true\n\
             heartbeat-interval: 200\n\
             snapshot-count: 10000\n\
             watch-progress-notify-interval: 5000000000\n\
             experimental-watch-progress-notify-interval: 5s\n\
             log-outputs: [stderr]\n\
             cipher-suites:\n  - TLS_AES_128_GCM_SHA256\n  - TLS_AES_256_GCM_SHA384\n\
             client-transport-security:\n  cert-file: /pki/server.crt\n  client-cert-auth: true\n\
             peer-transport-security:\n  trusted-ca-file: /pki/ca.crt\n  allowed-cn: [etcd-peer]\n\
             discovery-srv:\n",
        );
        let v = |k: &str| s.values.get(k).cloned();
        assert_eq!(v("name"), Some(FlagValue::Str("cp1".into())));
        assert_eq!(
            v("initial-cluster-state"),
            Some(FlagValue::Str("existing".into()))
        );
        assert_eq!(v("client-cert-auth"), Some(FlagValue::Bool(true)));
        assert_eq!(v("heartbeat-interval"), Some(FlagValue::Uint(200)));
        assert_eq!(
            v("watch-progress-notify-interval"),
            Some(FlagValue::Duration(Duration::from_secs(5)))
        );
        assert_eq!(
            v("experimental-watch-progress-notify-interval"),
            Some(FlagValue::Duration(Duration::from_secs(5)))
        );
        assert_eq!(v("log-outputs"), Some(FlagValue::Strings(vec!["stderr".into()])));
        assert_eq!(v("cert-file"), Some(FlagValue::Str("/pki/server.crt".into())));
        assert_eq!(
            v("peer-trusted-ca-file"),
            Some(FlagValue::Str("/pki/ca.crt".into()))
        );
        assert_eq!(
            v("peer-cert-allowed-cn"),
            Some(FlagValue::Strings(vec!["etcd-peer".into()]))
        );
        assert!(matches!(v("listen-client-urls"), Some(FlagValue::Urls(u)) if u.len() == 2));
        assert_eq!(v("discovery-srv"), None, "null keeps the default");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn empty_config_file_sets_nothing() {
        assert!(load_str("").values.is_empty());
        assert!(load_str("# only a comment\n").values.is_empty());
    }

    #[test]
    fn unknown_config_keys_only_warn() {
        let s = load_str("bogus-key: 1\nname: x\n");
        assert_eq!(s.values.len(), 1);
        assert_eq!(
            s.warnings,
            ["unknown key bogus-key in config file test.yaml ignored"]
        );
    }

    #[test]
    fn bad_yaml_and_bad_values_are_errors() {
        assert_eq!(
            parse("test.yaml", "initial-cluster-state: bogus\n")
                .unwrap_err()
                .to_string(),
            "unexpected clusterState \"bogus\""
        );
        for text in [
            "name: [unclosed\n",
            "- just\n- a list\n",
            "client-cert-auth: maybe\n",
            "snapshot-count: -1\n",
        ] {
            let err = parse("test.yaml", text).unwrap_err().to_string();
            assert!(
                err.starts_with("error parsing config file test.yaml: "),
                "{text}: {err}"
            );
        }
    }
}
