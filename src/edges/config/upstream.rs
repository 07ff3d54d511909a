//! Where the API server is and how to reach it: the entries [`super::select`]
//! chose, with kubectl's global flags over their fields: the server URL and its
//! path, the proxy, the TLS roots and name; who to be there comes from
//! [`super::auth`]. Each field's source is kept for messages: `cluster "x" in FILE`.

use std::sync::Arc;

use rustls_pki_types::ServerName;

use super::auth::{credentials, credentials_for_http, exec_plugin, identity};
use super::kubeconfig;
use super::select::{in_cluster, select, Base};
use super::{ConfigError, ConfigProblem, Environment, ServerUrl};
use crate::edges::cli::Args;
use crate::services::credentials::{Credentials, ExecPlugin};
use crate::services::tls::{self, CertificateSource, Identity, Pem, Roots, TlsSource};
use crate::services::upstream::proxy_url::ProxyUrl;
use crate::services::upstream::{Address, Dialer, TlsSettings};

pub struct UpstreamConfig {
    pub server: ServerUrl,
    /// The cluster's `proxy-url`, to reach the server through.
    pub proxy: Option<ProxyUrl>,
    /// Put before every request path: the server URL's path with
    /// `--append-server-path`, else empty.
    pub path_prefix: String,
    /// `None` for a plain `http://` server.
    pub tls: Option<TlsSource>,
    pub server_name: ServerName<'static>,
    pub credentials: Credentials,
}

/// What the proxy needs of [`UpstreamConfig`] to reach the API server.
pub struct UpstreamParts {
    /// The Host header sent upstream.
    pub authority: String,
    pub path_prefix: String,
    pub dialer: Dialer,
}

impl UpstreamConfig {
    /// The dialer and what the exchange needs, and the credentials apart.
    pub fn into_parts(self) -> (UpstreamParts, Credentials) {
        let parts = UpstreamParts {
            authority: self.server.authority(),
            path_prefix: self.path_prefix,
            dialer: Dialer {
                server: Address {
                    host: self.server.bare_host().to_string(),
                    port: self.server.port,
                },
                proxy: self.proxy,
                tls: self.tls.map(|tls| Arc::new(tls) as Arc<dyn TlsSettings>),
                server_name: self.server_name,
            },
        };
        (parts, self.credentials)
    }
}

/// An exec plugin's client certificate, as the TLS settings take it.
impl CertificateSource for ExecPlugin {
    fn certificate(&self) -> (Vec<u8>, Vec<u8>, u64) {
        self.identity()
    }

    fn generation(&self) -> u64 {
        ExecPlugin::generation(self)
    }

    fn describe(&self) -> &str {
        ExecPlugin::describe(self)
    }
}

/// The dialer's TLS settings are the TLS service's, reloaded as their files change.
impl TlsSettings for TlsSource {
    fn current(&self) -> (Arc<rustls::ClientConfig>, u64) {
        TlsSource::current(self)
    }

    fn generation(&self) -> u64 {
        TlsSource::generation(self)
    }
}

pub fn upstream(
    args: &Args,
    env: &dyn Environment,
    warnings: &mut Vec<String>,
) -> Result<UpstreamConfig, ConfigError> {
    let files = kubeconfig::files(args.kubeconfig.as_deref(), env)?;
    let loaded = kubeconfig::load(&files)?;
    let base = match select(&loaded, args, warnings)? {
        Some(base) => base,
        None if args.server.is_some() => Base::default(),
        None => Base {
            in_cluster: Some(in_cluster(args, env, &files)?),
            ..Base::default()
        },
    };
    build(args, &base, warnings)
}

