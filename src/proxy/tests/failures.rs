//! When the API server's side fails: what the client is told, what is sent
//! again (only what is safe to), and that the next request is served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::services::upstream::fake::Reply;

/// Answers the first request on each connection; closes the connection at the
/// second, as a server does with a connection it dropped while it was idle.
fn closes_reused_connections() -> FakeApi {
    let per_conn = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    FakeApi::new(move |seen| {
        let mut counts = per_conn.lock().unwrap();
        let count = counts.entry(seen.conn).or_insert(0);
        *count += 1;
        match *count {
            1 => Reply::json(&format!("{{\"conn\":{}}}", seen.conn)),
            _ => Reply::Close,
        }
    })
}

#[test]
fn a_get_on_a_connection_that_died_idle_is_sent_again_on_a_fresh_one() {
    let api = closes_reused_connections();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/api").text(), r#"{"conn":1}"#);
    let again = conn.get("/api");
    assert_eq!((again.code, again.text().as_str()), (200, r#"{"conn":2}"#));
    assert_eq!(api.dials(), 2);
}

#[test]
fn a_post_on_a_connection_that_died_is_not_sent_twice() {
    let api = closes_reused_connections();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.get("/api");
    let response = conn.request(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Content-Length: 2\r\n\r\n{}",
    );
    assert_eq!(response.code, 502);
    assert_eq!(response.reason().as_deref(), Some("upstream_failed"));
    assert!(response
        .text()
        .contains("the API server closed the connection before answering"));
    let posts = api.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(
        posts, 1,
        "a POST the server may have acted on was sent again"
    );
    // The client's connection is still good: its body was read whole.
    assert_eq!(conn.get("/api").code, 200);
}

#[test]
fn a_fresh_connection_closed_before_answering_is_502() {
    let api = FakeApi::new(|_| Reply::Close);
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/api");
    assert_eq!(response.code, 502);
    assert_eq!(response.reason().as_deref(), Some("upstream_failed"));
    assert_eq!(
        api.seen().len(),
        1,
        "a fresh connection's failure was retried"
    );
    assert_eq!(conn.get("/api").code, 502, "the next request");
}

#[test]
fn an_answer_that_is_not_http_is_502() {
    let api = FakeApi::new(|seen| match seen.target.as_str() {
        "/ssh" => Reply::RawThenClose(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
        "/bad-length" => {
            Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec())
        }
        "/two-lengths" => Reply::RawThenClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
        ),
        _ => Reply::json("{}"),
    });
    let kproxy = Kproxy::new(&api);
    for path in ["/ssh", "/bad-length", "/two-lengths"] {
        let response = kproxy.connect().get(path);
        assert_eq!(response.code, 502, "{path}");
        assert_eq!(
            response.reason().as_deref(),
            Some("upstream_bad_response"),
            "{path}"
        );
    }
    // The client's request was read whole: its connection serves the next
    // one, after an answer that is no HTTP or whose framing is bad alike.
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/ssh").code, 502);
    assert_eq!(conn.get("/ok").code, 200);
    for path in ["/bad-length", "/two-lengths"] {
        assert_eq!(conn.get(path).code, 502, "{path}");
        assert_eq!(conn.get("/ok").code, 200, "after {path}");
    }
}

#[test]
fn a_101_to_a_request_that_asked_for_no_upgrade_is_502() {
    let api = FakeApi::new(|_| {
        Reply::RawThenClose(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".to_vec())
    });
    let kproxy = Kproxy::new(&api);
    let response = kproxy.connect().get("/api");
    assert_eq!(response.code, 502);
    assert!(response
        .text()
        .contains("101 Switching Protocols to a request"));
}

#[test]
fn an_api_server_that_cannot_be_reached_is_502_at_once() {
    let api = FakeApi::echo_paths();
    api.refuse(true);
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/api");
    assert_eq!(response.code, 502);
    assert_eq!(response.reason().as_deref(), Some("upstream_connect"));
    assert!(response.text().contains("cannot connect to the API server"));
    api.refuse(false);
    assert_eq!(conn.get("/api").code, 200, "once the server is back");
}

#[test]
fn an_answer_cut_short_ends_the_clients_connection_mid_body() {
    let api = FakeApi::new(|_| {
        Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b".to_vec())
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = conn.head();
    assert_eq!(head.code, 200);
    assert_eq!(head.header("Content-Length"), Some("100"));
    // The head is gone: the client can only be told by the connection's end,
    // short of the length it was promised.
    assert_eq!(conn.rest(), b"only ten b");
    assert!(conn.is_closed());
}

#[test]
fn a_chunked_answer_cut_short_is_not_ended_cleanly() {
    let api = FakeApi::new(|_| {
        Reply::RawThenClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
        )
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.head();
    assert_eq!(conn.chunk().as_deref(), Some(&b"hello"[..]));
    // No last chunk: the client sees the cut, not a complete empty end.
    assert!(conn.is_closed());
}

#[test]
fn a_401_after_the_token_file_changed_is_sent_again_with_the_new_token() {
    let dir = std::env::temp_dir().join(format!("kproxy-unit-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "old-token\n").unwrap();
    let api = FakeApi::new(|seen| match seen.header("Authorization") {
        Some("Bearer new-token") => Reply::json("{}"),
        _ => Reply::status(401, r#"{"kind":"Status","code":401}"#),
    });
    let kproxy = Setup {
        token: TokenSource::file(&file).unwrap(),
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/api").code, 401, "nothing newer: the 401 passes");
    assert_eq!(api.seen().len(), 1);
    // The kubelet rotates the token: the refused request goes once more.
    std::fs::write(&file, "new-token\n").unwrap();
    let response = conn.request(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
         Content-Length: 2\r\n\r\n{}",
    );
    assert_eq!(response.code, 200);
    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].header("Authorization"), Some("Bearer old-token"));
    assert_eq!(seen[2].header("Authorization"), Some("Bearer new-token"));
    assert_eq!(seen[2].body, b"{}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_401_with_a_fixed_token_is_the_clients_answer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let api = FakeApi::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Reply::status(401, "{}")
    });
    let kproxy = Kproxy::new(&api);
    assert_eq!(kproxy.connect().get("/api").code, 401);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
