//! `--cipher-suites`: Go cipher-suite names (etcd `tlsutil.GetCipherSuite`) mapped onto the
//! suites of rustls' ring provider.
//!
//! etcd accepts every name Go's `crypto/tls` knows (`tls.CipherSuites()` and
//! `tls.InsecureCipherSuites()`, plus the two `..._CHACHA20_POLY1305` aliases) and refuses any
//! other with `unexpected TLS cipher suite "<name>"` at start-up. The list only restricts
//! TLS 1.2: TLS 1.3 suites are not configurable in Go, and Go ignores TLS 1.3 names given
//! here. rustls implements only the ECDHE + AEAD subset of Go's TLS 1.2 suites; a known Go
//! name outside it (RSA key exchange, CBC, RC4, 3DES) is dropped with a warning, and a list that
//! keeps no TLS 1.2 suite at all is a start-up error rather than a silently different policy.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

/// What Go knows a cipher-suite name as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoSuite {
    /// A TLS 1.2 suite rustls implements.
    Tls12(CipherSuite),
    /// A TLS 1.3 suite: accepted, no effect (as in Go).
    Tls13,
    /// A suite Go implements and rustls does not.
    Unsupported,
}

/// Every name `crypto/tls` (Go 1.19-1.23, the range etcd 3.4-3.6 are built with) and etcd's
/// aliases accept, in Go's `CipherSuites()` then `InsecureCipherSuites()` order.
#[rustfmt::skip]
const GO_SUITES: &[(&str, GoSuite)] = &[
    ("TLS_AES_128_GCM_SHA256", GoSuite::Tls13),
    ("TLS_AES_256_GCM_SHA384", GoSuite::Tls13),
    ("TLS_CHACHA20_POLY1305_SHA256", GoSuite::Tls13),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", GoSuite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", GoSuite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", GoSuite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", GoSuite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", GoSuite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", GoSuite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)),
    ("TLS_RSA_WITH_RC4_128_SHA", GoSuite::Unsupported),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", GoSuite::Unsupported),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", GoSuite::Unsupported),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", GoSuite::Unsupported),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", GoSuite::Unsupported),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", GoSuite::Unsupported),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", GoSuite::Unsupported),
    ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", GoSuite::Unsupported),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", GoSuite::Unsupported),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", GoSuite::Unsupported),
    // etcd tlsutil aliases for the Go 1.8 spellings.
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", GoSuite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", GoSuite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)),
];

/// The outcome of applying `--cipher-suites` to a provider.
#[derive(Debug)]
pub struct Selection {
    /// The provider with its TLS 1.2 suites restricted to the ones named (all TLS 1.3 suites
    /// kept).
    pub provider: CryptoProvider,
    /// Known Go names rustls cannot offer; the caller logs them.
    pub dropped: Vec<String>,
}

/// Restricts `provider`'s TLS 1.2 suites to `names` (empty = keep the provider's defaults, as
/// Go's "empty will be auto-populated").
///
/// # Errors
/// `unexpected TLS cipher suite "<name>"` (etcd's text) for a name Go does not know; a
/// Mainstay-specific message when the names leave no TLS 1.2 suite rustls implements.
pub fn select(mut provider: CryptoProvider, names: &[String]) -> Result<Selection, String> {
    if names.is_empty() {
        return Ok(Selection {
            provider,
            dropped: Vec::new(),
        });
    }
    let mut wanted = Vec::new();
    let mut dropped = Vec::new();
    for name in names {
        match GO_SUITES.iter().find(|(n, _)| n == name).map(|(_, s)| *s) {
            None => return Err(format!("unexpected TLS cipher suite {name:?}")),
            Some(GoSuite::Tls12(s)) => wanted.push(s),
            Some(GoSuite::Tls13) => {}
            Some(GoSuite::Unsupported) => dropped.push(name.clone()),
        }
    }
    provider.cipher_suites.retain(|s| match s {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => wanted.contains(&s.suite()),
    });
    let any_tls12 = provider
        .cipher_suites
        .iter()
        .any(|s| matches!(s, SupportedCipherSuite::Tls12(_)));
    if !any_tls12 {
        return Err(format!(
            "--cipher-suites {}: none of these TLS 1.2 cipher suites is supported by mainstay \
             (supported: {})",
            names.join(","),
            supported_names().join(",")
        ));
    }
    Ok(Selection { provider, dropped })
}

/// The Go names of the TLS 1.2 suites Mainstay can offer.
pub fn supported_names() -> Vec<&'static str> {
    GO_SUITES
        .iter()
        .filter(|(n, s)| matches!(s, GoSuite::Tls12(_)) && n.ends_with(|c: char| c.is_ascii_digit()))
        .map(|(n, _)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn unknown_names_give_etcds_startup_error() {
        let err = select(provider(), &names(&["BOGUS"])).unwrap_err();
        assert_eq!(err, "unexpected TLS cipher suite \"BOGUS\"");
    }

    #[test]
    fn named_tls12_suites_restrict_tls12_and_keep_tls13() {
        let s = select(
            provider(),
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
            ]),
        )
        .unwrap();
        let tls12: Vec<_> = s
            .provider
            .cipher_suites
            .iter()
            .filter(|c| matches!(c, SupportedCipherSuite::Tls12(_)))
            .map(|c| c.suite())
            .collect();
        assert_eq!(tls12, [CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]);
        assert_eq!(s.dropped, ["TLS_RSA_WITH_AES_128_CBC_SHA"]);
        assert!(
            s.provider
                .cipher_suites
                .iter()
                .any(|c| matches!(c, SupportedCipherSuite::Tls13(_)))
        );
    }

    #[test]
    fn a_list_without_any_rustls_suite_is_refused() {
        let err = select(provider(), &names(&["TLS_RSA_WITH_AES_128_GCM_SHA256"])).unwrap_err();
        assert!(err.contains("none of these TLS 1.2 cipher suites"), "{err}");
    }

    #[test]
    fn go_chacha_aliases_are_accepted() {
        assert!(select(provider(), &names(&["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"])).is_ok());
    }

    #[test]
    fn every_supported_name_exists_in_the_ring_provider() {
        for name in supported_names() {
            let s = select(provider(), &names(&[name])).unwrap();
            assert!(s.dropped.is_empty(), "{name}");
        }
    }
}
