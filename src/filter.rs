//! kubectl proxy's request filter: which paths, methods and hosts may pass.
//!
//! The rules are kubectl's (`FilterServer` in `proxy_server.go`): reject-paths first,
//! then reject-methods, then accept only if both accept-paths and accept-hosts match.
//! Each flag is a comma-separated list of unanchored regular expressions; an empty
//! list matches nothing. Two places are stricter than kubectl, as a proxy holding a
//! service account's power should be:
//! - the path is matched after percent-decoding *and* removing `.`, `..` and empty
//!   segments, so `//`, `/./`, `/../`, `%65xec` and `%2F` cannot dodge `--reject-paths`
//!   (kubectl relies on Go's ServeMux redirect for the dot-segments);
//! - the host keeps an IPv6 literal's brackets, so the default `^\[::1\]$` matches
//!   `Host: [::1]:8001` (kubectl strips them and refuses it).

use regex_lite::Regex;

use crate::config::split_host_port;

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
}

/// Why a request may not pass. Each maps to one status code.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// kubectl's 403 `Forbidden`.
    Forbidden,
    /// A path that cannot be decoded (bad `%` escape, or a control character): 400.
    BadPath,
}

impl Filter {
    /// `path` is the raw path (no query) as the client sent it, after the
    /// `--api-prefix` was stripped; `host` is the host without its port.
    pub fn check(&self, method: &str, path: &str, host: &str) -> Result<(), Refusal> {
        let path = normalize_path(path).ok_or(Refusal::BadPath)?;
        if self.reject_paths.matches(&path) || self.reject_methods.matches(method) {
            return Err(Refusal::Forbidden);
        }
        if self.accept_paths.matches(&path) && self.accept_hosts.matches(host) {
            return Ok(());
        }
        Err(Refusal::Forbidden)
    }
}

/// The host to match against `--accept-hosts`: the authority without its port,
/// keeping an IPv6 literal's brackets. `None` for an authority that is not
/// well-formed (unbalanced brackets).
pub fn host_without_port(authority: &str) -> Option<&str> {
    split_host_port(authority).map(|(host, _)| host)
}

/// Percent-decodes a path and resolves it the way a server would: `.` and empty
/// segments go, `..` removes the segment before it (never above the root).
/// A decoded `/` (from `%2F`) splits segments too, so it cannot hide `exec`.
/// Returns `None` for a bad escape or a decoded NUL.
pub fn normalize_path(raw: &str) -> Option<String> {
    let decoded = percent_decode(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    // Keep a trailing slash: `/api/` and `/api` are different requests to the API server.
    if path.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        path.push('/');
    }
    Some(path)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // A control character has no place in a Kubernetes path, and a decoded LF
    // would let `.*` in a reject rule stop short of `exec` (found by fuzzing:
    // regex `.` does not match a newline, in Go's RE2 or in regex-lite).
    if out.iter().any(|b| b.is_ascii_control()) {
        return None;
    }
    // Not UTF-8 after decoding: match on a lossy form, which still shows every ASCII
    // segment name (`exec`, `attach`) exactly as the API server would route it.
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn default_filter() -> Filter {
        Filter {
            accept_hosts: Patterns::parse(cli::DEFAULT_ACCEPT_HOSTS).unwrap(),
            accept_paths: Patterns::parse(cli::DEFAULT_ACCEPT_PATHS).unwrap(),
            reject_paths: Patterns::parse(cli::DEFAULT_REJECT_PATHS).unwrap(),
            reject_methods: Patterns::parse(cli::DEFAULT_REJECT_METHODS).unwrap(),
        }
    }

    #[test]
    fn normalizes_paths() {
        for (raw, want) in [
            ("/", Some("/")),
            ("", Some("/")),
            ("/api", Some("/api")),
            ("/api/", Some("/api/")),
            ("//api//v1", Some("/api/v1")),
            ("/api/./v1/../v1/pods", Some("/api/v1/pods")),
            ("/../../api", Some("/api")),
            ("/api/v1/pods/p%2Fexec", Some("/api/v1/pods/p/exec")),
            ("/api/v1/pods/p/%65xec", Some("/api/v1/pods/p/exec")),
            ("/api/v1/pods/x/%2e%2e/p/exec", Some("/api/v1/pods/p/exec")),
            ("/a%zz", None),
            ("/a%2", None),
            ("/a%00b", None),
            ("/a%0Ab", None),
            ("/a%0db", None),
            ("/a%7Fb", None),
            ("/a%09b", None),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn kubectl_order_and_defaults() {
        let f = default_filter();
        let exec = "/api/v1/namespaces/default/pods/p/exec";
        assert_eq!(f.check("GET", "/api/v1/pods", "localhost"), Ok(()));
        assert_eq!(f.check("POST", exec, "localhost"), Err(Refusal::Forbidden));
        assert_eq!(
            f.check(
                "GET",
                "/api/v1/namespaces/default/pods/p/portforward",
                "localhost"
            ),
            Ok(())
        );
        assert_eq!(
            f.check("GET", "/api", "evil.example"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(f.check("GET", "/api", "[::1]"), Ok(()));
        assert_eq!(f.check("GET", "/api", "LOCALHOST"), Err(Refusal::Forbidden));
        assert_eq!(f.check("GET", "/a%zz", "localhost"), Err(Refusal::BadPath));
    }

    #[test]
    fn bypass_attempts_are_caught() {
        let f = default_filter();
        for path in [
            "/api/v1/namespaces/default/pods/p//exec",
            "/api/v1/namespaces/default/pods/p/./exec",
            "/api/v1/namespaces/default/pods/x/../p/exec",
            "/api/v1/namespaces/default/pods/p/%65xec",
            "/api/v1/namespaces/default/pods/p%2Fexec",
            "//api/v1/namespaces/default/pods/p/attach",
            "/api/v1/namespaces/default/pods/x/%2e%2e/p/attach",
        ] {
            assert_eq!(
                f.check("POST", path, "localhost"),
                Err(Refusal::Forbidden),
                "{path}"
            );
        }
        // Found by fuzzing (fuzz/fuzz_targets/path_filter.rs): with a newline in the
        // path, `.*` in `^/api/.*/pods/.*/exec` stopped short and exec got through.
        for path in [
            "//api/./vv1s[..\nf..ault/pods/@pp%2Fexec",
            "/api/v1%0A/namespaces/default/pods/p/exec",
            "/api/v1/namespaces/default/pods/p%0D%0A/exec",
        ] {
            assert_eq!(
                f.check("POST", path, "localhost"),
                Err(Refusal::BadPath),
                "{path:?}"
            );
        }
    }

    #[test]
    fn empty_list_matches_nothing_and_methods_are_unanchored() {
        let mut f = default_filter();
        f.accept_hosts = Patterns::parse("").unwrap();
        assert_eq!(f.check("GET", "/api", "localhost"), Err(Refusal::Forbidden));
        let mut f = default_filter();
        f.reject_methods = Patterns::parse("POST").unwrap();
        assert_eq!(
            f.check("DELETEPOST", "/api", "localhost"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(f.check("post", "/api", "localhost"), Ok(()));
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
