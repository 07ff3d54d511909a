//! The connections to the API server, shared by all clients: a bounded number,
//! made a few at a time, lent in turn.
//!
//! HTTP/1.1 needs a connection per request in flight, but not one per client.
//! Ordinary requests share `limit` connections (lent, idle and being made,
//! together); a request that finds none free waits its turn, first come first
//! served, as Go's transport does with `MaxConnsPerHost`. So a burst of clients
//! costs the API server `limit` connections, however many there are.
//!
//! The limit is for bursts of short requests, not a queue behind slow ones: a
//! request that has waited [`OVERFLOW_AFTER`] (far longer than a burst's turns
//! take) also asks the dialers for a connection of its own, and takes whichever
//! comes first. An answer that turns out slow or long stops counting (see
//! [`Place::detach`]). So slow answers and slow readers, however many, never
//! keep another client's request waiting; what bounds them is what bounds
//! watches: `--max-connections` and the memory budget. A connection made past
//! the limit serves one exchange and is closed, unless the pool has room.
//!
//! New connections are made by [`DIALERS`] threads, so a burst of new clients
//! ramps up a few handshakes at a time instead of storming the API server with
//! one per client; and a TLS handshake's deep stack is touched on those threads
//! only, not on every client's.
//!
//! Long-lived streams are not counted: a watch, `follow`ed logs and a tunnel
//! get a connection of their own ([`Pool::own`], [`Pool::fresh`]), and a lent
//! connection whose answer goes quiet mid-body stops counting
//! ([`Place::detach`]). So streams never starve short requests of their turn.
//!
//! Idle connections are closed after [`IDLE_TIMEOUT`], as Go's transport does.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{ConnectError, Connection, Dial};
use crate::services::metrics::METRICS;

/// Connections made at once. Each handshake takes a millisecond or two of CPU
/// on each side; four keep a cold burst of hundreds of clients brief without
/// the API server seeing hundreds of handshakes at the same instant.
pub const DIALERS: usize = 4;
/// How long an unused connection is kept (Go's transport: 90 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a request waits for its turn before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);
/// How long a request waits for its turn before it also asks for a connection
/// of its own. A cold burst of 256 clients is served in turns of about 30 ms at
/// the 99th percentile (docs/benchmarks.md), so a burst never gets here; a
/// request stuck behind slow answers does, and is answered within a second.
pub const OVERFLOW_AFTER: Duration = Duration::from_millis(250);
/// How often the dialers look for idle connections to close.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Stack of a dialer thread: a handshake with an RSA-4096 certificate fits
/// (tests/config.rs), as on the connection threads.
const DIALER_STACK: usize = 256 * 1024;

pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    dialer: Box<dyn Dial>,
    limit: usize,
    /// [`OVERFLOW_AFTER`], but for tests that count connections.
    overflow_after: Duration,
    state: Mutex<State>,
    /// Wakes the dialer threads when there is a job.
    work: Condvar,
}

#[derive(Default)]
struct State {
    /// Oldest first, so the newest (warmest) is lent first.
    idle: Vec<(Connection, Instant)>,
    /// Connections lent and counted against the limit.
    lent: usize,
    /// Connections being made for the queue, counted against the limit.
    dialing: usize,
    /// Requests waiting their turn, first come first served.
    queue: VecDeque<Waiter>,
    jobs: VecDeque<Job>,
    next_waiter: u64,
    /// The pool was dropped: the dialer threads end.
    closed: bool,
}

struct Waiter {
    id: u64,
    deliver: SyncSender<Delivery>,
}

type Delivery = Result<Lease, ConnectError>;

enum Job {
    /// For whoever is first in the queue when it is ready.
    Queue,
    /// For one request of its own (a stream, a tunnel, or a waiter past
    /// [`OVERFLOW_AFTER`], whose id it carries), not counted.
    Own(SyncSender<Delivery>, Option<u64>),
}

/// A connection lent for one exchange. Dropped without [`Lease::give_back`],
/// the connection is closed; either way its place in the limit is freed.
pub struct Lease {
    /// Dropped first: the connection is closed before its place is freed.
    conn: Option<Connection>,
    place: Place,
}

