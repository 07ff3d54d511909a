//! Issue 13: `--metrics-address` (checked by Prometheus's own promtool), the
//! reasons kproxy gives and counts for its refusals, and `--log-format json`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use support::fake_apiserver::kubelet_write;
use support::*;

const POD: &str = "/api/v1/namespaces/default/pods/secret-named-pod";
const EXEC: &str = "/api/v1/namespaces/default/pods/p/exec";

/// kproxy in-cluster with metrics on a free port; returns it and the metrics address.
fn with_metrics(fake: &FakeApiServer, args: &[&str]) -> (Kproxy, String) {
    let mut all = vec!["--metrics-address", "127.0.0.1:0", "-v", "1"];
    all.extend_from_slice(args);
    let proxy = Kproxy::in_cluster(fake, &all);
    let addr = metrics_address(&proxy);
    (proxy, addr)
}

/// `promtool check metrics` must accept the scrape, lint warnings included.
fn promtool_accepts(text: &str) {
    if !have_tool("promtool", "prometheus") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn counters_follow_a_known_sequence_and_promtool_accepts_them() {
    let fake = FakeApiServer::start();
    let (proxy, metrics) = with_metrics(&fake, &[]);
    let before = samples(&scrape(&metrics));
    assert_eq!(
        value(
            &before,
            r#"kproxy_requests_total{method="GET",class="2xx"}"#
        ),
        0.0
    );

    for _ in 0..3 {
        assert_eq!(curl_status(&proxy.url(POD), &[]), 200);
    }
    assert_eq!(curl_status(&proxy.url(EXEC), &[]), 403);
    assert_eq!(curl_status(&proxy.url("/api//v1"), &["--path-as-is"]), 301);
    assert_eq!(
        curl_status(&proxy.url("/api"), &["-H", "Host: evil.example"]),
        403
    );
    assert_eq!(
        curl_status(&proxy.url("/echo"), &["--data-binary", "hello"]),
        200
    );
    assert_eq!(
        curl_status(&proxy.url("/apis/nothing.example/v1"), &[]),
        404
    );
    assert!(raw(&proxy.addr, b"NOT HTTP AT ALL\r\n\r\n").starts_with("HTTP/1.1 400 "));

    // A watch: open while it streams, then gone.
    let mut watch = TcpStream::connect(&proxy.addr).unwrap();
    watch
        .write_all(b"GET /api/v1/namespaces/default/pods?watch=1&events=1000&interval_ms=50 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 64];
    watch.set_read_timeout(Some(PATIENCE)).unwrap();
    watch.read_exact(&mut first).unwrap();
    let during = samples(&scrape(&metrics));
    assert_eq!(value(&during, "kproxy_streams_open"), 1.0);
    // The watch took the pooled connection the Pods used; it goes back after.
    assert_eq!(value(&during, "kproxy_upstream_connections_open"), 1.0);
    assert_eq!(value(&during, "kproxy_upstream_connections_idle"), 0.0);
    assert!(value(&during, "kproxy_client_connections_open") >= 1.0);
    let to_client = r#"kproxy_bytes_total{direction="to_client"}"#;
    let before_watch_ended = value(&during, to_client);
    drop(watch);

    let after = wait_for(|| {
        let s = samples(&scrape(&metrics));
        (value(&s, "kproxy_streams_open") == 0.0
            && value(&s, "kproxy_client_connections_open") == 0.0)
            .then_some(s)
    });
    let text = scrape(&metrics);
    for (series, want) in [
        (r#"kproxy_requests_total{method="GET",class="2xx"}"#, 4.0),
        (r#"kproxy_requests_total{method="GET",class="3xx"}"#, 1.0),
        (r#"kproxy_requests_total{method="GET",class="4xx"}"#, 3.0),
        (r#"kproxy_requests_total{method="POST",class="2xx"}"#, 1.0),
        (r#"kproxy_requests_total{method="other",class="4xx"}"#, 1.0),
        (r#"kproxy_requests_total{method="GET",class="5xx"}"#, 0.0),
        (r#"kproxy_refusals_total{reason="filter_path"}"#, 1.0),
        (r#"kproxy_refusals_total{reason="filter_host"}"#, 1.0),
        (r#"kproxy_refusals_total{reason="non_canonical_path"}"#, 1.0),
        (r#"kproxy_refusals_total{reason="bad_request"}"#, 1.0),
        (r#"kproxy_refusals_total{reason="upstream_connect"}"#, 0.0),
        // Three Pods, the echo, the 404 and the watch reached the API server.
        ("kproxy_upstream_request_duration_seconds_count", 6.0),
        (
            r#"kproxy_upstream_request_duration_seconds_bucket{le="+Inf"}"#,
            6.0,
        ),
        ("kproxy_client_connections_total", 10.0),
        ("kproxy_tunnels_total", 0.0),
        (
            r#"kproxy_tls_handshake_failures_total{kind="certificate"}"#,
            0.0,
        ),
        ("kproxy_token_retries_total", 0.0),
    ] {
        assert_eq!(value(&after, series), want, "{series}\n{text}");
    }
    assert_eq!(value(&after, "kproxy_tls_handshakes_total"), 1.0);
    assert!(value(&after, r#"kproxy_bytes_total{direction="to_server"}"#) >= 5.0);
    assert!(value(&after, to_client) > 500.0);
    // The watch's bytes count, though its client left in the middle of it.
    assert!(
        value(&after, to_client) >= before_watch_ended + 64.0,
        "{text}"
    );
    // The watch's connection closed with its client: nothing left open.
    assert_eq!(value(&after, "kproxy_upstream_connections_open"), 0.0);
    assert_eq!(value(&after, "kproxy_upstream_connections_idle"), 0.0);
    assert!(value(&after, "kproxy_process_resident_memory_bytes") > 100_000.0);
    assert!(value(&after, "kproxy_process_open_fds") >= 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&after, "kproxy_process_start_time_seconds");
    assert!(now - started < 600.0 && now >= started, "{started}");
    let info = text
        .lines()
        .find(|l| l.starts_with("kproxy_build_info{"))
        .unwrap();
    assert!(
        info.contains(r#"version="0.1.0""#) && info.contains("target=\""),
        "{info}"
    );
    // Counters only: no token, no object name, no client's Host.
    for secret in [TOKEN, "secret-named-pod", "evil.example", "hello"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    promtool_accepts(&text);
    // The proxy port goes on as before.
    assert_lab_calls_work(&proxy);
}

/// Each refusal kproxy makes: its status, its Status body naming the rule (and
/// how to change it), and its counter.
#[test]
fn every_refusal_says_why_and_is_counted() {
    let fake = FakeApiServer::start();
    let (proxy, metrics) =
        with_metrics(&fake, &["--header-timeout", "1s", "--max-connections", "2"]);
    let status_of = |answer: &str| -> (u16, Vec<u8>) {
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), body.as_bytes().to_vec())
    };
    let long_line = format!(
        "GET /api?{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(9000)
    );
    let big_head = format!(
        "GET /api HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(1500)
    );
    for (request, code, reason, says) in [
        (long_line.as_str(), 414, "uri_too_long", "8 KiB"),
        (big_head.as_str(), 431, "header_too_large", "64 KiB"),
        ("GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400, "bad_request", "more than one Host"),
        ("GET /api HTTP/1.1\r\nHost: localhost\r\n", 408, "request_timeout", "--header-timeout"),
        (
            "POST /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "bad_request",
            "bad request body",
        ),
    ] {
        let (got, body) = status_of(&raw(&proxy.addr, request.as_bytes()));
        assert_eq!(got, code, "{reason}");
        let message = assert_refusal(&body, code, reason);
        assert!(message.contains(says), "{message}");
        assert_lab_calls_work(&proxy);
    }
    let (_, body) = status_of(&raw(
        &proxy.addr,
        b"DELETE /api/v1/namespaces/default/pods/p/exec HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ));
    let message = assert_refusal(&body, 403, "filter_path");
    assert!(
        message.contains(r#"to allow it, change --reject-paths"#),
        "{message}"
    );

    // The connection cap: two idle clients hold both places.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&proxy.addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    let (got, body) = status_of(&raw(
        &proxy.addr,
        b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ));
    assert_eq!(got, 503);
    let message = assert_refusal(&body, 503, "connection_cap");
    assert!(message.contains("raise --max-connections"), "{message}");
    drop(held);

    let counted = wait_for(|| {
        let s = samples(&scrape(&metrics));
        (value(&s, r#"kproxy_refusals_total{reason="connection_cap"}"#) == 1.0).then_some(s)
    });
    for (reason, want) in [
        ("uri_too_long", 1.0),
        ("header_too_large", 1.0),
        ("bad_request", 2.0),
        ("request_timeout", 1.0),
        ("filter_path", 1.0),
    ] {
        let series = format!(r#"kproxy_refusals_total{{reason="{reason}"}}"#);
        assert_eq!(value(&counted, &series), want, "{series}");
    }
}

#[test]
fn api_server_failures_say_why_and_are_counted() {
    let fake = FakeApiServer::start();
    // A CA that did not sign the fake's certificate.
    let stranger = FakeApiServer::start();
    let ca = stranger.ca_path();
    let (proxy, metrics) = with_metrics(&fake, &["--certificate-authority", ca.to_str().unwrap()]);
    let (code, body, _) = curl(&["-w", "\n%{http_code}", &proxy.url("/api")]);
    assert_eq!(code, 0);
    let (body, status) = body.rsplit_once('\n').unwrap();
    assert_eq!(status, "502");
    assert_refusal(body.as_bytes(), 502, "upstream_tls");

    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let down = Kproxy::in_cluster_at(&fake, closed, &[]);
    let (_, body, _) = curl(&[&down.url("/api")]);
    let message = assert_refusal(body.as_bytes(), 502, "upstream_connect");
    assert!(
        message.contains("cannot connect to the API server"),
        "{message}"
    );

    let s = samples(&scrape(&metrics));
    assert_eq!(
        value(
            &s,
            r#"kproxy_tls_handshake_failures_total{kind="certificate"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&s, r#"kproxy_refusals_total{reason="upstream_tls"}"#),
        1.0
    );
    assert_eq!(
        value(&s, r#"kproxy_requests_total{method="GET",class="5xx"}"#),
        1.0
    );
}

#[test]
fn a_rotated_token_is_counted_as_a_reload_and_a_retry() {
    let fake = FakeApiServer::start();
    let (proxy, metrics) = with_metrics(&fake, &["--log-format", "json", "-v", "2"]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    // The kubelet swaps the token and the API server drops the old one at once:
    // the next request is refused (401), re-read, and sent again.
    fake.accept_token("rotated");
    kubelet_write(&fake.sa_dir, "token", "rotated\n");
    fake.retire_token(TOKEN);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    let s = samples(&scrape(&metrics));
    assert_eq!(value(&s, "kproxy_token_retries_total"), 1.0);
    assert!(value(&s, "kproxy_token_reloads_total") >= 1.0);
    let reload = wait_for(|| {
        proxy
            .stderr()
            .lines()
            .find(|l| l.contains(r#""event":"token_reload""#))
            .map(String::from)
    });
    let event: serde_json::Value = serde_json::from_str(&reload).unwrap();
    assert_eq!(event["level"], "info");
    assert!(!reload.contains("rotated\""), "{reload}");
}

#[test]
fn the_metrics_port_serves_get_metrics_only_and_outlasts_abuse() {
    let fake = FakeApiServer::start();
    let (proxy, metrics) = with_metrics(&fake, &["--header-timeout", "1s"]);
    let status = |request: &[u8]| -> String {
        let answer = raw(&metrics, request);
        answer.lines().next().unwrap_or_default().to_string()
    };
    for (request, want) in [
        (
            &b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"[..],
            "HTTP/1.1 405 ",
        ),
        (
            b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 405 ",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "),
        (
            b"GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404 ",
        ),
        (
            b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404 ",
        ),
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 408 "),
    ] {
        assert!(
            status(request).starts_with(want),
            "{}",
            String::from_utf8_lossy(request)
        );
        scrape(&metrics);
    }
    let allow = raw(&metrics, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(allow.contains("Allow: GET\r\n"), "{allow}");
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(status(big.as_bytes()).starts_with("HTTP/1.1 431 "));

    // Its own cap: idle connections fill it, and a scrape takes the place of
    // the oldest, which is closed (tests/cotenants.rs: with 64 of them too).
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&metrics).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    assert!(status(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200 "));
    held[0].set_read_timeout(Some(PATIENCE)).unwrap();
    let mut left = Vec::new();
    let _ = held[0].read_to_end(&mut left);
    assert!(left.is_empty(), "{}", String::from_utf8_lossy(&left));
    assert_lab_calls_work(&proxy);
}

/// `--log-format json`: one object per line, each request's fields at -v 4,
/// the query string only from -v 6, events as their own objects, no secrets.
#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let fake = FakeApiServer::start();
    for (verbosity, query_shown) in [("4", false), ("6", true)] {
        let mut proxy = Kproxy::in_cluster(&fake, &["--log-format", "json", "-v", verbosity]);
        let pod = format!("{POD}?labelSelector=app%3Dweb");
        assert_eq!(curl_status(&proxy.url(&pod), &[]), 200);
        assert_eq!(curl_status(&proxy.url(&pod), &[]), 200);
        assert_eq!(curl_status(&proxy.url(EXEC), &[]), 403);
        proxy.signal("TERM");
        assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
        let logs = proxy.stderr();
        assert!(!logs.contains(TOKEN), "{logs}");
        let lines: Vec<serde_json::Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        for line in &lines {
            let time = line["time"].as_str().unwrap();
            assert!(
                time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
                "{time}"
            );
            assert!(
                line["msg"].is_string() && line["level"].is_string(),
                "{line}"
            );
        }
        let requests: Vec<_> = lines.iter().filter(|l| l["method"].is_string()).collect();
        assert_eq!(requests.len(), 3, "{logs}");
        let (first, second, refused) = (requests[0], requests[1], requests[2]);
        let path = match query_shown {
            true => pod.as_str(),
            false => POD,
        };
        assert_eq!(first["path"], path);
        assert_eq!(first["status"], 200);
        assert_eq!(first["client"], "127.0.0.1");
        assert_eq!(first["bytes_in"], 0);
        assert!(first["bytes_out"].as_u64().unwrap() > 100);
        assert!(first["duration_ms"].as_f64().unwrap() >= first["upstream_ms"].as_f64().unwrap());
        assert_eq!(first["upstream_conn"], "new");
        assert_eq!(second["upstream_conn"], "reused");
        assert_eq!(refused["status"], 403);
        assert_eq!(refused["reason"], "filter_path");
        assert!(refused.get("upstream_ms").is_none());
        let events: Vec<_> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
        assert!(events.contains(&"drain"), "{logs}");
    }
}

/// kubectl's -v 0: a healthy kproxy says nothing but its start line, metrics on or not.
#[test]
fn a_healthy_kproxy_prints_only_its_start_line_at_v0() {
    let fake = FakeApiServer::start();
    for format in ["text", "json"] {
        let mut proxy = Kproxy::in_cluster(
            &fake,
            &["--metrics-address", "127.0.0.1:0", "--log-format", format],
        );
        assert_lab_calls_work(&proxy);
        assert_eq!(curl_status(&proxy.url(EXEC), &[]), 403);
        proxy.signal("TERM");
        assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
        assert_eq!(proxy.stderr(), "", "{format}");
    }
}
