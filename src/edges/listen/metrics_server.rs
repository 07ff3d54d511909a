//! `--metrics-address`: a second listener, for Prometheus, that answers
//! `GET /metrics` and nothing else (404 for other paths, 405 for other methods).
//!
//! It is meant to listen on the Pod's IP, where anything in the cluster network
//! can reach it, so it is hardened as the proxy port is and more: heads up to
//! 8 KiB, sent within [`HEAD_TIMEOUT`] of connecting (a scraper sends its head
//! at once), one request per connection, at most [`MAX_SCRAPERS`] connections
//! at once. When all are taken, a new connection takes the place of the
//! oldest one still sending its head: a few silent connections cannot keep a
//! scraper out, since each scrape is the newest. (All of them past their head,
//! being answered: a fast 503.) Its answer holds counters only (see [`super`]).

use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::leaves::http::request::RequestHead;
use crate::leaves::http::response::LocalResponse;
use crate::leaves::http::{HeadError, HeadPolicy, Located};
use crate::leaves::socket::Socket;
use crate::pipeline::exchange::ExchangeError;
use crate::services::metrics::exposition::{render, CONTENT_TYPE};

/// Scrapes served at once. Prometheus makes one at a time per target; a few
/// more leave room for a second Prometheus or a person with curl.
pub const MAX_SCRAPERS: usize = 8;
/// A scrape's head is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A scraper's head comes in one packet as soon as it has connected; this
/// leaves room for a slow network (`--header-timeout`, if shorter, applies).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Each scrape's thread formats the answer in a String; its stack stays small.
const THREAD_STACK: usize = 64 * 1024;

/// Binds `addr` and serves scrapes on a thread of its own; returns the address
/// bound (the real port when 0 was asked).
pub fn start(addr: SocketAddr, header_timeout: Duration) -> io::Result<SocketAddr> {
    let listener = crate::edges::listen::bind_tcp(addr)?;
    let bound = listener.local_addr()?;
    let head_timeout = header_timeout.min(HEAD_TIMEOUT);
    thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(&listener, head_timeout))?;
    Ok(bound)
}

/// The connections being served, oldest first.
#[derive(Default)]
struct Slots {
    taken: Mutex<Vec<Taken>>,
    next: std::sync::atomic::AtomicU64,
}

struct Taken {
    id: u64,
    /// A handle on the connection, to end it when a newer one needs its place.
    stream: Socket,
    /// Set once its head is in: from then on it is being answered, not evicted.
    answering: Arc<AtomicBool>,
}

/// One connection's place, given up when it drops.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    answering: Arc<AtomicBool>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Taken>> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for `stream`: a free one, or the place of the oldest connection
    /// still sending its head, which is ended. `None` when every place is
    /// being answered.
    fn take(self: &Arc<Self>, stream: &Socket) -> Option<Slot> {
        let handle = stream.try_clone().ok()?;
        let mut taken = self.lock();
        if taken.len() >= MAX_SCRAPERS {
            let oldest = taken
                .iter()
                .position(|t| !t.answering.load(Ordering::SeqCst))?;
            let evicted = taken.remove(oldest);
            evicted.stream.shutdown(std::net::Shutdown::Both);
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let answering = Arc::new(AtomicBool::new(false));
        taken.push(Taken {
            id,
            stream: handle,
            answering: answering.clone(),
        });
        Some(Slot {
            slots: self.clone(),
            id,
            answering,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().retain(|t| t.id != self.id);
    }
}

fn accept_loop(listener: &TcpListener, head_timeout: Duration) {
    let slots = Arc::new(Slots::default());
    loop {
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of file descriptors, say: do not spin while it lasts.
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut stream = Socket::Tcp(tcp);
        let Some(slot) = slots.take(&stream) else {
            let busy = LocalResponse::text(503, "too many scrapes at once; try again");
            let _ = busy.write_to(&mut stream, false);
            stream.drain_pending();
            continue;
        };
        let spawned = thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || serve(stream, head_timeout, slot));
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The whole head, size and time, counted from the connection's start: a
/// scraper has no reason to wait before it asks.
struct Limits {
    deadline: Instant,
}

impl HeadPolicy for Limits {
    fn admit(&mut self, len: usize) -> Result<(), HeadError> {
        if Instant::now() >= self.deadline {
            return Err(HeadError::TimedOut);
        }
        match len > MAX_HEAD {
            true => Err(HeadError::TooLarge),
            false => Ok(()),
        }
    }
}

fn serve(stream: Socket, head_timeout: Duration, slot: Slot) {
    stream.set_read_wake();
    stream.set_write_timeout(Some(head_timeout));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(MAX_HEAD, stream);
    let mut buf = Vec::new();
    let mut limits = Limits {
        deadline: Instant::now() + head_timeout,
    };
    let located = loop {
        match RequestHead::next(&mut reader, &mut buf, &mut limits) {
            Err(HeadError::Io(e)) if crate::leaves::http::body::is_timeout(&e) => {
                if Instant::now() >= limits.deadline {
                    break Err(HeadError::TimedOut);
                }
            }
            other => break other,
        }
    };
    slot.answering.store(true, Ordering::SeqCst);
    let response = match located {
        Ok(Some(located)) => {
            let head = match &located {
                Located::InReader(len) => &reader.buffer()[..*len],
                Located::Copied(len) => &buf[..*len],
            };
            match RequestHead::parse(head) {
                Ok(head) => answer(head.method, head.path()),
                Err(e) => ExchangeError::BadRequest(e).response(),
            }
        }
        Ok(None) | Err(HeadError::Io(_) | HeadError::Truncated) => return,
        Err(e) => ExchangeError::BadRequest(e).response(),
    };
    let _ = response.write_to(&mut writer, false);
    // Close without a reset that could overtake the answer: read what is left first.
    writer.shutdown(std::net::Shutdown::Write);
    reader.get_mut().drain_pending();
}

/// The answer to a well-formed request.
fn answer(method: &str, path: &str) -> LocalResponse {
    match (method, path) {
        ("GET", "/metrics") => LocalResponse::new(200, CONTENT_TYPE, render()),
        (_, "/metrics") => {
            let mut refused = LocalResponse::text(405, "Method Not Allowed");
            refused.extra.push_str("Allow: GET\r\n");
            refused
        }
        _ => LocalResponse::text(404, "404 page not found"),
    }
}
