//! HTTP/1.1 message framing: heads, bodies and the header rules of a proxy.
//!
//! Parsing (`httparse`) stays apart from the proxy's decisions: these modules read
//! and write bytes in the shape RFC 9112 asks for, and say what they found. They
//! never decide where a message goes.

pub mod body;
pub mod headers;
mod read;
pub mod refusal;
pub mod request;
pub mod response;
pub mod sink;

pub use read::{HeadClock, HeadPolicy, Located, Unlimited};

pub use headers::Headers;

/// The HTTP version of a message. kproxy speaks 1.1 upstream and 1.0 or 1.1 to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: u8) -> Version {
        match minor {
            0 => Version::Http10,
            _ => Version::Http11,
        }
    }
}

/// Why a message head could not be read. Each maps to a status for the client
/// (or a 502 when it was the API server's response).
#[derive(Debug)]
pub enum HeadError {
    Io(std::io::Error),
    /// The peer closed the connection in the middle of a head.
    Truncated,
    /// Request line over [`request::MAX_REQUEST_LINE`]: 414.
    LineTooLong,
    /// Head over the size limit or with too many header lines: 431.
    TooLarge,
    /// Not HTTP, or ambiguous framing: 400.
    Malformed(&'static str),
    /// A request head not complete within the header timeout: 408.
    TimedOut,
    /// A large head while kproxy has no memory to spare for one: 503.
    NoRoom,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Io(e) => write!(f, "read failed: {e}"),
            HeadError::Truncated => {
                f.write_str("connection closed in the middle of a message head")
            }
            HeadError::LineTooLong => f.write_str("request line too long"),
            HeadError::TooLarge => f.write_str("message head too large"),
            HeadError::Malformed(why) => write!(f, "malformed message: {why}"),
            HeadError::TimedOut => f.write_str("message head not complete in time"),
            HeadError::NoRoom => f.write_str(
                "kproxy is holding as many large requests as its memory allows; try again",
            ),
        }
    }
}

impl std::error::Error for HeadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for HeadError {
    fn from(e: std::io::Error) -> Self {
        HeadError::Io(e)
    }
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => HeadError::TooLarge,
            httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
            httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
            httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
            httparse::Error::Status => HeadError::Malformed("invalid status"),
            httparse::Error::Token => HeadError::Malformed("invalid token"),
            httparse::Error::Version => HeadError::Malformed("invalid HTTP version"),
        }
    }
}

/// Splits `host[:port]`, keeping the brackets of an IPv6 literal.
/// Returns `None` when the brackets are unbalanced.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        // A bare IPv6 literal without brackets has several colons: no port.
        Some((host, _)) if host.contains(':') => Some((authority, None)),
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("[::1]:8001"), Some(("[::1]", Some("8001"))));
        assert_eq!(split_host_port("[::1]"), Some(("[::1]", None)));
        assert_eq!(
            split_host_port("localhost:8001"),
            Some(("localhost", Some("8001")))
        );
        assert_eq!(split_host_port("localhost"), Some(("localhost", None)));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("[::1"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }
}
