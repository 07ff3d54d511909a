//! One client connection: its requests, in order, each routed, forwarded and answered.
//!
//! ```text
//!   read request head ──► route: Host, Origin, path, prefix, filter ──► refuse: 301/400/403/404
//!        ▲                         │
//!        │                         ▼
//!        │            build the upstream head; the client's head buffer goes
//!        │                         │
//!        │                         ▼
//!        │            forward (see [`crate::forward`]): body, API server, answer
//!        │                         │
//!        └─ keep-alive ◄───────────┘
//! ```
//!
//! What one connection holds is bounded: an 8 KiB read buffer, what it gathers
//! to write, and the upstream head of the request in flight. A head or body
//! larger than that draws on a budget shared by all connections (see
//! [`crate::budget`]).

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::budget::{Budget, Grant};
use crate::config::ClientTimeouts;
use crate::credentials::Token;
use crate::error::ProxyError;
use crate::http::body::{self, BodyKind};
use crate::http::request::{RequestHead, MAX_HEAD};
use crate::http::response::LocalResponse;
use crate::http::sink::Sink;
use crate::http::{HeadClock, HeadError, HeadPolicy, Located, Version};
use crate::metrics::{Method, METRICS};
use crate::refusal::Reason;
use crate::rewrite::{Adds, Next, UpstreamHead};
use crate::route::{self, Route, Router};
use crate::stream::{self, Stream};
use crate::upstream::Upstream;
use crate::www::{self, Found, StaticFiles};

/// The client's read buffer: it holds a typical request head whole (a head
/// that fits is parsed where it lies, without a copy).
pub const CLIENT_BUFFER: usize = 8 * 1024;
/// Up to this size a request head costs nothing beyond the read buffer; a
/// larger one (the limit is 64 KiB) must get [`LARGE_HEAD_COST`] from the budget.
const FREE_HEAD: usize = CLIENT_BUFFER;
/// What a large head may hold at once: its buffer and the upstream head built
/// from it, at their largest. Shrunk to the upstream head once that is built.
const LARGE_HEAD_COST: usize = 2 * (MAX_HEAD + 1024);

/// How long a closing connection reads what its client still sends (see [`linger`]).
const LINGER: Duration = Duration::from_millis(500);
/// And how much of it, at most.
const LINGER_BYTES: usize = 1 << 20;

/// What is shared by all connections: where to send requests and what to let through.
pub struct Proxy {
    pub upstream: Upstream,
    pub router: Router,
    /// TCP keep-alive period for upgraded connections; `None`: off.
    pub keepalive: Option<Duration>,
    pub timeouts: ClientTimeouts,
    /// Memory for large heads and kept bodies, shared by all connections.
    pub budget: Budget,
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
    pub writer: Sink<Stream>,
    /// The client's address, appended to X-Forwarded-For (none on a unix socket).
    pub peer: Option<IpAddr>,
    /// What the request in flight did upstream, for its log line.
    pub trace: Trace,
}

/// What a forwarded request did on the API server's side.
#[derive(Default)]
pub struct Trace {
    /// Request body bytes sent on.
    pub bytes_in: u64,
    /// Time from sending to the response head, and whether the connection was reused.
    pub upstream: Option<(Duration, bool)>,
}

impl Client {
    pub fn new(read_half: Stream, write_half: Stream, peer: Option<IpAddr>) -> Self {
        Client {
            reader: BufReader::with_capacity(CLIENT_BUFFER, read_half),
            writer: Sink::new(write_half),
            peer,
            trace: Trace::default(),
        }
    }
}

/// A request that passed routing, ready for the API server: all that is left
/// of its head once the head's buffer can go.
pub struct Request {
    pub head: UpstreamHead,
    /// The token to add; `None` when the client brought its own credentials.
    pub token: Option<Token>,
    pub body: BodyKind,
    pub expects_continue: bool,
    pub version: Version,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// A watch or followed logs: it gets an API server connection of its own.
    pub long_lived: bool,
}

/// What became of a request head.
enum Step {
    /// Answered by kproxy itself (a refusal, a redirect, its own paths).
    Answered(Answer),
    Forward(Request),
}

