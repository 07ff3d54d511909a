//! The request body, taken in before anything goes upstream: a small one is
//! read whole (checked, and kept so that the request can be sent again); a
//! large one is read ahead and the rest streamed as it is sent. A kept body
//! past [`FREE_BODY`] draws on the budget shared by all connections.

use std::io;
use std::time::Duration;

use super::heads::{Framing, Next};
use super::{local, send_now, Client, Outcome, Request, Shared};
use crate::leaves::budget::Grant;
use crate::leaves::http::body::{BodyKind, BodyReader, CopyError, Paused};
use crate::leaves::http::refusal::Reason;
use crate::leaves::http::Version;

/// Request bodies up to this size are read before they are sent, so that a bad
/// chunk never reaches the API server and the request can be sent again on a
/// fresh connection. Larger ones are streamed.
pub const MAX_REPLAYABLE_BODY: u64 = 64 * 1024;
/// A kept body up to this size costs nothing from the budget.
const FREE_BODY: usize = 8 * 1024;

/// The body of the request to send upstream.
pub enum Outgoing<'p> {
    None,
    /// Small enough to keep: can be sent again.
    Buffered {
        bytes: Vec<u8>,
        _grant: Option<Grant<'p>>,
    },
    /// Too large to keep: `prefix` was read ahead (and checked), the rest is
    /// streamed from the client as it is sent.
    Streamed {
        kind: BodyKind,
        prefix: Vec<u8>,
        rest: Paused,
        _grant: Option<Grant<'p>>,
    },
}

impl Outgoing<'_> {
    pub fn framing(&self) -> Framing {
        match self {
            Outgoing::None => Framing::None,
            Outgoing::Buffered { bytes, .. } => Framing::Length(bytes.len() as u64),
            Outgoing::Streamed {
                kind: BodyKind::Length(n),
                ..
            } => Framing::Length(*n),
            Outgoing::Streamed { .. } => Framing::Chunked,
        }
    }

    /// Whether it can be sent again (it was kept whole).
    pub fn replayable(&self) -> bool {
        !matches!(self, Outgoing::Streamed { .. })
    }
}

/// Why the request body could not be taken in.
pub enum BodyFailure {
    Copy(CopyError),
    /// A body to keep, and no memory to spare for it now.
    NoRoom,
}

/// Reads a small body now, so that it is checked before anything goes upstream
/// and can be sent again on a fresh connection; a large one is read ahead by
/// [`MAX_REPLAYABLE_BODY`] and the rest streamed. Answers `Expect:
/// 100-continue` first, since the body is about to be read.
pub fn receive_body<'s>(
    shared: &'s Shared,
    request: &Request,
    client: &mut Client,
) -> Result<Outgoing<'s>, BodyFailure> {
    let kind = request.body;
    if kind == BodyKind::Empty {
        return Ok(Outgoing::None);
    }
    if request.expects_continue && request.version == Version::Http11 {
        send_now(&mut client.writer, b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| BodyFailure::Copy(CopyError::Write(e)))?;
    }
    let mut grant = None;
    if let BodyKind::Length(n) = kind {
        if n > MAX_REPLAYABLE_BODY {
            let rest = BodyReader::new(&mut client.reader, kind).pause();
            let (prefix, _grant) = (Vec::new(), None);
            return Ok(Outgoing::Streamed {
                kind,
                prefix,
                rest,
                _grant,
            });
        }
        if n as usize > FREE_BODY {
            grant = Some(
                shared
                    .budget
                    .reserve(n as usize)
                    .ok_or(BodyFailure::NoRoom)?,
            );
        }
    }
    let capacity = match kind {
        BodyKind::Length(n) => n as usize,
        _ => 0,
    };
    let mut bytes = Vec::with_capacity(capacity);
    let mut body = BodyReader::new(&mut client.reader, kind);
    let mut on_idle = stall_limit(shared.timeouts.header);
    loop {
        let data = body.fill_waiting(&mut on_idle).map_err(BodyFailure::Copy)?;
        if data.is_empty() {
            return Ok(Outgoing::Buffered {
                bytes,
                _grant: grant,
            });
        }
        let total = bytes.len() + data.len();
        if total as u64 > MAX_REPLAYABLE_BODY {
            // What was read is sent first; the data just seen stays in the reader.
            let rest = body.pause();
            return Ok(Outgoing::Streamed {
                kind,
                prefix: bytes,
                rest,
                _grant: grant,
            });
        }
        if total > FREE_BODY && grant.is_none() {
            let reserved = shared.budget.reserve(MAX_REPLAYABLE_BODY as usize);
            grant = Some(reserved.ok_or(BodyFailure::NoRoom)?);
        }
        let len = data.len();
        bytes.extend_from_slice(data);
        body.consume(len);
    }
}

/// Lets a client's body be still for at most `limit` before giving up on it.
pub fn stall_limit(limit: Duration) -> impl FnMut(Duration) -> Result<(), CopyError> {
    move |still| match still < limit {
        true => Ok(()),
        false => Err(CopyError::Read(io::ErrorKind::TimedOut.into())),
    }
}

/// The client's request body broke its framing (400) or stalled (408): say so
/// and close, since where its next request would start is unknown.
pub fn bad_body(client: &mut Client, e: io::Error) -> Outcome {
    let response = match e.kind() {
        io::ErrorKind::TimedOut => Reason::RequestTimeout
            .answer("the request body stopped for longer than --header-timeout"),
        io::ErrorKind::InvalidData => Reason::BadRequest.answer(&format!("bad request body: {e}")),
        _ => return Outcome::nobody_left(),
    };
    local(&mut client.writer, &response, Next::Close)
}
