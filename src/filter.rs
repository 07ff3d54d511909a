//! kubectl proxy's request filter: which paths, methods and hosts may pass.
//!
//! The rules are kubectl's (`FilterServer` in `proxy_server.go`): reject-paths first,
//! then reject-methods, then accept only if both accept-paths and accept-hosts match.
//! Each flag is a comma-separated list of unanchored regular expressions; an empty
//! list matches nothing. Where kproxy differs, it is stricter, as a proxy holding a
//! service account's power should be:
//! - the path is judged percent-decoded, and only once it is canonical (see
//!   [`crate::path`]), so `%65xec`, `%2F` and dot-segments cannot dodge `--reject-paths`;
//! - the host keeps an IPv6 literal's brackets, so the default `^\[::1\]$` matches
//!   `Host: [::1]:8001` (kubectl strips them and refuses it);
//! - a browser page's `Origin` must match `--accept-origins`.

use regex_lite::Regex;

use crate::config::split_host_port;
use crate::path::CanonicalPath;

/// A comma-separated list of regular expressions, as kubectl's flags take them.
#[derive(Debug)]
pub struct Patterns(Vec<Pattern>);

/// One expression. The shapes kubectl's defaults use most are matched without
/// the regex engine, whose backtracking-free matcher costs a few per cent of a
/// request's CPU time: `^.*` matches anything, `^localhost$` is one string.
#[derive(Debug)]
enum Pattern {
    Anything,
    Exactly(String),
    Regex(Regex),
}

impl Patterns {
    pub fn parse(list: &str) -> Result<Patterns, String> {
        if list.is_empty() {
            return Ok(Patterns(Vec::new()));
        }
        list.split(',')
            .map(Pattern::parse)
            .collect::<Result<_, _>>()
            .map(Patterns)
    }

    pub fn matches(&self, value: &str) -> bool {
        self.0.iter().any(|p| p.matches(value))
    }
}

impl Pattern {
    fn parse(re: &str) -> Result<Pattern, String> {
        // Compiled in every case, so a bad expression is refused whatever its shape.
        let regex = Regex::new(re).map_err(|e| format!("bad regular expression {re:?}: {e}"))?;
        Ok(match re {
            "^.*" | ".*" | "^.*$" | "" => Pattern::Anything,
            _ => literal(re).map_or(Pattern::Regex(regex), Pattern::Exactly),
        })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Anything => true,
            Pattern::Exactly(text) => value == text,
            Pattern::Regex(re) => re.is_match(value),
        }
    }
}

/// The one string `^...$` matches, when it holds only plain characters and
/// escaped punctuation (`^127\.0\.0\.1$`, `^\[::1\]$`, `^$`).
fn literal(re: &str) -> Option<String> {
    let body = re.strip_prefix('^')?.strip_suffix('$')?;
    let mut text = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e if e.is_ascii_punctuation() => text.push(e),
                _ => return None,
            },
            c if c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | ':' | ' ') => text.push(c),
            _ => return None,
        }
    }
    Some(text)
}

pub struct Filter {
    pub accept_hosts: Patterns,
    pub accept_paths: Patterns,
    pub reject_paths: Patterns,
    pub reject_methods: Patterns,
    /// Browser origins let through (kproxy's own rule, see [`Filter::admits_client`]).
    pub accept_origins: Patterns,
}

/// Why a request may not pass: kubectl's 403 `Forbidden`, and which rule said so.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    RejectedPath,
    RejectedMethod,
    PathNotAccepted,
    HostNotAccepted,
    OriginNotAccepted,
}

impl Filter {
    /// kubectl's order: reject-paths, then reject-methods, then accept only if
    /// accept-paths, the host (and, kproxy's addition, the origin) all match.
    /// `path` is the canonical path after the `--api-prefix` was stripped; `host`
    /// is the host without its port; `origin` the `Origin` header, if any.
    pub fn check(
        &self,
        method: &str,
        path: &CanonicalPath,
        host: &str,
        origin: Option<&str>,
    ) -> Result<(), Refusal> {
        let path = path.as_str();
        if self.reject_paths.matches(path) {
            return Err(Refusal::RejectedPath);
        }
        if self.reject_methods.matches(method) {
            return Err(Refusal::RejectedMethod);
        }
        if !self.accept_paths.matches(path) {
            return Err(Refusal::PathNotAccepted);
        }
        self.admits_client(host, origin)
    }

    /// Whether the request comes from a client this proxy serves: its Host is
    /// accepted (kubectl's defence against DNS rebinding) and, if it comes from a
    /// browser page, so is that page's origin. Browsers apply no same-origin rule
    /// to WebSocket handshakes or simple requests, and always send `Origin` on
    /// them; curl, kubectl and client libraries send none. Without this any page
    /// a person opens could `new WebSocket("ws://127.0.0.1:8001/...")` with the
    /// token added.
    pub fn admits_client(&self, host: &str, origin: Option<&str>) -> Result<(), Refusal> {
        if !self.accept_hosts.matches(host) {
            return Err(Refusal::HostNotAccepted);
        }
        match origin {
            Some(origin) if !self.accept_origins.matches(origin) => Err(Refusal::OriginNotAccepted),
            _ => Ok(()),
        }
    }
}

