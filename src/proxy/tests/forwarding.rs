//! What goes up, what comes back: the head kproxy sends the API server, the
//! answer it relays, the connection kept between requests.

use std::net::IpAddr;

use super::*;
use crate::services::upstream::fake::Reply;

#[test]
fn the_token_is_added_and_the_host_is_the_api_servers() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let response = kproxy.connect().get("/api/v1/namespaces/default/pods");
    assert_eq!(response.code, 200);
    assert_eq!(
        response.text(),
        r#"{"path":"/api/v1/namespaces/default/pods"}"#
    );
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let seen = api.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.header("Authorization"), Some("Bearer t0k3n"));
    assert_eq!(seen.count("Authorization"), 1);
    assert_eq!(seen.header("Host"), Some(AUTHORITY));
    assert_eq!(seen.count("Host"), 1);
}

#[test]
fn a_clients_own_authorization_goes_up_alone() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let response = kproxy
        .connect()
        .request("GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer mine\r\n\r\n");
    assert_eq!(response.code, 200);
    let seen = api.last();
    assert_eq!(seen.header("Authorization"), Some("Bearer mine"));
    assert_eq!(seen.count("Authorization"), 1);
}

#[test]
fn an_empty_or_hop_by_hop_authorization_is_replaced_by_the_token() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.request("GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: \r\n\r\n");
    assert_eq!(api.last().header("Authorization"), Some("Bearer t0k3n"));
    conn.request(
        "GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: Authorization\r\n\
         Authorization: Bearer mine\r\n\r\n",
    );
    let seen = api.last();
    assert_eq!(seen.header("Authorization"), Some("Bearer t0k3n"));
    assert_eq!(seen.count("Authorization"), 1);
}

#[test]
fn hop_by_hop_fields_stay_on_the_clients_hop() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    kproxy.connect().request(
        "GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, X-Secret\r\n\
         X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\
         Upgrade: h2c\r\nAccept: application/json\r\nUser-Agent: curl/8\r\n\r\n",
    );
    let seen = api.last();
    for gone in [
        "Connection",
        "X-Secret",
        "Keep-Alive",
        "TE",
        "Proxy-Authorization",
        "Upgrade",
    ] {
        assert_eq!(
            seen.header(gone),
            None,
            "{gone} went up: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("Accept"), Some("application/json"));
    assert_eq!(seen.header("User-Agent"), Some("curl/8"));
}

#[test]
fn the_answers_hop_by_hop_fields_stay_on_the_api_servers_hop() {
    let api = FakeApi::new(|_| Reply::Answer {
        code: 200,
        headers: vec![
            ("Connection", "X-Internal".into()),
            ("X-Internal", "1".into()),
            ("Keep-Alive", "timeout=5".into()),
            ("Audit-Id", "abc".into()),
        ],
        body: b"{}".to_vec(),
    });
    let kproxy = Kproxy::new(&api);
    let response = kproxy.connect().get("/api");
    assert_eq!(response.header("X-Internal"), None);
    assert_eq!(response.header("Keep-Alive"), None);
    assert_eq!(response.header("Connection"), None);
    assert_eq!(response.header("Audit-Id"), Some("abc"));
    assert_eq!(response.header("Content-Length"), Some("2"));
}

#[test]
fn x_forwarded_for_appends_the_clients_address() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let peer: IpAddr = [10, 1, 2, 3].into();
    kproxy.connect_from(Some(peer)).request(
        "GET /api HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.1.1.1\r\n\
         X-Forwarded-For: 2.2.2.2\r\n\r\n",
    );
    let seen = api.last();
    assert_eq!(
        seen.header("X-Forwarded-For"),
        Some("1.1.1.1, 2.2.2.2, 10.1.2.3")
    );
    assert_eq!(seen.count("X-Forwarded-For"), 1);
    // A unix-socket client has no address to add.
    kproxy.connect().get("/api");
    assert_eq!(api.last().header("X-Forwarded-For"), None);
}

#[test]
fn the_api_prefix_goes_and_the_servers_path_comes() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup {
        api_prefix: "/k8s/".into(),
        path_prefix: "/base".into(),
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/k8s/api/v1/pods").code, 200);
    assert_eq!(api.last().target, "/base/api/v1/pods");
    let outside = conn.get("/api/v1/pods");
    assert_eq!(outside.code, 404);
    assert_eq!(api.seen().len(), 1, "a request outside the prefix went up");
    assert_eq!(conn.get("/k8s/version").code, 200);
}

#[test]
fn the_query_and_the_clients_escaping_go_up_as_written() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let target = "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier&limit=5";
    assert_eq!(kproxy.connect().get(target).code, 200);
    assert_eq!(api.last().target, target);
    let escaped = "/api/v1/namespaces/default/configmaps/a%20b";
    kproxy.connect().get(escaped);
    assert_eq!(api.last().target, escaped);
}

