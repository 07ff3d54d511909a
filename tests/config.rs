//! Every way to configure kproxy, and every way to get it wrong: each mistake is
//! one line on stderr that names the flag or file, and a non-zero exit.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::os::unix::fs::PermissionsExt;

use support::fake_apiserver::{temp_dir, KeyKind, Options};
use support::*;

fn fails_with(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    assert_refused_to_start(&run_kproxy(args, env), needles, &[])
}

fn in_cluster_env(fake: &FakeApiServer) -> Vec<(&'static str, String)> {
    vec![
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1".into()),
        ("KUBERNETES_SERVICE_PORT", fake.port.to_string()),
    ]
}

#[test]
fn without_cluster_env_or_server_it_says_what_to_set() {
    fails_with(&[], &[], &["KUBERNETES_SERVICE_HOST", "--server"]);
    fails_with(
        &[],
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")],
        &["KUBERNETES_SERVICE_PORT"],
    );
}

#[test]
fn unknown_flags_and_bad_values_name_the_flag() {
    fails_with(&["--bogus"], &[], &["--bogus"]);
    fails_with(&["--port", "http"], &[], &["--port"]);
    fails_with(&["--port", "70000"], &[], &["--port"]);
    fails_with(&["--keepalive", "soon"], &[], &["--keepalive"]);
    fails_with(&["--disable-filter=maybe"], &[], &["--disable-filter"]);
    fails_with(&["extra"], &[], &["extra"]);
    fails_with(&["--address", "not an ip"], &[], &["--address"]);
    fails_with(&["--api-prefix", "k8s"], &[], &["--api-prefix"]);
    fails_with(&["--server", "10.0.0.1:443"], &[], &["--server"]);
    fails_with(
        &["--unix-socket", "/tmp/x.sock", "--port", "9000"],
        &[],
        &["--unix-socket", "--port"],
    );
}

#[test]
fn a_bad_regex_names_its_flag() {
    let fake = FakeApiServer::start();
    let env = in_cluster_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sa = fake.sa_dir.to_str().unwrap();
    for flag in [
        "--accept-hosts",
        "--accept-paths",
        "--reject-paths",
        "--reject-methods",
    ] {
        fails_with(
            &["--serviceaccount-dir", sa, flag, "^(unclosed"],
            &env,
            &[flag, "(unclosed"],
        );
    }
}

#[test]
fn bad_credential_files_are_named_with_the_problem() {
    let fake = FakeApiServer::start();
    let env = in_cluster_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = temp_dir("badfiles");
    let d = dir.to_str().unwrap();

    // No token in the service-account directory.
    std::fs::copy(fake.ca_path(), dir.join("ca.crt")).unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/token"), "cannot read"],
    );
    // Empty token.
    std::fs::write(dir.join("token"), "\n").unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/token"), "empty"],
    );
    std::fs::write(dir.join("token"), "abc").unwrap();
    // No CA.
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/ca.crt"), "cannot read"],
    );
    // A CA that is not PEM.
    std::fs::write(dir.join("ca.crt"), "hello").unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/ca.crt"), "no PEM certificate"],
    );
    // PEM armour around garbage.
    std::fs::write(
        dir.join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/ca.crt"), "not a usable certificate"],
    );
    // A directory where the CA should be.
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    std::fs::create_dir(dir.join("ca.crt")).unwrap();
    fails_with(
        &["--serviceaccount-dir", d],
        &env,
        &[&format!("{d}/ca.crt")],
    );
    // Explicit flags name their files too.
    fails_with(
        &[
            "--server",
            &fake.url(),
            "--certificate-authority",
            "/nonexistent/ca.pem",
        ],
        &[],
        &["/nonexistent/ca.pem"],
    );
    fails_with(
        &[
            "--server",
            &fake.url(),
            "--token-file",
            "/nonexistent/token",
        ],
        &[],
        &["/nonexistent/token"],
    );
}

#[test]
fn the_token_is_never_printed() {
    let secret = "s3cr3t-token-value";
    let fake = FakeApiServer::start();
    fake.accept_token(secret);
    // Not in a start-up error...
    let err = fails_with(
        &[
            "--token",
            secret,
            "--server",
            &fake.url(),
            "--accept-paths",
            "(",
        ],
        &[],
        &["--accept-paths"],
    );
    assert!(!err.contains(secret));
    // ...nor in --help...
    let help = run_kproxy(&["--token", secret, "--help"], &[]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains(secret));
    // ...nor in request logs at the highest verbosity, nor in upstream errors.
    let proxy = Kproxy::explicit(&fake, &["--token", secret, "-v", "10"]);
    assert_eq!(curl_status(&proxy.url("/api?token=query"), &[]), 200);
    assert_eq!(curl_status(&proxy.url("/misbehave/garbage"), &[]), 502);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = proxy.stderr();
    // Query strings are logged from -v 6 (tests/metrics.rs checks below that), headers never.
    assert!(logs.contains("GET /api?token=query 200"), "{logs}");
    assert!(!logs.contains(secret), "{logs}");
}

