//! The heads kproxy writes: the request for the API server, rewritten from the
//! client's, and the response for the client, rewritten from the API server's.
//!
//! Both keep every end-to-end header and drop the hop-by-hop ones (RFC 9110
//! §7.6.1); kproxy then adds what belongs to its own hop: Host, the token,
//! X-Forwarded-For, the body's framing, and `Connection` where needed.

use std::net::IpAddr;

use crate::credentials::Token;
use crate::http::body::{BodyKind, Encoding};
use crate::http::request::RequestHead;
use crate::http::response::{reason, ResponseHead};

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

/// The request head for the API server: the client's end-to-end headers, with
/// the API server's Host (`authority`), the token unless the client sent its own
/// Authorization, X-Forwarded-For appended, and the body's framing.
pub fn request_head(
    head: &RequestHead,
    target: &str,
    authority: &str,
    peer: Option<IpAddr>,
    framing: Framing,
    token: Option<&Token>,
    upgrade: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut forwarded_for = Vec::new();
    for h in head.headers.iter() {
        let name = h.name.as_str();
        if !head.headers.is_end_to_end(name) || is_replaced(name) {
            if name.eq_ignore_ascii_case("X-Forwarded-For") {
                if !forwarded_for.is_empty() {
                    forwarded_for.extend_from_slice(b", ");
                }
                forwarded_for.extend_from_slice(&h.value);
            }
            continue;
        }
        push_header(&mut out, name.as_bytes(), &h.value);
    }
    if let Some(token) = token {
        out.extend_from_slice(token.header_line());
    }
    if let Some(ip) = peer {
        if !forwarded_for.is_empty() {
            forwarded_for.extend_from_slice(b", ");
        }
        forwarded_for.extend_from_slice(ip.to_string().as_bytes());
    }
    if !forwarded_for.is_empty() {
        push_header(&mut out, b"X-Forwarded-For", &forwarded_for);
    }
    if let Some(protocol) = upgrade {
        // Hop-by-hop, but this hop asks for the same upgrade (kubectl does too).
        push_header(&mut out, b"Connection", b"Upgrade");
        push_header(&mut out, b"Upgrade", protocol);
    }
    match framing {
        Framing::None => {}
        Framing::Length(n) => push_header(&mut out, b"Content-Length", n.to_string().as_bytes()),
        Framing::Chunked => push_header(&mut out, b"Transfer-Encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Fields that kproxy writes itself rather than copying from the client.
fn is_replaced(name: &str) -> bool {
    ["Host", "Content-Length", "Expect", "X-Forwarded-For"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The response head for the client: the API server's status and end-to-end
/// headers, with framing headers for the encoding chosen.
pub fn response_head(
    response: &ResponseHead,
    kind: BodyKind,
    encoding: Encoding,
    next: Next,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let reason_text = if response.reason.is_empty() {
        reason(response.code)
    } else {
        &response.reason
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", response.code, reason_text).as_bytes());
    for h in response.headers.iter() {
        // Content-Length is kept as sent for bodiless answers (HEAD, 304): it
        // describes the resource, not this message.
        let framing = h.name.eq_ignore_ascii_case("Content-Length") && kind != BodyKind::Empty;
        if response.headers.is_end_to_end(&h.name) && !framing {
            push_header(&mut out, h.name.as_bytes(), &h.value);
        }
    }
    match (kind, encoding) {
        (BodyKind::Length(n), _) => {
            push_header(&mut out, b"Content-Length", n.to_string().as_bytes())
        }
        (BodyKind::Chunked | BodyKind::UntilClose, Encoding::Chunked) => {
            push_header(&mut out, b"Transfer-Encoding", b"chunked")
        }
        _ => {}
    }
    if next == Next::Close {
        push_header(&mut out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The 101 for the client: the API server's headers, with the upgrade's own
/// `Connection` and `Upgrade`, which are hop-by-hop but belong to this hop too.
pub fn switching_head(response: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for h in response.headers.iter() {
        if response.headers.is_end_to_end(&h.name) {
            push_header(&mut out, h.name.as_bytes(), &h.value);
        }
    }
    push_header(&mut out, b"Connection", b"Upgrade");
    if let Some(protocol) = response.headers.get("Upgrade") {
        push_header(&mut out, b"Upgrade", protocol);
    }
    out.extend_from_slice(b"\r\n");
    out
}
