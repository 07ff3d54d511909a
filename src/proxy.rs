//! One client connection: its requests, in order, each routed, exchanged with
//! the API server or answered by kproxy, then logged and counted.
//!
//! ```text
//!   read request head ──► route: Host, Origin, path, prefix, filter ──► answer: 301/400/403/404, files
//!        ▲                         │
//!        │                         ▼
//!        │            exchange::prepare: the upstream head; the client's head buffer goes
//!        │                         │
//!        │                         ▼
//!        │            exchange::forward: body, API server, answer
//!        │                         │
//!        └─ keep-alive ◄── log, count ┘
//! ```
//!
//! What one connection holds is bounded: an 8 KiB read buffer, what it gathers
//! to write, and the upstream head of the request in flight. A head or body
//! larger than that draws on a budget shared by all connections (see
//! [`crate::leaves::budget`]).

use std::io::BufRead;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::leaves::budget::{Budget, Grant};
use crate::leaves::http::body::{self, BodyKind};
use crate::leaves::http::refusal::Reason;
use crate::leaves::http::request::{RequestHead, MAX_HEAD};
use crate::leaves::http::response::LocalResponse;
use crate::leaves::http::sink::Sink;
use crate::leaves::http::{HeadClock, HeadError, HeadPolicy, Located};
use crate::leaves::socket::{self, Socket};
use crate::pipeline::exchange::{
    self, local, Client, ExchangeError, Next, Outcome, Request, Shared, Trace, CLIENT_BUFFER,
};
use crate::pipeline::route::{Route, Router};
use crate::pipeline::www;
use crate::services::metrics::{Method, METRICS};

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

/// What is shared by all connections: where requests may go, and what an
/// exchange with the API server needs.
pub struct Proxy {
    pub router: Router,
    pub shared: Shared,
}

/// Lets the listener know when a connection sits between requests, so a
/// graceful shutdown can close it without cutting a request.
pub trait Lifecycle {
    /// Called before waiting for the next request; `false` means stop now.
    fn idle(&self) -> bool;
    fn busy(&self);
}

/// What became of a request head.
enum Step {
    /// Answered by kproxy itself (a refusal, a redirect, its own paths, a file).
    Answered(Outcome),
    Forward(Request),
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
                clock: HeadClock::new(self.shared.timeouts.header),
                budget: &self.shared.budget,
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
                    let refusal = ExchangeError::BadRequest(e).response();
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
                    let logged = crate::leaves::log::enabled(4).then(|| Logged::of(&head));
                    let step = self.step(&head, &mut client.writer, client.peer);
                    (step, Method::of(head.method), logged)
                }
                // A head that `head_len` accepted but httparse then did not:
                // cannot happen, but if it did, the client's framing is unknown.
                Err(e) => {
                    let refusal = ExchangeError::BadRequest(e).response();
                    let outcome = local(&mut client.writer, &refusal, Next::Close);
                    (Step::Answered(outcome), Method::OTHER, None)
                }
            };
            located.consume(&mut client.reader);
            // The head's buffer goes now: the upstream head holds what is needed.
            if head_buf.capacity() > FREE_HEAD {
                head_buf = Vec::new();
            }
            let outcome = match step {
                Step::Answered(outcome) => outcome,
                Step::Forward(request) => {
                    let mut grant = room.grant;
                    if let Some(grant) = &mut grant {
                        grant.shrink_to(request.head.len());
                    }
                    exchange::forward(&self.shared, request, client, grant)
                }
            };
            METRICS.request(method, outcome.code);
            METRICS.bytes_to_server.add(client.trace.bytes_in);
            METRICS.bytes_to_clients.add(outcome.bytes);
            if let Some(reason) = outcome.reason {
                METRICS.refused(reason);
            }
            if let Some(logged) = logged {
                logged.write(&outcome, &client.trace, client.peer, started.elapsed());
            }
            client.writer.trim();
            if outcome.next == Next::Close {
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
                    if !begun && waiting.elapsed() >= self.shared.timeouts.idle {
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

    /// Routes a request: answers it here, or makes what goes to the API server.
    fn step(&self, head: &RequestHead, writer: &mut Sink<Socket>, peer: Option<IpAddr>) -> Step {
        let kind = match head.body_kind() {
            Ok(kind) => kind,
            Err(e) => {
                let refusal = ExchangeError::BadRequest(e).response();
                return Step::Answered(local(writer, &refusal, Next::Close));
            }
        };
        // A refused request's body is not read: close unless there is none.
        let after_refusal = if kind == BodyKind::Empty && head.keep_alive() {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let answered = match self.router.route(head) {
            Ok(Route::Forward(target)) => {
                match exchange::prepare(&self.shared, head, target, kind, peer) {
                    Ok(request) => return Step::Forward(request),
                    Err(response) => response,
                }
            }
            Ok(Route::Alive) => LocalResponse::text(200, "ok"),
            Ok(Route::ServerOptions) => LocalResponse::empty(200),
            Ok(Route::Static(files, path)) => {
                let outcome = www::serve(writer, files, head, &path, after_refusal);
                return Step::Answered(outcome);
            }
            Err(response) => response,
        };
        Step::Answered(local(writer, &answered, after_refusal))
    }
}

/// Closes a connection on which the client may still be sending (the body of a
/// refused request, say). Closing with input unread makes the kernel send a
/// reset, which can destroy the answer before the client reads it; so, as Go's
/// server does, half-close first and read what comes for a moment.
fn linger(client: &mut Client) {
    let socket = client.writer.get_ref();
    let unread = !client.reader.buffer().is_empty()
        || socket::peek(&socket.sock_ref()) == socket::Peeked::Data;
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
        let target = match crate::leaves::log::enabled(6) {
            true => head.origin_form(),
            false => head.path(),
        };
        Logged {
            method: head.method.to_string(),
            target: target.to_string(),
        }
    }

    fn write(&self, outcome: &Outcome, trace: &Trace, client: Option<IpAddr>, took: Duration) {
        crate::leaves::log::RequestLine {
            method: &self.method,
            target: &self.target,
            status: outcome.code,
            bytes_in: trace.bytes_in,
            bytes_out: outcome.bytes,
            took,
            upstream: trace.upstream,
            client,
            reason: outcome.reason.map(Reason::label),
        }
        .write();
    }
}

fn peer_name(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unix socket".into(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests;
