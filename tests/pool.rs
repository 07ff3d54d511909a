//! The pool of connections to the API server: a connection serves another
//! request only when nothing unasked-for came on it, and a request is sent a
//! second time only when that cannot repeat its effect.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::thread;
use std::time::Duration;

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
    assert!(body.contains(r#""kind":"Status""#), "{body}");
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
