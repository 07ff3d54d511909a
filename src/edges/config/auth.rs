//! Who kproxy is at the API server: the client certificate, the
//! `Authorization` it adds (token, token file, basic, exec plugin) and the
//! impersonation headers, from the flags over the selected kubeconfig user,
//! with kubectl's precedence (an exec plugin only when nothing else is given).

use std::path::PathBuf;
use std::sync::Arc;

use super::kubeconfig::{Entry, User};
use super::select::Base;
use super::{ConfigError, ConfigProblem, ServerUrl};
use crate::edges::cli::Args;
use crate::leaves::json;
use crate::services::credentials::exec::{self, ExecPlugin, ExecSettings};
use crate::services::credentials::{Credentials, Impersonation, TokenSource};
use crate::services::tls::{Identity, Pem};

/// kubectl sends a kubeconfig's credentials only over TLS; impersonation still
/// applies. Explicit flags keep working against an http server, as they always
/// have in kproxy.
pub fn credentials_for_http(args: &Args, base: &Base) -> Result<Credentials, ConfigError> {
    match base.user {
        Some(user) => Ok(Credentials {
            impersonation: impersonation(args, Some(user))?,
            ..Credentials::none()
        }),
        None => credentials(args, base, None),
    }
}

/// The client certificate: the flags' files, else the user's (file or data).
pub fn identity(args: &Args, user: Option<&Entry<User>>) -> Result<Option<Identity>, ConfigError> {
    let describe = || describe_user(user);
    let pick = |flag: &Option<PathBuf>,
                file: Option<&PathBuf>,
                data: Option<&[u8]>,
                field: &'static str| {
        if let Some(path) = flag {
            return Ok(Some(Pem::File(path.clone())));
        }
        match (file, data) {
            (Some(_), Some(_)) => Err(ConfigError::from(ConfigProblem::BothFileAndData {
                whose: describe(),
                field,
            })),
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
        (Some(_), None) => Err(ConfigError::from(ConfigProblem::CertificateWithoutKey(
            describe(),
        ))),
        (None, Some(_)) => Err(ConfigError::from(ConfigProblem::KeyWithoutCertificate(
            describe(),
        ))),
    }
}

/// The `Authorization` kproxy adds, and the impersonation headers.
pub fn credentials(
    args: &Args,
    base: &Base,
    plugin: Option<Arc<ExecPlugin>>,
) -> Result<Credentials, ConfigError> {
    let entry = base.user;
    let user = entry.map(|e| &e.value);
    let describe = || describe_user(entry);

    let token = match (&args.token, &args.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::from(ConfigProblem::Conflict(
                "--token and --token-file cannot be used together: keep --token-file",
            )))
        }
        (Some(token), None) => Some(TokenSource::fixed(&token.0)?),
        (None, Some(path)) => Some(TokenSource::file(path)?),
        // kubectl: with both, the file wins; the inline token is only its fallback.
        (None, None) => match (
            user.and_then(|u| u.token_file.as_ref()),
            user.and_then(|u| u.token.as_ref()),
        ) {
            (Some(path), None) => Some(TokenSource::file(path)?),
            (Some(path), Some(token)) => Some(TokenSource::file_or_inline(
                path,
                &token.0,
                &format!("token of {}", describe()),
            )?),
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
        (Some(username), password) => {
            Some(TokenSource::basic(username, password.unwrap_or_default()))
        }
        // kubectl would ask for the username on a terminal.
        (None, Some(_)) => {
            return Err(ConfigError::from(ConfigProblem::PasswordWithoutUsername(
                describe(),
            )))
        }
    };
    let has_cert = has_client_certificate(args, user);

    let authorization = match (token, basic) {
        (Some(_), Some(_)) => return Err(ConfigError::from(ConfigProblem::TwoMethods(describe()))),
        (Some(token), None) => token,
        (None, Some(basic)) => basic,
        (None, None) => match (&base.in_cluster, user, plugin) {
            (Some(in_cluster), _, _) => TokenSource::file(&in_cluster.token)?,
            (None, _, Some(plugin)) => TokenSource::Exec(plugin),
            (None, Some(user), None) if !has_cert => no_auth_provider(user, &describe())?,
            _ => TokenSource::None,
        },
    };
    // A kubeconfig's https server and no way to say who kproxy is: kubectl
    // asks for a username on its terminal, and fails without one; kproxy never
    // has a terminal. (With flags alone, no credentials is kproxy's own mode:
    // each client brings its own Authorization.)
    if base.selected && matches!(authorization, TokenSource::None) && !has_cert {
        return Err(no_credentials(base));
    }
    Ok(Credentials {
        authorization,
        impersonation: impersonation(args, entry)?,
    })
}

