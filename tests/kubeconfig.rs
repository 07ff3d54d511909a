//! kproxy outside a Pod, the way `kubectl proxy` runs there: kubeconfigs written
//! by `kubectl config` itself (so the format is the real one), their lookup
//! order and merging, contexts, every kind of credential (token, token file,
//! client certificates in each key format, basic auth, exec plugins),
//! impersonation, server paths; and for each mistake, one line naming the
//! file, the entry and the field, with no secret in it.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::fake_apiserver::{kubelet_write, temp_dir, Options, RANCHER_PATH};
use support::*;

/// A kubeconfig with one cluster for `fake`, one user made by `credentials`
/// (`kubectl config set-credentials me ...` flags), one context, in use.
fn kubeconfig(fake: &FakeApiServer, dir: &Path, credentials: &[&str]) -> PathBuf {
    let file = dir.join("config");
    let ca = fake.ca_path();
    kubectl_config(
        &file,
        &[
            "set-cluster",
            "lab",
            &format!("--server={}", fake.url()),
            &format!("--certificate-authority={}", ca.display()),
        ],
    );
    let mut args = vec!["set-credentials", "me"];
    args.extend_from_slice(credentials);
    kubectl_config(&file, &args);
    kubectl_config(&file, &["set-context", "lab", "--cluster=lab", "--user=me"]);
    kubectl_config(&file, &["use-context", "lab"]);
    file
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Kproxy {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    Kproxy::start(&all, env)
}

fn with_kubeconfig(file: &Path, args: &[&str]) -> Kproxy {
    let mut all = vec!["--kubeconfig", file.to_str().unwrap()];
    all.extend_from_slice(args);
    start(&all, &[])
}

/// One request: (status, body).
fn get(proxy: &Kproxy, path: &str) -> (u16, String) {
    let (_, out, err) = curl(&["-w", "\n%{http_code}", &proxy.url(path)]);
    let (body, code) = out
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{path}: {err}"));
    (code.parse().unwrap(), body.to_string())
}

/// Runs kproxy expecting it to refuse its configuration: one line, exit 1, no secret.
fn refuses(args: &[&str], env: &[(&str, &str)], needles: &[&str], secrets: &[&str]) -> String {
    assert_refused_to_start(&run_kproxy(args, env), needles, secrets)
}

#[test]
fn a_kubeconfig_written_by_kubectl_with_a_token() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-token");
    let file = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    let proxy = with_kubeconfig(&file, &[]);
    assert_lab_calls_work(&proxy);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // The same file through KUBECONFIG, and as ~/.kube/config.
    let proxy = start(&[], &[("KUBECONFIG", file.to_str().unwrap())]);
    assert_eq!(get(&proxy, "/api").0, 200);
    let home = temp_dir("home");
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    std::fs::copy(&file, home.join(".kube/config")).unwrap();
    let proxy = start(&[], &[("HOME", home.to_str().unwrap())]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert!(!proxy.stderr().contains(TOKEN));
}

#[test]
fn a_token_file_is_reread_when_it_changes() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-tokenfile");
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let file = kubeconfig(&fake, &dir, &[]);
    kubectl_config(
        &file,
        &["set", "users.me.tokenFile", token.to_str().unwrap()],
    );
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);

    fake.accept_token("rotated-token");
    fake.retire_token(TOKEN);
    kubelet_write(&dir, "token", "rotated-token");
    // The 401 for the old token makes kproxy read the file again at once.
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer rotated-token")
    );
}

/// A private key in each format kubectl reads, from openssl: RSA PKCS#1 and
/// PKCS#8, EC SEC1 and PKCS#8, Ed25519.
fn openssl_key(dir: &Path, kind: &str) -> (rcgen::KeyPair, PathBuf) {
    let pkcs8 = dir.join(format!("{kind}.pkcs8.pem"));
    let generate: &[&str] = match kind {
        "rsa-pkcs1" | "rsa-pkcs8" => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        "ec-sec1" | "ec-pkcs8" => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        _ => &["genpkey", "-algorithm", "ED25519"],
    };
    let out = Command::new("openssl")
        .args(generate)
        .arg("-out")
        .arg(&pkcs8)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&pkcs8).unwrap();
    let algorithm = match kind {
        "rsa-pkcs1" | "rsa-pkcs8" => &rcgen::PKCS_RSA_SHA256,
        "ec-sec1" | "ec-pkcs8" => &rcgen::PKCS_ECDSA_P256_SHA256,
        _ => &rcgen::PKCS_ED25519,
    };
    let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, algorithm).unwrap();
    // The "traditional" encodings: PKCS#1 for RSA, SEC1 for EC.
    let file = match kind {
        "rsa-pkcs1" | "ec-sec1" => {
            let traditional = dir.join(format!("{kind}.pem"));
            let out = Command::new("openssl")
                .args(["pkey", "-traditional", "-in"])
                .arg(&pkcs8)
                .arg("-out")
                .arg(&traditional)
                .output()
                .unwrap();
            assert!(out.status.success());
            traditional
        }
        _ => pkcs8,
    };
    (pair, file)
}

