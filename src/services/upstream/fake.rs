//! A fake API server for in-process tests: a [`Dial`] whose connections are
//! one end of a `UnixStream::pair()`, the other end served by a thread that
//! reads each request and answers as the test's script says. No TLS, no port,
//! no binary: the exchange and the pool are tested as they run, in
//! milliseconds. (The spawned-binary tests in tests/ keep the real TLS server.)

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use super::{ConnectError, Connection, Dial, Transport, READ_WAKE};
use crate::leaves::socket::Socket;

/// A request as the fake API server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which connection it came on: 1 for the first one dialed.
    pub conn: usize,
    pub method: String,
    pub target: String,
    /// In the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// It came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Seen {
    /// The first value of `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many fields named `name` came.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// What the fake API server does with a request.
pub enum Reply {
    /// A complete answer with a Content-Length.
    Answer {
        code: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// A chunked answer: these pieces, each after `pause`.
    Chunks(Vec<Vec<u8>>, Duration),
    /// A watch: an event every `Duration` until the client side stops reading
    /// (the write fails), which [`FakeApi::watches_ended`] counts.
    Watch(Duration),
    /// An answer without a length: the body, then the connection closes.
    UntilClose(Vec<u8>),
    /// These bytes as they are; the connection then reads the next request.
    Raw(Vec<u8>),
    /// These bytes as they are, then the connection closes.
    RawThenClose(Vec<u8>),
    /// The connection closes without an answer.
    Close,
    /// `101 Switching Protocols` to the protocol asked for, then every byte
    /// that comes is sent back.
    Echo,
}

impl Reply {
    /// `200` with a JSON body.
    pub fn json(body: &str) -> Reply {
        Reply::status(200, body)
    }