#[test]
fn kproxys_impersonation_replaces_the_clients_unless_it_impersonates_itself() {
    let api = FakeApi::echo_paths();
    let kproxy = Setup {
        impersonation: Some(b"Impersonate-User: alice\r\nImpersonate-Group: dev\r\n".to_vec()),
        ..Setup::default()
    }
    .start(&api);
    let mut conn = kproxy.connect();
    conn.request(
        "GET /api HTTP/1.1\r\nHost: localhost\r\nImpersonate-Group: system:masters\r\n\r\n",
    );
    let seen = api.last();
    assert_eq!(seen.header("Impersonate-User"), Some("alice"));
    assert_eq!(seen.header("Impersonate-Group"), Some("dev"));
    assert_eq!(seen.count("Impersonate-Group"), 1);
    // A client that names its own user gets only its own headers, as with kubectl.
    conn.request("GET /api HTTP/1.1\r\nHost: localhost\r\nImpersonate-User: bob\r\n\r\n");
    let seen = api.last();
    assert_eq!(seen.header("Impersonate-User"), Some("bob"));
    assert_eq!(seen.count("Impersonate-User"), 1);
    assert_eq!(seen.header("Impersonate-Group"), None);
}

#[test]
fn one_client_connection_carries_many_requests_over_one_upstream_connection() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    for i in 0..5 {
        let response = conn.get(&format!("/api/{i}"));
        assert_eq!(response.text(), format!("{{\"path\":\"/api/{i}\"}}"));
        assert_eq!(response.header("Connection"), None);
    }
    assert_eq!(api.dials(), 1);
    // A second client takes the idle connection too.
    kproxy.wait_idle(1);
    kproxy.connect().get("/api");
    assert_eq!(api.dials(), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    for path in ["/a", "/b", "/c"] {
        assert_eq!(conn.response().text(), format!("{{\"path\":{path:?}}}"));
    }
    assert!(conn.is_closed());
}

#[test]
fn connection_close_is_honoured_after_the_answer() {
    let api = FakeApi::echo_paths();
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response =
        conn.request("GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(response.code, 200);
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(conn.is_closed());
    // The API server's connection is kept for the next client.
    kproxy.wait_idle(1);
    kproxy.connect().get("/api");
    assert_eq!(api.dials(), 1);
}

#[test]
fn a_chunked_answer_reaches_an_http_1_1_client_chunked() {
    let api = FakeApi::new(|_| {
        Reply::Chunks(
            vec![b"{\"a\":".to_vec(), b"1}".to_vec()],
            Duration::from_millis(1),
        )
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/api");
    assert_eq!(response.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(response.text(), r#"{"a":1}"#);
    assert_eq!(conn.get("/api").code, 200, "the next request");
}

#[test]
fn an_http_1_0_client_gets_the_body_until_close() {
    let api = FakeApi::new(|_| {
        Reply::Chunks(
            vec![b"one ".to_vec(), b"two".to_vec()],
            Duration::from_millis(1),
        )
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request("GET /api HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.header("Transfer-Encoding"), None);
    assert_eq!(response.header("Content-Length"), None);
    assert_eq!(response.text(), "one two");
    assert!(conn.is_closed());
}

#[test]
fn an_answer_without_a_length_is_chunked_for_the_client() {
    let api = FakeApi::new(|_| Reply::UntilClose(b"until the end".to_vec()));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/api");
    assert_eq!(response.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(response.text(), "until the end");
    // The client's connection stays; the API server's could not.
    assert_eq!(conn.get("/api").text(), "until the end");
    assert_eq!(api.dials(), 2);
}

#[test]
fn a_head_request_gets_the_length_and_no_body() {
    let api = FakeApi::new(|seen| match seen.method.as_str() {
        "HEAD" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n"
                .to_vec(),
        ),
        _ => Reply::json("{}"),
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    // `response` would wait for 10 bytes: the head alone is read.
    conn.send(b"HEAD /api HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = conn.head();
    assert_eq!(head.code, 200);
    assert_eq!(head.header("Content-Length"), Some("10"));
    assert_eq!(conn.get("/api").text(), "{}");
    assert_eq!(api.dials(), 1, "the connection was not kept after HEAD");
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let api = FakeApi::new(|seen| match seen.target.as_str() {
        "/204" => Reply::Raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        _ => Reply::Raw(b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n".to_vec()),
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/204");
    assert_eq!((response.code, response.body.len()), (204, 0));
    let response = conn.get("/304");
    assert_eq!(response.code, 304);
    assert_eq!(response.header("ETag"), Some("\"1\""));
    assert_eq!(conn.get("/204").code, 204);
}

#[test]
fn interim_answers_from_the_api_server_are_skipped() {
    let api = FakeApi::new(|_| {
        Reply::Raw(
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
        )
    });
    let kproxy = Kproxy::new(&api);
    let response = kproxy.connect().get("/api");
    assert_eq!((response.code, response.text().as_str()), (200, "{}"));
}

#[test]
fn the_api_servers_errors_pass_through_as_they_are() {
    let status = r#"{"kind":"Status","code":404,"reason":"NotFound"}"#;
    let api = FakeApi::new(move |_| Reply::status(404, status));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.get("/api/v1/namespaces/default/pods/nope");
    assert_eq!((response.code, response.text().as_str()), (404, status));
    assert_eq!(
        response.reason(),
        None,
        "kproxy's own Status for the API server's"
    );
    assert_eq!(conn.get("/api").code, 404, "the next request");
}
