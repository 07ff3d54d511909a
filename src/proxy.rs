//! One client connection: its requests, in order, each forwarded and answered.
//!
//! ```text
//!   read request head ──► route: prefix, Host, filter ──► refuse: 400/403/404
//!        ▲                         │
//!        │                         ▼
//!        │            send head (+ body) to the API server on a pooled
//!        │            connection; one retry on a fresh one if it was stale
//!        │                         │
//!        │                         ▼
//!        └─ keep-alive ◄── stream the response back, piece by piece
//! ```
//!
//! Framing is re-done on each side: a chunked or close-delimited response goes
//! to an HTTP/1.1 client chunked (the connection stays usable) and to an HTTP/1.0
//! client close-delimited.

use std::io::{self, BufReader, BufWriter, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::ClientTimeouts;
use crate::credentials::Token;
use crate::error::ProxyError;
use crate::http::body::{self, BodyKind, BodyReader, CopyError, Encoding, Paused};
use crate::http::request::RequestHead;
use crate::http::response::{LocalResponse, ResponseHead};
use crate::http::{HeadClock, HeadError, Version};
use crate::rewrite::{self, response_head, switching_head, Framing, Next};
use crate::route::{Route, Router};
use crate::stream::{self, Stream};
use crate::tunnel;
use crate::upstream::{Connection, Upstream};

/// Request bodies up to this size are read before they are sent, so that a
/// request on a stale pooled connection can be sent again on a fresh one.
const MAX_REPLAYABLE_BODY: u64 = 64 * 1024;
/// Client-side buffers. A request head is read into its own growing buffer and
/// bodies pass through in pieces, so these need only hold a typical head or
/// answer; small buffers keep memory low with hundreds of clients (each costs
/// two). Larger pieces bypass the write buffer.
const CLIENT_BUFFER: usize = 8 * 1024;
/// Room for one piece read from the API server plus its chunk framing, so that a
/// chunk goes out in one write rather than three (size line, data, CRLF).
const CLIENT_WRITE_BUFFER: usize = crate::upstream::READ_BUFFER + 32;

/// What is shared by all connections: where to send requests and what to let through.
pub struct Proxy {
    pub upstream: Upstream,
    pub router: Router,
    /// TCP keep-alive period for upgraded connections; `None`: off.
    pub keepalive: Option<Duration>,
    pub timeouts: ClientTimeouts,
}

/// Lets the listener know when a connection sits between requests, so a
/// graceful shutdown can close it without cutting a request.
pub trait Lifecycle {
    /// Called before waiting for the next request; `false` means stop now.
    fn idle(&self) -> bool;
    fn busy(&self);
}

/// The client connection's two halves.
pub struct Client {
    pub reader: BufReader<Stream>,
    pub writer: BufWriter<Stream>,
    /// The client's address, appended to X-Forwarded-For (none on a unix socket).
    pub peer: Option<IpAddr>,
}

impl Client {
    pub fn new(read_half: Stream, write_half: Stream, peer: Option<IpAddr>) -> Self {
        Client {
            reader: BufReader::with_capacity(CLIENT_BUFFER, read_half),
            writer: BufWriter::with_capacity(CLIENT_WRITE_BUFFER, write_half),
            peer,
        }
    }
}

/// The body of the request to send upstream.
enum Outgoing {
    None,
    /// Small enough to keep: can be sent again.
    Buffered(Vec<u8>),
    /// Too large to keep: `prefix` was read ahead (and checked), the rest is
    /// streamed from the client as it is sent.
    Stream {
        kind: BodyKind,
        prefix: Vec<u8>,
        rest: Paused,
    },
}

impl Outgoing {
    fn framing(&self) -> Framing {
        match self {
            Outgoing::None => Framing::None,
            Outgoing::Buffered(bytes) => Framing::Length(bytes.len() as u64),
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

/// What was sent to the client, for the request log line.
struct Answer {
    code: u16,
    bytes: u64,
    next: Next,
}

impl Answer {
    /// The client went away mid-request: nothing was or can be answered.
    fn nobody_left() -> Answer {
        Answer {
            code: 0,
            bytes: 0,
            next: Next::Close,
        }
    }
}

impl Proxy {
    /// Serves requests on one client connection until either side closes it.
    pub fn serve(&self, client: &mut Client, life: &dyn Lifecycle) {
        let mut head_buf = Vec::new();
        loop {
            if !life.idle() {
                return;
            }
            let head = self.next_head(client, &mut head_buf);
            life.busy();
            let head = match head {
                Ok(Some(head)) => head,
                // Closed between requests, or mid-head: nothing to answer.
                Ok(None) | Err(HeadError::Io(_) | HeadError::Truncated) => return,
                Err(e) => {
                    crate::log!(2, "refused a request from {}: {e}", peer_name(client.peer));
                    let _ = ProxyError::BadRequest(e)
                        .response()
                        .write_to(&mut client.writer, false);
                    return;
                }
            };
            let started = Instant::now();
            let answer = self.handle(&head, client);
            crate::log!(
                4,
                "{} {} {} {}B {:.3}ms",
                head.method,
                head.path(),
                answer.code,
                answer.bytes,
                started.elapsed().as_secs_f64() * 1e3
            );
            if answer.next == Next::Close {
                return;
            }
        }
    }

    /// Waits for the next request head: up to the idle timeout for its first byte
    /// (then the connection is closed quietly), and up to the header timeout from
    /// there for the rest (then 408): a client trickling bytes (slowloris) is
    /// dropped, and it holds only its own thread meanwhile.
    fn next_head(
        &self,
        client: &mut Client,
        buf: &mut Vec<u8>,
    ) -> Result<Option<RequestHead>, HeadError> {
        buf.clear();
        let waiting = Instant::now();
        let mut clock = HeadClock::new(self.timeouts.header);
        loop {
            match RequestHead::resume(&mut client.reader, buf, Some(&mut clock)) {
                Err(HeadError::Io(e)) if body::is_timeout(&e) => {
                    if buf.is_empty() && waiting.elapsed() >= self.timeouts.idle {
                        return Ok(None);
                    }
                    if !buf.is_empty() {
                        clock.check()?;
                    }
                }
                other => return other,
            }
        }
    }

    fn handle(&self, head: &RequestHead, client: &mut Client) -> Answer {
        let kind = match head.body_kind() {
            Ok(kind) => kind,
            Err(e) => return local(client, &ProxyError::BadRequest(e).response(), Next::Close),
        };
        // A refused request's body is not read: close unless there is none.
        let after_refusal = if kind == BodyKind::Empty && head.keep_alive() {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let target = match self.router.route(head) {
            Ok(Route::Forward(target)) => target,
            Ok(Route::Alive) => {
                return local(client, &LocalResponse::text(200, "ok"), after_refusal)
            }
            Ok(Route::ServerOptions) => {
                return local(client, &LocalResponse::empty(200), after_refusal)
            }
            Err(response) => return local(client, &response, after_refusal),
        };
        let outgoing = match self.receive_body(head, kind, client) {
            Ok(outgoing) => outgoing,
            Err(CopyError::Read(e)) => return bad_body(client, e),
            Err(CopyError::Write(_)) => return Answer::nobody_left(),
        };
        let token = self.token_for(head);
        if let Some(protocol) = upgrade_protocol(head) {
            let upstream_head = self.upstream_head(
                head,
                target,
                client.peer,
                &outgoing,
                token.as_ref(),
                Some(protocol),
            );
            return self.upgrade(head, &upstream_head, outgoing, client);
        }
        self.forward(head, target, token, outgoing, client)
    }

    /// The request head for the API server (see [`rewrite::request_head`]).
    fn upstream_head(
        &self,
        head: &RequestHead,
        target: &str,
        peer: Option<IpAddr>,
        body: &Outgoing,
        token: Option<&Token>,
        upgrade: Option<&[u8]>,
    ) -> Vec<u8> {
        let authority = &self.upstream.authority;
        rewrite::request_head(
            head,
            target,
            authority,
            peer,
            body.framing(),
            token,
            upgrade,
        )
    }

    /// The token to add: the current one, unless the client brought its own
    /// credentials (they pass through, as with kubectl).
    fn token_for(&self, head: &RequestHead) -> Option<Token> {
        match head.headers.contains("Authorization") {
            true => None,
            false => self.upstream.config.token.current(),
        }
    }

    /// Sends the request and streams the response back. Retries once on a fresh
    /// connection when a pooled one turns out to be closed, and once with the new
    /// token when the API server refuses one that the kubelet has just rotated.
    fn forward(
        &self,
        head: &RequestHead,
        target: &str,
        mut token: Option<Token>,
        mut outgoing: Outgoing,
        client: &mut Client,
    ) -> Answer {
        let mut upstream_head =
            self.upstream_head(head, target, client.peer, &outgoing, token.as_ref(), None);
        let mut token_retried = false;
        // After a streamed body the client connection's framing is only known good if
        // the whole body was read, which an upstream failure may have prevented.
        let after_error = if outgoing.replayable() && head.keep_alive() {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let mut retried = false;
        loop {
            let mut conn = match self.upstream.get() {
                Ok(conn) => conn,
                Err(e) => return self.fail(client, ProxyError::Connect(e), after_error),
            };
            match self.attempt(
                &mut conn,
                &upstream_head,
                &mut outgoing,
                &mut client.reader,
                false,
            ) {
                Ok(response) if response.code == 401 && !token_retried && outgoing.replayable() => {
                    let fresh = token
                        .as_ref()
                        .and_then(|sent| self.upstream.config.token.newer_than(sent));
                    let Some(fresh) = fresh else {
                        return self.respond(head, conn, response, client);
                    };
                    crate::log!(2, "401 after a token rotation: retrying with the new token");
                    token_retried = true;
                    upstream_head = self.upstream_head(
                        head,
                        target,
                        client.peer,
                        &outgoing,
                        Some(&fresh),
                        None,
                    );
                    token = Some(fresh);
                }
                Ok(response) => return self.respond(head, conn, response, client),
                Err(Attempt::Stale(e)) if conn.reused && !retried && outgoing.replayable() => {
                    crate::log!(
                        2,
                        "pooled connection to the API server was closed ({e}); retrying"
                    );
                    retried = true;
                }
                Err(Attempt::Stale(e)) => {
                    return self.fail(client, ProxyError::Upstream(e), after_error)
                }
                Err(Attempt::Failed(e)) => return self.fail(client, e, after_error),
                Err(Attempt::ClientGone) => return Answer::nobody_left(),
                Err(Attempt::BadBody(e)) => return bad_body(client, e),
            }
        }
    }

    /// Reads a small body now, so that it is checked before anything goes upstream
    /// and can be sent again on a fresh connection; a large one is read ahead by
    /// [`MAX_REPLAYABLE_BODY`] and the rest streamed. Answers `Expect:
    /// 100-continue` first, since we are about to read the body.
    fn receive_body(
        &self,
        head: &RequestHead,
        kind: BodyKind,
        client: &mut Client,
    ) -> Result<Outgoing, CopyError> {
        if kind == BodyKind::Empty {
            return Ok(Outgoing::None);
        }
        let expects_continue = head
            .headers
            .get("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        if expects_continue && head.version == Version::Http11 {
            let interim = client.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            interim
                .and_then(|()| client.writer.flush())
                .map_err(CopyError::Write)?;
        }
        if let BodyKind::Length(n) = kind {
            if n > MAX_REPLAYABLE_BODY {
                let rest = BodyReader::new(&mut client.reader, kind).pause();
                return Ok(Outgoing::Stream {
                    kind,
                    prefix: Vec::new(),
                    rest,
                });
            }
        }
        let mut body = BodyReader::new(&mut client.reader, kind);
        let mut bytes = Vec::new();
        let mut on_idle = stall_limit(self.timeouts.header);
        loop {
            let data = body.fill_waiting(&mut on_idle)?;
            if data.is_empty() {
                return Ok(Outgoing::Buffered(bytes));
            }
            if (bytes.len() + data.len()) as u64 > MAX_REPLAYABLE_BODY {
                // What was read is sent first; the data just seen stays in the reader.
                return Ok(Outgoing::Stream {
                    kind,
                    prefix: bytes,
                    rest: body.pause(),
                });
            }
            let len = data.len();
            bytes.extend_from_slice(data);
            body.consume(len);
        }
    }

    /// Sends an upgrade request on a connection of its own; on 101, pipes the two
    /// connections into each other until both ends are done. Any other answer is
    /// relayed as a normal response.
    fn upgrade(
        &self,
        head: &RequestHead,
        upstream_head: &[u8],
        mut outgoing: Outgoing,
        client: &mut Client,
    ) -> Answer {
        let mut conn = match self.upstream.connect() {
            Ok(conn) => conn,
            Err(e) => return self.fail(client, ProxyError::Connect(e), Next::Close),
        };
        if let Some(period) = self.keepalive {
            stream::set_keepalive(conn.tcp(), period);
            client.writer.get_ref().set_keepalive(period);
        }
        let attempt = self.attempt(
            &mut conn,
            upstream_head,
            &mut outgoing,
            &mut client.reader,
            true,
        );
        let response = match attempt {
            Ok(response) => response,
            Err(Attempt::Stale(e)) => {
                return self.fail(client, ProxyError::Upstream(e), Next::Close)
            }
            Err(Attempt::Failed(e)) => return self.fail(client, e, Next::Close),
            Err(Attempt::ClientGone) => return Answer::nobody_left(),
            Err(Attempt::BadBody(e)) => return bad_body(client, e),
        };
        if response.code != 101 {
            let answer = self.respond(head, conn, response, client);
            return Answer {
                next: Next::Close,
                ..answer
            };
        }
        let switched = switching_head(&response);
        if client
            .writer
            .write_all(&switched)
            .and_then(|()| client.writer.flush())
            .is_err()
        {
            return Answer {
                code: 101,
                bytes: 0,
                next: Next::Close,
            };
        }
        let client_early = client.reader.buffer().to_vec();
        let upstream_early = conn.reader.buffer().to_vec();
        let result = client
            .writer
            .get_ref()
            .try_clone()
            .and_then(|client_write| {
                let upstream = conn.reader.into_inner();
                tunnel::pipe(
                    client.reader.get_mut(),
                    client_write,
                    &client_early,
                    upstream,
                    &upstream_early,
                )
            });
        if let Err(e) = result {
            crate::log!(2, "tunnel for {} ended with an error: {e}", head.path());
        }
        Answer {
            code: 101,
            bytes: 0,
            next: Next::Close,
        }
    }

    fn fail(&self, client: &mut Client, error: ProxyError, next: Next) -> Answer {
        crate::log!(0, "error while proxying request: {error}");
        local(client, &error.response(), next)
    }

    /// Writes the request and reads the response head.
    fn attempt(
        &self,
        conn: &mut Connection,
        upstream_head: &[u8],
        outgoing: &mut Outgoing,
        client_reader: &mut BufReader<Stream>,
        upgrade: bool,
    ) -> Result<ResponseHead, Attempt> {
        let writer = conn.writer();
        let sent = match outgoing {
            Outgoing::None => writer.write_all(upstream_head),
            Outgoing::Buffered(body) => {
                let mut whole = Vec::with_capacity(upstream_head.len() + body.len());
                whole.extend_from_slice(upstream_head);
                whole.extend_from_slice(body);
                writer.write_all(&whole)
            }
            Outgoing::Stream { kind, prefix, rest } => {
                writer.write_all(upstream_head).map_err(Attempt::Stale)?;
                let encoding = match kind {
                    BodyKind::Chunked => Encoding::Chunked,
                    _ => Encoding::Identity,
                };
                let mut out = BufWriter::with_capacity(CLIENT_WRITE_BUFFER, conn.writer());
                if !prefix.is_empty() {
                    body::write_piece(&mut out, prefix, encoding)
                        .map_err(|e| Attempt::Failed(ProxyError::Upstream(e)))?;
                }
                let mut body = BodyReader::resume(client_reader, *rest);
                let header_timeout = self.timeouts.header;
                return match body::copy(
                    &mut body,
                    &mut out,
                    encoding,
                    &mut stall_limit(header_timeout),
                ) {
                    Ok(_) => {
                        drop(out);
                        read_response_head(conn, client_reader.get_ref(), upgrade)
                    }
                    Err(CopyError::Read(e)) => Err(Attempt::BadBody(e)),
                    Err(CopyError::Write(e)) => Err(Attempt::Failed(ProxyError::Upstream(e))),
                };
            }
        };
        sent.map_err(Attempt::Stale)?;
        read_response_head(conn, client_reader.get_ref(), upgrade)
    }

    /// Streams the response to the client, then returns the connection to the
    /// pool if it is clean and reusable.
    fn respond(
        &self,
        head: &RequestHead,
        mut conn: Connection,
        response: ResponseHead,
        client: &mut Client,
    ) -> Answer {
        let kind = match response.body_kind(&head.method) {
            Ok(kind) => kind,
            Err(e) => return self.fail(client, ProxyError::BadResponse(e), Next::Close),
        };
        let mut next = if head.keep_alive() {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let encoding = match kind {
            BodyKind::Empty | BodyKind::Length(_) => Encoding::Identity,
            _ if head.version == Version::Http11 => Encoding::Chunked,
            // An HTTP/1.0 client knows no chunks: the body ends when we close.
            _ => {
                next = Next::Close;
                Encoding::Identity
            }
        };
        let client_head = response_head(&response, kind, encoding, next);
        if client.writer.write_all(&client_head).is_err() {
            return Answer {
                code: response.code,
                bytes: 0,
                next: Next::Close,
            };
        }
        // While the API server is quiet (a watch between events), reads wake now
        // and then to look at the client: if it has gone, stop and free the connection.
        let mut body = BodyReader::new(&mut conn.reader, kind);
        let client_side = client.reader.get_ref();
        let copied = body::copy(
            &mut body,
            &mut client.writer,
            encoding,
            &mut |_| match client_side.is_gone() {
                true => Err(CopyError::Write(io::ErrorKind::BrokenPipe.into())),
                false => Ok(()),
            },
        );
        match copied {
            Ok(bytes) => {
                if kind != BodyKind::UntilClose && response.reusable() {
                    self.upstream.put(conn);
                }
                Answer {
                    code: response.code,
                    bytes,
                    next,
                }
            }
            Err(CopyError::Read(e)) => {
                // Cut mid-body: close without the final chunk, so the client sees it cut.
                crate::log!(
                    0,
                    "error while proxying request: response body from the API server failed: {e}"
                );
                Answer {
                    code: response.code,
                    bytes: 0,
                    next: Next::Close,
                }
            }
            Err(CopyError::Write(_)) => Answer {
                code: response.code,
                bytes: 0,
                next: Next::Close,
            },
        }
    }
}

/// Reads the API server's response head, skipping interim 1xx responses.
/// A 101 is an answer only to a request that asked for an upgrade.
///
/// While the API server thinks (reads wake every [`crate::upstream::READ_WAKE`]), a
/// client that has gone ends the wait.
fn read_response_head(
    conn: &mut Connection,
    client: &Stream,
    upgrade: bool,
) -> Result<ResponseHead, Attempt> {
    let mut buf = Vec::new();
    loop {
        match ResponseHead::read(&mut conn.reader, &mut buf) {
            Err(HeadError::Io(e)) if body::is_timeout(&e) => {
                if client.is_gone() {
                    return Err(Attempt::ClientGone);
                }
            }
            Ok(Some(head)) if head.code == 101 && upgrade => return Ok(head),
            Ok(Some(head)) if head.code == 101 => {
                return Err(Attempt::Failed(ProxyError::BadResponse(
                    HeadError::Malformed(
                        "101 Switching Protocols to a request that asked for no upgrade",
                    ),
                )))
            }
            Ok(Some(head)) if (100..200).contains(&head.code) => buf.clear(),
            Ok(Some(head)) => return Ok(head),
            Ok(None) => return Err(Attempt::Stale(io::ErrorKind::UnexpectedEof.into())),
            Err(HeadError::Io(e)) if buf.is_empty() => return Err(Attempt::Stale(e)),
            Err(HeadError::Io(e)) => return Err(Attempt::Failed(ProxyError::Upstream(e))),
            Err(e) => return Err(Attempt::Failed(ProxyError::BadResponse(e))),
        }
    }
}

/// The protocol asked for, if the request is an upgrade: a `Connection` header
/// containing `upgrade` (kubectl's test) and an `Upgrade` header to say to what.
fn upgrade_protocol(head: &RequestHead) -> Option<&[u8]> {
    if !head.headers.has_token("Connection", "upgrade") {
        return None;
    }
    head.headers.get("Upgrade").filter(|p| !p.is_empty())
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
        io::ErrorKind::TimedOut => LocalResponse::text(408, "request body timed out"),
        io::ErrorKind::InvalidData => LocalResponse::text(400, &format!("bad request body: {e}")),
        _ => return Answer::nobody_left(),
    };
    local(client, &response, Next::Close)
}

fn local(client: &mut Client, response: &LocalResponse, next: Next) -> Answer {
    let next = match response.write_to(&mut client.writer, next == Next::KeepAlive) {
        Ok(()) => next,
        Err(_) => Next::Close,
    };
    Answer {
        code: response.code,
        bytes: response.body.len() as u64,
        next,
    }
}

fn peer_name(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unix socket".into(), |ip| ip.to_string())
}
