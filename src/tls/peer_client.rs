//! The client side of peer TLS: how a member connects to the other members' `https` peer
//! URLs (etcd `rafthttp` transport with `--peer-*` TLS).
//!
//! The member presents its peer certificate as the client certificate (what
//! `--peer-client-cert-auth` checks on the other side) and verifies the other member against
//! `--peer-trusted-ca-file`. Without a peer CA — `--peer-auto-tls` — the other member's
//! certificate is not verified, as etcd's auto-TLS peers do (`InsecureSkipVerify`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TlsError;
use super::config::{ServerTls, read_certs};

/// The rustls client configuration for connecting to peers, from this member's peer TLS.
///
/// # Errors
/// Unreadable or invalid certificate, key or CA files.
pub fn client_config(peer: &ServerTls) -> Result<Arc<ClientConfig>, TlsError> {
    let sources = peer.sources();
    let provider = peer.provider().clone();
    let chain = read_certs(&sources.cert)?;
    let key_bytes = std::fs::read(&sources.key)
        .map_err(|e| TlsError::Config(format!("{}: {e}", sources.key.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| TlsError::Config(format!("{}: {e}", sources.key.display())))?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(format!("peer TLS versions: {e}")))?;
    let builder = match &sources.trusted_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| {
                    TlsError::Config(format!("{}: invalid CA certificate: {e}", ca.display()))
                })?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
    };
    let mut config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("peer client certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any peer certificate (signatures are still checked): etcd's auto-TLS peers.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
