//! The `Authorization` header: a bearer token from `--token` or a kubeconfig, or
//! from a file that the kubelet rewrites; or a kubeconfig's username and password.
//!
//! A file token is re-read by path (never held open: the kubelet swaps a `..data`
//! symlink) at most once a second, so a rotated token is in use about a second
//! after it lands and the cost per request is one clock read. An empty or
//! unreadable file keeps the last good token. The token never reaches a log line:
//! [`Token`] has no `Display` and its `Debug` is redacted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exec::ExecPlugin;
use super::{CredentialError, CredentialProblem};

use crate::services::metrics::METRICS;

/// How often a token file is looked at again.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The ready-made header line `Authorization: Bearer ...\r\n` (or `Basic`),
/// shared by requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<[u8]>);

impl Token {
    pub(crate) fn new(token: &str) -> Token {
        Token(
            format!("Authorization: Bearer {token}\r\n")
                .into_bytes()
                .into(),
        )
    }

    fn basic(username: &str, password: &str) -> Token {
        let credentials =
            crate::leaves::base64::encode(format!("{username}:{password}").as_bytes());
        Token(
            format!("Authorization: Basic {credentials}\r\n")
                .into_bytes()
                .into(),
        )
    }

    /// The whole header line, CRLF included.
    pub fn header_line(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

pub enum TokenSource {
    /// Explicit configuration without a token: requests go up as the client sent them.
    None,
    Fixed(Token),
    File(FileToken),
    /// A credential plugin's token (it may give only a client certificate).
    Exec(Arc<ExecPlugin>),
}

pub struct FileToken {
    path: PathBuf,
    state: Mutex<FileState>,
}

struct FileState {
    token: Token,
    text: String,
    checked: Instant,
    /// Set after a failed reload, so a broken file is logged once, not every second.
    failing: bool,
}

impl TokenSource {
    /// `--token`, trimmed: `--token="$(cat token)"` and the like.
    pub fn fixed(token: &str) -> Result<TokenSource, CredentialError> {
        TokenSource::named(token.trim(), "--token")
    }

    /// A token given inline in a kubeconfig (`from` names where), sent as
    /// kubectl sends it: Go drops the spaces and tabs that end a header value,
    /// and refuses one that holds a line break or another control character
    /// (a YAML block scalar ends its token with a line break: refused too).
    pub fn named(token: &str, from: &str) -> Result<TokenSource, CredentialError> {
        let token = token.trim_end_matches([' ', '\t']);
        if token.is_empty() {
            return Err(CredentialError::from(CredentialProblem::Empty(from.into())));
        }
        check_header_safe(token, || from.into())?;
        Ok(TokenSource::Fixed(Token::new(token)))
    }

    /// HTTP basic authentication, as kubectl sends a kubeconfig's username and password.
    pub fn basic(username: &str, password: &str) -> TokenSource {
        TokenSource::Fixed(Token::basic(username, password))
    }

    pub fn file(path: &Path) -> Result<TokenSource, CredentialError> {
        let text = read_token(path)?;
        Ok(TokenSource::file_state(
            path,
            Token::new(&text),
            text,
            false,
        ))
    }

    /// A kubeconfig user with both `tokenFile` and `token`: the file's token
    /// wins, and the inline one (`from` names it) is used while the file cannot
    /// be read, as client-go does; the file is tried again as a file token is.
    pub fn file_or_inline(
        path: &Path,
        inline: &str,
        from: &str,
    ) -> Result<TokenSource, CredentialError> {
        match read_token(path) {
            Ok(text) => Ok(TokenSource::file_state(
                path,
                Token::new(&text),
                text,
                false,
            )),
            Err(unreadable) => {
                let TokenSource::Fixed(token) = TokenSource::named(inline, from)? else {
                    return Err(unreadable);
                };
                // Its first failed re-read is logged, as any token file's.
                Ok(TokenSource::file_state(path, token, String::new(), false))
            }
        }
    }

    fn file_state(path: &Path, token: Token, text: String, failing: bool) -> TokenSource {
        let state = FileState {
            token,
            text,
            checked: Instant::now(),
            failing,
        };
        TokenSource::File(FileToken {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    /// The token to send now, if any. Only a plugin can fail to give one; the
    /// message says which and why.
    pub fn current(&self) -> Result<Option<Token>, CredentialError> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Fixed(token) => Ok(Some(token.clone())),
            TokenSource::File(file) => Ok(Some(file.current())),
            TokenSource::Exec(plugin) => plugin.token(),
        }
    }

    /// A token newer than `sent`, read from the file right now: after a 401, the
    /// kubelet may have rotated the token within the last second. `None` when
    /// there is nothing newer (or the token is fixed).
    pub fn newer_than(&self, sent: &Token) -> Option<Token> {
        match self {
            TokenSource::File(file) => {
                let fresh = file.reload_now();
                (fresh != *sent).then_some(fresh)
            }
            TokenSource::Exec(plugin) => plugin.newer_than(sent),
            TokenSource::None | TokenSource::Fixed(_) => None,
        }
    }
}

impl FileToken {
    fn current(&self) -> Token {
        // A poisoned lock only means another thread panicked mid-update; the state
        // is still a valid token, so keep serving with it.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RELOAD_INTERVAL {
            state.checked = Instant::now();
            self.reload(&mut state);
        }
        state.token.clone()
    }

    fn reload_now(&self) -> Token {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.checked = Instant::now();
        self.reload(&mut state);
        state.token.clone()
    }

    fn reload(&self, state: &mut FileState) {
        match read_token(&self.path) {
            Ok(text) => {
                if text != state.text {
                    crate::event!(
                        2,
                        "token_reload",
                        "token file {} changed: using the new token",
                        self.path.display()
                    );
                    METRICS.token_reloads.inc();
                    state.token = Token::new(&text);
                    state.text = text;
                }
                state.failing = false;
            }
            Err(e) => {
                METRICS.token_read_failures.inc();
                if !state.failing {
                    crate::event!(0, "token_read_failure", "{e}; keeping the last good token");
                }
                state.failing = true;
            }
        }
    }
}

fn read_token(path: &Path) -> Result<String, CredentialError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CredentialError::from(CredentialProblem::Unreadable(path.to_path_buf(), e)))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CredentialError::from(CredentialProblem::NotText(path.to_path_buf())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialError::from(CredentialProblem::EmptyFile(
            path.to_path_buf(),
        )));
    }
    check_header_safe(token, || format!("token file {}", path.display()))?;
    Ok(token.to_string())
}

/// A CR, LF or other control character in the token would let it end the
/// Authorization header early and inject another one. (A tab is allowed in a
/// header value, as Go allows it.)
fn check_header_safe(token: &str, from: impl Fn() -> String) -> Result<(), CredentialError> {
    if token.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(CredentialError::from(CredentialProblem::BadCharacters(
            from(),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_line_and_redaction() {
        let TokenSource::Fixed(token) = TokenSource::fixed(" abc.def \n").unwrap() else {
            panic!("expected a fixed token")
        };
        assert_eq!(token.header_line(), b"Authorization: Bearer abc.def\r\n");
        assert!(!format!("{token:?}").contains("abc"));
    }

    #[test]
    fn refuses_control_characters_and_empty() {
        assert!(TokenSource::fixed("a\r\nX-Evil: 1").is_err());
        assert!(TokenSource::fixed("  ").is_err());
    }
}
