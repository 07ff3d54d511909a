//! Exec credential plugins (`users[].user.exec`: `aws eks get-token`,
//! `gke-gcloud-auth-plugin`, kubelogin), run as client-go runs them:
//!
//! - at first use, not at start; then again only when the credential has passed
//!   its `expirationTimestamp`, or after the API server answered 401 to it;
//!   concurrent requests wait for one run and share its result;
//! - unlike client-go, at most once a second whatever the result, so that
//!   neither a broken plugin nor an API server that refuses every credential
//!   (or a credential that expires at once) sets kproxy's fork rate;
//! - no shell; kproxy's environment plus the plugin's `env`, plus
//!   `KUBERNETES_EXEC_INFO` (the ExecCredential request, with the cluster when
//!   `provideClusterInfo`); stdin closed (kproxy never has a terminal); the
//!   plugin's stderr goes to kproxy's;
//! - unlike client-go, `--exec-timeout` bounds the whole run, output included:
//!   the plugin runs in a process group of its own, which is killed at the
//!   deadline, so neither a hung plugin nor a child it left holding its output
//!   open keeps requests waiting; and what it prints is bounded too.
//!
//! The ExecCredential it prints is JSON, read with the YAML parser (JSON is
//! YAML) under a tree size of its own ([`yaml::Limits::PLUGIN_OUTPUT`]).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Token;
use crate::leaves::yaml::{self, Value};
use crate::services::metrics::METRICS;

/// The most a plugin may print: an ExecCredential is a few KiB; more is an error.
const MAX_OUTPUT: usize = 1024 * 1024;
/// A run starts at most this often, whatever the last one gave: requests in
/// between use the last credential (or get the last error).
const RERUN_INTERVAL: Duration = Duration::from_secs(1);
/// How often a run looks at the plugin and its output.
const POLL: Duration = Duration::from_millis(10);

pub const V1: &str = "client.authentication.k8s.io/v1";
pub const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// A plugin's settings, checked (see `config::upstream`).
pub struct ExecSettings {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub api_version: &'static str,
    pub install_hint: Option<String>,
    /// The `spec.cluster` JSON object, with `provideClusterInfo`.
    pub cluster: Option<String>,
    /// How the plugin is named in messages: `exec plugin aws (user "x" in F)`.
    pub describe: String,
    pub timeout: Duration,
}