#[test]
fn help_and_version() {
    let out = run_kproxy(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--address",
        "--accept-hosts",
        "--accept-paths",
        "--reject-paths",
        "--reject-methods",
        "--api-prefix",
        "--disable-filter",
        "--unix-socket",
        "--keepalive",
        "--v",
        "--server",
        "--certificate-authority",
        "--token",
        "--token-file",
        "--tls-server-name",
        "--insecure-skip-tls-verify",
        "--serviceaccount-dir",
        "--grace-period",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = run_kproxy(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let version = String::from_utf8_lossy(&out.stdout);
    // `kproxy 0.1.0 (commit 0123abc..., x86_64-unknown-linux-gnu)`: set at build time.
    let expected = format!("kproxy {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    assert!(version.trim_end().ends_with("-linux-gnu)"), "{version}");
}

#[test]
fn the_seed_scripts_exact_kubectl_line_works() {
    let fake = FakeApiServer::start();
    let (ca, token) = (
        fake.ca_path(),
        std::fs::read_to_string(fake.token_path()).unwrap(),
    );
    let server = format!("--server=https://127.0.0.1:{}", fake.port);
    let proxy = Kproxy::start(
        &[
            &server,
            &format!("--certificate-authority={}", ca.display()),
            &format!("--token={token}"),
            "--accept-paths=^.*",
            "--port=0",
        ],
        &[],
    );
    let (_, body, _) = curl(&[&proxy.url("/api/v1/namespaces/default/pods/apiserver-via-sidecar")]);
    assert!(body.contains("apiserver-via-sidecar"), "{body}");
}

#[test]
fn flags_take_their_value_after_a_space_or_an_equals_sign() {
    let fake = FakeApiServer::start();
    let ca = fake.ca_path();
    let tf = fake.token_path();
    let proxy = Kproxy::start(
        &[
            "--server",
            &fake.url(),
            "--certificate-authority",
            ca.to_str().unwrap(),
            "--token-file",
            tf.to_str().unwrap(),
            "-p",
            "0",
            "--reject-methods",
            "DELETE",
            "--v=2",
        ],
        &[],
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(curl_status(&proxy.url("/api"), &["-X", "DELETE"]), 403);
}

#[test]
fn explicit_server_without_a_token_sends_no_authorization() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::explicit(&fake, &[]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 401);
    assert_eq!(fake.last_request().header("Authorization"), None);
}

#[test]
fn in_cluster_overrides_for_token_and_ca_are_honoured() {
    let fake = FakeApiServer::start();
    fake.accept_token("override-token");
    let tokfile = temp_dir("override").join("token");
    std::fs::write(&tokfile, "override-token\n").unwrap();
    let proxy = Kproxy::in_cluster(&fake, &["--token-file", tokfile.to_str().unwrap()]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer override-token")
    );
}

#[test]
fn ipv6_service_host_gets_brackets_and_is_verified_by_ip() {
    let fake = FakeApiServer::start_with(Options {
        bind: "[::1]:0",
        ..Options::default()
    });
    let sa = fake.sa_dir.to_str().unwrap();
    let port = fake.port.to_string();
    let proxy = Kproxy::start(
        &["--port", "0", "--serviceaccount-dir", sa],
        &[
            ("KUBERNETES_SERVICE_HOST", "::1"),
            ("KUBERNETES_SERVICE_PORT", &port),
        ],
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert_eq!(
        fake.last_request().header("Host"),
        Some(format!("[::1]:{port}").as_str())
    );
}

#[test]
fn ip_sans_are_required_unless_tls_server_name_says_otherwise() {
    // A certificate for the DNS name only: verifying against the IP must fail.
    let fake = FakeApiServer::start_with(Options {
        sans: vec!["kubernetes.default.svc".into()],
        ..Options::default()
    });
    let proxy = Kproxy::in_cluster(&fake, &[]);
    let (_, body, _) = curl(&[&proxy.url("/api")]);
    assert!(
        body.contains(r#""kind":"Status""#) && body.contains(r#""code":502"#),
        "{body}"
    );
    assert!(body.contains("certificate"), "{body}");
    assert!(fake.requests().is_empty());

    let named = Kproxy::in_cluster(&fake, &["--tls-server-name", "kubernetes.default.svc"]);
    assert_eq!(curl_status(&named.url("/api"), &[]), 200);
}

#[test]
fn insecure_skip_tls_verify_works_and_warns() {
    let fake = FakeApiServer::start();
    let tf = fake.token_path();
    let proxy = Kproxy::start(
        &[
            "--server",
            &fake.url(),
            "--insecure-skip-tls-verify",
            "--token-file",
            tf.to_str().unwrap(),
            "-p",
            "0",
        ],
        &[],
    );
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert!(
        proxy.stderr().contains("--insecure-skip-tls-verify"),
        "{}",
        proxy.stderr()
    );
    let ca = fake.ca_path();
    fails_with(
        &[
            "--server",
            &fake.url(),
            "--insecure-skip-tls-verify",
            "--certificate-authority",
            ca.to_str().unwrap(),
        ],
        &[],
        &["--insecure-skip-tls-verify", "--certificate-authority"],
    );
}

#[test]
fn a_wrong_ca_is_a_502_naming_the_certificate_problem() {
    let fake = FakeApiServer::start();
    let other = FakeApiServer::start();
    let proxy = Kproxy::start(
        &[
            "--server",
            &fake.url(),
            "--certificate-authority",
            other.ca_path().to_str().unwrap(),
            "-p",
            "0",
        ],
        &[],
    );
    let (_, body, _) = curl(&[&proxy.url("/api")]);
    assert!(
        body.contains(r#""code":502"#) && body.contains("invalid peer certificate"),
        "{body}"
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn an_rsa_4096_certificate_handshake_fits_the_thread_stack() {
    let fake = FakeApiServer::start_with(Options {
        key: KeyKind::Rsa4096,
        ..Options::default()
    });
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for _ in 0..3 {
        assert_eq!(
            curl_status(&proxy.url("/api"), &["-H", "Connection: close"]),
            200
        );
    }
}

#[test]
fn unix_socket_is_private_and_replaces_a_stale_one() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("unix");
    let sock = dir.join("kproxy.sock");
    // A stale socket from an earlier run.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut proxy = Kproxy::in_cluster_unix(&fake, &sock);
    assert_eq!(proxy.addr, sock.to_str().unwrap());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let (code, body, err) = curl(&[
        "--unix-socket",
        sock.to_str().unwrap(),
        "http://localhost/api",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("APIVersions"));
    // Host filtering still applies on a socket, as in kubectl.
    let status = curl_status(
        "http://evil.example/api",
        &["--unix-socket", sock.to_str().unwrap()],
    );
    assert_eq!(status, 403);
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(PATIENCE), Some(0));
    assert!(!sock.exists(), "the socket file is left behind");

    // A regular file in the way is not removed.
    std::fs::write(&sock, "data").unwrap();
    fails_with(
        &[
            "--unix-socket",
            sock.to_str().unwrap(),
            "--server",
            "http://127.0.0.1:1",
        ],
        &[],
        &["not a socket"],
    );
}

#[test]
fn listens_where_asked_and_reports_the_real_port() {
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &["--address", "::1"]);
    assert!(proxy.addr.starts_with("[::1]:"), "{}", proxy.addr);
    assert_ne!(proxy.port(), 0);
    assert_eq!(curl_status(&format!("http://{}/api", proxy.addr), &[]), 200);
}

#[test]
fn tls_1_2_only_servers_work() {
    let fake = FakeApiServer::start_with(Options {
        tls12_only: true,
        ..Options::default()
    });
    let proxy = Kproxy::in_cluster(&fake, &[]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}

#[test]
fn a_token_rotated_by_the_kubelet_is_picked_up() {
    let fake = FakeApiServer::start();
    // Lay the token out as the kubelet does: token -> ..data/token.
    fake_apiserver::kubelet_write(&fake.sa_dir, "token", TOKEN);
    let proxy = Kproxy::in_cluster(&fake, &[]);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);

    fake.accept_token("rotated-token");
    fake_apiserver::kubelet_write(&fake.sa_dir, "token", "rotated-token\n");
    wait_until("the rotated token to be used", || {
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
        fake.last_request().header("Authorization") == Some("Bearer rotated-token")
    });
    fake.retire_token(TOKEN);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);

    // An empty token file (a torn write) keeps the last good token.
    fake_apiserver::kubelet_write(&fake.sa_dir, "token", "");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
    assert!(
        proxy.stderr().contains("keeping the last good token"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn operating_flags_are_checked_at_start() {
    let fake = FakeApiServer::start();
    let server = fake.url();
    fails_with(
        &["--server", &server, "--log-format", "yaml"],
        &[],
        &["--log-format", "\"yaml\"", "text or json"],
    );
    fails_with(
        &["--server", &server, "--metrics-address", "nonsense"],
        &[],
        &["--metrics-address", "HOST:PORT"],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    fails_with(
        &[
            "--server",
            &server,
            "--port",
            "0",
            "--metrics-address",
            &taken,
        ],
        &[],
        &["--metrics-address", &taken, "in use"],
    );
}
