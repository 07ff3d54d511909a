//! Where a request may go: the Host and Origin rules, the path's canonical form,
//! kproxy's own paths, `--api-prefix` and kubectl's filter.
//!
//! Decides only; refusals come back as the response to send. What is forwarded
//! keeps the client's escaping (kubectl does the same), and is only forwarded
//! when it is canonical, so the filter judged exactly that path (see [`crate::leaves::path`]).

pub mod filter;
pub mod patterns;

use crate::leaves::http::refusal::Reason;
use crate::leaves::http::request::RequestHead;
use crate::leaves::http::response::LocalResponse;
use crate::leaves::path::{canonical, PathError};
use crate::pipeline::route::filter::{host_without_port, Browser, Filter, Refusal};
use crate::pipeline::www::StaticFiles;

/// kproxy answers this path itself, whatever the prefix, so that `kproxy check`
/// can tell a live kproxy from anything else on the port without involving the
/// API server (which has no such path). Only for an accepted Host and Origin,
/// so that a page in a browser cannot use it to find kproxy.
pub const ALIVE_PATH: &str = "/.kproxy/alive";

pub struct Router {
    /// `None` with `--disable-filter`.
    pub filter: Option<Filter>,
    /// Starts and ends with `/`.
    pub api_prefix: String,
    /// `--www`: static files under their prefix.
    pub www: Option<StaticFiles>,
}

/// Where a request goes; borrows from the request and the router.
pub enum Route<'r> {
    /// `GET /.kproxy/alive`: answered by kproxy.
    Alive,
    /// `OPTIONS *`: answered by kproxy, as Go's server (and so kubectl) does.
    ServerOptions,
    /// To the API server, with this origin-form target (prefix removed, the
    /// client's escaping kept).
    Forward(&'r str),
    /// A static file (`--www`): the files, and its canonical, decoded path.
    Static(&'r StaticFiles, String),
}

impl Router {
    pub fn route<'r>(&'r self, head: &RequestHead<'r>) -> Result<Route<'r>, LocalResponse> {
        let host = request_host(head)?;
        let target = head.origin_form();
        if target == "*" {
            return match head.method {
                "OPTIONS" => Ok(Route::ServerOptions),
                _ => Err(bad_request("bad request target")),
            };
        }
        if !target.starts_with('/') {
            return Err(bad_request("bad request target"));
        }
        let path = match canonical(head.path()) {
            Ok(path) => path,
            Err(PathError::Undecodable) => return Err(bad_request("bad path")),
            Err(PathError::NotCanonical(cleaned)) => {
                let mut response = LocalResponse::moved(&cleaned, head.query());
                response.reason = Some(Reason::NonCanonicalPath);
                return Err(response);
            }
        };
        let browser = browser(head)?;
        if let Some(filter) = &self.filter {
            filter
                .admits_client(host, &browser)
                .map_err(|why| refuse(filter, head, why, host, &browser, head.path()))?;
        }
        if head.path() == ALIVE_PATH && head.method == "GET" {
            return Ok(Route::Alive);
        }
        if let Some(www) = self.static_files(path.as_str()) {
            return match head.method {
                "GET" | "HEAD" if path.as_str().len() + 1 == www.prefix.len() => {
                    Err(LocalResponse::moved(&www.prefix, head.query()))
                }
                "GET" | "HEAD" => Ok(Route::Static(www, path.as_str().to_string())),
                _ => {
                    let mut refused = LocalResponse::text(405, "Method Not Allowed");
                    refused.extra.push_str("Allow: GET, HEAD\r\n");
                    Err(refused)
                }
            };
        }
        let target = self.strip_prefix(head, target)?;
        if let Some(filter) = &self.filter {
            // The filter sees the path without the prefix, as kubectl's does; the
            // prefix is plain text, so what is left of a canonical path is canonical.
            let path = match self.api_prefix.as_str() {
                "/" => path,
                _ => {
                    let rest = target.split_once('?').map_or(target, |(path, _)| path);
                    canonical(rest).map_err(|_| bad_request("bad path"))?
                }
            };
            filter
                .check(head.method, &path, host, &browser)
                .map_err(|why| refuse(filter, head, why, host, &browser, path.as_str()))?;
        }
        Ok(Route::Forward(target))
    }

    /// The static files, if `path` is theirs: under their prefix (or the prefix
    /// without its slash), when that prefix is at least as long as the API's (Go's
    /// ServeMux picks the longest matching pattern, as kubectl's does).
    fn static_files(&self, path: &str) -> Option<&StaticFiles> {
        let www = self.www.as_ref()?;
        let ours = path.starts_with(&www.prefix) || path == www.prefix.trim_end_matches('/');
        let longer =
            www.prefix.len() >= self.api_prefix.len() || !path.starts_with(&self.api_prefix);
        (ours && longer).then_some(www)
    }

    /// `--api-prefix`: 404 outside it, 301 for the bare prefix (Go's ServeMux
    /// adds the slash), and the target without it otherwise.
    fn strip_prefix<'h>(
        &self,
        head: &RequestHead<'h>,
        target: &'h str,
    ) -> Result<&'h str, LocalResponse> {
        let prefix = self.api_prefix.as_str();
        if prefix == "/" {
            Ok(target)
        } else if head.path() == prefix.trim_end_matches('/') {
            Err(LocalResponse::moved(prefix, head.query()))
        } else if head.path().starts_with(prefix) {
            Ok(&target[prefix.len() - 1..])
        } else {
            Err(LocalResponse::text(404, "404 page not found"))
        }
    }
}

