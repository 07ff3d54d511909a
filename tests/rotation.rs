//! Credentials that change under a running proxy, as they do in a Pod that lives
//! for months: the kubelet rotates the projected token (a `..data` symlink swap)
//! about every 48 minutes, and `ca.crt` during a CA rotation.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::fake_apiserver::{kubelet_write, temp_dir};
use support::*;

/// Sends `GET /api` every 10 ms on a keep-alive connection until `stop`;
/// returns every status seen.
fn steady_client(addr: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<u16>> {
    thread::spawn(move || {
        let conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut writer = conn.try_clone().unwrap();
        let mut reader = BufReader::new(conn);
        let mut statuses = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            writer
                .write_all(b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            statuses.push(read_response(&mut reader).0);
            thread::sleep(Duration::from_millis(10));
        }
        statuses
    })
}

/// Rotates the token in `dir` three times while a client keeps asking; the old
/// token is retired by the API server 300 ms after each swap, well before kproxy's
/// once-a-second look at the file, so the 401-then-retry path is what saves it.
fn rotate_under_load(fake: &FakeApiServer, proxy: &Kproxy, dir: &std::path::Path) {
    let stop = Arc::new(AtomicBool::new(false));
    let client = steady_client(proxy.addr.clone(), stop.clone());
    let mut old = TOKEN.to_string();
    for round in 1..=3 {
        thread::sleep(Duration::from_millis(700));
        let new = format!("rotated-token-{round}");
        fake.accept_token(&new);
        kubelet_write(dir, "token", &format!("{new}\n"));
        thread::sleep(Duration::from_millis(300));
        fake.retire_token(&old);
        old = new;
    }
    thread::sleep(Duration::from_millis(1200));
    stop.store(true, Ordering::SeqCst);
    let statuses = client.join().unwrap();
    let refused = statuses.iter().filter(|&&s| s != 200).count();
    assert!(
        statuses.len() > 100,
        "only {} requests were sent",
        statuses.len()
    );
    assert_eq!(
        refused,
        0,
        "{refused} of {} requests were not 200: {statuses:?}",
        statuses.len()
    );
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer rotated-token-3")
    );
}

#[test]
fn in_cluster_token_rotation_never_shows_the_client_a_401() {
    let fake = FakeApiServer::start();
    kubelet_write(&fake.sa_dir, "token", TOKEN);
    let proxy = Kproxy::in_cluster(&fake, &[]);
    rotate_under_load(&fake, &proxy, &fake.sa_dir);
}

#[test]
fn a_401_right_after_a_rotation_is_retried_with_the_new_token() {
    let fake = FakeApiServer::start();
    kubelet_write(&fake.sa_dir, "token", TOKEN);
    let proxy = Kproxy::in_cluster(&fake, &["-v", "2"]);
    let started = std::time::Instant::now();
    // kproxy has just read the token and will not look at the file for a second...
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    // ...when the kubelet rotates it and the API server drops the old one at once.
    fake.accept_token("fresh-token");
    kubelet_write(&fake.sa_dir, "token", "fresh-token");
    fake.retire_token(TOKEN);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer fresh-token")
    );
    // Only within that second is the 401 certain to have happened.
    if started.elapsed() < Duration::from_millis(900) {
        let old = format!("Bearer {TOKEN}");
        let with_old = fake
            .requests()
            .iter()
            .filter(|r| r.header("Authorization") == Some(old.as_str()))
            .count();
        assert_eq!(
            with_old, 2,
            "the second request should have been tried with the old token first"
        );
        assert!(
            proxy.stderr().contains("retrying with the new token"),
            "{}",
            proxy.stderr()
        );
    }
}

#[test]
fn token_file_rotation_never_shows_the_client_a_401() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("tokenfile");
    kubelet_write(&dir, "token", TOKEN);
    let token_file = dir.join("token");
    let proxy = Kproxy::in_cluster(&fake, &["--token-file", token_file.to_str().unwrap()]);
    rotate_under_load(&fake, &proxy, &dir);
}

#[test]
fn a_fixed_token_is_never_reread_and_a_401_passes_through() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::explicit(&fake, &["--token", TOKEN]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    fake.retire_token(TOKEN);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 401);
}

/// Waits until kproxy's stderr holds `needle` `count` times.
fn wait_for_log(proxy: &Kproxy, needle: &str, count: usize) {
    wait_until(format!("kproxy to log {needle:?} {count} times"), || {
        if proxy.stderr().matches(needle).count() >= count {
            return true;
        }
        // Requests are what make kproxy look at the CA file.
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
        false
    });
}

#[test]
fn a_ca_rotation_with_an_overlap_is_followed_without_a_failed_request() {
    let fake = FakeApiServer::start();
    let old_ca = std::fs::read_to_string(fake.ca_path()).unwrap();
    kubelet_write(&fake.sa_dir, "ca.crt", &old_ca);
    let proxy = Kproxy::in_cluster(&fake, &["-v", "2", "--metrics-address", "127.0.0.1:0"]);
    let metrics = metrics_address(&proxy);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(fake.handshakes(), 1);

    // 1. The kubelet adds the new CA beside the old one.
    let new_ca = fake.mint_ca();
    kubelet_write(&fake.sa_dir, "ca.crt", &format!("{old_ca}{}", new_ca.pem));
    wait_for_log(&proxy, "changed: new connections use it", 1);
    // The pooled connection verified under the old bundle was closed, not reused:
    // exactly one new one since.
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(
        fake.handshakes(),
        2,
        "a connection from before the change was reused"
    );

    // 2. The API server switches to a certificate from the new CA.
    fake.use_ca(&new_ca);
    kubelet_write(&fake.sa_dir, "ca.crt", &new_ca.pem);
    wait_for_log(&proxy, "changed: new connections use it", 2);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);

    // 3. A CA file that does not parse keeps the last good bundle, logged once.
    kubelet_write(&fake.sa_dir, "ca.crt", "not a certificate");
    wait_for_log(&proxy, "keeping the last good one", 1);
    thread::sleep(Duration::from_millis(3500));
    for _ in 0..3 {
        assert_eq!(
            curl_status(&proxy.url("/api"), &["-H", "Connection: close"]),
            200
        );
    }
    assert_eq!(
        proxy.stderr().matches("keeping the last good one").count(),
        1,
        "{}",
        proxy.stderr()
    );
    // Counted: two bundles loaded, the broken one refused (each time it was looked at).
    let counted = samples(&scrape(&metrics));
    assert_eq!(value(&counted, "kproxy_ca_reloads_total"), 2.0);
    assert!(value(&counted, "kproxy_ca_reload_failures_total") >= 1.0);
    assert_eq!(
        value(
            &counted,
            r#"kproxy_tls_handshake_failures_total{kind="certificate"}"#
        ),
        0.0
    );
}

#[test]
fn without_the_new_ca_a_switched_server_is_refused() {
    // The counter-test: if kproxy did not re-read ca.crt, step 2 above would fail like this.
    let fake = FakeApiServer::start();
    fake.use_ca(&fake.mint_ca());
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (_, body, _) = curl(&[&proxy.url("/api")]);
    assert!(
        body.contains(r#""code":502"#) && body.contains("certificate"),
        "{body}"
    );
}
