//! Command-line flags, spelled as `kubectl proxy` spells them.
//!
//! This module only turns argv into [`Args`]: plain values, no files read and no
//! environment consulted. [`crate::config`] decides what they mean together.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::ValueExt;

/// kubectl's defaults, copied from `kubectl proxy --help` (v1.32).
pub const DEFAULT_PORT: u16 = 8001;
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_ACCEPT_HOSTS: &str = r"^localhost$,^127\.0\.0\.1$,^\[::1\]$";
pub const DEFAULT_ACCEPT_PATHS: &str = "^.*";
pub const DEFAULT_REJECT_PATHS: &str = "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach";
pub const DEFAULT_REJECT_METHODS: &str = "^$";
/// kproxy's own: pages served from this machine's loopback names, any port.
/// Requests without an `Origin` (curl, kubectl, client libraries) always pass.
pub const DEFAULT_ACCEPT_ORIGINS: &str = r"^https?://localhost(:[0-9]+)?$,^https?://127\.0\.0\.1(:[0-9]+)?$,^https?://\[::1\](:[0-9]+)?$";
pub const DEFAULT_API_PREFIX: &str = "/";
pub const DEFAULT_WWW_PREFIX: &str = "/static/";
pub const DEFAULT_SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Time allowed for a request head once its first byte has come (and for a
/// request body that stops moving): a slowloris client is dropped after this.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a keep-alive connection may wait for its next request. Longer than
/// the 90 s that Go and most HTTP clients keep an idle connection, so that the
/// client, not kproxy, usually closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections served at once; past it a client gets a fast 503. With 256
/// hostile clients each making kproxy hold the costliest state it can, the
/// static build peaks at 25.6 MiB (tests/memory.rs), under the manifests' 40Mi.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Connections to the API server for ordinary requests (streams have their
/// own). Chosen by scripts/bench.sh; see README "Measured".
pub const DEFAULT_MAX_UPSTREAM_CONNECTIONS: usize = 32;
/// How long an exec credential plugin may run before kproxy stops it. client-go
/// waits forever; `aws eks get-token` takes a second or two, a cold Python start
/// on a small node a few more.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's dialer default, which is what kubectl's `--keepalive=0` really means.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Kubernetes gives a Pod 30 s between SIGTERM and SIGKILL; finishing in-flight
/// requests within a few seconds leaves the rest for the app container.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

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
    pub log_format: crate::log::Format,
}

/// A token, password or key, from a flag or a kubeconfig. Its `Debug` never shows
/// the value, so an `{:?}` in a log line or a test failure cannot leak it.
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
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
            log_format: crate::log::Format::Text,
        }
    }
}

