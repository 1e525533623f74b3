//! `mainstayctl certs`: the etcd part of kubeadm's PKI (`kubeadm init phase certs etcd-*` and
//! `apiserver-etcd-client`), etcd-compat.md §5.2.
//!
//! Layout under `--cert-dir` (default `/etc/kubernetes/pki`), as kubeadm's `certlist.go`
//! defines it:
//!
//! | file (`.crt`/`.key`)       | CN                              | ExtKeyUsage            | SANs |
//! |----------------------------|---------------------------------|------------------------|------|
//! | `etcd/ca`                  | `etcd-ca`                       | – (CA, KeyCertSign)    | DNS `etcd-ca` |
//! | `etcd/server`              | node name                       | ServerAuth, ClientAuth | DNS node name, `localhost`; IP advertise addresses, `127.0.0.1`, `::1`; `--server-cert-sans` |
//! | `etcd/peer`                | node name                       | ServerAuth, ClientAuth | as server, `--peer-cert-sans` |
//! | `etcd/healthcheck-client`  | `kube-etcd-healthcheck-client`  | ClientAuth             | – |
//! | `apiserver-etcd-client`    | `kube-apiserver-etcd-client`    | ClientAuth             | – |
//!
//! No `O=` in any subject (kubeadm dropped `system:masters` from the two client certificates).
//! KeyUsage is DigitalSignature + KeyEncipherment on every certificate (+ KeyCertSign on the
//! CA), as `pkiutil.NewSignedCert` sets it. The CA is valid 10 years from 5 minutes ago
//! (`CertificateBackdate`); a leaf from the CA's NotBefore (or 5 minutes ago, when the CA is
//! older) for 365 days. Serial numbers are 20 bytes derived from a hash of the fresh public
//! key (rcgen's default), unique per certificate like kubeadm's random serials. Keys are
//! written with mode 0600, certificates 0644, atomically.
//!
//! Keys: kubeadm's default is RSA-2048, but rcgen's ring backend cannot generate RSA keys, so
//! new keys are ECDSA P-256 — what kubeadm writes with `encryptionAlgorithm: ECDSA-P256`
//! (v1beta4), and what etcd, the API server and every TLS stack in the path accept. An
//! existing CA is reused whatever its key type (RSA from a kubeadm install works: it signs
//! with RSA-SHA256).
//!
//! Re-running is safe: an existing CA is reused; an existing leaf is kept when it is signed
//! by that CA, matches its key, is within its validity, has the expected CN, usages and every
//! expected SAN; otherwise the command stops with an error rather than replace it. `--renew`
//! re-issues every leaf unconditionally (never the CA), like `kubeadm certs renew`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::keys::{read_cert_der, read_key};
use super::{CtlError, create_dir, write_atomic};
use crate::config::limits::{KUBE_CA_VALIDITY_DAYS, KUBE_CERT_BACKDATE, KUBE_CERT_VALIDITY_DAYS};

/// kubeadm's default `--cert-dir`.
pub const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";
/// Mode of private key files (kubeadm `keyutil.WriteKey`).
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files (kubeadm `certutil.WriteCert`).
pub const CERT_FILE_MODE: u32 = 0o644;
/// Mode of directories created for them (`certutil.WriteCert`'s `os.MkdirAll(dir, 0755)`).
pub const CERT_DIR_MODE: u32 = 0o755;

/// What a certificate is for, which decides its usages and SANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The self-signed etcd CA.
    Ca,
    /// etcd's client-port certificate (ServerAuth + ClientAuth: etcd 3.2+ also dials itself
    /// with it, etcd issue 9785).
    Server,
    /// etcd's peer certificate (ServerAuth + ClientAuth: peers dial each other with it).
    Peer,
    /// A client certificate (ClientAuth only).
    Client,
}

/// One certificate/key pair of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertSpec {
    /// kubeadm's name (`kubeadm certs check-expiration`), e.g. `etcd-server`.
    pub name: &'static str,
    /// Path under the cert dir without extension, e.g. `etcd/server`.
    pub base: &'static str,
    /// Usages and SANs.
    pub role: Role,
    /// Fixed CN; `None` means the node name.
    pub common_name: Option<&'static str>,
}

impl CertSpec {
    /// `<dir>/<base>.crt`.
    pub fn cert_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.crt", self.base))
    }

    /// `<dir>/<base>.key`.
    pub fn key_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.key", self.base))
    }

    /// The CN this certificate gets for `node_name`.
    pub fn common_name<'a>(&self, node_name: &'a str) -> &'a str {
        self.common_name.unwrap_or(node_name)
    }

    fn extended_key_usages(&self) -> Vec<ExtendedKeyUsagePurpose> {
        match self.role {
            Role::Ca => Vec::new(),
            Role::Server | Role::Peer => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        }
    }
}

