//! The chunked decoder: never panics, and what it accepts re-encodes to bytes it
//! decodes to the same body.
#![no_main]

use std::io::BufReader;

use kproxy::leaves::http::body::{self, BodyKind, BodyReader, Encoding};
use kproxy::leaves::http::sink::Sink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, wire)) = data.split_first() else { return };
    let mut reader = BufReader::with_capacity(1 + size as usize, wire);
    let mut decoded = Vec::new();
    if BodyReader::new(&mut reader, BodyKind::Chunked).read_to_vec(&mut decoded).is_err() {
        return;
    }
    let mut encoded = Sink::new(Vec::new());
    body::write_piece(&mut encoded, &decoded, Encoding::Chunked).unwrap();
    body::finish(&mut encoded, Encoding::Chunked).unwrap();
    let mut again = Vec::new();
    let mut reader = BufReader::new(&encoded.get_ref()[..]);
    BodyReader::new(&mut reader, BodyKind::Chunked).read_to_vec(&mut again).unwrap();
    assert_eq!(decoded, again);
});
