//! Answers that take their time: watches, slow answers, upgrades. Each piece
//! is relayed as it comes, a client that leaves frees what it held, and
//! nobody else waits behind them.

use std::sync::mpsc;
use std::sync::Mutex;

use super::*;
use crate::services::upstream::fake::Reply;

#[test]
fn watch_events_reach_the_client_as_they_come() {
    let api = FakeApi::new(|_| Reply::Watch(Duration::from_millis(5)));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(
        b"GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let head = conn.head();
    assert_eq!(head.code, 200);
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    for n in 1..=3 {
        let event = conn.chunk().unwrap();
        assert_eq!(
            String::from_utf8(event).unwrap(),
            format!("{{\"type\":\"ADDED\",\"object\":{{\"n\":{n}}}}}\n")
        );
    }
}

#[test]
fn a_client_that_leaves_a_watch_closes_it_upstream() {
    let api = FakeApi::new(|_| Reply::Watch(Duration::from_millis(20)));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api/v1/watch/namespaces/default/pods HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.head();
    conn.chunk().unwrap();
    drop(conn);
    wait_until("the watch ended upstream", || api.watches_ended() == 1);
    wait_until("its connection closed", || api.closed() == 1);
}

#[test]
fn a_quiet_watch_whose_client_left_is_noticed() {
    // One event, then nothing: kproxy learns of the client's leaving from
    // its own socket, not from a failed write.
    let api = FakeApi::new(|_| Reply::Watch(Duration::from_secs(3600)));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(b"GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.head();
    conn.chunk().unwrap();
    let served = std::mem::replace(&mut conn.served, thread::spawn(|| {}));
    drop(conn);
    wait_until("the connection's thread ended", || served.is_finished());
}

#[test]
fn watches_take_no_place_among_the_counted_connections() {
    let api = FakeApi::new(|seen| match seen.target.contains("watch") {
        true => Reply::Watch(Duration::from_millis(50)),
        false => Reply::json("{}"),
    });
    let kproxy = Setup {
        limit: 1,
        ..Setup::default()
    }
    .start(&api);
    let mut watches = Vec::new();
    for _ in 0..3 {
        let mut conn = kproxy.connect();
        conn.send(b"GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n");
        conn.head();
        conn.chunk().unwrap();
        watches.push(conn);
    }
    let mut conn = kproxy.connect();
    assert_eq!(conn.get("/api").code, 200);
    assert_eq!(conn.get("/api").code, 200);
    // One connection per watch, and the one counted connection, reused.
    assert_eq!(api.dials(), 4);
}

#[test]
fn a_slow_answer_keeps_no_one_else_waiting() {
    // The slow answer comes only once the fast request has its answer: had
    // the fast one waited behind it, neither would finish (the test would
    // fail on the fast one's 503 after the pool's wait).
    let (done, fast_done) = mpsc::channel::<()>();
    let fast_done = Mutex::new(fast_done);
    let api = FakeApi::new(move |seen| match seen.target.as_str() {
        "/slow" => {
            let _ = fast_done
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(40));
            Reply::json(r#"{"slow":true}"#)
        }
        _ => Reply::json(r#"{"fast":true}"#),
    });
    let kproxy = Setup {
        limit: 1,
        ..Setup::default()
    }
    .start(&api);
    let mut slow = kproxy.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    wait_until("the slow request reached the API server", || {
        api.dials() == 1
    });
    let fast = kproxy.connect().get("/fast");
    assert_eq!(fast.code, 200, "{}", fast.text());
    done.send(()).unwrap();
    assert_eq!(slow.response().text(), r#"{"slow":true}"#);
}

#[test]
fn a_slow_reader_keeps_no_one_else_waiting() {
    // A long answer that its client does not read: kproxy blocks writing it
    // to the client, with the API server's connection in hand.
    let big = vec![b'x'; 4 << 20];
    let api = FakeApi::new(move |seen| match seen.target.as_str() {
        "/big" => Reply::Answer {
            code: 200,
            headers: Vec::new(),
            body: big.clone(),
        },
        _ => Reply::json("{}"),
    });
    let kproxy = Setup {
        limit: 1,
        ..Setup::default()
    }
    .start(&api);
    let mut reader = kproxy.connect();
    reader.send(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(reader.head().code, 200);
    let other = kproxy.connect().get("/other");
    assert_eq!(other.code, 200, "{}", other.text());
    let rest = reader.reader.fill_buf().unwrap().len();
    assert!(rest > 0);
}

#[test]
fn an_upgrade_becomes_a_tunnel_both_ways() {
    let api = FakeApi::new(|seen| match seen.header("Upgrade") {
        Some(_) => Reply::Echo,
        None => Reply::json("{}"),
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    conn.send(
        b"POST /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: localhost\r\n\
          Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
    );
    let head = conn.head();
    assert_eq!(head.code, 101);
    assert_eq!(head.header("Upgrade"), Some("SPDY/3.1"));
    assert_eq!(head.header("Connection"), Some("Upgrade"));
    let seen = api.last();
    assert_eq!(seen.header("Connection"), Some("Upgrade"));
    assert_eq!(seen.header("Upgrade"), Some("SPDY/3.1"));
    assert_eq!(seen.header("Authorization"), Some("Bearer t0k3n"));
    assert_eq!(
        seen.header("X-Stream-Protocol-Version"),
        Some("portforward.k8s.io")
    );
    for message in [&b"ping"[..], b"\x00\x01binary\xff", b"pong"] {
        conn.send(message);
        let mut echoed = vec![0; message.len()];
        conn.reader.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, message);
    }
    // The client closes its side: the tunnel ends, upstream too.
    conn.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(conn.is_closed());
    wait_until("the tunnel's connection closed", || api.closed() == 1);
    // A tunnel's connection is never one the pool lends.
    assert_eq!(kproxy.connect().get("/api").code, 200);
    assert_eq!(api.dials(), 2);
}

#[test]
fn an_upgrade_the_api_server_declines_is_an_ordinary_answer() {
    let api = FakeApi::new(|_| Reply::status(400, r#"{"kind":"Status","code":400}"#));
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(
        "GET /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: localhost\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(response.code, 400);
    assert_eq!(response.text(), r#"{"kind":"Status","code":400}"#);
}

#[test]
fn a_websocket_exec_is_refused_by_the_default_filter() {
    let api = FakeApi::new(|seen| match seen.header("Upgrade") {
        Some(_) => Reply::Echo,
        None => Reply::json("{}"),
    });
    let kproxy = Kproxy::new(&api);
    let mut conn = kproxy.connect();
    let response = conn.request(
        "GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: localhost\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(response.code, 403);
    assert_eq!(response.reason().as_deref(), Some("filter_path"));
    assert_eq!(api.dials(), 0);
    assert_eq!(conn.get("/api").code, 200, "the next request");
}
