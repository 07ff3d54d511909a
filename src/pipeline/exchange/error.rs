//! What can go wrong with one exchange, and what the client sees for each.
//!
//! Every one is answered with a Kubernetes `Status` object, so that kubectl
//! prints the reason, and counted by its [`Reason`]. After an error on the
//! client's side the connection is closed (its framing can no longer be
//! trusted); after one on the API server's side it stays usable.

use std::fmt;
use std::io;

use crate::leaves::http::refusal::Reason;
use crate::leaves::http::request::{MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE};
use crate::leaves::http::response::LocalResponse;
use crate::leaves::http::HeadError;
use crate::services::upstream::ConnectError;

#[derive(Debug)]
pub enum ExchangeError {
    /// The client's request is not acceptable HTTP.
    BadRequest(HeadError),
    /// No connection to the API server could be made.
    Connect(ConnectError),
    /// The connection to the API server failed during the exchange.
    Upstream(io::Error),
    /// The API server's reply is not HTTP we can frame.
    BadResponse(HeadError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::BadRequest(e) => write!(f, "bad request: {e}"),
            ExchangeError::Connect(e) => e.fmt(f),
            ExchangeError::Upstream(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the API server closed the connection before answering")
            }
            ExchangeError::Upstream(e) => write!(f, "connection to the API server failed: {e}"),
            ExchangeError::BadResponse(e) => {
                write!(f, "the API server's reply is not valid HTTP: {e}")
            }
        }
    }
}

impl std::error::Error for ExchangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExchangeError::BadRequest(e) | ExchangeError::BadResponse(e) => Some(e),
            ExchangeError::Connect(e) => Some(e),
            ExchangeError::Upstream(e) => Some(e),
        }
    }
}

impl ExchangeError {
    /// The rule or failure behind this error, as counted and logged.
    pub fn reason(&self) -> Reason {
        match self {
            ExchangeError::BadRequest(e) => head_reason(e),
            ExchangeError::Connect(ConnectError::Busy { .. }) => Reason::UpstreamBusy,
            ExchangeError::Connect(ConnectError::Timeout(_)) => Reason::UpstreamTimeout,
            ExchangeError::Connect(ConnectError::Tls(_)) => Reason::UpstreamTls,
            ExchangeError::Connect(_) => Reason::UpstreamConnect,
            ExchangeError::Upstream(_) => Reason::UpstreamFailed,
            ExchangeError::BadResponse(_) => Reason::UpstreamBadResponse,
        }
    }

    /// The answer for the client: a `Status` saying what failed and, where
    /// the client or the operator can change it, how.
    pub fn response(&self) -> LocalResponse {
        let reason = self.reason();
        let hint = match reason {
            Reason::UriTooLong => format!(
                "; kproxy takes request lines up to {} KiB",
                MAX_REQUEST_LINE / 1024
            ),
            Reason::HeaderTooLarge => format!(
                "; kproxy takes heads up to {} KiB and {MAX_HEADERS} fields",
                MAX_HEAD / 1024
            ),
            Reason::RequestTimeout => " (--header-timeout)".into(),
            _ => String::new(),
        };
        reason.answer(&format!("{self}{hint}"))
    }
}

/// A large request (head or kept body) while the memory budget for them is
/// spent: try again shortly (see [`crate::leaves::budget`]).
pub fn no_room() -> LocalResponse {
    Reason::MemoryBudget.answer(&HeadError::NoRoom.to_string())
}

fn head_reason(e: &HeadError) -> Reason {
    match e {
        HeadError::LineTooLong => Reason::UriTooLong,
        HeadError::TooLarge => Reason::HeaderTooLarge,
        HeadError::TimedOut => Reason::RequestTimeout,
        HeadError::NoRoom => Reason::MemoryBudget,
        _ => Reason::BadRequest,
    }
}