/// The filter's 403, whose message names the rule, the flag and its value.
/// `path` is the path the filter judged.
fn refuse(
    filter: &Filter,
    head: &RequestHead,
    why: Refusal,
    host: &str,
    browser: &Browser,
    path: &str,
) -> LocalResponse {
    let judged = match why {
        Refusal::RejectedPath | Refusal::PathNotAccepted => path,
        Refusal::RejectedMethod => head.method,
        Refusal::HostNotAccepted => host,
        Refusal::OriginNotAccepted => browser.origin.unwrap_or_default(),
        Refusal::OtherSite => browser.fetch_site.unwrap_or_default(),
    };
    let message = filter.explain(&why, judged);
    crate::log!(
        3,
        "filter refused {} {}: {message}",
        head.method,
        head.path()
    );
    why.reason().answer(&message)
}

/// A request kproxy will not judge, let alone forward.
fn bad_request(why: &str) -> LocalResponse {
    Reason::BadRequest.answer(why)
}

/// The host the request is for, without port: from an absolute-form target, or
/// else the single Host header.
fn request_host<'h>(head: &RequestHead<'h>) -> Result<&'h str, LocalResponse> {
    let mut hosts = head.headers.get_all("Host");
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(bad_request("more than one Host header"));
    }
    let authority = match head.absolute_authority() {
        Some(authority) => authority,
        None => {
            let value = first.ok_or_else(|| bad_request("missing Host header"))?;
            std::str::from_utf8(value).map_err(|_| bad_request("bad Host header"))?
        }
    };
    host_without_port(authority.trim()).ok_or_else(|| bad_request("bad Host header"))
}

/// What the request's browser headers say of the page it comes from, if any.
/// More than one of a field is not something a browser sends: refused rather
/// than guessed.
fn browser<'h>(head: &RequestHead<'h>) -> Result<Browser<'h>, LocalResponse> {
    Ok(Browser {
        origin: single(head, "Origin")?,
        fetch_site: single(head, "Sec-Fetch-Site")?,
        referer: single(head, "Referer")?,
    })
}

fn single<'h>(head: &RequestHead<'h>, name: &str) -> Result<Option<&'h str>, LocalResponse> {
    let mut values = head.headers.get_all(name);
    let (first, second) = (values.next(), values.next());
    if second.is_some() {
        return Err(bad_request(&format!("more than one {name} header")));
    }
    first
        .map(|value| {
            std::str::from_utf8(value).map_err(|_| bad_request(&format!("bad {name} header")))
        })
        .transpose()
}
