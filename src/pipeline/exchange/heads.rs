//! The heads kproxy writes: the request for the API server, rewritten from the
//! client's, and the response for the client, rewritten from the API server's.
//!
//! Both keep every end-to-end header and drop the hop-by-hop ones (RFC 9110
//! §7.6.1); kproxy then adds what belongs to its own hop: Host, the token,
//! X-Forwarded-For, the body's framing, and `Connection` where needed.

use std::io::{self, IoSlice, Write};
use std::net::IpAddr;

use crate::leaves::http::body::{BodyKind, Encoding};
use crate::leaves::http::request::RequestHead;
use crate::leaves::http::response::{reason, ResponseHead};

/// How the request body goes upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Whether the client connection stays open after this response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    KeepAlive,
    Close,
}

/// What kproxy adds to a request head of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Adds<'a> {
    /// An `Authorization` (written at send time), replacing the client's.
    pub token: bool,
    /// Ready `Impersonate-*` header lines, replacing every `Impersonate-*`
    /// field of the client's.
    pub impersonation: Option<&'a [u8]>,
}

/// The request head for the API server, all but its last lines: the token and
/// the body's framing are added as it is sent (see [`UpstreamHead::slices`]), so
/// that a retry with a rotated token, or with a body read in another framing,
/// costs no rebuild. It outlives the client's head, whose buffer can go.
#[derive(Debug)]
pub struct UpstreamHead {
    bytes: Vec<u8>,
    method_len: usize,
}

impl UpstreamHead {
    /// The client's end-to-end headers, with the API server's Host
    /// (`authority`), X-Forwarded-For appended, the client's Authorization
    /// dropped if kproxy adds its own, and kproxy's impersonation headers
    /// instead of any of the client's.
    pub fn new(
        head: &RequestHead,
        target: &str,
        authority: &str,
        peer: Option<IpAddr>,
        adds: Adds,
        upgrade: Option<&[u8]>,
    ) -> UpstreamHead {
        // Room for all of it at once: the client's fields, plus what this hop adds.
        let fields: usize = head
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum();
        let impersonation = adds.impersonation.unwrap_or_default();
        let mut out =
            Vec::with_capacity(fields + target.len() + authority.len() + impersonation.len() + 128);
        out.extend_from_slice(head.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        // client-go replaces the client's Impersonate-Uid but appends its groups
        // and extras to the client's: a client could then add groups to the
        // identity kproxy was told to use. kproxy sends that identity alone.
        let replaced = |name: &str| {
            is_replaced(name)
                || (adds.token && name.eq_ignore_ascii_case("Authorization"))
                || (adds.impersonation.is_some() && is_impersonation(name))
        };
        for h in head.headers.iter() {
            if head.headers.is_end_to_end(h.name) && !replaced(h.name) {
                push_header(&mut out, h.name.as_bytes(), h.value);
            }
        }
        forwarded_for(&mut out, head, peer);
        out.extend_from_slice(impersonation);
        if let Some(protocol) = upgrade {
            // Hop-by-hop, but this hop asks for the same upgrade (kubectl does too).
            push_header(&mut out, b"Connection", b"Upgrade");
            push_header(&mut out, b"Upgrade", protocol);
        }
        UpstreamHead {
            bytes: out,
            method_len: head.method.len(),
        }
    }

    pub fn method(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.method_len]).unwrap_or("")
    }

    /// The target as sent upstream (origin-form).
    pub fn target(&self) -> &str {
        let line = &self.bytes[self.method_len + 1..];
        let end = line.iter().position(|&b| b == b' ').unwrap_or(0);
        std::str::from_utf8(&line[..end]).unwrap_or("")
    }

    /// Bytes held, for the memory budget.
    pub fn len(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole head as slices to write in one go: these bytes, the token's
    /// header line (`Authorization: ...\r\n`), then `end` (see `HeadEnd`),
    /// then `body`.
    pub fn slices<'a>(
        &'a self,
        token: Option<&'a [u8]>,
        end: &'a HeadEnd,
        body: &'a [u8],
    ) -> [IoSlice<'a>; 4] {
        [
            IoSlice::new(&self.bytes),
            IoSlice::new(token.unwrap_or_default()),
            IoSlice::new(end.as_bytes()),
            IoSlice::new(body),
        ]
    }
}

/// The framing line and the blank line that end a request head, formatted on the
/// stack.
pub struct HeadEnd {
    buf: [u8; 48],
    len: usize,
}