/// A lease's place in the limit, freed when dropped (or detached).
pub struct Place {
    shared: Arc<Shared>,
    counted: bool,
}

impl Pool {
    /// Starts the dialer threads, which make connections with `dialer`.
    pub fn new(dialer: impl Dial + 'static, limit: usize) -> Pool {
        Pool::start(Box::new(dialer), limit, OVERFLOW_AFTER)
    }

    /// A pool whose requests wait their turn for the whole [`QUEUE_WAIT`],
    /// never asking for a connection of their own: for tests that count
    /// connections, which a loaded machine's slow dial (past
    /// [`OVERFLOW_AFTER`]) would otherwise make one more of.
    #[cfg(test)]
    pub(crate) fn patient(dialer: impl Dial + 'static, limit: usize) -> Pool {
        Pool::start(Box::new(dialer), limit, QUEUE_WAIT)
    }

    fn start(dialer: Box<dyn Dial>, limit: usize, overflow_after: Duration) -> Pool {
        let shared = Arc::new(Shared {
            dialer,
            limit,
            overflow_after,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
        });
        for _ in 0..DIALERS {
            let shared = shared.clone();
            let spawned = thread::Builder::new()
                .name("dialer".into())
                .stack_size(DIALER_STACK)
                .spawn(move || shared.dial_forever());
            if let Err(e) = spawned {
                crate::warn!("cannot start a dialer thread: {e}");
            }
        }
        Pool { shared }
    }

    /// A connection for an ordinary request, counted against the limit: the
    /// newest idle one, else the next one free or made, in turn.
    pub fn lease(&self) -> Result<Lease, ConnectError> {
        let generation = self.shared.dialer.generation();
        loop {
            let mut state = self.shared.lock();
            let lease = match state.pop_idle(generation) {
                Some(conn) => {
                    state.lent += 1;
                    drop(state);
                    Lease::new(&self.shared, conn, true)
                }
                None => {
                    let id = state.next_waiter;
                    state.next_waiter += 1;
                    // Room for its turn and a connection of its own, should both come.
                    let (deliver, delivery) = sync_channel(2);
                    state.queue.push_back(Waiter {
                        id,
                        deliver: deliver.clone(),
                    });
                    self.shared.dial_for_queue(&mut state);
                    drop(state);
                    self.wait_turn(id, deliver, &delivery)?
                }
            };
            if let Some(lease) = lease.usable() {
                return Ok(lease);
            }
        }
    }

    /// Waits for a connection: its turn in the queue, or past [`OVERFLOW_AFTER`]
    /// one of its own too, whichever comes first; the other goes back to the
    /// pool. After [`QUEUE_WAIT`] without either, `Busy`.
    fn wait_turn(
        &self,
        id: u64,
        deliver: SyncSender<Delivery>,
        delivery: &Receiver<Delivery>,
    ) -> Result<Lease, ConnectError> {
        let overflow_after = self.shared.overflow_after;
        let mut got = delivery.recv_timeout(overflow_after).ok();
        if got.is_none() && overflow_after < QUEUE_WAIT {
            let mut state = self.shared.lock();
            state.jobs.push_back(Job::Own(deliver, Some(id)));
            self.shared.work.notify_one();
            drop(state);
            got = delivery.recv_timeout(QUEUE_WAIT - overflow_after).ok();
        }
        // No longer waiting: out of the queue, and a dial for it not yet begun
        // is called off.
        let mut state = self.shared.lock();
        state.queue.retain(|waiter| waiter.id != id);
        state
            .jobs
            .retain(|job| !matches!(job, Job::Own(_, Some(waiter)) if *waiter == id));
        drop(state);
        // Something may have come just as the wait ended; one is used, the
        // rest go back to the pool.
        while let Ok(more) = delivery.try_recv() {
            match (&got, more) {
                (None, more) => got = Some(more),
                (Some(_), Ok(spare)) => spare.give_back(),
                (Some(_), Err(_)) => {}
            }
        }
        got.unwrap_or(Err(ConnectError::Busy {
            limit: self.shared.limit,
            waited: QUEUE_WAIT,
        }))
    }