#[test]
fn client_certificates_in_every_key_format_files_and_data() {
    let fake = FakeApiServer::start_with(Options {
        require_client_cert: true,
        ..Options::default()
    });
    for (kind, header) in [
        ("rsa-pkcs1", "BEGIN RSA PRIVATE KEY"),
        ("rsa-pkcs8", "BEGIN PRIVATE KEY"),
        ("ec-sec1", "BEGIN EC PRIVATE KEY"),
        ("ec-pkcs8", "BEGIN PRIVATE KEY"),
        ("ed25519", "BEGIN PRIVATE KEY"),
    ] {
        let dir = temp_dir("kc-cert");
        let (pair, key) = openssl_key(&dir, kind);
        assert!(
            std::fs::read_to_string(&key).unwrap().contains(header),
            "{kind}"
        );
        let cert = dir.join("client.crt");
        std::fs::write(&cert, fake.mint_client_cert(&format!("user-{kind}"), &pair)).unwrap();
        // Files for one, embedded data for the other half of the formats.
        let embed = if kind.ends_with("pkcs8") {
            "--embed-certs=true"
        } else {
            "--embed-certs=false"
        };
        let file = kubeconfig(
            &fake,
            &dir,
            &[
                &format!("--client-certificate={}", cert.display()),
                &format!("--client-key={}", key.display()),
                embed,
            ],
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text.contains("client-key-data"),
            embed.ends_with("true"),
            "{text}"
        );
        let proxy = with_kubeconfig(&file, &[]);
        assert_lab_calls_work(&proxy);
        let seen = fake.last_request();
        assert_eq!(
            seen.client_cn.as_deref(),
            Some(format!("user-{kind}").as_str()),
            "{kind}"
        );
        assert_eq!(seen.header("Authorization"), None, "{kind}");
        let key_pem = std::fs::read_to_string(&key).unwrap();
        let secret_line = key_pem.lines().nth(1).unwrap();
        assert!(!proxy.stderr().contains(secret_line));
    }
}

