//! YAML as kubectl reads it: go-yaml v2's rules (through sigs.k8s.io/yaml's
//! `YAMLToJSON`), applied to yaml-rust2's parser events. The result is the JSON
//! value kubectl's decoder then sees, so the kubeconfig reader can apply JSON's
//! typing rules to it.
//!
//! What go-yaml v2 does, and so this does (checked against kubectl in
//! tests/kubeconfig_dialect.rs):
//! - plain scalars resolve by YAML 1.1's tables: `yes`, `on`, `y` are true,
//!   `no`, `off`, `n` false, `~`, `null` and nothing null; numbers as Go's
//!   `strconv` parses them (`0x1F`, `0o17`, `017`, `1_000`, `.5`, `1e3`);
//!   anything quoted or in a block is a string; so is a date;
//! - explicit tags apply: `!!str 123` is a string, `!!int "12"` a number,
//!   `!!binary` base64; a tag that does not fit its value is an error;
//! - in a mapping the last of two equal keys wins; `<<` merges a mapping (or a
//!   list of them, the first winning) where it stands, so keys after it
//!   override it and keys before it are overridden;
//! - a leading byte-order mark is skipped, and only the first document is read;
//! - alias expansion is bounded as go-yaml bounds it ("excessive aliasing"),
//!   and, kproxy's own, so are nesting and the size of the whole tree.
//!
//! Anchors and aliases are expanded here, so the tree holds plain values.

use std::fmt;

use yaml_rust2::parser::{Event, EventReceiver, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

use crate::leaves::base64;

/// A document, as the JSON that sigs.k8s.io/yaml makes of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer or a float, kept as written: kproxy reads none, but a number
    /// where a string belongs is an error worth naming.
    Number(String),
    Str(String),
    Seq(Vec<Value>),
    /// Keys are unique (the last one written won); in no particular order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// What a document may cost beyond go-yaml's own alias rule.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Values decoded in all, aliases expanded: a bound on the tree's memory.
    pub max_values: usize,
}

impl Limits {
    /// A kubeconfig: a file with a thousand clusters, users and contexts holds
    /// about 50,000 values; this leaves five times that, at a few MiB at start.
    pub const KUBECONFIG: Limits = Limits {
        max_values: 250_000,
    };
    /// An exec plugin's ExecCredential, read on a connection's thread: about
    /// ten values, so a hostile plugin cannot make a request build a large tree.
    pub const PLUGIN_OUTPUT: Limits = Limits { max_values: 10_000 };
}

/// How deep mappings and lists may nest. A kubeconfig or an ExecCredential
/// needs five; the limit keeps a runaway plugin's output from building a tree
/// whose recursive drop would overflow a connection thread's small stack.
const MAX_DEPTH: usize = 64;

/// Why a document was not read.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// Not YAML: the parser's message.
    Syntax(String),
    TooDeep,
    /// go-yaml's own limit on alias expansion, with its message.
    ExcessiveAliasing,
    /// Past [`Limits::max_values`].
    TooLarge(usize),
    /// An alias inside the node its anchor names.
    Recursive,
    /// A mapping or list used as a key.
    CollectionKey,
    /// A key JSON cannot have: null, or an integer past `i64`.
    UnsupportedKey(String),
    /// `<<` followed by something other than a mapping or a list of them.
    MergeNeedsMapping,
    /// An explicit tag its value does not fit: (value, tag).
    BadTag(String, String),
    /// `!!binary` that is not base64.
    BadBinary,
    /// `.inf` or `.nan`, which JSON cannot hold.
    NotFinite(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(e) => f.write_str(e),
            Error::TooDeep => write!(f, "nested more than {MAX_DEPTH} levels deep"),
            Error::ExcessiveAliasing => f.write_str("document contains excessive aliasing"),
            Error::TooLarge(max) => {
                write!(f, "more than {max} values (aliases expanded): too large")
            }
            Error::Recursive => f.write_str("an anchor's value contains an alias to itself"),
            Error::CollectionKey => f.write_str("a mapping or list used as a key"),
            Error::UnsupportedKey(key) => write!(f, "unsupported map key {key}"),
            Error::MergeNeedsMapping => {
                f.write_str("map merge requires map or sequence of maps as the value")
            }
            Error::BadTag(value, tag) => write!(f, "cannot decode `{value}` as a {tag}"),
            Error::BadBinary => f.write_str("!!binary value contains invalid base64 data"),
            Error::NotFinite(value) => write!(f, "{value} is not a number JSON can hold"),
        }
    }
}

