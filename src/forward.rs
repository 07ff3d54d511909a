//! One exchange with the API server: the request body, the attempts (and the
//! retries that are safe), the response head, and the response streamed back.
//!
//! ```text
//!   request body: small ─► kept (checked whole, can be sent again)
//!                 large ─► streamed as it is sent (cannot)
//!        │
//!        ▼
//!   pooled connection ─► head + token + body ─► response head ─► stream it back
//!        │ stale, and the request is idempotent: once more on a fresh one
//!        │ 401 just after a token rotation: once more with the new token
//! ```
//!
//! Framing is re-done on each side: a chunked or close-delimited response goes
//! to an HTTP/1.1 client chunked (the connection stays usable) and to an HTTP/1.0
//! client close-delimited.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::budget::Grant;
use crate::error::{no_room, ProxyError};
use crate::http::body::{self, BodyKind, BodyReader, CopyError, Encoding, Paused};
use crate::http::response::ResponseHead;
use crate::http::sink::{write_all_vectored, Sink};
use crate::http::{HeadError, Located, Version};
use crate::metrics::METRICS;
use crate::pool::{Lease, Place};
use crate::proxy::{local, send_now, Answer, Client, Proxy, Request};
use crate::refusal::Reason;
use crate::rewrite::{write_response_head, write_switching_head, Framing, HeadEnd, Next};
use crate::stream::{self, Stream};
use crate::tunnel;
use crate::upstream::Connection;

/// Request bodies up to this size are read before they are sent, so that a bad
/// chunk never reaches the API server and the request can be sent again on a
/// fresh connection. Larger ones are streamed.
const MAX_REPLAYABLE_BODY: u64 = 64 * 1024;
/// A kept body up to this size costs nothing from the budget.
const FREE_BODY: usize = 8 * 1024;
/// An answer up to this size fits the client's socket buffers whole (Linux
/// starts a TCP socket's at 87 KiB to receive and 16 KiB to send, and grows
/// them), so even a client that never reads does not hold its connection.
const LONG_ANSWER: u64 = 64 * 1024;

/// The body of the request to send upstream.
enum Outgoing<'p> {
    None,
    /// Small enough to keep: can be sent again.
    Buffered {
        bytes: Vec<u8>,
        _grant: Option<Grant<'p>>,
    },
    /// Too large to keep: `prefix` was read ahead (and checked), the rest is
    /// streamed from the client as it is sent.
    Stream {
        kind: BodyKind,
        prefix: Vec<u8>,
        rest: Paused,
        _grant: Option<Grant<'p>>,
    },
}

impl Outgoing<'_> {
    fn framing(&self) -> Framing {
        match self {
            Outgoing::None => Framing::None,
            Outgoing::Buffered { bytes, .. } => Framing::Length(bytes.len() as u64),
            Outgoing::Stream {
                kind: BodyKind::Length(n),
                ..
            } => Framing::Length(*n),
            Outgoing::Stream { .. } => Framing::Chunked,
        }
    }

    fn replayable(&self) -> bool {
        !matches!(self, Outgoing::Stream { .. })
    }
}

/// Why the request body could not be taken in.
enum BodyFailure {
    Copy(CopyError),
    /// A body to keep, and no memory to spare for it now.
    NoRoom,
}

/// How one attempt to send a request and read the response head failed.
enum Attempt {
    /// Nothing came back on a connection that may have been closed while idle.
    Stale(io::Error),
    Failed(ProxyError),
    /// The client's body stopped short: there is nobody left to answer.
    ClientGone,
    /// The client's body broke its framing or stalled: answered 400 or 408.
    BadBody(io::Error),
}

/// What the response needs of the request, once its head and body are gone.
#[derive(Clone, Copy)]
struct Reply {
    head_request: bool,
    version: Version,
    keep_alive: bool,
}

/// RFC 9110 §9.2.2: a request that may be sent again without a second effect,
/// when the first attempt's fate is unknown (a connection that died with it).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

impl Proxy {
    /// Takes in the request body, then exchanges it with the API server (or
    /// opens a tunnel for an upgrade). `head_grant` is the budget a large head
    /// holds for the upstream head, given back once the response head is in.
    pub fn forward(
        &self,
        request: Request,
        client: &mut Client,
        head_grant: Option<Grant>,
    ) -> Answer {
        let outgoing = match self.receive_body(&request, client) {
            Ok(outgoing) => outgoing,
            Err(BodyFailure::Copy(CopyError::Read(e))) => return bad_body(client, e),
            Err(BodyFailure::Copy(CopyError::Write(_))) => return Answer::nobody_left(),
            Err(BodyFailure::NoRoom) => return local(&mut client.writer, &no_room(), Next::Close),
        };
        if request.upgrade {
            return self.upgrade(request, outgoing, client);
        }
        self.exchange(request, outgoing, client, head_grant)
    }

