//! Command-line flags, spelled as `kubectl proxy` spells them.
//!
//! This module only turns argv into [`Args`]: plain values, no files read and no
//! environment consulted. [`crate::edges::config`] decides what they mean together.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::ValueExt;

mod defaults;
mod duration;
mod help;

pub use defaults::*;
pub use duration::parse_duration;
pub use help::{CHECK_HELP, HELP};

use crate::leaves::secret::Secret;

/// What the user asked for on the command line.
#[derive(Debug)]
pub struct Args {
    pub port: u16,
    pub address: String,
    pub accept_hosts: String,
    pub accept_paths: String,
    pub reject_paths: String,
    pub reject_methods: String,
    pub accept_origins: String,
    pub api_prefix: String,
    /// `-w, --www`: serve static files from this directory.
    pub www: Option<PathBuf>,
    pub www_prefix: String,
    pub disable_filter: bool,
    pub unix_socket: Option<PathBuf>,
    /// TCP keep-alive period for upgraded connections; `None` turns it off.
    pub keepalive: Option<Duration>,
    pub verbosity: u8,
    pub server: Option<String>,
    pub certificate_authority: Option<PathBuf>,
    /// Kept out of `Debug` output: see [`Secret`].
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub insecure_skip_tls_verify: bool,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `--as`: the user to impersonate.
    pub as_user: Option<String>,
    pub as_groups: Vec<String>,
    pub as_uid: Option<String>,
    pub append_server_path: bool,
    /// How long an exec credential plugin may run.
    pub exec_timeout: Duration,
    pub serviceaccount_dir: PathBuf,
    pub grace_period: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_upstream_connections: usize,
    /// `--metrics-address HOST:PORT`, as written; off when `None`.
    pub metrics_address: Option<String>,
    pub log_format: crate::leaves::log::Format,
}

/// What the process should do.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Args>),
    /// `kproxy check`: probe a running kproxy (for exec probes in a scratch image).
    Check(CheckArgs),
    Help,
    CheckHelp,
    Version,
}

/// Flags of `kproxy check`, named as the server's so a probe can repeat them.
#[derive(Debug)]
pub struct CheckArgs {
    pub address: String,
    pub port: u16,
    pub unix_socket: Option<PathBuf>,
    pub api_prefix: String,
    /// The Host header to send: one that kproxy's `--accept-hosts` accepts.
    pub host: String,
    pub timeout: Duration,
    /// Also ask the API server, through the proxy, whether it is ready.
    pub ready: bool,
}

impl Default for CheckArgs {
    fn default() -> Self {
        CheckArgs {
            address: DEFAULT_ADDRESS.into(),
            port: DEFAULT_PORT,
            unix_socket: None,
            api_prefix: DEFAULT_API_PREFIX.into(),
            host: "localhost".into(),
            // The kubelet's default probe timeoutSeconds is 1.
            timeout: Duration::from_secs(1),
            ready: false,
        }
    }
}

impl Default for Args {
    fn default() -> Self {
        Args {
            port: DEFAULT_PORT,
            address: DEFAULT_ADDRESS.into(),
            accept_hosts: DEFAULT_ACCEPT_HOSTS.into(),
            accept_paths: DEFAULT_ACCEPT_PATHS.into(),
            reject_paths: DEFAULT_REJECT_PATHS.into(),
            reject_methods: DEFAULT_REJECT_METHODS.into(),
            accept_origins: DEFAULT_ACCEPT_ORIGINS.into(),
            api_prefix: DEFAULT_API_PREFIX.into(),
            www: None,
            www_prefix: DEFAULT_WWW_PREFIX.into(),
            disable_filter: false,
            unix_socket: None,
            keepalive: Some(DEFAULT_KEEPALIVE),
            verbosity: 0,
            server: None,
            certificate_authority: None,
            token: None,
            token_file: None,
            tls_server_name: None,
            insecure_skip_tls_verify: false,
            kubeconfig: None,
            context: None,
            cluster: None,
            user: None,
            client_certificate: None,
            client_key: None,
            username: None,
            password: None,
            as_user: None,
            as_groups: Vec::new(),
            as_uid: None,
            append_server_path: false,
            exec_timeout: DEFAULT_EXEC_TIMEOUT,
            serviceaccount_dir: DEFAULT_SERVICEACCOUNT_DIR.into(),
            grace_period: DEFAULT_GRACE_PERIOD,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_upstream_connections: DEFAULT_MAX_UPSTREAM_CONNECTIONS,
            metrics_address: None,
            log_format: crate::leaves::log::Format::Text,
        }
    }
}

