//! Message bodies, streamed: read in the framing they came in, written in the
//! framing the other side needs, one piece at a time and never whole.
//!
//! [`BodyReader`] hands out slices of its reader's buffer (no copy), and
//! [`copy`] writes each one on at once, so a watch event reaches the client as
//! soon as the API server sends it and a 100 MB list passes in constant memory.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

use super::sink::Sink;

/// How a body is delimited on the wire (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    /// Ends when the sender closes the connection (responses only).
    UntilClose,
}

/// Longest chunk-size line or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most bytes of trailer fields accepted (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Reads one body from a buffered stream, leaving the stream at the next message.
pub struct BodyReader<'a, R> {
    inner: &'a mut R,
    state: State,
    /// A framing line read in part. Kept across calls, so that a read that times
    /// out in the middle of a line (the caller may then try again) loses nothing.
    line: Vec<u8>,
    /// Bytes of trailer fields seen, to bound them.
    trailer_bytes: usize,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

fn cut_short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short")
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    pub fn new(inner: &'a mut R, kind: BodyKind) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::ChunkSize,
            BodyKind::UntilClose => State::UntilClose,
        };
        BodyReader {
            inner,
            state,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }

    /// The next piece of body data, or an empty slice at the end of the body.
    /// Call [`consume`](Self::consume) with the length used before the next call.
    pub fn fill(&mut self) -> io::Result<&[u8]> {
        loop {
            match self.state {
                State::Done => return Ok(&[]),
                State::Length(n) | State::ChunkData(n) => {
                    let available = self.inner.fill_buf()?;
                    if available.is_empty() {
                        return Err(cut_short());
                    }
                    let len = available
                        .len()
                        .min(usize::try_from(n).unwrap_or(usize::MAX));
                    return Ok(&available[..len]);
                }
                State::UntilClose => {
                    let available = self.inner.fill_buf()?;
                    if available.is_empty() {
                        self.state = State::Done;
                    }
                    return Ok(available);
                }
                State::ChunkSize => {
                    let size = parse_chunk_size(self.read_line(MAX_LINE)?)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if !self.read_line(0)?.is_empty() {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    // Trailer fields are read and dropped: nothing we forward needs them.
                    let len = self.read_line(MAX_LINE)?.len();
                    if len == 0 {
                        self.state = State::Done;
                    }
                    self.trailer_bytes += len;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(invalid("trailers too large"));
                    }
                }
            }
        }
    }

    pub fn consume(&mut self, len: usize) {
        self.inner.consume(len);
        let len = len as u64;
        self.state = match self.state {
            State::Length(n) if n == len => State::Done,
            State::Length(n) => State::Length(n - len),
            State::ChunkData(n) if n == len => State::ChunkEnd,
            State::ChunkData(n) => State::ChunkData(n - len),
            other => other,
        };
    }

    /// Reads a line ending in CRLF (a bare LF is refused, RFC 9112 §2.2) and
    /// returns it without the CRLF. The next call starts a new line.
    fn read_line(&mut self, max: usize) -> io::Result<&[u8]> {
        if self.line.last() == Some(&b'\n') {
            self.line.clear();
        }
        loop {
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                return Err(cut_short());
            }
            let (part, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            self.line.extend_from_slice(part);
            let used = part.len();
            self.inner.consume(used);
            if self.line.len() > max + 2 {
                return Err(invalid("chunk line too long"));
            }
            if found {
                return match self.line.strip_suffix(b"\r\n") {
                    Some(line) => Ok(line),
                    None => Err(invalid("bare LF in chunked framing")),
                };
            }
        }
    }

    /// Like [`fill`](Self::fill), on a source with a read timeout: each timeout
    /// asks `on_idle`, with the time since this call began, whether to go on
    /// waiting (`Ok`) or give up (its error).
    pub fn fill_waiting(&mut self, on_idle: OnIdle<'_>) -> Result<&[u8], CopyError> {
        let since = Instant::now();
        loop {
            match self.fill() {
                Ok(_) => break,
                Err(e) if is_timeout(&e) => on_idle(since.elapsed())?,
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        // The data is buffered now: this second call only hands it out (a borrow
        // returned from inside the loop above would not pass the borrow checker).
        self.fill().map_err(CopyError::Read)
    }

    /// Stops reading here, to go on later with [`resume`](Self::resume) (only
    /// right after `fill` handed out data, i.e. inside the body's data).
    pub fn pause(self) -> Paused {
        Paused {
            state: self.state,
            trailer_bytes: self.trailer_bytes,
        }
    }

    pub fn resume(inner: &'a mut R, paused: Paused) -> Self {
        BodyReader {
            inner,
            state: paused.state,
            line: Vec::new(),
            trailer_bytes: paused.trailer_bytes,
        }
    }

    /// Reads the whole body into memory. Only for bodies known to be small.
    pub fn read_to_vec(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let data = self.fill()?;
            if data.is_empty() {
                return Ok(());
            }
            let len = data.len();
            out.extend_from_slice(data);
            self.consume(len);
        }
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, then optionally
/// `;name[=value]` extensions, which are checked for shape and ignored.
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(invalid("bad chunk size"));
    }
    let (size, ext) = line.split_at(digits);
    let ext_ok = ext.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        && (ext.trim_ascii_start().is_empty() || ext.trim_ascii_start().starts_with(b";"));
    if !ext_ok {
        return Err(invalid("bad chunk extension"));
    }
    let size = std::str::from_utf8(size).map_err(|_| invalid("bad chunk size"))?;
    u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))
}

