//! Writing a message with as few system calls, copies and buffers as possible.
//!
//! Small things (a head, a chunk-size line, a short refusal) gather in a small
//! buffer, and go out together with the next piece of body in one vectored
//! write: a response with a short body is one `writev`, and so is each chunk of
//! a stream (size line, data, CRLF), without copying the data into a buffer of
//! its own. A connection holds only what it gathered, not a buffer sized for
//! the largest piece.

use std::io::{self, IoSlice, Write};

/// Gathered bytes past this go out on their own before more are gathered.
const GATHER_LIMIT: usize = 8 * 1024;

pub struct Sink<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> Sink<W> {
    pub fn new(inner: W) -> Sink<W> {
        Sink {
            inner,
            pending: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Writes what is gathered, then `piece`, then `after`, as one vectored write
    /// (as many as it takes, if the peer reads slowly).
    pub fn send(&mut self, piece: &[u8], after: &[u8]) -> io::Result<()> {
        let mut slices = [
            IoSlice::new(&self.pending),
            IoSlice::new(piece),
            IoSlice::new(after),
        ];
        let result = write_all_vectored(&mut self.inner, &mut slices);
        self.pending.clear();
        result
    }

    /// Gives back a buffer that grew past the usual size (after a large head),
    /// so an idle connection holds only what a typical exchange needs.
    pub fn trim(&mut self) {
        if self.pending.capacity() > GATHER_LIMIT {
            self.pending = Vec::new();
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() + buf.len() > GATHER_LIMIT {
            self.send(buf, &[])?;
        } else {
            self.pending.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.send(&[], &[])?;
        }
        self.inner.flush()
    }
}

/// `Write::write_all` for several slices (the standard library's is unstable).
pub fn write_all_vectored<W: Write + ?Sized>(
    out: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each vectored write as one call.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.0.push(bufs.iter().flat_map(|b| b.to_vec()).collect());
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_head_and_a_piece_go_out_in_one_write() {
        let mut sink = Sink::new(Calls::default());
        sink.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        sink.write_all(b"5\r\n").unwrap();
        sink.send(b"hello", b"\r\n").unwrap();
        sink.write_all(b"0\r\n\r\n").unwrap();
        sink.flush().unwrap();
        assert_eq!(
            sink.get_ref().0,
            [
                b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n".to_vec(),
                b"0\r\n\r\n".to_vec()
            ]
        );
    }

    #[test]
    fn large_writes_are_not_gathered() {
        let mut sink = Sink::new(Calls::default());
        sink.write_all(b"head").unwrap();
        let big = vec![b'x'; GATHER_LIMIT];
        sink.write_all(&big).unwrap();
        assert_eq!(sink.get_ref().0.len(), 1);
        assert_eq!(sink.get_ref().0[0].len(), 4 + GATHER_LIMIT);
        assert!(sink.pending.is_empty());
    }
}
