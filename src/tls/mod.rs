//! TLS trust for `https://` targets: the rustls client configuration every connection of a
//! worker shares. Verification is on by default, against the bundled webpki roots plus the
//! system's (and `SSL_CERT_FILE`); `--ca-cert` adds a PEM file's certificates to those roots,
//! and trusts each as the server's own certificate too (as curl does, for a self-signed one);
//! `--insecure` accepts any certificate. Sessions are resumed and counted by `resume`.

mod resume;

pub use resume::{handshake_completed, handshakes};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
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
    #[error("TLS: {0}")]
    Provider(String),
}

/// Reads the certificates of a PEM file; at least one.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |e: pem::Error| match e {
        pem::Error::Io(e) => TlsError::Read(path.into(), e),
        other => TlsError::Read(path.into(), std::io::Error::other(other.to_string())),
    };
    let ders = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if ders.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(ders)
}

/// The cryptography every connection uses: rustls' `ring` provider, named here rather than
/// installed as a process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The root store for `trust`: bundled roots, system roots, then the `--ca-cert` file's.
fn root_store(trust: &Trust) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // A missing or unreadable system store (or a bad certificate in it) is not an error: the
    // bundled roots remain.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = &trust.ca_cert {
        for (k, cert) in read_pem_certificates(path)?.into_iter().enumerate() {
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

/// What a worker's TLS connections are made with: the run's trust, and room for as many
/// resumption tickets per server as it has connections in flight (see `resume`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub trust: Trust,
    pub tickets_per_server: usize,
}

/// A configuration made for a TLS setting and ALPN list.
type Made = (ClientTls, Vec<Vec<u8>>, Arc<ClientConfig>);

thread_local! {
    /// Configurations made on this thread: building one reads the root stores (milliseconds),
    /// and with `{id}` in the host every key's host needs one.
    static MADE: std::cell::RefCell<Vec<Made>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The client configuration for `tls`, offering `alpn` protocols (empty: none); made once per
/// thread for each pair, so that a worker's connections (and redirects) share its sessions.
pub fn client_config(tls: &ClientTls, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let alpn_owned: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
    let made = MADE.with(|made| {
        made.borrow()
            .iter()
            .find(|(t, a, _)| t == tls && *a == alpn_owned)
            .map(|(_, _, config)| config.clone())
    });
    if let Some(config) = made {
        return Ok(config);
    }
    let config = make_client_config(tls, alpn)?;
    MADE.with(|made| {
        made.borrow_mut()
            .push((tls.clone(), alpn_owned, config.clone()))
    });
    Ok(config)
}

fn make_client_config(tls: &ClientTls, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.trust.insecure {
        Arc::new(AcceptAnyCertificate(algorithms))
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(&tls.trust)?),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Provider(e.to_string()))?;
        match &tls.trust.ca_cert {
            Some(path) => Arc::new(OrTheServersOwn {
                webpki,
                own: read_pem_certificates(path)?,
            }),
            None => webpki,
        }
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Counted(verifier)))
        .with_no_client_auth();
    config.resumption = Resumption::store(Arc::new(resume::Tickets::new(tls.tickets_per_server)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Verifies with the verifier it wraps, and counts each certificate that passes: a full
/// handshake (a resumed one sends no certificate).
#[derive(Debug)]
struct Counted(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for Counted {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.0.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        resume::full_handshake();
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.0.root_hint_subjects()
    }
}

/// `--ca-cert` as curl takes it: a certificate of the file is a CA's, or the server's own. The
/// usual self-signed recipe (`openssl req -x509`) makes a certificate marked as a CA, which
/// webpki refuses as a server's (`CaUsedAsEndEntity`) even when it is a root; the very
/// certificate the file holds, for the name asked for, is trusted as OpenSSL trusts it. The
/// handshake's signatures are checked as ever, so the server must hold its key.
#[derive(Debug)]
struct OrTheServersOwn {
    webpki: Arc<WebPkiServerVerifier>,
    own: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for OrTheServersOwn {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        if !self
            .own
            .iter()
            .any(|own| own.as_ref() == end_entity.as_ref())
        {
            return Err(refused);
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `--insecure`: every certificate passes. The handshake's signatures are still checked, with
/// the provider's algorithms, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
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
        let tls = ClientTls {
            trust: Trust::default(),
            tickets_per_server: 64,
        };
        assert!(client_config(&tls, &[b"h2"]).is_ok());
    }
}
