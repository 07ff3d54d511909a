//! Where the API server is and who to be there, decided as kubectl decides it
//! (client-go's `DeferredLoadingClientConfig`):
//!
//! 1. a kubeconfig context (`--context`, else the merged `current-context`), or
//!    `--cluster`/`--user` on their own, selects a cluster and a user;
//! 2. with none selected, `--server` alone describes the API server;
//! 3. with neither, in a Pod, the in-cluster environment and service account;
//!
//! and kubectl's global flags override the fields of whichever applies. Each
//! field's source is kept for messages: `cluster "x" in FILE`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::ServerName;

use super::kubeconfig::{self, Cluster, Context, Entry, Kubeconfig, User};
use super::{ConfigError, Environment, ServerUrl};
use crate::cli::Args;
use crate::credentials::exec::{self, ExecPlugin, ExecSettings};
use crate::credentials::{Credentials, Impersonation, TokenSource};
use crate::tls::{self, Identity, Pem, Roots, TlsSource};

pub struct UpstreamConfig {
    pub server: ServerUrl,
    /// Put before every request path: the server URL's path with
    /// `--append-server-path`, else empty.
    pub path_prefix: String,
    /// `None` for a plain `http://` server.
    pub tls: Option<TlsSource>,
    pub server_name: ServerName<'static>,
    pub credentials: Credentials,
}

/// What the flags are laid over: a kubeconfig's cluster and user, or the Pod's
/// in-cluster settings, or nothing.
#[derive(Default)]
struct Base<'a> {
    cluster: Option<&'a Entry<Cluster>>,
    user: Option<&'a Entry<User>>,
    in_cluster: Option<InCluster>,
}

struct InCluster {
    server: ServerUrl,
    ca: PathBuf,
    token: PathBuf,
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

/// kubectl's rule: in-cluster only when no kubeconfig selects anything, and
/// `KUBERNETES_SERVICE_HOST` and `_PORT` are set.
fn in_cluster(
    args: &Args,
    env: &dyn Environment,
    files: &[PathBuf],
) -> Result<InCluster, ConfigError> {
    let (Some(host), Some(port)) = (
        env.var("KUBERNETES_SERVICE_HOST"),
        env.var("KUBERNETES_SERVICE_PORT"),
    ) else {
        let looked = match files {
            [] => "no kubeconfig (none at --kubeconfig, KUBECONFIG or ~/.kube/config)".to_string(),
            _ => format!("no context in kubeconfig {}", list(files)),
        };
        return Err(ConfigError(format!(
            "no API server: {looked}, not in a Pod (KUBERNETES_SERVICE_HOST and \
             KUBERNETES_SERVICE_PORT are not set), and no --server https://HOST:PORT"
        )));
    };
    Ok(InCluster {
        server: ServerUrl::in_cluster(&host, &port)?,
        ca: args.serviceaccount_dir.join("ca.crt"),
        token: args.serviceaccount_dir.join("token"),
    })
}

fn list(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    names.join(", ")
}

/// The cluster and user a context (or `--cluster`/`--user`) selects; `None`
/// when nothing is selected, which lets `--server` or in-cluster apply.
fn select<'a>(
    config: &'a Kubeconfig,
    args: &Args,
    warnings: &mut Vec<String>,
) -> Result<Option<Base<'a>>, ConfigError> {
    let find = |kind: &str, name: &str| {
        ConfigError(format!(
            "{kind} {name:?} does not exist in {}",
            match config.files.is_empty() {
                true => "any kubeconfig (none found)".to_string(),
                false => format!("kubeconfig {}", list(&config.files)),
            }
        ))
    };
    let context: Option<&Entry<Context>> = match (&args.context, &config.current_context) {
        (Some(name), _) => {
            Some(named(&config.contexts, name).ok_or_else(|| find("context", name))?)
        }
        (None, Some((name, file))) => Some(named(&config.contexts, name).ok_or_else(|| {
            ConfigError(format!(
                "current-context {name:?} (set in {}) names no context: choose one with \
                 --context or `kubectl config use-context`",
                file.display()
            ))
        })?),
        (None, None) => None,
    };
    if context.is_none() && args.cluster.is_none() && args.user.is_none() {
        return Ok(None);
    }

    let cluster = match (
        &args.cluster,
        context.and_then(|c| c.value.cluster.as_ref()),
    ) {
        (Some(name), _) => {
            Some(named(&config.clusters, name).ok_or_else(|| find("cluster", name))?)
        }
        (None, Some(name)) => Some(named(&config.clusters, name).ok_or_else(|| {
            ConfigError(format!(
                "{} names cluster {name:?}, which no kubeconfig defines ({})",
                context.map(|c| c.describe("context")).unwrap_or_default(),
                list(&config.files)
            ))
        })?),
        (None, None) => None,
    };
    let user = match (&args.user, context.and_then(|c| c.value.user.as_ref())) {
        (Some(name), _) => Some(named(&config.users, name).ok_or_else(|| find("auth info", name))?),
        (None, Some(name)) => {
            let user = named(&config.users, name);
            if user.is_none() {
                // kubectl goes on without credentials; say so, once.
                warnings.push(format!(
                    "{} names user {name:?}, which no kubeconfig defines: \
                     sending requests without credentials",
                    context.map(|c| c.describe("context")).unwrap_or_default()
                ));
            }
            user
        }
        (None, None) => None,
    };
    Ok(Some(Base {
        cluster,
        user,
        in_cluster: None,
    }))
}

