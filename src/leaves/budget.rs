//! A bound on the memory that all connections together may hold for large requests.
//!
//! A request whose head fits the client's read buffer and whose body is small
//! costs a connection nothing beyond its fixed buffers. A large head (up to 64
//! KiB) or a body kept to be sent again (up to 64 KiB) is different: a few
//! hundred hostile clients holding one each would need tens of MiB and get the
//! sidecar OOM-killed. So each such request first reserves its bytes here; when
//! the budget is spent it waits briefly for others to finish, then is refused.
//! Small requests never touch the budget (no lock on the common path).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a large request waits for room before it is refused (503).
const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Grant<'b> {
    budget: &'b Budget,
    bytes: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Reserves `bytes`, waiting up to `WAIT` for room; `None` if there is none.
    pub fn reserve(&self, bytes: usize) -> Option<Grant<'_>> {
        let deadline = Instant::now() + WAIT;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || bytes > self.limit {
                return None;
            }
            used = self
                .freed
                .wait_timeout(used, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += bytes;
        Some(Grant {
            budget: self,
            bytes,
        })
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= bytes;
        drop(used);
        self.freed.notify_all();
    }
}

impl Grant<'_> {
    /// Keeps only `bytes` of the grant (what the request still holds), giving
    /// the rest back at once.
    pub fn shrink_to(&mut self, bytes: usize) {
        let excess = self.bytes.saturating_sub(bytes);
        self.bytes -= excess;
        self.budget.give_back(excess);
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_bounded_and_given_back() {
        let budget = Budget::new(100);
        let a = budget.reserve(60).unwrap();
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        b.shrink_to(10);
        assert_eq!(budget.used(), 70);
        drop(a);
        assert_eq!(budget.used(), 10);
        assert!(budget.reserve(101).is_none(), "more than the whole budget");
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_waiting_request_gets_room_as_soon_as_it_is_freed() {
        let budget = std::sync::Arc::new(Budget::new(100));
        let held = budget.reserve(100).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| budget.reserve(50).map(|g| g.bytes));
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            assert_eq!(waiter.join().unwrap(), Some(50));
        });
    }
}
