//! Request heads and their bodies, one after another on a keep-alive connection:
//! parsing, the framing decision and the body reader must never panic, and a
//! head is never read past its end.
#![no_main]

use std::io::BufReader;

use kproxy::leaves::http::body::BodyReader;
use kproxy::leaves::http::request::RequestHead;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so heads split across reads are covered.
    let Some((&size, wire)) = data.split_first() else { return };
    let mut reader = BufReader::with_capacity(1 + size as usize, wire);
    let mut buf = Vec::new();
    while let Ok(Some(len)) = RequestHead::read(&mut reader, &mut buf) {
        let head = RequestHead::parse(&buf[..len]).expect("a head that read() found complete parses");
        let _ = (head.path(), head.origin_form(), head.absolute_authority(), head.keep_alive());
        let Ok(kind) = head.body_kind() else { return };
        let mut body = Vec::new();
        if BodyReader::new(&mut reader, kind).read_to_vec(&mut body).is_err() {
            return;
        }
    }
});