#[test]
fn a_rotated_client_certificate_retires_pooled_connections() {
    let fake = FakeApiServer::start_with(Options {
        require_client_cert: true,
        ..Options::default()
    });
    let dir = temp_dir("kc-cert-rotation");
    let write = |cn: &str| {
        let pair = rcgen::KeyPair::generate().unwrap();
        // Whole files, each replaced at once, key first (as cert-manager's csi
        // driver and kubeadm renewals do): a reader may see the new key with the
        // old certificate for a moment, and must keep the last good pair then.
        for (name, text) in [
            ("client.key", pair.serialize_pem()),
            ("client.crt", fake.mint_client_cert(cn, &pair)),
        ] {
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
    };
    write("before");
    let file = kubeconfig(
        &fake,
        &dir,
        &[
            &format!("--client-certificate={}", dir.join("client.crt").display()),
            &format!("--client-key={}", dir.join("client.key").display()),
        ],
    );
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(fake.last_request().client_cn.as_deref(), Some("before"));

    write("after");
    wait_until("the new client certificate to be used", || {
        assert_eq!(get(&proxy, "/api").0, 200);
        fake.last_request().client_cn.as_deref() == Some("after")
    });
    // And every later request goes with it: the old pooled connection is gone.
    for _ in 0..5 {
        assert_eq!(get(&proxy, "/api").0, 200);
        assert_eq!(fake.last_request().client_cn.as_deref(), Some("after"));
    }
}

#[test]
fn basic_auth_insecure_and_tls_server_name() {
    let fake = FakeApiServer::start();
    fake.accept_basic("admin", "pa55word");
    let dir = temp_dir("kc-basic");
    let file = kubeconfig(&fake, &dir, &["--username=admin", "--password=pa55word"]);
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert!(fake
        .last_request()
        .header("Authorization")
        .unwrap()
        .starts_with("Basic "));
    assert!(!proxy.stderr().contains("pa55word"));

    // insecure-skip-tls-verify, without a CA (kubectl refuses both), warns.
    let insecure = dir.join("insecure");
    std::fs::copy(&file, &insecure).unwrap();
    kubectl_config(
        &insecure,
        &["set-cluster", "lab", "--insecure-skip-tls-verify=true"],
    );
    kubectl_config(&insecure, &["unset", "clusters.lab.certificate-authority"]);
    let proxy = with_kubeconfig(&insecure, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert!(
        proxy.stderr().contains("insecure-skip-tls-verify"),
        "{}",
        proxy.stderr()
    );

    // A certificate for a DNS name only, reached by IP: refused, then accepted
    // with the cluster's tls-server-name.
    let named = FakeApiServer::start_with(Options {
        sans: vec!["kubernetes.test".into()],
        ..Options::default()
    });
    let dir = temp_dir("kc-sni");
    let file = kubeconfig(&named, &dir, &[&format!("--token={TOKEN}")]);
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 502);
    kubectl_config(
        &file,
        &["set-cluster", "lab", "--tls-server-name=kubernetes.test"],
    );
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
}

#[test]
fn a_server_path_is_appended_only_when_asked() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-rancher");
    let file = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    let url = format!("{}{RANCHER_PATH}", fake.url());
    kubectl_config(&file, &["set-cluster", "lab", &format!("--server={url}")]);

    let proxy = with_kubeconfig(&file, &["--append-server-path"]);
    let (code, body) = get(&proxy, "/api/v1/namespaces/default/pods/p");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        fake.last_request().target,
        format!("{RANCHER_PATH}/api/v1/namespaces/default/pods/p")
    );

    // Without the flag: kubectl's warning, and the path is not added.
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(fake.last_request().target, "/api");
    assert!(
        proxy.stderr().contains(&format!(
            "Your kube context contains a server path {RANCHER_PATH}, use --append-server-path"
        )),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn several_files_merge_as_kubectl_merges_them() {
    let fake = FakeApiServer::start();
    let other = FakeApiServer::start();
    let dir = temp_dir("kc-merge");
    // first: context "lab" on `fake`, current; and a user "me" with the right token.
    let first = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    // second: the same names, pointing elsewhere with a wrong token (ignored:
    // the first file that defines a name wins), plus a context "other" of its own.
    let second = dir.join("second");
    kubectl_config(
        &second,
        &["set-cluster", "lab", "--server=https://127.0.0.1:1"],
    );
    kubectl_config(
        &second,
        &[
            "set-cluster",
            "elsewhere",
            &format!("--server={}", other.url()),
            &format!("--certificate-authority={}", other.ca_path().display()),
        ],
    );
    kubectl_config(&second, &["set-credentials", "me", "--token=wrong"]);
    kubectl_config(
        &second,
        &["set-context", "other", "--cluster=elsewhere", "--user=me"],
    );
    kubectl_config(&second, &["use-context", "other"]);
    let missing = dir.join("missing");
    let list = format!(
        "{}:{}:{}",
        missing.display(),
        first.display(),
        second.display()
    );

    // Counted from here: the Cloud SDK's kubectl asks servers their version.
    let (seen_by_fake, seen_by_other) = (fake.requests().len(), other.requests().len());
    let proxy = start(&[], &[("KUBECONFIG", &list)]);
    assert_eq!(
        get(&proxy, "/api").0,
        200,
        "current-context from the first file that sets it"
    );
    assert_eq!(fake.requests().len(), seen_by_fake + 1);

    // --context picks the second file's context, still with the first file's user.
    let proxy = start(&["--context", "other"], &[("KUBECONFIG", &list)]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(
        other.last_request().header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // --cluster and --user override the context's.
    let proxy = start(
        &["--cluster", "elsewhere", "--user", "me"],
        &[("KUBECONFIG", &list)],
    );
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(other.requests().len(), seen_by_other + 2);
}

#[test]
fn relative_paths_are_relative_to_their_file() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-relative");
    std::fs::create_dir_all(dir.join("kube/certs")).unwrap();
    std::fs::copy(fake.ca_path(), dir.join("kube/certs/ca.crt")).unwrap();
    std::fs::write(dir.join("kube/token"), TOKEN).unwrap();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n    \
         certificate-authority: certs/ca.crt\nusers:\n- name: me\n  user:\n    tokenFile: token\n\
         contexts:\n- name: lab\n  context: {{cluster: lab, user: me}}\ncurrent-context: lab\n",
        fake.url()
    );
    std::fs::write(dir.join("kube/config"), config).unwrap();
    // Started from another directory: the paths still resolve against the file's.
    let mut cmd = kproxy_command();
    cmd.args(["--port", "0", "--kubeconfig"])
        .arg(dir.join("kube/config"))
        .current_dir("/");
    let proxy = Kproxy::spawn(cmd);
    assert_eq!(get(&proxy, "/api").0, 200);
}

#[test]
fn impersonation_from_flags_and_kubeconfig() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-as");
    let file = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    // `kubectl config set` cannot reach `as`; written as people write it.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("  user:\n", "  user:\n    as: bob\n")).unwrap();
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(fake.last_request().header("Impersonate-User"), Some("bob"));

    let proxy = with_kubeconfig(
        &file,
        &[
            "--as",
            "alice",
            "--as-group",
            "dev",
            "--as-group",
            "ops",
            "--as-uid",
            "42",
        ],
    );
    assert_eq!(get(&proxy, "/api").0, 200);
    let seen = fake.last_request();
    assert_eq!(seen.header("Impersonate-User"), Some("alice"));
    assert_eq!(seen.headers_named("Impersonate-Group"), ["dev", "ops"]);
    assert_eq!(seen.header("Impersonate-Uid"), Some("42"));

    // A client that impersonates on its own gets none of kproxy's.
    let (code, _, _) = curl(&["-s", "-H", "Impersonate-User: carol", &proxy.url("/api")]);
    assert_eq!(code, 0);
    let seen = fake.last_request();
    assert_eq!(seen.headers_named("Impersonate-User"), ["carol"]);
    assert!(seen.headers_named("Impersonate-Group").is_empty());

    // A client that only adds to kproxy's identity gets kproxy's alone:
    // client-go would append its groups and extras (and keep its extra Uid).
    let (code, _, _) = curl(&[
        "-s",
        "-H",
        "Impersonate-Group: system:masters",
        "-H",
        "impersonate-uid: 0",
        "-H",
        "Impersonate-Extra-scopes: all",
        &proxy.url("/api"),
    ]);
    assert_eq!(code, 0);
    let seen = fake.last_request();
    assert_eq!(seen.headers_named("Impersonate-User"), ["alice"]);
    assert_eq!(seen.headers_named("Impersonate-Group"), ["dev", "ops"]);
    assert_eq!(seen.headers_named("Impersonate-Uid"), ["42"]);
    assert!(seen.headers_named("Impersonate-Extra-scopes").is_empty());
}

