//! A YAML document (JSON is YAML too) as kproxy reads one: built from
//! yaml-rust2's parser events into a plain tree of vectors. yaml-rust2's own
//! `Yaml` tree keeps a hash map per mapping, which costs about 15 KB of the
//! static binary and buys nothing for files of a few kilobytes read once.
//! Anchors and aliases are resolved here; `<<` merge keys by the reader.

use yaml_rust2::parser::{Event, EventReceiver, Parser};
use yaml_rust2::scanner::TScalarStyle;

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// An integer or a float, kept as written: kproxy reads none, but a number
    /// where a string belongs is an error worth naming.
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    /// In document order; keys are nodes, as YAML allows.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Node::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// How deep mappings and lists may nest. A kubeconfig or an ExecCredential
/// needs five; the limit keeps a runaway plugin's output from building a tree
/// whose recursive drop would overflow a connection thread's small stack.
const MAX_DEPTH: usize = 64;

/// The first document of `text`; `Node::Null` for an empty one.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| e.to_string())?;
    if builder.too_deep {
        return Err(format!("nested more than {MAX_DEPTH} levels deep"));
    }
    Ok(builder.document.unwrap_or(Node::Null))
}

#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    anchors: Vec<(usize, Node)>,
    document: Option<Node>,
    /// Set once nesting passed `MAX_DEPTH`; from then on events are ignored.
    too_deep: bool,
}

enum Open {
    Seq(Vec<Node>, usize),
    Map(Vec<(Node, Node)>, Option<Node>, usize),
}

impl EventReceiver for Builder {
    fn on_event(&mut self, event: Event) {
        let opens = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        if self.too_deep || (opens && self.open.len() >= MAX_DEPTH) {
            self.too_deep = true;
            return;
        }
        match event {
            Event::Scalar(value, style, anchor, _) => self.add(scalar(value, style), anchor),
            Event::SequenceStart(anchor, _) => self.open.push(Open::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => self.open.push(Open::Map(Vec::new(), None, anchor)),
            Event::SequenceEnd | Event::MappingEnd => match self.open.pop() {
                Some(Open::Seq(items, anchor)) => self.add(Node::Seq(items), anchor),
                Some(Open::Map(entries, _, anchor)) => self.add(Node::Map(entries), anchor),
                None => {}
            },
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map_or(Node::Null, |(_, n)| n.clone());
                self.add(node, 0);
            }
            _ => {}
        }
    }
}

impl Builder {
    fn add(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.open.last_mut() {
            None => {
                self.document.get_or_insert(node);
            }
            Some(Open::Seq(items, _)) => items.push(node),
            Some(Open::Map(entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

/// YAML 1.2's core schema for plain scalars, as yaml-rust2 resolves them;
/// anything quoted or in a block is a string.
fn scalar(value: String, style: TScalarStyle) -> Node {
    if style != TScalarStyle::Plain {
        return Node::Str(value);
    }
    match value.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Node::Null,
        "true" | "True" | "TRUE" => Node::Bool(true),
        "false" | "False" | "FALSE" => Node::Bool(false),
        v if is_number(v) => Node::Number(value),
        _ => Node::Str(value),
    }
}

fn is_number(v: &str) -> bool {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    let radix = digits
        .strip_prefix("0x")
        .map(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .or_else(|| {
            digits
                .strip_prefix("0o")
                .map(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        });
    match radix {
        Some(ok) => ok,
        None => {
            matches!(digits, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
                || is_decimal(digits)
        }
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`: the core schema's decimal
/// and float forms, checked by hand so that no float parser is linked in.
fn is_decimal(v: &str) -> bool {
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(at) => (&v[..at], Some(&v[at + 1..])),
        None => (v, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole) && digits(fraction) && whole.len() + fraction.len() > 0;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_the_core_schema() {
        for v in [
            "1", "-1", "+1.5", ".5", "1.", "1e3", "1.5E-3", "0x1F", "0o17", ".inf", "-.Inf", ".NaN",
        ] {
            assert!(is_number(v), "{v}");
        }
        for v in [
            "", ".", "-", "e3", "1e", "1e+", "1.2.3", "inf", "nan", "infinity", "0x", "0o8",
            "1_000", "6443a",
        ] {
            assert!(!is_number(v), "{v}");
        }
    }

    #[test]
    fn documents_become_plain_trees() {
        let doc = parse(
            "a: &x {b: [1, 'two', true, ~]}\nc: *x\nd: 0x1F\ne: \"6443\"\nf: 1.5e3\ng: 1.2.3\n",
        )
        .unwrap();
        let inner = Node::Map(vec![(
            Node::Str("b".into()),
            Node::Seq(vec![
                Node::Number("1".into()),
                Node::Str("two".into()),
                Node::Bool(true),
                Node::Null,
            ]),
        )]);
        assert_eq!(doc.get("a"), Some(&inner));
        assert_eq!(doc.get("c"), Some(&inner));
        assert_eq!(doc.get("d"), Some(&Node::Number("0x1F".into())));
        assert_eq!(doc.get("e"), Some(&Node::Str("6443".into())));
        assert_eq!(doc.get("f"), Some(&Node::Number("1.5e3".into())));
        assert_eq!(doc.get("g"), Some(&Node::Str("1.2.3".into())));
        assert_eq!(parse("").unwrap(), Node::Null);
        assert_eq!(
            parse("{\"k\": [1, {\"x\": null}]}")
                .unwrap()
                .get("k")
                .map(|_| ()),
            Some(())
        );
        assert!(parse("a: [").is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().contains("nested more than 64"));
        // Deeper still, yaml-rust2's own limit answers first.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let error = parse(&deep).unwrap_err();
        assert!(
            error.contains("nested more than 64") || error.contains("recursion"),
            "{error}"
        );
    }
}
