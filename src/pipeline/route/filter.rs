//! kubectl proxy's request filter: which paths, methods and hosts may pass.
//!
//! The rules are kubectl's (`FilterServer` in `proxy_server.go`): reject-paths first,
//! then reject-methods, then accept only if both accept-paths and accept-hosts match.
//! Each flag is a comma-separated list of unanchored regular expressions; an empty
//! list matches nothing. Where kproxy differs, it is stricter, as a proxy holding a
//! service account's power should be:
//! - the path is judged percent-decoded, and only once it is canonical (see
//!   [`crate::leaves::path`]), so `%65xec`, `%2F` and dot-segments cannot dodge `--reject-paths`;
//! - the host keeps an IPv6 literal's brackets, so the default `^\[::1\]$` matches
//!   `Host: [::1]:8001` (kubectl strips them and refuses it);
//! - a browser page's `Origin` must match `--accept-origins`.

use super::patterns::Patterns;

use crate::leaves::http::refusal::Reason;
use crate::leaves::http::split_host_port;
use crate::leaves::path::CanonicalPath;

/// kubectl proxy's defaults for its filter, copied from `kubectl proxy --help`
/// (v1.32).
pub const DEFAULT_ACCEPT_HOSTS: &str = r"^localhost$,^127\.0\.0\.1$,^\[::1\]$";
pub const DEFAULT_ACCEPT_PATHS: &str = "^.*";
pub const DEFAULT_REJECT_PATHS: &str = "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach";
pub const DEFAULT_REJECT_METHODS: &str = "^$";
/// kproxy's own: pages served from this machine's loopback names, any port.
/// Requests without browser headers (curl, kubectl, client libraries) always pass.
pub const DEFAULT_ACCEPT_ORIGINS: &str = r"^https?://localhost(:[0-9]+)?$,^https?://127\.0\.0\.1(:[0-9]+)?$,^https?://\[::1\](:[0-9]+)?$";

pub struct Filter {
    pub accept_hosts: Patterns,
    pub accept_paths: Patterns,
    pub reject_paths: Patterns,
    pub reject_methods: Patterns,
    /// Browser origins let through (kproxy's own rule, see [`Filter::admits_client`]).
    pub accept_origins: Patterns,
}

/// What a browser says of where a request comes from; curl, kubectl and
/// client libraries say none of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Browser<'a> {
    /// `Origin`: the page that made the request, on CORS and WebSocket requests.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`: `same-origin`, `same-site`, `cross-site` or `none` (a
    /// typed URL or a bookmark), sent by browsers on every request, `<img>`
    /// and links included, which carry no `Origin`.
    pub fetch_site: Option<&'a str>,
    /// `Referer`: the page, for a same-site request without an `Origin`.
    pub referer: Option<&'a str>,
}

/// Why a request may not pass: kubectl's 403 `Forbidden`, and which rule said so.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    RejectedPath,
    RejectedMethod,
    PathNotAccepted,
    HostNotAccepted,
    OriginNotAccepted,
    /// A page on another site, with no `Origin` (or `Referer`, same-site)
    /// that `--accept-origins` accepts: an `<img>`, a link, a form.
    OtherSite,
}

impl Refusal {
    /// The reason counted and logged for this refusal.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::RejectedPath | Refusal::PathNotAccepted => Reason::FilterPath,
            Refusal::RejectedMethod => Reason::FilterMethod,
            Refusal::HostNotAccepted => Reason::FilterHost,
            Refusal::OriginNotAccepted | Refusal::OtherSite => Reason::FilterOrigin,
        }
    }
}

impl Filter {
    /// What refused a request, with the flag and its current value, and how to
    /// let such requests through. `value` is what the rule judged: the path,
    /// method, host or origin.
    pub fn explain(&self, refusal: &Refusal, value: &str) -> String {
        if *refusal == Refusal::OtherSite {
            return format!(
                "a page on another site made this request (Sec-Fetch-Site: {value}) and its \
                 origin does not match --accept-origins={:?}; open the URL directly (type it, \
                 or use a bookmark), or add the page's origin to --accept-origins",
                self.accept_origins.source()
            );
        }
        let (what, matched, flag, patterns) = match refusal {
            Refusal::RejectedPath => ("path", true, "--reject-paths", &self.reject_paths),
            Refusal::PathNotAccepted => ("path", false, "--accept-paths", &self.accept_paths),
            Refusal::RejectedMethod => ("method", true, "--reject-methods", &self.reject_methods),
            Refusal::HostNotAccepted => ("Host", false, "--accept-hosts", &self.accept_hosts),
            Refusal::OriginNotAccepted | Refusal::OtherSite => {
                ("Origin", false, "--accept-origins", &self.accept_origins)
            }
        };
        let verb = if matched { "matches" } else { "does not match" };
        format!(
            "the {what} {value:?} {verb} {flag}={:?}; to allow it, change {flag}",
            patterns.source()
        )
    }

    /// kubectl's order: reject-paths, then reject-methods, then accept only if
    /// accept-paths, the host (and, kproxy's addition, the origin) all match.
    /// `path` is the canonical path after the `--api-prefix` was stripped; `host`
    /// is the host without its port; `origin` the `Origin` header, if any.
    pub fn check(
        &self,
        method: &str,
        path: &CanonicalPath<'_>,
        host: &str,
        browser: &Browser,
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
        self.admits_client(host, browser)
    }

