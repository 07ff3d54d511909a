//! Running a plugin: no shell, its environment and `KUBERNETES_EXEC_INFO`,
//! its output read as it comes, in a process group of its own that is killed
//! at `--exec-timeout`, output included.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use super::ExecSettings;
use crate::services::credentials::PluginProblem;

/// The most a plugin may print: an ExecCredential is a few KiB; more is an error.
const MAX_OUTPUT: usize = 1024 * 1024;
/// How often a run looks at the plugin and its output.
const POLL: Duration = Duration::from_millis(10);

/// Runs the plugin as `settings` say, with `request` as `KUBERNETES_EXEC_INFO`;
/// returns what it printed.
pub fn run(settings: &ExecSettings, request: &str) -> Result<Vec<u8>, PluginProblem> {
    let mut command = Command::new(&settings.command);
    command
        .args(&settings.args)
        .envs(settings.env.iter().map(|(k, v)| (k, v)))
        .env("KUBERNETES_EXEC_INFO", request)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A group of its own, so that what it starts can be stopped with it.
        .process_group(0);
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PluginProblem::NotFound {
            command: settings.command.clone(),
            hint: settings
                .install_hint
                .as_deref()
                .map(sanitize)
                .unwrap_or_default(),
        },
        _ => PluginProblem::CannotRun {
            command: settings.command.clone(),
            source: e,
        },
    })?;
    wait_with_timeout(child, settings.timeout)
}

/// Waits for the plugin to exit and its output to end, reading the output as
/// it comes (a full pipe would stall it). At the deadline its process group
/// is killed: the plugin, and whatever it started that still holds the output.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<Vec<u8>, PluginProblem> {
    let stdout = child.stdout.take();
    let (done, output) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("exec-output".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut out = Vec::new();
            if let Some(stdout) = stdout {
                let _ = stdout.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out);
            }
            let _ = done.send(out);
        });
    if let Err(e) = reader {
        kill_group(&mut child);
        return Err(PluginProblem::CannotRead(e));
    }
    let started = Instant::now();
    let (mut status, mut printed) = (None, None);
    loop {
        if status.is_none() {
            status = child.try_wait().map_err(PluginProblem::CannotWait)?;
        }
        if printed.is_none() {
            printed = match output.try_recv() {
                Ok(out) => Some(out),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Vec::new()),
            };
        }
        // Kept until both are in: the output often ends (stdout closed) a
        // moment before the plugin is seen to exit.
        if let (Some(status), Some(out)) = (status, printed.as_mut()) {
            return finished(status, std::mem::take(out));
        }
        if started.elapsed() >= timeout {
            kill_group(&mut child);
            let exited = status.is_some();
            return Err(PluginProblem::Stopped { timeout, exited });
        }
        std::thread::sleep(POLL);
    }
}

fn finished(status: std::process::ExitStatus, printed: Vec<u8>) -> Result<Vec<u8>, PluginProblem> {
    match status.code() {
        Some(0) if printed.len() > MAX_OUTPUT => Err(PluginProblem::TooMuch(MAX_OUTPUT / 1024)),
        Some(0) => Ok(printed),
        Some(code) => Err(PluginProblem::ExitCode(code)),
        None => Err(PluginProblem::Signal),
    }
}

/// Kills the plugin's process group, then reaps the plugin. The group outlives
/// the plugin while anything it started lives, and its id is not reused until
/// then, so the signal reaches no one else.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        signal_group(pid);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// std can signal a child but not its process group; libc can.
#[allow(
    unsafe_code,
    reason = "kill(2) for a process group, which std cannot do"
)]
fn signal_group(pid: i32) {
    // SAFETY: kill(2) takes two integers and touches no memory of this
    // process. `-pid` names the group the plugin was started in
    // (`process_group(0)` made its id the plugin's pid), which holds only the
    // plugin and what it started.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// An install hint is printed to a terminal-less log; control characters go.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(script: &str, timeout: Duration) -> ExecSettings {
        ExecSettings {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            api_version: super::super::V1,
            install_hint: None,
            cluster: None,
            describe: "exec plugin sh".into(),
            timeout,
        }
    }

    #[test]
    fn output_that_ends_before_the_plugin_exits_is_kept() {
        // Prints, closes its stdout, then tidies up for a while (as a plugin
        // writing its cache does): the output is read whole well before the
        // plugin is seen to exit.
        let plugin = settings(
            "echo credential; exec >&-; sleep 0.3",
            Duration::from_secs(10),
        );
        assert_eq!(run(&plugin, "{}").unwrap(), b"credential\n");
    }

    #[test]
    fn a_plugin_that_exits_at_once_is_read_whole() {
        let plugin = settings("echo credential", Duration::from_secs(10));
        assert_eq!(run(&plugin, "{}").unwrap(), b"credential\n");
    }
}
