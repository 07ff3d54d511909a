//! Hostile and broken input: each refusal through the real binary with a raw TCP
//! client, asserting the exact status, that nothing reached the API server, and
//! that the next well-formed request on a new connection is served.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Sends `request` on a new connection; returns the status of the answer and
/// whether kproxy closed the connection after it.
fn refused(proxy: &Kproxy, request: &[u8]) -> (u16, bool) {
    let reply = raw(proxy.addr.as_str(), request);
    let code = reply.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, reply.contains("Connection: close"))
}

fn assert_refused(proxy: &Kproxy, fake: &FakeApiServer, request: &[u8], status: u16) {
    let (code, closed) = refused(proxy, request);
    let shown = String::from_utf8_lossy(&request[..request.len().min(120)]);
    assert_eq!(code, status, "{shown:?}");
    assert!(
        closed,
        "{shown:?}: the connection must be closed when framing is lost"
    );
    assert!(
        fake.requests().is_empty(),
        "{shown:?} reached the API server"
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200, "after {shown:?}");
    fake.stats.requests.lock().unwrap().clear();
}

#[test]
fn oversized_heads_are_refused_with_414_and_431() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert_refused(&proxy, &fake, long_line.as_bytes(), 414);
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_refused(&proxy, &fake, big_head.as_bytes(), 431);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "X-A: b\r\n".repeat(100)
    );
    assert_refused(&proxy, &fake, many.as_bytes(), 431);
}

#[test]
fn malformed_and_ambiguous_requests_are_refused_with_400() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let cases: &[&[u8]] = &[
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"HELLO THERE\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!!\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"GET /api HTTP/1.1\r\nHost: localhost\r\nBad Name: a\r\n\r\n",
        b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET /api HTTP/1.1\r\nHost: localhost\rX-Bare-CR: a\r\n\r\n",
        b"GET /api HTTP/1.1\nHost: localhost\n\n",
        b"GET /api HTTP/1.1\r\nHost: localhost\nX-Bare-LF: a\r\n\r\n",
    ];
    for request in cases {
        assert_refused(&proxy, &fake, request, 400);
    }
}

#[test]
fn unframeable_answers_from_the_api_server_are_502() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for path in [
        "/misbehave/smuggle",
        "/misbehave/bare-lf",
        "/misbehave/folded",
    ] {
        let (_, body, _) = curl(&["-w", "\n%{http_code}", &proxy.url(path)]);
        let (body, code) = body.rsplit_once('\n').unwrap();
        assert_eq!(code, "502", "{path}: {body}");
        let message = assert_refusal(body.as_bytes(), 502, "upstream_bad_response");
        assert!(message.contains("not valid HTTP"), "{body}");
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    }
}

#[test]
fn a_slowloris_client_is_dropped_and_others_are_not_held_up() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--header-timeout", "2s"]);
    let mut slow = TcpStream::connect(&proxy.addr).unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let trickler = {
        let mut slow = slow.try_clone().unwrap();
        thread::spawn(move || {
            for byte in b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
                .iter()
                .chain(b"a".repeat(200).iter())
            {
                if slow.write_all(&[*byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Meanwhile, other clients are served as usual.
    for _ in 0..5 {
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
        thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        started.elapsed() < PATIENCE,
        "the trickling client was never dropped"
    );
    trickler.join().unwrap();
    assert!(fake.requests().iter().all(|r| r.header("X-Slow").is_none()));
}

#[test]
fn a_stalled_request_body_is_408() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--header-timeout", "1s"]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(fake.requests().is_empty());
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--idle-timeout", "1s"]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(conn);
    assert_eq!(read_response(&mut reader).0, 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(
        reader.read_to_end(&mut rest).unwrap(),
        0,
        "closed without a word"
    );
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn a_client_that_stops_reading_its_answer_is_let_go() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--header-timeout", "2s"]);
    // Asks for 256 MiB and never reads: kproxy's writes stop making progress.
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.write_all(b"GET /bytes?n=268435456 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    wait_until(
        "the API server connection of a client that reads nothing to close",
        || !fake.requests().is_empty() && fake.open_connections() == 0,
    );
    // The connection is closed: what was sent before is there, then the end.
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut all = Vec::new();
    let _ = conn.read_to_end(&mut all);
    assert!(all.starts_with(b"HTTP/1.1 200 OK"));
    assert!(all.len() < 256 << 20);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200, "still serving");
}

#[test]
fn past_max_connections_clients_get_a_fast_503() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--max-connections", "2"]);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&proxy.addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&proxy.addr).unwrap();
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = String::new();
    let _ = third.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(
        answer.contains(r#""kind":"Status""#) && answer.contains("--max-connections"),
        "{answer}"
    );
    drop(held);
    wait_until("freed connections to be served again", || {
        curl_status(&proxy.url("/api"), &[]) == 200
    });
}

#[test]
fn a_body_cut_short_by_the_client_abandons_the_upstream_request() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    // Large enough to be streamed rather than read ahead.
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    conn.write_all(&[b'x'; 200_000]).unwrap();
    wait_until("the request to reach the API server", || {
        !fake.requests().is_empty()
    });
    drop(conn);
    // The half-sent upstream request is not finished or pooled: its connection closes.
    wait_until(
        "the half-sent request's upstream connection to close",
        || fake.open_connections() == 0,
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let fake = FakeApiServer::start();
    let sa = fake.sa_dir.to_str().unwrap().to_string();
    let port = fake.port.to_string();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "ulimit -n 32; exec {} --port 0 --serviceaccount-dir {sa}",
            env!("CARGO_BIN_EXE_kproxy")
        ),
    ])
    .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    .env("KUBERNETES_SERVICE_PORT", &port);
    let proxy = Kproxy::spawn(cmd);
    // Each connection costs kproxy three descriptors: 40 exhaust 32.
    let flood: Vec<TcpStream> = (0..40)
        .filter_map(|_| TcpStream::connect(&proxy.addr).ok())
        .collect();
    thread::sleep(Duration::from_millis(500));
    drop(flood);
    wait_until("kproxy to recover from running out of descriptors", || {
        curl_status(&proxy.url("/api"), &["--max-time", "2"]) == 200
    });
    let logs = proxy.stderr();
    assert!(logs.contains("Too many open files"), "{logs}");
    // Logged once per spell of failures, not once per retry.
    assert!(logs.matches("accept failed").count() <= 2, "{logs}");
}