impl std::error::Error for Error {}

/// The first document of `text`; `Value::Null` for an empty one.
pub fn parse(text: &str, limits: Limits) -> Result<Value, Error> {
    // As libyaml, which go-yaml is: a byte-order mark is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder::new(limits);
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| Error::Syntax(e.to_string()))?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    let document = builder.document.unwrap_or(Node::Null);
    document.into_json()
}

/// A decoded node, before JSON's rules: keys may still be any scalar.
#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(String),
    /// Too large for `i64`: a value JSON holds, a key sigs.k8s.io/yaml refuses.
    Uint(String),
    Float(String),
    NotFinite(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key as Go's `map[interface{}]interface{}` tells keys apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Str(String),
    /// A bool, int or float key, by its JSON spelling and kind.
    Other(char, String),
    Unsupported(String),
}

/// A node, what decoding it cost (in go-yaml's count of decode steps), and
/// how deep it nests.
struct Decoded {
    node: Node,
    cost: usize,
    height: usize,
}

struct Builder {
    limits: Limits,
    open: Vec<Open>,
    /// Completed anchored nodes, by yaml-rust2's anchor id (a redefinition
    /// gets a new id), each with its cost (charged again at each alias) and
    /// height (an alias must not nest deeper than a node written out could).
    anchors: Vec<(usize, Decoded)>,
    document: Option<Node>,
    /// The first error; from then on events are ignored.
    error: Option<Error>,
    /// go-yaml's counters: every decode step, and those made by aliases.
    decodes: usize,
    aliased: usize,
}

struct Open {
    anchor: usize,
    cost: usize,
    /// Of the deepest child so far.
    height: usize,
    kind: OpenKind,
}

enum OpenKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<PendingKey>,
    },
}

enum PendingKey {
    Key(Key),
    /// `<<`: the value is merged into the mapping.
    Merge,
}

/// Where a value came from: a merge cares whether it is an alias.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    Written,
    Alias,
}

impl EventReceiver for Builder {
    fn on_event(&mut self, event: Event) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.event(event) {
            self.error = Some(e);
        }
    }
}

impl Builder {
    fn new(limits: Limits) -> Builder {
        Builder {
            limits,
            open: Vec::new(),
            anchors: Vec::new(),
            document: None,
            error: None,
            decodes: 0,
            aliased: 0,
        }
    }