    /// Whether the request comes from a client this proxy serves: its Host is
    /// accepted (kubectl's defence against DNS rebinding) and, if it comes from
    /// a browser, from a page this proxy serves. Browsers apply no same-origin
    /// rule to WebSocket handshakes, or to what a page can send without reading
    /// the answer (`<img src>`, links, forms): without this any page a person
    /// opens could `new WebSocket("ws://127.0.0.1:8001/...")`, or run a GET
    /// with a side effect, with the token added. So:
    /// - an `Origin` must match `--accept-origins`;
    /// - a request a page on another site made (`Sec-Fetch-Site: cross-site`)
    ///   passes only with an `Origin` that matched (a page on an accepted
    ///   origin whose host differs, `localhost` calling `127.0.0.1`, say); one
    ///   from the same site (`same-site`: another port) also with a `Referer`
    ///   whose origin matches;
    /// - typed URLs and bookmarks (`none`), the page's own origin
    ///   (`same-origin`), and clients that send none of these pass.
    pub fn admits_client(&self, host: &str, browser: &Browser) -> Result<(), Refusal> {
        if !self.accept_hosts.matches(host) {
            return Err(Refusal::HostNotAccepted);
        }
        if let Some(origin) = browser.origin {
            return match self.accept_origins.matches(origin) {
                true => Ok(()),
                false => Err(Refusal::OriginNotAccepted),
            };
        }
        let referer = || browser.referer.and_then(origin_of);
        match browser.fetch_site {
            Some("cross-site") => Err(Refusal::OtherSite),
            Some("same-site") if !referer().is_some_and(|o| self.accept_origins.matches(o)) => {
                Err(Refusal::OtherSite)
            }
            _ => Ok(()),
        }
    }
}

/// `scheme://host[:port]` of a URL (a `Referer`), as an `Origin` spells it.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// The host to match against `--accept-hosts`: the authority without its port,
/// keeping an IPv6 literal's brackets. `None` for an authority that is not
/// well-formed (unbalanced brackets).
pub fn host_without_port(authority: &str) -> Option<&str> {
    split_host_port(authority).map(|(host, _)| host)
}

/// kubectl's defaults, for tests (the flags build the real one).
#[cfg(test)]
impl Filter {
    #[allow(clippy::unwrap_used, reason = "the defaults parse: tested below")]
    pub(crate) fn kubectl_defaults() -> Filter {
        Filter {
            accept_hosts: Patterns::parse(DEFAULT_ACCEPT_HOSTS).unwrap(),
            accept_paths: Patterns::parse(DEFAULT_ACCEPT_PATHS).unwrap(),
            reject_paths: Patterns::parse(DEFAULT_REJECT_PATHS).unwrap(),
            reject_methods: Patterns::parse(DEFAULT_REJECT_METHODS).unwrap(),
            accept_origins: Patterns::parse(DEFAULT_ACCEPT_ORIGINS).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaves::path::canonical;

    fn default_filter() -> Filter {
        Filter::kubectl_defaults()
    }

    fn check(f: &Filter, method: &str, path: &str, host: &str) -> Result<(), Refusal> {
        f.check(method, &canonical(path).unwrap(), host, &Browser::default())
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
            let browser = Browser {
                origin,
                ..Browser::default()
            };
            assert_eq!(
                f.check("GET", &path, "localhost", &browser),
                want,
                "{origin:?}"
            );
        }
    }

    #[test]
    fn pages_on_other_sites_are_refused_without_an_accepted_origin() {
        let f = default_filter();
        let path = canonical("/api/v1/namespaces/default/services/x/proxy/reset").unwrap();
        let page = "http://localhost:3000";
        for (origin, site, referer, want) in [
            (None, None, None, Ok(())),
            (None, Some("none"), None, Ok(())),
            (None, Some("same-origin"), None, Ok(())),
            (None, Some("cross-site"), None, Err(Refusal::OtherSite)),
            (
                None,
                Some("cross-site"),
                Some(page),
                Err(Refusal::OtherSite),
            ),
            (Some(page), Some("cross-site"), None, Ok(())),
            (
                Some("https://evil.example"),
                Some("cross-site"),
                None,
                Err(Refusal::OriginNotAccepted),
            ),
            (None, Some("same-site"), None, Err(Refusal::OtherSite)),
            (
                None,
                Some("same-site"),
                Some("http://localhost:3000/app?x=1"),
                Ok(()),
            ),
            (
                None,
                Some("same-site"),
                Some("http://localhost.evil.example/"),
                Err(Refusal::OtherSite),
            ),
            (Some(page), Some("same-site"), None, Ok(())),
        ] {
            let browser = Browser {
                origin,
                fetch_site: site,
                referer,
            };
            assert_eq!(
                f.check("GET", &path, "localhost", &browser),
                want,
                "{browser:?}"
            );
        }
        assert_eq!(
            origin_of("http://localhost:3000/a/b"),
            Some("http://localhost:3000")
        );
        assert_eq!(origin_of("https://[::1]?q"), Some("https://[::1]"));
        assert_eq!(origin_of("not a url"), None);
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
    fn hosts_lose_their_port_but_keep_brackets() {
        assert_eq!(host_without_port("[::1]:8001"), Some("[::1]"));
        assert_eq!(host_without_port("localhost:8001"), Some("localhost"));
        assert_eq!(host_without_port("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_without_port("[::1"), None);
    }
}