/// The host to match against `--accept-hosts`: the authority without its port,
/// keeping an IPv6 literal's brackets. `None` for an authority that is not
/// well-formed (unbalanced brackets).
pub fn host_without_port(authority: &str) -> Option<&str> {
    split_host_port(authority).map(|(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;
    use crate::path::canonical;

    fn default_filter() -> Filter {
        Filter {
            accept_hosts: Patterns::parse(cli::DEFAULT_ACCEPT_HOSTS).unwrap(),
            accept_paths: Patterns::parse(cli::DEFAULT_ACCEPT_PATHS).unwrap(),
            reject_paths: Patterns::parse(cli::DEFAULT_REJECT_PATHS).unwrap(),
            reject_methods: Patterns::parse(cli::DEFAULT_REJECT_METHODS).unwrap(),
            accept_origins: Patterns::parse(cli::DEFAULT_ACCEPT_ORIGINS).unwrap(),
        }
    }

    fn check(f: &Filter, method: &str, path: &str, host: &str) -> Result<(), Refusal> {
        f.check(method, &canonical(path).unwrap(), host, None)
    }

    #[test]
    fn kubectl_order_and_defaults() {
        let f = default_filter();
        let exec = "/api/v1/namespaces/default/pods/p/exec";
        assert_eq!(check(&f, "GET", "/api/v1/pods", "localhost"), Ok(()));
        assert_eq!(
            check(&f, "POST", exec, "localhost"),
            Err(Refusal::RejectedPath)
        );
        assert_eq!(
            check(
                &f,
                "GET",
                "/api/v1/namespaces/default/pods/p/portforward",
                "localhost"
            ),
            Ok(())
        );
        assert_eq!(
            check(&f, "GET", "/api", "evil.example"),
            Err(Refusal::HostNotAccepted)
        );
        assert_eq!(check(&f, "GET", "/api", "[::1]"), Ok(()));
        assert_eq!(
            check(&f, "GET", "/api", "LOCALHOST"),
            Err(Refusal::HostNotAccepted)
        );
    }

    #[test]
    fn encoded_names_are_judged_decoded() {
        let f = default_filter();
        for path in [
            "/api/v1/namespaces/default/pods/p/%65xec",
            "/api/v1/namespaces/default/pods/p%2Fexec",
            "/api/v1/namespaces/default/pods/p%2fattach",
        ] {
            assert_eq!(
                check(&f, "POST", path, "localhost"),
                Err(Refusal::RejectedPath),
                "{path}"
            );
        }
    }

    #[test]
    fn origins_from_other_sites_are_refused() {
        let f = default_filter();
        let path = canonical("/api/v1/namespaces/default/pods").unwrap();
        for (origin, want) in [
            (None, Ok(())),
            (Some("http://localhost"), Ok(())),
            (Some("http://localhost:8001"), Ok(())),
            (Some("https://127.0.0.1:3000"), Ok(())),
            (Some("http://[::1]:8001"), Ok(())),
            (
                Some("https://evil.example"),
                Err(Refusal::OriginNotAccepted),
            ),
            (
                Some("http://localhost.evil.example"),
                Err(Refusal::OriginNotAccepted),
            ),
            (
                Some("http://127.0.0.1.evil.example:8001"),
                Err(Refusal::OriginNotAccepted),
            ),
            (Some("null"), Err(Refusal::OriginNotAccepted)),
            (Some("ws://localhost"), Err(Refusal::OriginNotAccepted)),
        ] {
            assert_eq!(
                f.check("GET", &path, "localhost", origin),
                want,
                "{origin:?}"
            );
        }
    }

    #[test]
    fn empty_list_matches_nothing_and_methods_are_unanchored() {
        let mut f = default_filter();
        f.accept_hosts = Patterns::parse("").unwrap();
        assert_eq!(
            check(&f, "GET", "/api", "localhost"),
            Err(Refusal::HostNotAccepted)
        );
        let mut f = default_filter();
        f.reject_methods = Patterns::parse("POST").unwrap();
        assert_eq!(
            check(&f, "DELETEPOST", "/api", "localhost"),
            Err(Refusal::RejectedMethod)
        );
        assert_eq!(check(&f, "post", "/api", "localhost"), Ok(()));
    }

    #[test]
    fn simple_shapes_match_like_the_regex_would() {
        for (re, value) in [
            (r"^localhost$", "localhost"),
            (r"^127\.0\.0\.1$", "127.0.0.1"),
            (r"^\[::1\]$", "[::1]"),
            (r"^$", ""),
            (r"^.*", "/anything"),
            (r"^GET$", "GET"),
        ] {
            let pattern = Pattern::parse(re).unwrap();
            assert!(
                !matches!(pattern, Pattern::Regex(_)),
                "{re} should not need the regex engine"
            );
            let regex = Regex::new(re).unwrap();
            for probe in [
                value,
                "",
                "x",
                "localhostx",
                "127x0x0x1",
                "[::1]:8001",
                "GET ",
            ] {
                assert_eq!(
                    pattern.matches(probe),
                    regex.is_match(probe),
                    "{re} on {probe:?}"
                );
            }
        }
        for re in [
            r"^local.host$",
            r"^a|b$",
            r"^a\d$",
            r"localhost",
            r"^a$b",
            r"^a\$",
        ] {
            let pattern = Pattern::parse(re).unwrap();
            assert!(
                matches!(pattern, Pattern::Regex(_)),
                "{re} is not a plain string"
            );
        }
    }

    #[test]
    fn hosts_lose_their_port_but_keep_brackets() {
        assert_eq!(host_without_port("[::1]:8001"), Some("[::1]"));
        assert_eq!(host_without_port("localhost:8001"), Some("localhost"));
        assert_eq!(host_without_port("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_without_port("[::1"), None);
    }
}