    fn event(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                // A key is read as a key; only a plain `<<` (or `!!merge`) merges.
                let merge_key = self.expects_key()
                    && value == "<<"
                    && match &tag {
                        None => style == TScalarStyle::Plain,
                        Some(tag) => tag_name(tag) == MERGE_TAG,
                    };
                if merge_key {
                    return self.merge_key();
                }
                self.charge(1)?;
                let node = scalar(value, style, tag.as_ref())?;
                let decoded = Decoded {
                    node,
                    cost: 1,
                    height: 0,
                };
                self.complete(decoded, anchor, Origin::Written)
            }
            Event::SequenceStart(anchor, _) => self.start(anchor, OpenKind::Seq(Vec::new())),
            Event::MappingStart(anchor, _) => self.start(
                anchor,
                OpenKind::Map {
                    entries: Vec::new(),
                    key: None,
                },
            ),
            Event::SequenceEnd | Event::MappingEnd => match self.open.pop() {
                Some(open) => {
                    let node = match open.kind {
                        OpenKind::Seq(items) => Node::Seq(items),
                        OpenKind::Map { entries, .. } => Node::Map(last_wins(entries)),
                    };
                    let decoded = Decoded {
                        node,
                        cost: open.cost,
                        height: open.height + 1,
                    };
                    self.complete(decoded, open.anchor, Origin::Written)
                }
                None => Ok(()),
            },
            Event::Alias(id) => self.alias(id),
            _ => Ok(()),
        }
    }

    fn start(&mut self, anchor: usize, kind: OpenKind) -> Result<(), Error> {
        if self.open.len() >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        self.charge(1)?;
        self.open.push(Open {
            anchor,
            cost: 1,
            height: 0,
            kind,
        });
        Ok(())
    }

    /// Whether the next node is a mapping's key.
    fn expects_key(&self) -> bool {
        matches!(
            self.open.last(),
            Some(Open {
                kind: OpenKind::Map { key: None, .. },
                ..
            })
        )
    }

    fn merge_key(&mut self) -> Result<(), Error> {
        if let Some(Open {
            kind: OpenKind::Map { key, .. },
            ..
        }) = self.open.last_mut()
        {
            *key = Some(PendingKey::Merge);
        }
        Ok(())
    }

    /// An alias is its anchor's node decoded again, at its cost again, and
    /// counted as aliased: go-yaml's rule refuses a document whose decoding is
    /// mostly aliases once it is past 1,000 steps (a "billion laughs").
    fn alias(&mut self, id: usize) -> Result<(), Error> {
        let Some(at) = self.anchors.iter().rposition(|(a, _)| *a == id) else {
            // yaml-rust2 refuses unknown anchors; an anchor still open is one
            // whose node would contain itself.
            return Err(Error::Recursive);
        };
        let (cost, height) = (self.anchors[at].1.cost, self.anchors[at].1.height);
        if self.open.len() + height > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        // Counted before it is copied: a refused expansion is never built.
        self.aliased += cost;
        self.charge(1 + cost)?;
        let decoded = Decoded {
            node: self.anchors[at].1.node.clone(),
            cost: 1 + cost,
            height,
        };
        self.complete(decoded, 0, Origin::Alias)
    }

    fn charge(&mut self, steps: usize) -> Result<(), Error> {
        self.decodes += steps;
        if self.decodes > self.limits.max_values {
            return Err(Error::TooLarge(self.limits.max_values));
        }
        // go-yaml v2 (decode.go, `allowedAliasRatio`): past 1,000 steps and 100
        // aliased ones, at most 99 % may come from aliases (the ratio falls
        // further past 400,000 steps, beyond any limit here).
        if self.aliased > 100 && self.decodes > 1000 && self.aliased * 100 > self.decodes * 99 {
            return Err(Error::ExcessiveAliasing);
        }
        Ok(())
    }

    fn complete(&mut self, decoded: Decoded, anchor: usize, origin: Origin) -> Result<(), Error> {
        if anchor > 0 {
            let copy = Decoded {
                node: decoded.node.clone(),
                ..decoded
            };
            self.anchors.push((anchor, copy));
        }
        let Some(parent) = self.open.last_mut() else {
            self.document.get_or_insert(decoded.node);
            return Ok(());
        };
        parent.cost += decoded.cost;
        parent.height = parent.height.max(decoded.height);
        match &mut parent.kind {
            OpenKind::Seq(items) => items.push(decoded.node),
            OpenKind::Map { entries, key } => match key.take() {
                None => *key = Some(PendingKey::Key(key_of(decoded.node)?)),
                Some(PendingKey::Key(key)) => entries.push((key, decoded.node)),
                Some(PendingKey::Merge) => merge(entries, decoded.node, origin)?,
            },
        }
        Ok(())
    }
}

/// A mapping's entries in the order written, merges included, reduced to the
/// last value of each key, as Go's map keeps it. Sorting first keeps this
/// quick for a mapping with many keys.
fn last_wins(mut entries: Vec<(Key, Node)>) -> Vec<(Key, Node)> {
    if entries.len() < 2 {
        return entries;
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
    let mut keep = vec![false; entries.len()];
    for pair in order.windows(2) {
        if entries[pair[0]].0 != entries[pair[1]].0 {
            keep[pair[0]] = true;
        }
    }
    if let Some(&last) = order.last() {
        keep[last] = true;
    }
    let mut at = 0;
    entries.retain(|_| {
        at += 1;
        keep[at - 1]
    });
    entries
}

/// go-yaml v2's merge: a mapping's keys are set where `<<` stands (so later
/// keys override them, and they override earlier ones); from a list of
/// mappings the last is set first, so the first wins. An alias must name a
/// mapping itself, not a list of them.
fn merge(entries: &mut Vec<(Key, Node)>, value: Node, origin: Origin) -> Result<(), Error> {
    match value {
        Node::Map(merged) => entries.extend(merged),
        Node::Seq(list) if origin == Origin::Written => {
            for item in list.into_iter().rev() {
                let Node::Map(merged) = item else {
                    return Err(Error::MergeNeedsMapping);
                };
                entries.extend(merged);
            }
        }
        _ => return Err(Error::MergeNeedsMapping),
    }
    Ok(())
}

fn key_of(node: Node) -> Result<Key, Error> {
    Ok(match node {
        Node::Str(s) => Key::Str(s),
        Node::Bool(b) => Key::Other('b', b.to_string()),
        Node::Int(i) => Key::Other('i', i),
        Node::Float(f) | Node::NotFinite(f) => Key::Other('f', f),
        Node::Uint(u) => Key::Unsupported(u),
        Node::Null => Key::Unsupported("null".into()),
        Node::Seq(_) | Node::Map(_) => return Err(Error::CollectionKey),
    })
}

impl Node {
    /// sigs.k8s.io/yaml's `YAMLToJSON`: keys become strings (a null key is an
    /// error), and `json.Marshal` refuses infinities and NaN.
    fn into_json(self) -> Result<Value, Error> {
        Ok(match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) | Node::Uint(n) | Node::Float(n) => Value::Number(n),
            Node::NotFinite(n) => return Err(Error::NotFinite(n)),
            Node::Str(s) => Value::Str(s),
            Node::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .map(Node::into_json)
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(entries) => {
                let mut map = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key = match key {
                        Key::Str(s) | Key::Other(_, s) => s,
                        Key::Unsupported(k) => return Err(Error::UnsupportedKey(k)),
                    };
                    map.push((key, value.into_json()?));
                }
                // `1` and `"1"` are two keys in Go's map but one in JSON; which
                // one Go keeps is left to its map order, so either will do.
                map.sort_by(|a: &(String, Value), b| a.0.cmp(&b.0));
                map.dedup_by(|a, b| a.0 == b.0);
                Value::Map(map)
            }
        })
    }
}

