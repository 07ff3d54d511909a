//! rustls client settings for talking to the API server.
//!
//! The in-cluster server is usually an IP address (`KUBERNETES_SERVICE_HOST`), and
//! client-go verifies the certificate against that IP, so IP SANs must work: rustls
//! and webpki check them when the [`ServerName`] is an `IpAddress`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug)]
pub enum CaError {
    Unreadable(PathBuf, std::io::Error),
    NotPem(PathBuf),
    Invalid(PathBuf, rustls::Error),
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Unreadable(path, e) => {
                write!(f, "certificate authority {}: cannot read it: {e}", path.display())
            }
            CaError::NotPem(path) => write!(
                f,
                "certificate authority {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            CaError::Invalid(path, e) => {
                write!(f, "certificate authority {}: not a usable certificate: {e}", path.display())
            }
        }
    }
}

/// Reads a PEM bundle: one or more CA certificates (during a CA rotation the
/// kubelet's `ca.crt` holds the old and the new one).
fn parse_ca(path: &Path, pem: &[u8]) -> Result<RootCertStore, CaError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| CaError::NotPem(path.to_path_buf()))?;
        roots
            .add(cert)
            .map_err(|e| CaError::Invalid(path.to_path_buf(), e))?;
    }
    if roots.is_empty() {
        return Err(CaError::NotPem(path.to_path_buf()));
    }
    Ok(roots)
}

/// Where Debian, Alpine and Fedora keep their CA bundle. Used only with an explicit
/// `--server` and no `--certificate-authority`, as kubectl falls back to system roots.
pub fn system_ca_bundle() -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // ring supports both versions; failing here would be a build mistake.
        .unwrap_or_else(|e| unreachable!("ring supports TLS 1.2 and 1.3: {e}"))
}

/// ALPN is pinned to HTTP/1.1: the proxy speaks HTTP/1.1 upstream, and kubectl's
/// upgrade path does the same so that 101 tunnels work.
fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub fn client_config(roots: &RootCertStore) -> Arc<ClientConfig> {
    finish(
        builder()
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
    )
}

/// `--insecure-skip-tls-verify`: the certificate is not checked, but the handshake
/// signatures still are, so the connection is at least encrypted to whoever answered.
pub fn insecure_client_config() -> Arc<ClientConfig> {
    let verifier = Arc::new(NoCertificateCheck(provider()));
    finish(
        builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}

/// The name the certificate must carry: `--tls-server-name`, or the host of the
/// server URL (an IP address is checked against the certificate's IP SANs).
pub fn server_name(override_name: Option<&str>, host: &str) -> Result<ServerName<'static>, String> {
    let name = override_name.unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|_| {
        format!("invalid server name {name:?} for TLS: expected a DNS name or an IP address")
    })
}

#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How often a CA file is looked at again. client-go 1.36 re-reads every 5 min;
/// a CA rotation adds the new CA to the bundle well before it is used, so a few
/// seconds is ample and costs one small read.
const CA_RELOAD_INTERVAL: Duration = Duration::from_secs(3);

/// The TLS settings for new connections to the API server, with the CA bundle
/// re-read when its file changes (the kubelet updates `ca.crt` during a CA
/// rotation, the old and new CA side by side for a while).
pub enum TlsSource {
    /// `--insecure-skip-tls-verify`: nothing to reload.
    Fixed(Arc<ClientConfig>),
    File(CaFile),
}

pub struct CaFile {
    path: PathBuf,
    state: Mutex<CaState>,
}

struct CaState {
    config: Arc<ClientConfig>,
    /// Bumped on each change: connections made under an older bundle are not reused.
    generation: u64,
    pem: Vec<u8>,
    checked: Instant,
    failing: bool,
}

impl TlsSource {
    pub fn file(path: &Path) -> Result<TlsSource, CaError> {
        let pem = std::fs::read(path).map_err(|e| CaError::Unreadable(path.to_path_buf(), e))?;
        let config = client_config(&parse_ca(path, &pem)?);
        let state = CaState {
            config,
            generation: 0,
            pem,
            checked: Instant::now(),
            failing: false,
        };
        Ok(TlsSource::File(CaFile {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        }))
    }

    /// The settings for a new connection, and the generation they belong to.
    pub fn current(&self) -> (Arc<ClientConfig>, u64) {
        match self {
            TlsSource::Fixed(config) => (config.clone(), 0),
            TlsSource::File(file) => {
                let state = file.checked();
                (state.config.clone(), state.generation)
            }
        }
    }

    /// Only the generation (looking at the file if it is due): what the pool
    /// asks on every request, without cloning the settings.
    pub fn generation(&self) -> u64 {
        match self {
            TlsSource::Fixed(_) => 0,
            TlsSource::File(file) => file.checked().generation,
        }
    }
}

impl CaFile {
    /// The state, re-read from the file first if the last look is old enough.
    fn checked(&self) -> MutexGuard<'_, CaState> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= CA_RELOAD_INTERVAL {
            state.checked = Instant::now();
            self.reload(&mut state);
        }
        state
    }

    fn reload(&self, state: &mut CaState) {
        let loaded = std::fs::read(&self.path)
            .map_err(|e| CaError::Unreadable(self.path.clone(), e))
            .and_then(|pem| {
                if pem == state.pem {
                    return Ok(None);
                }
                parse_ca(&self.path, &pem).map(|roots| Some((pem, roots)))
            });
        match loaded {
            Ok(None) => state.failing = false,
            Ok(Some((pem, roots))) => {
                crate::log!(
                    2,
                    "certificate authority {} changed: new connections use it",
                    self.path.display()
                );
                state.config = client_config(&roots);
                state.pem = pem;
                state.failing = false;
                state.generation += 1;
            }
            Err(e) => {
                if !state.failing {
                    crate::log!(0, "{e}; keeping the last good one");
                }
                state.failing = true;
            }
        }
    }
}
