//! Sending a request and reading its answer's head, with the retries that are
//! safe: once more on a fresh connection when a pooled one turns out to be
//! dead (only for an idempotent request: a POST the server may have acted on
//! is not sent twice), and once with the new token when the API server refuses
//! one the kubelet has just rotated (refused, so nothing was done).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::error::ExchangeError;
use super::heads::{HeadEnd, Next};
use super::intake::{bad_body, stall_limit, Outgoing};
use super::respond::{respond, ResponseNeeds};
use super::{fail, Client, Outcome, Request, Shared};
use crate::leaves::budget::Grant;
use crate::leaves::http::body::{self, BodyKind, BodyReader, CopyError, Encoding};
use crate::leaves::http::response::ResponseHead;
use crate::leaves::http::sink::{write_all_vectored, Sink};
use crate::leaves::http::{HeadError, Located};
use crate::leaves::socket::Socket;
use crate::services::metrics::METRICS;
use crate::services::upstream::pool::Place;
use crate::services::upstream::Connection;

/// How one attempt to send a request and read the response head failed.
pub enum Attempt {
    /// Nothing came back on a connection that may have been closed while idle.
    Stale(io::Error),
    Failed(ExchangeError),
    /// The client's body stopped short: there is nobody left to answer.
    ClientGone,
    /// The client's body broke its framing or stalled: answered 400 or 408.
    BadBody(io::Error),
}

/// RFC 9110 §9.2.2: a request that may be sent again without a second effect,
/// when the first attempt's fate is unknown (a connection that died with it).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Sends the request and streams the answer back (see the module's retries).
pub fn exchange(
    shared: &Shared,
    mut request: Request,
    mut outgoing: Outgoing,
    client: &mut Client,
    head_grant: Option<Grant>,
) -> Outcome {
    // After a streamed body the client connection's framing is only known good if
    // the whole body was read, which an upstream failure may have prevented.
    let after_error = if outgoing.replayable() && request.keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    };
    let may_resend = outgoing.replayable() && idempotent(request.head.method());
    let (mut token_retried, mut retried) = (false, false);
    let _watch = request.long_lived.then(|| METRICS.watches.open());
    let mut head_buf = Vec::new();
    loop {
        let pool = &shared.upstream.pool;
        let leased = match request.long_lived {
            true => pool.own(),
            false => pool.lease(),
        };
        let mut lease = match leased {
            Ok(lease) => lease,
            Err(e) => return fail(client, ExchangeError::Connect(e), after_error),
        };
        let (conn, place) = lease.parts();
        let (sent, reused) = (Instant::now(), conn.reused);
        let attempt = attempt(
            shared,
            conn,
            Some(place),
            &request,
            &mut outgoing,
            client,
            &mut head_buf,
        );
        if attempt.is_ok() {
            client.trace.upstream = Some(upstream_time(sent, reused));
        }
        let located = match attempt {
            Ok((located, code)) => {
                if code == 401 && !token_retried && outgoing.replayable() {
                    let sent = request.token.as_ref();
                    let fresh = sent.and_then(|t| shared.credentials.authorization.newer_than(t));
                    if let Some(fresh) = fresh {
                        crate::log!(2, "401 after a token rotation: retrying with the new token");
                        token_retried = true;
                        METRICS.token_retries.inc();
                        request.token = Some(fresh);
                        head_buf.clear();
                        continue;
                    }
                }
                located
            }
            Err(Attempt::Stale(e)) if reused && !retried && may_resend => {
                crate::log!(
                    2,
                    "pooled connection to the API server was closed ({e}); retrying"
                );
                retried = true;
                head_buf.clear();
                continue;
            }
            Err(Attempt::Stale(e)) => return fail(client, ExchangeError::Upstream(e), after_error),
            Err(Attempt::Failed(e)) => return fail(client, e, after_error),
            Err(Attempt::ClientGone) => return Outcome::nobody_left(),
            Err(Attempt::BadBody(e)) => return bad_body(client, e),
        };
        let needs = ResponseNeeds {
            head_request: request.head.method() == "HEAD",
            version: request.version,
            keep_alive: request.keep_alive,
        };
        // The answer has begun: the request's head, body and budget can go.
        drop((request, outgoing, head_grant));
        return respond(needs, lease, located, &head_buf, client);
    }
}