/// An exec plugin as a small script: it counts its runs in `runs`, records
/// KUBERNETES_EXEC_INFO, says something on stderr, and prints an
/// ExecCredential whose token is `tok-N` (N = the run), expiring after
/// `expiry` seconds if given.
fn plugin(dir: &Path, expiry: Option<u64>) -> PathBuf {
    let expiry = match expiry {
        Some(s) => format!(
            "extra=\",\\\"expirationTimestamp\\\":\\\"$(date -u -d @$(( $(date +%s) + {s} )) +%Y-%m-%dT%H:%M:%SZ)\\\"\""
        ),
        None => "extra=".to_string(),
    };
    let runs = dir.join("runs");
    executable(
        dir,
        "plugin.sh",
        &format!(
            "echo run >> {runs}\nn=$(wc -l < {runs})\n\
             printf '%s' \"$KUBERNETES_EXEC_INFO\" > {info}\n\
             echo \"plugin run $n\" >&2\n\
             {expiry}\n\
             printf '{{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\",\
             \"status\":{{\"token\":\"tok-%s\"%s}}}}\\n' \"$n\" \"$extra\"",
            runs = runs.display(),
            info = dir.join("info").display(),
        ),
    )
}

/// A plugin script in `dir/bin/`. kubectl writes a command beside the
/// kubeconfig as a bare name, which client-go then looks up in PATH (as
/// kproxy does); under bin/ it stays a relative path, resolved against the file.
fn executable(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = dir.join("bin").join(name);
    write_script(&script, body);
    script
}

