//! Logging to stderr, filtered by `-v` as kubectl's klog levels are: 0 for
//! warnings and errors (a healthy kproxy prints nothing but its start line,
//! which goes to stdout for scripts), 2 for events (token reloads, drains), 4
//! for one line per request, 6 for query strings too.
//!
//! `--log-format json` writes each line as one JSON object, for log pipelines:
//! `time` (RFC 3339, UTC, milliseconds), `level`, `v`, `msg`, then `event` for
//! events or the request's fields. Never pass a header value, a token, a
//! password, a key or a body.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::leaves::json;

static VERBOSITY: AtomicU8 = AtomicU8::new(0);
static JSON: AtomicBool = AtomicBool::new(false);

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `kproxy: message`, as kproxy has always written.
    Text,
    /// One JSON object per line.
    Json,
}

pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= VERBOSITY.load(Ordering::Relaxed)
}

/// How bad a line is: `level` in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// `log!(level, "format", args...)`: one line on stderr when `-v` is at least
/// `level`. Level 0 lines are errors; see [`warn!`](crate::warn) for warnings.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        if $crate::leaves::log::enabled($level) {
            $crate::leaves::log::line($level, None, format_args!($($arg)+));
        }
    };
}

/// `warn!("format", args...)`: always shown, as `warning: ...` in text.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::leaves::log::warning(format_args!($($arg)+))
    };
}

/// `event!(level, "name", "format", args...)`: a line that marks an event
/// (`token_reload`, `drain`...), with `"event":"name"` in JSON.
#[macro_export]
macro_rules! event {
    ($level:expr, $name:expr, $($arg:tt)+) => {
        if $crate::leaves::log::enabled($level) {
            $crate::leaves::log::line($level, Some($name), format_args!($($arg)+));
        }
    };
}

/// A line at `level`: an error at 0, information above.
pub fn line(level: u8, event: Option<&str>, message: fmt::Arguments) {
    let severity = match level {
        0 => Severity::Error,
        _ => Severity::Info,
    };
    write(severity, level, message, |fields| {
        if let Some(name) = event {
            let _ = write!(fields, ",\"event\":\"{name}\"");
        }
    });
}

pub fn warning(message: fmt::Arguments) {
    write(Severity::Warning, 0, message, |_| {});
}

/// One request, at `-v 4` and above.
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The path, and from `-v 6` the query string too.
    pub target: &'a str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub took: Duration,
    /// Time to the API server's response head, and whether its connection was reused.
    pub upstream: Option<(Duration, bool)>,
    /// `None`: a unix socket.
    pub client: Option<IpAddr>,
    /// The refusal reason's label, if kproxy refused it.
    pub reason: Option<&'static str>,
}

impl RequestLine<'_> {
    pub fn write(&self) {
        let message = format_args!(
            "{} {} {} {}B {}ms",
            self.method,
            self.target,
            self.status,
            self.bytes_out,
            Millis(self.took)
        );
        write(Severity::Info, 4, message, |f| {
            let _ = write!(
                f,
                ",\"method\":{},\"path\":{},\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{}",
                json::string(self.method),
                json::string(self.target),
                self.status,
                self.bytes_in,
                self.bytes_out,
                Millis(self.took)
            );
            if let Some((took, reused)) = self.upstream {
                let conn = if reused { "reused" } else { "new" };
                let _ = write!(
                    f,
                    ",\"upstream_ms\":{},\"upstream_conn\":\"{conn}\"",
                    Millis(took)
                );
            }
            let _ = match self.client {
                Some(ip) => write!(f, ",\"client\":\"{ip}\""),
                None => write!(f, ",\"client\":\"unix\""),
            };
            if let Some(reason) = self.reason {
                let _ = write!(f, ",\"reason\":\"{reason}\"");
            }
        });
    }
}

/// Milliseconds with three decimals, from integers (no float formatting).
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// Writes one line, whole, in the chosen format; `fields` adds JSON fields.
fn write(severity: Severity, level: u8, message: fmt::Arguments, fields: impl FnOnce(&mut String)) {
    let mut out = String::with_capacity(160);
    if JSON.load(Ordering::Relaxed) {
        let _ = write!(
            out,
            "{{\"time\":\"{}\",\"level\":\"{}\",\"v\":{level},\"msg\":{}",
            Rfc3339(SystemTime::now()),
            severity.name(),
            json::string(&message.to_string())
        );
        fields(&mut out);
        out.push_str("}\n");
    } else {
        let prefix = match severity {
            Severity::Warning => "warning: ",
            _ => "",
        };
        let _ = writeln!(out, "kproxy: {prefix}{message}");
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// `2026-11-29T05:04:34.123Z`.
struct Rfc3339(SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_date(secs / 86_400);
        let of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            since.subsec_millis()
        )
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let at = |secs, millis| {
            Rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
                .to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_795_928_674, 123), "2026-11-29T05:04:34.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn milliseconds_without_floats() {
        assert_eq!(
            Millis(Duration::from_micros(1_234_567)).to_string(),
            "1234.567"
        );
        assert_eq!(Millis(Duration::from_micros(5)).to_string(), "0.005");
    }
}
