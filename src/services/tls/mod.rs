//! rustls client settings for talking to the API server.
//!
//! The in-cluster server is usually an IP address (`KUBERNETES_SERVICE_HOST`), and
//! client-go verifies the certificate against that IP, so IP SANs must work: rustls
//! and webpki check them when the [`ServerName`] is an `IpAddress`.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ring, CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::sign::SigningKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::services::metrics::METRICS;

/// PEM from a file, re-read when it changes, or given inline (a kubeconfig's
/// `*-data` field), which never changes.
pub enum Pem {
    File(PathBuf),
    Inline {
        /// Where it came from, for messages: `certificate-authority-data of cluster "x" in F`.
        source: String,
        bytes: Vec<u8>,
    },
}

impl Pem {
    fn read(&self, what: &'static str) -> Result<Vec<u8>, PemError> {
        match self {
            Pem::File(path) => {
                std::fs::read(path).map_err(|e| PemError::Unreadable(what, path.clone(), e))
            }
            Pem::Inline { bytes, .. } => Ok(bytes.clone()),
        }
    }

    fn source(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Inline { source, .. } => source.clone(),
        }
    }
}

/// What the API server's certificate is checked against.
pub enum Roots {
    /// `--insecure-skip-tls-verify`: not checked at all.
    Insecure,
    Pem(Pem),
}

/// A client certificate (with its chain, leaf first) and its private key: from
/// PEM files or data, or from something that hands them out as they change
/// (an exec credential plugin, which may give none).
pub enum Identity {
    Pem { cert: Pem, key: Pem },
    Dynamic(Arc<dyn CertificateSource>),
}

impl Identity {
    /// Where the certificate and the key come from, for messages.
    fn sources(&self) -> (String, String) {
        match self {
            Identity::Pem { cert, key } => (cert.source(), key.source()),
            Identity::Dynamic(source) => {
                let from = format!("(from {})", source.describe());
                (from.clone(), from)
            }
        }
    }
}

/// A client certificate that changes as its source says: an exec credential
/// plugin's, which comes with each run (the credentials service provides it).
pub trait CertificateSource: Send + Sync {
    /// The PEM certificate (with its chain) and key, both empty when there is
    /// none yet, and a generation that changes with them.
    fn certificate(&self) -> (Vec<u8>, Vec<u8>, u64);
    /// The generation alone, asked often: cheap.
    fn generation(&self) -> u64;
    /// How messages name it: `exec plugin aws (user "x" in F)`.
    fn describe(&self) -> &str;
}

#[derive(Debug)]
pub enum PemError {
    Unreadable(&'static str, PathBuf, std::io::Error),
    /// What kind of PEM was expected, from where.
    NotPem(&'static str, String),
    Invalid(&'static str, String, rustls::Error),
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::Unreadable(what, path, e) => {
                write!(f, "{what} {}: cannot read it: {e}", path.display())
            }
            PemError::NotPem(what, source) => write!(f, "{what} {source}: {}", expected(what)),
            PemError::Invalid(what, source, e) => {
                let problem = match *what {
                    CLIENT_KEY => "not a usable key for the client certificate",
                    _ => "not a usable certificate",
                };
                write!(f, "{what} {source}: {problem}: {e}")
            }
        }
    }
}

fn expected(what: &str) -> &'static str {
    match what {
        CLIENT_KEY => {
            "no PEM private key in it (expected -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY; encrypted keys are not supported)"
        }
        _ => "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
    }
}

const CERTIFICATE_AUTHORITY: &str = "certificate authority";
const CLIENT_CERTIFICATE: &str = "client certificate";
const CLIENT_KEY: &str = "client key";

/// Reads PEM certificates: one or more (during a CA rotation the kubelet's
/// `ca.crt` holds the old and the new one; a client certificate comes with its chain).
fn certificates(
    what: &'static str,
    source: &dyn Fn() -> String,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| PemError::NotPem(what, source()))?;
    if certs.is_empty() {
        return Err(PemError::NotPem(what, source()));
    }
    Ok(certs)
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

