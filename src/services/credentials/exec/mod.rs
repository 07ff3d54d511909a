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
//! `run` runs it; `credential` reads what it printed.

mod credential;
mod run;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use credential::{parse_credential, Credential};

use super::{CredentialError, CredentialProblem, PluginProblem, Token};
use crate::services::metrics::METRICS;

/// A run starts at most this often, whatever the last one gave: requests in
/// between use the last credential (or get the last error).
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
    last_error: Option<CredentialError>,
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
    pub fn token(&self) -> Result<Option<Token>, CredentialError> {
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
    fn refresh(&self, state: &mut State) -> Result<(), CredentialError> {
        if state
            .last_run
            .is_some_and(|at| at.elapsed() < RERUN_INTERVAL)
        {
            return match (&state.last_error, &state.credential) {
                (Some(error), _) => Err(error.clone()),
                (None, Some(_)) => Ok(()),
                (None, None) => Err(self.failed(PluginProblem::NoneYet)),
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
            Err(problem) => {
                let error = self.failed(problem);
                METRICS.exec_failures.inc();
                crate::event!(0, "plugin_failure", "{error}");
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    fn run(&self) -> Result<Credential, PluginProblem> {
        let s = &self.settings;
        crate::event!(2, "plugin_run", "running {}", s.describe);
        METRICS.exec_runs.inc();
        let output = run::run(s, &self.request())?;
        parse_credential(&output, s.api_version)
    }

    fn failed(&self, problem: PluginProblem) -> CredentialError {
        CredentialError::from(CredentialProblem::Plugin {
            plugin: self.settings.describe.clone(),
            problem,
        })
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
