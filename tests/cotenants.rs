//! What a sidecar owes the other containers of its Pod and the web pages of its
//! machine: pages on other sites cannot make kproxy act (not even with a
//! `<img>`, which carries no `Origin`), a few silent connections cannot keep
//! Prometheus out of the metrics port, and a unix socket is never reachable by
//! others, not even for a moment. (Slow neighbours: tests/memory.rs; a shared
//! `--www` volume: tests/www.rs.)

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::fake_apiserver::temp_dir;
use support::*;

/// A GET a page could make kproxy run: a service's proxy, with a side effect.
const SIDE_EFFECT: &str = "/api/v1/namespaces/default/services/x/proxy/reset";

/// (status, body) of a GET with these browser headers; and whether it reached
/// the API server.
fn from_a_page(proxy: &Kproxy, fake: &FakeApiServer, headers: &[&str]) -> (u16, String, bool) {
    let before = fake.requests().len();
    let mut args = vec!["-s", "-w", "\n%{http_code}"];
    for header in headers {
        args.extend(["-H", header]);
    }
    let url = proxy.url(SIDE_EFFECT);
    args.push(&url);
    let (_, out, _) = curl(&args);
    let (body, code) = out.rsplit_once('\n').unwrap();
    let reached = fake.requests()[before..]
        .iter()
        .any(|r| r.target == SIDE_EFFECT);
    (code.parse().unwrap(), body.to_string(), reached)
}

#[test]
fn pages_on_other_sites_cannot_make_kproxy_act() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    // What a browser sends for `<img src>`, a link followed from another site,
    // and a same-site page (another port) with nothing to show it is accepted.
    for headers in [
        &[
            "Sec-Fetch-Site: cross-site",
            "Sec-Fetch-Mode: no-cors",
            "Sec-Fetch-Dest: image",
        ][..],
        &[
            "Sec-Fetch-Site: cross-site",
            "Sec-Fetch-Mode: navigate",
            "Referer: https://evil.example/",
        ],
        &["Sec-Fetch-Site: same-site", "Sec-Fetch-Mode: no-cors"],
        &[
            "Sec-Fetch-Site: same-site",
            "Referer: http://localhost.evil.example/",
        ],
    ] {
        let (code, body, reached) = from_a_page(&proxy, &fake, headers);
        assert_eq!(code, 403, "{headers:?}: {body}");
        let message = assert_refusal(body.as_bytes(), 403, "filter_origin");
        assert!(message.contains("open the URL directly"), "{message}");
        assert!(!reached, "{headers:?} reached the API server");
    }
    // Typed URLs and bookmarks, the dashboard's own scripts, accepted pages,
    // and clients that are no browser pass.
    for headers in [
        &["Sec-Fetch-Site: none", "Sec-Fetch-Mode: navigate"][..],
        &["Sec-Fetch-Site: same-origin"],
        &[
            "Sec-Fetch-Site: same-site",
            "Referer: http://localhost:3000/app",
        ],
        &["Sec-Fetch-Site: same-site", "Origin: http://localhost:3000"],
        &[
            "Sec-Fetch-Site: cross-site",
            "Origin: http://127.0.0.1:3000",
        ],
        &[],
    ] {
        let (code, body, reached) = from_a_page(&proxy, &fake, headers);
        // The fake API server has no such service: its own 404.
        assert_eq!(code, 404, "{headers:?}: {body}");
        assert!(reached, "{headers:?}");
    }
    // --disable-filter turns it off, as it does the Origin check.
    let open = Kproxy::in_cluster(&fake, &["--disable-filter"]);
    let (code, _, reached) = from_a_page(&open, &fake, &["Sec-Fetch-Site: cross-site"]);
    assert_eq!((code, reached), (404, true));
}

/// Opens `n` connections to the metrics port that send half a head and wait.
fn silent(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut conn = TcpStream::connect(addr).unwrap();
            conn.write_all(b"GET /metr").unwrap();
            conn
        })
        .collect()
}

#[test]
fn silent_connections_cannot_keep_a_scraper_out() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--metrics-address", "127.0.0.1:0", "-v", "1"]);
    let addr = metrics_address(&proxy);
    for count in [8, 64] {
        let held = silent(&addr, count);
        // Let them all be accepted and take their places first.
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let body = scrape(&addr);
        assert!(body.contains("kproxy_requests_total"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "with {count} silent connections a scrape took {:?}",
            started.elapsed()
        );
        drop(held);
    }
    // A scraper's head has a short time of its own, whatever --header-timeout.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let mut status = String::new();
    BufReader::new(slow).read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 408 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// What happens to names in `dir` while it runs, as inotify reports them:
/// (mask, name) pairs. A small Python program: inotify has no command in a
/// minimal Debian, and Python is there for the image tests.
fn watch(dir: &std::path::Path) -> std::process::Child {
    let program = r#"
import ctypes, os, select, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
IN_ATTRIB, IN_MOVED_TO, IN_CREATE = 0x4, 0x80, 0x100
libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_ATTRIB | IN_MOVED_TO | IN_CREATE)
print("ready", flush=True)
while select.select([fd], [], [], 30)[0]:
    data, i = os.read(fd, 65536), 0
    while i < len(data):
        _, mask, _, length = struct.unpack_from("iIII", data, i)
        name = data[i + 16:i + 16 + length].rstrip(b"\0").decode()
        print(mask, name, flush=True)
        i += 16 + length
"#;
    let mut child = Command::new("python3")
        .args(["-c", program])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    child
}

#[test]
fn a_unix_socket_appears_with_its_final_mode() {
    if !have_tool("python3", "python3") {
        return;
    }
    let fake = FakeApiServer::start();
    let dir = temp_dir("unix-mode");
    let sock = dir.join("kproxy.sock");
    let mut watcher = watch(&dir);
    // Under the laxest umask: a socket bound at its path would appear as 0777.
    let mut proxy = kproxy_command_at(std::path::Path::new("sh"));
    proxy
        .args([
            "-c",
            "umask 000; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_kproxy"),
        ])
        .args([
            "--unix-socket",
            sock.to_str().unwrap(),
            "--serviceaccount-dir",
        ])
        .arg(&fake.sa_dir)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", fake.port.to_string());
    let proxy = Kproxy::spawn(proxy);
    assert_eq!(proxy.addr, sock.to_str().unwrap());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    std::thread::sleep(Duration::from_millis(200));
    let _ = watcher.kill();
    let seen = watcher.wait_with_output().unwrap();
    let events: Vec<(u32, String)> = String::from_utf8_lossy(&seen.stdout)
        .lines()
        .filter_map(|l| {
            let (mask, name) = l.split_once(' ')?;
            Some((mask.parse().ok()?, name.to_string()))
        })
        .filter(|(_, name)| name == "kproxy.sock")
        .collect();
    // It came into the directory whole (a rename), with nothing done to it by
    // its name since: never created there, never chmod-ed there.
    assert_eq!(events, [(0x80, "kproxy.sock".to_string())], "{seen:?}");
    drop(proxy);
}
