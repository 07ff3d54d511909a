//! Flags, kubeconfig files, the environment and service-account files become one
//! [`Config`], in that order of reading: `kubeconfig` finds and merges the files,
//! `select` picks the entries (or in-cluster), `upstream` and `auth` lay the
//! flags over them.
//!
//! Everything that can be wrong with the configuration is found here, before the
//! listener opens: a bad regex, a missing token, a CA that is not a certificate.
//! Each error is one line that names the flag or file and says what to do.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::edges::cli::{self, Args};
use crate::pipeline::exchange::ClientTimeouts;
use crate::pipeline::route::filter::Filter;
use crate::pipeline::route::patterns::Patterns;
use crate::pipeline::www::StaticFiles;

mod auth;
mod error;
pub mod kubeconfig;
mod select;
mod server;
mod upstream;

pub use error::{ConfigError, ConfigProblem, Looked};
pub use server::ServerUrl;
pub use upstream::UpstreamConfig;

/// Everything the proxy needs to run, validated.
pub struct Config {
    pub listen: Listen,
    pub upstream: UpstreamConfig,
    /// `None` with `--disable-filter`.
    pub filter: Option<Filter>,
    /// Always starts and ends with `/`.
    pub api_prefix: String,
    /// `--www`: static files under `--www-prefix`.
    pub www: Option<StaticFiles>,
    pub keepalive: Option<Duration>,
    pub verbosity: u8,
    pub grace_period: Duration,
    pub timeouts: ClientTimeouts,
    pub max_connections: usize,
    pub max_upstream_connections: usize,
    /// `--metrics-address`: where Prometheus scrapes, if anywhere.
    pub metrics: Option<SocketAddr>,
    pub log_format: crate::leaves::log::Format,
    /// Warnings to print once the logger is set up (insecure TLS, no filter...).
    pub warnings: Vec<String>,
}

pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The environment, read through one function so tests can supply their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    pub fn from_args(args: Args, env: &dyn Environment) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        // Flag-only checks first: a typo is reported before any file is read.
        let listen = listen(&args)?;
        let filter = filter(&args, &listen, &mut warnings)?;
        let api_prefix = api_prefix(&args.api_prefix)?;
        // kubectl serves no files unless asked: never the working directory by default.
        let www = match &args.www {
            Some(dir) => Some(
                StaticFiles::new(dir, &args.www_prefix)
                    .map_err(|e| ConfigError::from(ConfigProblem::Www(e)))?,
            ),
            None => None,
        };
        let timeouts = ClientTimeouts {
            header: positive(args.header_timeout, "--header-timeout")?,
            idle: positive(args.idle_timeout, "--idle-timeout")?,
        };
        for (flag, value) in [
            ("--max-connections", args.max_connections),
            ("--max-upstream-connections", args.max_upstream_connections),
        ] {
            if value == 0 {
                return Err(ConfigError::from(ConfigProblem::ZeroCount(flag)));
            }
        }
        let metrics = args
            .metrics_address
            .as_deref()
            .map(metrics_address)
            .transpose()?;
        let upstream = upstream::upstream(&args, env, &mut warnings)?;
        Ok(Config {
            listen,
            upstream,
            filter,
            api_prefix,
            www,
            keepalive: args.keepalive,
            verbosity: args.verbosity,
            grace_period: args.grace_period,
            timeouts,
            max_connections: args.max_connections,
            max_upstream_connections: args.max_upstream_connections,
            metrics,
            log_format: args.log_format,
            warnings,
        })
    }
}

fn listen(args: &Args) -> Result<Listen, ConfigError> {
    if let Some(path) = &args.unix_socket {
        // kubectl's own rule: a unix socket and a non-default port contradict each other.
        if args.port != cli::DEFAULT_PORT {
            return Err(ConfigError::from(ConfigProblem::Conflict(
                "cannot set --unix-socket and --port at the same time",
            )));
        }
        return Ok(Listen::Unix(path.clone()));
    }
    // kubectl needs `[::1]`; a bare `::1` is accepted too since it is unambiguous.
    let host = args.address.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => (host, args.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(|a| a.ip())
            .ok_or_else(|| ConfigError::from(ConfigProblem::Address(args.address.clone())))?,
    };
    Ok(Listen::Tcp(SocketAddr::new(ip, args.port)))
}

/// `HOST:PORT`, `[::]:PORT` or `:PORT` (all addresses, as Go writes it).
fn metrics_address(value: &str) -> Result<SocketAddr, ConfigError> {
    let spelled = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_string(),
    };
    spelled
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError::from(ConfigProblem::MetricsAddress(value.to_string())))
}

fn filter(
    args: &Args,
    listen: &Listen,
    warnings: &mut Vec<String>,
) -> Result<Option<Filter>, ConfigError> {
    if args.disable_filter {
        // kubectl stays quiet on a unix socket, where only the file's owner can connect.
        if matches!(listen, Listen::Tcp(_)) {
            warnings.push(
                "request filter disabled, your proxy is vulnerable to XSRF attacks, \
                 please be cautious"
                    .into(),
            );
        }
        return Ok(None);
    }
    let patterns = |flag: &'static str, value: &str| {
        Patterns::parse(value)
            .map_err(|source| ConfigError::from(ConfigProblem::Patterns { flag, source }))
    };
    Ok(Some(Filter {
        accept_hosts: patterns("--accept-hosts", &args.accept_hosts)?,
        accept_paths: patterns("--accept-paths", &args.accept_paths)?,
        reject_paths: patterns("--reject-paths", &args.reject_paths)?,
        reject_methods: patterns("--reject-methods", &args.reject_methods)?,
        accept_origins: patterns("--accept-origins", &args.accept_origins)?,
    }))
}

fn positive(value: Duration, flag: &'static str) -> Result<Duration, ConfigError> {
    match value.is_zero() {
        true => Err(ConfigError::from(ConfigProblem::ZeroDuration(flag))),
        false => Ok(value),
    }
}

/// kubectl adds the trailing slash; a prefix must start with one too.
fn api_prefix(prefix: &str) -> Result<String, ConfigError> {
    if !prefix.starts_with('/') {
        return Err(ConfigError::from(ConfigProblem::ApiPrefix(
            prefix.to_string(),
        )));
    }
    let mut prefix = prefix.to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(api_prefix("/").unwrap(), "/");
        assert_eq!(api_prefix("/k8s").unwrap(), "/k8s/");
        assert!(api_prefix("k8s").is_err());
    }
}
