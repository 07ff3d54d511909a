//! Where a request may go: `--api-prefix`, the Host rules and kubectl's filter.
//!
//! Decides only; refusals come back as the response to send. What is forwarded
//! keeps the client's escaping (kubectl does the same); the filter sees the path
//! normalised (see [`crate::filter`]).

use crate::filter::{host_without_port, Filter, Refusal};
use crate::http::request::RequestHead;
use crate::http::response::LocalResponse;

pub struct Router {
    /// `None` with `--disable-filter`.
    pub filter: Option<Filter>,
    /// Starts and ends with `/`.
    pub api_prefix: String,
}

impl Router {
    /// Applies `--api-prefix`, the Host rules and the filter. Returns the target
    /// to send upstream (origin-form, prefix removed, the client's escaping kept).
    pub fn route<'h>(&self, head: &'h RequestHead) -> Result<&'h str, LocalResponse> {
        let host = request_host(head)?;
        let target = head.origin_form();
        if !target.starts_with('/') && target != "*" {
            return Err(LocalResponse::text(400, "bad request target"));
        }
        let prefix = self.api_prefix.as_str();
        let target = if prefix == "/" {
            target
        } else if head.path() == prefix.trim_end_matches('/') {
            // kubectl (Go's ServeMux) redirects the bare prefix to its slash form.
            let mut moved = LocalResponse::text(301, "Moved Permanently");
            moved.extra.push_str(&format!("Location: {prefix}\r\n"));
            return Err(moved);
        } else if head.path().starts_with(prefix) {
            &target[prefix.len() - 1..]
        } else {
            return Err(LocalResponse::text(404, "404 page not found"));
        };
        if let Some(filter) = &self.filter {
            let path = target.split_once('?').map_or(target, |(path, _)| path);
            match filter.check(&head.method, path, host) {
                Ok(()) => {}
                Err(Refusal::Forbidden) => {
                    crate::log!(3, "filter refused {} {}", head.method, path);
                    return Err(LocalResponse::text(403, "Forbidden"));
                }
                Err(Refusal::BadPath) => return Err(LocalResponse::text(400, "bad path")),
            }
        }
        Ok(target)
    }
}

/// The host the request is for, without port: from an absolute-form target, or
/// else the single Host header.
fn request_host(head: &RequestHead) -> Result<&str, LocalResponse> {
    let mut hosts = head.headers.get_all("Host");
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(LocalResponse::text(400, "more than one Host header"));
    }
    let authority = match head.absolute_authority() {
        Some(authority) => authority,
        None => {
            let value = first.ok_or_else(|| LocalResponse::text(400, "missing Host header"))?;
            std::str::from_utf8(value).map_err(|_| LocalResponse::text(400, "bad Host header"))?
        }
    };
    host_without_port(authority.trim()).ok_or_else(|| LocalResponse::text(400, "bad Host header"))
}