/// A command line that could not be understood. The message names the flag.
/// Boxed, so that each flag's `Result` stays two words wide.
#[derive(Debug)]
pub struct UsageError(Box<Usage>);

/// What is wrong with the command line.
#[derive(Debug)]
pub enum Usage {
    /// lexopt's own: an unknown flag, a missing or unexpected value.
    Flags(lexopt::Error),
    /// A value the flag cannot take: the value, the flag, and what it takes.
    Value {
        value: String,
        flag: &'static str,
        expected: &'static str,
    },
    /// An argument that is not a flag.
    Unexpected(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Usage::Flags(e) => e.fmt(f)?,
            Usage::Value {
                value,
                flag,
                expected,
            } => write!(f, "invalid value {value:?} for {flag}: expected {expected}")?,
            Usage::Unexpected(value) => write!(
                f,
                "unexpected argument {value:?}: kproxy takes only flags (and the `check` command)"
            )?,
        }
        f.write_str(" (see kproxy --help)")
    }
}

impl From<Usage> for UsageError {
    fn from(usage: Usage) -> Self {
        UsageError(Box::new(usage))
    }
}

impl UsageError {
    /// What is wrong.
    pub fn usage(&self) -> &Usage {
        &self.0
    }
}

impl std::error::Error for UsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.usage() {
            Usage::Flags(e) => Some(e),
            _ => None,
        }
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        Usage::Flags(e).into()
    }
}

/// `argv` includes the program name first, as `std::env::args_os()` gives it.
pub fn parse<I>(argv: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;

    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_iter(argv);
    let mut first = true;
    while let Some(arg) = parser.next()? {
        let was_first = std::mem::replace(&mut first, false);
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("version") => return Ok(Command::Version),
            Short('p') | Long("port") => args.port = number(&mut parser, "--port")?,
            Long("address") => args.address = string(&mut parser)?,
            Long("accept-hosts") => args.accept_hosts = string(&mut parser)?,
            Long("accept-paths") => args.accept_paths = string(&mut parser)?,
            Long("reject-paths") => args.reject_paths = string(&mut parser)?,
            Long("reject-methods") => args.reject_methods = string(&mut parser)?,
            Long("accept-origins") => args.accept_origins = string(&mut parser)?,
            Long("api-prefix") => args.api_prefix = string(&mut parser)?,
            Short('w') | Long("www") => args.www = Some(path(&mut parser)?),
            Short('P') | Long("www-prefix") => args.www_prefix = string(&mut parser)?,
            Long("disable-filter") => {
                args.disable_filter = boolean(&mut parser, "--disable-filter")?
            }
            Short('u') | Long("unix-socket") => args.unix_socket = Some(path(&mut parser)?),
            Long("keepalive") => args.keepalive = keepalive(&mut parser)?,
            Short('v') | Long("v") => args.verbosity = number(&mut parser, "--v")?,
            Short('s') | Long("server") => args.server = Some(string(&mut parser)?),
            Long("certificate-authority") => args.certificate_authority = Some(path(&mut parser)?),
            Long("token") => args.token = Some(Secret(string(&mut parser)?)),
            Long("token-file") => args.token_file = Some(path(&mut parser)?),
            Long("tls-server-name") => args.tls_server_name = Some(string(&mut parser)?),
            Long("insecure-skip-tls-verify") => {
                args.insecure_skip_tls_verify = boolean(&mut parser, "--insecure-skip-tls-verify")?
            }
            Long("kubeconfig") => args.kubeconfig = Some(path(&mut parser)?),
            Long("context") => args.context = Some(string(&mut parser)?),
            Long("cluster") => args.cluster = Some(string(&mut parser)?),
            Long("user") => args.user = Some(string(&mut parser)?),
            Long("client-certificate") => args.client_certificate = Some(path(&mut parser)?),
            Long("client-key") => args.client_key = Some(path(&mut parser)?),
            Long("username") => args.username = Some(string(&mut parser)?),
            Long("password") => args.password = Some(Secret(string(&mut parser)?)),
            Long("as") => args.as_user = Some(string(&mut parser)?),
            Long("as-group") => args.as_groups.push(string(&mut parser)?),
            Long("as-uid") => args.as_uid = Some(string(&mut parser)?),
            Long("append-server-path") => {
                args.append_server_path = boolean(&mut parser, "--append-server-path")?
            }
            Long("exec-timeout") => args.exec_timeout = duration(&mut parser, "--exec-timeout")?,
            Long("serviceaccount-dir") => args.serviceaccount_dir = path(&mut parser)?,
            Long("grace-period") => args.grace_period = duration(&mut parser, "--grace-period")?,
            Long("header-timeout") => {
                args.header_timeout = duration(&mut parser, "--header-timeout")?
            }
            Long("idle-timeout") => args.idle_timeout = duration(&mut parser, "--idle-timeout")?,
            Long("max-connections") => {
                args.max_connections = number(&mut parser, "--max-connections")?
            }
            Long("metrics-address") => args.metrics_address = Some(string(&mut parser)?),
            Long("log-format") => args.log_format = log_format(&mut parser)?,
            Long("max-upstream-connections") => {
                args.max_upstream_connections = number(&mut parser, "--max-upstream-connections")?
            }
            Value(v) if v == "check" && was_first => return parse_check(parser),
            Value(v) => {
                return Err(UsageError::from(Usage::Unexpected(
                    v.to_string_lossy().into_owned(),
                )))
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Serve(Box::new(args)))
}

fn parse_check(mut parser: lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;

    let mut args = CheckArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::CheckHelp),
            Short('p') | Long("port") => args.port = number(&mut parser, "--port")?,
            Long("address") => args.address = string(&mut parser)?,
            Short('u') | Long("unix-socket") => args.unix_socket = Some(path(&mut parser)?),
            Long("api-prefix") => args.api_prefix = string(&mut parser)?,
            Long("host") => args.host = string(&mut parser)?,
            Long("timeout") => args.timeout = duration(&mut parser, "--timeout")?,
            Long("ready") => args.ready = boolean(&mut parser, "--ready")?,
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Check(args))
}

