//! A client's request head: read, checked, and its body framing decided.

use std::io::BufRead;

use super::body::BodyKind;
use super::read::{check_line_endings, read_head, read_head_into, HeadPolicy, Located};
use super::{HeadError, Headers, Version};

/// Longest request line accepted (414 beyond), as common servers allow.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head accepted (431 beyond).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines accepted (431 beyond).
pub const MAX_HEADERS: usize = 100;

/// A request head, borrowed from the buffer it was read into.
#[derive(Debug)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    /// The request-target as sent: origin-form (`/api?x`) or absolute-form.
    pub target: &'b str,
    pub version: Version,
    pub headers: Headers<'b>,
}

impl<'b> RequestHead<'b> {
    /// Reads the next request head into `buf` and returns its length.
    /// `Ok(None)`: the client closed the connection cleanly between requests.
    /// Parse it with [`RequestHead::parse`].
    pub fn read<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> Result<Option<usize>, HeadError> {
        read_head_into(reader, buf, MAX_HEAD, head_len)
    }

    /// Reads the next request head, leaving it in the reader's buffer if it is
    /// all there (see [`Located`]). `buf` holds what was read of a head so far:
    /// empty for a new one; after a read timeout, call again with the same `buf`.
    /// `policy` is asked as the head grows.
    pub fn next<R: BufRead>(
        reader: &mut R,
        buf: &mut Vec<u8>,
        policy: &mut dyn HeadPolicy,
    ) -> Result<Option<Located>, HeadError> {
        read_head(reader, buf, MAX_HEAD, head_len, policy)
    }

    /// Parses a complete head, as [`RequestHead::read`] left it in its buffer.
    pub fn parse(head: &'b [u8]) -> Result<RequestHead<'b>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head)? {
            httparse::Status::Complete(_) => Ok(RequestHead {
                method: request.method.unwrap_or_default(),
                target: request.path.unwrap_or_default(),
                version: Version::from_minor(request.version.unwrap_or(1)),
                headers: Headers::from_httparse(request.headers),
            }),
            httparse::Status::Partial => Err(HeadError::Truncated),
        }
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
    pub fn path(&self) -> &'b str {
        let path_and_query = self.origin_form();
        path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path)
    }

    /// The query of the target, without its `?`, if it has one.
    pub fn query(&self) -> Option<&'b str> {
        self.origin_form().split_once('?').map(|(_, query)| query)
    }

    /// The target in origin-form (`/path?query`), as it is sent upstream.
    pub fn origin_form(&self) -> &'b str {
        match self.absolute_authority_and_rest() {
            Some((_, "")) => "/",
            Some((_, rest)) => rest,
            None => self.target,
        }
    }

    /// The host named by an absolute-form target (`http://host:port/path`), which
    /// overrides the Host header (RFC 9112 §3.2.2).
    pub fn absolute_authority(&self) -> Option<&'b str> {
        self.absolute_authority_and_rest()
            .map(|(authority, _)| authority)
    }

    fn absolute_authority_and_rest(&self) -> Option<(&'b str, &'b str)> {
        let (scheme, rest) = self.target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        Some(rest.split_at(end))
    }
}

/// The length of the head at the start of `buf`, once it is complete and
/// checked; `None` while more is needed.
fn head_len(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(_) | Err(_) if request_line_too_long(buf) => Err(HeadError::LineTooLong),
        Ok(httparse::Status::Complete(len)) => {
            check_line_endings(&buf[..len])?;
            Ok(Some(len))
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

    /// The target and framing of a head, which outlive its buffer.
    type Read = (String, Result<BodyKind, HeadError>);

    /// Reads and parses one head; `Ok(None)` at a clean end.
    fn read(bytes: &[u8]) -> Result<Option<Read>, HeadError> {
        let mut reader = std::io::BufReader::new(bytes);
        let mut buf = Vec::new();
        let Some(len) = RequestHead::read(&mut reader, &mut buf)? else {
            return Ok(None);
        };
        let head = RequestHead::parse(&buf[..len])?;
        Ok(Some((head.target.to_string(), head.body_kind())))
    }

    #[test]
    fn reads_one_head_and_leaves_the_body() {
        let bytes = b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET";
        let mut reader = std::io::BufReader::with_capacity(7, &bytes[..]);
        let mut buf = Vec::new();
        let len = RequestHead::read(&mut reader, &mut buf).unwrap().unwrap();
        let head = RequestHead::parse(&buf[..len]).unwrap();
        assert_eq!((head.method, head.target), ("POST", "/api"));
        assert!(matches!(head.body_kind().unwrap(), BodyKind::Length(4)));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        assert_eq!(rest, "bodyGET");
    }

    #[test]
    fn targets() {
        let head = |target| RequestHead {
            method: "GET",
            target,
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
        assert!(read(both).unwrap().unwrap().1.is_err());
    }
}
