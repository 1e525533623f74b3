//! Swappable TLS material and the file watcher that swaps it (beyond etcd, which re-reads the
//! certificate per handshake but never the CA bundle).
//!
//! [`CertSlot`] is the `ResolvesServerCert` and [`VerifierSlot`] the `ClientCertVerifier` of
//! the listener's fixed `ServerConfig`; both read an `ArcSwap`, so a handshake sees either the
//! old or the new material, never a mix, and established connections keep the keys they
//! negotiated. [`spawn_watcher`] watches the directories holding the files (directories, not
//! files, so atomic rename-replaces and Kubernetes' `..data` symlink swaps are seen), waits
//! until the files have been quiet for [`RELOAD_DEBOUNCE`], then calls [`ServerTls::reload`];
//! a poll every [`RELOAD_POLL_INTERVAL`] covers file systems without inotify.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};

pub use crate::config::limits::{RELOAD_DEBOUNCE, RELOAD_DEBOUNCE_MAX, RELOAD_POLL_INTERVAL};

use super::ServerTls;
use super::config::Reload;

/// The server certificate currently served.
#[derive(Debug)]
pub struct CertSlot(ArcSwap<CertifiedKey>);

impl CertSlot {
    /// A slot serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self(ArcSwap::new(key))
    }

    /// Serves `key` from the next handshake on.
    pub fn store(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.load_full()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The current CA verifier (webpki with the trusted CA bundle and CRLs).
#[derive(Debug)]
pub struct Inner(pub Arc<dyn ClientCertVerifier>);

/// Client-certificate verification against the current CA bundle, plus etcd's
/// `--client-cert-allowed-hostname` check (Go `cert.VerifyHostname`, SANs only) on the leaf.
#[derive(Debug)]
pub struct VerifierSlot {
    inner: ArcSwap<Inner>,
    allowed_hostnames: Vec<String>,
}

/// Why a chain-valid client certificate was refused.
#[derive(Debug, thiserror::Error)]
#[error("client certificate authentication failed: no SAN matches the allowed host names {0:?}")]
struct HostnameRejected(Vec<String>);

impl VerifierSlot {
    /// A slot verifying with `inner`, then requiring one of `allowed_hostnames` (if any).
    pub fn new(inner: Arc<dyn ClientCertVerifier>, allowed_hostnames: Vec<String>) -> Self {
        Self {
            inner: ArcSwap::new(Arc::new(Inner(inner))),
            allowed_hostnames,
        }
    }

    /// Verifies with `inner` from the next handshake on.
    pub fn store(&self, inner: Arc<dyn ClientCertVerifier>) {
        self.inner.store(Arc::new(Inner(inner)));
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner.load().0.clone()
    }

    fn hostname_allowed(&self, end_entity: &CertificateDer<'_>) -> bool {
        if self.allowed_hostnames.is_empty() {
            return true;
        }
        let Ok(parsed) = ParsedCertificate::try_from(end_entity) else {
            return false;
        };
        self.allowed_hostnames.iter().any(|h| {
            ServerName::try_from(h.as_str())
                .is_ok_and(|name| rustls::client::verify_server_name(&parsed, &name).is_ok())
        })
    }
}

impl ClientCertVerifier for VerifierSlot {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints are advisory (clients pick a certificate with them); the current bundle's
        // cannot be borrowed past a swap, and Go's clients ignore them, so none are sent.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .current()
            .verify_client_cert(end_entity, intermediates, now)?;
        if !self.hostname_allowed(end_entity) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(HostnameRejected(self.allowed_hostnames.clone()))),
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Starts watching `tls`'s files; reloads run on the current Tokio runtime until it shuts
/// down. `what` names the side in log lines (e.g. `client`).
///
/// # Errors
/// The watcher could not be created (inotify limits); the poll still runs in that case, so
/// the error is only logged by the caller.
pub fn spawn_watcher(tls: Arc<ServerTls>, what: &'static str) -> Result<(), notify::Error> {
    use notify::Watcher;
    // One pending wake-up is enough: a reload reads every file.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watched: Vec<PathBuf> = tls.watched_dirs();
    let names = tls.watched_names();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Errors (e.g. a queue overflow) wake the reload too: re-reading is always safe.
        if event.as_ref().is_ok_and(|e| !relevant(e, &names)) {
            return;
        }
        tracing::debug!(event = ?event, "TLS file changed");
        let _ = tx.try_send(());
    });
    let mut watch_error = None;
    if let Ok(w) = watcher.as_mut() {
        for dir in &watched {
            if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                watch_error = Some(e);
            }
        }
    }
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            watch_error = Some(e);
            None
        }
    };
    tokio::spawn(async move {
        // Keeps the inotify watches alive for as long as the task runs.
        let _watcher = watcher;
        loop {
            tokio::select! {
                woke = rx.recv() => if woke.is_none() { break },
                () = tokio::time::sleep(RELOAD_POLL_INTERVAL) => {}
            }
            // Debounce: writers replace a certificate and its key in several steps. Bounded,
            // so a directory that never goes quiet cannot postpone the reload for ever.
            let give_up = tokio::time::Instant::now() + RELOAD_DEBOUNCE_MAX;
            while tokio::time::Instant::now() < give_up
                && let Ok(Some(())) = tokio::time::timeout(RELOAD_DEBOUNCE, rx.recv()).await
            {}
            match tls.reload() {
                Ok(Reload::Swapped) => {
                    tracing::info!(side = what, files = %tls.describe(), "reloaded TLS certificate and CA material")
                }
                Ok(Reload::Unchanged) => {}
                Err(e) => {
                    tracing::error!(side = what, error = %e, "cannot reload TLS material; keeping the previous certificate and CA")
                }
            }
        }
    });
    match watch_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether a file-system event may have changed the material: a write, create, rename or
/// removal (not a read: reloads and clients read these files all the time) of one of the
/// watched file names, or of a `..name` entry (Kubernetes' atomic writer swaps a `..data`
/// symlink next to the files).
fn relevant(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    let kind_matters = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_matters
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.iter().any(|w| w == n) || n.to_string_lossy().starts_with(".."))
        })
}
