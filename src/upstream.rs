//! Connections to the API server: dialled with timeouts, TLS-verified, read
//! through rustls's own buffer, and checked for anything unasked-for before they
//! serve another request. [`crate::pool`] shares them between clients.

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use socket2::SockRef;

use rustls_pki_types::ServerName;

use crate::config::{ServerUrl, UpstreamConfig};
use crate::credentials::Credentials;
use crate::metrics::{HandshakeFailure, Open, METRICS};
use crate::pool::Pool;
use crate::proxy_url::ProxyUrl;
use crate::stream::{self, Peeked};
use crate::tls::TlsSource;

/// Connect and TLS-handshake limit, as client-go's (10 s TLS handshake timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads from the API server return at least this often, as timeouts, so that the
/// caller can check on its client while a watch is quiet: a client that leaves
/// frees the connection within this. It is not a limit: the caller reads again.
/// Set once per connection, so it costs no system call per request.
pub const READ_WAKE: Duration = Duration::from_millis(500);
/// Read buffer of a plain `http://` connection. A TLS connection reads through
/// rustls's own buffer of received plaintext (one record, up to 16 KiB), with
/// no second buffer and no copy.
pub const PLAIN_READ_BUFFER: usize = 16 * 1024;

/// The bytes to and from the API server, read through a buffer.
pub enum Transport {
    Plain(BufReader<TcpStream>),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl BufRead for Transport {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Transport::Plain(s) => s.fill_buf(),
            Transport::Tls(s) => s.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Transport::Plain(s) => s.consume(amt),
            Transport::Tls(s) => s.consume(amt),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.get_mut().write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    /// One TLS payload (or one `writev`) for a head, its token and a small body.
    /// (`StreamOwned` leaves `write_vectored` to the default, which writes only
    /// the first slice: a record and a system call per slice. `Stream` does not.)
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.get_mut().write_vectored(bufs),
            Transport::Tls(s) => {
                let StreamOwned { conn, sock } = &mut **s;
                rustls::Stream::new(conn, sock).write_vectored(bufs)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.get_mut().flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

impl Transport {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s.get_ref(),
            Transport::Tls(s) => s.get_ref(),
        }
    }

    /// Whether anything was read past the response that no request asked for:
    /// bytes buffered, TLS data or a close already decrypted. A connection with
    /// any must not serve another request: the next client would get an answer
    /// meant for no one, and the one after it the previous client's answer (Go's
    /// transport drops these too). Bytes still on the socket are looked for by
    /// [`Transport::socket_is_quiet`], right before the connection is used.
    pub fn has_buffered_input(&mut self) -> bool {
        match self {
            Transport::Plain(s) => !s.buffer().is_empty(),
            Transport::Tls(s) => match s.conn.process_new_packets() {
                Ok(io) => io.plaintext_bytes_to_read() > 0 || io.peer_has_closed(),
                Err(_) => true,
            },
        }
    }

    /// Nothing waiting on the socket (one non-blocking peek).
    pub fn socket_is_quiet(&self) -> bool {
        stream::peek(&SockRef::from(self.tcp())) == Peeked::Nothing
    }

    /// The bytes already read past the 101 head, and the transport: for a tunnel.
    pub fn into_tunnel(self) -> (Vec<u8>, Transport) {
        match self {
            Transport::Plain(mut s) => {
                let early = s.buffer().to_vec();
                s.consume(early.len());
                (early, Transport::Plain(s))
            }
            // rustls still holds any plaintext received; the tunnel reads it first.
            tls => (Vec::new(), tls),
        }
    }
}

/// One connection to the API server.
pub struct Connection {
    pub transport: Transport,
    /// Whether it served a request before: a reused connection may have been
    /// closed by the server meanwhile.
    pub reused: bool,
    /// The CA bundle generation it was verified under (see `TlsSource`).
    generation: u64,
    /// Counted in `kproxy_upstream_connections_open` while it lives (a
    /// tunnel's until the tunnel ends: its transport moves out, this stays).
    _open: Open,
}

impl Connection {
    pub fn tcp(&self) -> &TcpStream {
        self.transport.tcp()
    }
}

/// Why a connection could not be had. `Display` says what to check.
#[derive(Debug, Clone)]
pub enum ConnectError {
    Resolve(Arc<io::Error>),
    Connect(Arc<io::Error>),
    Timeout(&'static str),
    Tls(Arc<io::Error>),
    /// Every connection the pool may open was busy for the whole wait.
    Busy {
        limit: usize,
        waited: Duration,
    },
}

impl ConnectError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnectError::Timeout(_))
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Resolve(e) => write!(f, "cannot resolve the API server's host: {e}"),
            ConnectError::Connect(e) => write!(f, "cannot connect to the API server: {e}"),
            ConnectError::Timeout(what) => {
                write!(
                    f,
                    "{what} with the API server timed out after {}s",
                    CONNECT_TIMEOUT.as_secs()
                )
            }
            ConnectError::Tls(e) => write!(f, "TLS handshake with the API server failed: {e}"),
            ConnectError::Busy { limit, waited } => write!(
                f,
                "no connection to the API server within {}s: all {limit} were busy \
                 (--max-upstream-connections) and no new one was made; try again",
                waited.as_secs()
            ),
        }
    }
}