/// A URL for a message: its password, if any, stays out.
fn without_userinfo(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn build(
    args: &Args,
    base: &Base,
    warnings: &mut Vec<String>,
) -> Result<UpstreamConfig, ConfigError> {
    let cluster = base.cluster.map(|c| &c.value);
    let server = match (&args.server, base.cluster, &base.in_cluster) {
        (Some(url), _, _) => ServerUrl::parse(url)?,
        (None, Some(entry), _) => {
            let Some(url) = &entry.value.server else {
                return Err(ConfigError::from(ConfigProblem::NoServer {
                    cluster: entry.describe("cluster"),
                    name: entry.name.clone(),
                }));
            };
            ServerUrl::parse_from(url, &format!("server of {}", entry.describe("cluster")))?
        }
        (None, None, Some(in_cluster)) => in_cluster.server.clone(),
        (None, None, None) => return Err(ConfigError::from(ConfigProblem::NoClusterInContext)),
    };
    let path_prefix = match (args.append_server_path, server.path.is_empty()) {
        (true, _) => server.path.clone(),
        (false, true) => String::new(),
        (false, false) => {
            // kubectl's own warning, word for word.
            warnings.push(format!(
                "Your kube context contains a server path {}, use --append-server-path to \
                 automatically append the path to each request",
                server.path
            ));
            String::new()
        }
    };

    // kubectl: `--server` alone clears the kubeconfig's tls-server-name.
    let tls_server_name = match &args.tls_server_name {
        Some(name) => Some(name.as_str()),
        None if args.server.is_some() => None,
        None => cluster.and_then(|c| c.tls_server_name.as_deref()),
    };
    let server_name = tls::server_name(tls_server_name, server.bare_host())?;
    let proxy = match base.cluster {
        Some(entry) => match &entry.value.proxy_url {
            Some(url) => Some(ProxyUrl::parse(url).map_err(|source| {
                ConfigError::from(ConfigProblem::ProxyUrl {
                    url: without_userinfo(url),
                    cluster: entry.describe("cluster"),
                    source,
                })
            })?),
            None => None,
        },
        None => None,
    };
    let (tls, credentials) = match server.https {
        true => {
            let plugin = exec_plugin(args, base, &server, tls_server_name)?;
            (
                Some(tls_source(args, base, plugin.clone(), warnings)?),
                credentials(args, base, plugin)?,
            )
        }
        false => (None, credentials_for_http(args, base)?),
    };
    Ok(UpstreamConfig {
        server,
        proxy,
        path_prefix,
        tls,
        server_name,
        credentials,
    })
}

fn tls_source(
    args: &Args,
    base: &Base,
    plugin: Option<Arc<ExecPlugin>>,
    warnings: &mut Vec<String>,
) -> Result<TlsSource, ConfigError> {
    let roots = roots(args, base, warnings)?;
    let identity = match plugin {
        Some(plugin) => Some(Identity::Dynamic(plugin)),
        None => identity(args, base.user)?,
    };
    Ok(TlsSource::new(roots, identity)?)
}

/// `setting`: what turned verification off, and where.
fn insecure_warning(setting: &str) -> String {
    format!(
        "{setting}: the API server's certificate is not checked; \
         anyone on the network path can read the credentials"
    )
}

/// kubectl: `--insecure-skip-tls-verify` or `--certificate-authority` replaces the
/// cluster's CA file, CA data and insecure flag together.
fn roots(args: &Args, base: &Base, warnings: &mut Vec<String>) -> Result<Roots, ConfigError> {
    if args.insecure_skip_tls_verify {
        if args.certificate_authority.is_some() {
            // kubectl refuses this combination too.
            return Err(ConfigError::from(ConfigProblem::Conflict(
                "--insecure-skip-tls-verify and --certificate-authority cannot be used together",
            )));
        }
        warnings.push(insecure_warning("--insecure-skip-tls-verify"));
        return Ok(Roots::Insecure);
    }
    if let Some(ca) = &args.certificate_authority {
        return Ok(Roots::Pem(Pem::File(ca.clone())));
    }
    if let Some(entry) = base.cluster {
        let cluster = &entry.value;
        let has_ca =
            cluster.certificate_authority.is_some() || cluster.certificate_authority_data.is_some();
        if cluster.insecure_skip_tls_verify {
            if has_ca {
                return Err(ConfigError::from(ConfigProblem::InsecureWithCa(
                    entry.describe("cluster"),
                )));
            }
            warnings.push(insecure_warning(&format!(
                "{}: insecure-skip-tls-verify",
                entry.describe("cluster")
            )));
            return Ok(Roots::Insecure);
        }
        match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::from(ConfigProblem::TwoCas(
                    entry.describe("cluster"),
                )))
            }
            (Some(data), None) => {
                return Ok(Roots::Pem(Pem::Inline {
                    source: format!(
                        "(certificate-authority-data of {})",
                        entry.describe("cluster")
                    ),
                    bytes: data.clone(),
                }))
            }
            (None, Some(file)) => return Ok(Roots::Pem(Pem::File(file.clone()))),
            (None, None) => {}
        }
    }
    if let Some(in_cluster) = &base.in_cluster {
        return Ok(Roots::Pem(Pem::File(in_cluster.ca.clone())));
    }
    // kubectl falls back to the system's roots.
    match tls::system_ca_bundle() {
        Some(bundle) => Ok(Roots::Pem(Pem::File(bundle))),
        None => Err(ConfigError::from(ConfigProblem::NoCa)),
    }
}
