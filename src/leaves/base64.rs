//! Standard, padded base64 (RFC 4648 §4): the kubeconfig's `*-data` fields, the
//! `Authorization: Basic` header, and the CA handed to an exec plugin. Two small
//! functions are cheaper than a crate for these few hundred bytes a run.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes padded base64 as Go's `base64.StdEncoding` does (kubectl reads a
/// kubeconfig's `*-data` fields with it): `\r` and `\n` are skipped anywhere,
/// and nothing else is, so the spaces a folded YAML scalar leaves are an error
/// there as here. `None` for anything out of place.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = input
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if symbols.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    for (i, quad) in symbols.chunks(4).enumerate() {
        let last = i == symbols.len() / 4 - 1;
        let padding = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &quad[..4 - padding] {
            n = n << 6 | value(b)?;
        }
        n <<= 6 * padding;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

fn value(symbol: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == symbol).map(|p| p as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode("Zm9v\r\nYmFy\n").unwrap(), b"foobar");
        for bad in [
            "Zm9",
            "Zm9v=",
            "Z===",
            "Zg==Zm9v",
            "Zm9*",
            "Zm9v YmFy",
            "Zm9v\tYmFy",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
