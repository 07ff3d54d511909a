//! `--www DIR` under `--www-prefix` (default `/static/`): static files, as kubectl
//! serves them with Go's `http.FileServer`, and never anything outside DIR.
//!
//! The path arrives canonical and percent-decoded (no `.` or `..` segments: those
//! were answered 301 before, see [`crate::leaves::path`]); the file it names, and a
//! directory's `index.html`, are resolved with symlinks followed and must
//! still lie inside DIR, so a link pointing out is a 404 like a missing file.
//! Only a regular file is served: it is opened without blocking (a FIFO's
//! open would wait for a writer, and hold the connection's thread) and checked
//! as opened, where it really is included, so a name swapped for something
//! else after the checks is a 404 too. A directory without an `index.html` is
//! refused: unlike Go, no listing of what DIR holds. Files stream to the
//! client; only GET and HEAD are served.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::leaves::http::request::RequestHead;
use crate::leaves::http::response::{reason, LocalResponse};
use crate::leaves::http::sink::Sink;
use crate::leaves::socket::Socket;
use crate::pipeline::exchange::{local, Next, Outcome};

pub struct StaticFiles {
    /// Canonical (symlinks resolved), so containment is a prefix check.
    pub dir: PathBuf,
    /// Starts and ends with `/`.
    pub prefix: String,
}

/// Why `--www DIR` cannot be served.
#[derive(Debug)]
pub enum WwwError {
    Unreadable(PathBuf, io::Error),
    NotADirectory(PathBuf),
}

impl std::fmt::Display for WwwError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WwwError::Unreadable(dir, e) => write!(f, "--www {}: {e}", dir.display()),
            WwwError::NotADirectory(dir) => write!(f, "--www {}: not a directory", dir.display()),
        }
    }
}

impl std::error::Error for WwwError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WwwError::Unreadable(_, e) => Some(e),
            WwwError::NotADirectory(_) => None,
        }
    }
}

/// What to answer for a static path.
pub enum Found {
    File(File, u64, &'static str),
    /// A directory asked for without its trailing slash (Go's redirect).
    AddSlash,
    Refused(LocalResponse),
}

impl StaticFiles {
    /// `dir` must exist and be a directory; `prefix` gets its slashes.
    pub fn new(dir: &Path, prefix: &str) -> Result<StaticFiles, WwwError> {
        let dir = dir
            .canonicalize()
            .map_err(|e| WwwError::Unreadable(dir.to_path_buf(), e))?;
        if !dir.is_dir() {
            return Err(WwwError::NotADirectory(dir));
        }
        let mut prefix = format!("/{}", prefix.trim_start_matches('/'));
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(StaticFiles { dir, prefix })
    }

    /// The file for `path` (canonical, decoded, under the prefix).
    pub fn find(&self, path: &str) -> Found {
        let not_found = || Found::Refused(LocalResponse::text(404, "404 page not found"));
        let relative = path[self.prefix.len()..].trim_start_matches('/');
        // A decoded %00 or %2F could not name a file by its segments; refuse.
        if relative.contains('\0') {
            return not_found();
        }
        let Ok(real) = self.dir.join(relative).canonicalize() else {
            return not_found();
        };
        if !self.holds(&real, path) {
            return not_found();
        }
        let file = match real.is_dir() {
            false => real,
            true if !path.ends_with('/') => return Found::AddSlash,
            true => match real.join("index.html").canonicalize() {
                Ok(index) if self.holds(&index, path) => index,
                Ok(_) => return not_found(),
                Err(_) => {
                    return Found::Refused(LocalResponse::text(
                        403,
                        "kproxy does not list directories",
                    ))
                }
            },
        };
        match self.open_regular(&file) {
            Some((f, len)) => Found::File(f, len, content_type(&file)),
            None => not_found(),
        }
    }

    /// Whether `real` (symlinks resolved) lies inside the directory.
    fn holds(&self, real: &Path, asked: &str) -> bool {
        let inside = real.starts_with(&self.dir);
        if !inside {
            crate::log!(
                3,
                "--www: {asked} leads outside {}: refused",
                self.dir.display()
            );
        }
        inside
    }

    /// Opens `path` if it is a regular file inside the directory, as opened:
    /// without blocking on a FIFO or a device, checked with fstat, and where
    /// the descriptor really points (/proc/self/fd), so that a path component
    /// replaced by a symlink since the checks above cannot lead outside.
    fn open_regular(&self, path: &Path) -> Option<(File, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            crate::log!(
                3,
                "--www: {} is not a regular file: refused",
                path.display()
            );
            return None;
        }
        let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if let Ok(opened) = opened {
            if !self.holds(&opened, &path.display().to_string()) {
                return None;
            }
        }
        Some((file, meta.len()))
    }
}

/// Answers a request for a static file: the file, streamed (nothing for a
/// `HEAD`), a redirect to a directory's slashed path, or a refusal. `path` is
/// the canonical, decoded form of the request's path.
pub fn serve(
    writer: &mut Sink<Socket>,
    files: &StaticFiles,
    head: &RequestHead,
    path: &str,
    next: Next,
) -> Outcome {
    match files.find(path) {
        Found::File(file, len, content_type) => {
            let head_only = head.method == "HEAD";
            let keep = next == Next::KeepAlive;
            match send(writer, file, len, content_type, head_only, keep) {
                Ok(bytes) => Outcome::new(200, bytes, next),
                Err(_) => Outcome::new(200, 0, Next::Close),
            }
        }
        // The client's own escaping and query, as Go's FileServer keeps them: the
        // decoded path could hold a `?` or `#` that would change what it names.
        Found::AddSlash => {
            let slashed = format!("{}/", head.path());
            local(writer, &LocalResponse::moved(&slashed, head.query()), next)
        }
        Found::Refused(response) => local(writer, &response, next),
    }
}

/// Writes a file's answer, its body streamed unless `head_only`.
fn send<W: Write>(
    out: &mut W,
    mut file: File,
    len: u64,
    content_type: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<u64> {
    let connection = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    write!(
        out,
        "HTTP/1.1 200 {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         X-Content-Type-Options: nosniff\r\n{connection}\r\n",
        reason(200)
    )?;
    let sent = match head_only {
        true => 0,
        false => io::copy(&mut (&mut file).take(len), out)?,
    };
    out.flush()?;
    if sent < len && !head_only {
        // The file shrank while being sent: the length promised cannot be kept.
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
    }
    Ok(sent)
}

/// By extension, as Go's `mime.TypeByExtension` knows the common ones; Go would
/// sniff the rest, kproxy calls it bytes.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("xml") => "text/xml; charset=utf-8",
        _ => "application/octet-stream",
    }
}
