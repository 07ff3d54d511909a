//! What can be wrong with the configuration, each found before the listener
//! opens and reported as one line that names the flag, file or entry and says
//! what to do. Entries are named as messages name them: `cluster "x" in FILE`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::leaves::yaml;
use crate::pipeline::route::patterns::PatternError;
use crate::pipeline::www::WwwError;
use crate::services::credentials::CredentialError;
use crate::services::tls::TlsError;
use crate::services::upstream::proxy_url::ProxyUrlError;

/// A configuration problem: boxed, so that the `Result` of every step of
/// reading a configuration stays two words wide (a `ConfigProblem` is up to a
/// hundred bytes, and the happy path would move them all at each `?`).
#[derive(Debug)]
pub struct ConfigError(Box<ConfigProblem>);

/// What is wrong with the configuration.
#[derive(Debug)]
pub enum ConfigProblem {
    // Flags.
    /// Two flags that contradict each other (kubectl's own sentences).
    Conflict(&'static str),
    /// A count flag given 0.
    ZeroCount(&'static str),
    /// A duration flag given 0.
    ZeroDuration(&'static str),
    Address(String),
    MetricsAddress(String),
    Patterns {
        flag: &'static str,
        source: PatternError,
    },
    ApiPrefix(String),
    /// `--www DIR` that cannot be served.
    Www(WwwError),

    // The API server.
    /// A server URL that cannot be used: where it was written, and why.
    ServerUrl {
        from: String,
        url: String,
        why: &'static str,
    },
    InClusterAddress {
        host: String,
        port: String,
    },
    /// Not in a Pod, and no kubeconfig or flag says where the API server is:
    /// what was looked at.
    NoApiServer(Looked),
    NoClusterInContext,
    /// A cluster without a server: the cluster as messages name it, and its name.
    NoServer {
        cluster: String,
        name: String,
    },
    ProxyUrl {
        url: String,
        cluster: String,
        source: ProxyUrlError,
    },

    // Kubeconfig files.
    NoSuchKubeconfig(PathBuf),
    Unreadable {
        file: PathBuf,
        source: io::Error,
    },
    NotText(PathBuf),
    Yaml {
        file: PathBuf,
        source: yaml::Error,
    },
    /// A field of the wrong type or value: the file, where in it, and what was expected.
    Field {
        file: PathBuf,
        at: String,
        expected: String,
    },

    // Which entries.
    /// `--context`, `--cluster` or `--user` names no entry: its kind
    /// (`context`, `cluster`, `auth info`), the name, the files read.
    NoSuchEntry {
        kind: &'static str,
        name: String,
        files: Vec<PathBuf>,
    },
    DanglingCurrentContext {
        name: String,
        file: PathBuf,
    },
    /// A context naming a cluster no file defines.
    NoSuchCluster {
        context: String,
        name: String,
        files: Vec<PathBuf>,
    },

    // Who to be (`whose`: the user as messages name it, or "the flags").
    BothFileAndData {
        whose: String,
        field: &'static str,
    },
    CertificateWithoutKey(String),
    KeyWithoutCertificate(String),
    PasswordWithoutUsername(String),
    TwoMethods(String),
    /// Over https with nothing to say who kproxy is: what the selection lacks.
    NoCredentials(String),
    AuthProvider {
        whose: String,
        provider: String,
    },
    ExecFieldMissing {
        whose: String,
        field: &'static str,
    },
    ExecVersion {
        whose: String,
        version: String,
    },
    ExecInteractive(String),
    ExecMode {
        whose: String,
        mode: String,
    },
    ImpersonationWithoutUser(String),
    /// A CA file read for an exec plugin's `provideClusterInfo`.
    CertificateAuthority {
        path: PathBuf,
        source: io::Error,
    },

    // TLS.
    /// A cluster with both a CA and `insecure-skip-tls-verify`.
    InsecureWithCa(String),
    /// A cluster with both `certificate-authority-data` and `certificate-authority`.
    TwoCas(String),
    NoCa,
    Tls(TlsError),
    Credential(CredentialError),
}

/// What kproxy looked at for an API server, when it found none.
#[derive(Debug)]
pub enum Looked {
    /// No kubeconfig file at all.
    NoKubeconfig,
    /// Kubeconfig files, none with a context.
    NoContext(Vec<PathBuf>),
}

/// Files as messages list them: `a, b`.
struct Files<'a>(&'a [PathBuf]);

impl fmt::Display for Files<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, file) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", file.display())?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigProblem::*;
        match self {
            Conflict(sentence) => f.write_str(sentence),
            ZeroCount(flag) => write!(f, "invalid {flag} 0: it must be at least 1"),
            ZeroDuration(flag) => write!(f, "invalid {flag} 0: it must be longer than that"),
            Address(value) => write!(
                f,
                "invalid --address {value:?}: expected an IP address such as 127.0.0.1"
            ),
            MetricsAddress(value) => write!(
                f,
                "invalid --metrics-address {value:?}: expected HOST:PORT such as 0.0.0.0:9091"
            ),
            Patterns { flag, source } => write!(f, "invalid {flag}: {source}"),
            ApiPrefix(prefix) => {
                write!(f, "invalid --api-prefix {prefix:?}: it must start with /")
            }
            Www(e) => e.fmt(f),
            ServerUrl { from, url, why } => write!(f, "invalid {from} {url:?}: {why}"),
            InClusterAddress { host, port } => write!(
                f,
                "KUBERNETES_SERVICE_HOST={host:?} and KUBERNETES_SERVICE_PORT={port:?} do not \
                 form a valid address"
            ),
            NoApiServer(looked) => {
                f.write_str("no API server: ")?;
                match looked {
                    Looked::NoKubeconfig => f.write_str(
                        "no kubeconfig (none at --kubeconfig, KUBECONFIG or ~/.kube/config)",
                    )?,
                    Looked::NoContext(files) => {
                        write!(f, "no context in kubeconfig {}", Files(files))?
                    }
                }
                f.write_str(
                    ", not in a Pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are \
                     not set), and no --server https://HOST:PORT",
                )
            }
            NoClusterInContext => f.write_str(
                "no API server: the kubeconfig context names no cluster; pass --server or \
                 --cluster",
            ),
            NoServer { cluster, name } => write!(
                f,
                "{cluster} has no server: set one with `kubectl config set-cluster {name} \
                 --server=https://HOST:PORT`, or pass --server"
            ),
            ProxyUrl {
                url,
                cluster,
                source,
            } => write!(f, "invalid proxy-url {url:?} of {cluster}: {source}"),
            NoSuchKubeconfig(path) => write!(f, "--kubeconfig {}: no such file", path.display()),
            Unreadable { file, source } => {
                write!(f, "kubeconfig {}: cannot read it: {source}", file.display())
            }
            NotText(file) => write!(
                f,
                "kubeconfig {}: not text (neither UTF-8 nor UTF-16 with a byte-order mark)",
                file.display()
            ),
            Yaml { file, source } => {
                write!(f, "kubeconfig {}: not valid YAML: {source}", file.display())
            }
            Field { file, at, expected } => {
                write!(
                    f,
                    "kubeconfig {}: {at}: expected {expected}",
                    file.display()
                )
            }
            NoSuchEntry { kind, name, files } => match files.is_empty() {
                true => write!(
                    f,
                    "{kind} {name:?} does not exist in any kubeconfig (none found)"
                ),
                false => write!(
                    f,
                    "{kind} {name:?} does not exist in kubeconfig {}",
                    Files(files)
                ),
            },
            DanglingCurrentContext { name, file } => write!(
                f,
                "current-context {name:?} (set in {}) names no context: choose one with \
                 --context or `kubectl config use-context`",
                file.display()
            ),
            NoSuchCluster {
                context,
                name,
                files,
            } => write!(
                f,
                "{context} names cluster {name:?}, which no kubeconfig defines ({})",
                Files(files)
            ),
            BothFileAndData { whose, field } => write!(
                f,
                "{whose}: {field}-data and {field} are both specified; keep one"
            ),
            CertificateWithoutKey(whose) => write!(
                f,
                "{whose}: a client certificate without its key: client-key-data or client-key \
                 (or --client-key) must be specified to use the client certificate"
            ),
            KeyWithoutCertificate(whose) => write!(
                f,
                "{whose}: a client key without its certificate: add client-certificate (or \
                 --client-certificate)"
            ),
            PasswordWithoutUsername(whose) => write!(
                f,
                "{whose}: a password without a username: add username (or --username)"
            ),
            TwoMethods(whose) => write!(
                f,
                "more than one authentication method found for {whose}; found [token \
                 basicAuth], only one is allowed"
            ),
            NoCredentials(what) => write!(
                f,
                "{what}: kubectl would ask for a username on a terminal, and kproxy has none; \
                 give the user credentials, or pass --token-file"
            ),
            AuthProvider { whose, provider } => {
                let instead = match provider.as_str() {
                    "gcp" => {
                        "the gke-gcloud-auth-plugin exec plugin (`gcloud components \
                              install gke-gcloud-auth-plugin`)"
                    }
                    "azure" => "the kubelogin exec plugin (https://github.com/Azure/kubelogin)",
                    "oidc" => {
                        "an exec plugin such as kubelogin (`kubectl oidc-login`, \
                               https://github.com/int128/kubelogin)"
                    }
                    _ => "an exec credential plugin",
                };
                write!(
                    f,
                    "{whose}: auth-provider {provider:?} is not supported: kubectl removed its \
                     auth providers in 1.26; use {instead}"
                )
            }
            ExecFieldMissing { whose, field } => write!(
                f,
                "{whose}: {field} must be specified to use the exec credential plugin"
            ),
            ExecVersion { whose, version } => write!(
                f,
                "{whose}: exec plugin: invalid apiVersion {version:?} (kubectl accepts {} and {})",
                crate::services::credentials::exec::V1,
                crate::services::credentials::exec::V1BETA1
            ),
            ExecInteractive(whose) => write!(
                f,
                "{whose}: exec plugin cannot support interactive mode: standard input is not a \
                 terminal (kproxy never has one; interactiveMode: Always needs one)"
            ),
            ExecMode { whose, mode } => write!(
                f,
                "{whose}: exec.interactiveMode {mode:?}: expected Never, IfAvailable or Always"
            ),
            ImpersonationWithoutUser(whose) => write!(
                f,
                "requesting uid, groups or user-extra for {whose} without impersonating a user: \
                 add --as"
            ),
            CertificateAuthority { path, source } => write!(
                f,
                "certificate authority {}: cannot read it: {source}",
                path.display()
            ),
            InsecureWithCa(cluster) => write!(
                f,
                "{cluster}: specifying a root certificates file with the insecure flag is not \
                 allowed (keep certificate-authority or insecure-skip-tls-verify, not both)"
            ),
            TwoCas(cluster) => write!(
                f,
                "{cluster}: certificate-authority-data and certificate-authority are both \
                 specified; keep one"
            ),
            NoCa => f.write_str(
                "no CA to verify the API server with: pass --certificate-authority FILE",
            ),
            Tls(e) => e.fmt(f),
            Credential(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ConfigError {
    /// What is wrong.
    pub fn problem(&self) -> &ConfigProblem {
        &self.0
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        ConfigError(Box::new(problem))
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use ConfigProblem::*;
        match self.problem() {
            Patterns { source, .. } => Some(source),
            Www(e) => Some(e),
            ProxyUrl { source, .. } => Some(source),
            Unreadable { source, .. } | CertificateAuthority { source, .. } => Some(source),
            Yaml { source, .. } => Some(source),
            Tls(e) => Some(e),
            Credential(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CredentialError> for ConfigError {
    fn from(e: CredentialError) -> Self {
        ConfigProblem::Credential(e).into()
    }
}

impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> Self {
        ConfigProblem::Tls(e).into()
    }
}
