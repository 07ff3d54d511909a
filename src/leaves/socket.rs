//! A client's connection, over TCP or a unix socket, and the few socket
//! operations the proxy needs beyond reading and writing.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// How often a blocked read on a client returns to let its thread look at the clock.
pub const READ_WAKE: Duration = Duration::from_secs(1);

pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write_vectored(bufs),
            Socket::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket {
    pub fn try_clone(&self) -> io::Result<Socket> {
        match self {
            Socket::Tcp(s) => s.try_clone().map(Socket::Tcp),
            Socket::Unix(s) => s.try_clone().map(Socket::Unix),
        }
    }

    pub fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown(how),
            Socket::Unix(s) => s.shutdown(how),
        };
    }

    pub fn sock_ref(&self) -> SockRef<'_> {
        self.sock()
    }

    fn sock(&self) -> SockRef<'_> {
        match self {
            Socket::Tcp(s) => SockRef::from(s),
            Socket::Unix(s) => SockRef::from(s),
        }
    }

    /// Whether the client has closed or reset the connection, asked without
    /// blocking and without consuming anything it may have sent meanwhile.
    pub fn is_gone(&self) -> bool {
        matches!(peek(&self.sock()), Peeked::Closed)
    }

    /// Reads return a timeout every [`READ_WAKE`] rather than blocking for good,
    /// so the connection can keep its own deadlines (slow heads, idle keep-alive).
    pub fn set_read_wake(&self) {
        let _ = self.set_read_timeout(Some(READ_WAKE));
    }

    /// Back to reads that block until data comes (for a tunnel, which may be
    /// quiet for hours). The setting is shared by the socket's clones.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Reads and drops whatever the peer has sent so far, without waiting.
    pub fn drain_pending(&mut self) {
        if self.sock().set_nonblocking(true).is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        while matches!(self.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.sock().set_nonblocking(false);
    }

    /// A write that makes no progress for `timeout` fails: a client that stops
    /// reading its answer cannot hold its connection (and an API server
    /// connection) forever. `None` for tunnels, whose ends may pause at will.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        let _ = self.sock().set_write_timeout(timeout);
    }

    /// Read and write timeouts both (for a short-lived client such as `kproxy check`).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.sock().set_write_timeout(timeout)
    }

    /// TCP keep-alive probes every `period` (nothing to do on a unix socket).
    pub fn set_keepalive(&self, period: Duration) {
        if let Socket::Tcp(s) = self {
            set_keepalive(s, period);
        }
    }
}

/// What a socket holds right now, seen without taking it.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// Nothing to read: the peer is quiet.
    Nothing,
    /// Bytes are waiting.
    Data,
    /// The peer closed or reset the connection.
    Closed,
}

/// Looks at a socket without blocking and without consuming: one `recv` with
/// `MSG_PEEK | MSG_DONTWAIT`, whatever the socket's blocking mode.
pub fn peek(sock: &SockRef<'_>) -> Peeked {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    loop {
        return match sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => Peeked::Closed,
            Ok(_) => Peeked::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peeked::Nothing,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Peeked::Closed,
        };
    }
}

/// Keep-alive on a long-lived TCP connection, so a peer that vanished without a
/// word (a node gone, a NAT entry dropped) is noticed and the connection freed.
pub fn set_keepalive(tcp: &TcpStream, period: Duration) {
    let keepalive = TcpKeepalive::new().with_time(period).with_interval(period);
    let _ = SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}
