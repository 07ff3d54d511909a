//! Memory is a property, not an estimate: hostile clients, as many as
//! `--max-connections` lets in, each doing the most expensive thing a client can
//! do, and the static binary that ships must stay under the memory limit that
//! the manifests set (read from them, not repeated here).
//!
//! Each case runs against a fresh kproxy; its resident memory (VmRSS, and the
//! peak VmHWM) is read from /proc once every connection is in place. The table
//! is printed: `cargo test --test memory -- --nocapture`; docs/flags.md's
//! figures come from it. `KPROXY_BIN=path` measures another build.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// kproxy's default `--max-connections`.
const CONNECTIONS: usize = 256;

/// The tests here take turns: each measures a kproxy under load, and the
/// machine has two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}
/// How large each client makes its request.
#[derive(Clone, Copy, Debug)]
enum Size {
    /// A head just under the 8 KiB that needs no share of the budget, a body
    /// just under the 8 KiB likewise: every connection holds one.
    Free,
    /// A head just under the 64 KiB limit (99 fields at most, which with the
    /// token and X-Forwarded-For that kproxy adds is the fake API server's
    /// limit of 100), a body
    /// just under the 64 KiB that kproxy keeps to send again: these draw on the
    /// budget for large requests, so only some get in at once.
    Largest,
}

impl Size {
    /// (fields of padding, bytes each, body bytes)
    fn shape(self) -> (usize, usize, usize) {
        match self {
            Size::Free => (7, 1000, 7 * 1024),
            Size::Largest => (96, 650, 60 * 1024),
        }
    }
}

/// The most expensive things a local client can make kproxy hold.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// A head of ~63 KiB sent slowly: it never ends.
    TrickledHead,
    /// A ~63 KiB head, then a chunked body that stalls before its last chunk.
    StalledChunkedBody,
    /// A ~63 KiB head and a 60 KiB body, waiting on an answer that takes long.
    SlowAnswer,
    /// A watch opened with a ~63 KiB head, quiet afterwards.
    QuietWatch,
    /// A 64 MiB answer that the client never reads.
    UnreadAnswer,
    /// The same as a stream (a watch), which gets an API server connection of
    /// its own rather than a place among the shared ones.
    UnreadStream,
    /// The worst together: the largest kept bodies until the budget for large
    /// requests is spent, and unread streams on every other connection.
    Mixed,
}

fn big_head(size: Size, request_line: &str, framing: &str) -> Vec<u8> {
    let (fields, len, _) = size.shape();
    let mut head = format!("{request_line}\r\nHost: localhost\r\n");
    for i in 0..fields {
        head.push_str(&format!("X-Pad-{i:02}: {}\r\n", "p".repeat(len)));
    }
    head.push_str(framing);
    head.push_str("\r\n");
    head.into_bytes()
}

/// Opens the `i`th connection and leaves it in the state of `case`.
fn open(proxy: &Kproxy, case: Case, size: Size, i: usize) -> TcpStream {
    if let Case::Mixed = case {
        return match i < 64 {
            true => open(proxy, Case::StalledChunkedBody, Size::Largest, i),
            false => open(proxy, Case::UnreadStream, Size::Free, i),
        };
    }
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    let body = vec![b'b'; size.shape().2];
    let big_head = |line: &str, framing: &str| big_head(size, line, framing);
    match case {
        Case::TrickledHead => {
            let head = big_head("GET /api HTTP/1.1", "");
            conn.write_all(&head[..head.len() - 4]).unwrap();
        }
        Case::StalledChunkedBody => {
            let head = big_head("POST /echo HTTP/1.1", "Transfer-Encoding: chunked\r\n");
            conn.write_all(&head).unwrap();
            for piece in body.chunks(4096) {
                write!(conn, "{:x}\r\n", piece.len()).unwrap();
                conn.write_all(piece).unwrap();
                conn.write_all(b"\r\n").unwrap();
            }
        }
        Case::SlowAnswer => {
            let length = format!("Content-Length: {}\r\n", body.len());
            conn.write_all(&big_head("POST /slow?ms=60000 HTTP/1.1", &length))
                .unwrap();
            conn.write_all(&body).unwrap();
        }
        Case::QuietWatch => {
            let line = "GET /api/v1/namespaces/default/pods?watch=1&gated=1&events=2 HTTP/1.1";
            conn.write_all(&big_head(line, "")).unwrap();
        }
        Case::UnreadAnswer => {
            let line = format!("GET /bytes?n={} HTTP/1.1", 64 << 20);
            conn.write_all(&big_head(&line, "")).unwrap();
        }
        Case::UnreadStream => {
            let line = format!("GET /bytes?n={}&watch=1 HTTP/1.1", 64 << 20);
            conn.write_all(&big_head(&line, "")).unwrap();
        }
        Case::Mixed => unreachable!("opened as its parts"),
    }
    conn
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until resident memory has not grown for a second (at most 20 s), and
/// returns (VmRSS, VmHWM) in KiB.
fn settled_memory(pid: u32) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last, mut since) = (0, Instant::now());
    while Instant::now() < deadline {
        let rss = status_kib(pid, "VmRSS:");
        if rss > last {
            (last, since) = (rss, Instant::now());
        } else if since.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"))
}

