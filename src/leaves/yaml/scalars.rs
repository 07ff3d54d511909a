//! Scalars by go-yaml v2's `resolve`: YAML 1.1's booleans and nulls, numbers
//! as Go's `strconv` reads them, explicit tags, `!!binary`.

use yaml_rust2::parser::Tag;
use yaml_rust2::scanner::TScalarStyle;

use super::node::Node;
use super::Error;
use crate::leaves::base64;

const TAG_PREFIX: &str = "tag:yaml.org,2002:";
pub(super) const MERGE_TAG: &str = "tag:yaml.org,2002:merge";

/// A tag as go-yaml spells it: `!!str` is `tag:yaml.org,2002:str`, `!` is `!`.
pub(super) fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// The short form of a tag that can refuse a value, for its error.
fn short_tag(kind: &str) -> &'static str {
    match kind {
        "bool" => "!!bool",
        "int" => "!!int",
        "float" => "!!float",
        _ => "!!null",
    }
}

/// A scalar's value, by its style and tag (go-yaml v2's `resolve` and
/// `decoder.scalar`, decoding into an `interface{}`).
pub(super) fn scalar(value: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Node, Error> {
    let Some(tag) = tag.map(tag_name) else {
        return Ok(match style {
            TScalarStyle::Plain => resolve(value),
            _ => Node::Str(value),
        });
    };
    let Some(kind) = tag.strip_prefix(TAG_PREFIX) else {
        // `!`, `!local` and the like: the text as it is.
        return Ok(Node::Str(value));
    };
    let fits = |node: &Node| match kind {
        "bool" => matches!(node, Node::Bool(_)),
        "int" => matches!(node, Node::Int(_) | Node::Uint(_)),
        "float" => matches!(
            node,
            Node::Int(_) | Node::Uint(_) | Node::Float(_) | Node::NotFinite(_)
        ),
        "null" => matches!(node, Node::Null),
        _ => false,
    };
    match kind {
        "str" => Ok(Node::Str(value)),
        "binary" => {
            let bytes = go_base64(&value).ok_or(Error::BadBinary)?;
            Ok(Node::Str(String::from_utf8_lossy(&bytes).into_owned()))
        }
        // Into an `interface{}` a timestamp stays the text it was.
        "timestamp" if looks_like_date(&value) => Ok(Node::Str(value)),
        "bool" | "int" | "float" | "null" => {
            let node = resolve(value.clone());
            match fits(&node) {
                true => Ok(node),
                false => Err(Error::BadTag(value, short_tag(kind))),
            }
        }
        "timestamp" => Err(Error::BadTag(value, "!!timestamp")),
        // `!!map`, `!!seq`, `!!merge` on a scalar: go-yaml keeps the text.
        _ => Ok(Node::Str(value)),
    }
}

/// go-yaml v2's `resolve` for a plain scalar without a tag.
fn resolve(value: String) -> Node {
    match value.as_str() {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Node::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Node::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Node::NotFinite(value),
        _ => {}
    }
    match value.as_bytes().first() {
        // Not in the tables above, so a float or nothing.
        Some(b'.') if go_float(&value) => Node::Float(value),
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let plain: String = value.chars().filter(|&c| c != '_').collect();
            match go_int(&plain) {
                Some(IntKind::Signed) => Node::Int(value),
                Some(IntKind::Unsigned) => Node::Uint(value),
                None if yaml_style_float(&plain) && go_float(&plain) => Node::Float(value),
                None => Node::Str(value),
            }
        }
        _ => Node::Str(value),
    }
}

enum IntKind {
    /// Fits `i64`.
    Signed,
    /// Fits only `u64`.
    Unsigned,
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional
/// sign (ParseInt only), then `0x`, `0o`, `0b` or a leading `0` (octal) prefix,
/// or decimal digits.
fn go_int(s: &str) -> Option<IntKind> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let signed = s.len() != unsigned.len();
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    // from_str_radix takes a sign of its own; Go's digits do not.
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let limit = if negative {
        1u128 << 63
    } else {
        i64::MAX as u128
    };
    match magnitude {
        m if m <= limit => Some(IntKind::Signed),
        m if !signed && m <= u64::MAX as u128 => Some(IntKind::Unsigned),
        _ => None,
    }
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            digits(whole) && digits(fraction) && (!whole.is_empty() || !fraction.is_empty())
        }
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Whether Go's `strconv.ParseFloat(s, 64)` accepts a decimal float: its
/// syntax (digits with one `.`, an exponent), without overflowing to infinity
/// (which it reports as an error). Integers only, so no float code is linked in.
fn go_float(s: &str) -> bool {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !yaml_style_float(unsigned) || unsigned.starts_with(['-', '+']) {
        return false;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return true; // zero
    }
    // The value is 0.d1d2... × 10^magnitude.
    let leading_zeros = (digits.len() - significant.len()) as i64;
    let exponent: i64 = match exponent.parse() {
        Ok(e) => e,
        // An exponent too large for i64: a huge number or zero.
        Err(_) => return exponent.starts_with('-'),
    };
    let magnitude = exponent
        .saturating_add(whole.len() as i64)
        .saturating_sub(leading_zeros);
    // f64's largest value is 0.17976931348623157… × 10^309; Go rounds to the
    // nearest, so only what rounds past it overflows.
    const MAX: &str = "179769313486231580793728971405301";
    match magnitude {
        m if m < 309 => true,
        309 => {
            let significant = significant.trim_end_matches('0');
            significant.len() <= MAX.len() && *significant <= *MAX
        }
        _ => false,
    }
}

/// `YYYY-M-D` first: the dates go-yaml's timestamp formats start with.
fn looks_like_date(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    let year = parts.next().unwrap_or_default();
    let month = parts.next().unwrap_or_default();
    let day: String = parts
        .next()
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let number = |s: &str, max| s.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number(month, 12)
        && number(&day, 31)
}

/// Go's `base64.StdEncoding`, as `!!binary` and JSON `[]byte` fields decode.
fn go_base64(text: &str) -> Option<Vec<u8>> {
    base64::decode(text)
}
