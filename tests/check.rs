//! `kproxy check`, the self-probe for exec probes in a scratch image: exit 0
//! only when a kproxy answers, and with --ready only when the API server is ready.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;

use support::fake_apiserver::temp_dir;
use support::*;

fn check(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = run_kproxy(&all, &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_live_kproxy_passes_and_readiness_follows_the_api_server() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--reject-paths=^/readyz"]);
    let port = proxy.port().to_string();
    assert_eq!(check(&["--port", &port]), (Some(0), String::new()));
    // The alive path is answered by kproxy, whatever the filter says, and never forwarded.
    assert!(fake.requests().is_empty());

    let (code, err) = check(&["--port", &port, "--ready"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the API server is not ready") && err.contains("403"),
        "{err}"
    );

    let proxy = Kproxy::in_cluster(&fake, &[]);
    let port = proxy.port().to_string();
    assert_eq!(
        check(&["--port", &port, "--ready"]),
        (Some(0), String::new())
    );
    fake.stats.not_ready.store(true, Ordering::SeqCst);
    let (code, err) = check(&["--port", &port, "--ready", "--timeout=5s"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/readyz answered 500"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_probe_names_a_host_that_accept_hosts_accepts() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[r"--accept-hosts=^kproxy\.local$"]);
    let port = proxy.port().to_string();
    let (code, err) = check(&["--port", &port]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("refused the check (403)") && err.contains("--host"),
        "{err}"
    );
    assert_eq!(
        check(&["--port", &port, "--host", "kproxy.local"]),
        (Some(0), String::new())
    );
    let (code, err) = check(&["--port", &port, "--host", "a b"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid --host"), "{err}");
}

#[test]
fn nothing_listening_fails_with_the_reason() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (code, err) = check(&["--port", &port]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("nothing answers on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn something_else_on_the_port_is_not_mistaken_for_kproxy() {
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for conn in other.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (code, err) = check(&["--port", &port]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not as kproxy does"), "{err}");
}

#[test]
fn a_silent_listener_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let (code, err) = check(&["--port", &port, "--timeout", "300ms"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no answer"), "{err}");
    drop(silent);
}

#[test]
fn unix_sockets_and_ipv6_addresses_are_checked_too() {
    let fake = FakeApiServer::start();
    let sock = temp_dir("check").join("k.sock");
    let _unix = Kproxy::in_cluster_unix(&fake, &sock);
    assert_eq!(check(&["--unix-socket", sock.to_str().unwrap()]).0, Some(0));

    let v6 = Kproxy::in_cluster(&fake, &["--address", "::1"]);
    let v6_port = v6.port().to_string();
    assert_eq!(
        check(&["--address", "[::1]", "--port", &v6_port]).0,
        Some(0)
    );
    assert_eq!(check(&["--address", "::1", "--port", &v6_port]).0, Some(0));
}

#[test]
fn check_has_its_own_help_and_refuses_unknown_flags() {
    let out = run_kproxy(&["check", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("liveness"));
    let (code, err) = check(&["--server", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--server"), "{err}");
}
