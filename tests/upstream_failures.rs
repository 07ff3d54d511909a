//! When the API server is down, slow, or answers badly: a Kubernetes Status
//! body with 502 or 504 before anything was sent, a visibly cut body after,
//! and in every case a proxy that serves the next request.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::*;

fn assert_status_json(body: &str, code: u16, needle: &str) {
    assert!(
        body.starts_with(r#"{"kind":"Status","apiVersion":"v1""#),
        "{body}"
    );
    assert!(body.contains(&format!(r#""code":{code}"#)), "{body}");
    assert!(body.contains(r#""status":"Failure""#), "{body}");
    assert!(body.contains(needle), "{body} lacks {needle:?}");
}

#[test]
fn api_server_down_is_a_502_status_and_the_proxy_carries_on() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster_at(&fake, port, &[]);
    for _ in 0..2 {
        let (_, body, _) = curl(&["-w", "\n%{http_code}", &proxy.url("/api")]);
        let (body, code) = body.rsplit_once('\n').unwrap();
        assert_eq!(code, "502");
        assert_status_json(body, 502, "cannot connect to the API server");
    }
    assert!(
        proxy.stderr().contains("error while proxying request"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn replies_that_are_not_http_are_502_and_kubectl_shows_why() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for (path, needle) in [
        ("/misbehave/garbage", "not valid HTTP"),
        ("/misbehave/drop", "closed the connection before answering"),
    ] {
        let (_, body, _) = curl(&[&proxy.url(path)]);
        assert_status_json(&body, 502, needle);
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200, "after {path}");
    }
    let (code, _, err) = kubectl(&proxy, &["get", "--raw", "/misbehave/garbage"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("BadGateway") && err.contains("not valid HTTP"),
        "{err}"
    );
}

#[test]
fn a_body_cut_by_the_api_server_is_cut_for_the_client_too() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for path in [
        "/misbehave/cut",
        "/misbehave/cut-chunked",
        "/api/v1/namespaces/default/pods?watch=1&cut=1&interval_ms=10",
    ] {
        let (code, _, err) = curl(&[&proxy.url(path)]);
        assert_eq!(
            code, 18,
            "{path}: curl must see a partial transfer, got {code}: {err}"
        );
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200, "after {path}");
    }
}

#[test]
fn a_tls_handshake_that_never_finishes_is_a_504_after_10s() {
    // Accepts TCP and then says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster_at(
        &fake,
        port,
        &["--metrics-address", "127.0.0.1:0", "-v", "1"],
    );
    let metrics = metrics_address(&proxy);
    let started = std::time::Instant::now();
    let (_, body, _) = curl(&[&proxy.url("/api")]);
    assert_status_json(&body, 504, "TLS handshake");
    assert_refusal(body.as_bytes(), 504, "upstream_timeout");
    let counted = samples(&scrape(&metrics));
    assert_eq!(
        value(
            &counted,
            r#"kproxy_refusals_total{reason="upstream_timeout"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &counted,
            r#"kproxy_tls_handshake_failures_total{kind="timeout"}"#
        ),
        1.0
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "gave up too early"
    );
}