fn named<'a, T>(entries: &'a [Entry<T>], name: &str) -> Option<&'a Entry<T>> {
    entries.iter().find(|e| e.name == name)
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
                return Err(ConfigError(format!(
                    "{} has no server: set one with `kubectl config set-cluster {} --server=https://HOST:PORT`, \
                     or pass --server",
                    entry.describe("cluster"),
                    entry.name
                )));
            };
            ServerUrl::parse_from(url, &format!("server of {}", entry.describe("cluster")))?
        }
        (None, None, Some(in_cluster)) => in_cluster.server.clone(),
        (None, None, None) => return Err(ConfigError(
            "no API server: the kubeconfig context names no cluster; pass --server or --cluster"
                .into(),
        )),
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
    let server_name = tls::server_name(tls_server_name, server.bare_host()).map_err(ConfigError)?;
    if let Some(entry) = base.cluster.filter(|c| c.value.proxy_url.is_some()) {
        return Err(ConfigError(format!(
            "{}: proxy-url is not supported yet: reach the API server directly, or run              kubectl proxy for this cluster",
            entry.describe("cluster")
        )));
    }
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
        path_prefix,
        tls,
        server_name,
        credentials,
    })
}

/// kubectl sends a kubeconfig's credentials only over TLS; impersonation still
/// applies. Explicit flags keep working against an http server, as they always
/// have in kproxy.
fn credentials_for_http(args: &Args, base: &Base) -> Result<Credentials, ConfigError> {
    match base.user {
        Some(user) => Ok(Credentials {
            impersonation: impersonation(args, Some(user))?,
            ..Credentials::none()
        }),
        None => credentials(args, base, None),
    }
}

fn tls_source(
    args: &Args,
    base: &Base,
    plugin: Option<Arc<ExecPlugin>>,
    warnings: &mut Vec<String>,
) -> Result<TlsSource, ConfigError> {
    let roots = roots(args, base, warnings)?;
    let identity = match plugin {
        Some(plugin) => Some(Identity::Exec(plugin)),
        None => identity(args, base.user)?,
    };
    TlsSource::new(roots, identity).map_err(|e| ConfigError(e.to_string()))
}

fn insecure_warning() -> String {
    "--insecure-skip-tls-verify: the API server's certificate is not checked; \
     anyone on the network path can read the token"
        .into()
}

