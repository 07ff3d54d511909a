//! Response heads: the API server's, read and framed; and kproxy's own short answers.

use std::io::{BufRead, Write};

use super::body::BodyKind;
use super::read::{check_line_endings, read_head, read_head_into, Located, Unlimited};
use super::{HeadError, Headers, Version};
use crate::leaves::http::refusal::Reason;

/// The API server's heads are small; this bounds what a broken one can cost.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// A response head, borrowed from the buffer it was read into.
#[derive(Debug)]
pub struct ResponseHead<'b> {
    pub version: Version,
    pub code: u16,
    pub reason: &'b str,
    pub headers: Headers<'b>,
}

impl<'b> ResponseHead<'b> {
    /// Reads a response head into `buf` and returns its length. Parse it with
    /// [`ResponseHead::parse`].
    pub fn read<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> Result<Option<usize>, HeadError> {
        read_head_into(reader, buf, MAX_HEAD, head_len)
    }

    /// Reads a response head, leaving it in the reader's buffer if it is all
    /// there (see [`Located`]). `buf` must be empty for a new head; after a read
    /// timeout, call again with the same `buf` to go on.
    pub fn next<R: BufRead>(
        reader: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Located>, HeadError> {
        read_head(reader, buf, MAX_HEAD, head_len, &mut Unlimited)
    }

    /// The status code of a complete head (checked by `next`), without parsing
    /// the fields: httparse found `HTTP/1.x NNN`, after any empty lines.
    pub fn code_of(head: &[u8]) -> u16 {
        let start = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(0);
        std::str::from_utf8(head.get(start + 9..start + 12).unwrap_or_default())
            .ok()
            .and_then(|code| code.parse().ok())
            .unwrap_or_default()
    }

    /// Parses a complete head, as [`ResponseHead::read`] left it in its buffer.
    pub fn parse(head: &'b [u8]) -> Result<ResponseHead<'b>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head)? {
            httparse::Status::Complete(_) => Ok(ResponseHead {
                version: Version::from_minor(response.version.unwrap_or(1)),
                code: response.code.unwrap_or_default(),
                reason: response.reason.unwrap_or_default(),
                headers: Headers::from_httparse(response.headers),
            }),
            httparse::Status::Partial => Err(HeadError::Truncated),
        }
    }

    /// How the body is framed (RFC 9112 §6.3), given whether the request was a
    /// `HEAD` (whose answer has no body, whatever its fields say).
    pub fn body_kind(&self, head_request: bool) -> Result<BodyKind, HeadError> {
        if head_request || self.code < 200 || self.code == 204 || self.code == 304 {
            return Ok(BodyKind::Empty);
        }
        Ok(self.headers.framing()?.unwrap_or(BodyKind::UntilClose))
    }

    /// Whether the server lets the connection be used again after this response.
    pub fn reusable(&self) -> bool {
        match self.version {
            Version::Http11 => !self.headers.has_token("Connection", "close"),
            Version::Http10 => self.headers.has_token("Connection", "keep-alive"),
        }
    }
}

/// The length of the head at the start of `buf`, once complete and checked.
fn head_len(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf)? {
        httparse::Status::Complete(len) => {
            check_line_endings(&buf[..len])?;
            Ok(Some(len))
        }
        httparse::Status::Partial => Ok(None),
    }
}

/// The reason phrase kproxy uses for the statuses it makes itself.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A response kproxy answers itself: a refusal or an error.
pub struct LocalResponse {
    pub code: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra header lines, each ending in CRLF (e.g. `Location`).
    pub extra: String,
    /// The rule that refused the request, if this is a refusal.
    pub reason: Option<Reason>,
}

impl LocalResponse {
    /// Plain text, as Go's `http.Error` writes it (kubectl's 403 `Forbidden`).
    pub fn text(code: u16, text: &str) -> LocalResponse {
        LocalResponse::new(code, "text/plain; charset=utf-8", format!("{text}\n"))
    }

    /// kubectl's (Go's ServeMux's and FileServer's) redirect to `path`, keeping
    /// the query.
    pub fn moved(path: &str, query: Option<&str>) -> LocalResponse {
        let mut response = LocalResponse::text(301, "Moved Permanently");
        let query = query.map_or(String::new(), |q| format!("?{q}"));
        response
            .extra
            .push_str(&format!("Location: {path}{query}\r\n"));
        response
    }

    /// No body at all (`OPTIONS *`).
    pub fn empty(code: u16) -> LocalResponse {
        LocalResponse {
            code,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            extra: String::new(),
            reason: None,
        }
    }

    /// A JSON body (a `Status`: see [`Reason::answer`]).
    pub fn json(code: u16, body: String) -> LocalResponse {
        LocalResponse::new(code, "application/json", body)
    }

    /// A body of any type (the metrics listener's exposition text).
    pub fn new(code: u16, content_type: &'static str, body: String) -> LocalResponse {
        LocalResponse {
            code,
            content_type,
            body,
            extra: "X-Content-Type-Options: nosniff\r\n".into(),
            reason: None,
        }
    }

    pub fn write_to<W: Write>(&self, out: &mut W, keep_alive: bool) -> std::io::Result<()> {
        let connection = if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{}\r\n",
            self.code,
            reason(self.code),
            self.content_type,
            self.body.len(),
            self.extra,
            connection
        );
        out.write_all(head.as_bytes())?;
        out.write_all(self.body.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The framing of a response with `code` and `headers`, to a `method` request,
    /// and whether its connection may be reused.
    fn framing(code: u16, headers: &str, method: &str) -> (Result<BodyKind, HeadError>, bool) {
        let bytes = format!("HTTP/1.1 {code} X\r\n{headers}\r\n");
        let mut reader = std::io::BufReader::new(bytes.as_bytes());
        let mut buf = Vec::new();
        let len = ResponseHead::read(&mut reader, &mut buf).unwrap().unwrap();
        let head = ResponseHead::parse(&buf[..len]).unwrap();
        (head.body_kind(method == "HEAD"), head.reusable())
    }

    #[test]
    fn framing_rules() {
        let kind = |code, headers, method| framing(code, headers, method).0;
        assert!(matches!(
            kind(200, "Content-Length: 3\r\n", "GET"),
            Ok(BodyKind::Length(3))
        ));
        assert!(matches!(
            kind(200, "Content-Length: 3\r\n", "HEAD"),
            Ok(BodyKind::Empty)
        ));
        assert!(matches!(kind(204, "", "GET"), Ok(BodyKind::Empty)));
        assert!(matches!(
            kind(304, "Content-Length: 3\r\n", "GET"),
            Ok(BodyKind::Empty)
        ));
        assert!(matches!(
            kind(200, "Transfer-Encoding: chunked\r\n", "GET"),
            Ok(BodyKind::Chunked)
        ));
        assert!(matches!(kind(200, "", "GET"), Ok(BodyKind::UntilClose)));
        assert!(kind(200, "Transfer-Encoding: gzip\r\n", "GET").is_err());
        assert!(!framing(200, "Connection: close\r\n", "GET").1);
    }
}
