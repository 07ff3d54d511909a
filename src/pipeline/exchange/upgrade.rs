//! An upgrade (exec, attach, port-forward): the request goes on a connection
//! of its own; on `101 Switching Protocols` the two connections are piped into
//! each other until both ends are done. Any other answer is relayed as a
//! normal response.

use std::io::Write;
use std::time::Instant;

use super::error::ExchangeError;
use super::heads::{write_switching_head, Next};
use super::intake::{bad_body, Outgoing};
use super::respond::{respond_once, ResponseNeeds};
use super::send::{attempt, upstream_time, Attempt};
use super::{fail, Client, Outcome, Request, Shared};
use crate::leaves::http::response::ResponseHead;
use crate::leaves::http::HeadError;
use crate::services::metrics::METRICS;
use crate::services::upstream::tunnel;

/// Sends an upgrade request and, on 101, pipes both ways (see the module).
pub fn upgrade(
    shared: &Shared,
    request: Request,
    mut outgoing: Outgoing,
    client: &mut Client,
) -> Outcome {
    let mut conn = match shared.upstream.pool.fresh() {
        Ok(conn) => conn,
        Err(e) => return fail(client, ExchangeError::Connect(e), Next::Close),
    };
    if let Some(period) = shared.keepalive {
        conn.socket().set_keepalive(period);
        client.writer.get_ref().set_keepalive(period);
    }
    let mut head_buf = Vec::new();
    let sent = Instant::now();
    let attempted = attempt(
        shared,
        &mut conn,
        None,
        &request,
        &mut outgoing,
        client,
        &mut head_buf,
    );
    if attempted.is_ok() {
        client.trace.upstream = Some(upstream_time(sent, false));
    }
    let located = match attempted {
        Ok((located, 101)) => located,
        Ok((located, _)) => {
            let needs = ResponseNeeds {
                head_request: false,
                version: request.version,
                keep_alive: false,
            };
            return respond_once(needs, conn, located, &head_buf, client);
        }
        Err(Attempt::Stale(e)) => return fail(client, ExchangeError::Upstream(e), Next::Close),
        Err(Attempt::Failed(e)) => return fail(client, e, Next::Close),
        Err(Attempt::ClientGone) => return Outcome::nobody_left(),
        Err(Attempt::BadBody(e)) => return bad_body(client, e),
    };
    drop((request, outgoing));
    let switched = located
        .bytes(&mut conn.transport, &head_buf)
        .map_err(HeadError::Io)
        .and_then(ResponseHead::parse)
        .and_then(|response| {
            write_switching_head(&mut client.writer, &response).map_err(HeadError::Io)
        });
    let sent = switched.is_ok() && client.writer.flush().is_ok();
    let outcome = Outcome::new(101, 0, Next::Close);
    if !sent {
        return outcome;
    }
    located.consume(&mut conn.transport);
    let client_early = client.reader.buffer().to_vec();
    let (upstream_early, transport) = conn.transport.into_tunnel();
    // Either end of a tunnel may pause as long as it likes.
    client.writer.get_ref().set_write_timeout(None);
    METRICS.tunnels_total.inc();
    let _tunnel = METRICS.tunnels.open();
    let result = client
        .writer
        .get_ref()
        .try_clone()
        .and_then(|client_write| {
            tunnel::pipe(
                client.reader.get_mut(),
                client_write,
                &client_early,
                transport,
                &upstream_early,
            )
        });
    if let Err(e) = result {
        crate::log!(2, "tunnel ended with an error: {e}");
    }
    outcome
}
