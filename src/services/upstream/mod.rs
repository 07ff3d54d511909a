//! Connections to the API server: made by a [`Dial`] (TCP with timeouts, a
//! `proxy-url`'s tunnel, TLS verified: `dial`), read through rustls's own
//! buffer and checked for anything unasked-for before they serve another
//! request (`transport`), shared between clients (`pool`), and piped both
//! ways once upgraded (`tunnel`).

mod dial;
#[cfg(test)]
pub(crate) mod fake;
pub mod pool;
pub mod proxy_url;
mod transport;
pub mod tunnel;

use std::time::Duration;

pub use dial::{Address, ConnectError, Dial, Dialer, TlsSettings, CONNECT_TIMEOUT};
pub use pool::Pool;
pub use transport::{Connection, Transport};

/// Reads from the API server return at least this often, as timeouts, so that the
/// caller can check on its client while a watch is quiet: a client that leaves
/// frees the connection within this. It is not a limit: the caller reads again.
/// Set once per connection, so it costs no system call per request.
pub const READ_WAKE: Duration = Duration::from_millis(500);
/// Read buffer of a plain `http://` connection. A TLS connection reads through
/// rustls's own buffer of received plaintext (one record, up to 16 KiB), with
/// no second buffer and no copy.
pub const PLAIN_READ_BUFFER: usize = 16 * 1024;

/// The API server as kproxy reaches it: where requests go, over what.
pub struct Upstream {
    /// The Host header sent upstream: the API server's own authority.
    pub authority: String,
    /// The server URL's path with `--append-server-path`, put before each request's.
    pub path_prefix: String,
    pub pool: Pool,
}