    /// `code` with a JSON body.
    pub fn status(code: u16, body: &str) -> Reply {
        Reply::Answer {
            code,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The fake API server; clones share it. Hand one to [`super::Pool::new`],
/// keep another to look at what it saw.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Inner>,
}

struct Inner {
    script: Box<Script>,
    seen: Mutex<Vec<Seen>>,
    dials: AtomicUsize,
    closed: AtomicUsize,
    watches_ended: AtomicUsize,
    generation: AtomicU64,
    refuse: AtomicBool,
    /// While true, dials wait.
    held: Mutex<bool>,
    released: Condvar,
}

impl FakeApi {
    /// A server that answers each request with `script`'s reply.
    pub fn new(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeApi {
        FakeApi {
            inner: Arc::new(Inner {
                script: Box::new(script),
                seen: Mutex::new(Vec::new()),
                dials: AtomicUsize::new(0),
                closed: AtomicUsize::new(0),
                watches_ended: AtomicUsize::new(0),
                generation: AtomicU64::new(0),
                refuse: AtomicBool::new(false),
                held: Mutex::new(false),
                released: Condvar::new(),
            }),
        }
    }

    /// A server that answers every request `200 {"kind":"Status"}`-like JSON
    /// naming its path: `{"path":"/api"}`.
    pub fn echo_paths() -> FakeApi {
        FakeApi::new(|seen| Reply::json(&format!("{{\"path\":{:?}}}", seen.target)))
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen()
            .pop()
            .expect("the fake API server saw no request")
    }

    /// Connections dialed so far.
    pub fn dials(&self) -> usize {
        self.inner.dials.load(Ordering::SeqCst)
    }

    /// Connections whose other end kproxy has closed (or the script closed).
    pub fn closed(&self) -> usize {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Watches ([`Reply::Watch`]) that ended because nobody read them any more.
    pub fn watches_ended(&self) -> usize {
        self.inner.watches_ended.load(Ordering::SeqCst)
    }

    /// New dials fail, as with nothing listening.
    pub fn refuse(&self, refuse: bool) {
        self.inner.refuse.store(refuse, Ordering::SeqCst);
    }

    /// New dials wait until [`FakeApi::release`].
    pub fn hold(&self) {
        *self.inner.held.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.inner.held.lock().unwrap() = false;
        self.inner.released.notify_all();
    }

    /// The TLS settings changed (a CA rotation): connections of older
    /// generations are not used again.
    pub fn rotate(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Dial for FakeApi {
    fn connect(&self) -> Result<Connection, ConnectError> {
        let inner = &self.inner;
        let mut held = inner.held.lock().unwrap();
        while *held {
            held = inner.released.wait(held).unwrap();
        }
        drop(held);
        if inner.refuse.load(Ordering::SeqCst) {
            let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
            return Err(ConnectError::Connect(Arc::new(refused)));
        }
        let (ours, theirs) = UnixStream::pair().map_err(|e| ConnectError::Connect(Arc::new(e)))?;
        // As the dialer sets a TCP connection's (see `READ_WAKE`).
        ours.set_read_timeout(Some(READ_WAKE)).unwrap();
        let conn = inner.dials.fetch_add(1, Ordering::SeqCst) + 1;
        let served = inner.clone();
        thread::spawn(move || {
            let _ = served.serve(conn, theirs);
            served.closed.fetch_add(1, Ordering::SeqCst);
        });
        let generation = inner.generation.load(Ordering::SeqCst);
        Ok(Connection::new(
            Transport::plain(Socket::Unix(ours)),
            generation,
        ))
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }
}

impl Inner {
    /// One connection: requests in, replies out, until either side closes.
    fn serve(&self, conn: usize, stream: UnixStream) -> io::Result<()> {
        let mut out = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        while let Some(seen) = read_request(&mut reader, conn)? {
            let reply = (self.script)(&seen);
            let upgrade = seen.header("Upgrade").map(str::to_string);
            self.seen.lock().unwrap().push(seen);
            if !self.reply(reply, &mut reader, &mut out, upgrade)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Writes `reply`; `false` when the connection is to close.
    fn reply(
        &self,
        reply: Reply,
        reader: &mut BufReader<UnixStream>,
        out: &mut UnixStream,
        upgrade: Option<String>,
    ) -> io::Result<bool> {
        match reply {
            Reply::Answer {
                code,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {code} {}\r\n", reason(code));
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                out.write_all(&[head.as_bytes(), &body].concat())?;
            }
            Reply::Chunks(pieces, pause) => {
                out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                for piece in pieces {
                    thread::sleep(pause);
                    write_chunk(out, &piece)?;
                }
                out.write_all(b"0\r\n\r\n")?;
            }
            Reply::Watch(every) => {
                out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                let mut n = 0u64;
                loop {
                    n += 1;
                    let event = format!("{{\"type\":\"ADDED\",\"object\":{{\"n\":{n}}}}}\n");
                    if write_chunk(out, event.as_bytes()).is_err() {
                        self.watches_ended.fetch_add(1, Ordering::SeqCst);
                        return Ok(false);
                    }
                    thread::sleep(every);
                }
            }
            Reply::UntilClose(body) => {
                out.write_all(&[&b"HTTP/1.1 200 OK\r\n\r\n"[..], &body].concat())?;
                return Ok(false);
            }
            Reply::Raw(bytes) => out.write_all(&bytes)?,
            Reply::RawThenClose(bytes) => {
                out.write_all(&bytes)?;
                return Ok(false);
            }
            Reply::Close => return Ok(false),
            Reply::Echo => {
                let protocol = upgrade.unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
                );
                out.write_all(head.as_bytes())?;
                let mut buf = [0; 4096];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => return Ok(false),
                        Ok(n) => out.write_all(&buf[..n])?,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(true)
    }
}

fn write_chunk(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    out.write_all(&[format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat())
}

/// The next request on the connection, or `None` once it is closed.
fn read_request(reader: &mut impl BufRead, conn: usize) -> io::Result<Option<Seen>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut seen = Seen {
        conn,
        method: method.to_string(),
        target: target.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        chunked: false,
    };
    loop {
        let mut field = String::new();
        reader.read_line(&mut field)?;
        let field = field.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            break;
        }
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        seen.headers
            .push((name.to_string(), value.trim().to_string()));
    }
    seen.chunked = seen
        .header("Transfer-Encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if seen.chunked {
        seen.body = read_chunked(reader)?;
    } else if let Some(len) = seen.header("Content-Length") {
        let mut body = vec![0; len.parse().unwrap_or(0)];
        reader.read_exact(&mut body)?;
        seen.body = body;
    }
    Ok(Some(seen))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, then the blank line.
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
