//! Why a credential could not be had: a token (inline or in a file) kproxy
//! cannot send, or an exec plugin that gave none.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::leaves::yaml;

/// What went wrong with a credential; `Display` says where, and what to do.
/// Behind an `Arc`: it travels in the `Result` of every request's token
/// lookup, and a plugin's failure is shared by every request that waited on
/// its run.
#[derive(Clone, Debug)]
pub struct CredentialError(Arc<CredentialProblem>);

/// What is wrong with the credential.
#[derive(Debug)]
pub enum CredentialProblem {
    /// An inline token that is empty; names where it was given.
    Empty(String),
    Unreadable(PathBuf, io::Error),
    EmptyFile(PathBuf),
    NotText(PathBuf),
    /// A token that would end its header line early; names where it was given.
    BadCharacters(String),
    /// An impersonation field whose value would end its header line early.
    BadImpersonation {
        field: String,
        value: String,
    },
    /// An exec plugin gave none: the plugin as messages name it, and why.
    Plugin {
        plugin: String,
        problem: PluginProblem,
    },
}

/// Why an exec plugin's run gave no credential.
#[derive(Debug)]
pub enum PluginProblem {
    /// Its command is not there: the command, and its `installHint`.
    NotFound {
        command: String,
        hint: String,
    },
    CannotRun {
        command: String,
        source: io::Error,
    },
    CannotRead(io::Error),
    CannotWait(io::Error),
    /// Past `--exec-timeout`: whether it had exited (a child of its holding
    /// its output open) or not.
    Stopped {
        timeout: Duration,
        exited: bool,
    },
    /// It printed more than this many KiB.
    TooMuch(usize),
    ExitCode(i32),
    Signal,
    NotUtf8,
    NotYaml(yaml::Error),
    NotAnObject,
    /// A field of the ExecCredential that is not a string.
    NotAString(&'static str),
    Version {
        configured: &'static str,
        returned: String,
    },
    NoCredential,
    HalfAPair,
    BadToken,
    BadExpiry(String),
    /// It has not run yet, and may not run again so soon.
    NoneYet,
}

impl fmt::Display for CredentialProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialProblem::Empty(from) => write!(f, "{from} is empty"),
            CredentialProblem::Unreadable(path, e) => {
                write!(f, "token file {}: cannot read it: {e}", path.display())
            }
            CredentialProblem::EmptyFile(path) => {
                write!(f, "token file {}: the file is empty", path.display())
            }
            CredentialProblem::NotText(path) => write!(
                f,
                "token file {}: not a token (not UTF-8 text)",
                path.display()
            ),
            CredentialProblem::BadCharacters(from) => write!(
                f,
                "{from}: the token holds characters that cannot go in an HTTP header"
            ),
            CredentialProblem::BadImpersonation { field, value } => write!(
                f,
                "impersonation {field}: {value:?} holds characters that cannot go in an HTTP \
                 header"
            ),
            CredentialProblem::Plugin { plugin, problem } => {
                write!(f, "getting credentials: {plugin}: {problem}")
            }
        }
    }
}

impl fmt::Display for PluginProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginProblem::NotFound { command, hint } => {
                write!(f, "executable {command} not found.")?;
                match hint.trim_end() {
                    "" => Ok(()),
                    hint => write!(f, " {hint}"),
                }
            }
            PluginProblem::CannotRun { command, source } => {
                write!(f, "cannot run {command}: {source}")
            }
            PluginProblem::CannotRead(e) => write!(f, "cannot read its output: {e}"),
            PluginProblem::CannotWait(e) => write!(f, "cannot wait for it: {e}"),
            PluginProblem::Stopped { timeout, exited } => {
                let why = match exited {
                    true => "exited, but something it started kept its output open",
                    false => "did not finish",
                };
                write!(
                    f,
                    "{why} within {timeout:?} (--exec-timeout), so it was stopped"
                )
            }
            PluginProblem::TooMuch(kib) => {
                write!(f, "printed more than {kib} KiB; an ExecCredential is a few")
            }
            PluginProblem::ExitCode(code) => write!(f, "failed with exit code {code}"),
            PluginProblem::Signal => f.write_str("was killed by a signal"),
            PluginProblem::NotUtf8 => f.write_str("decoding stdout: not UTF-8"),
            PluginProblem::NotYaml(e) => {
                write!(f, "decoding stdout: not an ExecCredential: {e}")
            }
            PluginProblem::NotAnObject => {
                f.write_str("decoding stdout: not an ExecCredential (expected a JSON object)")
            }
            PluginProblem::NotAString(key) => {
                write!(f, "decoding stdout: {key}: expected a string")
            }
            PluginProblem::Version {
                configured,
                returned,
            } => write!(
                f,
                "exec plugin is configured to use API version {configured}, plugin returned \
                 version {returned}"
            ),
            PluginProblem::NoCredential => {
                f.write_str("exec plugin didn't return a token or cert/key pair")
            }
            PluginProblem::HalfAPair => {
                f.write_str("exec plugin returned only certificate or key, not both")
            }
            PluginProblem::BadToken => {
                f.write_str("the token holds characters that cannot go in an HTTP header")
            }
            PluginProblem::BadExpiry(stamp) => write!(
                f,
                "decoding stdout: expirationTimestamp {stamp:?} is not an RFC 3339 time"
            ),
            PluginProblem::NoneYet => f.write_str("no credential yet"),
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<CredentialProblem> for CredentialError {
    fn from(problem: CredentialProblem) -> Self {
        CredentialError(Arc::new(problem))
    }
}

impl CredentialError {
    /// What is wrong.
    pub fn problem(&self) -> &CredentialProblem {
        &self.0
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.problem() {
            CredentialProblem::Unreadable(_, e) => Some(e),
            CredentialProblem::Plugin { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

impl std::error::Error for PluginProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PluginProblem::CannotRun { source: e, .. }
            | PluginProblem::CannotRead(e)
            | PluginProblem::CannotWait(e) => Some(e),
            PluginProblem::NotYaml(e) => Some(e),
            _ => None,
        }
    }
}
