//! `--www DIR` and `--www-prefix`: static files beside the API, as kubectl proxy
//! serves them, and nothing outside DIR whatever the path says.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::path::Path;

use support::fake_apiserver::temp_dir;
use support::*;

/// DIR with a page, an index, an empty directory and two symlinks: one inside,
/// one out to a secret beside DIR.
fn site() -> (std::path::PathBuf, String) {
    let root = temp_dir("www");
    let dir = root.join("site");
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from DIR\n").unwrap();
    std::fs::write(dir.join("app/index.html"), "<h1>app</h1>").unwrap();
    std::fs::write(dir.join("app/main.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("secret.txt"), "SECRET outside DIR").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), dir.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(dir.join("hello.txt"), dir.join("alias.txt")).unwrap();
    let dir_arg = dir.to_str().unwrap().to_string();
    (root, dir_arg)
}

/// (status, headers, body) of one request sent as written (`--path-as-is`).
fn fetch(proxy: &Kproxy, method: &str, path: &str) -> (u16, String, String) {
    // `-X HEAD` would make curl wait for the body the length announces.
    let mut args = vec!["--path-as-is", "-i"];
    match method {
        "HEAD" => args.push("-I"),
        _ => args.extend(["-X", method]),
    }
    let url = proxy.url(path);
    args.push(&url);
    let (_, out, err) = curl(&args);
    let status: u16 = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{path}: {err}"))
        .parse()
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_string(), body.to_string())
}

/// A directory whose name holds `?` or a space, asked for without its slash:
/// the redirect keeps the client's escaping and query, so following it names
/// the same directory (a decoded `?` would start a query instead).
#[test]
fn a_directory_redirect_keeps_the_escaping_and_the_query() {
    let fake = FakeApiServer::start();
    let (root, dir) = site();
    for name in ["a?b", "two words"] {
        std::fs::create_dir_all(root.join("site").join(name)).unwrap();
        std::fs::write(root.join("site").join(name).join("index.html"), name).unwrap();
    }
    let proxy = Kproxy::in_cluster(&fake, &["--www", &dir]);

    let (code, head, _) = fetch(&proxy, "GET", "/static/a%3Fb?v=1");
    assert_eq!(code, 301);
    assert!(
        head.lines().any(|l| l == "Location: /static/a%3Fb/?v=1"),
        "{head}"
    );
    let (code, head, _) = fetch(&proxy, "HEAD", "/static/two%20words");
    assert_eq!(code, 301);
    assert!(
        head.lines().any(|l| l == "Location: /static/two%20words/"),
        "{head}"
    );
    for (path, body) in [
        ("/static/a%3Fb?v=1", "a?b"),
        ("/static/two%20words", "two words"),
    ] {
        let (code, out, err) = curl(&["--location", &proxy.url(path)]);
        assert_eq!((code, out.as_str()), (0, body), "{path}: {err}");
    }
}

#[test]
fn files_are_served_beside_the_api() {
    let fake = FakeApiServer::start();
    let (_root, dir) = site();
    let proxy = Kproxy::in_cluster(&fake, &["--www", &dir]);

    let (code, head, body) = fetch(&proxy, "GET", "/static/hello.txt");
    assert_eq!((code, body.as_str()), (200, "hello from DIR\n"));
    assert!(
        head.contains("Content-Type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 15"), "{head}");
    let (code, head, body) = fetch(&proxy, "HEAD", "/static/app/main.js");
    assert_eq!((code, body.as_str()), (200, ""));
    assert!(head.contains("text/javascript"), "{head}");
    // A directory: its index.html; without the slash, Go's redirect first.
    assert_eq!(fetch(&proxy, "GET", "/static/app/").2, "<h1>app</h1>");
    let (code, head, _) = fetch(&proxy, "GET", "/static/app");
    assert_eq!(code, 301);
    assert!(head.contains("Location: /static/app/"), "{head}");
    assert_eq!(fetch(&proxy, "GET", "/static").0, 301);
    // No listing of what DIR holds.
    assert_eq!(fetch(&proxy, "GET", "/static/empty/").0, 403);
    assert_eq!(fetch(&proxy, "GET", "/static/").0, 403);
    assert_eq!(fetch(&proxy, "GET", "/static/nothing.txt").0, 404);
    // A symlink that stays inside DIR is followed.
    assert_eq!(
        fetch(&proxy, "GET", "/static/alias.txt").2,
        "hello from DIR\n"
    );
    assert_eq!(fetch(&proxy, "POST", "/static/hello.txt").0, 405);

    // The API is still there, with its filters.
    assert_lab_calls_work(&proxy);
    assert_eq!(
        fetch(&proxy, "POST", "/api/v1/namespaces/default/pods/p/exec").0,
        403
    );
}

#[test]
fn nothing_outside_the_directory_is_served() {
    let fake = FakeApiServer::start();
    let (root, dir) = site();
    let proxy = Kproxy::in_cluster(&fake, &["--www", &dir]);
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/app/../../secret.txt",
        "/static//../secret.txt",
    ] {
        let (code, _, body) = fetch(&proxy, "GET", path);
        assert_eq!(code, 301, "{path}: moved to its clean form, never served");
        assert!(!body.contains("SECRET"), "{path}");
    }
    // A symlink that leads out of DIR is as good as missing.
    let (code, _, body) = fetch(&proxy, "GET", "/static/escape.txt");
    assert_eq!(code, 404);
    assert!(!body.contains("SECRET"));
    // Following a redirect out of the prefix reaches the API server, not the file.
    let (_, out, _) = curl(&["-L", &proxy.url("/static/../secret.txt")]);
    assert!(!out.contains("SECRET"), "{out}");
    assert!(Path::new(&root.join("secret.txt")).exists());
    // And kproxy still serves the next request.
    assert_eq!(fetch(&proxy, "GET", "/static/hello.txt").0, 200);
}

