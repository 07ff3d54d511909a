//! One exchange with the API server, from a request routed to it to its answer
//! streamed back: free functions over what they need (the proxy's [`Shared`]
//! parts, the [`Client`] connection), a stage to a file:
//!
//! ```text
//!   prepare: routed head ─► Request (upstream head, token, framing)
//!        │
//!        ▼
//!   intake: request body: small ─► kept (checked whole, can be sent again)
//!                         large ─► streamed as it is sent (cannot)
//!        │
//!        ▼
//!   send: connection ─► head + token + body ─► response head
//!        │ stale, and the request is idempotent: once more on a fresh one
//!        │ 401 just after a token rotation: once more with the new token
//!        ▼
//!   respond: the answer streamed back, framed for the client   (upgrade: 101, a tunnel)
//! ```
//!
//! `heads` writes the heads kproxy sends either way; `error` says what failed
//! and what the client sees.

mod error;
mod heads;
mod intake;
mod prepare;
mod respond;
mod send;
mod upgrade;

use std::io::{BufReader, Write};
use std::net::IpAddr;
use std::time::Duration;

pub use error::{no_room, ExchangeError};
pub use heads::{Next, UpstreamHead};
pub use prepare::prepare;

use crate::leaves::budget::{Budget, Grant};
use crate::leaves::http::body::{BodyKind, CopyError};
use crate::leaves::http::response::LocalResponse;
use crate::leaves::http::sink::Sink;
use crate::leaves::http::Version;
use crate::leaves::socket::Socket;
use crate::services::credentials::{Credentials, Token};
use crate::services::upstream::Upstream;

/// The client's read buffer: it holds a typical request head whole (a head
/// that fits is parsed where it lies, without a copy).
pub const CLIENT_BUFFER: usize = 8 * 1024;

/// What every exchange needs, shared by all connections.
pub struct Shared {
    /// The API server: its connections, its Host, the path put before each request's.
    pub upstream: Upstream,
    /// What kproxy adds to a request: the token, impersonation.
    pub credentials: Credentials,
    /// Memory for large heads and kept bodies, shared by all connections.
    pub budget: Budget,
    pub timeouts: ClientTimeouts,
    /// TCP keep-alive period for upgraded connections; `None`: off.
    pub keepalive: Option<Duration>,
}

/// How long a client may take, between and within requests. Streams and
/// tunnels have no timeout.
#[derive(Clone, Copy, Debug)]
pub struct ClientTimeouts {
    /// For a request head once begun, and for a request body that stops moving.
    pub header: Duration,
    /// For the first byte of the next request on a keep-alive connection.
    pub idle: Duration,
}

/// The client connection's two halves.
pub struct Client {
    pub reader: BufReader<Socket>,
    pub writer: Sink<Socket>,
    /// The client's address, appended to X-Forwarded-For (none on a unix socket).
    pub peer: Option<IpAddr>,
    /// What the request in flight did upstream, for its log line.
    pub trace: Trace,
}

impl Client {
    pub fn new(read_half: Socket, write_half: Socket, peer: Option<IpAddr>) -> Self {
        Client {
            reader: BufReader::with_capacity(CLIENT_BUFFER, read_half),
            writer: Sink::new(write_half),
            peer,
            trace: Trace::default(),
        }
    }
}

/// What a forwarded request did on the API server's side.
#[derive(Default)]
pub struct Trace {
    /// Request body bytes sent on.
    pub bytes_in: u64,
    /// Time from sending to the response head, and whether the connection was reused.
    pub upstream: Option<(Duration, bool)>,
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

/// What became of a request: what was sent to the client, for the metrics and
/// the request's log line.
pub struct Outcome {
    pub code: u16,
    pub bytes: u64,
    pub next: Next,
    /// Why kproxy answered itself, if it refused the request.
    pub reason: Option<crate::leaves::http::refusal::Reason>,
}

impl Outcome {
    /// What was sent, with no refusal behind it.
    pub fn new(code: u16, bytes: u64, next: Next) -> Outcome {
        Outcome {
            code,
            bytes,
            next,
            reason: None,
        }
    }

    /// The client went away mid-request: nothing was or can be answered.
    pub fn nobody_left() -> Outcome {
        Outcome::new(0, 0, Next::Close)
    }
}

/// Takes in the request body, then exchanges it with the API server (or opens
/// a tunnel for an upgrade). `head_grant` is the budget a large head holds for
/// the upstream head, given back once the response head is in.
pub fn forward(
    shared: &Shared,
    request: Request,
    client: &mut Client,
    head_grant: Option<Grant>,
) -> Outcome {
    let outgoing = match intake::receive_body(shared, &request, client) {
        Ok(outgoing) => outgoing,
        Err(intake::BodyFailure::Copy(CopyError::Read(e))) => return intake::bad_body(client, e),
        Err(intake::BodyFailure::Copy(CopyError::Write(_))) => return Outcome::nobody_left(),
        Err(intake::BodyFailure::NoRoom) => {
            return local(&mut client.writer, &no_room(), Next::Close)
        }
    };
    if request.upgrade {
        return upgrade::upgrade(shared, request, outgoing, client);
    }
    send::exchange(shared, request, outgoing, client, head_grant)
}

/// Writes kproxy's own answer.
pub fn local(writer: &mut Sink<Socket>, response: &LocalResponse, next: Next) -> Outcome {
    let next = match response.write_to(writer, next == Next::KeepAlive) {
        Ok(()) => next,
        Err(_) => Next::Close,
    };
    Outcome {
        reason: response.reason,
        code: response.code,
        bytes: response.body.len() as u64,
        next,
    }
}

/// Logs what failed on the API server's side and answers the client with it.
fn fail(client: &mut Client, error: ExchangeError, next: Next) -> Outcome {
    crate::log!(0, "error while proxying request: {error}");
    local(&mut client.writer, &error.response(), next)
}

/// For interim answers (`100 Continue`) that must reach the client now.
fn send_now(writer: &mut Sink<Socket>, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes)?;
    writer.flush()
}