/// kubectl: `--insecure-skip-tls-verify` or `--certificate-authority` replaces the
/// cluster's CA file, CA data and insecure flag together.
fn roots(args: &Args, base: &Base, warnings: &mut Vec<String>) -> Result<Roots, ConfigError> {
    if args.insecure_skip_tls_verify {
        if args.certificate_authority.is_some() {
            // kubectl refuses this combination too.
            return Err(ConfigError(
                "--insecure-skip-tls-verify and --certificate-authority cannot be used together"
                    .into(),
            ));
        }
        warnings.push(insecure_warning());
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
                return Err(ConfigError(format!(
                    "{}: specifying a root certificates file with the insecure flag is not allowed \
                     (keep certificate-authority or insecure-skip-tls-verify, not both)",
                    entry.describe("cluster")
                )));
            }
            warnings.push(format!(
                "{}: insecure-skip-tls-verify: the API server's certificate is not checked; \
                 anyone on the network path can read the credentials",
                entry.describe("cluster")
            ));
            return Ok(Roots::Insecure);
        }
        match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "{}: certificate-authority-data and certificate-authority are both specified; keep one",
                    entry.describe("cluster")
                )))
            }
            (Some(data), None) => {
                return Ok(Roots::Pem(Pem::Inline {
                    source: format!("(certificate-authority-data of {})", entry.describe("cluster")),
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
        None => Err(ConfigError(
            "no CA to verify the API server with: pass --certificate-authority FILE".into(),
        )),
    }
}

/// The client certificate: the flags' files, else the user's (file or data).
fn identity(args: &Args, user: Option<&Entry<User>>) -> Result<Option<Identity>, ConfigError> {
    let describe = || {
        user.map(|u| u.describe("user"))
            .unwrap_or_else(|| "the flags".into())
    };
    let pick =
        |flag: &Option<PathBuf>, file: Option<&PathBuf>, data: Option<&[u8]>, field: &str| {
            if let Some(path) = flag {
                return Ok(Some(Pem::File(path.clone())));
            }
            match (file, data) {
                (Some(_), Some(_)) => Err(ConfigError(format!(
                    "{}: {field}-data and {field} are both specified; keep one",
                    describe()
                ))),
                (Some(path), None) => Ok(Some(Pem::File(path.clone()))),
                (None, Some(bytes)) => Ok(Some(Pem::Inline {
                    source: format!("({field}-data of {})", describe()),
                    bytes: bytes.to_vec(),
                })),
                (None, None) => Ok(None),
            }
        };
    let u = user.map(|u| &u.value);
    let cert = pick(
        &args.client_certificate,
        u.and_then(|u| u.client_certificate.as_ref()),
        u.and_then(|u| u.client_certificate_data.as_deref()),
        "client-certificate",
    )?;
    let key = pick(
        &args.client_key,
        u.and_then(|u| u.client_key.as_ref()),
        u.and_then(|u| u.client_key_data.as_ref().map(|k| k.0.as_bytes())),
        "client-key",
    )?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(Identity::Pem { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError(format!(
            "{}: a client certificate without its key: client-key-data or client-key (or --client-key) \
             must be specified to use the client certificate",
            describe()
        ))),
        (None, Some(_)) => Err(ConfigError(format!(
            "{}: a client key without its certificate: add client-certificate (or --client-certificate)",
            describe()
        ))),
    }
}

/// The `Authorization` kproxy adds, and the impersonation headers.
fn credentials(
    args: &Args,
    base: &Base,
    plugin: Option<Arc<ExecPlugin>>,
) -> Result<Credentials, ConfigError> {
    let entry = base.user;
    let user = entry.map(|e| &e.value);
    let describe = || {
        entry
            .map(|u| u.describe("user"))
            .unwrap_or_else(|| "the flags".into())
    };

    let token = match (&args.token, &args.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "--token and --token-file cannot be used together: keep --token-file".into(),
            ))
        }
        (Some(token), None) => Some(TokenSource::fixed(&token.0)?),
        (None, Some(path)) => Some(TokenSource::file(path)?),
        // kubectl: with both, the file wins; the inline token is only its fallback.
        (None, None) => match (
            user.and_then(|u| u.token_file.as_ref()),
            user.and_then(|u| u.token.as_ref()),
        ) {
            (Some(path), _) => Some(TokenSource::file(path)?),
            (None, Some(token)) => Some(TokenSource::named(
                &token.0,
                &format!("token of {}", describe()),
            )?),
            (None, None) => None,
        },
    };
    let username = args
        .username
        .as_deref()
        .or(user.and_then(|u| u.username.as_deref()));
    let password = args
        .password
        .as_ref()
        .or(user.and_then(|u| u.password.as_ref()))
        .map(|p| p.0.as_str());
    let basic = match (username, password) {
        (None, None) => None,
        (username, password) => Some(TokenSource::basic(
            username.unwrap_or_default(),
            password.unwrap_or_default(),
        )),
    };
    let has_cert = args.client_certificate.is_some()
        || user
            .is_some_and(|u| u.client_certificate.is_some() || u.client_certificate_data.is_some());

    let authorization = match (token, basic) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "more than one authentication method found for {}; found [token basicAuth], only one is allowed",
                describe()
            )))
        }
        (Some(token), None) => token,
        (None, Some(basic)) => basic,
        (None, None) => match (&base.in_cluster, user, plugin) {
            (Some(in_cluster), _, _) => TokenSource::file(&in_cluster.token)?,
            (None, _, Some(plugin)) => TokenSource::Exec(plugin),
            (None, Some(user), None) if !has_cert => no_auth_provider(user, &describe())?,
            _ => TokenSource::None,
        },
    };
    Ok(Credentials {
        authorization,
        impersonation: impersonation(args, entry)?,
    })
}

