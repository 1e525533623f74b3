//! Unit tests of `mainstayctl certs` and `check-expiration`: every certificate parsed back with
//! x509-parser and compared with kubeadm's `certlist.go` / `pki_helpers.go` definitions.

use super::*;
use crate::ctl::expiration;
use x509_parser::certificate::X509Certificate;

fn opts(dir: &Path) -> PkiOptions {
    PkiOptions {
        cert_dir: dir.to_path_buf(),
        node_name: "cp1".to_owned(),
        advertise_addresses: vec!["10.0.0.11".parse().unwrap()],
        server_cert_sans: vec!["etcd.example.com".to_owned(), "10.0.0.99".to_owned()],
        peer_cert_sans: vec!["peer.example.com".to_owned()],
        renew: false,
    }
}

fn fixed_now() -> OffsetDateTime {
    time::Date::from_calendar_date(2026, time::Month::January, 1)
        .unwrap()
        .midnight()
        .assume_utc()
}

fn der(dir: &Path, spec: &CertSpec) -> Vec<u8> {
    read_cert_der(&spec.cert_path(dir)).unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// (certificate, subject, ServerAuth expected, DNS SANs, IP SANs).
type Expected<'a> = (&'a CertSpec, &'a str, bool, Vec<&'a str>, Vec<IpAddr>);

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn generates_kubeadms_layout_subjects_usages_sans_validity_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let now = fixed_now();
    let steps = ensure(&o, now).unwrap();
    assert_eq!(steps.len(), 5);
    assert!(steps.iter().all(|s| matches!(s.action, Action::Generated(_))));

    let ca_der = der(dir.path(), &ETCD_CA);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(ca.is_ca());
    assert_eq!(ca.subject().to_string(), "CN=etcd-ca");
    assert_eq!(ca.issuer().to_string(), "CN=etcd-ca");
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && ku.key_cert_sign());
    assert_eq!(sans_of(&ca).dns, vec!["etcd-ca"]);
    // kubeadm: NotBefore backdated 5 minutes, NotAfter 10 × 365 days from now.
    assert_eq!(
        ca.validity().not_before.to_datetime(),
        now - time::Duration::minutes(5)
    );
    assert_eq!(
        ca.validity().not_after.to_datetime(),
        now + time::Duration::days(3650)
    );
    ca.verify_signature(None).unwrap();

    let expect: [Expected; 4] = [
        (
            &LEAVES[0],
            "CN=cp1",
            true,
            vec!["cp1", "localhost", "etcd.example.com"],
            ips(&["10.0.0.11", "127.0.0.1", "::1", "10.0.0.99"]),
        ),
        (
            &LEAVES[1],
            "CN=cp1",
            true,
            vec!["cp1", "localhost", "peer.example.com"],
            ips(&["10.0.0.11", "127.0.0.1", "::1"]),
        ),
        (
            &LEAVES[2],
            "CN=kube-etcd-healthcheck-client",
            false,
            vec![],
            vec![],
        ),
        (&LEAVES[3], "CN=kube-apiserver-etcd-client", false, vec![], vec![]),
    ];
    for (spec, subject, server, dns, want_ips) in expect {
        let d = der(dir.path(), spec);
        let (_, cert) = X509Certificate::from_der(&d).unwrap();
        assert_eq!(cert.subject().to_string(), subject, "{}", spec.name);
        assert_eq!(cert.issuer().to_string(), "CN=etcd-ca", "{}", spec.name);
        assert!(!cert.is_ca(), "{}", spec.name);
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca, "{}", spec.name);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(
            ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign(),
            "{}",
            spec.name
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!(
            (eku.server_auth, eku.client_auth),
            (server, true),
            "{}",
            spec.name
        );
        let sans = sans_of(&cert);
        assert_eq!(sans.dns, dns, "{}", spec.name);
        assert_eq!(sans.ips, want_ips, "{}", spec.name);
        // Leaf NotBefore = CA NotBefore; valid 365 days.
        assert_eq!(
            cert.validity().not_before,
            ca.validity().not_before,
            "{}",
            spec.name
        );
        assert_eq!(
            cert.validity().not_after.to_datetime(),
            now - time::Duration::minutes(5) + time::Duration::days(365),
            "{}",
            spec.name
        );
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(mode(&spec.cert_path(dir.path())), 0o644, "{}", spec.name);
        assert_eq!(mode(&spec.key_path(dir.path())), 0o600, "{}", spec.name);
        let key = read_key(&spec.key_path(dir.path())).unwrap();
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    }
    assert_eq!(mode(&ETCD_CA.key_path(dir.path())), 0o600);
    assert_eq!(mode(&ETCD_CA.cert_path(dir.path())), 0o644);
    assert!(dir.path().join("apiserver-etcd-client.crt").exists());
    assert!(dir.path().join("etcd/healthcheck-client.key").exists());
}

#[test]
fn a_second_run_reuses_every_valid_certificate_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    ensure(&o, fixed_now()).unwrap();
    let before: Vec<Vec<u8>> = std::iter::once(&ETCD_CA)
        .chain(LEAVES.iter())
        .map(|s| der(dir.path(), s))
        .collect();
    let steps = ensure(&o, fixed_now() + time::Duration::days(1)).unwrap();
    assert!(steps.iter().all(|s| s.action == Action::Reused), "{steps:?}");
    let after: Vec<Vec<u8>> = std::iter::once(&ETCD_CA)
        .chain(LEAVES.iter())
        .map(|s| der(dir.path(), s))
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        steps[0].to_string(),
        "[certs] Using existing etcd/ca certificate authority"
    );
    assert_eq!(
        steps[1].to_string(),
        "[certs] Using existing etcd/server certificate and key on disk"
    );
}