/// Writes the request and reads the response head; returns where the head is
/// (in the connection's buffer, or `head_buf`) and its status code.
///
/// `place` is the connection's place among the pool's counted ones, which a
/// streamed request body or a slow answer gives up (see [`Place::detach`]);
/// `None` for an upgrade's connection, which has none.
pub fn attempt(
    shared: &Shared,
    conn: &mut Connection,
    mut place: Option<&mut Place>,
    request: &Request,
    outgoing: &mut Outgoing,
    client: &mut Client,
    head_buf: &mut Vec<u8>,
) -> Result<(Located, u16), Attempt> {
    let end = HeadEnd::new(outgoing.framing());
    let token = request.token.as_ref().map(|t| t.header_line());
    let body: &[u8] = match outgoing {
        Outgoing::Buffered { bytes, .. } => bytes,
        _ => &[],
    };
    let transport = &mut conn.transport;
    write_all_vectored(transport, &mut request.head.slices(token, &end, body))
        .and_then(|()| transport.flush())
        .map_err(Attempt::Stale)?;
    client.trace.bytes_in = body.len() as u64;
    if let Outgoing::Streamed {
        kind, prefix, rest, ..
    } = outgoing
    {
        // A body that comes as fast as its client sends it: however slow
        // that is, other requests must not wait behind it.
        if let Some(place) = place.as_deref_mut() {
            place.detach();
        }
        let encoding = match kind {
            BodyKind::Chunked => Encoding::Chunked,
            _ => Encoding::Identity,
        };
        let mut out = Sink::new(&mut *transport);
        if !prefix.is_empty() {
            body::write_piece(&mut out, prefix, encoding)
                .map_err(|e| Attempt::Failed(ExchangeError::Upstream(e)))?;
        }
        let mut body = BodyReader::resume(&mut client.reader, *rest);
        let mut on_idle = stall_limit(shared.timeouts.header);
        let mut sent = prefix.len() as u64;
        let copied = body::copy(&mut body, &mut out, encoding, &mut sent, &mut on_idle);
        client.trace.bytes_in = sent;
        match copied {
            Ok(()) => {}
            Err(CopyError::Read(e)) => return Err(Attempt::BadBody(e)),
            Err(CopyError::Write(e)) => return Err(Attempt::Failed(ExchangeError::Upstream(e))),
        }
    }
    read_response_head(
        conn,
        client.reader.get_ref(),
        head_buf,
        request.upgrade,
        place,
    )
}

/// Reads the API server's response head, skipping interim 1xx responses. A
/// 101 is an answer only to a request that asked for an upgrade.
///
/// While the API server thinks (reads wake every
/// [`crate::services::upstream::READ_WAKE`]), a client that has gone ends the
/// wait; and an answer slower than that gives up its place among the pool's
/// counted connections (`place`), so that requests behind it do not wait.
fn read_response_head(
    conn: &mut Connection,
    client: &Socket,
    buf: &mut Vec<u8>,
    upgrade: bool,
    mut place: Option<&mut Place>,
) -> Result<(Located, u16), Attempt> {
    buf.clear();
    loop {
        let located = match ResponseHead::next(&mut conn.transport, buf) {
            Ok(Some(located)) => located,
            Err(HeadError::Io(e)) if body::is_timeout(&e) => {
                if client.is_gone() {
                    return Err(Attempt::ClientGone);
                }
                if let Some(place) = place.as_deref_mut() {
                    place.detach();
                }
                continue;
            }
            Ok(None) => return Err(Attempt::Stale(io::ErrorKind::UnexpectedEof.into())),
            Err(HeadError::Io(e)) if buf.is_empty() => return Err(Attempt::Stale(e)),
            Err(HeadError::Io(e)) => return Err(Attempt::Failed(ExchangeError::Upstream(e))),
            Err(e) => return Err(Attempt::Failed(ExchangeError::BadResponse(e))),
        };
        let code = located
            .bytes(&mut conn.transport, buf)
            .map(ResponseHead::code_of)
            .map_err(|e| Attempt::Failed(ExchangeError::Upstream(e)))?;
        match code {
            101 if upgrade => return Ok((located, code)),
            101 => {
                return Err(Attempt::Failed(ExchangeError::BadResponse(
                    HeadError::Malformed(
                        "101 Switching Protocols to a request that asked for no upgrade",
                    ),
                )))
            }
            100..=199 => {
                located.consume(&mut conn.transport);
                buf.clear();
            }
            _ => return Ok((located, code)),
        }
    }
}

/// Time to the response head, observed in the histogram, with whether the
/// connection was reused: for the request's log line.
pub fn upstream_time(sent: Instant, reused: bool) -> (Duration, bool) {
    let took = sent.elapsed();
    METRICS.upstream_seconds.observe(took);
    (took, reused)
}
