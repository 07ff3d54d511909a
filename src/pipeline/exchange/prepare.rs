//! A routed request head becomes what is sent: the upstream head, the token to
//! add, the body's framing. After this the client's head is no longer needed.

use std::net::IpAddr;

use super::heads::{Adds, UpstreamHead};
use super::{Request, Shared};
use crate::leaves::http::body::BodyKind;
use crate::leaves::http::refusal::Reason;
use crate::leaves::http::request::RequestHead;
use crate::leaves::http::response::LocalResponse;
use crate::services::credentials::Token;

/// The request for the API server, for `head` routed to `target` (its
/// origin-form, the `--api-prefix` removed), whose body is framed as `body`.
/// Refused (500) when an exec plugin cannot give a token.
pub fn prepare(
    shared: &Shared,
    head: &RequestHead,
    target: &str,
    body: BodyKind,
    peer: Option<IpAddr>,
) -> Result<Request, LocalResponse> {
    let token = token_for(shared, head)?;
    let upgrade = upgrade_protocol(head);
    let upstream = &shared.upstream;
    let joined;
    let sent_target = match upstream.path_prefix.is_empty() {
        true => target,
        false => {
            joined = format!("{}{}", upstream.path_prefix, target);
            &joined
        }
    };
    let adds = Adds {
        token: token.is_some(),
        // As client-go: none of ours when the client impersonates on its own.
        impersonation: shared
            .credentials
            .impersonation
            .as_deref()
            .filter(|_| head.headers.get("Impersonate-User").is_none()),
    };
    Ok(Request {
        head: UpstreamHead::new(head, sent_target, &upstream.authority, peer, adds, upgrade),
        token,
        body,
        expects_continue: head
            .headers
            .get("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")),
        version: head.version,
        keep_alive: head.keep_alive(),
        upgrade: upgrade.is_some(),
        long_lived: is_watch(target),
    })
}

/// The token to add: the current one, unless the client brought credentials
/// of its own, which pass through as kubectl's do. As in kubectl (whose
/// transport adds the token when `Authorization` is empty, after the
/// hop-by-hop fields are gone), an empty `Authorization`, or one that
/// `Connection` names, is not the client's own: it is replaced. An exec
/// plugin that cannot give one fails the request, as in kubectl (500).
fn token_for(shared: &Shared, head: &RequestHead) -> Result<Option<Token>, LocalResponse> {
    let own = head.headers.is_end_to_end("Authorization")
        && head
            .headers
            .get("Authorization")
            .is_some_and(|v| !v.trim_ascii().is_empty());
    match own {
        true => Ok(None),
        false => shared
            .credentials
            .authorization
            .current()
            .map_err(|e| Reason::Credentials.answer(&e.to_string())),
    }
}

/// Whether a request asks for an answer that streams for as long as the client
/// likes: `?watch=true` (or `1`), the old `/watch/` paths, `?follow=true` logs.
fn is_watch(target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let asks = |name: &str| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key == name && matches!(value, "true" | "1"))
        })
    };
    let mut segments = path.split('/').skip(1);
    let watch_path = match segments.next() {
        Some("api") => segments.nth(1) == Some("watch"),
        Some("apis") => segments.nth(2) == Some("watch"),
        _ => false,
    };
    watch_path || asks("watch") || asks("follow")
}

/// The protocol asked for, if the request is an upgrade: a `Connection` header
/// containing `upgrade` (kubectl's test) and an `Upgrade` header to say to what.
fn upgrade_protocol<'b>(head: &RequestHead<'b>) -> Option<&'b [u8]> {
    if !head.headers.has_token("Connection", "upgrade") {
        return None;
    }
    head.headers.get("Upgrade").filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::is_watch;

    #[test]
    fn watches_are_told_by_their_target() {
        for target in [
            "/api/v1/namespaces/default/pods?watch=true",
            "/api/v1/pods?labelSelector=a&watch=1",
            "/api/v1/watch/namespaces/default/pods",
            "/apis/apps/v1/watch/deployments",
            "/api/v1/namespaces/default/pods/p/log?follow=true&container=main",
        ] {
            assert!(is_watch(target), "{target}");
        }
        for target in [
            "/api/v1/namespaces/default/pods",
            "/api/v1/pods?watch=false",
            "/api/v1/namespaces/watch/pods",
            "/api/v1/namespaces/default/pods/p/log",
            "/api/v1/pods?resourceVersionMatch=NotOlderThan&xwatch=1",
        ] {
            assert!(!is_watch(target), "{target}");
        }
    }
}
