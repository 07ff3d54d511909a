//! A fake Kubernetes API server for tests and the demo: a real rustls TLS server
//! with a CA and server certificate minted at start (rcgen), a bearer-token check,
//! and routes that answer like the API server or misbehave on purpose.
//!
//! It also lays out a service-account directory (`ca.crt`, `token`, `namespace`)
//! as the kubelet does, so kproxy can run in its in-cluster mode against it.
//!
//! A request is authenticated, as kube-apiserver does, by a client certificate
//! its client CA signed (with `Options::require_client_cert`, which also makes
//! the TLS handshake demand one), or by `Authorization: Bearer <a valid token>`,
//! or by `Authorization: Basic ...` for an accepted username and password; else
//! 401 Status. Paths under `/k8s/clusters/c-abc` (a Rancher-style server path)
//! are served as if that prefix were not there.
//!
//! Routes:
//! - `/api`, `/apis`, `/api/v1`: discovery, enough for `kubectl get --raw` and `kubectl get pods`
//! - `/api/v1/namespaces/NS/pods/NAME`: a Pod; `/api/v1/namespaces/NS/pods`: a PodList
//! - `...pods?watch=...` (or `/api/v1/watch/namespaces/NS/pods`): a chunked watch
//!   stream, `events` events `interval_ms` apart
//! - `/bytes?n=N[&chunked=1][&close=1]`: N bytes framed by length, chunks, or close
//! - `/echo` (any method): `{"method":..,"bytes":N,"fnv":H}` of the request body
//! - `/status/CODE`: an empty answer with that status
//! - `/slow?ms=N`: `{}` after N ms (sooner if the client hangs up)
//! - `/readyz`: `ok`, or 500 once a test set `stats.not_ready`
//! - `/misbehave/{drop,garbage,cut,cut-chunked,close-after}`: broken answers
//! - `/misbehave/stray[?now=1]`: `hello`, then (300 ms later, or in the same
//!   write) an answer no one asked for, `SMUGGLED`, on the same connection,
//!   which then goes on serving requests
//! - any path ending in `/exec`, `/attach` or `/portforward`: `reached PATH`

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kproxy::leaves::http::body::{BodyKind, BodyReader};
use kproxy::leaves::http::request::RequestHead;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const TOKEN: &str = "fake-token-0123456789";
/// A server path as Rancher gives one, served as if it were not there.
pub const RANCHER_PATH: &str = "/k8s/clusters/c-abc";

/// The CN of a DER certificate: the value after the commonName OID (2.5.4.3),
/// found by its encoding rather than a full parse (test code, one issuer).
fn common_name(cert: &CertificateDer) -> Option<String> {
    let der = cert.as_ref();
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    // The subject comes after the issuer: the last CN in the certificate.
    let at = der.windows(oid.len()).rposition(|w| w == oid)? + oid.len();
    let len = *der.get(at + 1)? as usize;
    String::from_utf8(der.get(at + 2..at + 2 + len)?.to_vec()).ok()
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The verified client certificate's common name, if one was presented.
    pub client_cn: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Default)]
pub struct Stats {
    pub handshakes: AtomicUsize,
    pub connections_open: AtomicUsize,
    /// The most connections open at once.
    pub connections_peak: AtomicUsize,
    pub requests: Mutex<Vec<Recorded>>,
    /// Whether `/readyz` says ok.
    pub not_ready: std::sync::atomic::AtomicBool,
    /// How many gated watch events the test has released (see `release_event`).
    released: Mutex<usize>,
    release: Condvar,
}

/// The kind of key the server certificate uses.
#[derive(Clone, Copy)]
pub enum KeyKind {
    EcdsaP256,
    /// Generated with `openssl genpkey`: large handshakes exercise thread stacks.
    Rsa4096,
}

pub struct Options {
    pub key: KeyKind,
    /// Subject alternative names of the server certificate (DNS names or IPs).
    pub sans: Vec<String>,
    /// Where to listen: `127.0.0.1:0` unless a test needs `[::1]:0`.
    pub bind: &'static str,
    /// Speak only TLS 1.2, as older API servers may.
    pub tls12_only: bool,
    /// Demand a client certificate signed by the fake's client CA (see
    /// `FakeApiServer::mint_client_cert`) in every handshake.
    pub require_client_cert: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key: KeyKind::EcdsaP256,
            sans: vec!["127.0.0.1".into(), "::1".into(), "localhost".into()],
            bind: "127.0.0.1:0",
            tls12_only: false,
            require_client_cert: false,
        }
    }
}