/// What was sent to the client, for the metrics and the request log line.
pub struct Answer {
    pub code: u16,
    pub bytes: u64,
    pub next: Next,
    /// Why kproxy answered itself, if it refused the request.
    pub reason: Option<Reason>,
}

impl Answer {
    /// What was sent, with no refusal behind it.
    pub fn new(code: u16, bytes: u64, next: Next) -> Answer {
        Answer {
            code,
            bytes,
            next,
            reason: None,
        }
    }

    /// The client went away mid-request: nothing was or can be answered.
    pub fn nobody_left() -> Answer {
        Answer::new(0, 0, Next::Close)
    }
}

/// What a request head may cost while it comes in: the header timeout from its
/// first byte, and past [`FREE_HEAD`] a share of the budget.
struct HeadRoom<'p> {
    clock: HeadClock,
    budget: &'p Budget,
    grant: Option<Grant<'p>>,
}

impl HeadPolicy for HeadRoom<'_> {
    fn admit(&mut self, len: usize) -> Result<(), HeadError> {
        self.clock.check()?;
        if len > FREE_HEAD && self.grant.is_none() {
            let grant = self.budget.reserve(LARGE_HEAD_COST);
            self.grant = Some(grant.ok_or(HeadError::NoRoom)?);
        }
        Ok(())
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
            let mut room = HeadRoom {
                clock: HeadClock::new(self.timeouts.header),
                budget: &self.budget,
                grant: None,
            };
            let located = self.next_head(client, &mut head_buf, &mut room);
            life.busy();
            let located = match located {
                Ok(Some(located)) => located,
                // Closed between requests, or mid-head: nothing to answer.
                Ok(None) | Err(HeadError::Io(_) | HeadError::Truncated) => return,
                Err(e) => {
                    crate::log!(2, "refused a request from {}: {e}", peer_name(client.peer));
                    let refusal = ProxyError::BadRequest(e).response();
                    let _ = refusal.write_to(&mut client.writer, false);
                    METRICS.request(Method::OTHER, refusal.code);
                    METRICS.refused(refusal.reason.unwrap_or(Reason::BadRequest));
                    return linger(client);
                }
            };
            let started = Instant::now();
            client.trace = Trace::default();
            let bytes = match located {
                Located::InReader(len) => &client.reader.buffer()[..len],
                Located::Copied(len) => &head_buf[..len],
            };
            let (step, method, logged) = match RequestHead::parse(bytes) {
                Ok(head) => {
                    let logged = crate::log::enabled(4).then(|| Logged::of(&head));
                    let step = self.prepare(&head, &mut client.writer, client.peer);
                    (step, Method::of(head.method), logged)
                }
                Err(e) => (
                    Step::Answered(refuse_head(&mut client.writer, e)),
                    Method::OTHER,
                    None,
                ),
            };
            located.consume(&mut client.reader);
            // The head's buffer goes now: the upstream head holds what is needed.
            if head_buf.capacity() > FREE_HEAD {
                head_buf = Vec::new();
            }
            let answer = match step {
                Step::Answered(answer) => answer,
                Step::Forward(request) => {
                    let mut grant = room.grant;
                    if let Some(grant) = &mut grant {
                        grant.shrink_to(request.head.len());
                    }
                    self.forward(request, client, grant)
                }
            };
            METRICS.request(method, answer.code);
            METRICS.bytes_to_server.add(client.trace.bytes_in);
            METRICS.bytes_to_clients.add(answer.bytes);
            if let Some(reason) = answer.reason {
                METRICS.refused(reason);
            }
            if let Some(logged) = logged {
                logged.write(&answer, &client.trace, client.peer, started.elapsed());
            }
            client.writer.trim();
            if answer.next == Next::Close {
                return linger(client);
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
        room: &mut HeadRoom<'_>,
    ) -> Result<Option<Located>, HeadError> {
        buf.clear();
        let waiting = Instant::now();
        loop {
            match RequestHead::next(&mut client.reader, buf, room) {
                Err(HeadError::Io(e)) if body::is_timeout(&e) => {
                    let begun = !buf.is_empty() || !client.reader.buffer().is_empty();
                    if !begun && waiting.elapsed() >= self.timeouts.idle {
                        return Ok(None);
                    }
                    if begun {
                        room.clock.check()?;
                    }
                }
                other => return other,
            }
        }
    }

    /// Routes a request and, if it goes to the API server, builds what is sent:
    /// after this the client's head is no longer needed.
    fn prepare(&self, head: &RequestHead, writer: &mut Sink<Stream>, peer: Option<IpAddr>) -> Step {
        let kind = match head.body_kind() {
            Ok(kind) => kind,
            Err(e) => {
                let refusal = ProxyError::BadRequest(e).response();
                return Step::Answered(local(writer, &refusal, Next::Close));
            }
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
                let ok = LocalResponse::text(200, "ok");
                return Step::Answered(local(writer, &ok, after_refusal));
            }
            Ok(Route::ServerOptions) => {
                let ok = LocalResponse::empty(200);
                return Step::Answered(local(writer, &ok, after_refusal));
            }
            Ok(Route::Static(www, path)) => {
                return Step::Answered(static_file(writer, www, head, &path, after_refusal))
            }
            Err(response) => return Step::Answered(local(writer, &response, after_refusal)),
        };
        let token = match self.token_for(head) {
            Ok(token) => token,
            Err(response) => return Step::Answered(local(writer, &response, after_refusal)),
        };
        let upgrade = upgrade_protocol(head);
        let upstream = &self.upstream;
        let joined;
        let sent_target = match upstream.path_prefix.is_empty() {
            true => target,
            false => {
                joined = format!("{}{}", upstream.path_prefix, target);
                &joined
            }
        };
        let adds = Adds {
            token: token.is_some(),
            // As client-go: none of ours when the client impersonates on its own.
            impersonation: upstream
                .credentials
                .impersonation
                .as_deref()
                .filter(|_| head.headers.get("Impersonate-User").is_none()),
        };
        Step::Forward(Request {
            head: UpstreamHead::new(head, sent_target, &upstream.authority, peer, adds, upgrade),
            token,
            body: kind,
            expects_continue: head
                .headers
                .get("Expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")),
            version: head.version,
            keep_alive: head.keep_alive(),
            upgrade: upgrade.is_some(),
            long_lived: is_stream(target),
        })
    }

    /// The token to add: the current one, unless the client brought credentials
    /// of its own, which pass through as kubectl's do. As in kubectl (whose
    /// transport adds the token when `Authorization` is empty, after the
    /// hop-by-hop fields are gone), an empty `Authorization`, or one that
    /// `Connection` names, is not the client's own: it is replaced. An exec
    /// plugin that cannot give one fails the request, as in kubectl (500).
    fn token_for(&self, head: &RequestHead) -> Result<Option<Token>, LocalResponse> {
        let own = head.headers.is_end_to_end("Authorization")
            && head
                .headers
                .get("Authorization")
                .is_some_and(|v| !v.trim_ascii().is_empty());
        match own {
            true => Ok(None),
            false => self
                .upstream
                .credentials
                .authorization
                .current()
                .map_err(|e| Reason::Credentials.answer(&e)),
        }
    }
}

