//! Exec credential plugins (`users[].user.exec`: `aws eks get-token`,
//! `gke-gcloud-auth-plugin`, kubelogin), run as client-go runs them:
//!
//! - at first use, not at start; then again only when the credential has passed
//!   its `expirationTimestamp`, or after the API server answered 401 to it;
//!   concurrent requests wait for one run instead of starting their own;
//! - no shell; kproxy's environment plus the plugin's `env`, plus
//!   `KUBERNETES_EXEC_INFO` (the ExecCredential request, with the cluster when
//!   `provideClusterInfo`); stdin closed (kproxy never has a terminal); the
//!   plugin's stderr goes to kproxy's;
//! - unlike client-go, a plugin that does not finish within `--exec-timeout` is
//!   killed, so a hung plugin fails requests instead of hanging them.
//!
//! The ExecCredential it prints is JSON, read with the YAML parser (JSON is YAML).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Token;
use crate::config::yaml::{self, Node};
use crate::metrics::METRICS;

/// The most of a plugin's output kproxy reads: an ExecCredential is a few KiB.
const MAX_OUTPUT: u64 = 1024 * 1024;
/// After a failed run, or a run for a 401, requests wait this long before the
/// plugin runs again: a broken plugin or a revoked credential must not make
/// kproxy run it for every request.
const RERUN_INTERVAL: Duration = Duration::from_secs(1);

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

    fn refresh(&self, state: &mut State) -> Result<(), String> {
        if let (Some(at), Some(error)) = (state.last_run, &state.last_error) {
            if at.elapsed() < RERUN_INTERVAL {
                return Err(error.clone());
            }
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
            .stderr(Stdio::inherit());
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

/// Waits for the plugin, reading its output as it comes (a full pipe would stall
/// it), and kills it at the time limit.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<Vec<u8>, String> {
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut out);
        }
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {timeout:?} (--exec-timeout), so it was stopped"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let output = reader.join().unwrap_or_default();
    match status.code() {
        Some(0) => Ok(output),
        Some(code) => Err(format!("failed with exit code {code}")),
        None => Err("was killed by a signal".into()),
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
    let doc =
        yaml::parse(text).map_err(|e| format!("decoding stdout: not an ExecCredential: {e}"))?;
    if !matches!(doc, Node::Map(_)) {
        return Err("decoding stdout: not an ExecCredential (expected a JSON object)".into());
    }
    let string = |node: Option<&Node>, key: &str| -> Result<Option<String>, String> {
        match node.and_then(|n| n.get(key)) {
            Some(Node::Str(s)) => Ok(Some(s.clone())),
            None | Some(Node::Null) => Ok(None),
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
