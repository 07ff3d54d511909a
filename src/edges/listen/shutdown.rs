//! Graceful shutdown: the state the accept loop, the connection threads and the
//! signal handler share. A stop closes connections idle between requests at
//! once; a drain waits, up to the grace period, for those in flight.

use std::net::Shutdown as Direction;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::Listener;
use crate::leaves::socket::Socket;
use crate::proxy::Lifecycle;

/// Shared between the accept loop, connection threads and the signal handler.
#[derive(Default)]
pub struct Shutdown {
    stopping: AtomicBool,
    connections: Mutex<Vec<Arc<Tracked>>>,
    drained: Condvar,
}

/// One live connection, as seen by the shutdown logic.
pub(super) struct Tracked {
    stream: Socket,
    idle: AtomicBool,
}

impl Shutdown {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Starts a graceful stop: no new connections; idle ones closed now.
    pub fn stop(&self, listener: &Listener) {
        self.stopping.store(true, Ordering::SeqCst);
        listener.poke();
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for conn in connections.iter().filter(|c| c.idle.load(Ordering::SeqCst)) {
            // Wakes the thread's blocked read with end-of-stream.
            conn.stream.shutdown(Direction::Read);
        }
    }

    /// Waits until every connection has finished, or `grace` has passed.
    /// Returns how many were still open.
    pub fn drain(&self, grace: Duration) -> usize {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let (connections, _) = self
            .drained
            .wait_timeout_while(connections, grace, |c| !c.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        connections.len()
    }

    pub(super) fn open_connections(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub(super) fn track(&self, stream: Socket) -> Arc<Tracked> {
        let tracked = Arc::new(Tracked {
            stream,
            idle: AtomicBool::new(false),
        });
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tracked.clone());
        tracked
    }

    pub(super) fn untrack(&self, tracked: &Arc<Tracked>) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.retain(|c| !Arc::ptr_eq(c, tracked));
        if connections.is_empty() {
            self.drained.notify_all();
        }
    }
}

/// A connection thread's view of the shutdown state.
pub(super) struct Life<'a> {
    shutdown: &'a Shutdown,
    tracked: Arc<Tracked>,
}

impl<'a> Life<'a> {
    pub(super) fn new(shutdown: &'a Shutdown, tracked: Arc<Tracked>) -> Life<'a> {
        Life { shutdown, tracked }
    }
}

/// Untracks on drop, so a connection is forgotten even if its thread panics.
impl Drop for Life<'_> {
    fn drop(&mut self) {
        self.shutdown.untrack(&self.tracked);
    }
}

impl Lifecycle for Life<'_> {
    fn idle(&self) -> bool {
        // Marked idle first, then checked: `Shutdown::stop` sets the flag first,
        // then looks at idle marks, so one of the two always sees the other.
        self.tracked.idle.store(true, Ordering::SeqCst);
        !self.shutdown.is_stopping()
    }

    fn busy(&self) {
        self.tracked.idle.store(false, Ordering::SeqCst);
    }
}