    /// Sends the request and streams the response back. Tries again once on a
    /// fresh connection when a pooled one turns out to be dead (only for an
    /// idempotent request: a POST the server may have acted on is not sent
    /// twice), and once with the new token when the API server refuses one that
    /// the kubelet has just rotated (refused, so nothing was done).
    fn exchange(
        &self,
        mut request: Request,
        mut outgoing: Outgoing,
        client: &mut Client,
        head_grant: Option<Grant>,
    ) -> Answer {
        // After a streamed body the client connection's framing is only known good if
        // the whole body was read, which an upstream failure may have prevented.
        let after_error = if outgoing.replayable() && request.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let may_resend = outgoing.replayable() && idempotent(request.head.method());
        let (mut token_retried, mut retried) = (false, false);
        let _stream = request.long_lived.then(|| METRICS.streams.open());
        let mut scratch = Vec::new();
        loop {
            let pool = &self.upstream.pool;
            let leased = match request.long_lived {
                true => pool.own(),
                false => pool.lease(),
            };
            let mut lease = match leased {
                Ok(lease) => lease,
                Err(e) => return self.fail(client, ProxyError::Connect(e), after_error),
            };
            let (conn, place) = lease.parts();
            let (sent, reused) = (Instant::now(), conn.reused);
            let attempt = self.attempt(
                conn,
                Some(place),
                &request,
                &mut outgoing,
                client,
                &mut scratch,
            );
            if attempt.is_ok() {
                client.trace.upstream = Some(upstream_time(sent, reused));
            }
            let located = match attempt {
                Ok((located, code)) => {
                    if code == 401 && !token_retried && outgoing.replayable() {
                        let sent = request.token.as_ref();
                        let fresh = sent
                            .and_then(|t| self.upstream.credentials.authorization.newer_than(t));
                        if let Some(fresh) = fresh {
                            crate::log!(
                                2,
                                "401 after a token rotation: retrying with the new token"
                            );
                            token_retried = true;
                            METRICS.token_retries.inc();
                            request.token = Some(fresh);
                            scratch.clear();
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
                    scratch.clear();
                    continue;
                }
                Err(Attempt::Stale(e)) => {
                    return self.fail(client, ProxyError::Upstream(e), after_error)
                }
                Err(Attempt::Failed(e)) => return self.fail(client, e, after_error),
                Err(Attempt::ClientGone) => return Answer::nobody_left(),
                Err(Attempt::BadBody(e)) => return bad_body(client, e),
            };
            let reply = Reply {
                head_request: request.head.method() == "HEAD",
                version: request.version,
                keep_alive: request.keep_alive,
            };
            // The answer has begun: the request's head, body and budget can go.
            drop((request, outgoing, head_grant));
            return self.respond(reply, lease, located, &scratch, client);
        }
    }

    /// Reads a small body now, so that it is checked before anything goes upstream
    /// and can be sent again on a fresh connection; a large one is read ahead by
    /// [`MAX_REPLAYABLE_BODY`] and the rest streamed. Answers `Expect:
    /// 100-continue` first, since we are about to read the body.
    fn receive_body(
        &self,
        request: &Request,
        client: &mut Client,
    ) -> Result<Outgoing<'_>, BodyFailure> {
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
                return Ok(Outgoing::Stream {
                    kind,
                    prefix,
                    rest,
                    _grant,
                });
            }
            if n as usize > FREE_BODY {
                grant = Some(self.budget.reserve(n as usize).ok_or(BodyFailure::NoRoom)?);
            }
        }
        let capacity = match kind {
            BodyKind::Length(n) => n as usize,
            _ => 0,
        };
        let mut bytes = Vec::with_capacity(capacity);
        let mut body = BodyReader::new(&mut client.reader, kind);
        let mut on_idle = stall_limit(self.timeouts.header);
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
                return Ok(Outgoing::Stream {
                    kind,
                    prefix: bytes,
                    rest,
                    _grant: grant,
                });
            }
            if total > FREE_BODY && grant.is_none() {
                let reserved = self.budget.reserve(MAX_REPLAYABLE_BODY as usize);
                grant = Some(reserved.ok_or(BodyFailure::NoRoom)?);
            }
            let len = data.len();
            bytes.extend_from_slice(data);
            body.consume(len);
        }
    }

    /// Sends an upgrade request on a connection of its own; on 101, pipes the two
    /// connections into each other until both ends are done. Any other answer is
    /// relayed as a normal response.
    fn upgrade(&self, request: Request, mut outgoing: Outgoing, client: &mut Client) -> Answer {
        let mut conn = match self.upstream.pool.fresh() {
            Ok(conn) => conn,
            Err(e) => return self.fail(client, ProxyError::Connect(e), Next::Close),
        };
        if let Some(period) = self.keepalive {
            stream::set_keepalive(conn.tcp(), period);
            client.writer.get_ref().set_keepalive(period);
        }
        let mut scratch = Vec::new();
        let sent = Instant::now();
        let attempt = self.attempt(
            &mut conn,
            None,
            &request,
            &mut outgoing,
            client,
            &mut scratch,
        );
        if attempt.is_ok() {
            client.trace.upstream = Some(upstream_time(sent, false));
        }
        let located = match attempt {
            Ok((located, 101)) => located,
            Ok((located, _)) => {
                let reply = Reply {
                    head_request: false,
                    version: request.version,
                    keep_alive: false,
                };
                return self.respond_once(reply, conn, located, &scratch, client);
            }
            Err(Attempt::Stale(e)) => {
                return self.fail(client, ProxyError::Upstream(e), Next::Close)
            }
            Err(Attempt::Failed(e)) => return self.fail(client, e, Next::Close),
            Err(Attempt::ClientGone) => return Answer::nobody_left(),
            Err(Attempt::BadBody(e)) => return bad_body(client, e),
        };
        drop((request, outgoing));
        let switched = located
            .bytes(&mut conn.transport, &scratch)
            .map_err(HeadError::Io)
            .and_then(ResponseHead::parse)
            .and_then(|response| {
                write_switching_head(&mut client.writer, &response).map_err(HeadError::Io)
            });
        let sent = switched.is_ok() && client.writer.flush().is_ok();
        let answer = Answer::new(101, 0, Next::Close);
        if !sent {
            return answer;
        }
        located.consume(&mut conn.transport);
        let client_early = client.reader.buffer().to_vec();
        let (upstream_early, transport) = conn.transport.into_tunnel();
        // Either end of a tunnel may pause as long as it likes.
        client.writer.get_ref().set_write_timeout(None);
        METRICS.tunnels_total.inc();
        let _tunnel = METRICS.tunnels.open();
        let result = client
            .writer
            .get_ref()
            .try_clone()
            .and_then(|client_write| {
                tunnel::pipe(
                    client.reader.get_mut(),
                    client_write,
                    &client_early,
                    transport,
                    &upstream_early,
                )
            });
        if let Err(e) = result {
            crate::log!(2, "tunnel ended with an error: {e}");
        }
        answer
    }

    fn fail(&self, client: &mut Client, error: ProxyError, next: Next) -> Answer {
        crate::log!(0, "error while proxying request: {error}");
        local(&mut client.writer, &error.response(), next)
    }

    /// Writes the request and reads the response head; returns where the head is
    /// and its status code.
    ///
    /// `place` is the connection's place among the pool's counted ones, which a
    /// streamed request body or a slow answer gives up (see [`Place::detach`]);
    /// `None` for an upgrade's connection, which has none.
    fn attempt(
        &self,
        conn: &mut Connection,
        mut place: Option<&mut Place>,
        request: &Request,
        outgoing: &mut Outgoing,
        client: &mut Client,
        scratch: &mut Vec<u8>,
    ) -> Result<(Located, u16), Attempt> {
        let end = HeadEnd::new(outgoing.framing());
        let token = request.token.as_ref();
        let body: &[u8] = match outgoing {
            Outgoing::Buffered { bytes, .. } => bytes,
            _ => &[],
        };
        let transport = &mut conn.transport;
        write_all_vectored(transport, &mut request.head.slices(token, &end, body))
            .and_then(|()| transport.flush())
            .map_err(Attempt::Stale)?;
        client.trace.bytes_in = body.len() as u64;
        if let Outgoing::Stream {
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
                    .map_err(|e| Attempt::Failed(ProxyError::Upstream(e)))?;
            }
            let mut body = BodyReader::resume(&mut client.reader, *rest);
            let mut on_idle = stall_limit(self.timeouts.header);
            let mut sent = prefix.len() as u64;
            let copied = body::copy(&mut body, &mut out, encoding, &mut sent, &mut on_idle);
            client.trace.bytes_in = sent;
            match copied {
                Ok(()) => {}
                Err(CopyError::Read(e)) => return Err(Attempt::BadBody(e)),
                Err(CopyError::Write(e)) => return Err(Attempt::Failed(ProxyError::Upstream(e))),
            }
        }
        read_response_head(
            conn,
            client.reader.get_ref(),
            scratch,
            request.upgrade,
            place,
        )
    }

    /// Streams the response to the client, then gives the connection back to
    /// the pool if it is clean and reusable. An answer whose body goes quiet (a
    /// stream the request did not announce) stops counting against the pool's
    /// limit, so it cannot keep short requests waiting.
    fn respond(
        &self,
        reply: Reply,
        mut lease: Lease,
        located: Located,
        scratch: &[u8],
        client: &mut Client,
    ) -> Answer {
        let (conn, place) = lease.parts();
        let (answer, reusable) =
            self.stream_back(reply, conn, located, scratch, client, Some(place));
        if reusable {
            lease.give_back();
        }
        answer
    }

    /// A response on a connection outside the pool (a refused upgrade's).
    fn respond_once(
        &self,
        reply: Reply,
        mut conn: Connection,
        located: Located,
        scratch: &[u8],
        client: &mut Client,
    ) -> Answer {
        self.stream_back(reply, &mut conn, located, scratch, client, None)
            .0
    }

    /// Writes the response head and streams the body to the client; returns
    /// what was sent and whether the connection may serve another request.
    fn stream_back(
        &self,
        reply: Reply,
        conn: &mut Connection,
        located: Located,
        scratch: &[u8],
        client: &mut Client,
        mut place: Option<&mut Place>,
    ) -> (Answer, bool) {
        let parsed = located
            .bytes(&mut conn.transport, scratch)
            .map_err(HeadError::Io)
            .and_then(ResponseHead::parse)
            .and_then(|response| {
                let kind = response.body_kind(reply.head_request)?;
                Ok((response, kind))
            });
        let (response, kind) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                return (
                    self.fail(client, ProxyError::BadResponse(e), Next::Close),
                    false,
                )
            }
        };
        let mut next = if reply.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let encoding = match kind {
            BodyKind::Empty | BodyKind::Length(_) => Encoding::Identity,
            _ if reply.version == Version::Http11 => Encoding::Chunked,
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
            return (Answer::new(code, 0, Next::Close), false);
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
                (Answer::new(code, sent, next), reusable)
            }
            Err(CopyError::Read(e)) => {
                // Cut mid-body: close without the final chunk, so the client sees it cut.
                crate::log!(
                    0,
                    "error while proxying request: response body from the API server failed: {e}"
                );
                (Answer::new(code, sent, Next::Close), false)
            }
            Err(CopyError::Write(_)) => (Answer::new(code, sent, Next::Close), false),
        }
    }
}

