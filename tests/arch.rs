//! The static binary for another architecture, run, not just built: aarch64
//! under qemu-user-static starts as in a Pod, prints kubectl's line, and the
//! lab's two curl calls go through it to the fake API server (TLS verified
//! against the service account's CA, the token added).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const TARGET: &str = "aarch64-unknown-linux-musl";
const QEMU: &str = "qemu-aarch64-static";

#[test]
fn the_aarch64_binary_serves_the_lab_under_qemu() {
    if !have_tool(QEMU, "qemu-user-static") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new("bash")
        .args(["scripts/build-static.sh", TARGET])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/build-static.sh {TARGET}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bin = root.join("target").join(TARGET).join("release/kproxy");

    let version = Command::new(QEMU)
        .arg(&bin)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.trim_end().ends_with(&format!("{TARGET})")),
        "{version}"
    );

    let fake = FakeApiServer::start();
    let mut cmd = Command::new(QEMU);
    cmd.arg(&bin)
        .args(["--port", "0", "--serviceaccount-dir"])
        .arg(&fake.sa_dir)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", fake.port.to_string());
    let proxy = Kproxy::spawn(cmd);
    assert_lab_calls_work(&proxy);
    let seen = fake.last_request();
    assert_eq!(
        seen.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}
