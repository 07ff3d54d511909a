//! rustls client settings for talking to the API server: the roots (a CA
//! bundle, or none with `--insecure-skip-tls-verify`) and the client
//! certificate, read from PEM (`pem`), built on ring without ChaCha20
//! (`provider`), and rebuilt when a file they come from changes ([`TlsSource`]).
//!
//! The in-cluster server is usually an IP address (`KUBERNETES_SERVICE_HOST`), and
//! client-go verifies the certificate against that IP, so IP SANs must work: rustls
//! and webpki check them when the [`ServerName`] is an `IpAddress`.

mod pem;
mod provider;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};

use pem::{certificates, CERTIFICATE_AUTHORITY, CLIENT_CERTIFICATE, CLIENT_KEY};
pub use pem::{Pem, TlsError, TlsProblem};
use provider::{builder, provider, NoCertificateCheck};

use crate::services::metrics::METRICS;

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

/// The rustls settings from the bytes read for the roots and the identity
/// (CA, certificate, key; see [`read_inputs`]).
fn build(
    roots: &Roots,
    identity: Option<&Identity>,
    [ca, cert, key]: &[Vec<u8>; 3],
) -> Result<Arc<ClientConfig>, TlsError> {
    let verified = match roots {
        Roots::Pem(pem) => {
            let bytes = &ca[..];
            let source = || pem.source();
            let mut store = RootCertStore::empty();
            for cert in certificates(CERTIFICATE_AUTHORITY, &source, bytes)? {
                store.add(cert).map_err(|e| {
                    TlsError::from(TlsProblem::Invalid(CERTIFICATE_AUTHORITY, source(), e))
                })?;
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
                .map_err(|_| TlsError::from(TlsProblem::NotPem(CLIENT_KEY, key_source.clone())))?;
            // rustls checks that the key belongs to the leaf certificate.
            verified
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::from(TlsProblem::Invalid(CLIENT_KEY, key_source, e)))?
        }
    };
    // ALPN is pinned to HTTP/1.1: the proxy speaks HTTP/1.1 upstream, and
    // kubectl's upgrade path does the same so that 101 tunnels work.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name the certificate must carry: `--tls-server-name`, or the host of the
/// server URL (an IP address is checked against the certificate's IP SANs).
pub fn server_name(
    override_name: Option<&str>,
    host: &str,
) -> Result<ServerName<'static>, TlsError> {
    let name = override_name.unwrap_or(host);
    ServerName::try_from(name.to_string())
        .map_err(|_| TlsError::from(TlsProblem::ServerName(name.to_string())))
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
    pub fn new(roots: Roots, identity: Option<Identity>) -> Result<TlsSource, TlsError> {
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
) -> Result<([Vec<u8>; 3], u64), TlsError> {
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