fn write_script(script: &Path, body: &str) {
    std::fs::write(script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map_or(0, |r| r.lines().count())
}

fn exec_kubeconfig(fake: &FakeApiServer, dir: &Path, command: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        format!("--exec-command={}", command.display()),
        "--exec-api-version=client.authentication.k8s.io/v1".to_string(),
        "--exec-interactive-mode=Never".to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let file = kubeconfig(fake, dir, &args);
    // The Cloud SDK's kubectl (a dispatcher that asks the server its version)
    // runs the plugin itself during `kubectl config`: count from here.
    let _ = std::fs::remove_file(dir.join("runs"));
    let _ = std::fs::remove_file(dir.join("info"));
    file
}

#[test]
fn an_exec_plugin_runs_at_first_use_after_expiry_and_after_a_401() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-exec");
    let file = exec_kubeconfig(
        &fake,
        &dir,
        &plugin(&dir, Some(3)),
        &["--exec-provide-cluster-info=true"],
    );
    fake.accept_token("tok-1");
    let proxy = with_kubeconfig(&file, &[]);
    assert_eq!(
        runs(&dir),
        0,
        "not at start: at first use; {}",
        proxy.stderr()
    );
    for _ in 0..5 {
        assert_eq!(get(&proxy, "/api").0, 200);
    }
    assert_eq!(runs(&dir), 1, "once, not per request");
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer tok-1")
    );
    let info = std::fs::read_to_string(dir.join("info")).unwrap();
    assert!(
        info.contains(r#""apiVersion":"client.authentication.k8s.io/v1""#),
        "{info}"
    );
    assert!(
        info.contains(&format!(r#""server":"{}""#, fake.url())),
        "{info}"
    );
    assert!(info.contains("certificate-authority-data"), "{info}");
    assert!(
        proxy.stderr().contains("plugin run 1"),
        "its stderr is kproxy's"
    );

    // After the expiry, the next request runs it again.
    fake.accept_token("tok-2");
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(runs(&dir), 2);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer tok-2")
    );

    // A 401 runs it once more, and the request is retried with the new token
    // (a second after the last run: a plugin runs at most once a second).
    std::thread::sleep(Duration::from_millis(1100));
    fake.retire_token("tok-2");
    fake.accept_token("tok-3");
    assert_eq!(get(&proxy, "/api").0, 200);
    assert_eq!(runs(&dir), 3);
    assert_eq!(
        fake.last_request().header("Authorization"),
        Some("Bearer tok-3")
    );
    assert!(!proxy.stderr().contains("tok-"), "{}", proxy.stderr());
}

#[test]
fn a_plugin_that_fails_prints_garbage_or_hangs_fails_the_request_clearly() {
    let fake = FakeApiServer::start();
    for (name, body, expect) in [
        (
            "fails",
            "echo 'no credentials for you' >&2; exit 3",
            "failed with exit code 3",
        ),
        ("garbage", "echo 'this is not json'", "decoding stdout"),
        ("hangs", "sleep 30", "did not finish within 1s"),
        (
            "version",
            r#"echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","status":{"token":"x"}}'"#,
            "plugin returned version",
        ),
    ] {
        let dir = temp_dir("kc-exec-bad");
        // Quick to fail while `kubectl config` (the Cloud SDK's, which runs
        // plugins) writes the file; the real body after.
        let script = executable(&dir, name, "exit 1");
        let file = exec_kubeconfig(&fake, &dir, &script, &[]);
        write_script(&script, body);
        let proxy = with_kubeconfig(&file, &["--exec-timeout", "1s"]);
        let started = Instant::now();
        let (_, body, _) = curl(&["-s", &proxy.url("/api")]);
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 500, "{name}");
        assert!(body.contains(expect), "{name}: {body}");
        assert_refusal(body.as_bytes(), 500, "credentials");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} held the request"
        );
        assert!(
            proxy.stderr().contains(expect),
            "{name}: {}",
            proxy.stderr()
        );
    }
    // A command that is not there: its install hint is shown.
    let dir = temp_dir("kc-exec-missing");
    let file = exec_kubeconfig(&fake, &dir, Path::new("/nonexistent/aws"), &[]);
    let text = std::fs::read_to_string(&file).unwrap();
    let hinted = text.replace(
        "    exec:\n",
        "    exec:\n      installHint: install the aws CLI\n",
    );
    std::fs::write(&file, hinted).unwrap();
    let proxy = with_kubeconfig(&file, &[]);
    let (_, body, _) = curl(&["-s", &proxy.url("/api")]);
    assert!(
        body.contains("not found") && body.contains("install the aws CLI"),
        "{body}"
    );
}

#[test]
fn a_plugin_can_give_a_client_certificate() {
    let fake = FakeApiServer::start_with(Options {
        require_client_cert: true,
        ..Options::default()
    });
    let dir = temp_dir("kc-exec-cert");
    let pair = rcgen::KeyPair::generate().unwrap();
    let cert = fake.mint_client_cert("from-plugin", &pair);
    let credential = serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "status": {"clientCertificateData": cert, "clientKeyData": pair.serialize_pem()},
    });
    std::fs::write(dir.join("credential.json"), credential.to_string()).unwrap();
    let cat = format!("cat {}", dir.join("credential.json").display());
    let script = executable(&dir, "plugin.sh", &cat);
    let file = exec_kubeconfig(&fake, &dir, &script, &[]);
    let proxy = with_kubeconfig(&file, &[]);
    assert_lab_calls_work(&proxy);
    assert_eq!(
        fake.last_request().client_cn.as_deref(),
        Some("from-plugin")
    );
}

