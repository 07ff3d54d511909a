//! A cluster's `proxy-url`: kproxy reaches the API server through an HTTP
//! CONNECT proxy or a SOCKS5 proxy (small ones here, with their own
//! credentials), with TLS verified end to end through the tunnel.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use support::fake_apiserver::temp_dir;
use support::*;

/// What a test proxy saw: the tunnels asked for.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Pipes both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
}

/// A test proxy on a free port: `serve` runs for each client, on its own thread.
fn proxy_server(serve: fn(TcpStream, &Seen)) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let (client, record) = (client.unwrap(), record.clone());
            thread::spawn(move || serve(client, &record));
        }
    });
    (port, seen)
}

/// An HTTP proxy that answers CONNECT only, and wants `Basic dTpw` (u:pw).
fn http_proxy() -> (u16, Seen) {
    proxy_server(|mut client, record| {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let line = head.lines().next().unwrap_or_default().to_string();
        record.0.lock().unwrap().push(line.clone());
        if !head.contains("Proxy-Authorization: Basic dTpwdw==\r\n") {
            let _ = client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap().to_string();
        let Ok(upstream) = TcpStream::connect(&target) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            return;
        };
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        pipe(client, upstream);
    })
}

/// A SOCKS5 proxy (RFC 1928) that wants username `u`, password `pw` (RFC 1929).
fn socks5_proxy() -> (u16, Seen) {
    proxy_server(|mut c, record| {
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        let mut methods = vec![0u8; buf[1] as usize];
        c.read_exact(&mut methods).unwrap();
        if !methods.contains(&2) {
            let _ = c.write_all(&[5, 0xff]);
            return;
        }
        c.write_all(&[5, 2]).unwrap();
        let mut version_len = [0u8; 2];
        c.read_exact(&mut version_len).unwrap();
        let mut user = vec![0u8; version_len[1] as usize];
        c.read_exact(&mut user).unwrap();
        let mut len = [0u8];
        c.read_exact(&mut len).unwrap();
        let mut password = vec![0u8; len[0] as usize];
        c.read_exact(&mut password).unwrap();
        let ok = user == b"u" && password == b"pw";
        c.write_all(&[1, if ok { 0 } else { 1 }]).unwrap();
        if !ok {
            return;
        }
        let mut request = [0u8; 4];
        c.read_exact(&mut request).unwrap();
        let host = match request[3] {
            1 => {
                let mut ip = [0u8; 4];
                c.read_exact(&mut ip).unwrap();
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                c.read_exact(&mut len).unwrap();
                let mut name = vec![0u8; len[0] as usize];
                c.read_exact(&mut name).unwrap();
                String::from_utf8(name).unwrap()
            }
            _ => return,
        };
        let mut port = [0u8; 2];
        c.read_exact(&mut port).unwrap();
        let target = format!("{host}:{}", u16::from_be_bytes(port));
        record.0.lock().unwrap().push(target.clone());
        let upstream = TcpStream::connect(&target).unwrap();
        c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
        pipe(c, upstream);
    })
}

fn kubeconfig_via(fake: &FakeApiServer, dir: &Path, proxy_url: &str) -> std::path::PathBuf {
    let file = dir.join("config");
    kubectl_config(
        &file,
        &[
            "set-cluster",
            "lab",
            &format!("--server={}", fake.url()),
            &format!("--certificate-authority={}", fake.ca_path().display()),
            &format!("--proxy-url={proxy_url}"),
        ],
    );
    kubectl_config(
        &file,
        &["set-credentials", "me", &format!("--token={TOKEN}")],
    );
    kubectl_config(&file, &["set-context", "lab", "--cluster=lab", "--user=me"]);
    kubectl_config(&file, &["use-context", "lab"]);
    file
}

fn through(fake: &FakeApiServer, proxy_url: &str) -> Kproxy {
    let dir = temp_dir("proxy-url");
    let file = kubeconfig_via(fake, &dir, proxy_url);
    Kproxy::start(
        &["--port", "0", "--kubeconfig", file.to_str().unwrap()],
        &[],
    )
}

#[test]
fn through_an_http_connect_proxy() {
    let fake = FakeApiServer::start();
    let (port, seen) = http_proxy();
    let proxy = through(&fake, &format!("http://u:pw@127.0.0.1:{port}"));
    assert_lab_calls_work(&proxy);
    let target = format!("127.0.0.1:{}", fake.port);
    assert!(
        seen.list().contains(&format!("CONNECT {target} HTTP/1.1")),
        "{:?}",
        seen.list()
    );
    assert!(!proxy.stderr().contains("pw"));

    // Wrong credentials: the proxy's 407, named, as a 502; the next request too.
    let refused = through(&fake, &format!("http://u:wrong@127.0.0.1:{port}"));
    let (_, body, _) = curl(&["-s", &refused.url("/api")]);
    assert!(body.contains("407") && body.contains("proxy"), "{body}");
    assert_eq!(curl_status(&refused.url("/api"), &[]), 502);
}

#[test]
fn through_a_socks5_proxy() {
    let fake = FakeApiServer::start();
    let (port, seen) = socks5_proxy();
    let proxy = through(&fake, &format!("socks5://u:pw@127.0.0.1:{port}"));
    assert_lab_calls_work(&proxy);
    assert!(seen.list().contains(&format!("127.0.0.1:{}", fake.port)));

    let refused = through(&fake, &format!("socks5://u:nope@127.0.0.1:{port}"));
    let (_, body, _) = curl(&["-s", &refused.url("/api")]);
    assert!(body.contains("refused the username and password"), "{body}");
}

#[test]
fn unsupported_proxy_urls_are_one_line_without_the_password() {
    let fake = FakeApiServer::start();
    for (url, needle) in [
        (
            "https://u:secretpw@127.0.0.1:1",
            "https:// proxy is not supported",
        ),
        (
            "ftp://u:secretpw@127.0.0.1:1",
            "must be http, https, or socks5",
        ),
    ] {
        let dir = temp_dir("proxy-url-bad");
        let file = kubeconfig_via(&fake, &dir, url);
        let out = run_kproxy(&["--kubeconfig", file.to_str().unwrap()], &[]);
        assert_refused_to_start(&out, &[needle, r#"cluster "lab""#], &["secretpw"]);
    }
}
