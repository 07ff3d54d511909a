//! What kproxy adds to each request so that the API server knows who asks: an
//! `Authorization` header ([`TokenSource`]: a token, a token file, basic auth)
//! and `Impersonate-*` headers. The client certificate, the other way to say who
//! asks, belongs to the TLS connection ([`crate::services::tls::Identity`]). The request
//! path asks "what do I add" and never where it came from.

mod error;
pub mod exec;
mod token;

pub use error::{CredentialError, CredentialProblem, PluginProblem};
pub use exec::ExecPlugin;
pub use token::{Token, TokenSource};

/// Everything kproxy adds to a request.
pub struct Credentials {
    /// Added unless the client sent an `Authorization` of its own.
    pub authorization: TokenSource,
    /// `Impersonate-*` header lines, added unless the client sent `Impersonate-User`.
    pub impersonation: Option<Vec<u8>>,
}

impl Credentials {
    pub fn none() -> Credentials {
        Credentials {
            authorization: TokenSource::None,
            impersonation: None,
        }
    }
}

/// Who to act as (`--as`, `--as-group`, `--as-uid`, a kubeconfig's `as-*`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Impersonation {
    pub user: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: Vec<(String, Vec<String>)>,
}

impl Impersonation {
    /// The header lines, as client-go's impersonating transport writes them: one
    /// `Impersonate-Group` per group, one `Impersonate-Extra-KEY` per value, the
    /// key %-escaped where a header name could not hold it.
    pub fn header_lines(&self) -> Result<Vec<u8>, CredentialError> {
        let mut out = Vec::new();
        let mut line = |name: &str, value: &str| -> Result<(), CredentialError> {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(CredentialError::from(CredentialProblem::BadImpersonation {
                    field: name.to_string(),
                    value: value.to_string(),
                }));
            }
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            Ok(())
        };
        line("Impersonate-User", &self.user)?;
        if let Some(uid) = &self.uid {
            line("Impersonate-Uid", uid)?;
        }
        for group in &self.groups {
            line("Impersonate-Group", group)?;
        }
        for (key, values) in &self.extra {
            let name = format!("Impersonate-Extra-{}", escape_header_key(key));
            for value in values {
                line(&name, value)?;
            }
        }
        Ok(out)
    }
}

/// Escapes what an HTTP field name cannot hold (RFC 9110 `tchar`), and `%`
/// itself, as `%XX`; the API server unescapes it.
fn escape_header_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let token = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        match token {
            true => out.push(b as char),
            false => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_headers() {
        let who = Impersonation {
            user: "alice".into(),
            uid: Some("42".into()),
            groups: vec!["dev".into(), "ops".into()],
            extra: vec![("example.com/scopes".into(), vec!["a".into(), "b c".into()])],
        };
        assert_eq!(
            String::from_utf8(who.header_lines().unwrap()).unwrap(),
            "Impersonate-User: alice\r\nImpersonate-Uid: 42\r\n\
             Impersonate-Group: dev\r\nImpersonate-Group: ops\r\n\
             Impersonate-Extra-example.com%2Fscopes: a\r\n\
             Impersonate-Extra-example.com%2Fscopes: b c\r\n"
        );
        let evil = Impersonation {
            user: "a\r\nX: y".into(),
            ..Impersonation::default()
        };
        assert!(evil.header_lines().is_err());
    }
}
