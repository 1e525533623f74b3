//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate in
//! `<data-dir>/fixtures/{client,peer}/{cert,key}.pem`, as etcd's `transport.SelfCert` writes it.
//!
//! Like etcd, an existing pair in that directory is reused (so restarts keep the same
//! certificate); otherwise a new one is generated with subject `O=etcd`, the listener hosts as
//! SANs (IP addresses as IP SANs, names as DNS SANs), KeyUsage DigitalSignature +
//! KeyEncipherment, ExtKeyUsage ServerAuth (peers also ClientAuth) and a validity of
//! `--self-signed-cert-validity` years (365-day years). The key is ECDSA P-256 (etcd: P-521,
//! which the ring provider cannot use); `key.pem` is written with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};

use super::TlsError;

/// Days in one `--self-signed-cert-validity` year (etcd: `365 * 24h`).
const DAYS_PER_YEAR: i64 = 365;

/// The certificate and key files of a self-signed pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// `<dir>/cert.pem`.
    pub cert: PathBuf,
    /// `<dir>/key.pem`.
    pub key: PathBuf,
}

/// Returns the pair in `dir`, generating it first if either file is missing.
///
/// `hosts` are bare host names or IP addresses (no port, no brackets). `peer` adds the
/// ClientAuth usage (peers dial each other with the same certificate).
///
/// # Errors
/// [`TlsError::Config`] for a validity of 0 (etcd's text); [`TlsError::Generate`] when the
/// directory or files cannot be written.
pub fn ensure(dir: &Path, hosts: &[String], validity_years: u64, peer: bool) -> Result<SelfSigned, TlsError> {
    if validity_years == 0 {
        return Err(TlsError::Config(
            "selfSignedCertValidity is invalid,it should be greater than 0".to_owned(),
        ));
    }
    let pair = SelfSigned {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if pair.cert.exists() && pair.key.exists() {
        return Ok(pair);
    }
    let fail = |reason: String| TlsError::Generate {
        dir: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    let days = i64::try_from(validity_years)
        .unwrap_or(i64::MAX)
        .saturating_mul(DAYS_PER_YEAR);
    params.not_before = now;
    params.not_after = now
        .checked_add(time::Duration::days(days))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if peer {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for host in hosts {
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.as_str()
                    .try_into()
                    .map_err(|e| fail(format!("{host}: {e}")))?,
            ),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    tracing::warn!(
        certificate_validity_bound_not_after = %params.not_after,
        "automatically generate certificates"
    );
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&pair.cert, cert.pem()).map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %pair.cert.display(), "created cert file");
    write_private(&pair.key, key.serialize_pem().as_bytes()).map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %pair.key.display(), "created key file");
    Ok(pair)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses_the_pair() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fixtures").join("client");
        let hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let a = ensure(&d, &hosts, 1, false).unwrap();
        let first = std::fs::read(&a.cert).unwrap();
        let b = ensure(&d, &hosts, 1, false).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read(&b.cert).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn zero_validity_is_etcds_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure(dir.path(), &[], 0, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "selfSignedCertValidity is invalid,it should be greater than 0"
        );
    }
}
