//! What can go wrong with one exchange, and what the client sees for each.
//!
//! Errors from the client's side are answered with a plain status and the
//! connection closed (its framing can no longer be trusted). Errors from the API
//! server's side are answered with a Kubernetes `Status` object, so that kubectl
//! prints the reason, and the client connection stays usable.

use std::fmt;
use std::io;

use crate::http::response::LocalResponse;
use crate::http::HeadError;
use crate::upstream::ConnectError;

#[derive(Debug)]
pub enum ProxyError {
    /// The client's request is not acceptable HTTP.
    BadRequest(HeadError),
    /// No connection to the API server could be made.
    Connect(ConnectError),
    /// The connection to the API server failed during the exchange.
    Upstream(io::Error),
    /// The API server's reply is not HTTP we can frame.
    BadResponse(HeadError),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::BadRequest(e) => write!(f, "bad request: {e}"),
            ProxyError::Connect(e) => e.fmt(f),
            ProxyError::Upstream(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the API server closed the connection before answering")
            }
            ProxyError::Upstream(e) => write!(f, "connection to the API server failed: {e}"),
            ProxyError::BadResponse(e) => {
                write!(f, "the API server's reply is not valid HTTP: {e}")
            }
        }
    }
}

impl ProxyError {
    /// The answer for the client.
    pub fn response(&self) -> LocalResponse {
        match self {
            ProxyError::BadRequest(HeadError::NoRoom) => no_room(),
            ProxyError::BadRequest(e) => LocalResponse::text(request_status(e), &self.to_string()),
            ProxyError::Connect(e) if e.is_timeout() => {
                LocalResponse::status(504, "Timeout", &self.to_string())
            }
            ProxyError::Connect(ConnectError::Busy { .. }) => {
                let mut busy = LocalResponse::status(503, "ServiceUnavailable", &self.to_string());
                busy.extra.push_str("Retry-After: 1\r\n");
                busy
            }
            _ => LocalResponse::status(502, "BadGateway", &self.to_string()),
        }
    }
}

/// A large request (head or kept body) while the memory budget for them is
/// spent: try again shortly (see [`crate::budget`]).
pub fn no_room() -> LocalResponse {
    let mut response =
        LocalResponse::status(503, "ServiceUnavailable", &HeadError::NoRoom.to_string());
    response.extra.push_str("Retry-After: 1\r\n");
    response
}

fn request_status(e: &HeadError) -> u16 {
    match e {
        HeadError::LineTooLong => 414,
        HeadError::TooLarge => 431,
        HeadError::TimedOut => 408,
        _ => 400,
    }
}
