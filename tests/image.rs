//! The FROM scratch image: built by scripts/build-image.sh with buildah, checked
//! with skopeo, then unpacked into an empty directory and run from there under
//! chroot (adding only a service-account directory), as a container runtime would.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::fake_apiserver::temp_dir;
use support::*;

const FIVE_MB: u64 = 5 * 1000 * 1000;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .unwrap()
        .status
        .success()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn blob(oci: &Path, digest: &str) -> PathBuf {
    oci.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn the_scratch_image_is_small_and_runs_with_nothing_else() {
    if !have("buildah") || !have("skopeo") {
        eprintln!("SKIPPED: buildah and skopeo are not installed (scripts/test.sh installs them from Debian)");
        return;
    }
    let built = run("bash", &["scripts/build-image.sh"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let archive = root.join("target/image/kproxy.oci.tar");

    let config: Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci-archive:{}", archive.display()),
        ],
    ))
    .unwrap();
    let config = &config["config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["/kproxy"]));
    assert_eq!(
        config["User"], "65532:65532",
        "numeric, so runAsNonRoot can be verified"
    );
    assert!(config["ExposedPorts"]["8001/tcp"].is_object(), "{config}");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );

    // One layer, holding the binary and nothing else.
    let oci = root.join("target/image/oci");
    let index: Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(&oci, manifest_digest)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = blob(&oci, layers[0]["digest"].as_str().unwrap());
    let listing = run("tar", &["-tzf", layer.to_str().unwrap()]);
    let files: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(files, ["kproxy"]);

    let unpacked = run(
        "sh",
        &["-c", &format!("gzip -dc {} | wc -c", layer.display())],
    );
    let unpacked: u64 = unpacked.trim().parse().unwrap();
    assert!(unpacked < FIVE_MB, "image is {unpacked} bytes");
    eprintln!("{built}");

    // Unpack into an empty directory and run from there, as the runtime would,
    // with only the service-account directory the kubelet mounts.
    let fake = FakeApiServer::start();
    let rootfs = temp_dir("rootfs");
    run(
        "tar",
        &[
            "-xzf",
            layer.to_str().unwrap(),
            "-C",
            rootfs.to_str().unwrap(),
        ],
    );
    let sa = rootfs.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    for name in ["ca.crt", "token", "namespace"] {
        std::fs::copy(fake.sa_dir.join(name), sa.join(name)).unwrap();
        std::fs::set_permissions(sa.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    run("chmod", &["-R", "a+rX", rootfs.to_str().unwrap()]);
    let entries: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "the root holds only /kproxy and /var: {entries:?}"
    );

    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.args([
        "--userspec=65532:65532",
        rootfs.to_str().unwrap(),
        "/kproxy",
        "--port",
        "0",
    ])
    .env_clear()
    .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    .env("KUBERNETES_SERVICE_PORT", fake.port.to_string());
    let proxy = Kproxy::spawn(cmd);
    assert_lab_calls_work(&proxy);

    // The self-probe works from inside the image too.
    let port = proxy.port().to_string();
    let status = Command::new("/usr/sbin/chroot")
        .args([
            "--userspec=65532:65532",
            rootfs.to_str().unwrap(),
            "/kproxy",
            "check",
            "--ready",
            "--port",
            &port,
        ])
        .env_clear()
        .status()
        .unwrap();
    assert!(status.success());
}