    /// A connection of its own for a long-lived stream (a watch, followed logs),
    /// not counted against the limit: an idle one if there is one, else a new one.
    pub fn own(&self) -> Result<Lease, ConnectError> {
        let generation = self.shared.dialer.generation();
        loop {
            let idle = self.shared.lock().pop_idle(generation);
            match idle {
                Some(conn) => match Lease::new(&self.shared, conn, false).usable() {
                    Some(lease) => return Ok(lease),
                    None => continue,
                },
                None => return self.made_for_me(),
            }
        }
    }

    /// A new connection that will not return to the pool (a tunnel's).
    pub fn fresh(&self) -> Result<Connection, ConnectError> {
        self.made_for_me().map(Lease::into_connection)
    }

    /// Requests waiting their turn.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Connections kept idle.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.shared.lock().idle.len()
    }

    fn made_for_me(&self) -> Result<Lease, ConnectError> {
        let (deliver, delivery) = sync_channel(1);
        let mut state = self.shared.lock();
        state.jobs.push_back(Job::Own(deliver, None));
        self.shared.work.notify_one();
        drop(state);
        // A dial ends within the connect and handshake timeouts; should the
        // dialers be gone, the sender drops and this returns at once.
        delivery
            .recv()
            .unwrap_or(Err(ConnectError::Timeout("connecting")))
    }
}

/// The dialer threads end, and idle connections are closed. (kproxy keeps
/// its one pool for its whole life; a test makes many.)
impl Drop for Pool {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.idle.clear();
        self.shared.work.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts as many new connections as the queue needs and the limit allows.
    fn dial_for_queue(&self, state: &mut State) {
        let open = state.lent + state.idle.len() + state.dialing;
        let wanted = state.queue.len().saturating_sub(state.dialing);
        for _ in 0..wanted.min(self.limit.saturating_sub(open)) {
            state.dialing += 1;
            state.jobs.push_back(Job::Queue);
            self.work.notify_one();
        }
    }

    /// Gives a free connection to the first request still waiting, or keeps it
    /// idle. Called with the lock held.
    fn hand_on(self: &Arc<Self>, state: &mut State, mut conn: Connection) {
        while let Some(waiter) = state.queue.pop_front() {
            let lease = Lease::new(self, conn, true);
            match waiter.deliver.try_send(Ok(lease)) {
                Ok(()) => {
                    state.lent += 1;
                    return;
                }
                // That request stopped waiting: the next one.
                Err(refused) => conn = into_delivered(refused).disarm(),
            }
        }
        state.idle.push((conn, Instant::now()));
        METRICS.upstream_idle.set(state.idle.len());
    }

    /// A place in the limit was freed: the queue may need a new connection.
    fn freed(&self, counted: bool) {
        if counted {
            let mut state = self.lock();
            state.lent -= 1;
            self.dial_for_queue(&mut state);
        }
    }