/// The etcd CA (`KubeadmCertEtcdCA`).
pub const ETCD_CA: CertSpec = CertSpec {
    name: "etcd-ca",
    base: "etcd/ca",
    role: Role::Ca,
    common_name: Some("etcd-ca"),
};

/// The leaves, in kubeadm's generation order (`KubeadmCertEtcdServer`, `…Peer`,
/// `…Healthcheck`, `KubeadmCertEtcdAPIClient`).
pub const LEAVES: [CertSpec; 4] = [
    CertSpec {
        name: "etcd-server",
        base: "etcd/server",
        role: Role::Server,
        common_name: None,
    },
    CertSpec {
        name: "etcd-peer",
        base: "etcd/peer",
        role: Role::Peer,
        common_name: None,
    },
    CertSpec {
        name: "etcd-healthcheck-client",
        base: "etcd/healthcheck-client",
        role: Role::Client,
        common_name: Some("kube-etcd-healthcheck-client"),
    },
    CertSpec {
        name: "apiserver-etcd-client",
        base: "apiserver-etcd-client",
        role: Role::Client,
        common_name: Some("kube-apiserver-etcd-client"),
    },
];

/// What `mainstayctl certs` is asked to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// `--cert-dir`.
    pub cert_dir: PathBuf,
    /// `--node-name`: CN and DNS SAN of the server and peer certificates.
    pub node_name: String,
    /// `--advertise-address` (repeatable): IP SANs of the server and peer certificates.
    pub advertise_addresses: Vec<IpAddr>,
    /// `--server-cert-sans`: extra SANs (IP or DNS) for the server certificate
    /// (kubeadm `etcd.local.serverCertSANs`).
    pub server_cert_sans: Vec<String>,
    /// `--peer-cert-sans`: extra SANs for the peer certificate (`etcd.local.peerCertSANs`).
    pub peer_cert_sans: Vec<String>,
    /// `--renew`: re-issue every leaf even if the existing one is valid.
    pub renew: bool,
}

/// The SANs a certificate gets (kubeadm `GetEtcdAltNames` / `GetEtcdPeerAltNames`), without
/// duplicates, DNS names first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    /// DNS names: node name, `localhost`, extra names.
    pub dns: Vec<String>,
    /// IP addresses: advertise addresses, `127.0.0.1`, `::1`, extra addresses.
    pub ips: Vec<IpAddr>,
}

impl AltNames {
    fn push(&mut self, san: &str) {
        match san.parse::<IpAddr>() {
            Ok(ip) if !self.ips.contains(&ip) => self.ips.push(ip),
            Ok(_) => {}
            Err(_) if !self.dns.iter().any(|d| d == san) => self.dns.push(san.to_owned()),
            Err(_) => {}
        }
    }
}

impl fmt::Display for AltNames {
    /// kubeadm's log form: `DNS names [a b] and IPs [1.2.3.4 ::1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        write!(
            f,
            "DNS names [{}] and IPs [{}]",
            self.dns.join(" "),
            ips.join(" ")
        )
    }
}

/// The SANs `spec` must carry under `opts`.
pub fn alt_names(spec: &CertSpec, opts: &PkiOptions) -> AltNames {
    let mut names = AltNames::default();
    let extra = match spec.role {
        Role::Server => &opts.server_cert_sans,
        Role::Peer => &opts.peer_cert_sans,
        Role::Ca => {
            names.push(ETCD_CA.common_name(""));
            return names;
        }
        Role::Client => return names,
    };
    names.push(&opts.node_name);
    names.push("localhost");
    for ip in &opts.advertise_addresses {
        names.push(&ip.to_string());
    }
    names.push(&Ipv4Addr::LOCALHOST.to_string());
    names.push(&Ipv6Addr::LOCALHOST.to_string());
    for san in extra {
        names.push(san);
    }
    names
}

/// What happened to one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Newly generated (with these SANs, for server and peer certificates).
    Generated(AltNames),
    /// An existing valid certificate kept.
    Reused,
    /// Re-issued because of `--renew`.
    Renewed(AltNames),
}

/// One line of `mainstayctl certs` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which certificate.
    pub spec: CertSpec,
    /// What happened.
    pub action: Action,
}

