//! Streaming: watch events pass one by one as they are sent, and bodies of any
//! size pass in constant memory, both ways.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use support::*;

/// Reads one chunk of a chunked body: its data, or `None` for the last chunk.
fn next_chunk(reader: &mut impl BufRead) -> Option<String> {
    let mut size = String::new();
    reader.read_line(&mut size).unwrap();
    let size = usize::from_str_radix(size.trim_end(), 16)
        .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).unwrap();
    assert_eq!(&data[size..], b"\r\n");
    (size > 0).then(|| String::from_utf8(data[..size].to_vec()).unwrap())
}

#[test]
fn watch_events_arrive_one_by_one_before_the_next_exists() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let mut reader = send(
        &proxy,
        "GET /api/v1/namespaces/default/pods?watch=true&gated=1&events=3 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let status = skip_head(&mut reader);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for i in 0..3 {
        if i > 0 {
            // Event i is only written by the fake after this call: receiving event
            // i-1 first proves it was not held back in a buffer.
            fake.release_event();
        }
        let event = next_chunk(&mut reader).expect("an event");
        assert!(
            event.contains(&format!(r#""name":"watched-{i}""#)),
            "{event}"
        );
        assert!(event.ends_with('\n'));
    }
    assert_eq!(
        next_chunk(&mut reader),
        None,
        "the watch must end with the last chunk"
    );
}

#[test]
fn kubectl_watch_sees_each_event() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (code, out, err) = kubectl(
        &proxy,
        &["get", "pods", "-n", "default", "--watch", "-o", "name"],
    );
    // The fake ends the watch after three events; kubectl then exits.
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(
        names,
        [
            "pod/pod-0",
            "pod/pod-1",
            "pod/watched-0",
            "pod/watched-1",
            "pod/watched-2"
        ],
        "{err}"
    );
}

fn peak_rss_kib(proxy: &Kproxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_256_mib_download_and_a_128_mib_upload_pass_in_constant_memory() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let before = peak_rss_kib(&proxy);

    let n = 256 * 1024 * 1024;
    let (code, out, err) = curl(&[
        &proxy.url(&format!("/bytes?n={n}&chunked=1")),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, n.to_string());

    // Upload, chunked, from a raw client: nothing on disk, nothing kept in memory.
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let piece: Vec<u8> = (0..64 * 1024).map(|i| (i % 253) as u8).collect();
    let pieces = 2048; // 128 MiB
    let mut hash = 0xcbf29ce484222325u64;
    for _ in 0..pieces {
        conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .unwrap();
        conn.write_all(&piece).unwrap();
        conn.write_all(b"\r\n").unwrap();
        for &b in &piece {
            hash = (hash ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    conn.write_all(b"0\r\n\r\n").unwrap();
    let (code, _, body) = read_response(&mut BufReader::new(conn));
    assert_eq!(code, 200);
    let want = format!(r#""bytes":{},"fnv":{hash}"#, pieces * piece.len());
    assert!(
        String::from_utf8_lossy(&body).contains(&want),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let after = peak_rss_kib(&proxy);
    // Buffers are fixed-size (tens of KiB per connection): 384 MiB through the
    // proxy may not raise its peak by more than a few MiB.
    assert!(
        after - before < 8 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn a_client_leaving_a_quiet_watch_frees_the_upstream_connection() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let mut reader = send(
        &proxy,
        "GET /api/v1/namespaces/default/pods?watch=1&events=2&interval_ms=600000 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    skip_head(&mut reader);
    assert!(next_chunk(&mut reader).unwrap().contains("watched-0"));
    assert_eq!(fake.open_connections(), 1);
    // The watch is now quiet for ten minutes; the client leaves.
    drop(reader);
    wait_until("the left watch's upstream connection to close", || {
        fake.open_connections() == 0
    });
    // And the proxy is fine.
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}

#[test]
fn a_quiet_stream_is_never_cut_by_a_timeout() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    // Pauses of 2.5 s, longer than any internal check interval.
    let (code, out, err) = curl(&[
        "-N",
        &proxy.url("/api/v1/namespaces/default/pods?watch=1&events=3&interval_ms=2500"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
}
