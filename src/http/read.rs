//! Reading a message head from a buffered stream, without reading past it.

use std::io::BufRead;
use std::time::{Duration, Instant};

use super::HeadError;

/// Copies bytes from `reader` into `buf` until `parse` finds a whole head, then
/// consumes exactly the head's bytes: what follows (a body, the next request)
/// stays in the reader. Returns `Ok(None)` on a clean end of stream before any byte.
///
/// `buf` holds what was read of this head so far: empty for a new head. After an
/// error such as a read timeout, calling again with the same `buf` goes on where
/// the last call stopped.
///
/// `parse` returns the parsed value and the head's length once complete.
/// `clock`, if given, bounds the time from the head's first byte to its end.
pub(crate) fn read_head<R: BufRead, T>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, HeadError>,
    mut clock: Option<&mut HeadClock>,
) -> Result<Option<T>, HeadError> {
    loop {
        if let Some(clock) = clock.as_deref_mut() {
            if !buf.is_empty() {
                clock.check()?;
            }
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
        buf.extend_from_slice(&available[..take]);
        if let Some((value, head_len)) = parse(buf)? {
            reader.consume(head_len - old_len);
            return Ok(Some(value));
        }
        reader.consume(take);
        if buf.len() > max_len {
            return Err(HeadError::TooLarge);
        }
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
