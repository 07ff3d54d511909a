//! Header fields, and which of them a proxy must not pass on.

use super::body::BodyKind;
use super::HeadError;

/// One header field, borrowed from the buffer its head was read into. The value
/// is bytes: HTTP allows obs-text, and a proxy passes a value on without needing
/// to understand it.
#[derive(Clone, Copy, Debug)]
pub struct Header<'b> {
    pub name: &'b str,
    pub value: &'b [u8],
}

/// Header fields in the order received.
#[derive(Clone, Debug, Default)]
pub struct Headers<'b>(pub Vec<Header<'b>>);

impl<'b> Headers<'b> {
    pub fn from_httparse(headers: &[httparse::Header<'b>]) -> Headers<'b> {
        Headers(
            headers
                .iter()
                .map(|h| Header {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header<'b>> {
        self.0.iter()
    }

    /// Every value of the fields called `name` (case-insensitive).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'b [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    pub fn get(&self, name: &str) -> Option<&'b [u8]> {
        let header = self.0.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
        Some(header.value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether a comma-separated list field (`Connection`, `Transfer-Encoding`)
    /// holds `token`, in any of its lines.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The elements of a comma-separated list field, across all its lines.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'b str> + 'a {
        self.get_all(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether a field is end-to-end and may be forwarded (RFC 9110 §7.6.1):
    /// the fixed hop-by-hop set and whatever this message's `Connection` names.
    pub fn is_end_to_end(&self, name: &str) -> bool {
        !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
            && !self.has_token("Connection", name)
    }

    /// The single value of Content-Length, if any. Repeated equal values are one
    /// value (RFC 9110 §8.6); differing ones or anything but digits is an error.
    pub fn content_length(&self) -> Result<Option<u64>, HeadError> {
        let mut found = None;
        for value in self.get_all("Content-Length") {
            for part in value.split(|&b| b == b',') {
                let part = part.trim_ascii();
                let n = std::str::from_utf8(part)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(HeadError::Malformed("invalid Content-Length"))?;
                if found.is_some_and(|f| f != n) {
                    return Err(HeadError::Malformed("conflicting Content-Length values"));
                }
                found = Some(n);
            }
        }
        Ok(found)
    }

    /// The framing the headers declare: chunked, a length, or `None` for neither.
    /// Both at once is the classic request-smuggling shape (RFC 9112 §6.3):
    /// refused, not guessed.
    pub fn framing(&self) -> Result<Option<BodyKind>, HeadError> {
        match (self.is_chunked()?, self.content_length()?) {
            (true, Some(_)) => Err(HeadError::Malformed(
                "both Content-Length and Transfer-Encoding",
            )),
            (true, None) => Ok(Some(BodyKind::Chunked)),
            (false, length) => Ok(length.map(BodyKind::Length)),
        }
    }

    /// Whether the message is chunked. Any transfer coding other than a single
    /// final `chunked` is refused: a proxy that guesses here lets requests be
    /// smuggled past it (RFC 9112 §6.3).
    pub fn is_chunked(&self) -> Result<bool, HeadError> {
        let mut codings = self.tokens("Transfer-Encoding");
        match (codings.next(), codings.next()) {
            (None, _) if !self.contains("Transfer-Encoding") => Ok(false),
            (Some(c), None) if c.eq_ignore_ascii_case("chunked") => Ok(true),
            _ => Err(HeadError::Malformed("unsupported Transfer-Encoding")),
        }
    }
}

/// Fields that describe one connection, not the message (RFC 9110 §7.6.1), plus
/// `Proxy-Authorization`, which is meant for this proxy and must not travel on.
const HOP_BY_HOP: &[&str] = &[
    "Connection",
    "Keep-Alive",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'b>(list: &[(&'b str, &'b str)]) -> Headers<'b> {
        Headers(
            list.iter()
                .map(|(n, v)| Header {
                    name: n,
                    value: v.as_bytes(),
                })
                .collect(),
        )
    }

    #[test]
    fn connection_names_more_hop_by_hop_fields() {
        let h = headers(&[("Connection", "keep-alive, X-Secret"), ("X-Secret", "1")]);
        assert!(!h.is_end_to_end("x-secret"));
        assert!(!h.is_end_to_end("keep-alive"));
        assert!(!h.is_end_to_end("proxy-authorization"));
        assert!(h.is_end_to_end("Accept"));
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(headers(&[]).content_length().unwrap(), None);
        assert_eq!(
            headers(&[("Content-Length", "5")])
                .content_length()
                .unwrap(),
            Some(5)
        );
        assert_eq!(
            headers(&[("content-length", "5, 5")])
                .content_length()
                .unwrap(),
            Some(5)
        );
        for bad in ["5, 6", "-1", "+5", "0x10", "", "99999999999999999999999"] {
            assert!(
                headers(&[("Content-Length", bad)])
                    .content_length()
                    .is_err(),
                "{bad}"
            );
        }
        let two = headers(&[("Content-Length", "5"), ("Content-Length", "6")]);
        assert!(two.content_length().is_err());
    }

    #[test]
    fn transfer_encoding_rules() {
        assert!(!headers(&[]).is_chunked().unwrap());
        assert!(headers(&[("Transfer-Encoding", "Chunked")])
            .is_chunked()
            .unwrap());
        for bad in ["gzip, chunked", "chunked, gzip", "identity", ""] {
            assert!(
                headers(&[("Transfer-Encoding", bad)]).is_chunked().is_err(),
                "{bad:?}"
            );
        }
    }
}