pub struct FakeApiServer {
    pub port: u16,
    /// A service-account directory: `ca.crt`, `token`, `namespace`.
    pub sa_dir: PathBuf,
    pub stats: Arc<Stats>,
    tokens: Arc<Mutex<Vec<String>>>,
    listener: TcpListener,
    /// What new connections are served with; swapped by `use_ca`.
    tls: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    options: Options,
    client_ca: Arc<ClientCa>,
}

/// The CA that signs client certificates, minted for each fake.
pub struct ClientCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClientCa {
    fn mint() -> ClientCa {
        let key = KeyPair::generate().expect("client CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "fake-apiserver client CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ClientCa {
            cert: params.self_signed(&key).expect("client CA cert"),
            key,
        }
    }
}

/// A CA and a server certificate it signed, ready to be served (see `use_ca`).
pub struct MintedCa {
    pub pem: String,
    config: Arc<rustls::ServerConfig>,
}

fn server_config(options: &Options, client_ca: &ClientCa) -> MintedCa {
    let (pem, chain, key) = mint(options);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions");
    let builder = match options.require_client_cert {
        false => builder.with_no_client_auth(),
        true => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca.cert.der().clone()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).expect("server config");
    MintedCa {
        pem,
        config: Arc::new(config),
    }
}

/// Mints a CA and a server certificate it signs. Returns (CA PEM, chain, key).
pub fn mint(options: &Options) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fake-apiserver CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

    let key = match options.key {
        KeyKind::EcdsaP256 => KeyPair::generate().expect("server key"),
        KeyKind::Rsa4096 => {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:4096",
                ])
                .output()
                .expect("openssl genpkey (install openssl)");
            let pem = String::from_utf8(out.stdout).expect("PEM");
            KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("RSA key")
        }
    };
    let mut params = CertificateParams::new(options.sans.clone()).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");
    let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key DER");
    (
        ca_cert.pem(),
        vec![cert.der().clone(), ca_cert.der().clone()],
        key_der,
    )
}