/// A "billion laughs": nine anchors, each nine aliases of the one before,
/// which would expand to 9^9 strings. `indent` goes before every line.
fn billion_laughs(indent: &str) -> String {
    let mut text = format!("{indent}a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for level in 1..9 {
        let alias = format!("*a{}", level - 1);
        text.push_str(&format!(
            "{indent}a{level}: &a{level} [{}]\n",
            vec![alias; 9].join(",")
        ));
    }
    text
}

#[test]
fn a_billion_laughs_kubeconfig_is_refused_at_start_within_a_second() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-laughs");
    let file = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, billion_laughs("") + &text).unwrap();
    let started = Instant::now();
    let stderr = refuses(
        &["--kubeconfig", file.to_str().unwrap()],
        &[],
        &[
            file.to_str().unwrap(),
            "document contains excessive aliasing",
        ],
        &[TOKEN],
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}: {stderr}",
        started.elapsed()
    );
}

#[test]
fn a_plugin_that_prints_a_billion_laughs_fails_its_request_and_kproxy_serves_on() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-exec-laughs");
    let script = executable(&dir, "laughs.sh", "exit 1");
    let file = exec_kubeconfig(&fake, &dir, &script, &[]);
    let output = format!(
        "apiVersion: client.authentication.k8s.io/v1\n{}status: {{token: *a8}}\n",
        billion_laughs("")
    );
    std::fs::write(dir.join("laughs.yaml"), output).unwrap();
    write_script(
        &script,
        &format!("cat {}", dir.join("laughs.yaml").display()),
    );
    let mut proxy = with_kubeconfig(&file, &[]);
    let started = Instant::now();
    let (code, body) = get(&proxy, "/api");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("excessive aliasing"), "{body}");
    assert!(body.contains("laughs.sh"), "names the plugin: {body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Still serving: its own path now, the API once the plugin is mended.
    assert_eq!(get(&proxy, "/.kproxy/alive").0, 200);
    let good = r#"echo '{"apiVersion":"client.authentication.k8s.io/v1","status":{"token":"fake-token-0123456789"}}'"#;
    write_script(&script, good);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&proxy, "/api").0, 200);
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "kproxy is running"
    );
}

#[test]
fn a_plugin_whose_child_keeps_its_output_open_is_stopped_at_the_timeout() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-exec-linger");
    let script = executable(&dir, "linger.sh", "exit 1");
    let file = exec_kubeconfig(&fake, &dir, &script, &[]);
    // It prints its credential and exits, but a child it started in the
    // background holds its stdout: a reader waiting for the end never gets it.
    let child = dir.join("child.pid");
    write_script(
        &script,
        &format!(
            "sleep 300 &\necho $! > {}\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'",
            child.display()
        ),
    );
    let proxy = with_kubeconfig(&file, &["--exec-timeout", "1s"]);
    // Two requests at once: the second waits for the first's run, and both
    // are answered within the timeout and a second.
    let started = Instant::now();
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = proxy.url("/api");
            std::thread::spawn(move || curl(&["-s", "-w", "\n%{http_code}", &url]).1)
        })
        .collect();
    for answer in waiting {
        let answer = answer.join().unwrap();
        let (body, code) = answer.rsplit_once('\n').unwrap();
        assert_eq!(code, "500", "{body}");
        assert!(body.contains("linger.sh"), "{body}");
        assert!(body.contains("kept its output open"), "{body}");
        assert_refusal(body.as_bytes(), 500, "credentials");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2) + Duration::from_millis(900),
        "answered after {:?}",
        started.elapsed()
    );
    // Its whole process group was stopped, the child with it.
    let pid = std::fs::read_to_string(&child).unwrap();
    let gone = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        // Gone, or a zombie waiting for its parent (init) to reap it.
        stat.map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    wait_for(|| gone(&pid).then_some(()));
}

