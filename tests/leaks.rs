//! Nothing leaks over a sidecar's life: after 10,000 watches and tunnels opened
//! and closed in every way (by the client, by the server, cut mid-chunk, reset),
//! kproxy has the same open files and threads as before and its resident memory
//! is back within 1 MiB.
//!
//! The figures are printed; run with `cargo test --test leaks -- --nocapture`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use support::*;

const ROUNDS: usize = 10_000;

struct Footprint {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

fn footprint(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    Footprint {
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
    }
}

/// One open-and-close of a watch or a tunnel, the `i`th kind of eight.
fn one_round(proxy: &Kproxy, i: usize) {
    const WATCH: &str = "/api/v1/namespaces/default/pods?watch=1";
    let get =
        |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
    let upgrade = |path: &str| get(path, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
    match i % 8 {
        // A watch the server ends.
        0 => {
            let mut r = send(
                proxy,
                &get(
                    &format!("{WATCH}&events=2&interval_ms=0"),
                    "Connection: close\r\n",
                ),
            );
            let mut all = String::new();
            r.read_to_string(&mut all).unwrap();
            assert!(all.ends_with("0\r\n\r\n"), "{all}");
        }
        // A watch the client leaves after the first event.
        1 => {
            let mut r = send(proxy, &get(&format!("{WATCH}&events=3&interval_ms=20"), ""));
            skip_head(&mut r);
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
        }
        // A watch the server cuts in the middle.
        2 => {
            let mut r = send(
                proxy,
                &get(&format!("{WATCH}&events=2&interval_ms=0&cut=1"), ""),
            );
            let mut all = Vec::new();
            let _ = r.read_to_end(&mut all);
        }
        // A watch the client resets (unread data makes the kernel send RST).
        3 => {
            let mut r = send(proxy, &get(&format!("{WATCH}&events=3&interval_ms=20"), ""));
            skip_head(&mut r);
            let _ = r.get_mut().write_all(b"junk");
        }
        // A tunnel the client half-closes, then reads to the end.
        4 => {
            let mut r = send(proxy, &upgrade("/upgrade/echo"));
            assert!(skip_head(&mut r).starts_with("HTTP/1.1 101"));
            r.get_mut().write_all(b"ping").unwrap();
            r.get_ref().shutdown(Shutdown::Write).unwrap();
            let mut echo = String::new();
            r.read_to_string(&mut echo).unwrap();
            assert_eq!(echo, "ping");
        }
        // A tunnel the server closes.
        5 => {
            let mut r = send(proxy, &upgrade("/upgrade/hello-and-close"));
            skip_head(&mut r);
            let mut hello = String::new();
            r.read_to_string(&mut hello).unwrap();
        }
        // A tunnel the client drops mid-way.
        6 => {
            let mut r = send(proxy, &upgrade("/upgrade/echo"));
            skip_head(&mut r);
            r.get_mut().write_all(b"x").unwrap();
        }
        // A plain request, so pooled connections keep being used.
        _ => {
            let mut r = send(proxy, &get("/api", "Connection: close\r\n"));
            let mut all = String::new();
            r.read_to_string(&mut all).unwrap();
        }
    }
}

/// Waits until only kproxy's long-lived threads (main, signals and the pool's
/// dialers) remain and the open files stop changing (connections wind down on
/// their own threads); returns that reading.
fn settle(pid: u32) -> Footprint {
    let long_lived = 2 + kproxy::services::upstream::pool::DIALERS;
    let deadline = Instant::now() + PATIENCE;
    let mut last = footprint(pid);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = footprint(pid);
        if (now.threads == long_lived && now.fds == last.fds) || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn ten_thousand_watches_and_tunnels_leave_nothing_behind() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let pid = proxy.child.id();
    // Warm up, so the pool and the allocator reach their steady state.
    for i in 0..512 {
        one_round(&proxy, i);
    }
    let baseline = settle(pid);
    assert_eq!(
        baseline.threads,
        2 + kproxy::services::upstream::pool::DIALERS,
        "settled"
    );

    let started = Instant::now();
    for i in 0..ROUNDS {
        one_round(&proxy, i);
    }
    let elapsed = started.elapsed();
    let after = settle(pid);
    eprintln!(
        "{ROUNDS} watches and tunnels in {:.1}s: fds {} -> {}, threads {} -> {}, RSS {} KiB -> {} KiB",
        elapsed.as_secs_f64(),
        baseline.fds,
        after.fds,
        baseline.threads,
        after.threads,
        baseline.rss_kib,
        after.rss_kib
    );
    assert_eq!(after.fds, baseline.fds, "open files");
    assert_eq!(after.threads, baseline.threads, "threads");
    assert!(
        after.rss_kib <= baseline.rss_kib + 1024,
        "RSS grew by more than 1 MiB"
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}
