//! One listener side's TLS: flags → files → loaded material → rustls `ServerConfig`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

use super::reload::{CertSlot, VerifierSlot};
use super::{TlsError, auto, ciphers};
use crate::config::{TlsConfig, TlsOptions};

/// Which listener family a configuration is for; selects flag names in messages and the
/// auto-TLS directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client listeners (`--cert-file`, `--key-file`, `--trusted-ca-file`, ...).
    Client,
    /// The peer listener (`--peer-cert-file`, ...).
    Peer,
}

impl Side {
    fn fixtures(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Side::Client => "",
            Side::Peer => "peer-",
        }
    }
}

/// The files a side serves with, after auto TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Server certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to; `None` = no client certificates asked.
    pub trusted_ca: Option<PathBuf>,
    /// Revoked client certificates (PEM or DER CRL).
    pub crl: Option<PathBuf>,
    /// Client certificates must match one of these SAN host names (empty = any).
    pub allowed_hostnames: Vec<String>,
}

/// The result of [`ServerTls::reload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are byte-for-byte what was last loaded (or last failed to load).
    Unchanged,
    /// New material is in use for new handshakes.
    Swapped,
}

/// A side's TLS server: a fixed rustls configuration whose certificate and CA material can be
/// swapped at run time (see the module docs of [`super::reload`]).
pub struct ServerTls {
    sources: Sources,
    provider: Arc<CryptoProvider>,
    cert: Arc<CertSlot>,
    verifier: Option<Arc<VerifierSlot>>,
    acceptor: TlsAcceptor,
    /// Digest of the file contents last attempted, so an unchanged (or still broken) file is
    /// not re-parsed and re-logged on every poll.
    fingerprint: Mutex<u64>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("sources", &self.sources)
            .field("requires_client_cert", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Builds the side's TLS from its flags, or `None` when neither a certificate/key pair nor
    /// auto TLS is configured.
    ///
    /// `data_dir` holds the auto-TLS fixtures; `hosts` are the listener hosts (bare, no port)
    /// that a generated certificate is valid for.
    ///
    /// # Errors
    /// Unreadable or invalid files, a key not matching its certificate, unknown cipher suites,
    /// and the flag combinations etcd refuses (see [`TlsError`]).
    pub fn build(
        side: Side,
        flags: &TlsConfig,
        options: &TlsOptions,
        data_dir: &Path,
        hosts: &[String],
    ) -> Result<Option<Arc<Self>>, TlsError> {
        check_flags(side, flags)?;
        let Some(sources) = sources(side, flags, options, data_dir, hosts)? else {
            return Ok(None);
        };
        let selection = ciphers::select(rustls::crypto::ring::default_provider(), &options.cipher_suites)
            .map_err(TlsError::Config)?;
        if !selection.dropped.is_empty() {
            tracing::warn!(
                cipher_suites = %selection.dropped.join(","),
                "ignoring TLS 1.2 cipher suites that mainstay (rustls) does not implement"
            );
        }
        let provider = Arc::new(selection.provider);
        // Taken before loading: a change racing the load is then picked up by the watcher.
        let fingerprint = Mutex::new(fingerprint(&sources));
        let material = load(&sources, &provider)?;
        let cert = Arc::new(CertSlot::new(material.key));
        let verifier = material
            .verifier
            .map(|v| Arc::new(VerifierSlot::new(v, sources.allowed_hostnames.clone())));
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(options)?)
            .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
        let builder = match &verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // No resumption: every connection is checked against the current CA bundle and CRL.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Some(Arc::new(Self {
            sources,
            provider,
            cert,
            verifier,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
        })))
    }

    /// The files this side serves with.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The crypto provider (cipher-suite selection) of this side.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The acceptor for incoming connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Whether connections must present a verified client certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.verifier.is_some()
    }

    /// The served certificate chain now (leaf first).
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.cert.current().cert.clone()
    }

    /// Re-reads every file; swaps in the new material if it changed and is valid.
    ///
    /// # Errors
    /// The new files are unreadable or invalid; the previous material stays in use.
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let digest = fingerprint(&self.sources);
        {
            let mut last = self.fingerprint.lock().unwrap_or_else(|p| p.into_inner());
            if *last == digest {
                return Ok(Reload::Unchanged);
            }
            *last = digest;
        }
        let material = load(&self.sources, &self.provider)?;
        if let (Some(slot), Some(v)) = (&self.verifier, material.verifier) {
            slot.store(v);
        }
        self.cert.store(material.key);
        Ok(Reload::Swapped)
    }

    /// The directories holding the watched files.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .files()
            .iter()
            .map(|f| match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The file names (last path component) of the watched files.
    pub fn watched_names(&self) -> Vec<std::ffi::OsString> {
        self.files()
            .iter()
            .filter_map(|f| f.file_name().map(ToOwned::to_owned))
            .collect()
    }

    /// The files, for log lines.
    pub fn describe(&self) -> String {
        self.files()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn files(&self) -> Vec<&Path> {
        let s = &self.sources;
        [Some(&s.cert), Some(&s.key), s.trusted_ca.as_ref(), s.crl.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }
}

/// etcd's checks on flag combinations that need no file access.
fn check_flags(side: Side, flags: &TlsConfig) -> Result<(), TlsError> {
    if flags.client_cert_file.is_some() != flags.client_key_file.is_some() {
        return Err(TlsError::Config(format!(
            "ClientKeyFile and ClientCertFile must both be present or both absent: key: {}, cert: {}",
            path_text(flags.client_key_file.as_deref()),
            path_text(flags.client_cert_file.as_deref()),
        )));
    }
    if !flags.allowed_cns.is_empty() && !flags.allowed_hostnames.is_empty() {
        return Err(TlsError::Config(format!(
            "AllowedCN and AllowedHostname are mutually exclusive (cn={:?}, hostname={:?})",
            flags.allowed_cns, flags.allowed_hostnames
        )));
    }
    if flags.client_cert_auth && flags.trusted_ca_file.is_none() && !flags.auto_tls {
        // Go would fall back to the system roots here; Mainstay does not trust them for
        // client certificates.
        let p = side.prefix();
        return Err(TlsError::Config(format!(
            "--{p}client-cert-auth requires --{p}trusted-ca-file (mainstay does not verify client \
             certificates against the system CA store)"
        )));
    }
    Ok(())
}

fn path_text(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// The files to serve with: the given pair, or the auto-TLS pair (etcd `ClientSelfCert` /
/// `PeerSelfCert`: auto TLS only applies when no pair is given, and replaces the whole TLS
/// info, so CA, client-cert-auth and CRL settings are dropped with it).
fn sources(
    side: Side,
    flags: &TlsConfig,
    options: &TlsOptions,
    data_dir: &Path,
    hosts: &[String],
) -> Result<Option<Sources>, TlsError> {
    let p = side.prefix();
    match (&flags.cert_file, &flags.key_file) {
        (Some(cert), Some(key)) => {
            if flags.auto_tls {
                tracing::warn!("ignoring {p}auto TLS since certs given");
            }
            let require = flags.trusted_ca_file.is_some() || flags.client_cert_auth;
            Ok(Some(Sources {
                cert: cert.clone(),
                key: key.clone(),
                trusted_ca: flags.trusted_ca_file.clone().filter(|_| require),
                crl: flags.crl_file.clone(),
                allowed_hostnames: flags.allowed_hostnames.clone(),
            }))
        }
        (None, None) if flags.auto_tls => {
            if flags.client_cert_auth || flags.trusted_ca_file.is_some() {
                tracing::warn!(
                    "--{p}auto-tls replaces the TLS settings: client certificates are not verified \
                     (as in etcd)"
                );
            }
            let dir = data_dir.join("fixtures").join(side.fixtures());
            let pair = auto::ensure(
                &dir,
                hosts,
                options.self_signed_cert_validity_years,
                side == Side::Peer,
            )?;
            Ok(Some(Sources {
                cert: pair.cert,
                key: pair.key,
                trusted_ca: None,
                crl: None,
                allowed_hostnames: Vec::new(),
            }))
        }
        (None, None) => Ok(None),
        (cert, key) => Err(TlsError::Config(format!(
            "KeyFile and CertFile must both be present[key: {}, cert: {}]",
            path_text(key.as_deref()),
            path_text(cert.as_deref())
        ))),
    }
}

/// `--tls-min-version` / `--tls-max-version` (validated by the config parser) as rustls
/// versions; the default minimum is TLS 1.2 and an empty maximum means TLS 1.3.
fn versions(options: &TlsOptions) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let rank = |v: &str| match v {
        "TLS1.3" => 13,
        _ => 12,
    };
    let min = rank(&options.min_version);
    let max = if options.max_version.is_empty() {
        13
    } else {
        rank(&options.max_version)
    };
    let all: [(u8, &'static SupportedProtocolVersion); 2] =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)];
    let chosen: Vec<_> = all
        .iter()
        .filter(|(r, _)| (min..=max).contains(r))
        .map(|(_, v)| *v)
        .collect();
    if chosen.is_empty() {
        return Err(TlsError::Config(format!(
            "min version ({}) is greater than max version ({})",
            options.min_version, options.max_version
        )));
    }
    Ok(chosen)
}

/// One consistent load of a side's files.
struct Material {
    key: Arc<CertifiedKey>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Parse {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The certificates of a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, format!("tls: bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(parse_error(
            path,
            "tls: failed to find any PEM data in certificate input",
        ));
    }
    Ok(certs)
}

fn load(sources: &Sources, provider: &Arc<CryptoProvider>) -> Result<Material, TlsError> {
    let chain = read_certs(&sources.cert)?;
    let key_bytes = read(&sources.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        parse_error(
            &sources.key,
            format!("tls: failed to find any PEM data in key input ({e})"),
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: sources.cert.clone(),
            key: sources.key.clone(),
        },
        other => parse_error(&sources.key, other),
    })?;
    let verifier = match &sources.trusted_ca {
        None => None,
        Some(ca) => Some(client_verifier(ca, sources.crl.as_deref(), provider)?),
    };
    Ok(Material {
        key: Arc::new(certified),
        verifier,
    })
}

fn client_verifier(
    ca: &Path,
    crl: Option<&Path>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| parse_error(ca, format!("invalid CA certificate: {e}")))?;
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = crl {
        let bytes = read(crl)?;
        let crls: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| parse_error(crl, format!("bad CRL PEM: {e}")))?
        } else {
            vec![CertificateRevocationListDer::from(bytes)]
        };
        // etcd compares serial numbers only; certificates a CRL does not cover are accepted.
        builder = builder.with_crls(crls).allow_unknown_revocation_status();
    }
    builder.build().map_err(|e| {
        parse_error(
            crl.unwrap_or(ca),
            format!("cannot build the client verifier: {e}"),
        )
    })
}

fn fingerprint(sources: &Sources) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for path in [
        Some(&sources.cert),
        Some(&sources.key),
        sources.trusted_ca.as_ref(),
        sources.crl.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        path.hash(&mut h);
        std::fs::read(path).ok().hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests;