/// A flag that could not be understood. The message names the flag.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see kproxy --help)", self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
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
                return Err(UsageError(format!(
                    "unexpected argument {:?}: kproxy takes only flags (and the `check` command)",
                    v.to_string_lossy()
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

fn number<T: std::str::FromStr>(parser: &mut lexopt::Parser, flag: &str) -> Result<T, UsageError> {
    let value = string(parser)?;
    value.parse().map_err(|_| {
        UsageError(format!(
            "invalid value {value:?} for {flag}: expected a number"
        ))
    })
}

/// Boolean flags take an optional value, as pflag's do: `--disable-filter`,
/// `--disable-filter=true`, `--disable-filter=false`.
fn boolean(parser: &mut lexopt::Parser, flag: &str) -> Result<bool, UsageError> {
    let Some(value) = parser.optional_value() else {
        return Ok(true);
    };
    match value.to_str() {
        Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
        _ => Err(UsageError(format!(
            "invalid value {:?} for {flag}: expected true or false",
            value.to_string_lossy()
        ))),
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
        None => Err(UsageError(format!(
            "invalid value {value:?} for --keepalive: expected a duration such as 30s (negative: off)"
        ))),
    }
}

fn log_format(parser: &mut lexopt::Parser) -> Result<crate::log::Format, UsageError> {
    match string(parser)?.as_str() {
        "text" => Ok(crate::log::Format::Text),
        "json" => Ok(crate::log::Format::Json),
        other => Err(UsageError(format!(
            "invalid value {other:?} for --log-format: expected text or json"
        ))),
    }
}

fn duration(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, UsageError> {
    let value = string(parser)?;
    parse_duration(&value).ok_or_else(|| {
        UsageError(format!(
            "invalid value {value:?} for {flag}: expected a duration such as 30s, 1m or 500ms"
        ))
    })
}

/// Parses the subset of Go's `time.ParseDuration` that people write:
/// a sequence of `<number><unit>` with units h, m, s, ms, us, µs, ns, or a bare `0`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        nanos = nanos.checked_add(scaled(number, scale)?)?;
        rest = tail;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let total = Duration::new(secs, (nanos % 1_000_000_000) as u32);
    (!text.is_empty()).then_some(total)
}

/// `number` (digits, at most one `.`, as Go writes `1.5` or `.5`) times
/// `scale` nanoseconds, truncated as Go truncates; integers only, so that no
/// float parser is linked in.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u128 = match whole {
        "" => 0,
        w => w.parse().ok()?,
    };
    let mut part = 0;
    let mut unit = scale;
    for digit in fraction.bytes().take(30) {
        unit /= 10;
        part += u128::from(digit - b'0') * unit;
    }
    whole.checked_mul(scale)?.checked_add(part)
}

pub const HELP: &str = "\
kproxy: a small drop-in replacement for `kubectl proxy`, made to run as a Pod sidecar.

It listens on 127.0.0.1:8001 and forwards each request to the Kubernetes API server,
adding the Pod's service-account token and checking the server's certificate, so that
the Pod's other containers can `curl localhost:8001/api` without credentials.

Usage:
  kproxy [flags]

Where the API server is, and who to be, as kubectl finds them: --kubeconfig FILE, else
the files in KUBECONFIG, else ~/.kube/config, with its current context; else, in a Pod,
KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT with the service-account CA and
token (so in a Pod no flag is needed); the flags below override either.

Proxy flags (as in kubectl proxy):
  -p, --port PORT              Port to listen on; 0 picks a free port (default 8001)
      --address ADDR           IP address to listen on (default 127.0.0.1)
  -u, --unix-socket PATH       Listen on a Unix socket (mode 0700) instead of TCP
      --accept-hosts REGEXES   Hosts to accept (default '^localhost$,^127\\.0\\.0\\.1$,^\\[::1\\]$')
      --accept-paths REGEXES   Paths to accept (default '^.*')
      --reject-paths REGEXES   Paths to reject, checked first
                               (default '^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach')
      --reject-methods REGEXES HTTP methods to reject (default '^$', i.e. none)
      --accept-origins REGEXES Browser origins to accept; requests without an Origin
                               header (curl, kubectl) always pass (default: http(s) on
                               localhost, 127.0.0.1 and [::1], any port)
      --api-prefix PREFIX      Serve the API under this prefix (default '/')
  -w, --www DIR                Also serve the files in DIR (never outside it; no listings)
  -P, --www-prefix PREFIX      ...under this prefix (default '/static/')
      --disable-filter         Turn off all the filters above (unsafe: open to XSRF)
      --keepalive DURATION     TCP keep-alive period of upgraded connections (exec, attach,
                               port-forward); 0 means the default 15s, negative turns it off
  -v, --v LEVEL                Log verbosity; 4 and above logs one line per request

  REGEXES are comma-separated regular expressions, matched anywhere in the value unless
  anchored, as kubectl does. Paths are matched percent-decoded. A path with '.', '..'
  or empty segments (in any spelling) is answered 301 to its cleaned form, as kubectl
  does, and never forwarded as it is.

Cluster flags (as kubectl's global flags):
      --kubeconfig FILE        kubeconfig file to use (instead of KUBECONFIG, ~/.kube/config)
      --context NAME           kubeconfig context to use (default: its current-context)
      --cluster NAME           kubeconfig cluster to use, instead of the context's
      --user NAME              kubeconfig user to use, instead of the context's
  -s, --server URL             API server URL (default: the kubeconfig's, or in-cluster)
      --append-server-path     Add the server URL's path (Rancher: /k8s/clusters/ID) to
                               every request path
      --certificate-authority FILE
                               CA bundle (PEM) to verify the API server with
      --token TOKEN            Bearer token (prefer --token-file: argv is visible in /proc)
      --token-file FILE        Read the bearer token from FILE, re-read when it changes
      --client-certificate FILE
      --client-key FILE        Client certificate (PEM, with its chain) and key for TLS
      --username NAME
      --password PASSWORD      Basic authentication
      --as USER                Impersonate USER (adds Impersonate-User)
      --as-group GROUP         Impersonate GROUP too; repeat for several
      --as-uid UID             Impersonate this UID too
      --tls-server-name NAME   Server name to verify the certificate against
      --exec-timeout DURATION  Stop a kubeconfig's exec credential plugin, and what it
                               started, if it runs longer (default 30s)
      --insecure-skip-tls-verify
                               Do not verify the API server's certificate (unsafe)
      --serviceaccount-dir DIR Where in-cluster credentials live
                               (default /var/run/secrets/kubernetes.io/serviceaccount)

Limits:
      --max-connections N      Clients served at once; more get 503 (default 256)
      --max-upstream-connections N
                               Connections to the API server shared by ordinary
                               requests, which wait their turn when all are busy
                               (default 32); watches, followed logs and tunnels get
                               their own
      --header-timeout DURATION
                               Time for a request head once begun, or for a stalled
                               request body (default 30s); then 408 and close
      --idle-timeout DURATION  Close a keep-alive connection idle this long (default 2m)
  Watches, log streams and exec/port-forward tunnels have no timeout.

Operating (kproxy's own; see README \"Operating kproxy\"):
      --metrics-address HOST:PORT
                               Serve Prometheus metrics at http://HOST:PORT/metrics
                               (off by default; 0.0.0.0:9091 to let Prometheus in)
      --log-format FORMAT      text (default) or json: one object per line, with each
                               request's fields at -v 4 and above

Process flags:
      --grace-period DURATION  On SIGTERM/SIGINT, time allowed for requests in flight (default 5s)
  -h, --help                   Show this help
      --version                Show the version

Probing a running kproxy (a scratch image has no curl): kproxy check --help
";

pub const CHECK_HELP: &str = "\
kproxy check: exit 0 if a kproxy answers on this address, non-zero with a reason if not.

For Kubernetes exec probes: the kubelet's httpGet and tcpSocket probes dial the Pod IP,
which cannot reach a proxy listening on 127.0.0.1, and a scratch image has no curl.

Usage:
  kproxy check [flags]

Flags:
  -p, --port PORT          Port kproxy listens on (default 8001)
      --address ADDR       Address kproxy listens on (default 127.0.0.1)
  -u, --unix-socket PATH   Unix socket kproxy listens on
      --api-prefix PREFIX  kproxy's --api-prefix, for --ready (default '/')
      --host NAME          Host header to send, one that kproxy's --accept-hosts
                           accepts (default localhost)
      --timeout DURATION   Give up after this long (default 1s)
      --ready              Also ask the API server, through kproxy, for /readyz.
                           Use it for readiness only: a liveness probe that depends on
                           the API server restarts every sidecar in the cluster when the
                           API server has a bad minute, which only adds load to it.
";

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_as_go_parses_them() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Duration::ZERO),
            ("30s", ms(30_000)),
            ("1.5s", ms(1_500)),
            (".5s", ms(500)),
            ("1.s", ms(1_000)),
            ("1h2m3s", ms(3_723_000)),
            ("1h.5m", ms(3_630_000)),
            ("500ms", ms(500)),
            ("250us", Duration::from_micros(250)),
            ("7µs", Duration::from_micros(7)),
            ("1.0000000019s", Duration::new(1, 1)),
        ] {
            assert_eq!(parse_duration(text), Some(want), "{text}");
        }
        for text in [
            "",
            "s",
            "1",
            "1x",
            ".s",
            "1.2.3s",
            "-1s",
            "1e3s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }
}