    /// A dialer thread: makes connections for jobs; between jobs, closes idle
    /// connections past their time.
    fn dial_forever(self: Arc<Self>) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(job) = state.jobs.pop_front() {
                        break job;
                    }
                    if state.closed {
                        return;
                    }
                    let (next, waited) = self
                        .work
                        .wait_timeout(state, SWEEP_EVERY)
                        .unwrap_or_else(|p| p.into_inner());
                    state = next;
                    if waited.timed_out() {
                        self.sweep(&mut state);
                    }
                }
            };
            let made = self.dialer.connect();
            match job {
                Job::Own(deliver, _) => {
                    let lease = made.map(|conn| Lease::new(&self, conn, false));
                    // If the request has gone (or took another), the pool may
                    // keep it; else it is closed.
                    if let Err(refused) = deliver.try_send(lease) {
                        if let Ok(lease) = into_delivery(refused) {
                            lease.give_back();
                        }
                    }
                }
                Job::Queue => {
                    let mut state = self.lock();
                    state.dialing -= 1;
                    match made {
                        Ok(conn) => self.hand_on(&mut state, conn),
                        // Whoever waits now would most likely fail the same way:
                        // they are told at once rather than each after its own try.
                        Err(e) => {
                            for waiter in state.queue.drain(..) {
                                let _ = waiter.deliver.try_send(Err(e.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Closes idle connections unused for [`IDLE_TIMEOUT`], or verified under a
    /// CA bundle that has since changed.
    fn sweep(&self, state: &mut State) {
        let generation = self.dialer.generation();
        state.idle.retain(|(conn, since)| {
            since.elapsed() < IDLE_TIMEOUT && conn.generation() == generation
        });
        METRICS.upstream_idle.set(state.idle.len());
    }
}

impl State {
    /// The newest idle connection that is still fresh; stale ones met on the
    /// way are closed.
    fn pop_idle(&mut self, generation: u64) -> Option<Connection> {
        let mut found = None;
        while let Some((conn, since)) = self.idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && conn.generation() == generation {
                found = Some(conn);
                break;
            }
        }
        METRICS.upstream_idle.set(self.idle.len());
        found
    }
}

fn into_delivery(refused: std::sync::mpsc::TrySendError<Delivery>) -> Delivery {
    let (std::sync::mpsc::TrySendError::Full(delivery)
    | std::sync::mpsc::TrySendError::Disconnected(delivery)) = refused;
    delivery
}

fn into_delivered(refused: std::sync::mpsc::TrySendError<Delivery>) -> Lease {
    match into_delivery(refused) {
        Ok(lease) => lease,
        Err(_) => unreachable!("only connections are handed on"),
    }
}

impl Lease {
    fn new(shared: &Arc<Shared>, conn: Connection, counted: bool) -> Lease {
        Lease {
            conn: Some(conn),
            place: Place {
                shared: shared.clone(),
                counted,
            },
        }
    }

    /// The lease, if its connection may carry a request: a reused one is looked
    /// at once more, right before use, for anything unasked-for that came since
    /// its last answer (one peek per reuse). Otherwise it is closed, its place
    /// freed, and `None` returned.
    fn usable(mut self) -> Option<Lease> {
        let conn = self.conn();
        match !conn.reused || conn.transport.socket_is_quiet() {
            true => Some(self),
            false => None,
        }
    }

    pub fn conn(&mut self) -> &mut Connection {
        self.parts().0
    }

    /// The connection and the place, to use both at once (stream through the
    /// one, detach the other).
    pub fn parts(&mut self) -> (&mut Connection, &mut Place) {
        match &mut self.conn {
            Some(conn) => (conn, &mut self.place),
            None => unreachable!("a lease holds its connection until it is consumed"),
        }
    }

    /// After a complete, clean exchange: the connection serves the next request
    /// (a waiting one first). One that read more than its answer, or was
    /// verified under a CA bundle since replaced, is closed instead; so is one
    /// of a stream's when the limit is reached. (Whether anything came later is
    /// looked at by the request that takes it: see `Lease::usable`.)
    pub fn give_back(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let shared = self.place.shared.clone();
        if conn.transport.has_buffered_input() || conn.generation() != shared.dialer.generation() {
            return; // closed, then the place freed, as `self` drops
        }
        conn.reused = true;
        let counted = std::mem::replace(&mut self.place.counted, false);
        let mut state = shared.lock();
        if counted {
            state.lent -= 1;
        } else if state.lent + state.idle.len() + state.dialing >= shared.limit {
            return;
        }
        shared.hand_on(&mut state, conn);
    }

    /// The connection back, without freeing a place: for a lease that was never
    /// handed over (the pool's lock is held; dropping it would lock again).
    fn disarm(mut self) -> Connection {
        self.place.counted = false;
        self.take()
    }

    /// The connection, taken out of the pool's keeping for good.
    fn into_connection(mut self) -> Connection {
        self.place.detach();
        self.take()
    }

    fn take(&mut self) -> Connection {
        match self.conn.take() {
            Some(conn) => conn,
            None => unreachable!("a lease holds its connection until it is consumed"),
        }
    }
}

impl Place {
    /// The answer turned into a long stream: stop counting it, so that short
    /// requests are not kept waiting behind it.
    pub fn detach(&mut self) {
        let counted = std::mem::replace(&mut self.counted, false);
        self.shared.freed(counted);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests;