fn wake_reads(tcp: &TcpStream) {
    let _ = tcp.set_read_timeout(Some(READ_WAKE));
}

/// The API server as kproxy reaches it: where to send requests, with what.
pub struct Upstream {
    /// The Host header sent upstream: the API server's own authority.
    pub authority: String,
    /// The server URL's path with `--append-server-path`, put before each request's.
    pub path_prefix: String,
    pub credentials: Credentials,
    pub pool: Pool,
}

impl Upstream {
    pub fn new(config: UpstreamConfig, limit: usize) -> Upstream {
        let authority = config.server.authority();
        let dialer = Dialer {
            server: config.server,
            proxy: config.proxy,
            tls: config.tls,
            server_name: config.server_name,
        };
        Upstream {
            authority,
            path_prefix: config.path_prefix,
            credentials: config.credentials,
            pool: Pool::new(dialer, limit),
        }
    }
}

/// Makes new connections: TCP with timeouts, then the TLS handshake.
pub struct Dialer {
    server: ServerUrl,
    /// The cluster's `proxy-url`: dialled instead, then asked for a tunnel.
    proxy: Option<ProxyUrl>,
    /// `None` for a plain `http://` server.
    tls: Option<TlsSource>,
    server_name: ServerName<'static>,
}

impl Dialer {
    /// The CA generation new connections are made under, looking at the CA file
    /// if it is due: requests that only ever use pooled connections must still
    /// notice a rotation.
    pub fn generation(&self) -> u64 {
        self.tls.as_ref().map_or(0, |tls| tls.generation())
    }

    /// Dials a new connection and, for https, completes the TLS handshake.
    pub fn connect(&self) -> Result<Connection, ConnectError> {
        let tcp = self.dial()?;
        let (transport, generation) = match &self.tls {
            None => (
                Transport::Plain(BufReader::with_capacity(PLAIN_READ_BUFFER, tcp)),
                0,
            ),
            Some(tls) => {
                let (config, generation) = tls.current();
                (
                    Transport::Tls(Box::new(self.handshake(config, tcp)?)),
                    generation,
                )
            }
        };
        Ok(Connection {
            transport,
            reused: false,
            generation,
            _open: METRICS.upstream_connections.open(),
        })
    }

    fn dial(&self) -> Result<TcpStream, ConnectError> {
        let server = &self.server;
        let Some(proxy) = &self.proxy else {
            return self.dial_to(server.bare_host(), server.port);
        };
        let mut tcp = self.dial_to(proxy.bare_host(), proxy.port)?;
        let _ = tcp.set_read_timeout(Some(CONNECT_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(CONNECT_TIMEOUT));
        proxy
            .tunnel(&mut tcp, server.bare_host(), server.port)
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    ConnectError::Timeout("opening a tunnel through the proxy")
                }
                _ => ConnectError::Connect(Arc::new(e)),
            })?;
        let _ = tcp.set_write_timeout(None);
        wake_reads(&tcp);
        Ok(tcp)
    }

    fn dial_to(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| ConnectError::Resolve(Arc::new(e)))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(tcp) => {
                    // Requests and watch events are small writes that must not wait (Nagle).
                    let _ = tcp.set_nodelay(true);
                    wake_reads(&tcp);
                    return Ok(tcp);
                }
                Err(e) => last = e,
            }
        }
        match last.kind() {
            io::ErrorKind::TimedOut => Err(ConnectError::Timeout("connecting")),
            _ => Err(ConnectError::Connect(Arc::new(last))),
        }
    }

    fn handshake(
        &self,
        tls: Arc<rustls::ClientConfig>,
        tcp: TcpStream,
    ) -> Result<StreamOwned<ClientConnection, TcpStream>, ConnectError> {
        METRICS.tls_handshakes.inc();
        let result = self.handshake_on(tls, tcp);
        if let Err(e) = &result {
            METRICS.handshake_failed(handshake_failure(e));
        }
        result
    }

    fn handshake_on(
        &self,
        tls: Arc<rustls::ClientConfig>,
        mut tcp: TcpStream,
    ) -> Result<StreamOwned<ClientConnection, TcpStream>, ConnectError> {
        let tls_error = |e| ConnectError::Tls(Arc::new(e));
        let name = self.server_name.clone();
        let mut conn =
            ClientConnection::new(tls, name).map_err(|e| tls_error(io::Error::other(e)))?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnectError::Timeout("the TLS handshake"));
            }
            let _ = tcp.set_read_timeout(Some(left));
            let _ = tcp.set_write_timeout(Some(left));
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ConnectError::Timeout("the TLS handshake"))
                }
                Err(e) => return Err(tls_error(e)),
            }
        }
        let _ = tcp.set_write_timeout(None);
        wake_reads(&tcp);
        Ok(StreamOwned::new(conn, tcp))
    }
}

/// The kind of a failed handshake, for `kproxy_tls_handshake_failures_total`.
fn handshake_failure(e: &ConnectError) -> HandshakeFailure {
    let tls = match e {
        ConnectError::Timeout(_) => return HandshakeFailure::Timeout,
        ConnectError::Tls(e) => e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) => HandshakeFailure::Certificate,
        Some(rustls::Error::AlertReceived(_)) => HandshakeFailure::Alert,
        _ => HandshakeFailure::Other,
    }
}

impl Connection {
    /// The CA bundle generation it was verified under.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