#[test]
fn an_existing_kubeadm_rsa_ca_is_reused_to_sign_the_leaves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etcd")).unwrap();
    // testdata/rsa-ca.*: an RSA-2048 CA with a PKCS#1 key, as kubeadm's default writes it.
    std::fs::write(
        ETCD_CA.cert_path(dir.path()),
        include_bytes!("testdata/rsa-ca.crt"),
    )
    .unwrap();
    std::fs::write(
        ETCD_CA.key_path(dir.path()),
        include_bytes!("testdata/rsa-ca.key"),
    )
    .unwrap();
    let steps = ensure(&opts(dir.path()), OffsetDateTime::now_utc()).unwrap();
    assert_eq!(steps[0].action, Action::Reused);
    assert_eq!(
        std::fs::read(ETCD_CA.cert_path(dir.path())).unwrap(),
        include_bytes!("testdata/rsa-ca.crt")
    );
    let ca_der = der(dir.path(), &ETCD_CA);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    for spec in &LEAVES {
        let d = der(dir.path(), spec);
        let (_, cert) = X509Certificate::from_der(&d).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert!(cert.validity().not_before >= ca.validity().not_before);
    }
}

#[test]
fn an_unusable_leaf_is_kept_and_reported_unless_renew_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    ensure(&o, fixed_now()).unwrap();
    let server = LEAVES[0].cert_path(dir.path());
    let before = std::fs::read(&server).unwrap();
    // Another node name: the existing server certificate has the wrong CN and SANs.
    o.node_name = "cp2".to_owned();
    let err = ensure(&o, fixed_now()).unwrap_err();
    assert!(
        matches!(
            err,
            CtlError::Invalid {
                name: "etcd-server",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--renew"), "{err}");
    assert_eq!(std::fs::read(&server).unwrap(), before);

    o.renew = true;
    let steps = ensure(&o, fixed_now()).unwrap();
    assert_eq!(steps[0].action, Action::Reused, "the CA is never renewed");
    assert!(steps[1..].iter().all(|s| matches!(s.action, Action::Renewed(_))));
    let d = der(dir.path(), &LEAVES[0]);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert_eq!(cert.subject().to_string(), "CN=cp2");
}

#[test]
fn an_expired_leaf_or_one_from_another_ca_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    ensure(&o, fixed_now()).unwrap();
    let err = ensure(&o, fixed_now() + time::Duration::days(400)).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");

    // A leaf signed by a different CA.
    let other = tempfile::tempdir().unwrap();
    ensure(&opts(other.path()), fixed_now()).unwrap();
    for ext in ["crt", "key"] {
        std::fs::copy(
            other.path().join(format!("etcd/peer.{ext}")),
            dir.path().join(format!("etcd/peer.{ext}")),
        )
        .unwrap();
    }
    let err = ensure(&o, fixed_now()).unwrap_err();
    assert!(
        matches!(
            err,
            CtlError::Invalid {
                name: "etcd-peer",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not signed by the etcd CA"), "{err}");
}

#[test]
fn half_a_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    ensure(&opts(dir.path()), fixed_now()).unwrap();
    std::fs::remove_file(ETCD_CA.key_path(dir.path())).unwrap();
    let err = ensure(&opts(dir.path()), fixed_now()).unwrap_err();
    assert!(matches!(err, CtlError::Config(_)), "{err}");
}

#[test]
fn generation_lines_name_the_sans_like_kubeadm() {
    let dir = tempfile::tempdir().unwrap();
    let steps = ensure(&opts(dir.path()), fixed_now()).unwrap();
    assert_eq!(
        steps[1].to_string(),
        "[certs] Generating \"etcd/server\" certificate and key\n[certs] etcd/server serving cert is signed for \
         DNS names [cp1 localhost etcd.example.com] and IPs [10.0.0.11 127.0.0.1 ::1 10.0.0.99]"
    );
    assert_eq!(
        steps[4].to_string(),
        "[certs] Generating \"apiserver-etcd-client\" certificate and key"
    );
}

#[test]
fn check_expiration_prints_kubeadms_table() {
    let dir = tempfile::tempdir().unwrap();
    ensure(&opts(dir.path()), fixed_now()).unwrap();
    let text = expiration::report(dir.path(), fixed_now()).unwrap();
    let want = "\
CERTIFICATE               EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
apiserver-etcd-client     Dec 31, 2026 23:55 UTC   364d            etcd-ca                 no      
etcd-healthcheck-client   Dec 31, 2026 23:55 UTC   364d            etcd-ca                 no      
etcd-peer                 Dec 31, 2026 23:55 UTC   364d            etcd-ca                 no      
etcd-server               Dec 31, 2026 23:55 UTC   364d            etcd-ca                 no      

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
etcd-ca                 Dec 30, 2035 00:00 UTC   10y             no      
";
    assert_eq!(text, want);
}

#[test]
fn check_expiration_marks_missing_and_expired_certificates() {
    let dir = tempfile::tempdir().unwrap();
    ensure(&opts(dir.path()), fixed_now()).unwrap();
    std::fs::remove_file(LEAVES[1].cert_path(dir.path())).unwrap();
    std::fs::remove_file(ETCD_CA.key_path(dir.path())).unwrap();
    let text = expiration::report(dir.path(), fixed_now() + time::Duration::days(366)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].contains("<invalid>"), "{text}");
    assert!(
        lines[1].trim_end().ends_with("yes"),
        "CA key absent = externally managed: {text}"
    );
    assert_eq!(lines[3].trim_end(), "!MISSING! etcd-peer");
}