impl FakeApiServer {
    pub fn start() -> FakeApiServer {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> FakeApiServer {
        let client_ca = Arc::new(ClientCa::mint());
        let MintedCa {
            pem: ca_pem,
            config,
        } = server_config(&options, &client_ca);
        let listener = TcpListener::bind(options.bind).expect("bind");
        let port = listener.local_addr().expect("addr").port();

        let sa_dir = temp_dir("sa");
        std::fs::write(sa_dir.join("ca.crt"), &ca_pem).expect("write ca.crt");
        std::fs::write(sa_dir.join("token"), TOKEN).expect("write token");
        std::fs::write(sa_dir.join("namespace"), "default").expect("write namespace");

        let stats = Arc::new(Stats::default());
        let tokens = Arc::new(Mutex::new(vec![TOKEN.to_string()]));
        let tls = Arc::new(Mutex::new(config));
        let server = FakeApiServer {
            port,
            sa_dir,
            stats: stats.clone(),
            tokens: tokens.clone(),
            listener: listener.try_clone().expect("clone"),
            tls: tls.clone(),
            options,
            client_ca,
        };
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let config = tls.lock().unwrap().clone();
                let (stats, tokens) = (stats.clone(), tokens.clone());
                thread::spawn(move || serve_connection(stream, config, &stats, &tokens));
            }
        });
        server
    }

    /// A client certificate for `common_name`, signed by this fake's client CA:
    /// (certificate PEM, PKCS#8 key PEM). `algorithm` is rcgen's (ECDSA P-256 or
    /// Ed25519); RSA keys come from `openssl`, see the kubeconfig tests.
    pub fn mint_client_cert(&self, common_name: &str, key: &KeyPair) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params
            .signed_by(key, &self.client_ca.cert, &self.client_ca.key)
            .expect("client cert")
            .pem()
    }

    /// Accepts `Authorization: Basic` for this username and password.
    pub fn accept_basic(&self, username: &str, password: &str) {
        let encoded = kproxy::leaves::base64::encode(format!("{username}:{password}").as_bytes());
        self.tokens.lock().unwrap().push(format!("Basic {encoded}"));
    }

    pub fn ca_path(&self) -> PathBuf {
        self.sa_dir.join("ca.crt")
    }

    pub fn token_path(&self) -> PathBuf {
        self.sa_dir.join("token")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Mints a new CA and server certificate, not served yet: a CA rotation
    /// distributes the new CA first.
    pub fn mint_ca(&self) -> MintedCa {
        server_config(&self.options, &self.client_ca)
    }

    /// New connections are served with `ca`'s certificate from now on.
    pub fn use_ca(&self, ca: &MintedCa) {
        *self.tls.lock().unwrap() = ca.config.clone();
    }

    /// Adds a token the server accepts.
    pub fn accept_token(&self, token: &str) {
        self.tokens.lock().unwrap().push(token.to_string());
    }

    /// Stops accepting a token: requests with it get 401 from now on.
    pub fn retire_token(&self, token: &str) {
        self.tokens.lock().unwrap().retain(|t| t != token);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.stats.requests.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the fake API server received no request")
    }

    pub fn handshakes(&self) -> usize {
        self.stats.handshakes.load(Ordering::SeqCst)
    }

    /// Lets one more event of a `gated` watch be sent: a test can then show an
    /// event arrived while the next one did not exist yet.
    pub fn release_event(&self) {
        *self.stats.released.lock().unwrap() += 1;
        self.stats.release.notify_all();
    }

    pub fn open_connections(&self) -> usize {
        self.stats.connections_open.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn peak_connections(&self) -> usize {
        self.stats.connections_peak.load(Ordering::SeqCst)
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kproxy-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

struct OpenGuard<'a>(&'a AtomicUsize);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    stats: &Stats,
    tokens: &Mutex<Vec<String>>,
) {
    let open = stats.connections_open.fetch_add(1, Ordering::SeqCst) + 1;
    stats.connections_peak.fetch_max(open, Ordering::SeqCst);
    let _open = OpenGuard(&stats.connections_open);
    let _ = stream.set_nodelay(true);
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return;
        }
    }
    stats.handshakes.fetch_add(1, Ordering::SeqCst);
    let client_cn = tls
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| common_name(leaf));
    let mut reader = BufReader::new(tls);
    let mut buf = Vec::new();
    loop {
        let head = match RequestHead::read(&mut reader, &mut buf) {
            Ok(Some(len)) => RequestHead::parse(&buf[..len]),
            _ => return,
        };
        let Ok(head) = head else { return };
        let recorded = Recorded {
            method: head.method.to_string(),
            target: head.target.to_string(),
            headers: head
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            client_cn: client_cn.clone(),
        };
        stats.requests.lock().unwrap().push(recorded.clone());
        let Ok(kind) = head.body_kind() else { return };
        let (bytes, fnv) = match read_body(&mut reader, kind) {
            Ok(summary) => summary,
            Err(_) => return,
        };
        // kube-apiserver tries the client certificate first, then the header.
        let authorized = client_cn.is_some()
            || recorded.header("Authorization").is_some_and(|v| {
                let tokens = tokens.lock().unwrap();
                match v.strip_prefix("Bearer ") {
                    Some(t) => tokens.iter().any(|ok| ok == t),
                    None => v.starts_with("Basic ") && tokens.iter().any(|ok| ok == v),
                }
            });
        let upgrade = recorded.header("Upgrade").map(str::to_string);
        let wants_upgrade = recorded
            .header("Connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"));
        if let (true, true, Some(protocol)) = (authorized, wants_upgrade, upgrade) {
            upgraded(&mut reader, &recorded, &protocol);
            return;
        }
        let out = reader.get_mut();
        let keep = if authorized {
            route(out, &recorded, bytes, fnv, stats)
        } else {
            reply(
                out,
                401,
                "application/json",
                &status_json(401, "Unauthorized", "Unauthorized"),
            )
        };
        if keep.is_err() || recorded.header("Connection") == Some("close") {
            return;
        }
        if let Ok(Err(Close)) = keep {
            return;
        }
    }
}

