//! The connection and its exchanges, in-process: a client on one end of a
//! `UnixStream::pair()`, [`Proxy::serve`] on the other, the pool dialing a
//! fake API server over more pairs ([`FakeApi`]). No binary, no port, no TLS:
//! each test runs in milliseconds and says exactly what went up and what came
//! back. What needs the real binary (flags, signals, TLS, the image, memory)
//! stays in tests/.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod bodies;
mod failures;
mod forwarding;
mod refusals;
mod streams;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{Lifecycle, Proxy};
use crate::leaves::budget::Budget;
use crate::leaves::socket::Socket;
use crate::pipeline::exchange::{Client, ClientTimeouts, Shared};
use crate::pipeline::route::filter::{Filter, DEFAULT_REJECT_METHODS, DEFAULT_REJECT_PATHS};
use crate::pipeline::route::patterns::Patterns;
use crate::pipeline::route::Router;
use crate::services::credentials::{Credentials, TokenSource};
use crate::services::upstream::fake::FakeApi;
use crate::services::upstream::{Pool, Upstream};

/// The API server's authority, as the Host sent upstream.
const AUTHORITY: &str = "10.96.0.1:443";
/// The token kproxy adds unless a test sets another source.
const TOKEN: &str = "t0k3n";

/// How a test's kproxy is set up; [`Setup::default`] is `kubectl proxy`'s
/// defaults with a fixed token.
struct Setup {
    filter: Option<Filter>,
    api_prefix: String,
    path_prefix: String,
    token: TokenSource,
    impersonation: Option<Vec<u8>>,
    limit: usize,
    timeouts: ClientTimeouts,
    budget: usize,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            filter: Some(filter(DEFAULT_REJECT_PATHS, DEFAULT_REJECT_METHODS)),
            api_prefix: "/".into(),
            path_prefix: String::new(),
            token: TokenSource::fixed(TOKEN).unwrap(),
            impersonation: None,
            limit: 4,
            timeouts: ClientTimeouts {
                header: Duration::from_secs(5),
                idle: Duration::from_secs(30),
            },
            budget: 4 << 20,
        }
    }
}

/// kubectl's filter with these reject lists.
fn filter(reject_paths: &str, reject_methods: &str) -> Filter {
    Filter {
        reject_paths: Patterns::parse(reject_paths).unwrap(),
        reject_methods: Patterns::parse(reject_methods).unwrap(),
        ..Filter::kubectl_defaults()
    }
}

impl Setup {
    /// kubectl's defaults, with these client timeouts (short ones, for
    /// tests of what a slow client gets).
    fn timing_out(header: Duration, idle: Duration) -> Setup {
        Setup {
            timeouts: ClientTimeouts { header, idle },
            ..Setup::default()
        }
    }

    fn start(self, api: &FakeApi) -> Kproxy {
        let proxy = Proxy {
            router: Router {
                filter: self.filter,
                api_prefix: self.api_prefix,
                www: None,
            },
            shared: Shared {
                upstream: Upstream {
                    authority: AUTHORITY.into(),
                    path_prefix: self.path_prefix,
                    // Counts of connections are exact: no request asks for
                    // one of its own because a loaded machine dialed slowly
                    // (that rule is the pool's own tests' business).
                    pool: Pool::patient(api.clone(), self.limit),
                },
                credentials: Credentials {
                    authorization: self.token,
                    impersonation: self.impersonation,
                },
                budget: Budget::new(self.budget),
                timeouts: self.timeouts,
                keepalive: None,
            },
        };
        Kproxy {
            proxy: Arc::new(proxy),
        }
    }
}

/// A kproxy without a listener: each [`Kproxy::connect`] is a client connection.
struct Kproxy {
    proxy: Arc<Proxy>,
}

/// Never shutting down.
struct Running;

impl Lifecycle for Running {
    fn idle(&self) -> bool {
        true
    }

    fn busy(&self) {}
}

impl Kproxy {
    /// kubectl's defaults in front of `api`.
    fn new(api: &FakeApi) -> Kproxy {
        Setup::default().start(api)
    }

    /// Waits until the pool keeps `n` idle connections: a connection's thread
    /// gives its lease back just after the client has read the answer.
    fn wait_idle(&self, n: usize) {
        let pool = &self.proxy.shared.upstream.pool;
        wait_until("idle connections in the pool", || pool.idle() == n);
    }

    /// A client on a unix socket (no address: no X-Forwarded-For of its own).
    fn connect(&self) -> Conn {
        self.connect_from(None)
    }

    /// A client at `peer`, as the listener would give a TCP client's address.
    fn connect_from(&self, peer: Option<IpAddr>) -> Conn {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let served = {
            let proxy = self.proxy.clone();
            let socket = Socket::Unix(theirs);
            // As the listener does for each client it accepts.
            socket.set_read_wake();
            let write_half = socket.try_clone().unwrap();
            thread::spawn(move || {
                let mut client = Client::new(socket, write_half, peer);
                proxy.serve(&mut client, &Running);
            })
        };
        Conn {
            writer: ours.try_clone().unwrap(),
            reader: BufReader::new(ours),
            served,
        }
    }
}

/// The client's end of a connection to kproxy.
struct Conn {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    served: JoinHandle<()>,
}

/// A response as the client read it.
#[derive(Debug)]
struct Response {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The rule named in a kproxy `Status` (`details.causes[0].reason`).
    fn reason(&self) -> Option<String> {
        let text = self.text();
        let (_, rest) = text.split_once(r#""causes":[{"reason":""#)?;
        Some(rest.split('"').next()?.to_string())
    }
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends `request` (a whole head, and any body) and reads the answer.
    fn request(&mut self, request: &str) -> Response {
        self.send(request.as_bytes());
        self.response()
    }

    /// `GET path` with an accepted Host.
    fn get(&mut self, path: &str) -> Response {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    }

    /// The next response: head, then the body its framing says.
    fn response(&mut self) -> Response {
        let response = self.head();
        let bodiless = matches!(response.code, 100..=199 | 204 | 304);
        let body = if bodiless {
            Vec::new()
        } else if response
            .header("Transfer-Encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            let mut body = Vec::new();
            while let Some(chunk) = self.chunk() {
                body.extend(chunk);
            }
            body
        } else if let Some(length) = response.header("Content-Length") {
            let mut body = vec![0; length.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
            body
        } else {
            self.rest()
        };
        Response { body, ..response }
    }

    /// A response head only (for HEAD requests, streams and upgrades).
    fn head(&mut self) -> Response {
        let status = self.line();
        assert!(
            status.starts_with("HTTP/1.1 "),
            "not a response: {status:?}"
        );
        let code = status[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Response {
            code,
            headers,
            body: Vec::new(),
        }
    }

    /// The next chunk of a chunked body; `None` at its end.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = usize::from_str_radix(&self.line(), 16).unwrap();
        if size == 0 {
            assert_eq!(self.line(), "", "trailers or junk after the last chunk");
            return None;
        }
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        assert!(chunk.ends_with(b"\r\n"));
        chunk.truncate(size);
        Some(chunk)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "cut short: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Everything until kproxy closes the connection.
    fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest
    }

    /// Whether kproxy closed the connection (and ended its thread) without
    /// sending anything more.
    fn is_closed(&mut self) -> bool {
        let closed = self.rest().is_empty();
        wait_until("the connection's thread ended", || {
            self.served.is_finished()
        });
        closed
    }
}

/// Waits (at most 10 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}
