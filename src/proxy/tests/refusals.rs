//! What kproxy answers itself: kubectl's filter, paths that are not
//! canonical, heads it cannot frame, clients too slow. Each refusal has its
//! exact status and rule, sends nothing up, and leaves the connection able to
//! serve the next request when its framing allows.

use super::*;

const EXEC: &str = "/api/v1/namespaces/default/pods/p/exec?command=sh";

/// The refusal's status and rule, then a request on the same connection.
fn refused_then_served(conn: &mut Conn, request: &str, code: u16, rule: &str) -> Response {
    let response = conn.request(request);
    assert_eq!(response.code, code, "{request:?}: {}", response.text());
    assert_eq!(response.reason().as_deref(), Some(rule), "{request:?}");
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json"),
        "a Status object"
    );
    assert_eq!(conn.get("/api").code, 200, "after {request:?}");
    response
}

#[test]
fn exec_and_attach_are_refused_by_default() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for path in [
        EXEC,
        "/api/v1/namespaces/default/pods/p/attach",
        "/api/v1/namespaces/default/pods/p/%65xec",
        "/api/v1/namespaces/default/pods/p%2Fexec",
    ] {
        let request = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        refused_then_served(&mut conn, &request, 403, "filter_path");
    }
    assert!(api.seen().iter().all(|s| s.target == "/api"));
}

#[test]
fn a_host_not_accepted_is_403() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for host in [
        "evil.example",
        "LOCALHOST",
        "localhost.evil.example",
        "10.0.0.1",
    ] {
        let request = format!("GET /api HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let response = refused_then_served(&mut conn, &request, 403, "filter_host");
        assert!(response.text().contains("--accept-hosts"), "{host}");
    }
    for host in [
        "localhost:8001",
        "127.0.0.1:8001",
        "[::1]:8001",
        "localhost",
    ] {
        let request = format!("GET /api HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(conn.request(&request).code, 200, "{host}");
    }
}

#[test]
fn a_rejected_method_is_403() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup {
        filter: Some(filter(DEFAULT_REJECT_PATHS, "^POST$,^DELETE$")),
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    refused_then_served(
        &mut conn,
        "DELETE /api/v1/namespaces/default/pods/p HTTP/1.1\r\nHost: localhost\r\n\r\n",
        403,
        "filter_method",
    );
    assert_eq!(api.seen().len(), 1);
}

#[test]
fn a_page_from_another_site_is_403() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    refused_then_served(
        &mut conn,
        "GET /api/v1/secrets HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n",
        403,
        "filter_origin",
    );
    refused_then_served(
        &mut conn,
        "GET /api/v1/secrets HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Site: cross-site\r\n\r\n",
        403,
        "filter_origin",
    );
    let own = "GET /api HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:8001\r\n\r\n";
    assert_eq!(conn.request(own).code, 200);
}

#[test]
fn without_the_filter_exec_goes_up() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup {
        filter: None,
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    let request = format!("POST {EXEC} HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(conn.request(&request).code, 200);
    assert_eq!(api.last().target, EXEC);
}

#[test]
fn a_path_with_dot_segments_is_moved_to_its_canonical_form() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for (path, location) in [
        (
            "/api/v1/namespaces/default/pods/p/../../x/./y//z?watch=1",
            "/api/v1/namespaces/default/x/y/z?watch=1",
        ),
        // An escaped dot-segment is one too: it is never judged as written.
        (
            "/api/v1/namespaces/default/pods/p/%2e%2e/q/exec",
            "/api/v1/namespaces/default/pods/q/exec",
        ),
    ] {
        let response = conn.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        assert_eq!(response.code, 301, "{path}");
        assert_eq!(response.header("Location"), Some(location), "{path}");
        assert_eq!(conn.get("/api").code, 200, "after {path}");
    }
    assert!(api.seen().iter().all(|s| s.target == "/api"));
}

#[test]
fn a_bad_escape_or_a_control_character_in_the_path_is_400() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for path in ["/api/%zz", "/api/%", "/api/%00"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        refused_then_served(&mut conn, &request, 400, "bad_request");
    }
}