impl fmt::Display for Step {
    /// kubeadm's `[certs] …` progress lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.spec.base;
        let sans = |f: &mut fmt::Formatter<'_>, names: &AltNames| {
            if matches!(self.spec.role, Role::Server | Role::Peer) {
                let kind = if self.spec.role == Role::Server {
                    "serving"
                } else {
                    "peer"
                };
                write!(f, "\n[certs] {base} {kind} cert is signed for {names}")?;
            }
            Ok(())
        };
        match (&self.action, self.spec.role) {
            (Action::Reused, Role::Ca) => write!(f, "[certs] Using existing {base} certificate authority"),
            (Action::Reused, _) => write!(f, "[certs] Using existing {base} certificate and key on disk"),
            (Action::Generated(names), _) => {
                write!(f, "[certs] Generating \"{base}\" certificate and key")?;
                sans(f, names)
            }
            (Action::Renewed(names), _) => {
                write!(f, "[certs] Renewed \"{base}\" certificate and key")?;
                sans(f, names)
            }
        }
    }
}

/// The CA, ready to sign.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    not_before: OffsetDateTime,
}

/// Creates or completes the PKI layout under `opts.cert_dir`; returns one [`Step`] per
/// certificate (CA first).
///
/// # Errors
/// [`CtlError::Config`] for a missing node name or half a CA (a certificate without its key
/// or the reverse); [`CtlError::Invalid`] for an existing certificate that cannot be reused
/// while `renew` is off; [`CtlError::Io`]/[`CtlError::Parse`] for unreadable or unwritable
/// files; [`CtlError::Generate`] if signing fails.
pub fn ensure(opts: &PkiOptions, now: OffsetDateTime) -> Result<Vec<Step>, CtlError> {
    if opts.node_name.is_empty() {
        return Err(CtlError::Config(
            "a node name is required (--node-name)".to_owned(),
        ));
    }
    let (ca, ca_action) = load_or_create_ca(&opts.cert_dir, now)?;
    let mut steps = vec![Step {
        spec: ETCD_CA,
        action: ca_action,
    }];
    for spec in &LEAVES {
        let cert_path = spec.cert_path(&opts.cert_dir);
        let key_path = spec.key_path(&opts.cert_dir);
        let exists = cert_path.exists() || key_path.exists();
        if exists && !opts.renew {
            check_leaf(spec, opts, &ca, now).map_err(|reason| CtlError::Invalid {
                name: spec.name,
                path: cert_path.clone(),
                reason,
            })?;
            steps.push(Step {
                spec: *spec,
                action: Action::Reused,
            });
            continue;
        }
        let names = alt_names(spec, opts);
        let (cert_pem, key_pem) = issue_leaf(spec, opts, &names, &ca, now)?;
        write_pair(&cert_path, &key_path, &cert_pem, &key_pem)?;
        steps.push(Step {
            spec: *spec,
            action: if exists {
                Action::Renewed(names)
            } else {
                Action::Generated(names)
            },
        });
    }
    Ok(steps)
}

fn load_or_create_ca(dir: &Path, now: OffsetDateTime) -> Result<(Ca, Action), CtlError> {
    let cert_path = ETCD_CA.cert_path(dir);
    let key_path = ETCD_CA.key_path(dir);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let der = read_cert_der(&cert_path)?;
            let key = read_key(&key_path)?;
            let (_, cert) = X509Certificate::from_der(&der).map_err(|e| CtlError::parse(&cert_path, e))?;
            if !cert.is_ca() {
                return Err(CtlError::parse(&cert_path, "not a CA certificate"));
            }
            if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(CtlError::parse(
                    &key_path,
                    "private key does not match the CA certificate",
                ));
            }
            let not_before = cert.validity().not_before.to_datetime();
            if cert.validity().not_after.to_datetime() <= now {
                return Err(CtlError::parse(&cert_path, "the CA certificate has expired"));
            }
            let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)
                .map_err(|e| CtlError::parse(&cert_path, e))?;
            Ok((
                Ca {
                    issuer,
                    der,
                    not_before,
                },
                Action::Reused,
            ))
        }
        (false, false) => {
            let generate = |e: rcgen::Error| CtlError::Generate {
                name: ETCD_CA.name,
                reason: e.to_string(),
            };
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
            let mut params = CertificateParams::default();
            params.distinguished_name = subject(ETCD_CA.common_name(""));
            let names = alt_names(&ETCD_CA, &PkiOptions::ca_only());
            params.subject_alt_names = san_list(&names).map_err(|reason| CtlError::Generate {
                name: ETCD_CA.name,
                reason,
            })?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::KeyCertSign,
            ];
            let backdate = time::Duration::try_from(KUBE_CERT_BACKDATE).unwrap_or(time::Duration::ZERO);
            params.not_before = now - backdate;
            params.not_after = now + time::Duration::days(KUBE_CA_VALIDITY_DAYS);
            let cert = params.self_signed(&key).map_err(generate)?;
            write_pair(&cert_path, &key_path, &cert.pem(), &key.serialize_pem())?;
            let not_before = params.not_before;
            Ok((
                Ca {
                    der: cert.der().to_vec(),
                    issuer: Issuer::new(params, key),
                    not_before,
                },
                Action::Generated(names),
            ))
        }
        (true, false) => Err(CtlError::Config(format!(
            "{} exists but {} does not: an external CA is not supported; provide both or neither",
            cert_path.display(),
            key_path.display()
        ))),
        (false, true) => Err(CtlError::Config(format!(
            "{} exists but {} does not; provide both or neither",
            key_path.display(),
            cert_path.display()
        ))),
    }
}

