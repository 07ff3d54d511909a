//! A client's connection, over TCP or a unix socket, and the few socket
//! operations the proxy needs beyond reading and writing.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    pub fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        };
    }

    fn sock(&self) -> SockRef<'_> {
        match self {
            Stream::Tcp(s) => SockRef::from(s),
            Stream::Unix(s) => SockRef::from(s),
        }
    }

    /// Whether the client has closed or reset the connection, asked without
    /// blocking and without consuming anything it may have sent meanwhile.
    pub fn is_gone(&self) -> bool {
        let sock = self.sock();
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [MaybeUninit::<u8>::uninit()];
        let gone = match sock.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = sock.set_nonblocking(false);
        gone
    }

    /// TCP keep-alive probes every `period` (nothing to do on a unix socket).
    pub fn set_keepalive(&self, period: Duration) {
        if let Stream::Tcp(s) = self {
            set_keepalive(s, period);
        }
    }
}

/// Keep-alive on a long-lived TCP connection, so a peer that vanished without a
/// word (a node gone, a NAT entry dropped) is noticed and the connection freed.
pub fn set_keepalive(tcp: &TcpStream, period: Duration) {
    let keepalive = TcpKeepalive::new().with_time(period).with_interval(period);
    let _ = SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}