/// Whether a request asks for an answer that streams for as long as the client
/// likes: `?watch=true` (or `1`), the old `/watch/` paths, `?follow=true` logs.
fn is_stream(target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let asks = |name: &str| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key == name && matches!(value, "true" | "1"))
        })
    };
    let mut segments = path.split('/').skip(1);
    let watch_path = match segments.next() {
        Some("api") => segments.nth(1) == Some("watch"),
        Some("apis") => segments.nth(2) == Some("watch"),
        _ => false,
    };
    watch_path || asks("watch") || asks("follow")
}

/// The protocol asked for, if the request is an upgrade: a `Connection` header
/// containing `upgrade` (kubectl's test) and an `Upgrade` header to say to what.
fn upgrade_protocol<'b>(head: &RequestHead<'b>) -> Option<&'b [u8]> {
    if !head.headers.has_token("Connection", "upgrade") {
        return None;
    }
    head.headers.get("Upgrade").filter(|p| !p.is_empty())
}

/// A head that `head_len` accepted but httparse then did not: cannot happen, but
/// if it did, the client's framing is unknown.
fn refuse_head(writer: &mut Sink<Stream>, e: HeadError) -> Answer {
    local(writer, &ProxyError::BadRequest(e).response(), Next::Close)
}

/// Writes kproxy's own answer.
pub fn local(writer: &mut Sink<Stream>, response: &LocalResponse, next: Next) -> Answer {
    let next = match response.write_to(writer, next == Next::KeepAlive) {
        Ok(()) => next,
        Err(_) => Next::Close,
    };
    Answer {
        reason: response.reason,
        code: response.code,
        bytes: response.body.len() as u64,
        next,
    }
}

