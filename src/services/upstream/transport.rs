//! A connection to the API server: its bytes, read through a buffer (rustls's
//! own, for TLS), and what the pool must know of it.

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};

use rustls::{ClientConnection, StreamOwned};

use super::PLAIN_READ_BUFFER;
use crate::leaves::socket::{self, Peeked, Socket};
use crate::services::metrics::{Open, METRICS};

/// The bytes to and from the API server, read through a buffer.
pub enum Transport {
    Plain(BufReader<Socket>),
    Tls(Box<StreamOwned<ClientConnection, Socket>>),
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
    /// Over a plain socket (an `http://` server, or a test's).
    pub fn plain(socket: Socket) -> Transport {
        Transport::Plain(BufReader::with_capacity(PLAIN_READ_BUFFER, socket))
    }

    pub fn socket(&self) -> &Socket {
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
        socket::peek(&self.socket().sock_ref()) == Peeked::Nothing
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
    /// The TLS settings' generation it was verified under (see [`super::Dial`]).
    generation: u64,
    /// Counted in `kproxy_upstream_connections_open` while it lives (a
    /// tunnel's until the tunnel ends: its transport moves out, this stays).
    _open: Open,
}

impl Connection {
    /// A new connection, made under the TLS settings of `generation`.
    pub fn new(transport: Transport, generation: u64) -> Connection {
        Connection {
            transport,
            reused: false,
            generation,
            _open: METRICS.upstream_connections.open(),
        }
    }

    pub fn socket(&self) -> &Socket {
        self.transport.socket()
    }

    /// The TLS settings' generation it was verified under.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
