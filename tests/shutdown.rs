//! SIGTERM and SIGINT: stop accepting, let requests in flight finish within the
//! grace period, close idle connections, exit 0. As PID 1 in a scratch image
//! nothing else would handle these signals.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use support::*;

#[test]
fn sigterm_with_an_idle_keep_alive_connection_exits_0_at_once() {
    let fake = FakeApiServer::start();
    let mut proxy = Kproxy::in_cluster(&fake, &["--grace-period", "10m"]);
    let mut idle = TcpStream::connect(&proxy.addr).unwrap();
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    idle.write_all(b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(idle.try_clone().unwrap());
    assert_eq!(read_response(&mut reader).0, 200);

    proxy.signal("TERM");
    // The idle connection is closed rather than waited for (the grace period is 10 minutes).
    assert_eq!(proxy.wait_exit(PATIENCE), Some(0), "{}", proxy.stderr());
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn sigint_exits_0_too() {
    let fake = FakeApiServer::start();
    let mut proxy = Kproxy::in_cluster(&fake, &[]);
    proxy.signal("INT");
    assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
}

#[test]
fn a_request_in_flight_finishes_and_new_connections_are_refused() {
    let fake = FakeApiServer::start();
    let mut proxy = Kproxy::in_cluster(&fake, &["--grace-period", "10m"]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(b"GET /api/v1/namespaces/default/pods?watch=1&gated=1&events=2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"));

    proxy.signal("TERM");
    // Wait until the listener is closed.
    wait_until("the listener to close after SIGTERM", || {
        TcpStream::connect(&proxy.addr).is_err()
    });
    assert_eq!(
        proxy.child.try_wait().unwrap(),
        None,
        "exited with a request in flight"
    );

    fake.release_event();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("watched-1") && rest.ends_with("0\r\n\r\n"),
        "{rest}"
    );
    assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
}

#[test]
fn the_grace_period_bounds_the_wait() {
    let fake = FakeApiServer::start();
    let mut proxy = Kproxy::in_cluster(&fake, &["--grace-period", "1s"]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.write_all(b"GET /api/v1/namespaces/default/pods?watch=1&gated=1&events=2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    conn.read_exact(&mut first).unwrap();
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
    assert!(
        proxy.stderr().contains("grace period over"),
        "{}",
        proxy.stderr()
    );
}
