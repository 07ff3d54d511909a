//! The pool, driven in-process against a fake API server over
//! `UnixStream::pair()` (see [`crate::services::upstream::fake`]).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::services::upstream::fake::{FakeApi, Reply};
use crate::services::upstream::Transport;

/// One GET on the lease's connection; the status and the body.
fn get(lease: &mut Lease, path: &str) -> (u16, String) {
    let transport = &mut lease.conn().transport;
    write!(transport, "GET {path} HTTP/1.1\r\nHost: api\r\n\r\n").unwrap();
    transport.flush().unwrap();
    let line = read_line(transport);
    let code = line[9..12].parse().unwrap();
    let mut length = 0;
    loop {
        let field = read_line(transport);
        if field.trim_end().is_empty() {
            break;
        }
        if let Some(value) = field.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    let mut at = 0;
    while at < length {
        match transport.read(&mut body[at..]) {
            Ok(0) => panic!("closed mid-body"),
            Ok(n) => at += n,
            Err(e) if crate::leaves::http::body::is_timeout(&e) => {}
            Err(e) => panic!("{e}"),
        }
    }
    (code, String::from_utf8(body).unwrap())
}

/// A line, waiting through the connection's read wake-ups.
fn read_line(transport: &mut Transport) -> String {
    let mut line = String::new();
    loop {
        match transport.read_line(&mut line) {
            Ok(0) => panic!("closed before a full line: {line:?}"),
            Ok(_) => return line,
            Err(e) if crate::leaves::http::body::is_timeout(&e) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Waits (at most 10 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// A pool that never overflows (see [`Pool::patient`]), so that counts of
/// connections are exact however slowly this machine dials.
fn pool(limit: usize) -> (Pool, FakeApi) {
    let api = FakeApi::echo_paths();
    (Pool::patient(api.clone(), limit), api)
}

#[test]
fn a_connection_given_back_serves_the_next_request() {
    let (pool, api) = pool(4);
    let mut first = pool.lease().unwrap();
    assert!(!first.conn().reused);
    assert_eq!(get(&mut first, "/a"), (200, r#"{"path":"/a"}"#.into()));
    first.give_back();
    assert_eq!(pool.idle(), 1);
    let mut second = pool.lease().unwrap();
    assert!(second.conn().reused);
    assert_eq!(get(&mut second, "/b").0, 200);
    assert_eq!(api.dials(), 1);
    let conns: Vec<usize> = api.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [1, 1]);
}

#[test]
fn a_lease_dropped_without_give_back_is_closed() {
    let (pool, api) = pool(4);
    let mut lease = pool.lease().unwrap();
    get(&mut lease, "/a");
    drop(lease);
    wait_until("the connection closed", || api.closed() == 1);
    assert_eq!(pool.idle(), 0);
    pool.lease().unwrap();
    assert_eq!(api.dials(), 2);
}

#[test]
fn a_burst_of_requests_shares_limit_connections() {
    let (pool, api) = pool(2);
    let pool = Arc::new(pool);
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || {
                for j in 0..10 {
                    let mut lease = pool.lease().unwrap();
                    let path = format!("/w{i}/{j}");
                    assert_eq!(get(&mut lease, &path).1, format!("{{\"path\":{path:?}}}"));
                    lease.give_back();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(api.seen().len(), 80);
    // A request that waited past OVERFLOW_AFTER (a slow machine) may have
    // had one of its own, but none of those is kept: at most the limit.
    assert!(pool.idle() <= 2, "{} kept for a limit of 2", pool.idle());
    wait_until("the extra connections closed", || {
        api.dials() - api.closed() <= 2
    });
}

#[test]
fn waiting_requests_are_served_first_come_first_served() {
    let (pool, api) = pool(1);
    let pool = Arc::new(pool);
    let mut held = pool.lease().unwrap();
    get(&mut held, "/held");
    // Overflow dials (after 250 ms) wait too: only the turns decide.
    api.hold();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for name in ["first", "second", "third"] {
        let (shared, order) = (pool.clone(), order.clone());
        let queued = pool.queued();
        waiters.push(thread::spawn(move || {
            let mut lease = shared.lease().unwrap();
            order.lock().unwrap().push(name);
            get(&mut lease, &format!("/{name}"));
            lease.give_back();
        }));
        wait_until("the request queued", || pool.queued() == queued + 1);
    }
    held.give_back();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    api.release();
    assert_eq!(*order.lock().unwrap(), ["first", "second", "third"]);
    let on_first: Vec<usize> = api.seen().iter().map(|s| s.conn).collect();
    assert_eq!(on_first, [1, 1, 1, 1]);
}

#[test]
fn a_request_stuck_behind_a_slow_one_gets_a_connection_of_its_own() {
    let api = FakeApi::echo_paths();
    let pool = Pool::new(api.clone(), 1);
    let mut slow = pool.lease().unwrap();
    get(&mut slow, "/slow");
    // The one counted connection stays lent: the next request waits its
    // turn, then (past OVERFLOW_AFTER) gets one of its own.
    let mut other = pool.lease().unwrap();
    assert_eq!(get(&mut other, "/other").0, 200);
    assert_eq!(api.dials(), 2);
    // Not counted, and the limit is reached: closed, not kept.
    other.give_back();
    wait_until("the extra connection closed", || api.closed() == 1);
    slow.give_back();
    assert_eq!(pool.idle(), 1);
}

#[test]
fn a_detached_place_lets_the_next_request_in() {
    let (pool, api) = pool(1);
    let mut streaming = pool.lease().unwrap();
    get(&mut streaming, "/watch-like");
    streaming.parts().1.detach();
    // The place is free: this one is counted, and kept afterwards.
    api.hold();
    let pool = Arc::new(pool);
    let next = thread::spawn({
        let pool = pool.clone();
        move || {
            let mut lease = pool.lease().unwrap();
            get(&mut lease, "/next");
            lease.give_back();
        }
    });
    wait_until("a dial for the queue", || pool.queued() == 1);
    api.release();
    next.join().unwrap();
    assert_eq!(
        pool.idle(),
        1,
        "the next request's connection was not counted"
    );
    // The detached one is not counted: the pool is full, so it is closed.
    streaming.give_back();
    wait_until("the detached connection closed", || api.closed() == 1);
    assert_eq!(pool.idle(), 1);
}

#[test]
fn a_stream_gets_a_connection_of_its_own_at_once() {
    let (pool, api) = pool(1);
    let mut counted = pool.lease().unwrap();
    get(&mut counted, "/a");
    let mut own = pool.own().unwrap();
    assert_eq!(get(&mut own, "/watch").0, 200);
    assert_eq!(api.dials(), 2);
    assert_eq!(pool.queued(), 0);
    // An idle one is lent to a stream before a new one is made.
    counted.give_back();
    own.give_back();
    let mut reused = pool.own().unwrap();
    assert!(reused.conn().reused);
    assert_eq!(api.dials(), 2);
    get(&mut reused, "/again");
}

#[test]
fn a_tunnels_connection_never_returns() {
    let (pool, api) = pool(2);
    let fresh = pool.fresh().unwrap();
    assert!(!fresh.reused);
    drop(fresh);
    wait_until("the tunnel's connection closed", || api.closed() == 1);
    assert_eq!(pool.idle(), 0);
}

#[test]
fn a_rotated_ca_retires_pooled_connections() {
    let (pool, api) = pool(2);
    let mut lease = pool.lease().unwrap();
    get(&mut lease, "/a");
    lease.give_back();
    api.rotate();
    let mut lease = pool.lease().unwrap();
    assert!(!lease.conn().reused, "a connection of the old CA was lent");
    get(&mut lease, "/b");
    assert_eq!(api.dials(), 2);
    wait_until("the old connection closed", || api.closed() == 1);
    // One verified under the old CA is not kept either.
    let old = pool.own().unwrap();
    api.rotate();
    old.give_back();
    assert_eq!(pool.idle(), 0);
}

#[test]
fn a_connection_that_read_more_than_its_answer_is_not_kept() {
    let api = FakeApi::new(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n".to_vec())
    });
    let pool = Pool::patient(api.clone(), 2);
    let mut lease = pool.lease().unwrap();
    assert_eq!(get(&mut lease, "/a"), (200, "{}".into()));
    lease.give_back();
    assert_eq!(pool.idle(), 0);
    wait_until("the connection closed", || api.closed() == 1);
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_lent() {
    let api = FakeApi::new(|_| {
        Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec())
    });
    let pool = Pool::patient(api.clone(), 2);
    let mut lease = pool.lease().unwrap();
    get(&mut lease, "/a");
    lease.give_back();
    wait_until("the server closed its end", || api.closed() == 1);
    let mut lease = pool.lease().unwrap();
    assert!(!lease.conn().reused);
    assert_eq!(get(&mut lease, "/b").0, 200);
    assert_eq!(api.dials(), 2);
}

#[test]
fn a_failed_dial_is_told_to_every_waiter() {
    let (pool, api) = pool(1);
    api.refuse(true);
    let e = pool.lease().err().unwrap();
    assert!(matches!(e, ConnectError::Connect(_)), "{e:?}");
    assert!(e
        .to_string()
        .starts_with("cannot connect to the API server"));
    let e = pool.own().err().unwrap();
    assert!(matches!(e, ConnectError::Connect(_)), "{e:?}");
    // Nothing is left counted: once the server is back, requests pass.
    api.refuse(false);
    let mut lease = pool.lease().unwrap();
    assert_eq!(get(&mut lease, "/back").0, 200);
}

#[test]
fn idle_connections_are_counted_against_the_limit() {
    let (pool, api) = pool(2);
    let mut a = pool.lease().unwrap();
    let mut b = pool.lease().unwrap();
    get(&mut a, "/a");
    get(&mut b, "/b");
    let mut own = pool.own().unwrap();
    get(&mut own, "/own");
    a.give_back();
    b.give_back();
    // Two idle, the limit: the stream's connection is closed, not kept.
    own.give_back();
    assert_eq!(pool.idle(), 2);
    wait_until("the third closed", || api.closed() == 1);
}

#[test]
fn a_dropped_pool_closes_its_idle_connections() {
    let (pool, api) = pool(2);
    let mut lease = pool.lease().unwrap();
    get(&mut lease, "/a");
    lease.give_back();
    drop(pool);
    wait_until("the idle connection closed", || api.closed() == 1);
}
