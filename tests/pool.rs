//! The pool of connections to the API server: a connection serves another
//! request only when nothing unasked-for came on it, and a request is sent a
//! second time only when that cannot repeat its effect.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::*;

fn pod(proxy: &Kproxy, name: &str) -> String {
    let (code, body, err) = curl(&[&proxy.url(&format!("/api/v1/namespaces/default/pods/{name}"))]);
    assert_eq!(code, 0, "{err}");
    body
}

#[test]
fn an_answer_nobody_asked_for_never_reaches_a_client() {
    for route in ["/misbehave/stray", "/misbehave/stray?now=1"] {
        let fake = FakeApiServer::start();
        let proxy = Kproxy::in_cluster(&fake, &[]);
        let (_, body, _) = curl(&[&proxy.url(route)]);
        assert_eq!(body, "hello", "{route}");
        // The stray answer arrives while the connection sits in the pool.
        thread::sleep(Duration::from_millis(600));
        for i in 0..5 {
            let name = format!("client-{i}");
            let body = pod(&proxy, &name);
            assert!(
                body.contains(&format!(r#""name":"{name}""#)),
                "{route}: client {i} got another's answer: {body}"
            );
        }
    }
}

#[test]
fn a_post_the_api_server_may_have_acted_on_is_not_sent_again() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    // A pooled connection first, so the POST goes on a reused one.
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    // The server reads the POST, then dies without answering.
    let (_, body, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        r#"{"kind":"Pod"}"#,
        "-w",
        "\n%{http_code}",
        &proxy.url("/misbehave/drop"),
    ]);
    let (body, code) = body.rsplit_once('\n').unwrap();
    assert_eq!(code, "502", "{body}");
    assert_refusal(body.as_bytes(), 502, "upstream_failed");
    let posts = |method: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.method == method && r.target == "/misbehave/drop")
            .count()
    };
    assert_eq!(posts("POST"), 1, "the POST reached the API server twice");
    // An idempotent request is sent once more on a fresh connection.
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(curl_status(&proxy.url("/misbehave/drop"), &[]), 502);
    assert_eq!(posts("GET"), 2);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200, "still serving");
}

#[test]
fn a_connection_closed_while_idle_is_not_used_even_for_a_post() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    // Answered, then closed by the server while it sits in the pool.
    assert_eq!(curl_status(&proxy.url("/misbehave/close-after"), &[]), 200);
    thread::sleep(Duration::from_millis(200));
    // Seen dead before anything is written to it: the POST goes on a fresh one.
    let (code, body, _) = curl(&["-X", "POST", "--data-binary", "abc", &proxy.url("/echo")]);
    assert_eq!(code, 0);
    assert!(body.contains(r#""method":"POST","bytes":3"#), "{body}");
    assert_eq!(fake.handshakes(), 2);
}

/// `TcpExt: ListenOverflows` from /proc/net/netstat: connections dropped because
/// a listen queue was full (each such client waits a second or more for its
/// SYN to be sent again).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// The backlog of the listening socket on `port`, as `ss` shows it (Send-Q).
fn listen_backlog(port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss is installed (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn a_burst_of_clients_is_queued_not_dropped_and_costs_the_api_server_little() {
    const CLIENTS: usize = 300;
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(listen_backlog(proxy.port()), somaxconn.min(65535));

    let overflows = listen_overflows();
    let go = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, go) = (proxy.addr.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                let mut conn = std::net::TcpStream::connect(&addr).unwrap();
                let request = format!(
                    "GET /api/v1/namespaces/default/pods/burst-{i} HTTP/1.1\r\n\
                     Host: localhost\r\nConnection: close\r\n\r\n"
                );
                std::io::Write::write_all(&mut conn, request.as_bytes()).unwrap();
                let mut answer = String::new();
                std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
                answer.contains(&format!(r#""name":"burst-{i}""#))
            })
        })
        .collect();
    let answered = clients
        .into_iter()
        .map(|c| c.join().unwrap_or(false))
        .filter(|&ok| ok)
        .count();
    assert_eq!(answered, CLIENTS, "every client gets its own answer");
    assert_eq!(
        listen_overflows() - overflows,
        0,
        "clients were dropped from a full listen queue"
    );
    let limit = kproxy::edges::cli::DEFAULT_MAX_UPSTREAM_CONNECTIONS;
    assert!(
        fake.peak_connections() <= limit,
        "{} connections at once to the API server",
        fake.peak_connections()
    );
    assert!(fake.open_connections() <= limit);
}

#[test]
fn requests_wait_their_turn_when_every_connection_is_busy() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--max-upstream-connections=2"]);
    // Turns of 60 ms: well within the 250 ms after which a waiting request
    // would ask for a connection of its own.
    let short: Vec<_> = (0..4)
        .map(|_| {
            let url = proxy.url("/slow?ms=60");
            thread::spawn(move || curl_status(&url, &[]))
        })
        .collect();
    for request in short {
        assert_eq!(request.join().unwrap(), 200);
    }
    assert_eq!(fake.peak_connections(), 2);
    assert_eq!(fake.handshakes(), 2, "the two connections served all four");
}

#[test]
fn streams_do_not_keep_short_requests_waiting() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--max-upstream-connections=1"]);
    // Announced streams (watches, followed logs) get connections of their own;
    // one that does not announce itself gives its place up once it goes quiet.
    let streams: Vec<_> = [
        "/api/v1/namespaces/default/pods?watch=1&gated=1&events=2",
        "/api/v1/watch/namespaces/default/pods?gated=1&events=2",
        "/api/v1/namespaces/default/pods?watch=0&gated=1&events=2",
        "/api/v1/namespaces/default/pods?watch=0&gated=1&events=2",
    ]
    .iter()
    .map(|path| {
        let mut reader = send(
            &proxy,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert!(skip_head(&mut reader).starts_with("HTTP/1.1 200"), "{path}");
        reader
    })
    .collect();
    thread::sleep(Duration::from_secs(1));
    for i in 0..5 {
        let name = format!("short-{i}");
        assert!(pod(&proxy, &name).contains(&name));
    }
    drop(streams);
}

#[test]
fn a_request_stuck_behind_slow_ones_gets_a_connection_of_its_own() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--max-upstream-connections=1"]);
    // Holds the one connection for 40 s.
    let busy = send(
        &proxy,
        "GET /slow?ms=40000 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.handshakes(), 2);
    busy.get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    drop(busy);
    // Past its one exchange, the connection beyond the limit is not kept.
    wait_for(|| (fake.open_connections() <= 1).then_some(()));
}
