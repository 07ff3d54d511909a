//! kubectl's pattern lists: `--accept-paths=^/api,^/version` is a comma-separated
//! list of unanchored regular expressions, and a value matches the list if it
//! matches any of them. An empty list matches nothing.
//!
//! The defaults are plain strings in regex clothing (`^localhost$`, `^.*`);
//! those are matched without the regex engine, as the regex would match them.

use regex_lite::Regex;

/// A comma-separated list of regular expressions, as kubectl's flags take them.
#[derive(Debug)]
pub struct Patterns {
    list: Vec<Pattern>,
    /// As given, for the refusal message that names the flag and its value.
    source: String,
}

/// One expression. The shapes kubectl's defaults (and most users' rules) take
/// are matched without the regex engine, whose backtracking-free matcher cost a
/// tenth of a request's CPU time in the benchmark: plain strings joined by `.*`,
/// anchored or not (`^.*`, `^localhost$`, `^/api/.*/pods/.*/exec`). Any other
/// shape, and any value holding a newline (which `.` does not match), goes to
/// the regex.
#[derive(Debug)]
enum Pattern {
    Literals(Literals, Regex),
    Regex(Regex),
}

/// `[^]` part `.*` part `.*` ... `[$]`, each part a plain string; a `.*` at
/// either end is kept as that end being unanchored.
#[derive(Debug, PartialEq, Eq)]
struct Literals {
    start: bool,
    end: bool,
    /// Never empty strings; no parts at all means "anything".
    parts: Vec<String>,
}

/// A regular expression that does not compile: which, and why.
#[derive(Debug)]
pub struct PatternError {
    pub pattern: String,
    pub source: regex_lite::Error,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad regular expression {:?}: {}",
            self.pattern, self.source
        )
    }
}

