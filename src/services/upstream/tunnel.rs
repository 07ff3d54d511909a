//! Upgraded connections (101 Switching Protocols): SPDY/3.1 for kubectl exec,
//! attach and port-forward, WebSocket (`v5.channel.k8s.io`) for newer clients.
//!
//! After the API server's 101, bytes are piped both ways, each direction on its
//! own thread, until both are done. An end of stream from one side is passed on
//! as a half-close (TCP shutdown, or TLS close_notify then shutdown), so a
//! client that sends EOF still gets the rest of the answer. An error in either
//! direction ends both.
//!
//! A TLS connection cannot be split, so the two threads share the rustls state
//! behind a lock, but never hold it across a blocking socket call: the reading
//! thread waits on its own clone of the socket, and encrypted bytes are written
//! out after the lock is released.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use rustls::ClientConnection;

use super::Transport;
use crate::leaves::socket::Socket;
use crate::services::metrics::{Counter, METRICS};

/// Buffer for each direction: one TLS record's worth.
const PIPE_BUFFER: usize = 16 * 1024;
/// The second direction's thread does little but copy.
const PIPE_THREAD_STACK: usize = 64 * 1024;

/// The upgraded connection to the API server, split into two halves.
struct Upstream {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn HalfClose + Send>,
    /// Ends both directions of the connection at once, to stop a blocked reader.
    socket: Socket,
}

/// A writer that can signal the end of its stream while still reading.
trait HalfClose: Write {
    fn close_write(&mut self);
}

/// Pipes `client` and `upstream` into each other until both directions end.
/// `client_early` and `upstream_early` are bytes already read past the heads
/// (the other side sent them right away), delivered first.
pub fn pipe(
    client_read: &mut Socket,
    client_write: Socket,
    client_early: &[u8],
    upstream: Transport,
    upstream_early: &[u8],
) -> io::Result<()> {
    client_read.set_read_timeout(None)?;
    let upstream = split(upstream)?;
    let stopper = upstream.socket.try_clone()?;
    let client_stopper = client_write.try_clone()?;
    let (mut up_reader, mut up_writer) = (upstream.reader, upstream.writer);
    let mut client_writer = ClientWriter(client_write);
    client_writer.write_all(upstream_early)?;
    up_writer.write_all(client_early)?;

    let downstream = thread::Builder::new()
        .name("tunnel".into())
        .stack_size(PIPE_THREAD_STACK)
        .spawn(move || {
            let counted = &METRICS.bytes_to_clients;
            copy_then_close(&mut up_reader, &mut client_writer, counted)
        })?;
    let up_result = copy_then_close(client_read, &mut *up_writer, &METRICS.bytes_to_server);
    if up_result.is_err() {
        // The client side broke: wake the other thread, which may be blocked reading.
        stopper.shutdown(Shutdown::Both);
    }
    let down_result = downstream
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("tunnel thread panicked")));
    // Both directions are done (or one failed): close everything.
    stopper.shutdown(Shutdown::Both);
    client_stopper.shutdown(Shutdown::Both);
    up_result.and(down_result)
}

/// Copies until end of stream, counting the bytes in `counted`, then
/// half-closes the destination. On an error, the caller closes both sides.
fn copy_then_close(
    from: &mut dyn Read,
    to: &mut dyn HalfClose,
    counted: &Counter,
) -> io::Result<()> {
    let mut buf = vec![0u8; PIPE_BUFFER];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
        counted.add(n as u64);
    }
    to.close_write();
    Ok(())
}

struct ClientWriter(Socket);

impl Write for ClientWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfClose for ClientWriter {
    fn close_write(&mut self) {
        self.0.shutdown(Shutdown::Write);
    }
}

impl HalfClose for Socket {
    fn close_write(&mut self) {
        self.shutdown(Shutdown::Write);
    }
}

fn split(upstream: Transport) -> io::Result<Upstream> {
    // A tunnel may be quiet for hours: no read timeout (it is shared by the clones).
    upstream.socket().set_read_timeout(None)?;
    match upstream {
        Transport::Plain(reader) => {
            // Anything it had buffered was taken out first (`Transport::into_tunnel`).
            let tcp = reader.into_inner();
            Ok(Upstream {
                reader: Box::new(tcp.try_clone()?),
                writer: Box::new(tcp.try_clone()?),
                socket: tcp,
            })
        }
        Transport::Tls(stream) => {
            let rustls::StreamOwned { conn, sock } = *stream;
            let shared = Arc::new(Shared {
                conn: Mutex::new(conn),
                sending: Mutex::new(sock.try_clone()?),
            });
            Ok(Upstream {
                reader: Box::new(TlsReader {
                    shared: shared.clone(),
                    sock: sock.try_clone()?,
                    buf: vec![0; PIPE_BUFFER],
                    pending: 0..0,
                }),
                writer: Box::new(TlsWriter { shared }),
                socket: sock,
            })
        }
    }
}

/// The rustls state and the socket's sending side, shared by both directions.
/// Lock order: `sending`, then `conn`.
struct Shared {
    conn: Mutex<ClientConnection>,
    sending: Mutex<Socket>,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, ClientConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encrypts `data` (and any TLS message rustls has queued, such as a key
    /// update) and sends it, holding the rustls lock only to encrypt.
    fn send(&self, mut data: &[u8]) -> io::Result<()> {
        let mut sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = Vec::with_capacity(data.len() + 64);
        {
            let mut conn = self.conn();
            loop {
                let accepted = if data.is_empty() {
                    0
                } else {
                    conn.writer().write(data)?
                };
                data = &data[accepted..];
                while conn.wants_write() {
                    conn.write_tls(&mut records)?;
                }
                if data.is_empty() {
                    break;
                }
                if accepted == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
        }
        sending.write_all(&records)
    }

    fn close_write(&self) {
        self.conn().send_close_notify();
        let _ = self.send(&[]);
        let sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        sending.shutdown(Shutdown::Write);
    }
}

struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfClose for TlsWriter {
    fn close_write(&mut self) {
        self.shared.close_write();
    }
}

struct TlsReader {
    shared: Arc<Shared>,
    /// A clone of the socket for reading, so no lock is held while waiting.
    sock: Socket,
    buf: Vec<u8>,
    /// The part of `buf` read from the socket but not yet given to rustls.
    pending: std::ops::Range<usize>,
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.shared.conn().reader().read(out) {
                // Ok(0) here is the server's close_notify: its end of stream.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.pending.is_empty() {
                let n = self.sock.read(&mut self.buf)?;
                if n == 0 {
                    // TCP end without close_notify: for a tunnel, an end all the same.
                    return Ok(0);
                }
                self.pending = 0..n;
            }
            // One helping of records at a time, and the plaintext handed out before
            // the next: rustls refuses input while its plaintext buffer is full.
            let wants_write = {
                let mut conn = self.shared.conn();
                let mut received = &self.buf[self.pending.clone()];
                let taken = conn.read_tls(&mut received)?;
                self.pending.start += taken;
                conn.process_new_packets().map_err(io::Error::other)?;
                conn.wants_write()
            };
            if wants_write {
                self.shared.send(&[])?;
            }
        }
    }
}
