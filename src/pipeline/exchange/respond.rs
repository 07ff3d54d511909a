//! The answer, streamed back to the client piece by piece as it comes, its
//! framing re-done for the client: a chunked or close-delimited body goes to
//! an HTTP/1.1 client chunked (the connection stays usable) and to an HTTP/1.0
//! client close-delimited. Then the connection goes back to the pool, if it is
//! clean and may serve another request.

use std::io;

use super::error::ExchangeError;
use super::heads::{write_response_head, Next};
use super::{fail, Client, Outcome};
use crate::leaves::http::body::{self, BodyKind, BodyReader, CopyError, Encoding};
use crate::leaves::http::response::ResponseHead;
use crate::leaves::http::{HeadError, Located, Version};
use crate::services::upstream::pool::{Lease, Place};
use crate::services::upstream::Connection;

/// An answer up to this size fits the client's socket buffers whole (Linux
/// starts a TCP socket's at 87 KiB to receive and 16 KiB to send, and grows
/// them), so even a client that never reads does not hold its connection long.
const LONG_ANSWER: u64 = 64 * 1024;

/// What the answer needs of its request, once the request's head and body are gone.
#[derive(Clone, Copy)]
pub struct ResponseNeeds {
    /// The request was a `HEAD`: the answer has no body, whatever its head says.
    pub head_request: bool,
    pub version: Version,
    pub keep_alive: bool,
}

/// Streams the answer to the client, then gives the connection back to the
/// pool if it is clean and reusable. An answer that turns out long, or whose
/// body goes quiet (a stream the request did not announce), stops counting
/// against the pool's limit, so it cannot keep short requests waiting.
pub fn respond(
    needs: ResponseNeeds,
    mut lease: Lease,
    located: Located,
    head_buf: &[u8],
    client: &mut Client,
) -> Outcome {
    let (conn, place) = lease.parts();
    let (outcome, reusable) = stream_back(needs, conn, located, head_buf, client, Some(place));
    if reusable {
        lease.give_back();
    }
    outcome
}

/// An answer on a connection outside the pool (a refused upgrade's).
pub fn respond_once(
    needs: ResponseNeeds,
    mut conn: Connection,
    located: Located,
    head_buf: &[u8],
    client: &mut Client,
) -> Outcome {
    stream_back(needs, &mut conn, located, head_buf, client, None).0
}

/// Writes the response head and streams the body to the client; returns what
/// was sent and whether the connection may serve another request.
fn stream_back(
    needs: ResponseNeeds,
    conn: &mut Connection,
    located: Located,
    head_buf: &[u8],
    client: &mut Client,
    mut place: Option<&mut Place>,
) -> (Outcome, bool) {
    let parsed = located
        .bytes(&mut conn.transport, head_buf)
        .map_err(HeadError::Io)
        .and_then(ResponseHead::parse)
        .and_then(|response| {
            let kind = response.body_kind(needs.head_request)?;
            Ok((response, kind))
        });
    let mut next = match needs.keep_alive {
        true => Next::KeepAlive,
        false => Next::Close,
    };
    // Nothing has been written to the client, and its request was read whole
    // (the body is sent before the answer is read): its connection serves on,
    // as after any other failure on the API server's side. Only this
    // connection to the API server, whose framing is lost, is closed.
    let (response, kind) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return (fail(client, ExchangeError::BadResponse(e), next), false),
    };
    let encoding = match kind {
        BodyKind::Empty | BodyKind::Length(_) => Encoding::Identity,
        _ if needs.version == Version::Http11 => Encoding::Chunked,
        // An HTTP/1.0 client knows no chunks: the body ends when we close.
        _ => {
            next = Next::Close;
            Encoding::Identity
        }
    };
    let (code, reusable) = (response.code, response.reusable());
    // Gathered, not sent: it goes out with the first piece of body.
    let head_written = write_response_head(&mut client.writer, &response, kind, encoding, next);
    drop(response);
    located.consume(&mut conn.transport);
    if head_written.is_err() {
        return (Outcome::new(code, 0, Next::Close), false);
    }
    // A long answer (a large list, a stream it did not announce) is as slow
    // as its client reads it: it stops counting against the pool's limit.
    if is_long(kind) {
        if let Some(place) = place.as_deref_mut() {
            place.detach();
        }
    }
    // While the API server is quiet (a watch between events), reads wake now
    // and then to look at the client: if it has gone, stop and free the connection.
    let mut body = BodyReader::new(&mut conn.transport, kind);
    let client_side = client.reader.get_ref();
    let mut sent = 0;
    let copied = body::copy(
        &mut body,
        &mut client.writer,
        encoding,
        &mut sent,
        &mut |_| {
            if let Some(place) = place.as_deref_mut() {
                place.detach();
            }
            match client_side.is_gone() {
                true => Err(CopyError::Write(io::ErrorKind::BrokenPipe.into())),
                false => Ok(()),
            }
        },
    );
    match copied {
        Ok(()) => {
            let reusable = kind != BodyKind::UntilClose && reusable;
            (Outcome::new(code, sent, next), reusable)
        }
        Err(CopyError::Read(e)) => {
            // Cut mid-body: close without the final chunk, so the client sees it cut.
            crate::log!(
                0,
                "error while proxying request: response body from the API server failed: {e}"
            );
            (Outcome::new(code, sent, Next::Close), false)
        }
        Err(CopyError::Write(_)) => (Outcome::new(code, sent, Next::Close), false),
    }
}

/// Whether an answer's body is longer than a client's socket takes at once
/// (more than [`LONG_ANSWER`], or of a length not given), so that a client
/// reading it slowly could hold its connection long.
fn is_long(kind: BodyKind) -> bool {
    match kind {
        BodyKind::Empty => false,
        BodyKind::Length(n) => n > LONG_ANSWER,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_answers_are_large_or_of_no_stated_length() {
        assert!(!is_long(BodyKind::Empty));
        assert!(!is_long(BodyKind::Length(LONG_ANSWER)));
        assert!(is_long(BodyKind::Length(LONG_ANSWER + 1)));
        assert!(is_long(BodyKind::Chunked));
        assert!(is_long(BodyKind::UntilClose));
    }
}
