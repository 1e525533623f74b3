//! Reading private keys and certificates kubeadm or Mainstay wrote.
//!
//! kubeadm (Go) writes RSA keys as PKCS#1 (`RSA PRIVATE KEY`) and ECDSA keys as SEC1
//! (`EC PRIVATE KEY`); Mainstay writes PKCS#8 (`PRIVATE KEY`). rcgen's ring backend signs only
//! with PKCS#8 keys, so PKCS#1 and SEC1 keys are wrapped into a PKCS#8 `PrivateKeyInfo`
//! (RFC 5208 §5) here — a fixed DER prefix around the original bytes, nothing re-encoded.

use std::path::Path;

use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::CtlError;

/// `AlgorithmIdentifier { rsaEncryption, NULL }` (RFC 8017 A.1).
const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// `AlgorithmIdentifier { id-ecPublicKey, prime256v1 }` (RFC 5480 §2.1.1).
const EC_P256_ALGORITHM_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07,
];
/// `AlgorithmIdentifier { id-ecPublicKey, secp384r1 }` (RFC 5480 §2.1.1).
const EC_P384_ALGORITHM_ID: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22,
];

/// DER tag-length-value with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len.to_be_bytes()[std::mem::size_of::<usize>() - 1]);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let n = bytes.len() - skip;
        out.push(0x80 | n.to_be_bytes()[std::mem::size_of::<usize>() - 1]);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// `PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }` around `inner`.
fn pkcs8(algorithm: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(algorithm);
    body.extend(tlv(0x04, inner));
    tlv(0x30, &body)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC with P-256/P-384) into a key rcgen
/// can sign with.
///
/// # Errors
/// [`CtlError::Parse`] naming `path` when there is no key or rcgen cannot use it.
pub fn key_from_pem(path: &Path, pem: &[u8]) -> Result<KeyPair, CtlError> {
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| CtlError::parse(path, format!("no private key: {e}")))?;
    let candidates: Vec<Vec<u8>> = match &key {
        PrivateKeyDer::Pkcs8(k) => vec![k.secret_pkcs8_der().to_vec()],
        PrivateKeyDer::Pkcs1(k) => vec![pkcs8(RSA_ALGORITHM_ID, k.secret_pkcs1_der())],
        PrivateKeyDer::Sec1(k) => vec![
            pkcs8(EC_P256_ALGORITHM_ID, k.secret_sec1_der()),
            pkcs8(EC_P384_ALGORITHM_ID, k.secret_sec1_der()),
        ],
        _ => Vec::new(),
    };
    candidates
        .into_iter()
        .find_map(|der| KeyPair::try_from(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))).ok())
        .ok_or_else(|| {
            CtlError::parse(
                path,
                "unsupported private key (want RSA, ECDSA P-256/P-384 or Ed25519)",
            )
        })
}

/// Reads and parses the private key in `path`.
///
/// # Errors
/// [`CtlError::Io`] or [`CtlError::Parse`].
pub fn read_key(path: &Path) -> Result<KeyPair, CtlError> {
    let pem = std::fs::read(path).map_err(|e| CtlError::io(path, e))?;
    key_from_pem(path, &pem)
}

/// The DER of the first certificate in the PEM file `path` (further certificates, as in a
/// bundle, are ignored, as Go's `tls.LoadX509KeyPair` uses the first as the leaf).
///
/// # Errors
/// [`CtlError::Io`] or [`CtlError::Parse`] when there is no `CERTIFICATE` block.
pub fn read_cert_der(path: &Path) -> Result<Vec<u8>, CtlError> {
    let pem = std::fs::read(path).map_err(|e| CtlError::io(path, e))?;
    let mut iter = x509_parser::pem::Pem::iter_from_buffer(&pem);
    match iter.next() {
        Some(Ok(block)) if block.label == "CERTIFICATE" => Ok(block.contents),
        Some(Ok(block)) => Err(CtlError::parse(
            path,
            format!("unexpected PEM block {}", block.label),
        )),
        Some(Err(e)) => Err(CtlError::parse(path, e)),
        None => Err(CtlError::parse(path, "no certificate PEM data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_short_and_long_forms() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 0x02, 1, 2]);
        let long = vec![0u8; 300];
        let out = tlv(0x04, &long);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(out.len(), 304);
    }

    #[test]
    fn a_pkcs8_key_round_trips() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let back = key_from_pem(Path::new("k"), key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn a_pkcs1_rsa_key_as_kubeadm_writes_it_is_usable() {
        // testdata/rsa-ca.key: `openssl genrsa -traditional 2048` (PEM `RSA PRIVATE KEY`, the
        // format of kubeadm's default RSA-2048 keys).
        let key = key_from_pem(Path::new("k"), include_bytes!("testdata/rsa-ca.key")).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
    }

    #[test]
    fn a_sec1_ec_key_as_kubeadm_writes_it_is_usable() {
        // testdata/ec-p256.key: `openssl ecparam -name prime256v1 -genkey -noout` (PEM
        // `EC PRIVATE KEY` with curve parameters, like Go's `x509.MarshalECPrivateKey`).
        let key = key_from_pem(Path::new("k"), include_bytes!("testdata/ec-p256.key")).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn garbage_is_a_parse_error_naming_the_file() {
        let err = key_from_pem(Path::new("/x/k.key"), b"nope").unwrap_err();
        assert!(err.to_string().starts_with("/x/k.key: "), "{err}");
    }
}