/// Where a [`BodyReader`] stopped: a small body can be read ahead and checked
/// before anything is sent, and a large one streamed on from there.
#[derive(Clone, Copy, Debug)]
pub struct Paused {
    state: State,
    trailer_bytes: usize,
}

/// Asked on each read timeout with the time the body has been still:
/// `Ok` waits on, an error ends the read with it.
pub type OnIdle<'f> = &'f mut dyn FnMut(Duration) -> Result<(), CopyError>;

/// The framing a body is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Bytes as they are: for Content-Length bodies and close-delimited ones.
    Identity,
    Chunked,
}

/// Which side of a body copy failed: the source (API server or client body)
/// or the destination.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::Read(e) => write!(f, "reading the body: {e}"),
            CopyError::Write(e) => write!(f, "sending the body on: {e}"),
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CopyError::Read(e) | CopyError::Write(e) => Some(e),
        }
    }
}

/// Streams a whole body from `body` to `out`, sending each piece as it comes
/// so that nothing waits in a buffer while the source is quiet. `sent` counts
/// the body bytes handed on, also when the copy fails (a watch its client left
/// still sent what it sent).
///
/// If the source has a read timeout, each timeout asks `on_idle` whether to go
/// on waiting: that is how a client that left a quiet watch is noticed, and how
/// a client that stalls mid-body is let go.
pub fn copy<R: BufRead, W: Write>(
    body: &mut BodyReader<'_, R>,
    out: &mut Sink<W>,
    encoding: Encoding,
    sent: &mut u64,
    on_idle: OnIdle<'_>,
) -> Result<(), CopyError> {
    loop {
        let data = body.fill_waiting(on_idle)?;
        if data.is_empty() {
            break;
        }
        let len = data.len();
        write_piece(out, data, encoding).map_err(CopyError::Write)?;
        body.consume(len);
        *sent += len as u64;
    }
    finish(out, encoding).map_err(CopyError::Write)
}

/// A read that ended because the socket's read timeout passed.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends one piece of body data in `encoding`, with whatever `out` has gathered
/// before it (a head, say), in one write.
pub fn write_piece<W: Write>(out: &mut Sink<W>, data: &[u8], encoding: Encoding) -> io::Result<()> {
    match encoding {
        Encoding::Chunked => {
            write!(out, "{:x}\r\n", data.len())?;
            out.send(data, b"\r\n")
        }
        Encoding::Identity => out.send(data, b""),
    }
}

/// Ends a body: the last chunk for chunked encoding; sends what is gathered.
pub fn finish<W: Write>(out: &mut Sink<W>, encoding: Encoding) -> io::Result<()> {
    if encoding == Encoding::Chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(kind: BodyKind, wire: &[u8]) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut reader = io::BufReader::with_capacity(3, wire);
        let mut body = Vec::new();
        BodyReader::new(&mut reader, kind).read_to_vec(&mut body)?;
        let mut rest = Vec::new();
        io::Read::read_to_end(&mut reader, &mut rest)?;
        Ok((body, rest))
    }

    #[test]
    fn chunked_round_trip() {
        let (body, rest) = decode(
            BodyKind::Chunked,
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT",
        )
        .unwrap();
        assert_eq!(
            (body.as_slice(), rest.as_slice()),
            (&b"hello world"[..], &b"NEXT"[..])
        );

        let mut out = Sink::new(Vec::new());
        let mut reader = io::BufReader::new(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        let mut sent = 0;
        copy(
            &mut BodyReader::new(&mut reader, BodyKind::Chunked),
            &mut out,
            Encoding::Chunked,
            &mut sent,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(out.get_ref(), b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(sent, 3);
    }

    #[test]
    fn length_and_close_delimited() {
        assert_eq!(decode(BodyKind::Length(4), b"bodyNEXT").unwrap().0, b"body");
        assert_eq!(
            decode(BodyKind::UntilClose, b"all of it").unwrap().0,
            b"all of it"
        );
        assert_eq!(
            decode(BodyKind::Length(9), b"short").unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn bad_chunked_framing_is_refused() {
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"5\r\nhel",
            b"0\r\n",
        ] {
            assert!(
                decode(BodyKind::Chunked, wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}
