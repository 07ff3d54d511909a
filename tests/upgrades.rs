//! 101 upgrades (SPDY for kubectl exec and port-forward, WebSocket for newer
//! clients): forwarded on a connection of their own with the token and every
//! end-to-end header, then piped both ways, half-close respected, nothing leaked.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use support::*;

const PORTFORWARD: &str = "/api/v1/namespaces/default/pods/p/portforward";
const EXEC: &str = "/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true";

/// Opens a tunnel through kproxy; returns the stream (positioned after the head)
/// and the response head's lines.
fn open(proxy: &Kproxy, path: &str, headers: &str) -> (BufReader<TcpStream>, Vec<String>) {
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n{headers}\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    (reader, lines)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` on a writer thread while reading the echo; then half-closes
/// and expects the echo to end.
fn echo_round_trip(reader: BufReader<TcpStream>, data: Vec<u8>) {
    let mut writer = reader.get_ref().try_clone().unwrap();
    let expected = data.clone();
    let sender = std::thread::spawn(move || {
        for piece in data.chunks(8191) {
            writer.write_all(piece).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::with_capacity(expected.len());
    let mut reader = reader;
    reader.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    assert_eq!(echoed.len(), expected.len());
    assert!(echoed == expected, "the echo differs from what was sent");
}

fn wait_for_no_open_connections(fake: &FakeApiServer) {
    wait_until("every connection to the API server to close", || {
        fake.open_connections() == 0
    });
}

#[test]
fn websocket_port_forward_pipes_10_mib_each_way() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["-v", "2"]);
    let (reader, head) = open(
        &proxy,
        PORTFORWARD,
        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n",
    );
    assert_eq!(head[0], "HTTP/1.1 101 Switching Protocols");
    assert!(head.contains(&"Upgrade: websocket".to_string()), "{head:?}");
    assert!(
        head.contains(&"Connection: Upgrade".to_string()),
        "{head:?}"
    );
    assert!(
        head.contains(&"Sec-WebSocket-Protocol: v5.channel.k8s.io".to_string()),
        "{head:?}"
    );

    let seen = fake.last_request();
    assert_eq!(
        seen.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen.header("Upgrade"), Some("websocket"));
    assert_eq!(
        seen.header("Sec-WebSocket-Key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(
        seen.header("Sec-WebSocket-Protocol"),
        Some("v5.channel.k8s.io")
    );
    assert_eq!(seen.header("X-Forwarded-For"), Some("127.0.0.1"));

    let result =
        std::panic::catch_unwind(move || echo_round_trip(reader, pattern(10 * 1024 * 1024, 7)));
    std::thread::sleep(Duration::from_millis(300));
    assert!(result.is_ok(), "kproxy said: {}", proxy.stderr());
    wait_for_no_open_connections(&fake);
}

#[test]
fn spdy_exec_is_refused_by_default_and_pipes_once_allowed() {
    let fake = FakeApiServer::start();
    let spdy = "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n";

    let default = Kproxy::in_cluster(&fake, &[]);
    let (mut reader, head) = open(&default, EXEC, spdy);
    assert!(head[0].starts_with("HTTP/1.1 403"), "{head:?}");
    let length: usize = head
        .iter()
        .find_map(|h| h.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    assert_refusal(&body, 403, "filter_path");
    assert!(fake.requests().is_empty());

    let open_exec = Kproxy::in_cluster(&fake, &["--reject-paths=^$"]);
    let (reader, head) = open(&open_exec, EXEC, spdy);
    assert_eq!(head[0], "HTTP/1.1 101 Switching Protocols", "{head:?}");
    assert!(head.contains(&"Upgrade: SPDY/3.1".to_string()), "{head:?}");
    assert!(
        head.contains(&"X-Stream-Protocol-Version: v4.channel.k8s.io".to_string()),
        "{head:?}"
    );
    echo_round_trip(reader, pattern(10 * 1024 * 1024, 11));
    wait_for_no_open_connections(&fake);
}

#[test]
fn a_half_closed_client_still_gets_the_rest() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (mut reader, head) = open(&proxy, "/upgrade/echo", "Upgrade: SPDY/3.1\r\n");
    assert_eq!(head[0], "HTTP/1.1 101 Switching Protocols");
    reader.get_mut().write_all(b"ping").unwrap();
    reader.get_ref().shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "ping");
}

#[test]
fn the_server_closing_first_ends_the_tunnel() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (mut reader, head) = open(&proxy, "/upgrade/hello-and-close", "Upgrade: SPDY/3.1\r\n");
    assert_eq!(head[0], "HTTP/1.1 101 Switching Protocols");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "hello");
    // The client's side is closed by kproxy once both directions are done.
    drop(reader);
    wait_for_no_open_connections(&fake);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}

#[test]
fn a_refused_upgrade_is_relayed_as_a_normal_answer() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (mut reader, head) = open(&proxy, "/upgrade/refuse", "Upgrade: websocket\r\n");
    assert!(head[0].starts_with("HTTP/1.1 400"), "{head:?}");
    let mut body = String::new();
    reader.read_to_string(&mut body).unwrap();
    assert!(body.contains("upgrade refused"), "{body}");
}

#[test]
fn a_client_killed_mid_tunnel_frees_the_upstream_connection() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (mut reader, _) = open(&proxy, PORTFORWARD, "Upgrade: SPDY/3.1\r\n");
    reader.get_mut().write_all(b"data").unwrap();
    let mut four = [0u8; 4];
    reader.read_exact(&mut four).unwrap();
    // Reset, not a clean close: unread data makes the kernel send RST.
    reader.get_mut().write_all(b"unread").unwrap();
    drop(reader);
    wait_for_no_open_connections(&fake);
}

#[test]
fn a_tunnel_whose_client_pauses_reading_is_not_cut() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--header-timeout", "1s"]);
    let path = "/api/v1/namespaces/default/pods/p/portforward";
    let (mut reader, lines) = open(&proxy, path, "Upgrade: SPDY/3.1\r\n");
    assert!(lines[0].starts_with("HTTP/1.1 101"), "{lines:?}");
    // Far more echoed back than the socket buffers hold, read only after a
    // pause longer than the header timeout: a tunnel's ends may pause at will.
    let data = pattern(8 << 20, 7);
    let writer = {
        let mut conn = reader.get_ref().try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            conn.write_all(&data).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
        })
    };
    thread::sleep(Duration::from_secs(3));
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(
        echoed == data,
        "{} of {} bytes came back",
        echoed.len(),
        data.len()
    );
}

#[test]
fn keepalive_is_set_on_tunnel_sockets() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--keepalive", "7s"]);
    let (_reader, head) = open(&proxy, PORTFORWARD, "Upgrade: SPDY/3.1\r\n");
    assert_eq!(head[0], "HTTP/1.1 101 Switching Protocols");
    let out = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            &format!("( sport = :{} )", proxy.port()),
        ])
        .output()
        .expect("ss (iproute2)");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("timer:(keepalive,"),
        "no keep-alive timer on the client socket: {out}"
    );
    let upstream = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            &format!("( dport = :{} )", fake.port),
        ])
        .output()
        .unwrap();
    let upstream = String::from_utf8_lossy(&upstream.stdout);
    assert!(
        upstream.contains("timer:(keepalive,"),
        "no keep-alive timer upstream: {upstream}"
    );
}
