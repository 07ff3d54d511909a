//! The tree as go-yaml decodes it into `interface{}`, before sigs.k8s.io/yaml
//! turns it into JSON: keys may still be any scalar.

use super::{Error, Value};

/// A decoded node, before JSON's rules: keys may still be any scalar.
#[derive(Clone, Debug)]
pub(super) enum Node {
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
pub(super) enum Key {
    Str(String),
    /// A bool, int or float key, by its JSON spelling and kind.
    Other(char, String),
    Unsupported(String),
}

pub(super) fn key_of(node: Node) -> Result<Key, Error> {
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
    pub(super) fn into_json(self) -> Result<Value, Error> {
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
