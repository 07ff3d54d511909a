//! `--www DIR` under `--www-prefix` (default `/static/`): static files, as kubectl
//! serves them with Go's `http.FileServer`, and never anything outside DIR.
//!
//! The path arrives canonical and percent-decoded (no `.` or `..` segments: those
//! were answered 301 before, see [`crate::path`]); the file it names is resolved
//! with symlinks followed and must still lie inside DIR, so a link pointing out
//! is a 404 like a missing file. A directory serves its `index.html`, and is
//! otherwise refused: unlike Go, no listing of what DIR holds. Files stream to
//! the client; only GET and HEAD are served.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::http::response::{reason, LocalResponse};

pub struct StaticFiles {
    /// Canonical (symlinks resolved), so containment is a prefix check.
    pub dir: PathBuf,
    /// Starts and ends with `/`.
    pub prefix: String,
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
    pub fn new(dir: &Path, prefix: &str) -> Result<StaticFiles, String> {
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("--www {}: {e}", dir.display()))?;
        if !dir.is_dir() {
            return Err(format!("--www {}: not a directory", dir.display()));
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
        if !real.starts_with(&self.dir) {
            crate::log!(
                3,
                "--www: {path} leads outside {}: refused",
                self.dir.display()
            );
            return not_found();
        }
        let file = match real.is_dir() {
            false => real,
            true if !path.ends_with('/') => return Found::AddSlash,
            true => match real.join("index.html") {
                index if index.is_file() => index,
                _ => {
                    return Found::Refused(LocalResponse::text(
                        403,
                        "kproxy does not list directories",
                    ))
                }
            },
        };
        match File::open(&file).and_then(|f| Ok((f.metadata()?.len(), f))) {
            Ok((len, f)) => Found::File(f, len, content_type(&file)),
            Err(_) => not_found(),
        }
    }
}

/// Writes a file's answer, its body streamed unless `head_only`.
pub fn send<W: Write>(
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