/// ring, with AES-GCM only. TLS 1.3 makes AES-128-GCM mandatory and every
/// Kubernetes API server offers AES-GCM in TLS 1.2 too (Go's defaults), so the
/// ChaCha20-Poly1305 suites are never needed there. Built field by field, not
/// from `ring::default_provider()`, whose suite list would keep ring's ChaCha20
/// code linked in: 57,344 bytes of the static binary (see Cargo.toml).
fn provider() -> Arc<CryptoProvider> {
    use ring::cipher_suite::*;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: ring::ALL_KX_GROUPS.to_vec(),
        signature_verification_algorithms: SIGNATURES,
        secure_random: &RingKeys,
        key_provider: &RingKeys,
    })
}

/// The signature algorithms an API server's certificate and handshake may use,
/// as webpki checks them with ring: ECDSA P-256/P-384, Ed25519, RSA PKCS#1 and
/// PSS. For TLS 1.2 an ECDSA scheme does not fix the curve, hence two each.
static SIGNATURES: WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (
                SignatureScheme::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                &[alg::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA384,
                &[alg::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                &[alg::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    }
};

/// ring's randomness and private keys (for client certificates), as the
/// default provider has them.
#[derive(Debug)]
struct RingKeys;

impl SecureRandom for RingKeys {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ::ring::rand::SecureRandom as _;
        ::ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for RingKeys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        ring::sign::any_supported_type(&key)
    }
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // ring supports both versions; failing here would be a build mistake.
        .unwrap_or_else(|e| unreachable!("ring supports TLS 1.2 and 1.3: {e}"))
}

/// The rustls settings from the bytes read for the roots and the identity
/// (CA, certificate, key; see [`read_inputs`]).
fn build(
    roots: &Roots,
    identity: Option<&Identity>,
    [ca, cert, key]: &[Vec<u8>; 3],
) -> Result<Arc<ClientConfig>, PemError> {
    let verified = match roots {
        Roots::Pem(pem) => {
            let bytes = &ca[..];
            let source = || pem.source();
            let mut store = RootCertStore::empty();
            for cert in certificates(CERTIFICATE_AUTHORITY, &source, bytes)? {
                store
                    .add(cert)
                    .map_err(|e| PemError::Invalid(CERTIFICATE_AUTHORITY, source(), e))?;
            }
            builder().with_root_certificates(store)
        }
        // Not checked, but the handshake signatures still are, so the connection
        // is at least encrypted to whoever answered.
        Roots::Insecure => builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider()))),
    };
    let mut config = match identity {
        // A plugin that gave no certificate (yet): a token is its credential.
        None => verified.with_no_client_auth(),
        Some(Identity::Dynamic(_)) if cert.is_empty() && key.is_empty() => {
            verified.with_no_client_auth()
        }
        Some(identity) => {
            let (cert_source, key_source) = identity.sources();
            let chain = certificates(CLIENT_CERTIFICATE, &|| cert_source.clone(), cert)?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| PemError::NotPem(CLIENT_KEY, key_source.clone()))?;
            // rustls checks that the key belongs to the leaf certificate.
            verified
                .with_client_auth_cert(chain, key)
                .map_err(|e| PemError::Invalid(CLIENT_KEY, key_source, e))?
        }
    };
    // ALPN is pinned to HTTP/1.1: the proxy speaks HTTP/1.1 upstream, and
    // kubectl's upgrade path does the same so that 101 tunnels work.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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

/// How often the CA and client certificate files are looked at again. client-go
/// 1.36 re-reads a CA every 5 min and a client certificate at most once a second;
/// a CA rotation adds the new CA to the bundle well before it is used, so a few
/// seconds is ample and costs a few small reads.
const RELOAD_INTERVAL: Duration = Duration::from_secs(3);

/// The TLS settings for new connections to the API server, rebuilt when a file
/// they come from changes: the CA bundle (the kubelet updates `ca.crt` during a
/// CA rotation, the old and new CA side by side for a while) or a client
/// certificate and key (rotated by cert-manager or a kubeadm renewal).
pub struct TlsSource {
    roots: Roots,
    identity: Option<Identity>,
    state: Mutex<State>,
}

struct State {
    config: Arc<ClientConfig>,
    /// Bumped on each change: connections made under older settings are not reused.
    generation: u64,
    /// The bytes the settings were built from: CA, certificate, key (empty when absent).
    inputs: [Vec<u8>; 3],
    /// The exec plugin's generation the inputs were read at.
    plugin_generation: u64,
    checked: Instant,
    failing: bool,
}

