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

use yaml_rust2::parser::Parser;

use build::Builder;

mod build;
mod node;
mod scalars;

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
pub(crate) const MAX_DEPTH: usize = 64;

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
    BadTag(String, &'static str),
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
    builder.finish()?.into_json()
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
        assert_eq!(bad("!!int abc"), Error::BadTag("abc".into(), "!!int"));
        assert_eq!(bad("!!bool 1"), Error::BadTag("1".into(), "!!bool"));
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