impl PkiOptions {
    /// Options that only matter for the CA (its SANs do not depend on the node).
    fn ca_only() -> Self {
        PkiOptions {
            cert_dir: PathBuf::new(),
            node_name: String::new(),
            advertise_addresses: Vec::new(),
            server_cert_sans: Vec::new(),
            peer_cert_sans: Vec::new(),
            renew: false,
        }
    }
}

fn subject(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn san_list(names: &AltNames) -> Result<Vec<SanType>, String> {
    let mut out = Vec::new();
    for d in &names.dns {
        out.push(SanType::DnsName(
            d.as_str().try_into().map_err(|e| format!("{d}: {e}"))?,
        ));
    }
    out.extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(out)
}

fn issue_leaf(
    spec: &CertSpec,
    opts: &PkiOptions,
    names: &AltNames,
    ca: &Ca,
    now: OffsetDateTime,
) -> Result<(String, String), CtlError> {
    let generate = |reason: String| CtlError::Generate {
        name: spec.name,
        reason,
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(spec.common_name(&opts.node_name));
    params.subject_alt_names = san_list(names).map_err(generate)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = spec.extended_key_usages();
    params.use_authority_key_identifier_extension = true;
    let backdate = time::Duration::try_from(KUBE_CERT_BACKDATE).unwrap_or(time::Duration::ZERO);
    params.not_before = ca.not_before.max(now - backdate);
    params.not_after = params.not_before + time::Duration::days(KUBE_CERT_VALIDITY_DAYS);
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| generate(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_pair(cert_path: &Path, key_path: &Path, cert_pem: &str, key_pem: &str) -> Result<(), CtlError> {
    if let Some(dir) = cert_path.parent() {
        create_dir(dir, CERT_DIR_MODE)?;
    }
    write_atomic(key_path, key_pem.as_bytes(), KEY_FILE_MODE)?;
    write_atomic(cert_path, cert_pem.as_bytes(), CERT_FILE_MODE)
}

/// Why an existing leaf cannot be reused, or `Ok` when it can.
fn check_leaf(spec: &CertSpec, opts: &PkiOptions, ca: &Ca, now: OffsetDateTime) -> Result<(), String> {
    let cert_path = spec.cert_path(&opts.cert_dir);
    let key_path = spec.key_path(&opts.cert_dir);
    let der = read_cert_der(&cert_path).map_err(|e| e.to_string())?;
    let key = read_key(&key_path).map_err(|e| e.to_string())?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let (_, ca_cert) = X509Certificate::from_der(&ca.der).map_err(|e| e.to_string())?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(format!("{} does not match its private key", cert_path.display()));
    }
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| "it is not signed by the etcd CA".to_owned())?;
    let validity = cert.validity();
    if validity.not_after.to_datetime() <= now {
        return Err(format!("it expired on {}", validity.not_after));
    }
    let want_cn = spec.common_name(&opts.node_name);
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default();
    if cn != want_cn {
        return Err(format!("its CN is {cn:?}, want {want_cn:?}"));
    }
    let eku = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| (e.value.server_auth, e.value.client_auth))
        .unwrap_or((false, false));
    let want_server = matches!(spec.role, Role::Server | Role::Peer);
    if !eku.1 || (want_server && !eku.0) {
        return Err("it lacks the extended key usages this certificate needs".to_owned());
    }
    let have = sans_of(&cert);
    let want = alt_names(spec, opts);
    let missing: Vec<String> = want
        .dns
        .iter()
        .filter(|d| !have.dns.contains(d))
        .cloned()
        .chain(
            want.ips
                .iter()
                .filter(|ip| !have.ips.contains(ip))
                .map(ToString::to_string),
        )
        .collect();
    if !missing.is_empty() {
        return Err(format!("it lacks the SANs {}", missing.join(", ")));
    }
    Ok(())
}

/// The DNS and IP SANs of a parsed certificate.
pub fn sans_of(cert: &X509Certificate<'_>) -> AltNames {
    let mut names = AltNames::default();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(b) = <[u8; 4]>::try_from(*bytes) {
                        names.ips.push(IpAddr::from(b));
                    } else if let Ok(b) = <[u8; 16]>::try_from(*bytes) {
                        names.ips.push(IpAddr::from(b));
                    }
                }
                _ => {}
            }
        }
    }
    names
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
