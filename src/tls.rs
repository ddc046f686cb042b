//! TLS trust for `https://` targets: the rustls client configuration every connection of a
//! worker shares. Verification is on by default, against the bundled webpki roots plus the
//! system's (and `SSL_CERT_FILE`); `--ca-cert` adds a PEM file's certificates to those roots;
//! `--insecure` accepts any certificate. Built here rather than by monoio-http-client, whose
//! TLS connector can only use the bundled roots.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::{ServerCertVerified, ServerCertVerifier};
use rustls::{Certificate, ClientConfig, OwnedTrustAnchor, RootCertStore, ServerName};
use serde::{Deserialize, Serialize};

/// What a run says about trust; travels in the worker spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// Extra roots (PEM), added to the bundled and system ones.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--ca-cert {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("--ca-cert {0}: no PEM certificate in it")]
    NoCertificate(PathBuf),
    #[error("--ca-cert {0}: certificate {1} is not valid: {2}")]
    BadCertificate(PathBuf, usize, String),
}

/// Reads the certificates of a PEM file; at least one.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<Certificate>, TlsError> {
    let file = std::fs::File::open(path).map_err(|e| TlsError::Read(path.into(), e))?;
    let ders = rustls_pemfile::certs(&mut BufReader::new(file))
        .map_err(|e| TlsError::Read(path.into(), e))?;
    if ders.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(ders.into_iter().map(Certificate).collect())
}

/// The root store for `trust`: bundled roots, system roots, then the `--ca-cert` file's.
fn root_store(trust: &Trust) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add_trust_anchors(webpki_roots::TLS_SERVER_ROOTS.iter().map(|ta| {
        OwnedTrustAnchor::from_subject_spki_name_constraints(
            ta.subject,
            ta.spki,
            ta.name_constraints,
        )
    }));
    // A missing or unreadable system store is not an error: the bundled roots remain.
    if let Ok(system) = rustls_native_certs::load_native_certs() {
        for cert in system {
            let _ = roots.add(&Certificate(cert.0));
        }
    }
    if let Some(path) = &trust.ca_cert {
        for (k, cert) in read_pem_certificates(path)?.iter().enumerate() {
            roots
                .add(cert)
                .map_err(|e| TlsError::BadCertificate(path.clone(), k + 1, e.to_string()))?;
        }
    }
    Ok(roots)
}

/// Checks what the run asks for (a `--ca-cert` that can be read and holds certificates), so a
/// mistake fails before any worker starts.
pub fn check(trust: &Trust) -> Result<(), TlsError> {
    if trust.ca_cert.is_some() {
        root_store(trust)?;
    }
    Ok(())
}

/// The client configuration for `trust`, offering `alpn` protocols (empty: none).
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder().with_safe_defaults();
    let mut config = if trust.insecure {
        builder
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(trust)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `--insecure`: every certificate passes (the handshake itself is still checked).
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &Certificate,
        _intermediates: &[Certificate],
        _server_name: &ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp_response: &[u8],
        _now: SystemTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let trust = Trust {
            ca_cert: Some(path.clone()),
            insecure: false,
        };
        assert!(matches!(check(&trust), Err(TlsError::NoCertificate(_))));
        let missing = Trust {
            ca_cert: Some(dir.path().join("missing.pem")),
            insecure: false,
        };
        assert!(matches!(check(&missing), Err(TlsError::Read(..))));
        assert!(check(&Trust::default()).is_ok());
        assert!(client_config(&Trust::default(), &[b"h2"]).is_ok());
    }
}