/// An upgrade request: exec, attach and portforward paths (and `/upgrade/echo`)
/// answer 101 and echo every byte back until the client half-closes, then
/// close; `/upgrade/hello-and-close` says hello and closes first;
/// `/upgrade/refuse` answers 400 as an API server refusing the upgrade.
fn upgraded(reader: &mut BufReader<Tls>, req: &Recorded, protocol: &str) {
    let path = req
        .target
        .split_once('?')
        .map_or(req.target.as_str(), |(p, _)| p);
    let echo =
        path.ends_with("/exec") || path.ends_with("/attach") || path.ends_with("/portforward");
    if path == "/upgrade/refuse" || !(echo || path.starts_with("/upgrade/")) {
        let _ = reply(
            reader.get_mut(),
            400,
            "application/json",
            &status_json(400, "BadRequest", "upgrade refused"),
        );
        return;
    }
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n"
    );
    if let Some(p) = req.header("Sec-WebSocket-Protocol") {
        head.push_str(&format!(
            "Sec-WebSocket-Protocol: {p}\r\nSec-WebSocket-Accept: not-checked-here\r\n"
        ));
    }
    if let Some(p) = req.header("X-Stream-Protocol-Version") {
        head.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    head.push_str("\r\n");
    if reader.get_mut().write_all(head.as_bytes()).is_err() {
        return;
    }
    if path == "/upgrade/hello-and-close" {
        let _ = reader.get_mut().write_all(b"hello");
        reader.get_mut().conn.send_close_notify();
        let _ = reader.get_mut().flush();
        return;
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match std::io::Read::read(reader, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if reader.get_mut().write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    // The client half-closed: everything is echoed; end our side too.
    reader.get_mut().conn.send_close_notify();
    let _ = reader.get_mut().flush();
}

/// Returned by a route that closed the connection on purpose.
struct Close;

fn read_body<R: BufRead>(reader: &mut R, kind: BodyKind) -> io::Result<(u64, u64)> {
    let mut body = BodyReader::new(reader, kind);
    let (mut total, mut fnv) = (0u64, 0xcbf29ce484222325u64);
    loop {
        let data = body.fill()?;
        if data.is_empty() {
            return Ok((total, fnv));
        }
        for &b in data {
            fnv = (fnv ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let len = data.len();
        total += len as u64;
        body.consume(len);
    }
}

/// FNV-1a of `data`, as the `/echo` route reports it.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn query(target: &str) -> HashMap<String, String> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn route(
    out: &mut Tls,
    req: &Recorded,
    bytes: u64,
    fnv: u64,
    stats: &Stats,
) -> io::Result<Result<(), Close>> {
    let path = req
        .target
        .split_once('?')
        .map_or(req.target.as_str(), |(p, _)| p);
    let path = path.strip_prefix(RANCHER_PATH).unwrap_or(path);
    let q = query(&req.target);
    let head_only = req.method == "HEAD";
    let json = |out: &mut Tls, body: &str| -> io::Result<Result<(), Close>> {
        if head_only {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            return Ok(Ok(()));
        }
        reply(out, 200, "application/json", body)
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api"] => json(out, API_VERSIONS),
        ["readyz"] if stats.not_ready.load(Ordering::SeqCst) => reply(
            out,
            500,
            "text/plain",
            "[-]etcd failed: reason withheld\nreadyz check failed",
        ),
        ["readyz"] => reply(out, 200, "text/plain", "ok"),
        ["apis"] => json(out, API_GROUPS),
        ["apis", "rbac.authorization.k8s.io", "v1"] => json(out, RBAC_RESOURCES),
        ["api", "v1"] => json(out, API_RESOURCES),
        ["api", "v1", "namespaces", ns, "pods"] if q.contains_key("watch") => {
            watch(out, ns, &q, stats)
        }
        ["api", "v1", "watch", "namespaces", ns, "pods"] => watch(out, ns, &q, stats),
        ["api", "v1", "namespaces", ns, "pods"] => {
            let n = q.get("pods").and_then(|n| n.parse().ok()).unwrap_or(2);
            json(out, &pod_list(ns, n))
        }
        ["api", "v1", "namespaces", ns, "pods", name] => json(out, &pod(ns, name, 1)),
        [.., "exec" | "attach" | "portforward"] => {
            reply(out, 200, "text/plain", &format!("reached {path}"))
        }
        ["bytes"] => send_bytes(out, &q),
        ["echo"] => json(
            out,
            &format!(
                r#"{{"method":"{}","bytes":{bytes},"fnv":{fnv}}}"#,
                req.method
            ),
        ),
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            let head = format!("HTTP/1.1 {code} Whatever\r\nX-Status: {code}\r\n\r\n");
            out.write_all(head.as_bytes())?;
            Ok(Ok(()))
        }
        ["misbehave", "stray"] => {
            const STRAY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED";
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
            if q.contains_key("now") {
                answer.extend_from_slice(STRAY);
                out.write_all(&answer)?;
            } else {
                out.write_all(&answer)?;
                thread::sleep(Duration::from_millis(300));
                out.write_all(STRAY)?;
            }
            Ok(Ok(()))
        }
        ["misbehave", how] => misbehave(out, how),
        ["slow"] => {
            let ms = q.get("ms").and_then(|n| n.parse().ok()).unwrap_or(1000);
            if peer_closed(out, Duration::from_millis(ms)) {
                return Ok(Err(Close));
            }
            json(out, "{}")
        }
        _ => reply(
            out,
            404,
            "application/json",
            &status_json(404, "NotFound", "not found"),
        ),
    }
}

fn reply(
    out: &mut Tls,
    code: u16,
    content_type: &str,
    body: &str,
) -> io::Result<Result<(), Close>> {
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Audit-Id: 00000000-fake\r\n\r\n",
        if code == 200 { "OK" } else { "Error" },
        body.len()
    );
    let mut whole = head.into_bytes();
    whole.extend_from_slice(body.as_bytes());
    out.write_all(&whole)?;
    Ok(Ok(()))
}

fn chunk(out: &mut Tls, data: &[u8]) -> io::Result<()> {
    let mut piece = format!("{:x}\r\n", data.len()).into_bytes();
    piece.extend_from_slice(data);
    piece.extend_from_slice(b"\r\n");
    out.write_all(&piece)
}

/// A watch: events one chunk each, `interval_ms` apart (or, with `gated`, each
/// after the test's next `release_event`), then the end (or a cut, with `cut`).
/// Each event carries the time it was sent, in microseconds since the epoch.
fn watch(
    out: &mut Tls,
    ns: &str,
    q: &HashMap<String, String>,
    stats: &Stats,
) -> io::Result<Result<(), Close>> {
    let events: usize = q.get("events").and_then(|n| n.parse().ok()).unwrap_or(3);
    let interval = Duration::from_millis(
        q.get("interval_ms")
            .and_then(|n| n.parse().ok())
            .unwrap_or(200),
    );
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    let gated = q.contains_key("gated");
    let mut released = *stats.released.lock().unwrap();
    for i in 0..events {
        // Between events, notice a client (kproxy) that hangs up, as the API server
        // would: tests count open connections to see that nothing is left behind.
        if gated && i > 0 {
            loop {
                let now = stats.released.lock().unwrap();
                let (now, _) = stats
                    .release
                    .wait_timeout(now, Duration::from_millis(50))
                    .unwrap();
                if *now > released {
                    released = *now;
                    break;
                }
                drop(now);
                if peer_closed(out, Duration::from_millis(1)) {
                    return Ok(Err(Close));
                }
            }
        } else if i > 0 && peer_closed(out, interval) {
            return Ok(Err(Close));
        }
        let sent = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        let name = format!("watched-{i}");
        let event = format!(
            "{{\"type\":\"ADDED\",\"sentMicros\":{sent},\"object\":{}}}\n",
            pod(ns, &name, 100 + i)
        );
        chunk(out, event.as_bytes())?;
    }
    if q.contains_key("cut") {
        return Ok(Err(Close));
    }
    out.write_all(b"0\r\n\r\n")?;
    Ok(Ok(()))
}

/// Waits up to `wait` for the peer to close the connection; `true` if it did.
fn peer_closed(out: &mut Tls, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = out.sock.set_read_timeout(Some(left));
        let result = std::io::Read::read(out, &mut byte);
        let _ = out.sock.set_read_timeout(None);
        match result {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}

fn send_bytes(out: &mut Tls, q: &HashMap<String, String>) -> io::Result<Result<(), Close>> {
    let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let piece: Vec<u8> = (0..16 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let chunked = q.contains_key("chunked");
    let close = q.contains_key("close");
    let framing = match (chunked, close) {
        (true, _) => "Transfer-Encoding: chunked\r\n".to_string(),
        (false, true) => "Connection: close\r\n".to_string(),
        _ => format!("Content-Length: {n}\r\n"),
    };
    out.write_all(
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{framing}\r\n")
            .as_bytes(),
    )?;
    let mut left = n;
    while left > 0 {
        let len = left.min(piece.len());
        if chunked {
            chunk(out, &piece[..len])?;
        } else {
            out.write_all(&piece[..len])?;
        }
        left -= len;
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    if close {
        out.conn.send_close_notify();
        let _ = out.flush();
        return Ok(Err(Close));
    }
    Ok(Ok(()))
}

fn misbehave(out: &mut Tls, how: &str) -> io::Result<Result<(), Close>> {
    match how {
        "drop" => {}
        "garbage" => out.write_all(b"this is not HTTP\r\n\r\n")?,
        "cut" => out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")?,
        "smuggle" => out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )?,
        "bare-lf" => out.write_all(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")?,
        "folded" => out.write_all(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 2\r\n\r\nok")?,
        "cut-chunked" => {
            out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            chunk(out, b"{\"type\":\"ADDED\"}\n")?;
        }
        // A complete answer, then the connection closes without saying so: the
        // next request on it (from a pool) finds it dead.
        "close-after" => {
            let _ = reply(out, 200, "application/json", "{}")?;
            let _ = out.sock.shutdown(std::net::Shutdown::Both);
        }
        _ => return reply(out, 404, "text/plain", "unknown misbehaviour"),
    }
    Ok(Err(Close))
}

pub fn status_json(code: u16, reason: &str, message: &str) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{message}","reason":"{reason}","code":{code}}}"#
    )
}

pub fn pod(ns: &str, name: &str, rv: usize) -> String {
    format!(
        r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"00000000-0000-0000-0000-{rv:012}","resourceVersion":"{rv}","creationTimestamp":"2026-11-28T00:00:00Z"}},"spec":{{"containers":[{{"name":"main","image":"curl"}}]}},"status":{{"phase":"Running"}}}}"#
    )
}

