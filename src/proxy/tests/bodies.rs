//! Request bodies: kept whole when small (checked before anything goes up,
//! sent with a length), streamed when large, answered `100 Continue` when
//! asked, refused when their framing breaks or they stall.

use super::*;
use crate::services::upstream::fake::Reply;

/// A server that answers with the body's length and a digest of it.
fn measuring() -> FakeApi {
    FakeApi::new(|seen| Reply::json(&format!("{{\"bytes\":{}}}", seen.body.len())))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn a_small_body_goes_up_with_its_length() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let body = r#"{"kind":"ConfigMap"}"#;
    let response = kproxy.connect().request(&format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(response.text(), format!("{{\"bytes\":{}}}", body.len()));
    let seen = api.last();
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.header("Content-Length"), Some("20"));
    assert!(!seen.chunked);
    assert_eq!(seen.header("Content-Type"), Some("application/json"));
}

#[test]
fn a_small_chunked_body_is_read_whole_and_sent_with_a_length() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(
        "PATCH /api/v1/namespaces/default/pods/p HTTP/1.1\r\nHost: localhost\r\n\
         Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(response.code, 200);
    let seen = api.last();
    assert_eq!(seen.body, br#"{"a":1}"#);
    assert_eq!(seen.header("Content-Length"), Some("7"));
    assert_eq!(seen.header("Transfer-Encoding"), None);
    assert_eq!(conn.get("/api").code, 200, "the next request");
}

#[test]
fn a_large_body_streams_through_whole() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let body = pattern(1 << 20);
    let mut conn = kproxy.connect();
    conn.send(
        format!(
            "PUT /api/v1/namespaces/default/configmaps/big HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    conn.send(&body);
    let response = conn.response();
    assert_eq!(response.text(), format!("{{\"bytes\":{}}}", body.len()));
    assert!(api.last().body == body, "the body changed on its way");
    assert_eq!(api.last().header("Content-Length"), Some("1048576"));
}

#[test]
fn a_large_chunked_body_streams_up_chunked() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let body = pattern(200 * 1024);
    let mut conn = kproxy.connect();
    conn.send(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(10_000) {
        conn.send(format!("{:x}\r\n", piece.len()).as_bytes());
        conn.send(piece);
        conn.send(b"\r\n");
    }
    conn.send(b"0\r\n\r\n");
    assert_eq!(conn.response().code, 200);
    let seen = api.last();
    assert!(seen.chunked);
    assert!(seen.body == body, "the body changed on its way");
    assert_eq!(conn.get("/api").code, 200, "the next request");
}

#[test]
fn expect_100_continue_is_answered_by_kproxy_before_the_body() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
          Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(conn.head().code, 100);
    conn.send(b"{}");
    assert_eq!(conn.response().text(), r#"{"bytes":2}"#);
    assert_eq!(api.last().header("Expect"), None);
}

#[test]
fn a_broken_chunked_body_is_400_and_nothing_goes_up() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    );
    assert_eq!(response.code, 400);
    assert_eq!(response.reason().as_deref(), Some("bad_request"));
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(conn.is_closed());
    assert!(
        api.seen().is_empty(),
        "a broken body reached the API server"
    );
    assert_eq!(kproxy.connect().get("/api").code, 200, "the next client");
}

#[test]
fn a_body_that_stops_is_408_after_the_header_timeout() {
    let api = measuring();
    let kproxy = Setup::timing_out(Duration::from_millis(300), Duration::from_secs(30)).start(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Content-Length: 10\r\n\r\n{\"a\"",
    );
    assert_eq!(response.code, 408);
    assert_eq!(response.reason().as_deref(), Some("request_timeout"));
    assert!(conn.is_closed());
    assert!(api.seen().is_empty());
}

#[test]
fn a_client_that_leaves_mid_body_sends_nothing_up() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
          Content-Length: 100\r\n\r\nonly some",
    );
    conn.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(conn.is_closed());
    assert!(api.seen().is_empty());
}

#[test]
fn ambiguous_framing_is_refused_before_routing() {
    let api = measuring();
    let kproxy = Kproxy::new(&api);
    for framing in [
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Content-Length: -1\r\n",
    ] {
        let mut conn = kproxy.connect();
        let response = conn.request(&format!(
            "POST /api HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n{{}}"
        ));
        assert_eq!(response.code, 400, "{framing:?}");
        assert!(conn.is_closed(), "{framing:?}");
    }
    assert!(api.seen().is_empty());
}

#[test]
fn a_kept_body_is_refused_503_when_the_budget_is_spent() {
    let api = measuring();
    let kproxy = Setup {
        budget: 16 * 1024,
        ..Setup::default()
    }
    .start(&api);
    let body = pattern(20 * 1024);
    let mut conn = kproxy.connect();
    // In one write: kproxy answers before it reads the body.
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.send(&[head.as_bytes(), &body].concat());
    let response = conn.response();
    assert_eq!(response.code, 503);
    assert_eq!(response.reason().as_deref(), Some("memory_budget"));
    assert_eq!(response.header("Retry-After"), Some("1"));
    assert!(api.seen().is_empty());
    // A body that fits the budget passes.
    let small = pattern(12 * 1024);
    let mut conn = kproxy.connect();
    conn.send(
        format!(
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: {}\r\n\r\n",
            small.len()
        )
        .as_bytes(),
    );
    conn.send(&small);
    assert_eq!(conn.response().code, 200);
}
