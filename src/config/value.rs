//! Value syntax shared by the command line, the environment and the config file: Go's
//! `strconv` booleans and integers, etcd's URL lists (`types.NewURLs`, `UniqueURLs`),
//! `--initial-cluster` (`types.NewURLsMap`) and `--feature-gates` (`featuregate.Set`).
//! Error texts are the ones Go and etcd print.

use url::Url;

use super::duration::go_quote;
use super::flags::FEATURE_GATES;

/// Go `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go `strconv.ParseUint(s, 0, 64)` with the flag package's error words (`parse error`,
/// `value out of range`).
pub fn parse_go_uint(s0: &str) -> Result<u64, String> {
    let syntax = || "parse error".to_owned();
    let b = s0.as_bytes();
    let prefixed = |p: &u8, rest: &[u8], want: u8| p.eq_ignore_ascii_case(&want) && !rest.is_empty();
    let (base, digits): (u32, &[u8]) = match b {
        [] => return Err(syntax()),
        [b'0', p, rest @ ..] if prefixed(p, rest, b'b') => (2, rest),
        [b'0', p, rest @ ..] if prefixed(p, rest, b'o') => (8, rest),
        [b'0', p, rest @ ..] if prefixed(p, rest, b'x') => (16, rest),
        [b'0', rest @ ..] => (8, rest),
        _ => (10, b),
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = char::from(c).to_digit(base).ok_or_else(syntax)?;
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or_else(|| "value out of range".to_owned())?;
    }
    if underscores && !underscores_ok(s0) {
        return Err(syntax());
    }
    Ok(n)
}

/// Go `strconv.ParseInt(s, 0, 64)` with the flag package's error words.
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let (negative, magnitude) = match s.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let m = parse_go_uint(magnitude)?;
    if negative {
        0i64.checked_sub_unsigned(m)
            .ok_or_else(|| "value out of range".to_owned())
    } else {
        i64::try_from(m).map_err(|_| "value out of range".to_owned())
    }
}

/// Go's `strconv.underscoreOK`: underscores may only separate digits (a base prefix counts as
/// a digit), as in Go integer literals.
fn underscores_ok(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
    let (mut saw, hex, body) = match s {
        [b'0', p, rest @ ..] if matches!(p.to_ascii_lowercase(), b'b' | b'o' | b'x') => {
            (b'0', p.eq_ignore_ascii_case(&b'x'), rest)
        }
        _ => (b'^', false, s),
    };
    for &c in body {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Splits a comma-separated list; an empty string is an empty list (`flags.StringsValue`).
pub fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_owned).collect()
    }
}

/// Parses a comma-separated URL list like etcd's `UniqueURLs`: each item trimmed and checked by
/// [`parse_etcd_url`], then sorted and de-duplicated. An empty string is an empty list.
///
/// # Errors
/// Returns etcd's `types.NewURLs` message for the first bad item.
pub fn parse_url_list(s: &str) -> Result<Vec<Url>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut urls = s
        .split(',')
        .map(|item| parse_etcd_url(item.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    urls.dedup();
    Ok(urls)
}

/// The items of a URL list that repeat an earlier one (etcd drops them silently).
pub fn duplicate_urls(s: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut dups = Vec::new();
    for u in s.split(',').filter_map(|i| parse_etcd_url(i.trim()).ok()) {
        if seen.contains(&u) {
            dups.push(u.to_string());
        } else {
            seen.push(u);
        }
    }
    dups
}

/// Checks one URL the way etcd's `types.NewURLs` does: the scheme must be http, https, unix or
/// unixs; http(s) URLs need `host:port` and no path.
///
/// # Errors
/// Returns etcd's message, e.g. `URL address does not have the form "host:port": http://a`.
pub fn parse_etcd_url(item: &str) -> Result<Url, String> {
    let scheme = item
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| s.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match scheme.as_str() {
        "http" | "https" => {
            // Go's url.Parse puts everything after "//" up to the next '/', '?' or '#' into
            // Host (minus any userinfo); a '/' after that is a path.
            let Some(after) = item.split_once(':').and_then(|(_, r)| r.strip_prefix("//")) else {
                return Err(format!(
                    "URL address does not have the form \"host:port\": {item}"
                ));
            };
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let (authority, tail) = after.split_at_checked(end).unwrap_or((after, ""));
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if !has_host_port_form(host_port) {
                return Err(format!(
                    "URL address does not have the form \"host:port\": {item}"
                ));
            }
            if tail.starts_with('/') {
                return Err(format!("URL must not contain a path: {item}"));
            }
        }
        "unix" | "unixs" => {}
        _ => return Err(format!("URL scheme must be http, https, unix, or unixs: {item}")),
    }
    Url::parse(item).map_err(|e| format!("parse {}: {e}", go_quote(item)))
}

/// Go `net.SplitHostPort` succeeds: `host:port` or `[v6]:port`, with no extra colons.
fn has_host_port_form(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'));
    }
    s.matches(':').count() == 1
}

/// Parses `--initial-cluster` (`name=url[,name=url...]`, etcd `types.NewURLsMap`). Empty items
/// are skipped; a name may repeat to give one member several peer URLs. Order is kept.
///
/// # Errors
/// Returns the `types.NewURLs` message for a bad URL (an item without `=` has an empty URL).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, String> {
    let mut members = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (name, url) = item.split_once('=').unwrap_or((item, ""));
        members.push((name.to_owned(), parse_etcd_url(url.trim())?));
    }
    Ok(members)
}

