//! Test support: the fake API server, the real kproxy binary as a child
//! process, and small clients (raw TCP, curl, kubectl).

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

pub mod fake_apiserver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports, reason = "not every test binary names the token")]
pub use fake_apiserver::{FakeApiServer, TOKEN};

/// How long a test waits for something that should be near-instant before it
/// calls it a failure. Generous: CI machines are shared and slow.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `kproxy` binary. Killed when dropped.
pub struct Kproxy {
    pub child: Child,
    /// `127.0.0.1:PORT`, or the socket path, from the `Starting to serve on` line.
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

pub fn kproxy_command() -> Command {
    kproxy_command_at(Path::new(env!("CARGO_BIN_EXE_kproxy")))
}

/// A command for the kproxy binary at `bin` (the static release build, say).
pub fn kproxy_command_at(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    // Nothing from the machine running the tests: no in-cluster environment,
    // no kubeconfig (KUBECONFIG, or ~/.kube/config under a HOME that does not exist).
    cmd.env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KUBECONFIG")
        .env("HOME", std::env::temp_dir().join("kproxy-test-no-home"));
    cmd
}

/// The static release binary that ships, built by scripts/build-static.sh if
/// needed; `KPROXY_BIN` names another (an older build, to compare).
pub fn static_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KPROXY_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg("scripts/build-static.sh")
        .current_dir(root)
        .output()
        .expect("run scripts/build-static.sh");
    assert!(
        out.status.success(),
        "scripts/build-static.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root.join("target/x86_64-unknown-linux-musl/release/kproxy")
}

/// Runs kproxy to completion (for flags that make it exit at once).
pub fn run_kproxy(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = kproxy_command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kproxy");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kproxy {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

impl Kproxy {
    /// Starts kproxy with `args` and `env`, and waits for its `Starting to serve on` line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Kproxy {
        let mut cmd = kproxy_command();
        cmd.args(args).envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// kproxy in its in-cluster mode against `fake`, on a free port, plus `args`.
    pub fn in_cluster(fake: &FakeApiServer, args: &[&str]) -> Kproxy {
        Self::in_cluster_at(fake, fake.port, args)
    }

    /// The binary at `bin`, in-cluster against `fake`, on a free port, plus `args`.
    pub fn in_cluster_binary(bin: &Path, fake: &FakeApiServer, args: &[&str]) -> Kproxy {
        let sa = fake.sa_dir.to_str().unwrap();
        let mut cmd = kproxy_command_at(bin);
        cmd.args(["--port", "0", "--serviceaccount-dir", sa])
            .args(args)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", fake.port.to_string());
        Self::spawn(cmd)
    }

    /// kproxy with `fake`'s service account, but `KUBERNETES_SERVICE_PORT` set to
    /// `port` (a closed or silent one, to test failures).
    pub fn in_cluster_at(fake: &FakeApiServer, port: u16, args: &[&str]) -> Kproxy {
        let sa = fake.sa_dir.to_str().unwrap();
        let port = port.to_string();
        let mut all = vec!["--port", "0", "--serviceaccount-dir", sa];
        all.extend_from_slice(args);
        Self::start(
            &all,
            &[
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", &port),
            ],
        )
    }

    /// kproxy in-cluster against `fake`, listening on the unix socket `sock`.
    pub fn in_cluster_unix(fake: &FakeApiServer, sock: &std::path::Path) -> Kproxy {
        let sa = fake.sa_dir.to_str().unwrap();
        let port = fake.port.to_string();
        Self::start(
            &[
                "--unix-socket",
                sock.to_str().unwrap(),
                "--serviceaccount-dir",
                sa,
            ],
            &[
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", &port),
            ],
        )
    }

    /// kproxy with kubectl's explicit flags for `fake` (`--server`,
    /// `--certificate-authority`), on a free port, plus `args`.
    pub fn explicit(fake: &FakeApiServer, args: &[&str]) -> Kproxy {
        let (url, ca) = (fake.url(), fake.ca_path());
        let mut all = vec![
            "--server",
            &url,
            "--certificate-authority",
            ca.to_str().unwrap(),
            "-p",
            "0",
        ];
        all.extend_from_slice(args);
        Self::start(&all, &[])
    }

    pub fn spawn(mut cmd: Command) -> Kproxy {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kproxy");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                thread::sleep(Duration::from_millis(100));
                panic!("kproxy did not start; stderr: {}", stderr.lock().unwrap());
            }
        };
        let addr = line
            .strip_prefix("Starting to serve on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Kproxy {
            child,
            addr,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Kproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with `args`; returns (exit code, stdout, stderr).
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is installed (apt-get install curl)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `command` is on PATH, for a test that cannot run without it.
///
/// Under `scripts/test.sh` (which sets `KPROXY_REQUIRE_TOOLS`) and under
/// `CI=true`, a missing tool fails the test, naming the tool and the Debian
/// package: there, no test may pass by skipping. Under a plain `cargo test` the
/// test says what it skips and how to run it, and the caller returns.
pub fn have_tool(command: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|out| out.status.success());
    found || missing(command, &format!("Debian package {package}"))
}

/// Like [`have_tool`], for the SPDX project's validator, which scripts/test.sh
/// installs from PyPI into target/tools/python. Returns the Python to run it with.
pub fn spdx_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/python/bin/python");
    let python = match venv.exists() {
        true => venv,
        false => PathBuf::from("python3"),
    };
    let importable = Command::new(&python)
        .args(["-c", "import spdx_tools"])
        .output()
        .is_ok_and(|out| out.status.success());
    match importable || missing("spdx_tools", "PyPI package spdx-tools") {
        true => Some(python),
        false => None,
    }
}

/// A tool is missing: a failure where tools are required, else a skip that says so.
fn missing(tool: &str, from: &str) -> bool {
    let required = std::env::var_os("KPROXY_REQUIRE_TOOLS").is_some()
        || std::env::var("CI").is_ok_and(|ci| ci == "true");
    assert!(
        !required,
        "{tool} is missing ({from}): scripts/test.sh installs it; under scripts/test.sh \
         and CI=true a test never skips"
    );
    eprintln!(
        "SKIPPED: {tool} is missing ({from}); scripts/test.sh installs it and runs this test"
    );
    false
}

/// The lab's two calls from a Pod's main container, through `proxy`: the API's
/// versions and the lab's own Pod.
pub fn assert_lab_calls_work(proxy: &Kproxy) {
    let (code, body, err) = curl(&[&proxy.url("/api")]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("APIVersions"), "{body}");
    let pod = "/api/v1/namespaces/default/pods/apiserver-via-sidecar";
    let (_, body, _) = curl(&[&proxy.url(pod)]);
    assert!(body.contains(r#""name":"apiserver-via-sidecar""#), "{body}");
}

/// The status code curl saw for a GET of `url` (with extra curl args).
pub fn curl_status(url: &str, extra: &[&str]) -> u16 {
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}", url];
    args.extend_from_slice(extra);
    let (_, out, _) = curl(&args);
    out.trim().parse().unwrap_or(0)
}

/// Runs kubectl against the proxy; returns (exit code, stdout, stderr).
pub fn kubectl(proxy: &Kproxy, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("kubectl")
        .args(["--server", &proxy.url(""), "--request-timeout", "30s"])
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("kubectl is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A raw TCP client: writes `request` and reads until the server closes or
/// `PATIENCE` passes.
pub fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to kproxy");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `request` to kproxy on a new connection; the answer is to be read from
/// the returned reader.
pub fn send(proxy: &Kproxy, request: &str) -> BufReader<TcpStream> {
    let mut conn = TcpStream::connect(&proxy.addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    BufReader::new(conn)
}

/// Reads a response head up to the blank line; returns its status line.
pub fn skip_head(reader: &mut impl BufRead) -> String {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    status
}

/// One response read from a keep-alive connection: (status, headers, body).
/// Understands Content-Length and chunked bodies.
pub fn read_response(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').expect("header");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("Content-Length") {
        body.resize(len.parse().unwrap(), 0);
        reader.read_exact(&mut body).expect("body");
    } else if get("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            let mut data = vec![0; size + 2];
            reader.read_exact(&mut data).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&data[..size]);
        }
    }
    (code, headers, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `--metrics-address` kproxy bound, from its `serving metrics on` line
/// (logged at `-v 1`, in either log format).
pub fn metrics_address(proxy: &Kproxy) -> String {
    wait_for(|| {
        proxy.stderr().lines().find_map(|line| {
            let (_, url) = line.split_once("serving metrics on http://")?;
            url.split_once("/metrics").map(|(addr, _)| addr.to_string())
        })
    })
}

/// Polls `found` until it gives a value, for up to [`PATIENCE`].
pub fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `done` until it holds, for up to [`PATIENCE`]; `what` says what was
/// awaited when it never comes. The one way tests wait for something to happen.
pub fn wait_until(what: impl std::fmt::Display, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that kproxy refused to start as it should: exit status 1, nothing
/// on stdout, one line on stderr that holds every `needle` and no `secret`.
/// Returns that line.
pub fn assert_refused_to_start(out: &Output, needles: &[&str], secrets: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "printed on stdout: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    for secret in secrets {
        assert!(!stderr.contains(secret), "{stderr:?} shows a secret");
    }
    stderr
}

/// One scrape's body; the answer must be a 200 in the exposition format.
pub fn scrape(addr: &str) -> String {
    let answer = raw(addr, b"GET /metrics HTTP/1.1\r\nHost: pod-ip\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body.to_string()
}

/// `series -> value`, for each sample line (`name{labels} value`).
pub fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// One series' value in a scrape.
pub fn value(samples: &std::collections::HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
}

/// Checks that `body` is kproxy's own refusal: a Kubernetes `Status` with
/// this `code`, whose one cause is `reason` and whose message ends with it.
/// Returns the message.
pub fn assert_refusal(body: &[u8], code: u16, reason: &str) -> String {
    let status: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], code, "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], reason, "{status}");
    let message = status["message"].as_str().unwrap().to_string();
    assert!(message.ends_with(&format!("({reason})")), "{message}");
    message
}

/// `kubectl config ARGS --kubeconfig FILE`, which must succeed: kubeconfigs in
/// tests are written by kubectl itself, so their format is the real one.
pub fn kubectl_config(file: &Path, args: &[&str]) {
    let out = Command::new("kubectl")
        .arg("config")
        .args(args)
        .arg("--kubeconfig")
        .arg(file)
        .output()
        .expect("run kubectl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "kubectl config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
