//! PEM in, certificates and keys out: from files (read again when they
//! change) or a kubeconfig's `*-data`, and what is wrong with them when they
//! are not.

use std::fmt;
use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

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
    pub fn read(&self, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| TlsError::from(TlsProblem::Unreadable(what, path.clone(), e))),
            Pem::Inline { bytes, .. } => Ok(bytes.clone()),
        }
    }

    pub fn source(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Inline { source, .. } => source.clone(),
        }
    }
}

/// Why TLS settings could not be made: what (a certificate authority, a client
/// certificate or key), from where, and what is wrong with it.
#[derive(Debug)]
pub struct TlsError(Box<TlsProblem>);

/// What is wrong with a certificate, key or server name.
#[derive(Debug)]
pub enum TlsProblem {
    Unreadable(&'static str, PathBuf, std::io::Error),
    /// What kind of PEM was expected, from where.
    NotPem(&'static str, String),
    Invalid(&'static str, String, rustls::Error),
    /// A `--tls-server-name` (or server host) that is neither a DNS name nor an IP.
    ServerName(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::Unreadable(what, path, e) => {
                write!(f, "{what} {}: cannot read it: {e}", path.display())
            }
            TlsProblem::NotPem(what, source) => write!(f, "{what} {source}: {}", expected(what)),
            TlsProblem::Invalid(what, source, e) => {
                let problem = match *what {
                    CLIENT_KEY => "not a usable key for the client certificate",
                    _ => "not a usable certificate",
                };
                write!(f, "{what} {source}: {problem}: {e}")
            }
            TlsProblem::ServerName(name) => write!(
                f,
                "invalid server name {name:?} for TLS: expected a DNS name or an IP address"
            ),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<TlsProblem> for TlsError {
    fn from(problem: TlsProblem) -> Self {
        TlsError(Box::new(problem))
    }
}

impl TlsError {
    /// What is wrong.
    pub fn problem(&self) -> &TlsProblem {
        &self.0
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.problem() {
            TlsProblem::Unreadable(_, _, e) => Some(e),
            TlsProblem::Invalid(_, _, e) => Some(e),
            TlsProblem::NotPem(..) | TlsProblem::ServerName(_) => None,
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

pub const CERTIFICATE_AUTHORITY: &str = "certificate authority";
pub const CLIENT_CERTIFICATE: &str = "client certificate";
pub const CLIENT_KEY: &str = "client key";

/// Reads PEM certificates: one or more (during a CA rotation the kubelet's
/// `ca.crt` holds the old and the new one; a client certificate comes with its chain).
pub fn certificates(
    what: &'static str,
    source: &dyn Fn() -> String,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::from(TlsProblem::NotPem(what, source())))?;
    if certs.is_empty() {
        return Err(TlsError::from(TlsProblem::NotPem(what, source())));
    }
    Ok(certs)
}