#[test]
fn a_plugin_runs_at_most_once_at_a_time_and_once_a_second() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-exec-rate");
    let script = executable(&dir, "rate.sh", "exit 1");
    let file = exec_kubeconfig(&fake, &dir, &script, &[]);
    // A token the API server refuses, from a plugin that takes its time: after
    // each 401, kubectl would run it again.
    let runs_file = dir.join("runs");
    write_script(
        &script,
        &format!(
            "echo run >> {}\nsleep 0.3\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"status\":{{\"token\":\"refused\"}}}}'",
            runs_file.display()
        ),
    );
    let proxy = with_kubeconfig(&file, &[]);
    let together: Vec<_> = (0..8)
        .map(|_| {
            let url = proxy.url("/api");
            std::thread::spawn(move || curl_status(&url, &[]))
        })
        .collect();
    for status in together {
        assert_eq!(status.join().unwrap(), 401);
    }
    assert_eq!(runs(&dir), 1, "eight requests at once share one run");
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(curl_status(&proxy.url("/api"), &[]), 401);
        requests += 1;
    }
    let ran = runs(&dir);
    assert!(
        ran <= 1 + 3 && requests > 10,
        "{ran} runs for {requests} refused requests in 2.5 s"
    );

    // An expired credential does not make every request a run either.
    let dir = temp_dir("kc-exec-expired");
    let script = executable(&dir, "expired.sh", "exit 1");
    let file = exec_kubeconfig(&fake, &dir, &script, &[]);
    write_script(
        &script,
        &format!(
            "echo run >> {}\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"status\":{{\"token\":\"{TOKEN}\",\"expirationTimestamp\":\"2001-01-01T00:00:00Z\"}}}}'",
            dir.join("runs").display()
        ),
    );
    let proxy = with_kubeconfig(&file, &[]);
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&proxy, "/api").0, 200);
    }
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        runs(&dir) <= 1 + seconds,
        "{} runs in {seconds} s",
        runs(&dir)
    );
}