/// Why a kubeconfig selection says nothing of who to be, and what to do.
fn no_credentials(base: &Base) -> ConfigError {
    let what = match (base.user, base.context) {
        (Some(user), _) => format!(
            "{} has no credentials (token, tokenFile, client-certificate, username or exec)",
            user.describe("user")
        ),
        (None, Some(context)) => match &context.value.user {
            Some(name) => format!(
                "{} names user {name:?}, which no kubeconfig defines",
                context.describe("context")
            ),
            None => format!("{} names no user", context.describe("context")),
        },
        (None, None) => "the kubeconfig selection has no user".into(),
    };
    ConfigError::from(ConfigProblem::NoCredentials(what))
}

/// Where the user's settings come from, for messages.
fn describe_user(user: Option<&Entry<User>>) -> String {
    user.map_or_else(|| "the flags".into(), |u| u.describe("user"))
}

/// A client certificate from the flags or the user, file or data.
fn has_client_certificate(args: &Args, user: Option<&User>) -> bool {
    args.client_certificate.is_some()
        || user
            .is_some_and(|u| u.client_certificate.is_some() || u.client_certificate_data.is_some())
}

/// A user with no token, password, certificate or plugin: an auth-provider, or nobody.
fn no_auth_provider(user: &User, describe: &str) -> Result<TokenSource, ConfigError> {
    if let Some(provider) = &user.auth_provider {
        return Err(ConfigError::from(ConfigProblem::AuthProvider {
            whose: describe.to_string(),
            provider: provider.clone(),
        }));
    }
    Ok(TokenSource::None)
}

/// The user's exec plugin, if it is the credential kubectl would use: only when
/// the user (and the flags) give no token, password or client certificate.
pub fn exec_plugin(
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
    // kubectl's precedence: the plugin only when nothing else says who the user is.
    let other = args.token.is_some()
        || args.token_file.is_some()
        || args.username.is_some()
        || args.password.is_some()
        || user.token.is_some()
        || user.token_file.is_some()
        || user.username.is_some()
        || user.password.is_some()
        || has_client_certificate(args, Some(user));
    if other {
        return Ok(None);
    }
    let describe = entry.describe("user");
    let missing = |field: &'static str| {
        ConfigError::from(ConfigProblem::ExecFieldMissing {
            whose: describe.clone(),
            field,
        })
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
            return Err(ConfigError::from(ConfigProblem::ExecVersion {
                whose: describe,
                version: other.to_string(),
            }))
        }
    };
    // v1 requires interactiveMode; v1beta1 defaults it to IfAvailable.
    match (plugin.interactive_mode.as_deref(), api_version) {
        (None, exec::V1) => return Err(missing("exec.interactiveMode")),
        (Some("Always"), _) => {
            return Err(ConfigError::from(ConfigProblem::ExecInteractive(describe)))
        }
        (None | Some("Never" | "IfAvailable"), _) => {}
        (Some(other), _) => {
            return Err(ConfigError::from(ConfigProblem::ExecMode {
                whose: describe,
                mode: other.to_string(),
            }))
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
    let mut fields = vec![format!("\"server\":{}", json::string(&server.to_string()))];
    if let Some(name) = tls_server_name {
        fields.push(format!("\"tls-server-name\":{}", json::string(name)));
    }
    if cluster.is_some_and(|c| c.insecure_skip_tls_verify) {
        fields.push("\"insecure-skip-tls-verify\":true".into());
    }
    let ca = match cluster {
        Some(c) => match (&c.certificate_authority_data, &c.certificate_authority) {
            (Some(data), _) => Some(data.clone()),
            (None, Some(path)) => Some(std::fs::read(path).map_err(|source| {
                ConfigError::from(ConfigProblem::CertificateAuthority {
                    path: path.clone(),
                    source,
                })
            })?),
            (None, None) => None,
        },
        None => None,
    };
    if let Some(ca) = ca {
        fields.push(format!(
            "\"certificate-authority-data\":{}",
            json::string(&crate::leaves::base64::encode(&ca))
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
            return Err(ConfigError::from(ConfigProblem::ImpersonationWithoutUser(
                describe_user(user),
            )));
        }
        return Ok(None);
    }
    Ok(Some(who.header_lines()?))
}