/// Closes a connection on which the client may still be sending (the body of a
/// refused request, say). Closing with input unread makes the kernel send a
/// reset, which can destroy the answer before the client reads it; so, as Go's
/// server does, half-close first and read what comes for a moment.
fn linger(client: &mut Client) {
    let socket = client.writer.get_ref();
    let unread = !client.reader.buffer().is_empty()
        || stream::peek(&socket.sock_ref()) == stream::Peeked::Data;
    if !unread {
        return;
    }
    socket.shutdown(std::net::Shutdown::Write);
    let _ = socket.set_read_timeout(Some(LINGER));
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0;
    while Instant::now() < deadline && discarded < LINGER_BYTES {
        let len = match client.reader.fill_buf() {
            Ok([]) => return,
            Ok(data) => data.len(),
            Err(e) if body::is_timeout(&e) => continue,
            Err(_) => return,
        };
        client.reader.consume(len);
        discarded += len;
    }
}

/// A `--www` file, streamed. `path` is the canonical, decoded form of the
/// request's path.
fn static_file(
    writer: &mut Sink<Stream>,
    www: &StaticFiles,
    head: &RequestHead,
    path: &str,
    next: Next,
) -> Answer {
    match www.find(path) {
        Found::File(file, len, content_type) => {
            let head_only = head.method == "HEAD";
            let keep = next == Next::KeepAlive;
            match www::send(writer, file, len, content_type, head_only, keep) {
                Ok(bytes) => Answer::new(200, bytes, next),
                Err(_) => Answer::new(200, 0, Next::Close),
            }
        }
        // The client's own escaping and query, as Go's FileServer keeps them: the
        // decoded path could hold a `?` or `#` that would change what it names.
        Found::AddSlash => {
            let slashed = format!("{}/", head.path());
            local(writer, &route::moved(&slashed, head.query()), next)
        }
        Found::Refused(response) => local(writer, &response, next),
    }
}

/// The request line's method and target, kept past the head's buffer for
/// the log line (only made at `-v 4` and above).
struct Logged {
    method: String,
    target: String,
}

impl Logged {
    /// The path, and from `-v 6` the query string too (which may name objects
    /// or label values an operator does not want in every log line).
    fn of(head: &RequestHead) -> Logged {
        let target = match crate::log::enabled(6) {
            true => head.origin_form(),
            false => head.path(),
        };
        Logged {
            method: head.method.to_string(),
            target: target.to_string(),
        }
    }

    fn write(&self, answer: &Answer, trace: &Trace, client: Option<IpAddr>, took: Duration) {
        crate::log::RequestLine {
            method: &self.method,
            target: &self.target,
            status: answer.code,
            bytes_in: trace.bytes_in,
            bytes_out: answer.bytes,
            took,
            upstream: trace.upstream,
            client,
            reason: answer.reason,
        }
        .write();
    }
}

fn peer_name(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unix socket".into(), |ip| ip.to_string())
}

/// For interim answers (`100 Continue`) that must reach the client now.
pub fn send_now(writer: &mut Sink<Stream>, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::is_stream;

    #[test]
    fn streams_are_told_by_their_target() {
        for target in [
            "/api/v1/namespaces/default/pods?watch=true",
            "/api/v1/pods?labelSelector=a&watch=1",
            "/api/v1/watch/namespaces/default/pods",
            "/apis/apps/v1/watch/deployments",
            "/api/v1/namespaces/default/pods/p/log?follow=true&container=main",
        ] {
            assert!(is_stream(target), "{target}");
        }
        for target in [
            "/api/v1/namespaces/default/pods",
            "/api/v1/pods?watch=false",
            "/api/v1/namespaces/watch/pods",
            "/api/v1/namespaces/default/pods/p/log",
            "/api/v1/pods?resourceVersionMatch=NotOlderThan&xwatch=1",
        ] {
            assert!(!is_stream(target), "{target}");
        }
    }
}