const TAG_PREFIX: &str = "tag:yaml.org,2002:";
const MERGE_TAG: &str = "tag:yaml.org,2002:merge";

/// A tag as go-yaml spells it: `!!str` is `tag:yaml.org,2002:str`, `!` is `!`.
fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// A scalar's value, by its style and tag (go-yaml v2's `resolve` and
/// `decoder.scalar`, decoding into an `interface{}`).
fn scalar(value: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Node, Error> {
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
                false => Err(Error::BadTag(value, format!("!!{kind}"))),
            }
        }
        "timestamp" => Err(Error::BadTag(value, "!!timestamp".into())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        parse(text, Limits::KUBECONFIG).unwrap()
    }

    fn one(text: &str) -> Value {
        doc(&format!("k: {text}\n")).get("k").unwrap().clone()
    }

    fn num(s: &str) -> Value {
        Value::Number(s.into())
    }

    fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn plain_scalars_by_yaml_1_1() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "on", "On", "ON",
        ] {
            assert_eq!(one(t), Value::Bool(true), "{t}");
        }
        for f in ["n", "N", "no", "NO", "false", "FALSE", "off", "Off"] {
            assert_eq!(one(f), Value::Bool(false), "{f}");
        }
        for null in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(one(null), Value::Null, "{null:?}");
        }
        for n in [
            "1",
            "-1",
            "+1",
            "0x1F",
            "0o17",
            "017",
            "0b101",
            "-0b101",
            "1_000",
            "1.5",
            ".5",
            "1.",
            "1e3",
            "-1.5E-3",
            "08",
            "99999999999999999999",
            "18446744073709551615",
            "1_0.5",
            "1e308",
        ] {
            assert_eq!(one(n), num(n), "{n}");
        }
        for s in [
            "yes please",
            "tru",
            "0x",
            "0o8",
            "1.2.3",
            "1e",
            "inf",
            "nan",
            "-x",
            ".",
            "6443a",
            "2001-12-14",
            "0xFFFFFFFFFFFFFFFFF",
            "1e999",
            ".5e999",
            "0x1p3",
            "0x1g",
        ] {
            assert_eq!(one(s), str(s), "{s}");
        }
        assert_eq!(one("'yes'"), str("yes"));
        assert_eq!(one("\"123\""), str("123"));
        assert_eq!(one("|\n  on\n"), str("on\n"));
        assert_eq!(one("1e308"), num("1e308"));
        assert_eq!(one("1.797e308"), num("1.797e308"));
        assert_eq!(one("1.8e308"), str("1.8e308"));
    }

    #[test]
    fn tags_apply() {
        assert_eq!(one("!!str 123"), str("123"));
        assert_eq!(one("!!str yes"), str("yes"));
        assert_eq!(one("!!int \"12\""), num("12"));
        assert_eq!(one("!!float 1"), num("1"));
        assert_eq!(one("!!bool 'on'"), Value::Bool(true));
        assert_eq!(one("!!null ''"), Value::Null);
        assert_eq!(one("!!binary aGk="), str("hi"));
        assert_eq!(one("! 123"), str("123"));
        assert_eq!(one("!local yes"), str("yes"));
        assert_eq!(one("!!timestamp 2001-12-14"), str("2001-12-14"));
        let bad = |t: &str| parse(&format!("k: {t}\n"), Limits::KUBECONFIG).unwrap_err();
        assert_eq!(
            bad("!!int abc"),
            Error::BadTag("abc".into(), "!!int".into())
        );
        assert_eq!(bad("!!bool 1"), Error::BadTag("1".into(), "!!bool".into()));
        assert_eq!(bad("!!binary \"***\""), Error::BadBinary);
    }

    #[test]
    fn the_last_key_wins_and_merges_stand_where_written() {
        let d = doc("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.get("a"), Some(&num("3")));
        let d = doc("base: &b {p: 1, q: 2}\nm: {p: 0, <<: *b, q: 9}\n");
        let m = d.get("m").unwrap();
        assert_eq!(
            m.get("p"),
            Some(&num("1")),
            "the merge overrides what came before"
        );
        assert_eq!(
            m.get("q"),
            Some(&num("9")),
            "and what comes after overrides it"
        );
        let d = doc("a: &a {p: 1}\nb: &b {p: 2, q: 2}\nm: {<<: [*a, *b]}\n");
        let m = d.get("m").unwrap();
        assert_eq!((m.get("p"), m.get("q")), (Some(&num("1")), Some(&num("2"))));
        // YAML 1.1: a key `y` is the boolean true, so JSON's "true".
        assert_eq!(doc("y: 1\n").get("true"), Some(&num("1")));
        assert_eq!(
            doc("m: {\"<<\": 1}\n").get("m").unwrap().get("<<"),
            Some(&num("1"))
        );
        let err = |t: &str| parse(t, Limits::KUBECONFIG).unwrap_err();
        assert_eq!(err("m: {<<: 1}\n"), Error::MergeNeedsMapping);
        assert_eq!(
            err("s: &s [{a: 1}]\nm: {<<: *s}\n"),
            Error::MergeNeedsMapping
        );
        assert_eq!(err("m: {<<: [1]}\n"), Error::MergeNeedsMapping);
    }

    #[test]
    fn keys_become_json_strings() {
        let d = doc("yes: 1\n1: 2\n0x10: 3\n");
        assert_eq!(d.get("true"), Some(&num("1")));
        assert_eq!(d.get("1"), Some(&num("2")));
        let err = |t: &str| parse(t, Limits::KUBECONFIG).unwrap_err();
        assert!(matches!(err("~: 1\n"), Error::UnsupportedKey(_)));
        assert!(matches!(
            err("18446744073709551615: 1\n"),
            Error::UnsupportedKey(_)
        ));
        assert_eq!(err("[a]: 1\n"), Error::CollectionKey);
        assert_eq!(err("k: .inf\n"), Error::NotFinite(".inf".into()));
        // Overridden, it is gone before JSON sees it.
        assert_eq!(doc("k: .nan\nk: 1\n").get("k"), Some(&num("1")));
    }

    #[test]
    fn a_byte_order_mark_is_not_content_and_only_the_first_document_counts() {
        assert_eq!(doc("\u{feff}a: 1\n").get("a"), Some(&num("1")));
        assert_eq!(doc("a: 1\n---\na: 2\n").get("a"), Some(&num("1")));
        assert_eq!(doc(""), Value::Null);
        assert_eq!(doc("# only a comment\n"), Value::Null);
    }

    #[test]
    fn aliases_are_bounded_as_go_yaml_bounds_them() {
        let d = doc("a: &x {b: [1, 'two', true, ~]}\nc: *x\n");
        assert_eq!(d.get("a"), d.get("c"));
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            laughs.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let started = std::time::Instant::now();
        assert_eq!(
            parse(&laughs, Limits::KUBECONFIG).unwrap_err(),
            Error::ExcessiveAliasing
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            parse("a: &a [a]\nb: *a\nc: *a\n", Limits { max_values: 8 }).unwrap_err(),
            Error::TooLarge(8)
        );
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            parse(&deep, Limits::KUBECONFIG).unwrap_err(),
            Error::TooDeep
        );
        let deeper = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse(&deeper, Limits::KUBECONFIG).is_err());
        assert!(matches!(
            parse("a: [", Limits::KUBECONFIG).unwrap_err(),
            Error::Syntax(_)
        ));
    }
}
