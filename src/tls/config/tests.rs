use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::*;

fn options() -> TlsOptions {
    TlsOptions {
        min_version: "TLS1.2".to_owned(),
        max_version: String::new(),
        cipher_suites: Vec::new(),
        self_signed_cert_validity_years: 1,
    }
}

/// Writes a CA and a server certificate signed by it; returns (ca, cert, key) paths.
fn pki(dir: &Path, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "test-ca");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.crt"),
        dir.join(format!("{cn}.crt")),
        dir.join(format!("{cn}.key")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn flags(cert: &Path, key: &Path) -> TlsConfig {
    TlsConfig {
        cert_file: Some(cert.to_path_buf()),
        key_file: Some(key.to_path_buf()),
        ..TlsConfig::default()
    }
}

fn build(flags: &TlsConfig, dir: &Path) -> Result<Option<Arc<ServerTls>>, TlsError> {
    ServerTls::build(Side::Client, flags, &options(), dir, &[])
}

#[test]
fn trusted_ca_alone_requires_client_certificates() {
    // etcd transport.TLSInfo.ServerConfig: TrustedCAFile != "" || ClientCertAuth.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "server");
    let plain = build(&flags(&cert, &key), dir.path()).unwrap().unwrap();
    assert!(!plain.requires_client_cert());
    let mut f = flags(&cert, &key);
    f.trusted_ca_file = Some(ca);
    assert!(build(&f, dir.path()).unwrap().unwrap().requires_client_cert());
    assert!(build(&TlsConfig::default(), dir.path()).unwrap().is_none());
}

#[test]
fn a_key_of_another_certificate_is_refused_with_gos_wording() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = pki(dir.path(), "a");
    let (_, _, other_key) = pki(dir.path(), "b");
    let err = build(&flags(&cert, &other_key), dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("tls: private key does not match public key"),
        "{err}"
    );
}

#[test]
fn flag_combinations_etcd_refuses_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = pki(dir.path(), "a");
    let only_cert = TlsConfig {
        cert_file: Some(cert.clone()),
        ..TlsConfig::default()
    };
    assert!(
        build(&only_cert, dir.path())
            .unwrap_err()
            .to_string()
            .starts_with("KeyFile and CertFile must both be present")
    );
    let half_client = TlsConfig {
        client_cert_file: Some(cert),
        ..TlsConfig::default()
    };
    assert!(
        build(&half_client, dir.path())
            .unwrap_err()
            .to_string()
            .starts_with("ClientKeyFile and ClientCertFile must both be present or both absent")
    );
    let both_checks = TlsConfig {
        allowed_cns: vec!["a".to_owned()],
        allowed_hostnames: vec!["b".to_owned()],
        ..TlsConfig::default()
    };
    let err = ServerTls::build(Side::Peer, &both_checks, &options(), dir.path(), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("AllowedCN and AllowedHostname are mutually exclusive"),
        "{err}"
    );
}

#[test]
fn reload_keeps_the_old_certificate_until_the_new_files_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = pki(dir.path(), "server");
    let tls = build(&flags(&cert, &key), dir.path()).unwrap().unwrap();
    let original = tls.current_chain();
    assert_eq!(tls.reload().unwrap(), Reload::Unchanged);

    // Half-written certificate: refused, old one kept, and not retried until it changes.
    let (_, new_cert, new_key) = pki(dir.path(), "next");
    let new_pem = std::fs::read(&new_cert).unwrap();
    std::fs::write(&cert, &new_pem[..new_pem.len() / 2]).unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(tls.current_chain(), original);
    assert_eq!(tls.reload().unwrap(), Reload::Unchanged);

    // New certificate with the old key: mismatch, old one kept.
    std::fs::write(&cert, &new_pem).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
    assert_eq!(tls.current_chain(), original);

    // Key written too: swapped.
    std::fs::copy(&new_key, &key).unwrap();
    assert_eq!(tls.reload().unwrap(), Reload::Swapped);
    assert_ne!(tls.current_chain(), original);
    assert_eq!(tls.current_chain(), read_certs(&new_cert).unwrap());
}

#[test]
fn tls_versions_follow_min_and_max() {
    let mut o = options();
    assert_eq!(versions(&o).unwrap().len(), 2);
    o.min_version = "TLS1.3".to_owned();
    assert_eq!(versions(&o).unwrap(), [&rustls::version::TLS13]);
    o.min_version = "TLS1.2".to_owned();
    o.max_version = "TLS1.2".to_owned();
    assert_eq!(versions(&o).unwrap(), [&rustls::version::TLS12]);
}