/// How many connections kproxy turned away (a 503, or closed) rather than
/// holding their request. Large requests wait up to 2 s for room before they
/// are refused, so this looks once that has passed.
fn refused(conns: &[TcpStream]) -> usize {
    std::thread::sleep(Duration::from_secs(3));
    conns
        .iter()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut start = [0u8; 12];
            let seen = c.peek(&mut start);
            c.set_nonblocking(false).unwrap();
            // A reset would be a failure of its own: the client must see the 503.
            if let Err(e) = &seen {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock,
                    "reset, not answered"
                );
            }
            if std::env::var_os("MEMORY_DEBUG").is_some() {
                eprintln!("{seen:?} {:?}", String::from_utf8_lossy(&start));
            }
            matches!(seen, Ok(0)) || (matches!(seen, Ok(12)) && &start == b"HTTP/1.1 503")
        })
        .count()
}

/// The memory limit of the kproxy containers in the manifests, in KiB.
fn manifest_limit_kib() -> u64 {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("manifests/apiserver-via-sidecar.yaml"),
    )
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let sidecar = doc["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sidecar")
        .unwrap();
    let limit = sidecar["resources"]["limits"]["memory"].as_str().unwrap();
    limit.strip_suffix("Mi").unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn hostile_clients_at_the_connection_cap_stay_under_the_memory_limit() {
    let _turn = one_at_a_time();
    let bin = static_binary();
    let limit = manifest_limit_kib();
    let fake = FakeApiServer::start();
    let mut failures = Vec::new();
    println!(
        "| case ({CONNECTIONS} connections) | held / refused | RSS MiB | peak MiB | per held connection KiB |"
    );
    println!("|---|---|---|---|---|");
    let cases = [
        Case::TrickledHead,
        Case::StalledChunkedBody,
        Case::SlowAnswer,
        Case::QuietWatch,
        Case::UnreadAnswer,
        Case::UnreadStream,
    ];
    let runs = cases
        .iter()
        .map(|&case| (case, Size::Free))
        .chain(cases.iter().map(|&case| (case, Size::Largest)))
        .chain([(Case::Mixed, Size::Largest)]);
    {
        for (case, size) in runs {
            let proxy = Kproxy::in_cluster_binary(&bin, &fake, &["--header-timeout=60s"]);
            let pid = proxy.child.id();
            let idle = status_kib(pid, "VmRSS:");
            let conns: Vec<TcpStream> = (0..CONNECTIONS)
                .map(|i| open(&proxy, case, size, i))
                .collect();
            let (rss, peak) = settled_memory(pid);
            let refused = refused(&conns);
            let held = CONNECTIONS - refused;
            if held == CONNECTIONS {
                // Still serving: the cap, not a crash, is what a further client meets.
                assert_eq!(curl_status(&proxy.url("/api"), &[]), 503, "{case:?}");
            }
            println!(
                "| {case:?}, {size:?} | {held} / {refused} | {:.1} | {:.1} | {} |",
                rss as f64 / 1024.0,
                peak as f64 / 1024.0,
                rss.saturating_sub(idle) / held.max(1) as u64
            );
            if peak >= limit {
                failures.push(format!(
                    "{case:?} {size:?}: peak {peak} KiB >= limit {limit} KiB"
                ));
            }
            if matches!(size, Size::Free) && held != CONNECTIONS {
                failures.push(format!(
                    "{case:?}: {refused} requests of the free size were refused"
                ));
            }
            drop(conns);
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Slow neighbours: clients whose answers come slowly, or who read them
/// slowly, however many, never keep another client's request waiting. The
/// sidecar's neighbour may be hostile (`pods/NAME:PORT/proxy/` to a pod it runs
/// is an answer the API server never finishes; `/openapi/v2` is 16 MiB any
/// account may read): another client's `GET /api` is answered within a
/// second, and memory stays under the manifests' limit.
#[test]
fn slow_answers_and_slow_readers_keep_no_one_waiting() {
    let _turn = one_at_a_time();
    let bin = static_binary();
    let limit = manifest_limit_kib();
    let fake = FakeApiServer::start();
    let mut failures = Vec::new();
    println!("| neighbours | another client's GET /api | RSS MiB | peak MiB |");
    println!("|---|---|---|---|");
    for (what, count, line) in [
        ("slow answers", 32, "GET /slow?ms=60000 HTTP/1.1"),
        ("slow answers", 200, "GET /slow?ms=60000 HTTP/1.1"),
        (
            "slow readers of 16 MiB",
            32,
            "GET /bytes?n=16777216 HTTP/1.1",
        ),
    ] {
        let proxy = Kproxy::in_cluster_binary(&bin, &fake, &[]);
        let pid = proxy.child.id();
        let before = fake.requests().len();
        let neighbours: Vec<TcpStream> = (0..count)
            .map(|_| {
                let mut conn = TcpStream::connect(&proxy.addr).unwrap();
                write!(conn, "{line}\r\nHost: localhost\r\n\r\n").unwrap();
                conn
            })
            .collect();
        // Every neighbour's request has reached the API server; a slow reader
        // has its first 4 KiB, and reads no more.
        wait_for(|| (fake.requests().len() >= before + count).then_some(()));
        for mut conn in &neighbours {
            if line.contains("bytes") {
                let mut first = [0u8; 4096];
                std::io::Read::read_exact(&mut conn, &mut first).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let status = curl_status(&proxy.url("/api"), &[]);
        let took = started.elapsed();
        let (rss, peak) = settled_memory(pid);
        println!(
            "| {count} {what} | {status} in {} ms | {:.1} | {:.1} |",
            took.as_millis(),
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        if status != 200 || took >= Duration::from_secs(1) {
            failures.push(format!(
                "{count} {what}: GET /api got {status} after {took:?}"
            ));
        }
        if peak >= limit {
            failures.push(format!(
                "{count} {what}: peak {peak} KiB >= limit {limit} KiB"
            ));
        }
        drop(neighbours);
    }
    assert!(failures.is_empty(), "{failures:?}");
}