impl TlsSource {
    pub fn new(roots: Roots, identity: Option<Identity>) -> Result<TlsSource, PemError> {
        let (inputs, plugin_generation) = read_inputs(&roots, identity.as_ref())?;
        let config = build(&roots, identity.as_ref(), &inputs)?;
        let state = State {
            config,
            generation: 0,
            inputs,
            plugin_generation,
            checked: Instant::now(),
            failing: false,
        };
        Ok(TlsSource {
            roots,
            identity,
            state: Mutex::new(state),
        })
    }

    /// The settings for a new connection, and the generation they belong to.
    pub fn current(&self) -> (Arc<ClientConfig>, u64) {
        let state = self.checked();
        (state.config.clone(), state.generation)
    }

    /// Only the generation (looking at the files if it is due): what the pool
    /// asks on every request, without cloning the settings.
    pub fn generation(&self) -> u64 {
        self.checked().generation
    }

    /// The state, rebuilt from the files first if the last look is old enough.
    fn checked(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state.checked.elapsed() >= RELOAD_INTERVAL && self.has_files();
        if due || self.plugin_changed(&state) {
            state.checked = Instant::now();
            self.reload(&mut state);
        }
        state
    }

    fn has_files(&self) -> bool {
        let file = |pem: &Pem| matches!(pem, Pem::File(_));
        matches!(&self.roots, Roots::Pem(pem) if file(pem))
            || matches!(&self.identity, Some(Identity::Pem { cert, key }) if file(cert) || file(key))
    }

    /// A plugin's new certificate is used at once, not at the next look at the
    /// files: the request that made the plugin run is about to connect.
    fn plugin_changed(&self, state: &State) -> bool {
        match &self.identity {
            Some(Identity::Dynamic(source)) => source.generation() != state.plugin_generation,
            _ => false,
        }
    }

    fn reload(&self, state: &mut State) {
        let rebuilt =
            read_inputs(&self.roots, self.identity.as_ref()).and_then(|(inputs, plugin)| {
                state.plugin_generation = plugin;
                if inputs == state.inputs {
                    return Ok(None);
                }
                let config = build(&self.roots, self.identity.as_ref(), &inputs)?;
                Ok(Some((inputs, config)))
            });
        match rebuilt {
            Ok(None) => state.failing = false,
            Ok(Some((inputs, config))) => {
                crate::event!(
                    2,
                    "tls_reload",
                    "{} changed: new connections use it",
                    self.describe()
                );
                METRICS.ca_reloads.inc();
                state.config = config;
                state.inputs = inputs;
                state.failing = false;
                state.generation += 1;
            }
            Err(e) => {
                METRICS.ca_reload_failures.inc();
                if !state.failing {
                    crate::event!(0, "tls_reload_failure", "{e}; keeping the last good one");
                }
                state.failing = true;
            }
        }
    }

    fn describe(&self) -> String {
        let mut what = Vec::new();
        if let Roots::Pem(Pem::File(path)) = &self.roots {
            what.push(format!("{CERTIFICATE_AUTHORITY} {}", path.display()));
        }
        match &self.identity {
            Some(Identity::Pem { cert, key }) => {
                for (name, pem) in [(CLIENT_CERTIFICATE, cert), (CLIENT_KEY, key)] {
                    if let Pem::File(path) = pem {
                        what.push(format!("{name} {}", path.display()));
                    }
                }
            }
            Some(Identity::Dynamic(source)) => {
                what.push(format!("client certificate from {}", source.describe()))
            }
            None => {}
        }
        what.join(" or ")
    }
}

/// The bytes to build from, and the plugin generation they belong to.
fn read_inputs(
    roots: &Roots,
    identity: Option<&Identity>,
) -> Result<([Vec<u8>; 3], u64), PemError> {
    let ca = match roots {
        Roots::Pem(pem) => pem.read(CERTIFICATE_AUTHORITY)?,
        Roots::Insecure => Vec::new(),
    };
    let (cert, key, generation) = match identity {
        Some(Identity::Pem { cert, key }) => {
            (cert.read(CLIENT_CERTIFICATE)?, key.read(CLIENT_KEY)?, 0)
        }
        Some(Identity::Dynamic(source)) => source.certificate(),
        None => (Vec::new(), Vec::new(), 0),
    };
    Ok(([ca, cert, key], generation))
}
