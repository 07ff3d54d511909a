//! What reaches the API server, and what comes back: the seed's calls, kubectl,
//! headers, bodies, framing and connection reuse.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;

use support::fake_apiserver::fnv;
use support::*;

#[test]
fn seed_curl_calls_reach_the_api_server_with_the_token() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);

    let (code, body, err) = curl(&[&proxy.url("/api")]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains(r#""kind":"APIVersions""#), "{body}");

    let (code, body, err) =
        curl(&[&proxy.url("/api/v1/namespaces/default/pods/apiserver-via-sidecar")]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains(r#""name":"apiserver-via-sidecar""#), "{body}");

    let seen = fake.last_request();
    assert_eq!(
        seen.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        seen.header("Host"),
        Some(format!("127.0.0.1:{}", fake.port).as_str())
    );
    assert_eq!(seen.header("X-Forwarded-For"), Some("127.0.0.1"));
}

#[test]
fn kubectl_works_through_the_proxy() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (code, out, err) = kubectl(&proxy, &["get", "--raw", "/api"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("APIVersions"), "{out}");

    let (code, out, err) = kubectl(&proxy, &["get", "pods", "-n", "default", "-o", "name"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "pod/pod-0\npod/pod-1");
}

#[test]
fn hop_by_hop_headers_stay_behind_and_end_to_end_ones_pass() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (code, _, err) = curl(&[
        &proxy.url("/api"),
        "-H",
        "Connection: keep-alive, X-Per-Hop",
        "-H",
        "X-Per-Hop: secret",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "-H",
        "Proxy-Connection: keep-alive",
        "-H",
        "TE: trailers",
        "-H",
        "Upgrade: h2c",
        "-H",
        "Cookie: a=b",
        "-H",
        "Impersonate-User: jane",
        "-H",
        "X-Remote-User: joe",
        "-H",
        "X-Forwarded-For: 10.1.2.3",
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = fake.last_request();
    for gone in [
        "X-Per-Hop",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Upgrade",
        "Connection",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} was forwarded");
    }
    assert_eq!(seen.header("Cookie"), Some("a=b"));
    assert_eq!(seen.header("Impersonate-User"), Some("jane"));
    assert_eq!(seen.header("X-Remote-User"), Some("joe"));
    assert_eq!(
        seen.headers_named("X-Forwarded-For"),
        vec!["10.1.2.3, 127.0.0.1"]
    );
    assert_eq!(seen.headers_named("Host").len(), 1);
}

#[test]
fn a_clients_own_authorization_passes_unchanged() {
    let fake = FakeApiServer::start();
    fake.accept_token("CLIENTTOKEN");
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (code, body, _) = curl(&[
        &proxy.url("/api"),
        "-H",
        "Authorization: Bearer CLIENTTOKEN",
    ]);
    assert_eq!(code, 0);
    assert!(body.contains("APIVersions"));
    assert_eq!(
        fake.last_request().headers_named("Authorization"),
        vec!["Bearer CLIENTTOKEN"]
    );

    let status = curl_status(&proxy.url("/api"), &["-H", "Authorization: Bearer WRONG"]);
    assert_eq!(status, 401, "the client's credentials were replaced");

    // As with kubectl: an empty Authorization, or one that Connection names (so
    // hop-by-hop), is not the client's own: the token replaces it.
    for extra in [
        "Authorization: \r\n",
        "Connection: Authorization\r\nAuthorization: Bearer CLIENTTOKEN\r\n",
    ] {
        let request = format!("GET /api HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
        let (code, _, _) = read_response(&mut send(&proxy, &request));
        assert_eq!(code, 200, "{extra:?}");
        assert_eq!(
            fake.last_request().headers_named("Authorization"),
            vec![format!("Bearer {TOKEN}")],
            "{extra:?}"
        );
    }
}

#[test]
fn request_bodies_with_length_chunked_and_expect_continue() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let dir = fake_apiserver::temp_dir("bodies");
    for (name, size) in [("small", 1000usize), ("large", 3 * 1024 * 1024 + 7)] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let file = dir.join(name);
        std::fs::write(&file, &data).unwrap();
        let at = format!("@{}", file.display());
        let want = format!(r#""bytes":{size},"fnv":{}"#, fnv(&data));
        for extra in [
            &[][..],
            &["-H", "Transfer-Encoding: chunked"][..],
            &["-H", "Expect: 100-continue"][..],
            &[
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "Expect: 100-continue",
            ][..],
        ] {
            let mut args = vec![
                proxy.url("/echo"),
                "-X".into(),
                "PUT".into(),
                "--data-binary".into(),
                at.clone(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, body, err) = curl(&args);
            assert_eq!(code, 0, "{err}");
            assert!(body.contains(&want), "{name} {extra:?}: {body}");
            assert!(body.contains(r#""method":"PUT""#));
        }
    }
    // Expect is answered by kproxy itself, never forwarded.
    assert!(fake.requests().iter().all(|r| r.header("Expect").is_none()));
}

#[test]
fn keep_alive_answers_pipelined_requests_in_order() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut requests = String::new();
    for name in ["one", "two", "three"] {
        requests.push_str(&format!(
            "GET /api/v1/namespaces/default/pods/{name} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        ));
    }
    requests.push_str("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    requests.push_str("GET /bytes?n=70000&chunked=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.write_all(requests.as_bytes()).unwrap();
    let mut reader = BufReader::new(conn);
    for name in ["one", "two", "three"] {
        let (code, _, body) = read_response(&mut reader);
        assert_eq!(code, 200);
        assert!(String::from_utf8_lossy(&body).contains(&format!(r#""name":"{name}""#)));
    }
    let (_, _, body) = read_response(&mut reader);
    assert!(
        String::from_utf8_lossy(&body).contains(&format!(r#""bytes":5,"fnv":{}"#, fnv(b"hello")))
    );
    let (code, headers, body) = read_response(&mut reader);
    assert_eq!((code, body.len()), (200, 70000));
    assert_eq!(header(&headers, "Transfer-Encoding"), Some("chunked"));
}

#[test]
fn http_1_0_clients_get_close_delimited_bodies() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let reply = raw(
        &proxy.addr,
        b"GET /bytes?n=40000&chunked=1 HTTP/1.0\r\nHost: localhost\r\n\r\n",
    );
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(body.len(), 40000);

    let reply = raw(&proxy.addr, b"GET /api HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert!(reply.contains("Content-Length: "), "{reply}");
    assert!(reply.ends_with("}"), "{reply}");
}

#[test]
fn bodiless_responses_are_framed_right() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(
        b"HEAD /api HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /status/304 HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    // HEAD keeps the Content-Length of the resource, with no body after it.
    let mut line = String::new();
    let mut head = String::new();
    while line != "\r\n" {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: "), "{head}");
    for want in [204, 304] {
        let (code, headers, body) = read_response(&mut reader);
        assert_eq!((code, body.len()), (want, 0));
        assert_eq!(header(&headers, "Transfer-Encoding"), None);
        assert_eq!(
            header(&headers, "X-Status"),
            Some(want.to_string().as_str())
        );
    }
    let (code, _, body) = read_response(&mut reader);
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("APIVersions"));
}

#[test]
fn upstream_connections_are_pooled_across_clients() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for _ in 0..10 {
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    }
    assert_eq!(
        fake.handshakes(),
        1,
        "each request should reuse the first TLS connection"
    );
}

#[test]
fn a_stale_pooled_connection_is_retried_on_a_fresh_one() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    assert_eq!(curl_status(&proxy.url("/misbehave/close-after"), &[]), 200);
    // The pooled connection is now closed by the server: the GET and a small PUT
    // must both be retried, not fail.
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(curl_status(&proxy.url("/misbehave/close-after"), &[]), 200);
    let (code, body, _) = curl(&[&proxy.url("/echo"), "-X", "PUT", "--data-binary", "abc"]);
    assert_eq!(code, 0);
    assert!(body.contains(r#""bytes":3"#), "{body}");
    assert_eq!(fake.handshakes(), 3);
}

#[test]
fn large_bodies_of_every_framing_arrive_whole() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let n = 20 * 1024 * 1024 + 3;
    for framing in ["", "&chunked=1", "&close=1"] {
        let url = proxy.url(&format!("/bytes?n={n}{framing}"));
        let (code, out, err) = curl(&[
            &url,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ]);
        assert_eq!(code, 0, "{framing}: {err}");
        assert_eq!(out, format!("200 {n}"), "{framing}");
    }
}

#[test]
fn absolute_form_targets_are_forwarded_in_origin_form() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let reply = raw(
        &proxy.addr,
        b"GET http://localhost:8001/api?x=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(fake.last_request().target, "/api?x=1");
}
