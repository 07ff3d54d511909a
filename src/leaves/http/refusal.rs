//! Why kproxy answered a request itself instead of the API server: one
//! [`Reason`] per rule, named the same in the `Status` body the client gets, in
//! the log line and in `kproxy_refusals_total{reason=...}` (docs/operating.md, "Why did my
//! request fail?").

use crate::leaves::http::response::LocalResponse;
use crate::leaves::json;

/// A rule that made kproxy answer a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `--reject-paths` matched, or `--accept-paths` did not.
    FilterPath,
    /// `--reject-methods` matched.
    FilterMethod,
    /// `--accept-hosts` did not match the Host.
    FilterHost,
    /// `--accept-origins` did not match a browser's Origin.
    FilterOrigin,
    /// A path with dot- or empty segments: 301 to its cleaned form, never forwarded.
    NonCanonicalPath,
    /// Not HTTP kproxy can frame safely (400).
    BadRequest,
    /// Request line over its limit (414).
    UriTooLong,
    /// Request head over its limit (431).
    HeaderTooLarge,
    /// Request head or body slower than `--header-timeout` (408).
    RequestTimeout,
    /// No memory to spare for a large head or body just now (503).
    MemoryBudget,
    /// `--max-connections` clients were being served (503).
    ConnectionCap,
    /// `--max-upstream-connections` stayed busy (503).
    UpstreamBusy,
    /// The API server could not be reached (502).
    UpstreamConnect,
    /// The TLS handshake with the API server failed (502).
    UpstreamTls,
    /// Connecting or the handshake timed out (504).
    UpstreamTimeout,
    /// The API server's connection failed during the exchange (502).
    UpstreamFailed,
    /// The API server's answer was not HTTP kproxy can frame (502).
    UpstreamBadResponse,
    /// An exec credential plugin could not give a token (500).
    Credentials,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::FilterPath,
        Reason::FilterMethod,
        Reason::FilterHost,
        Reason::FilterOrigin,
        Reason::NonCanonicalPath,
        Reason::BadRequest,
        Reason::UriTooLong,
        Reason::HeaderTooLarge,
        Reason::RequestTimeout,
        Reason::MemoryBudget,
        Reason::ConnectionCap,
        Reason::UpstreamBusy,
        Reason::UpstreamConnect,
        Reason::UpstreamTls,
        Reason::UpstreamTimeout,
        Reason::UpstreamFailed,
        Reason::UpstreamBadResponse,
        Reason::Credentials,
    ];

    /// The name in metrics, logs and `Status` bodies.
    pub fn label(self) -> &'static str {
        match self {
            Reason::FilterPath => "filter_path",
            Reason::FilterMethod => "filter_method",
            Reason::FilterHost => "filter_host",
            Reason::FilterOrigin => "filter_origin",
            Reason::NonCanonicalPath => "non_canonical_path",
            Reason::BadRequest => "bad_request",
            Reason::UriTooLong => "uri_too_long",
            Reason::HeaderTooLarge => "header_too_large",
            Reason::RequestTimeout => "request_timeout",
            Reason::MemoryBudget => "memory_budget",
            Reason::ConnectionCap => "connection_cap",
            Reason::UpstreamBusy => "upstream_busy",
            Reason::UpstreamConnect => "upstream_connect",
            Reason::UpstreamTls => "upstream_tls",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamFailed => "upstream_failed",
            Reason::UpstreamBadResponse => "upstream_bad_response",
            Reason::Credentials => "credentials",
        }
    }

    /// The HTTP status and the Kubernetes `StatusReason` (what kubectl prints
    /// in "Error from server (Forbidden)") for this refusal.
    fn status(self) -> (u16, &'static str) {
        match self {
            Reason::FilterPath
            | Reason::FilterMethod
            | Reason::FilterHost
            | Reason::FilterOrigin => (403, "Forbidden"),
            Reason::NonCanonicalPath => (301, "MovedPermanently"),
            Reason::BadRequest => (400, "BadRequest"),
            Reason::UriTooLong => (414, "RequestURITooLong"),
            Reason::HeaderTooLarge => (431, "RequestHeaderFieldsTooLarge"),
            Reason::RequestTimeout => (408, "Timeout"),
            Reason::MemoryBudget | Reason::ConnectionCap | Reason::UpstreamBusy => {
                (503, "ServiceUnavailable")
            }
            Reason::UpstreamTimeout => (504, "Timeout"),
            Reason::UpstreamConnect
            | Reason::UpstreamTls
            | Reason::UpstreamFailed
            | Reason::UpstreamBadResponse => (502, "BadGateway"),
            Reason::Credentials => (500, "InternalError"),
        }
    }

    /// The answer: a Kubernetes `Status` whose message says what refused the
    /// request and how to change that, with the reason also as its one cause
    /// (`details.causes[0].reason`) for programs. A 503 asks to try again in a second.
    pub fn answer(self, message: &str) -> LocalResponse {
        let (code, status_reason) = self.status();
        let mut response = LocalResponse::json(
            code,
            format!(
                "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\
                 \"message\":{},\"reason\":\"{status_reason}\",\
                 \"details\":{{\"causes\":[{{\"reason\":\"{}\"}}]}},\"code\":{code}}}\n",
                json::string(&format!("kproxy: {message} ({})", self.label())),
                self.label()
            ),
        );
        if code == 503 {
            response.extra.push_str("Retry-After: 1\r\n");
        }
        response.reason = Some(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_status_objects_naming_the_rule() {
        let r = Reason::FilterMethod.answer("POST matches --reject-methods=\"^POST$\"");
        assert_eq!((r.code, r.reason), (403, Some(Reason::FilterMethod)));
        assert_eq!(
            r.body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
             \"message\":\"kproxy: POST matches --reject-methods=\\\"^POST$\\\" (filter_method)\",\
             \"reason\":\"Forbidden\",\"details\":{\"causes\":[{\"reason\":\"filter_method\"}]},\
             \"code\":403}\n"
        );
        assert!(Reason::ConnectionCap
            .answer("x")
            .extra
            .contains("Retry-After: 1"));
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(labels.len(), unique.len());
    }
}
