//! What reaches the API server, and what comes back: the seed's calls, kubectl,
//! headers, bodies, framing and connection reuse.

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
