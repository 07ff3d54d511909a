//! Making a connection to the API server: TCP with timeouts (through the
//! cluster's `proxy-url` if it has one), then the TLS handshake.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use super::proxy_url::ProxyUrl;
use super::transport::{Connection, Transport};
use super::READ_WAKE;
use crate::leaves::socket::Socket;
use crate::services::metrics::{HandshakeFailure, METRICS};

/// Connect and TLS-handshake limit, as client-go's (10 s TLS handshake timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What makes connections for the pool: [`Dialer`] for the API server, a test's
/// own over `UnixStream::pair()`.
pub trait Dial: Send + Sync {
    /// A new connection, its TLS handshake done.
    fn connect(&self) -> Result<Connection, ConnectError>;

    /// The generation of the TLS settings new connections are made under: a
    /// pooled connection of another generation is not used again (a CA
    /// rotation). Looking may re-read the settings' files.
    fn generation(&self) -> u64;
}

/// The TLS settings a [`Dialer`] makes connections with, and their
/// generation, which changes when they are rebuilt (the TLS service's
/// `TlsSource` provides them).
pub trait TlsSettings: Send + Sync {
    fn current(&self) -> (Arc<ClientConfig>, u64);
    fn generation(&self) -> u64;
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

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Resolve(e) | ConnectError::Connect(e) | ConnectError::Tls(e) => {
                Some(&**e)
            }
            ConnectError::Timeout(_) | ConnectError::Busy { .. } => None,
        }
    }
}

/// Where the API server is: a host (a name, or an IP without brackets) and a port.
#[derive(Clone, Debug)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Makes new connections to the API server: TCP with timeouts, then the TLS
/// handshake.
pub struct Dialer {
    pub server: Address,
    /// The cluster's `proxy-url`: dialled instead, then asked for a tunnel.
    pub proxy: Option<ProxyUrl>,
    /// `None` for a plain `http://` server.
    pub tls: Option<Arc<dyn TlsSettings>>,
    pub server_name: ServerName<'static>,
}

impl Dial for Dialer {
    /// Dials a new connection and, for https, completes the TLS handshake.
    fn connect(&self) -> Result<Connection, ConnectError> {
        let tcp = self.dial()?;
        match &self.tls {
            None => Ok(Connection::new(Transport::plain(Socket::Tcp(tcp)), 0)),
            Some(tls) => {
                let (config, generation) = tls.current();
                let stream = self.handshake(config, tcp)?;
                Ok(Connection::new(
                    Transport::Tls(Box::new(stream)),
                    generation,
                ))
            }
        }
    }

    /// The CA generation new connections are made under, looking at the CA file
    /// if it is due: requests that only ever use pooled connections must still
    /// notice a rotation.
    fn generation(&self) -> u64 {
        self.tls.as_ref().map_or(0, |tls| tls.generation())
    }
}

impl Dialer {
    fn dial(&self) -> Result<TcpStream, ConnectError> {
        let server = &self.server;
        let Some(proxy) = &self.proxy else {
            return dial_to(&server.host, server.port);
        };
        let mut tcp = dial_to(proxy.bare_host(), proxy.port)?;
        let _ = tcp.set_read_timeout(Some(CONNECT_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(CONNECT_TIMEOUT));
        proxy
            .tunnel(&mut tcp, &server.host, server.port)
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

    fn handshake(
        &self,
        tls: Arc<ClientConfig>,
        tcp: TcpStream,
    ) -> Result<StreamOwned<ClientConnection, Socket>, ConnectError> {
        METRICS.tls_handshakes.inc();
        let result = self.handshake_on(tls, tcp);
        if let Err(e) = &result {
            METRICS.handshake_failed(handshake_failure(e));
        }
        result
    }

    fn handshake_on(
        &self,
        tls: Arc<ClientConfig>,
        mut tcp: TcpStream,
    ) -> Result<StreamOwned<ClientConnection, Socket>, ConnectError> {
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
        Ok(StreamOwned::new(conn, Socket::Tcp(tcp)))
    }
}

fn dial_to(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
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

fn wake_reads(tcp: &TcpStream) {
    let _ = tcp.set_read_timeout(Some(READ_WAKE));
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
