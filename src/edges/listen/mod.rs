//! The listener: accepts clients, gives each its own thread, and drains on shutdown.
//!
//! Shutdown (SIGTERM from the kubelet, or SIGINT) stops the accept loop, closes
//! connections that sit idle between requests, and waits up to the grace period
//! for requests in flight, as a Pod's containers are expected to.

pub mod metrics_server;
mod shutdown;

pub use shutdown::Shutdown;

use std::io;
use std::net::{IpAddr, Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, SockAddr, Type};

use crate::edges::config::Listen;
use crate::leaves::http::refusal::Reason;
use crate::leaves::socket::Socket;
use crate::pipeline::exchange::Client;
use crate::proxy::Proxy;
use crate::services::metrics::METRICS;
use shutdown::Life;

/// Stack for each connection thread. Measured on the static build: 32-36 KiB of
/// stack touched by a connection that makes a fresh TLS handshake (ECDSA) and
/// streams a watch (resident pages of the thread stack mappings in
/// /proc/PID/smaps, 40 connections at once); a handshake with an RSA-4096
/// certificate was seen to overflow 32 KiB and passes here (tests/config.rs).
/// 256 KiB leaves a margin of seven, and untouched pages cost no memory.
const THREAD_STACK: usize = 256 * 1024;
/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    pub fn bind(listen: &Listen) -> io::Result<Listener> {
        match listen {
            Listen::Tcp(addr) => bind_tcp(*addr).map(Listener::Tcp),
            Listen::Unix(path) => bind_unix(path).map(|l| Listener::Unix(l, path.clone())),
        }
    }

    /// What kubectl prints after `Starting to serve on `: `127.0.0.1:8001`
    /// (the real port when 0 was asked) or the socket's path.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }

    fn accept(&self) -> io::Result<(Socket, Option<IpAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok((Socket::Tcp(s), Some(peer.ip())))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| (Socket::Unix(s), None)),
        }
    }

    /// Connects to ourselves, to wake a thread blocked in `accept`.
    pub(super) fn poke(&self) {
        match self {
            Listener::Tcp(l) => {
                if let Ok(mut addr) = l.local_addr() {
                    if addr.ip().is_unspecified() {
                        addr = SocketAddr::new(loopback_like(addr.ip()), addr.port());
                    }
                    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
                }
            }
            Listener::Unix(_, path) => {
                let _ = UnixStream::connect(path);
            }
        }
    }
}

fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
    }
}

/// The listen backlog: the kernel's own ceiling, as Go and nginx take it.
/// `TcpListener::bind` listens with 128, which a burst of clients connecting at
/// once overflows: each client past it waits a second or more for its SYN to be
/// sent again.
fn backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        // Kernels before 4.1 keep the backlog in 16 bits (Go caps it the same way).
        .map_or(DEFAULT_BACKLOG, |n| n.min(u16::MAX as i32))
}

/// When /proc does not say.
const DEFAULT_BACKLOG: i32 = 4096;

pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As the standard library does: a restarted kproxy can bind at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog())?;
    Ok(socket.into())
}

/// Binds a unix socket that only its owner can use, after checking that what
/// is at `path` (if anything) is a stale socket of an earlier run. kubectl sets
/// umask 0077 around its bind; a umask is the whole process's, so kproxy binds
/// in a directory of its own beside `path` instead (mode 0700: no one else can
/// reach the socket there, or swap it for a symlink), sets the socket's mode
/// there, listens, and renames it into place: it appears at `path` with its
/// final mode, and the rename replaces a stale socket without following a
/// symlink.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not removing it",
                    path.display()
                ),
            ));
        }
    }
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // A name no one can guess ahead (as PID 1, the pid alone repeats): created
    // here, so it is ours, and its mode is 0700 or less, whatever the umask.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let private = parent.join(format!(
        ".kproxy-{}-{nanos:09}.socket.d",
        std::process::id()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join("socket");
    let bound = (|| {
        let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(&staged)?)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o700))?;
        socket.listen(backlog())?;
        std::fs::rename(&staged, path)?;
        Ok(UnixListener::from(std::os::fd::OwnedFd::from(socket)))
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound
}

/// Accepts connections until shutdown, each served on its own thread, at most
/// `max_connections` at once: past that a client gets a fast 503, so memory
/// stays bounded however many connect.
pub fn accept_loop(
    listener: &Listener,
    proxy: &Arc<Proxy>,
    shutdown: &Arc<Shutdown>,
    max_connections: usize,
) {
    let mut failing = false;
    while !shutdown.is_stopping() {
        match listener.accept() {
            Ok((stream, peer)) => {
                failing = false;
                if shutdown.is_stopping() {
                    break;
                }
                if shutdown.open_connections() >= max_connections {
                    turn_away(stream, max_connections);
                    continue;
                }
                // Reads wake every second, so a connection can keep its own deadlines;
                // a write stuck for the header timeout means a client not reading.
                stream.set_read_wake();
                stream.set_write_timeout(Some(proxy.shared.timeouts.header));
                METRICS.client_connections_total.inc();
                spawn(stream, peer, proxy, shutdown);
            }
            Err(e) => {
                if !failing {
                    crate::log!(
                        0,
                        "accept failed: {e}; retrying every {}ms",
                        ACCEPT_BACKOFF.as_millis()
                    );
                }
                failing = true;
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Answers 503 on the accepting thread: a fresh socket's send buffer takes the
/// few hundred bytes without blocking.
fn turn_away(mut stream: Socket, max_connections: usize) {
    crate::log!(
        2,
        "refused a connection: {max_connections} are open (--max-connections)"
    );
    let message = format!(
        "kproxy is serving its maximum of {max_connections} connections (--max-connections); \
         try again later, or raise --max-connections"
    );
    let _ = Reason::ConnectionCap
        .answer(&message)
        .write_to(&mut stream, false);
    METRICS.refused(Reason::ConnectionCap);
    // Closing with the request unread would reset the connection, and a reset can
    // overtake the answer: read what has come first.
    stream.drain_pending();
    stream.shutdown(Direction::Both);
}

/// Serves one connection on a thread of its own. The thread is also the panic
/// boundary: peer input never reaches an `unwrap`, but should a bug panic, the
/// release build unwinds (see Cargo.toml) and only this connection ends: `Life`
/// forgets it as it drops and the other connections go on. Fuzzing (fuzz/) found
/// no panic in the parsers, so the 105 KiB that `abort` would save buys nothing
/// worth a whole sidecar going down with one client.
fn spawn(stream: Socket, peer: Option<IpAddr>, proxy: &Arc<Proxy>, shutdown: &Arc<Shutdown>) {
    let halves = stream
        .try_clone()
        .and_then(|w| Ok((w, stream.try_clone()?)));
    let (write_half, watch_half) = match halves {
        Ok(halves) => halves,
        Err(e) => {
            crate::log!(0, "cannot serve a connection: {e}");
            return;
        }
    };
    let tracked = shutdown.track(watch_half);
    let spawned = thread::Builder::new().stack_size(THREAD_STACK).spawn({
        let (proxy, shutdown, tracked) = (proxy.clone(), shutdown.clone(), tracked.clone());
        move || {
            let _open = METRICS.client_connections.open();
            let life = Life::new(&shutdown, tracked);
            let mut client = Client::new(stream, write_half, peer);
            proxy.serve(&mut client, &life);
        }
    });
    if let Err(e) = spawned {
        shutdown.untrack(&tracked);
        crate::log!(0, "cannot start a thread for a connection: {e}");
        thread::sleep(ACCEPT_BACKOFF);
    }
}
