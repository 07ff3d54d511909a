//! `kproxy`: parse flags, build the configuration, handle signals, serve.

use std::process::ExitCode;
use std::sync::Arc;

use kproxy::edges::cli::{self, Command};
use kproxy::edges::config::{Config, ProcessEnv};
use kproxy::edges::listen::Shutdown;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os()) {
        Ok(Command::Serve(args)) => *args,
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::CheckHelp) => {
            print!("{}", cli::CHECK_HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Check(args)) => {
            return match kproxy::edges::check::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => fail(&reason),
            }
        }
        Ok(Command::Version) => {
            println!(
                "kproxy {} (commit {}, {})",
                env!("CARGO_PKG_VERSION"),
                env!("KPROXY_COMMIT"),
                env!("KPROXY_TARGET")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e),
    };
    let config = match Config::from_args(args, &ProcessEnv) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let shutdown = Arc::new(Shutdown::default());
    let result = kproxy::run(config, shutdown.clone(), |listener| {
        // As PID 1 in a scratch image, SIGTERM has no default action: without a
        // handler the kubelet waits the whole grace period, then SIGKILLs.
        // Weak, so that the listening socket closes as soon as `run` stops accepting.
        let listener = Arc::downgrade(&listener);
        let stop = move || {
            if let Some(listener) = listener.upgrade() {
                shutdown.stop(&listener)
            }
        };
        if let Err(e) = kproxy::edges::signals::on_terminate(stop) {
            kproxy::warn!("cannot handle SIGTERM: {e}");
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot listen: {e}")),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("kproxy: error: {error}");
    ExitCode::FAILURE
}