/// Parses `--feature-gates` like etcd's `featuregate.Set`: `Name=bool` pairs, comma separated,
/// names from [`FEATURE_GATES`] (plus `AllAlpha`/`AllBeta`).
///
/// # Errors
/// `missing bool value for <k>`, `invalid value of <k>=<v>, err: ...` or
/// `unrecognized feature gate: <k>`, as etcd.
pub fn parse_feature_gates(s: &str) -> Result<Vec<(String, bool)>, String> {
    let mut gates = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => return Err(format!("missing bool value for {}", item.trim())),
        };
        let value = parse_go_bool(v).ok_or_else(|| {
            format!(
                "invalid value of {k}={v}, err: strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v)
            )
        })?;
        if !FEATURE_GATES.iter().any(|(name, _)| *name == k) && k != "AllAlpha" && k != "AllBeta" {
            return Err(format!("unrecognized feature gate: {k}"));
        }
        gates.push((k.to_owned(), value));
    }
    Ok(gates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_accepts_exactly_strconv_parse_bool_spellings() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        for bad in ["yes", "on", "tRUE", "", " true"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_accept_go_bases_and_underscores() {
        assert_eq!(parse_go_uint("10000"), Ok(10000));
        assert_eq!(parse_go_uint("0x10"), Ok(16));
        assert_eq!(parse_go_uint("0X1f"), Ok(31));
        assert_eq!(parse_go_uint("017"), Ok(15));
        assert_eq!(parse_go_uint("0o17"), Ok(15));
        assert_eq!(parse_go_uint("0b101"), Ok(5));
        assert_eq!(parse_go_uint("0x_1_0"), Ok(16));
        assert_eq!(parse_go_uint("1_000"), Ok(1000));
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert_eq!(parse_go_int("-5"), Ok(-5));
        assert_eq!(parse_go_int("+5"), Ok(5));
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn bad_integers_give_go_flag_error_words() {
        for bad in [
            "", "abc", "-1", "+1", "1__000", "_1", "1_", "0x", "08", "1.5", "0x_", "1e3",
        ] {
            assert_eq!(parse_go_uint(bad), Err("parse error".to_owned()), "{bad}");
        }
        assert_eq!(
            parse_go_uint("18446744073709551616"),
            Err("value out of range".to_owned())
        );
        assert_eq!(
            parse_go_int("9223372036854775808"),
            Err("value out of range".to_owned())
        );
    }

    #[test]
    fn url_lists_are_trimmed_sorted_and_deduplicated() {
        let urls =
            parse_url_list("https://127.0.0.1:2379, https://10.0.0.11:2379,https://127.0.0.1:2379").unwrap();
        let strs: Vec<_> = urls.iter().map(Url::as_str).collect();
        assert_eq!(strs, ["https://10.0.0.11:2379/", "https://127.0.0.1:2379/"]);
        assert_eq!(duplicate_urls("http://a:1,http://a:1"), ["http://a:1/"]);
        assert_eq!(parse_url_list("").unwrap(), Vec::<Url>::new());
        assert!(parse_url_list("https://[::1]:2379,unix://localhost:2379,unixs:///tmp/s").is_ok());
    }

    #[test]
    fn bad_urls_give_etcd_messages() {
        let cases = [
            ("foo", "URL scheme must be http, https, unix, or unixs: foo"),
            (
                "ftp://127.0.0.1:2379",
                "URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:2379",
            ),
            (
                "http://127.0.0.1",
                "URL address does not have the form \"host:port\": http://127.0.0.1",
            ),
            (
                "http:127.0.0.1:2379",
                "URL address does not have the form \"host:port\": http:127.0.0.1:2379",
            ),
            (
                "http://::1:2379",
                "URL address does not have the form \"host:port\": http://::1:2379",
            ),
            (
                "http://127.0.0.1:2379/path",
                "URL must not contain a path: http://127.0.0.1:2379/path",
            ),
            (
                "http://127.0.0.1:2379/",
                "URL must not contain a path: http://127.0.0.1:2379/",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_url_list(input).unwrap_err(), want);
        }
    }

    #[test]
    fn initial_cluster_parses_names_and_repeated_members() {
        let m = parse_initial_cluster(
            "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp2=https://[fd00::2]:2380",
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].0, "cp1");
        assert_eq!(m[0].1.as_str(), "https://10.0.0.11:2380/");
        assert_eq!(m[2].0, "cp2");
        assert_eq!(m[2].1.host_str(), Some("[fd00::2]"));
        assert_eq!(parse_initial_cluster("").unwrap(), Vec::new());
        assert_eq!(
            parse_initial_cluster("foo").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: "
        );
        assert!(parse_initial_cluster("a=http://10.0.0.1").is_err());
    }

    #[test]
    fn feature_gates_parse_like_etcd_featuregate_set() {
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck=true, CompactHashCheck=false").unwrap(),
            [
                ("InitialCorruptCheck".to_owned(), true),
                ("CompactHashCheck".to_owned(), false)
            ]
        );
        assert_eq!(
            parse_feature_gates("Bogus=true").unwrap_err(),
            "unrecognized feature gate: Bogus"
        );
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck").unwrap_err(),
            "missing bool value for InitialCorruptCheck"
        );
        assert!(
            parse_feature_gates("InitialCorruptCheck=yes")
                .unwrap_err()
                .starts_with("invalid value of")
        );
    }
}
