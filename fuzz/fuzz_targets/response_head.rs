//! The API server's response heads and bodies: parsing and framing never panic,
//! whatever the request method.
#![no_main]

use std::io::BufReader;

use kproxy::leaves::http::body::BodyReader;
use kproxy::leaves::http::response::ResponseHead;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, wire)) = data.split_first() else { return };
    let head_request = selector & 1 == 1;
    let mut reader = BufReader::with_capacity(1 + (selector >> 1) as usize, wire);
    let mut buf = Vec::new();
    let Ok(Some(len)) = ResponseHead::read(&mut reader, &mut buf) else { return };
    let head = ResponseHead::parse(&buf[..len]).expect("a head that read() found complete parses");
    assert_eq!(ResponseHead::code_of(&buf[..len]), head.code);
    let _ = head.reusable();
    let Ok(kind) = head.body_kind(head_request) else { return };
    let mut body = Vec::new();
    let _ = BodyReader::new(&mut reader, kind).read_to_vec(&mut body);
});
