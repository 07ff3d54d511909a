//! Reading a message head from a buffered stream, without reading past it.

use std::io::BufRead;
use std::time::{Duration, Instant};

use super::HeadError;

/// Where a complete head is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Located {
    /// Still in the reader's buffer, the first `len` bytes (the usual case: it
    /// came in one piece). Parse it there, then `consume(len)`.
    InReader(usize),
    /// Copied into the caller's buffer, which holds exactly the head.
    Copied(usize),
}

impl Located {
    pub fn len(self) -> usize {
        match self {
            Located::InReader(len) | Located::Copied(len) => len,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The head's bytes: from the reader's buffer (read again without I/O, since
    /// the head is still there) or from `buf`.
    pub fn bytes<'a, R: BufRead>(
        self,
        reader: &'a mut R,
        buf: &'a [u8],
    ) -> std::io::Result<&'a [u8]> {
        match self {
            Located::InReader(len) => Ok(&reader.fill_buf()?[..len]),
            Located::Copied(len) => Ok(&buf[..len]),
        }
    }

    /// Takes the head out of the reader, if it was left there.
    pub fn consume<R: BufRead>(self, reader: &mut R) {
        if let Located::InReader(len) = self {
            reader.consume(len);
        }
    }
}

/// Reads the next head from `reader`: when it is all in the reader's buffer, it
/// stays there (no copy); otherwise bytes are copied into `buf` until `head_len`
/// finds a whole head, consuming exactly the head's bytes, so what follows (a
/// body, the next request) stays in the reader. `Ok(None)` on a clean end of
/// stream before any byte.
///
/// `buf` holds what was read of this head so far: empty for a new head. After an
/// error such as a read timeout, calling again with the same `buf` goes on where
/// the last call stopped.
///
/// `head_len` returns the head's length once the bytes hold a complete head (the
/// caller then parses it, borrowing). `policy` is asked before the head grows,
/// with its length after the read: it may refuse (too slow, or no memory to
/// spare for a large head).
pub(crate) fn read_head<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
    mut head_len: impl FnMut(&[u8]) -> Result<Option<usize>, HeadError>,
    policy: &mut dyn HeadPolicy,
) -> Result<Option<Located>, HeadError> {
    if buf.is_empty() {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(None);
        }
        if available.len() <= max_len {
            policy.admit(available.len())?;
            if let Some(len) = head_len(available)? {
                return Ok(Some(Located::InReader(len)));
            }
        }
    }
    loop {
        if !buf.is_empty() {
            policy.admit(buf.len())?;
        }
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return match buf.is_empty() {
                true => Ok(None),
                false => Err(HeadError::Truncated),
            };
        }
        let old_len = buf.len();
        // Never copy more than one byte past the limit: that byte proves the excess.
        let take = available.len().min(max_len + 1 - old_len);
        policy.admit(old_len + take)?;
        buf.extend_from_slice(&available[..take]);
        if let Some(len) = head_len(buf)? {
            reader.consume(len - old_len);
            buf.truncate(len);
            return Ok(Some(Located::Copied(len)));
        }
        reader.consume(take);
        if buf.len() > max_len {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Reads the next head into `buf` (emptied first), wherever it was: for callers
/// that want it in one place (the tests' server, the fuzz targets).
pub(crate) fn read_head_into<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
    head_len: impl FnMut(&[u8]) -> Result<Option<usize>, HeadError>,
) -> Result<Option<usize>, HeadError> {
    buf.clear();
    let Some(located) = read_head(reader, buf, max_len, head_len, &mut Unlimited)? else {
        return Ok(None);
    };
    if let Located::InReader(len) = located {
        buf.extend_from_slice(&reader.fill_buf()?[..len]);
        reader.consume(len);
    }
    Ok(Some(located.len()))
}

/// What a head may cost, asked as it comes in.
pub trait HeadPolicy {
    /// Whether the head may be `len` bytes long now (it has begun).
    fn admit(&mut self, len: usize) -> Result<(), HeadError>;
}

/// No limit beyond the size: for heads from the API server, and for tests.
pub struct Unlimited;

impl HeadPolicy for Unlimited {
    fn admit(&mut self, _len: usize) -> Result<(), HeadError> {
        Ok(())
    }
}

/// The time a head may take once its first byte has come: a client that sends
/// a byte now and then (slowloris) must not hold a connection forever.
pub struct HeadClock {
    limit: Duration,
    began: Option<Instant>,
}

impl HeadClock {
    pub fn new(limit: Duration) -> HeadClock {
        HeadClock { limit, began: None }
    }

    /// Starts the clock at the first call; an error once the limit has passed.
    pub fn check(&mut self) -> Result<(), HeadError> {
        let began = *self.began.get_or_insert_with(Instant::now);
        match began.elapsed() < self.limit {
            true => Ok(()),
            false => Err(HeadError::TimedOut),
        }
    }
}

/// httparse accepts a bare LF as a line ending, as RFC 9112 §2.2 allows a
/// recipient to. A proxy must not: if the server behind it reads the head
/// differently, a request can be smuggled past the filter. Every line ending
/// in a head must be CRLF, and a CR must end a line.
pub(crate) fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    for (i, &b) in head.iter().enumerate() {
        let bare = match b {
            b'\n' => i == 0 || head[i - 1] != b'\r',
            b'\r' => head.get(i + 1) != Some(&b'\n'),
            _ => false,
        };
        if bare {
            return Err(HeadError::Malformed("bare CR or LF in the message head"));
        }
    }
    Ok(())
}