/// A user with no token, password, certificate or plugin: an auth-provider, or nobody.
fn no_auth_provider(user: &User, describe: &str) -> Result<TokenSource, ConfigError> {
    if let Some(provider) = &user.auth_provider {
        let instead = match provider.as_str() {
            "gcp" => "the gke-gcloud-auth-plugin exec plugin (`gcloud components install gke-gcloud-auth-plugin`)",
            "azure" => "the kubelogin exec plugin (https://github.com/Azure/kubelogin)",
            "oidc" => "an exec plugin such as kubelogin (`kubectl oidc-login`, https://github.com/int128/kubelogin)",
            _ => "an exec credential plugin",
        };
        return Err(ConfigError(format!(
            "{describe}: auth-provider {provider:?} is not supported: kubectl removed its auth \
             providers in 1.26; use {instead}"
        )));
    }
    Ok(TokenSource::None)
}

/// The user's exec plugin, if it is the credential kubectl would use: only when
/// the user (and the flags) give no token, password or client certificate.
fn exec_plugin(
    args: &Args,
    base: &Base,
    server: &ServerUrl,
    tls_server_name: Option<&str>,
) -> Result<Option<Arc<ExecPlugin>>, ConfigError> {
    let Some(entry) = base.user else {
        return Ok(None);
    };
    let (user, Some(plugin)) = (&entry.value, &entry.value.exec) else {
        return Ok(None);
    };
    let other = args.token.is_some()
        || args.token_file.is_some()
        || args.username.is_some()
        || args.password.is_some()
        || args.client_certificate.is_some()
        || user.token.is_some()
        || user.token_file.is_some()
        || user.username.is_some()
        || user.password.is_some()
        || user.client_certificate.is_some()
        || user.client_certificate_data.is_some();
    if other {
        return Ok(None);
    }
    let describe = entry.describe("user");
    let missing = |field: &str| {
        ConfigError(format!(
            "{describe}: {field} must be specified to use the exec credential plugin"
        ))
    };
    let command = plugin
        .command
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("exec.command"))?;
    let api_version = match plugin.api_version.as_deref() {
        Some(exec::V1) => exec::V1,
        Some(exec::V1BETA1) => exec::V1BETA1,
        None => return Err(missing("exec.apiVersion")),
        Some(other) => {
            return Err(ConfigError(format!(
                "{describe}: exec plugin: invalid apiVersion {other:?} (kubectl accepts {} and {})",
                exec::V1,
                exec::V1BETA1
            )))
        }
    };
    // v1 requires interactiveMode; v1beta1 defaults it to IfAvailable.
    match (plugin.interactive_mode.as_deref(), api_version) {
        (None, exec::V1) => return Err(missing("exec.interactiveMode")),
        (Some("Always"), _) => {
            return Err(ConfigError(format!(
                "{describe}: exec plugin cannot support interactive mode: standard input is not                  a terminal (kproxy never has one; interactiveMode: Always needs one)"
            )))
        }
        (None | Some("Never" | "IfAvailable"), _) => {}
        (Some(other), _) => {
            return Err(ConfigError(format!(
                "{describe}: exec.interactiveMode {other:?}: expected Never, IfAvailable or Always"
            )))
        }
    }
    let cluster = match plugin.provide_cluster_info {
        true => Some(cluster_info(base, server, tls_server_name)?),
        false => None,
    };
    let name = command.rsplit('/').next().unwrap_or(&command).to_string();
    Ok(Some(ExecPlugin::new(ExecSettings {
        command,
        args: plugin.args.clone(),
        env: plugin.env.clone(),
        api_version,
        install_hint: plugin.install_hint.clone(),
        cluster,
        describe: format!("exec plugin {name} ({describe})"),
        timeout: args.exec_timeout,
    })))
}