#[test]
fn the_prefix_is_kubectls_flag() {
    let fake = FakeApiServer::start();
    let (_root, dir) = site();
    let proxy = Kproxy::in_cluster(&fake, &["-w", &dir, "-P", "/ui"]);
    assert_eq!(fetch(&proxy, "GET", "/ui/hello.txt").0, 200);
    // /static/ is the API's again, and the fake answers it.
    let before = fake.requests().len();
    fetch(&proxy, "GET", "/static/hello.txt");
    assert_eq!(fake.requests().len(), before + 1);

    // Without --www nothing is served from disk.
    let proxy = Kproxy::in_cluster(&fake, &[]);
    fetch(&proxy, "GET", "/static/hello.txt");
    assert_eq!(fake.requests().len(), before + 2);

    let out = run_kproxy(&["--www", "/nonexistent/dir"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--www /nonexistent/dir"), "{stderr}");
}

/// In a Pod, DIR is often a volume another container writes: what it puts
/// there may be a symlink out, or a FIFO.
#[test]
fn only_regular_files_inside_the_directory_are_served_the_index_too() {
    let fake = FakeApiServer::start();
    let (root, dir) = site();
    let site = root.join("site");
    // A directory whose index.html leads out of DIR.
    std::fs::create_dir_all(site.join("leak")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), site.join("leak/index.html")).unwrap();
    // FIFOs, which an open() for reading would wait on for a writer.
    for fifo in ["pipe.txt", "piped/index.html"] {
        std::fs::create_dir_all(site.join(fifo).parent().unwrap()).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(site.join(fifo))
            .status()
            .unwrap();
        assert!(made.success());
    }
    let proxy = Kproxy::in_cluster(&fake, &["--www", &dir, "--max-connections", "4"]);
    let (code, _, body) = fetch(&proxy, "GET", "/static/leak/");
    assert_eq!(code, 404, "{body}");
    assert!(!body.contains("SECRET"), "{body}");
    // Four clients at the FIFOs, as many as --max-connections: each is
    // answered at once, and the next client is served.
    let started = std::time::Instant::now();
    for path in [
        "/static/pipe.txt",
        "/static/piped/",
        "/static/pipe.txt",
        "/static/piped/",
    ] {
        assert_eq!(fetch(&proxy, "GET", path).0, 404, "{path}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(fetch(&proxy, "GET", "/static/hello.txt").0, 200);
    assert_eq!(curl_status(&proxy.url("/api"), &[]), 200);
}