#[test]
fn each_mistake_is_one_line_naming_file_entry_and_field() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-mistakes");
    let secret = "s3cr3t-t0k3n";
    let file = kubeconfig(&fake, &dir, &[&format!("--token={secret}")]);
    let f = file.to_str().unwrap();
    let kc = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["--kubeconfig", f];
        args.extend_from_slice(extra);
        args
    };

    refuses(
        &["--kubeconfig", "/nonexistent/config"],
        &[],
        &["--kubeconfig /nonexistent/config", "no such file"],
        &[],
    );
    refuses(
        &kc(&["--context", "nope"]),
        &[],
        &[r#"context "nope" does not exist"#, f],
        &[secret],
    );
    refuses(
        &kc(&["--cluster", "nope"]),
        &[],
        &[r#"cluster "nope" does not exist"#],
        &[secret],
    );
    refuses(
        &kc(&["--user", "nope"]),
        &[],
        &[r#"auth info "nope" does not exist"#],
        &[secret],
    );

    let edit = |name: &str, args: &[&str]| {
        let copy = dir.join(name);
        std::fs::copy(&file, &copy).unwrap();
        kubectl_config(&copy, args);
        copy
    };
    let dangling = edit("dangling", &["set", "current-context", "gone"]);
    refuses(
        &["--kubeconfig", dangling.to_str().unwrap()],
        &[],
        &[r#"current-context "gone""#, "names no context"],
        &[secret],
    );
    let no_server = edit("no-server", &["unset", "clusters.lab.server"]);
    refuses(
        &["--kubeconfig", no_server.to_str().unwrap()],
        &[],
        &[r#"cluster "lab""#, "has no server"],
        &[secret],
    );
    let both = edit(
        "both",
        &["set", "clusters.lab.insecure-skip-tls-verify", "true"],
    );
    refuses(
        &["--kubeconfig", both.to_str().unwrap()],
        &[],
        &["root certificates file with the insecure flag"],
        &[secret],
    );
    // kubectl config drops the token when it sets a password; people don't.
    let two_methods = dir.join("two");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &two_methods,
        text.replace(
            "  user:\n",
            "  user:\n    username: u\n    password: p4ss\n",
        ),
    )
    .unwrap();
    refuses(
        &["--kubeconfig", two_methods.to_str().unwrap()],
        &[],
        &["more than one authentication method", r#"user "me""#],
        &[secret, "p4ss"],
    );
    let always = edit(
        "always",
        &[
            "set-credentials",
            "me",
            "--token=",
            "--exec-command=x",
            "--exec-api-version=client.authentication.k8s.io/v1",
            "--exec-interactive-mode=Always",
        ],
    );
    refuses(
        &["--kubeconfig", always.to_str().unwrap()],
        &[],
        &[
            "interactive mode",
            "standard input is not a terminal",
            r#"user "me""#,
        ],
        &[],
    );
    let no_mode = edit(
        "no-mode",
        &[
            "set-credentials",
            "me",
            "--token=",
            "--exec-command=x",
            "--exec-api-version=client.authentication.k8s.io/v1",
        ],
    );
    refuses(
        &["--kubeconfig", no_mode.to_str().unwrap()],
        &[],
        &["exec.interactiveMode must be specified"],
        &[],
    );
    let alpha = edit(
        "alpha",
        &[
            "set-credentials",
            "me",
            "--token=",
            "--exec-command=x",
            "--exec-api-version=client.authentication.k8s.io/v1alpha1",
        ],
    );
    refuses(
        &["--kubeconfig", alpha.to_str().unwrap()],
        &[],
        &[r#"invalid apiVersion "client.authentication.k8s.io/v1alpha1""#],
        &[],
    );
    let gcp = edit(
        "gcp",
        &["set-credentials", "me", "--token=", "--auth-provider=gcp"],
    );
    refuses(
        &["--kubeconfig", gcp.to_str().unwrap()],
        &[],
        &[r#"auth-provider "gcp""#, "gke-gcloud-auth-plugin"],
        &[],
    );
    let cert_only = edit(
        "cert-only",
        &[
            "set-credentials",
            "me",
            "--client-certificate=/etc/hostname",
        ],
    );
    refuses(
        &["--kubeconfig", cert_only.to_str().unwrap()],
        &[],
        &["without its key"],
        &[secret],
    );
    let proxied = edit(
        "proxied",
        &["set-cluster", "lab", "--proxy-url=https://127.0.0.1:3128"],
    );
    refuses(
        &["--kubeconfig", proxied.to_str().unwrap()],
        &[],
        &["proxy-url"],
        &[secret],
    );
    refuses(
        &kc(&["--as-group", "dev"]),
        &[],
        &["without impersonating a user"],
        &[secret],
    );

    // Hand-edited mistakes: the file, the entry and the field.
    let broken = dir.join("broken");
    std::fs::write(
        &broken,
        "clusters:\n- name: lab\n  cluster: {server: https://x, insecure-skip-tls-verify: maybe}\n",
    )
    .unwrap();
    refuses(
        &["--kubeconfig", broken.to_str().unwrap()],
        &[],
        &[
            broken.to_str().unwrap(),
            r#"clusters["lab"].cluster.insecure-skip-tls-verify: expected true or false"#,
        ],
        &[],
    );
    std::fs::write(&broken, "users: [\n").unwrap();
    refuses(
        &["--kubeconfig", broken.to_str().unwrap()],
        &[],
        &["not valid YAML"],
        &[],
    );
    std::fs::write(
        &broken,
        "users:\n- name: me\n  user: {client-key-data: not*base64}\n",
    )
    .unwrap();
    refuses(
        &[
            "--kubeconfig",
            broken.to_str().unwrap(),
            "--user",
            "me",
            "--server",
            "https://127.0.0.1:1",
        ],
        &[],
        &[r#"users["me"].user.client-key-data: expected base64"#],
        &[],
    );

    // With no kubeconfig anywhere and not in a Pod: say where kproxy looked.
    refuses(
        &[],
        &[],
        &["no kubeconfig", "KUBERNETES_SERVICE_HOST", "--server"],
        &[],
    );
}

#[test]
fn in_a_pod_without_a_kubeconfig_nothing_changes() {
    let fake = FakeApiServer::start();
    // A KUBECONFIG that names only missing files selects nothing: in-cluster.
    let proxy = Kproxy::in_cluster(&fake, &[]);
    assert_lab_calls_work(&proxy);
    let mut cmd = kproxy_command();
    cmd.args(["--port", "0", "--serviceaccount-dir"])
        .arg(&fake.sa_dir)
        .env("KUBECONFIG", "/nonexistent/a:/nonexistent/b")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", fake.port.to_string());
    let proxy = Kproxy::spawn(cmd);
    assert_eq!(get(&proxy, "/api").0, 200);
}

#[test]
fn kubectl_proxy_and_kproxy_answer_alike_from_the_same_kubeconfig() {
    let fake = FakeApiServer::start();
    let dir = temp_dir("kc-differential");
    let file = kubeconfig(&fake, &dir, &[&format!("--token={TOKEN}")]);
    let kproxy = with_kubeconfig(&file, &[]);
    let mut cmd = Command::new("kubectl");
    cmd.args(["proxy", "--port=0", "--kubeconfig"]).arg(&file);
    let kubectl = Kproxy::spawn(cmd);
    for path in [
        "/api",
        "/api/v1/namespaces/default/pods/p1",
        "/api/v1/namespaces/default/pods",
        "/apis/nothing/here",
    ] {
        let ours = get(&kproxy, path);
        let theirs = get(&kubectl, path);
        assert_eq!(ours, theirs, "{path}");
    }
}