#[test]
fn a_request_outside_the_api_prefix_is_404_and_kproxys_paths_are_its_own() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup {
        api_prefix: "/k8s/".into(),
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/api").code, 404);
    let alive = conn.get("/.kproxy/alive");
    assert_eq!((alive.code, alive.text().as_str()), (200, "ok\n"));
    let options = conn.request("OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(options.code, 200);
    assert_eq!(conn.get("/k8s/api").code, 200);
    assert_eq!(
        api.seen().len(),
        1,
        "only the request under the prefix went up"
    );
}

#[test]
fn a_request_line_too_long_is_414_and_closes() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let path = format!("/api/{}", "a".repeat(9 * 1024));
    let response = conn.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    assert_eq!(response.code, 414);
    assert_eq!(response.reason().as_deref(), Some("uri_too_long"));
    assert!(conn.is_closed());
    assert!(api.seen().is_empty());
}

#[test]
fn a_head_too_large_is_431_and_closes() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut too_many = kproxy.connect();
    let fields = "X-A: b\r\n".repeat(101);
    let response = too_many.request(&format!(
        "GET /api HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n"
    ));
    assert_eq!(response.code, 431);
    assert!(too_many.is_closed());
    let mut too_big = kproxy.connect();
    let big = format!("X-Big: {}\r\n", "v".repeat(8000)).repeat(9);
    let response = too_big.request(&format!(
        "GET /api HTTP/1.1\r\nHost: localhost\r\n{big}\r\n"
    ));
    assert_eq!(response.code, 431);
    assert_eq!(response.reason().as_deref(), Some("header_too_large"));
    assert!(too_big.is_closed());
    assert!(api.seen().is_empty());
}

#[test]
fn a_large_head_within_the_limit_passes() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let big = format!("X-Big: {}\r\n", "v".repeat(8000)).repeat(6);
    let response = kproxy.connect().request(&format!(
        "GET /api HTTP/1.1\r\nHost: localhost\r\n{big}\r\n"
    ));
    assert_eq!(response.code, 200);
    assert_eq!(api.last().count("X-Big"), 6);
}

#[test]
fn heads_that_are_not_http_are_400_and_close() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    for head in [
        "GET /api HTTP/2.0\r\nHost: localhost\r\n\r\n", // not 1.x
        "GET /api HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
        "GET /api HTTP/1.1\r\nHost: localhost\r\n Folded: x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n", // TLS to a plain port
    ] {
        let mut conn = kproxy.connect();
        let response = conn.request(head);
        assert_eq!(response.code, 400, "{head:?}: {}", response.text());
        assert_eq!(
            response.reason().as_deref(),
            Some("bad_request"),
            "{head:?}"
        );
        assert!(conn.is_closed(), "{head:?}");
    }
    assert!(api.seen().is_empty());
}

#[test]
fn a_missing_or_doubled_host_is_400_and_the_next_request_is_served() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for head in [
        "GET /api HTTP/1.1\r\n\r\n",
        "GET /api HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
    ] {
        refused_then_served(&mut conn, head, 400, "bad_request");
    }
    assert_eq!(
        api.seen().len(),
        2,
        "only the requests that followed went up"
    );
}

#[test]
fn a_refused_request_with_a_body_closes_the_connection() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(&format!(
        "POST {EXEC} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
    ));
    assert_eq!(response.code, 403);
    // Its body was not read: where the next request starts is unknown.
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(conn.is_closed());
    assert!(api.seen().is_empty());
}

#[test]
fn a_head_that_trickles_in_is_408_after_the_header_timeout() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup::timing_out(Duration::from_millis(300), Duration::from_secs(30)).start(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api HTTP/1.1\r\nHost: local");
    let response = conn.response();
    assert_eq!(response.code, 408);
    assert_eq!(response.reason().as_deref(), Some("request_timeout"));
    assert!(response.text().contains("--header-timeout"));
    assert!(conn.is_closed());
}

#[test]
fn an_idle_connection_is_closed_quietly_after_the_idle_timeout() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup::timing_out(Duration::from_secs(5), Duration::from_millis(300)).start(&api);
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/api").code, 200);
    // Nothing sent: no 408, just the close, as Go's server does.
    assert!(conn.is_closed());
}

#[test]
fn a_client_that_closes_mid_head_gets_nothing_and_nothing_goes_up() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api HTTP/1.1\r\nHo");
    conn.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(conn.is_closed());
    assert!(api.seen().is_empty());
}
