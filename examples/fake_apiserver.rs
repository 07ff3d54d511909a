//! The tests' fake API server as a program, for the demo and the benchmark:
//! a TLS server with a CA minted at start, on 127.0.0.1.
//!
//! `cargo run --example fake_apiserver -- SA_DIR [PORT]` writes `ca.crt`, `token` and
//! `namespace` into SA_DIR (as the kubelet lays out a service-account volume), then
//! prints `listening on 127.0.0.1:PORT` and serves until killed.

#[path = "../tests/support/fake_apiserver.rs"]
mod fake_apiserver;

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(sa_dir) = args.next() else {
        eprintln!("usage: fake_apiserver SA_DIR [PORT]");
        std::process::exit(2);
    };
    let port = args.next().unwrap_or_else(|| "0".into());
    let bind: &'static str = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
    let fake = fake_apiserver::FakeApiServer::start_with(fake_apiserver::Options {
        bind,
        ..Default::default()
    });
    std::fs::create_dir_all(&sa_dir).expect("create SA_DIR");
    for name in ["ca.crt", "token", "namespace"] {
        std::fs::copy(
            fake.sa_dir.join(name),
            std::path::Path::new(&sa_dir).join(name),
        )
        .expect("write SA_DIR");
    }
    println!("listening on 127.0.0.1:{}", fake.port);
    std::io::stdout().flush().expect("stdout");
    loop {
        std::thread::park();
    }
}