/// Reads the API server's response head, skipping interim 1xx responses.
/// A 101 is an answer only to a request that asked for an upgrade.
///
/// While the API server thinks (reads wake every [`crate::upstream::READ_WAKE`]), a
/// client that has gone ends the wait.
/// An answer slower than a read's wake-up gives up its place among the
/// pool's counted connections (`place`), so that requests behind it do not
/// wait for it.
fn read_response_head(
    conn: &mut Connection,
    client: &Stream,
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
            Err(HeadError::Io(e)) => return Err(Attempt::Failed(ProxyError::Upstream(e))),
            Err(e) => return Err(Attempt::Failed(ProxyError::BadResponse(e))),
        };
        let code = located
            .bytes(&mut conn.transport, buf)
            .map(ResponseHead::code_of)
            .map_err(|e| Attempt::Failed(ProxyError::Upstream(e)))?;
        match code {
            101 if upgrade => return Ok((located, code)),
            101 => {
                return Err(Attempt::Failed(ProxyError::BadResponse(
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

/// Time to the response head, observed in the histogram, with whether the
/// connection was reused: for the request's log line.
fn upstream_time(sent: Instant, reused: bool) -> (Duration, bool) {
    let took = sent.elapsed();
    METRICS.upstream_seconds.observe(took);
    (took, reused)
}

/// Lets a client's body be still for at most `limit` before giving up on it.
fn stall_limit(limit: Duration) -> impl FnMut(Duration) -> Result<(), CopyError> {
    move |still| match still < limit {
        true => Ok(()),
        false => Err(CopyError::Read(io::ErrorKind::TimedOut.into())),
    }
}

/// The client's request body broke its framing (400) or stalled (408): say so
/// and close, since where its next request would start is unknown.
fn bad_body(client: &mut Client, e: io::Error) -> Answer {
    let response = match e.kind() {
        io::ErrorKind::TimedOut => Reason::RequestTimeout
            .answer("the request body stopped for longer than --header-timeout"),
        io::ErrorKind::InvalidData => Reason::BadRequest.answer(&format!("bad request body: {e}")),
        _ => return Answer::nobody_left(),
    };
    local(&mut client.writer, &response, Next::Close)
}
