//! Build-time facts for `kproxy --version`: the target triple, and the git
//! commit (from `KPROXY_COMMIT` if set, else from `git rev-parse`, else
//! "unknown"). Nothing is fetched: a build stays offline and reproducible.

use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=KPROXY_TARGET={target}");
    let commit = std::env::var("KPROXY_COMMIT").ok().or_else(git_commit);
    println!(
        "cargo:rustc-env=KPROXY_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rerun-if-env-changed=KPROXY_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