fn pod_list(ns: &str, n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| pod(ns, &format!("pod-{i}"), 10 + i))
        .collect();
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"99"}},"items":[{}]}}"#,
        items.join(",")
    )
}

const API_VERSIONS: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}"#;

const API_RESOURCES: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","get","list","watch"],"shortNames":["po"]},{"name":"serviceaccounts","singularName":"serviceaccount","namespaced":true,"kind":"ServiceAccount","verbs":["create","get","list"],"shortNames":["sa"]}]}"#;

const API_GROUPS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"rbac.authorization.k8s.io","versions":[{"groupVersion":"rbac.authorization.k8s.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"rbac.authorization.k8s.io/v1","version":"v1"}}]}"#;

const RBAC_RESOURCES: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"rbac.authorization.k8s.io/v1","resources":[{"name":"roles","singularName":"role","namespaced":true,"kind":"Role","verbs":["create","get","list"]},{"name":"rolebindings","singularName":"rolebinding","namespaced":true,"kind":"RoleBinding","verbs":["create","get","list"]}]}"#;

/// Writes `text` to `path` the way the kubelet updates a projected volume: into a
/// new timestamped directory, then an atomic rename of the `..data` symlink.
pub fn kubelet_write(dir: &Path, name: &str, text: &str) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let stamp = format!("..{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let new_dir = dir.join(&stamp);
    std::fs::create_dir_all(&new_dir).unwrap();
    std::fs::write(new_dir.join(name), text).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join(name);
    if std::fs::symlink_metadata(&link)
        .map(|m| !m.file_type().is_symlink())
        .unwrap_or(true)
    {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
    }
}