pub struct ExecPlugin {
    settings: ExecSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    credential: Option<Credential>,
    /// Bumped on each run that changed the client certificate.
    generation: u64,
    last_run: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
struct Credential {
    token: Option<Token>,
    /// PEM certificate and key, or empty.
    cert: Vec<u8>,
    key: Vec<u8>,
    expires: Option<SystemTime>,
}

impl ExecPlugin {
    pub fn new(settings: ExecSettings) -> Arc<ExecPlugin> {
        Arc::new(ExecPlugin {
            settings,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token to send now (running the plugin if there is no valid
    /// credential yet), or `None` when the plugin gives only a certificate.
    pub fn token(&self) -> Result<Option<Token>, String> {
        let mut state = self.state();
        let valid = state
            .credential
            .as_ref()
            .is_some_and(|c| c.expires.is_none_or(|at| SystemTime::now() <= at));
        if !valid {
            self.refresh(&mut state)?;
        }
        Ok(state.credential.as_ref().and_then(|c| c.token.clone()))
    }

    /// After a 401 to `sent`: a newer token, running the plugin again unless
    /// another request already did since `sent` was handed out.
    pub fn newer_than(&self, sent: &Token) -> Option<Token> {
        let mut state = self.state();
        let current = state.credential.as_ref().and_then(|c| c.token.clone());
        if current.as_ref() != Some(sent) {
            return current;
        }
        crate::log!(
            2,
            "{}: the API server refused its token (401); running it again",
            self.settings.describe
        );
        self.refresh(&mut state).ok()?;
        let fresh = state.credential.as_ref().and_then(|c| c.token.clone());
        fresh.filter(|t| t != sent)
    }

    /// The client certificate and key of the last run (empty before the first),
    /// and a generation that changes with them. Does not run the plugin: the
    /// request path does, before it asks for a connection.
    pub fn identity(&self) -> (Vec<u8>, Vec<u8>, u64) {
        let state = self.state();
        match &state.credential {
            Some(c) => (c.cert.clone(), c.key.clone(), state.generation),
            None => (Vec::new(), Vec::new(), state.generation),
        }
    }

    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    pub fn describe(&self) -> &str {
        &self.settings.describe
    }

    /// Runs the plugin, unless it ran less than [`RERUN_INTERVAL`] ago: then
    /// the last run's result stands. The state's lock is held throughout, so
    /// requests that come meanwhile wait for this run and share its result;
    /// `--exec-timeout` bounds how long.
    fn refresh(&self, state: &mut State) -> Result<(), String> {
        if state
            .last_run
            .is_some_and(|at| at.elapsed() < RERUN_INTERVAL)
        {
            return match (&state.last_error, &state.credential) {
                (Some(error), _) => Err(error.clone()),
                (None, Some(_)) => Ok(()),
                (None, None) => Err(format!(
                    "getting credentials: {}: no credential yet",
                    self.settings.describe
                )),
            };
        }
        state.last_run = Some(Instant::now());
        match self.run() {
            Ok(credential) => {
                let cert_changed = state
                    .credential
                    .as_ref()
                    .is_none_or(|old| (&old.cert, &old.key) != (&credential.cert, &credential.key));
                if cert_changed {
                    state.generation += 1;
                }
                state.credential = Some(credential);
                state.last_error = None;
                Ok(())
            }
            Err(e) => {
                let error = format!("getting credentials: {}: {e}", self.settings.describe);
                METRICS.exec_failures.inc();
                crate::event!(0, "plugin_failure", "{error}");
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    fn run(&self) -> Result<Credential, String> {
        let s = &self.settings;
        crate::event!(2, "plugin_run", "running {}", s.describe);
        METRICS.exec_runs.inc();
        let mut command = Command::new(&s.command);
        command
            .args(&s.args)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env("KUBERNETES_EXEC_INFO", self.request())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A group of its own, so that what it starts can be stopped with it.
            .process_group(0);
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                let hint = s.install_hint.as_deref().map(sanitize).unwrap_or_default();
                format!("executable {} not found. {hint}", s.command)
                    .trim_end()
                    .to_string()
            }
            _ => format!("cannot run {}: {e}", s.command),
        })?;
        let output = wait_with_timeout(child, s.timeout)?;
        parse_credential(&output, s.api_version)
    }

    /// `KUBERNETES_EXEC_INFO`: the ExecCredential request.
    fn request(&self) -> String {
        let cluster = match &self.settings.cluster {
            Some(cluster) => format!(",\"cluster\":{cluster}"),
            None => String::new(),
        };
        format!(
            "{{\"kind\":\"ExecCredential\",\"apiVersion\":\"{}\",\"spec\":{{\"interactive\":false{cluster}}}}}",
            self.settings.api_version
        )
    }
}

/// Waits for the plugin to exit and its output to end, reading the output as
/// it comes (a full pipe would stall it). At the deadline its process group
/// is killed: the plugin, and whatever it started that still holds the output.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<Vec<u8>, String> {
    let stdout = child.stdout.take();
    let (done, output) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("exec-output".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut out = Vec::new();
            if let Some(stdout) = stdout {
                let _ = stdout.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out);
            }
            let _ = done.send(out);
        });
    if let Err(e) = reader {
        kill_group(&mut child);
        return Err(format!("cannot read its output: {e}"));
    }
    let started = Instant::now();
    let (mut status, mut printed) = (None, None);
    loop {
        if status.is_none() {
            status = child
                .try_wait()
                .map_err(|e| format!("cannot wait for it: {e}"))?;
        }
        if printed.is_none() {
            printed = match output.try_recv() {
                Ok(out) => Some(out),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Vec::new()),
            };
        }
        if let (Some(status), Some(printed)) = (status, printed.take()) {
            return finished(status, printed);
        }
        if started.elapsed() >= timeout {
            kill_group(&mut child);
            let why = match status {
                Some(_) => "exited, but something it started kept its output open",
                None => "did not finish",
            };
            return Err(format!(
                "{why} within {timeout:?} (--exec-timeout), so it was stopped"
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn finished(status: std::process::ExitStatus, printed: Vec<u8>) -> Result<Vec<u8>, String> {
    match status.code() {
        Some(0) if printed.len() > MAX_OUTPUT => Err(format!(
            "printed more than {} KiB; an ExecCredential is a few",
            MAX_OUTPUT / 1024
        )),
        Some(0) => Ok(printed),
        Some(code) => Err(format!("failed with exit code {code}")),
        None => Err("was killed by a signal".into()),
    }
}

/// Kills the plugin's process group, then reaps the plugin. The group outlives
/// the plugin while anything it started lives, and its id is not reused until
/// then, so the signal reaches no one else.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        signal_group(pid);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// std can signal a child but not its process group; libc can.
#[allow(
    unsafe_code,
    reason = "kill(2) for a process group, which std cannot do"
)]
fn signal_group(pid: i32) {
    // SAFETY: kill(2) takes two integers and touches no memory of this
    // process. `-pid` names the group the plugin was started in
    // (`process_group(0)` made its id the plugin's pid), which holds only the
    // plugin and what it started.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// An install hint is printed to a terminal-less log; control characters go.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn parse_credential(output: &[u8], api_version: &str) -> Result<Credential, String> {
    let text = std::str::from_utf8(output).map_err(|_| "decoding stdout: not UTF-8".to_string())?;
    let doc = yaml::parse(text, yaml::Limits::PLUGIN_OUTPUT)
        .map_err(|e| format!("decoding stdout: not an ExecCredential: {e}"))?;
    if !matches!(doc, Value::Map(_)) {
        return Err("decoding stdout: not an ExecCredential (expected a JSON object)".into());
    }
    let string = |node: Option<&Value>, key: &str| -> Result<Option<String>, String> {
        match node.and_then(|n| n.get(key)) {
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(format!("decoding stdout: {key}: expected a string")),
        }
    };
    let returned = string(Some(&doc), "apiVersion")?.unwrap_or_default();
    if returned != api_version {
        return Err(format!(
            "exec plugin is configured to use API version {api_version}, plugin returned version {returned}"
        ));
    }
    let status = doc.get("status");
    let token = string(status, "token")?.filter(|t| !t.is_empty());
    let cert = string(status, "clientCertificateData")?.unwrap_or_default();
    let key = string(status, "clientKeyData")?.unwrap_or_default();
    if token.is_none() && cert.is_empty() && key.is_empty() {
        return Err("exec plugin didn't return a token or cert/key pair".into());
    }
    if cert.is_empty() != key.is_empty() {
        return Err("exec plugin returned only certificate or key, not both".into());
    }
    let token = match token {
        Some(t) if t.bytes().any(|b| b.is_ascii_control()) => {
            return Err("the token holds characters that cannot go in an HTTP header".into())
        }
        Some(t) => Some(Token::new(&t)),
        None => None,
    };
    let expires = match string(status, "expirationTimestamp")? {
        Some(stamp) => Some(rfc3339(&stamp).ok_or_else(|| {
            format!("decoding stdout: expirationTimestamp {stamp:?} is not an RFC 3339 time")
        })?),
        None => None,
    };
    Ok(Credential {
        token,
        cert: cert.into_bytes(),
        key: key.into_bytes(),
        expires,
    })
}

/// `2026-11-29T03:04:05Z`, with optional fraction and `+hh:mm` offset.
fn rfc3339(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = stamp.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &stamp[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146097 + day_of_era - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(stamp: &str) -> Option<u64> {
        rfc3339(stamp).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2026-11-29T03:04:05Z"), Some(1_795_921_445));
        assert_eq!(secs("2026-11-29T04:04:05.123+01:00"), Some(1_795_921_445));
        assert_eq!(secs("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T03:04:05",
            "2026-11-29T03:04:05+0100",
            "x",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_as_client_go_checks_them() {
        let ok = parse_credential(
            br#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1",
                 "status":{"token":"abc","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
            V1,
        )
        .unwrap();
        assert_eq!(
            ok.token.unwrap().header_line(),
            b"Authorization: Bearer abc\r\n"
        );
        assert!(ok.expires.is_some());
        let err = |out: &[u8], version| parse_credential(out, version).err().unwrap();
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1beta1","status":{"token":"a"}}"#,
            V1
        )
        .contains("plugin returned version client.authentication.k8s.io/v1beta1"));
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1","status":{}}"#,
            V1
        )
        .contains("didn't return a token"));
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1","status":{"clientKeyData":"k"}}"#,
            V1
        )
        .contains("only certificate or key"));
        assert!(err(b"garbage {", V1).contains("decoding stdout"));
    }
}