impl HeadEnd {
    pub fn new(framing: Framing) -> HeadEnd {
        let mut end = HeadEnd {
            buf: [0; 48],
            len: 0,
        };
        let mut cursor = io::Cursor::new(&mut end.buf[..]);
        // 48 bytes hold the longest line ("Content-Length: " and 20 digits).
        let _ = match framing {
            Framing::None => cursor.write_all(b"\r\n"),
            Framing::Length(n) => write!(cursor, "Content-Length: {n}\r\n\r\n"),
            Framing::Chunked => cursor.write_all(b"Transfer-Encoding: chunked\r\n\r\n"),
        };
        end.len = cursor.position() as usize;
        end
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// X-Forwarded-For: the client's own values, then the client's address, as one
/// field (kubectl's ReverseProxy joins them; the API server reads only the first).
fn forwarded_for(out: &mut Vec<u8>, head: &RequestHead, peer: Option<IpAddr>) {
    let mut prior = head.headers.get_all("X-Forwarded-For");
    let first = prior.next();
    if first.is_none() && peer.is_none() {
        return;
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    let mut any = false;
    for value in first.into_iter().chain(prior) {
        if any {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value);
        any = true;
    }
    if let Some(ip) = peer {
        if any {
            out.extend_from_slice(b", ");
        }
        let _ = write!(out, "{ip}");
    }
    out.extend_from_slice(b"\r\n");
}

/// Fields that kproxy writes itself rather than copying from the client.
fn is_replaced(name: &str) -> bool {
    ["Host", "Content-Length", "Expect", "X-Forwarded-For"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

fn is_impersonation(name: &str) -> bool {
    const PREFIX: &str = "Impersonate-";
    name.get(..PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_header(out: &mut impl Write, name: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(name)?;
    out.write_all(b": ")?;
    out.write_all(value)?;
    out.write_all(b"\r\n")
}

/// Writes the response head for the client: the API server's status and
/// end-to-end headers, with framing headers for the encoding chosen.
pub fn write_response_head(
    out: &mut impl Write,
    response: &ResponseHead,
    kind: BodyKind,
    encoding: Encoding,
    next: Next,
) -> io::Result<()> {
    let reason_text = if response.reason.is_empty() {
        reason(response.code)
    } else {
        response.reason
    };
    write!(out, "HTTP/1.1 {} {reason_text}\r\n", response.code)?;
    for h in response.headers.iter() {
        // Content-Length is kept as sent for bodiless answers (HEAD, 304): it
        // describes the resource, not this message.
        let framing = h.name.eq_ignore_ascii_case("Content-Length") && kind != BodyKind::Empty;
        if response.headers.is_end_to_end(h.name) && !framing {
            write_header(out, h.name.as_bytes(), h.value)?;
        }
    }
    match (kind, encoding) {
        (BodyKind::Length(n), _) => write!(out, "Content-Length: {n}\r\n")?,
        (BodyKind::Chunked | BodyKind::UntilClose, Encoding::Chunked) => {
            out.write_all(b"Transfer-Encoding: chunked\r\n")?
        }
        _ => {}
    }
    if next == Next::Close {
        out.write_all(b"Connection: close\r\n")?;
    }
    out.write_all(b"\r\n")
}

/// Writes the 101 for the client: the API server's headers, with the upgrade's
/// own `Connection` and `Upgrade`, which are hop-by-hop but belong to this hop too.
pub fn write_switching_head(out: &mut impl Write, response: &ResponseHead) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 101 Switching Protocols\r\n")?;
    for h in response.headers.iter() {
        if response.headers.is_end_to_end(h.name) {
            write_header(out, h.name.as_bytes(), h.value)?;
        }
    }
    out.write_all(b"Connection: Upgrade\r\n")?;
    if let Some(protocol) = response.headers.get("Upgrade") {
        write_header(out, b"Upgrade", protocol)?;
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaves::http::headers::{Header, Headers};
    use crate::leaves::http::Version;

    fn head<'b>(headers: &[(&'b str, &'b str)]) -> RequestHead<'b> {
        RequestHead {
            method: "GET",
            target: "/api",
            version: Version::Http11,
            headers: Headers(
                headers
                    .iter()
                    .map(|(name, value)| Header {
                        name,
                        value: value.as_bytes(),
                    })
                    .collect(),
            ),
        }
    }

    fn written(up: &UpstreamHead, token: Option<&[u8]>, framing: Framing) -> String {
        let end = HeadEnd::new(framing);
        let slices = up.slices(token, &end, b"");
        String::from_utf8(slices.iter().flat_map(|s| s.to_vec()).collect()).unwrap()
    }

    #[test]
    fn the_upstream_head_keeps_end_to_end_fields_and_adds_this_hops() {
        let client = head(&[
            ("Host", "localhost:8001"),
            ("Accept", "application/json"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("X-Forwarded-For", "10.0.0.9"),
            ("Content-Length", "3"),
            ("Authorization", "Bearer client"),
        ]);
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        let up = UpstreamHead::new(
            &client,
            "/api",
            "10.96.0.1:443",
            peer,
            Adds::default(),
            None,
        );
        assert_eq!((up.method(), up.target()), ("GET", "/api"));
        assert_eq!(
            written(&up, None, Framing::Length(3)),
            "GET /api HTTP/1.1\r\nHost: 10.96.0.1:443\r\nAccept: application/json\r\n\
             Authorization: Bearer client\r\nX-Forwarded-For: 10.0.0.9, 127.0.0.1\r\n\
             Content-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn the_token_replaces_the_clients_authorization_when_added() {
        let client = head(&[("Host", "localhost"), ("Authorization", "")]);
        let adds = Adds {
            token: true,
            impersonation: None,
        };
        let up = UpstreamHead::new(&client, "/api", "h:443", None, adds, None);
        let token = b"Authorization: Bearer t0k3n\r\n";
        assert_eq!(
            written(&up, Some(token), Framing::Chunked),
            "GET /api HTTP/1.1\r\nHost: h:443\r\nAuthorization: Bearer t0k3n\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            HeadEnd::new(Framing::Length(u64::MAX)).as_bytes(),
            b"Content-Length: 18446744073709551615\r\n\r\n"
        );
    }
}
