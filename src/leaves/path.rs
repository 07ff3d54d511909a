//! The request path, as the filter judges it and the API server receives it.
//!
//! The rule: **what the filter judged is exactly what is forwarded.** A path is
//! forwarded with the client's own escaping, and judged percent-decoded (a `%2F`
//! splits segments, so `p%2Fexec` is judged as `p/exec`, which is how the API
//! server's router reads it). That is only sound when decoding is all that
//! separates the two: dot-segments and empty segments are resolved by some
//! handlers upstream (the `nodes/…/proxy/{path}` family cleans its own tail) and
//! not by others, so a path holding one (`..`, `.`, `//`, or any spelling that
//! decodes to one: `%2e%2e`, `.%2E`, `a%2F..%2Fb`) could be judged as one path
//! and routed as another. Such a path is never forwarded: the client gets
//! kubectl's `301` to the cleaned path, whose next request is judged clean.

use std::borrow::Cow;
use std::fmt;

/// A path the filter may judge: percent-decoded, with no `.`, `..` or empty
/// segment (a trailing slash is kept: `/api/` and `/api` differ upstream).
/// Borrowed from the request when it holds no escape (the usual case).
#[derive(Debug, PartialEq, Eq)]
pub struct CanonicalPath<'a>(Cow<'a, str>);

impl CanonicalPath<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a path cannot be judged as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// A bad `%` escape or a control character: 400.
    Undecodable,
    /// Dot-segments or empty segments: 301 to this cleaned, escaped path.
    NotCanonical(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Undecodable => {
                f.write_str("bad path: a bad %-escape or a control character")
            }
            PathError::NotCanonical(to) => write!(f, "non-canonical path; moved to {to}"),
        }
    }
}

impl std::error::Error for PathError {}

/// Judges a raw path (the request-target without its query, starting with `/`).
pub fn canonical(raw: &str) -> Result<CanonicalPath<'_>, PathError> {
    let decoded: Cow<'_, [u8]> = match raw.contains('%') {
        false if raw.bytes().any(|b| b.is_ascii_control()) => return Err(PathError::Undecodable),
        false => Cow::Borrowed(raw.as_bytes()),
        true => Cow::Owned(percent_decode(raw).ok_or(PathError::Undecodable)?),
    };
    if !is_clean(&decoded) {
        return Err(PathError::NotCanonical(escape(&clean(&decoded))));
    }
    Ok(CanonicalPath(match decoded {
        Cow::Borrowed(_) => Cow::Borrowed(raw),
        // Not UTF-8 after decoding: judged in a lossy form, which still shows every
        // ASCII segment name (`exec`, `attach`) exactly as the API server routes it.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }))
}

/// `/` followed by segments none of which is empty, `.` or `..` (the last may be
/// empty: a trailing slash).
fn is_clean(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if matches!(segment, b"." | b"..") || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// Go's `path.Clean` with the trailing slash kept, as the `ServeMux` in front of
/// kubectl's proxy cleans a path before redirecting: `.` and empty segments go,
/// `..` removes the segment before it, never above the root.
fn clean(path: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() || (path.ends_with(b"/") && !segments.is_empty()) {
        out.push(b'/');
    }
    out
}

/// Escapes a decoded path for a `Location` header: every byte outside RFC
/// 3986's `pchar` set and `/` becomes `%XX`, so the result decodes back to
/// exactly `path` (and `%` itself is never left bare).
fn escape(path: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Decodes `%XX` escapes. `None` for a bad escape, or for a control character,
/// which has no place in a Kubernetes path: a decoded LF would let `.*` in a
/// reject rule stop short of `exec` (found by fuzzing: regex `.` does not match
/// a newline, in Go's RE2 or in regex-lite).
pub(crate) fn percent_decode(raw: &str) -> Option<Vec<u8>> {
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
    if out.iter().any(|b| b.is_ascii_control()) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(raw: &str) -> Result<String, PathError> {
        canonical(raw).map(|p| p.0.into_owned())
    }

    fn moved(to: &str) -> Result<String, PathError> {
        Err(PathError::NotCanonical(to.into()))
    }

    #[test]
    fn canonical_paths_are_judged_decoded() {
        for (raw, want) in [
            ("/", "/"),
            ("/api", "/api"),
            ("/api/", "/api/"),
            ("/api/v1/pods/p%2Fexec", "/api/v1/pods/p/exec"),
            ("/api/v1/pods/p/%65xec", "/api/v1/pods/p/exec"),
            ("/a/.b/c./...", "/a/.b/c./..."),
            ("/a%20b", "/a b"),
        ] {
            assert_eq!(judged(raw), Ok(want.into()), "{raw}");
        }
    }

    #[test]
    fn every_spelling_of_a_dot_or_empty_segment_is_moved() {
        for (raw, to) in [
            ("//api//v1", "/api/v1"),
            ("/api/./v1/../v1/pods", "/api/v1/pods"),
            ("/../../api", "/api"),
            ("/api/v1/pods/x/%2e%2e/p/exec", "/api/v1/pods/p/exec"),
            ("/api/v1/pods/x/%2E%2e/p/exec", "/api/v1/pods/p/exec"),
            ("/api/v1/pods/x/.%2e/p/exec", "/api/v1/pods/p/exec"),
            ("/api/v1/pods/x/%2e/exec", "/api/v1/pods/x/exec"),
            ("/api/v1/pods/x%2F..%2Fp/exec", "/api/v1/pods/p/exec"),
            ("/api/v1/pods/x%2f%2fexec", "/api/v1/pods/x/exec"),
            ("/api/v1/nodes/n/proxy/..", "/api/v1/nodes/n"),
            ("/api/v1/nodes/n/proxy/../", "/api/v1/nodes/n/"),
            ("/api/v1/pods//", "/api/v1/pods/"),
            ("/a/./", "/a/"),
            ("/.", "/"),
            ("/%2e%2e", "/"),
            ("/a b/../c%25", "/c%25"),
            ("/x/../%C3%A9", "/%C3%A9"),
        ] {
            assert_eq!(judged(raw), moved(to), "{raw}");
            assert!(canonical(to).is_ok(), "{raw} -> {to} is clean again");
        }
    }

    #[test]
    fn bad_escapes_and_control_characters_are_undecodable() {
        for raw in [
            "/a%zz", "/a%2", "/a%00b", "/a%0Ab", "/a%0db", "/a%7Fb", "/a%09b", "/a%",
        ] {
            assert_eq!(judged(raw), Err(PathError::Undecodable), "{raw}");
        }
    }
}