impl std::error::Error for PatternError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Patterns {
    pub fn parse(list: &str) -> Result<Patterns, PatternError> {
        let patterns = match list.is_empty() {
            true => Vec::new(),
            false => list
                .split(',')
                .map(Pattern::parse)
                .collect::<Result<_, _>>()?,
        };
        Ok(Patterns {
            list: patterns,
            source: list.to_string(),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.list.iter().any(|p| p.matches(value))
    }

    /// The list as given on the command line.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Pattern {
    fn parse(re: &str) -> Result<Pattern, PatternError> {
        // Compiled in every case, so a bad expression is refused whatever its shape.
        let regex = Regex::new(re).map_err(|source| PatternError {
            pattern: re.to_string(),
            source,
        })?;
        Ok(match Literals::parse(re) {
            Some(literals) => Pattern::Literals(literals, regex),
            None => Pattern::Regex(regex),
        })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Literals(literals, _) if !value.contains('\n') => literals.matches(value),
            Pattern::Literals(_, re) | Pattern::Regex(re) => re.is_match(value),
        }
    }
}

impl Literals {
    /// The parts of `re`, when it is plain strings (escaped punctuation allowed)
    /// joined by `.*`, with an optional `^` and `$`; `None` for any other shape.
    fn parse(re: &str) -> Option<Literals> {
        let (mut start, re) = match re.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, re),
        };
        let mut parts = vec![String::new()];
        let mut end = false;
        let mut chars = re.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // Escaped punctuation is itself, but for `\<` and `\>`: word boundaries.
                '\\' => match chars.next()? {
                    e if e.is_ascii_punctuation() && !matches!(e, '<' | '>') => {
                        parts.last_mut()?.push(e)
                    }
                    _ => return None,
                },
                '.' if chars.peek() == Some(&'*') => {
                    chars.next();
                    parts.push(String::new());
                }
                '$' if chars.peek().is_none() => end = true,
                '.' | '*' | '+' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                    return None
                }
                c => parts.last_mut()?.push(c),
            }
        }
        if parts.len() > 1 {
            // `^.*a` is `a` anywhere; `a.*$` likewise.
            start &= !parts[0].is_empty();
            end &= !parts[parts.len() - 1].is_empty();
            parts.retain(|p| !p.is_empty());
        } else if parts[0].is_empty() && !(start && end) {
            // ``, `^` or `$`: anything (but `^$` is the empty string).
            parts.clear();
        }
        Some(Literals { start, end, parts })
    }

    /// Whether the parts occur in order, each at its earliest place after the
    /// one before (where a `.*` between them can always put it), with the first
    /// at the start and the last at the end where anchored.
    fn matches(&self, value: &str) -> bool {
        let mut parts = self.parts.as_slice();
        if parts.len() == 1 && self.start && self.end {
            return value == parts[0];
        }
        let (mut from, mut to) = (0, value.len());
        if self.start {
            let Some((first, rest)) = parts.split_first() else {
                return true;
            };
            if !value.starts_with(first.as_str()) {
                return false;
            }
            from = first.len();
            parts = rest;
        }
        if self.end {
            let Some((last, rest)) = parts.split_last() else {
                return true;
            };
            if !value[from..].ends_with(last.as_str()) {
                return false;
            }
            to = value.len() - last.len();
            parts = rest;
        }
        for part in parts {
            match value[from..to].find(part.as_str()) {
                Some(at) => from += at + part.len(),
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_shapes_match_as_the_regex_would() {
        let patterns = [
            r"^localhost$",
            r"^127\.0\.0\.1$",
            r"^\[::1\]$",
            r"^$",
            r"^.*",
            r".*",
            r"^.*$",
            r"",
            r"^",
            r"$",
            r"^GET$",
            r"POST",
            r"^/api/.*/pods/.*/exec",
            r"^/api/.*/pods/.*/attach",
            r"^/api/v1/namespaces/default/",
            r"^/api/.*/exec$",
            r"exec$",
            r".*exec.*",
            r"a.*b.*c",
            r"^a.*a$",
            r"^aa.*aa$",
            r"^.*x.*$",
            r"^\.\*$",
            r"^https?://localhost(:[0-9]+)?$",
            r"^a\d$",
            r"^local.host$",
            r"^a|b$",
            r"pods\.",
            r"^/é.*ü$",
            r"\<a",
            r"a\>",
            r"\-\#\&\~",
        ];
        let probes = [
            "",
            "a",
            "aa",
            "aaa",
            "aaaa",
            "abc",
            "axbyc",
            "cba",
            "localhost",
            "localhostx",
            "127.0.0.1",
            "127x0x0x1",
            "[::1]",
            "[::1]:8001",
            "GET",
            "GET ",
            "XPOST",
            ".*",
            "x",
            "a1",
            "/api/v1/namespaces/default/pods/p/exec",
            "/api//pods//exec",
            "/api/pods/exec",
            "/api/v1/pods/p/exec/more",
            "/api/v1/namespaces/default/pods/p/attach",
            "/api/v1/namespaces/default",
            "/api/v1/namespaces/default/",
            "/apis/v1/pods/p/exec",
            "http://localhost:8001",
            "pods.",
            "/éxü",
            "/é",
            "a\nb",
            "ba",
            "a b",
            "-#&~",
            "/api/v1\n/pods/p/exec",
        ];
        for re in patterns {
            let pattern = Pattern::parse(re).unwrap();
            let regex = Regex::new(re).unwrap();
            for probe in probes {
                assert_eq!(
                    pattern.matches(probe),
                    regex.is_match(probe),
                    "{re} on {probe:?}"
                );
            }
        }
        for re in [r"^localhost$", r"^.*", r"^/api/.*/pods/.*/exec", r"exec$"] {
            assert!(
                matches!(Pattern::parse(re).unwrap(), Pattern::Literals(..)),
                "{re} should not need the regex engine"
            );
        }
        for re in [r"^local.host$", r"^a|b$", r"^a\d$", r"^a$b", r"(?i)a"] {
            assert!(
                matches!(Pattern::parse(re).unwrap(), Pattern::Regex(_)),
                "{re} is not plain strings"
            );
        }
    }
}