/// `spec.cluster` for a plugin with `provideClusterInfo`, as client-go fills it.
fn cluster_info(
    base: &Base,
    server: &ServerUrl,
    tls_server_name: Option<&str>,
) -> Result<String, ConfigError> {
    let cluster = base.cluster.map(|c| &c.value);
    let mut fields = vec![format!(
        "\"server\":{}",
        exec::json_string(&server.to_string())
    )];
    if let Some(name) = tls_server_name {
        fields.push(format!("\"tls-server-name\":{}", exec::json_string(name)));
    }
    if cluster.is_some_and(|c| c.insecure_skip_tls_verify) {
        fields.push("\"insecure-skip-tls-verify\":true".into());
    }
    let ca = match cluster {
        Some(c) => match (&c.certificate_authority_data, &c.certificate_authority) {
            (Some(data), _) => Some(data.clone()),
            (None, Some(path)) => Some(std::fs::read(path).map_err(|e| {
                ConfigError(format!(
                    "certificate authority {}: cannot read it: {e}",
                    path.display()
                ))
            })?),
            (None, None) => None,
        },
        None => None,
    };
    if let Some(ca) = ca {
        fields.push(format!(
            "\"certificate-authority-data\":{}",
            exec::json_string(&crate::base64::encode(&ca))
        ));
    }
    Ok(format!("{{{}}}", fields.join(",")))
}

fn impersonation(args: &Args, user: Option<&Entry<User>>) -> Result<Option<Vec<u8>>, ConfigError> {
    let u = user.map(|u| &u.value);
    let who = Impersonation {
        user: args
            .as_user
            .clone()
            .or_else(|| u.and_then(|u| u.impersonate.clone()))
            .unwrap_or_default(),
        uid: args
            .as_uid
            .clone()
            .or_else(|| u.and_then(|u| u.impersonate_uid.clone())),
        groups: match args.as_groups.is_empty() {
            false => args.as_groups.clone(),
            true => u.map(|u| u.impersonate_groups.clone()).unwrap_or_default(),
        },
        extra: u.map(|u| u.impersonate_extra.clone()).unwrap_or_default(),
    };
    if who.user.is_empty() {
        if who.uid.is_some() || !who.groups.is_empty() || !who.extra.is_empty() {
            let describe = user
                .map(|u| u.describe("user"))
                .unwrap_or_else(|| "the flags".into());
            return Err(ConfigError(format!(
                "requesting uid, groups or user-extra for {describe} without impersonating a user: add --as"
            )));
        }
        return Ok(None);
    }
    who.header_lines().map(Some).map_err(ConfigError)
}
