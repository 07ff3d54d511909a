//! A client's request head: read, checked, and its body framing decided.

use std::io::BufRead;

use super::body::BodyKind;
use super::read::{check_line_endings, read_head, HeadClock};
use super::{HeadError, Headers, Version};

/// Longest request line accepted (414 beyond), as common servers allow.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head accepted (431 beyond).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines accepted (431 beyond).
pub const MAX_HEADERS: usize = 100;

#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent: origin-form (`/api?x`) or absolute-form.
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    /// Reads the next request head. `Ok(None)`: the client closed the connection
    /// cleanly between requests.
    pub fn read<R: BufRead>(
        reader: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Option<RequestHead>, HeadError> {
        buf.clear();
        Self::resume(reader, buf, None)
    }

    /// Goes on reading a head of which `buf` holds the start (after a read
    /// timeout), failing with [`HeadError::TimedOut`] once `clock` runs out.
    pub fn resume<R: BufRead>(
        reader: &mut R,
        buf: &mut Vec<u8>,
        clock: Option<&mut HeadClock>,
    ) -> Result<Option<RequestHead>, HeadError> {
        read_head(reader, buf, MAX_HEAD, parse, clock)
    }

    /// How the body is framed (RFC 9112 §6.3): a request with neither header has none.
    pub fn body_kind(&self) -> Result<BodyKind, HeadError> {
        match self.headers.framing()? {
            Some(BodyKind::Length(0)) | None => Ok(BodyKind::Empty),
            Some(kind) => Ok(kind),
        }
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.headers.has_token("Connection", "close"),
            Version::Http10 => self.headers.has_token("Connection", "keep-alive"),
        }
    }

    /// The path of the target, without query: `/api/v1/pods` of `/api/v1/pods?watch=1`
    /// or of `http://localhost:8001/api/v1/pods?watch=1`.
    pub fn path(&self) -> &str {
        let path_and_query = self.origin_form();
        path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path)
    }

    /// The query of the target, without its `?`, if it has one.
    pub fn query(&self) -> Option<&str> {
        self.origin_form().split_once('?').map(|(_, query)| query)
    }

    /// The target in origin-form (`/path?query`), as it is sent upstream.
    pub fn origin_form(&self) -> &str {
        match self.absolute_authority_and_rest() {
            Some((_, "")) => "/",
            Some((_, rest)) => rest,
            None => &self.target,
        }
    }

    /// The host named by an absolute-form target (`http://host:port/path`), which
    /// overrides the Host header (RFC 9112 §3.2.2).
    pub fn absolute_authority(&self) -> Option<&str> {
        self.absolute_authority_and_rest()
            .map(|(authority, _)| authority)
    }

    fn absolute_authority_and_rest(&self) -> Option<(&str, &str)> {
        let (scheme, rest) = self.target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        Some(rest.split_at(end))
    }
}

fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(_) | Err(_) if request_line_too_long(buf) => Err(HeadError::LineTooLong),
        Ok(httparse::Status::Complete(len)) => {
            check_line_endings(&buf[..len])?;
            let head = RequestHead {
                method: request.method.unwrap_or_default().to_string(),
                target: request.path.unwrap_or_default().to_string(),
                version: Version::from_minor(request.version.unwrap_or(1)),
                headers: Headers::from_httparse(request.headers),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The first line has run past [`MAX_REQUEST_LINE`] without ending.
fn request_line_too_long(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    line_end > MAX_REQUEST_LINE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut reader = std::io::BufReader::new(bytes);
        RequestHead::read(&mut reader, &mut Vec::new())
    }

    #[test]
    fn reads_one_head_and_leaves_the_body() {
        let bytes = b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET";
        let mut reader = std::io::BufReader::with_capacity(7, &bytes[..]);
        let head = RequestHead::read(&mut reader, &mut Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.method.as_str(), head.target.as_str()),
            ("POST", "/api")
        );
        assert!(matches!(head.body_kind().unwrap(), BodyKind::Length(4)));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        assert_eq!(rest, "bodyGET");
    }

    #[test]
    fn targets() {
        let head = |target: &str| RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: Version::Http11,
            headers: Headers::default(),
        };
        let abs = head("http://localhost:8001/api/v1?watch=1");
        assert_eq!(abs.absolute_authority(), Some("localhost:8001"));
        assert_eq!(abs.origin_form(), "/api/v1?watch=1");
        assert_eq!(abs.path(), "/api/v1");
        assert_eq!(head("http://localhost").origin_form(), "/");
        assert_eq!(head("/api?x=1").absolute_authority(), None);
        assert_eq!(head("/api?x=1").path(), "/api");
    }

    #[test]
    fn limits_and_errors() {
        assert!(read(b"").unwrap().is_none());
        assert!(matches!(
            read(b"GET / HTTP/1.1\r\nHo"),
            Err(HeadError::Truncated)
        ));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert!(matches!(read(long.as_bytes()), Err(HeadError::LineTooLong)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(read(big.as_bytes()), Err(HeadError::TooLarge)));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(read(many.as_bytes()), Err(HeadError::TooLarge)));
        assert!(matches!(
            read(b"\x16\x03\x01\x02\x00\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        for bare in [
            &b"GET / HTTP/1.1\nHost: x\n\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        ] {
            let result = read(bare);
            assert!(
                matches!(result, Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bare)
            );
        }
        let both = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(read(both).unwrap().unwrap().body_kind().is_err());
    }
}