fn string(parser: &mut lexopt::Parser) -> Result<String, UsageError> {
    Ok(parser.value()?.string()?)
}

fn path(parser: &mut lexopt::Parser) -> Result<PathBuf, UsageError> {
    Ok(parser.value()?.into())
}

fn number<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &'static str,
) -> Result<T, UsageError> {
    let value = string(parser)?;
    value.parse().map_err(|_| {
        UsageError::from(Usage::Value {
            value,
            flag,
            expected: "a number",
        })
    })
}

/// Boolean flags take an optional value, as pflag's do: `--disable-filter`,
/// `--disable-filter=true`, `--disable-filter=false`.
fn boolean(parser: &mut lexopt::Parser, flag: &'static str) -> Result<bool, UsageError> {
    let Some(value) = parser.optional_value() else {
        return Ok(true);
    };
    match value.to_str() {
        Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
        _ => Err(UsageError::from(Usage::Value {
            value: value.to_string_lossy().into_owned(),
            flag,
            expected: "true or false",
        })),
    }
}

/// kubectl's `--keepalive`, with Go's meaning: 0 is the 15 s default and a
/// negative value turns keep-alive off.
fn keepalive(parser: &mut lexopt::Parser) -> Result<Option<Duration>, UsageError> {
    let value = string(parser)?;
    if value.starts_with('-') {
        return Ok(None);
    }
    match parse_duration(&value) {
        Some(Duration::ZERO) => Ok(Some(DEFAULT_KEEPALIVE)),
        Some(period) => Ok(Some(period)),
        None => Err(UsageError::from(Usage::Value {
            value,
            flag: "--keepalive",
            expected: "a duration such as 30s (negative: off)",
        })),
    }
}

fn log_format(parser: &mut lexopt::Parser) -> Result<crate::leaves::log::Format, UsageError> {
    match string(parser)?.as_str() {
        "text" => Ok(crate::leaves::log::Format::Text),
        "json" => Ok(crate::leaves::log::Format::Json),
        other => Err(UsageError::from(Usage::Value {
            value: other.to_string(),
            flag: "--log-format",
            expected: "text or json",
        })),
    }
}

fn duration(parser: &mut lexopt::Parser, flag: &'static str) -> Result<Duration, UsageError> {
    let value = string(parser)?;
    match parse_duration(&value) {
        Some(duration) => Ok(duration),
        None => Err(UsageError::from(Usage::Value {
            value,
            flag,
            expected: "a duration such as 30s, 1m or 500ms",
        })),
    }
}
