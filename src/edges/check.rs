//! `kproxy check`: whether a kproxy answers on an address, for exec probes.
//!
//! A scratch image has no shell or curl, and the kubelet's httpGet and tcpSocket
//! probes dial the Pod IP, which cannot reach a proxy bound to 127.0.0.1. So the
//! binary probes itself: it asks the running kproxy for [`crate::pipeline::route::ALIVE_PATH`],
//! which kproxy answers without the API server, and with `--ready` it also asks
//! the API server's `/readyz` through the proxy.

use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;

use crate::edges::cli::CheckArgs;
use crate::leaves::socket::Socket;
use crate::pipeline::route::ALIVE_PATH;

/// Most bytes of an answer read: a health answer is tiny.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why a check failed, worded for the probe's event in `kubectl describe pod`.
#[derive(Debug)]
pub struct CheckError(Box<CheckFailure>);

/// What the check found wrong.
#[derive(Debug)]
pub enum CheckFailure {
    /// `--host` holds a character no Host header may carry.
    BadHost(String),
    /// `--address` is not an IP address.
    BadAddress(String),
    /// Nothing accepted the connection.
    Unreachable { target: String, error: io::Error },
    /// The connection took no timeout; the check would hang.
    Timeouts(io::Error),
    /// The connection broke or timed out before the answer ended.
    NoAnswer {
        target: String,
        path: String,
        error: io::Error,
    },
    /// The answer is not an HTTP response.
    NotHttp { target: String, path: String },
    /// A kproxy answered 403: its `--accept-hosts` refused `--host`.
    HostRefused { target: String, host: String },
    /// Something answered, but not with kproxy's `ok`.
    NotKproxy { target: String, code: u16 },
    /// `--ready`: the API server's `/readyz` did not answer 200.
    NotReady { path: String, code: u16 },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            CheckFailure::BadHost(host) => write!(f, "invalid --host {host:?}"),
            CheckFailure::BadAddress(address) => {
                write!(f, "invalid --address {address:?}: expected an IP address")
            }
            CheckFailure::Unreachable { target, error } => {
                write!(f, "nothing answers on {target}: {error}")
            }
            CheckFailure::Timeouts(error) => write!(f, "cannot set the check's timeout: {error}"),
            CheckFailure::NoAnswer {
                target,
                path,
                error,
            } => write!(f, "no answer from {target} for {path}: {error}"),
            CheckFailure::NotHttp { target, path } => {
                write!(
                    f,
                    "{target} answered {path} with something that is not HTTP"
                )
            }
            CheckFailure::HostRefused { target, host } => write!(
                f,
                "{target} refused the check (403): pass --host with a name its --accept-hosts \
                 accepts (sent Host: {host})"
            ),
            CheckFailure::NotKproxy { target, code } => {
                write!(
                    f,
                    "{target} answers, but not as kproxy does (status {code})"
                )
            }
            CheckFailure::NotReady { path, code } => {
                write!(f, "the API server is not ready: {path} answered {code}")
            }
        }
    }
}

impl From<CheckFailure> for CheckError {
    fn from(failure: CheckFailure) -> Self {
        CheckError(Box::new(failure))
    }
}

impl CheckError {
    /// What the check found wrong.
    pub fn failure(&self) -> &CheckFailure {
        &self.0
    }
}

impl Error for CheckError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self.failure() {
            CheckFailure::Unreachable { error, .. }
            | CheckFailure::NoAnswer { error, .. }
            | CheckFailure::Timeouts(error) => Some(error),
            _ => None,
        }
    }
}

/// Runs the check. `Err` says why the probe fails.
pub fn run(args: &CheckArgs) -> Result<(), CheckError> {
    let (code, body) = get(args, ALIVE_PATH)?;
    if code == 403 {
        return Err(CheckError::from(CheckFailure::HostRefused {
            target: describe(args),
            host: args.host.clone(),
        }));
    }
    if code != 200 || body.trim() != "ok" {
        return Err(CheckError::from(CheckFailure::NotKproxy {
            target: describe(args),
            code,
        }));
    }
    if args.ready {
        let path = format!("{}/readyz", args.api_prefix.trim_end_matches('/'));
        let (code, _) = get(args, &path)?;
        if code != 200 {
            return Err(CheckError::from(CheckFailure::NotReady { path, code }));
        }
    }
    Ok(())
}

fn describe(args: &CheckArgs) -> String {
    match &args.unix_socket {
        Some(path) => path.display().to_string(),
        None => format!("{}:{}", args.address, args.port),
    }
}

/// One `GET` with `Connection: close`; returns the status and the body.
fn get(args: &CheckArgs, path: &str) -> Result<(u16, String), CheckError> {
    if args.host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(CheckError::from(CheckFailure::BadHost(args.host.clone())));
    }
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.host
    );
    let stream = match &args.unix_socket {
        Some(socket) => UnixStream::connect(socket).map(Socket::Unix),
        None => TcpStream::connect_timeout(&tcp_address(args)?, args.timeout).map(Socket::Tcp),
    };
    let stream = stream.map_err(|error| {
        CheckError::from(CheckFailure::Unreachable {
            target: describe(args),
            error,
        })
    })?;
    stream
        .set_timeouts(Some(args.timeout))
        .map_err(|e| CheckError::from(CheckFailure::Timeouts(e)))?;
    let answer = exchange(stream, &request).map_err(|error| {
        CheckError::from(CheckFailure::NoAnswer {
            target: describe(args),
            path: path.to_string(),
            error,
        })
    })?;
    parse_answer(&answer).ok_or_else(|| {
        CheckError::from(CheckFailure::NotHttp {
            target: describe(args),
            path: path.to_string(),
        })
    })
}

/// The address to dial: a wildcard listen address is reached on loopback.
fn tcp_address(args: &CheckArgs) -> Result<SocketAddr, CheckError> {
    let host = args.address.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .map_err(|_| CheckError::from(CheckFailure::BadAddress(args.address.clone())))?;
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, args.port))
}

fn exchange(mut stream: impl Read + Write, request: &str) -> io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    Ok(answer)
}

fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let code = status_line
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    Some((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nok\n"),
            Some((200, "ok\n".into()))
        );
        assert_eq!(
            parse_answer(b"HTTP/1.0 503 X\r\n\r\n"),
            Some((503, String::new()))
        );
        assert_eq!(parse_answer(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
