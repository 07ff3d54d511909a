//! The source's shape, held as the code's own imports say it is: layers that
//! only look down, and each type's methods beside the type.
//!
//! ```text
//!   edges       src/edges/ (listen, config, cli, check, signals), lib.rs, main.rs
//!   connection  src/proxy.rs
//!   pipeline    src/pipeline/ (route, exchange, www)
//!   services    src/services/ (upstream, credentials, tls, metrics)
//!   leaves      src/leaves/ (http, yaml, base64, json, log, budget, path, socket, secret)
//! ```
//!
//! A module imports from its own layer and the layers below; a service only
//! from leaves, and from `metrics`, the counters every layer above the leaves
//! writes to; no two modules of a layer import each other, even by way of a
//! third; and no `impl T { ... }` sits outside the file that defines `T`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The source without comments, string and char literals, which may name
/// modules that are not imported.
fn code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            // r"...", r#"..."#: ends at the quote with as many hashes.
            'r' if matches!(chars.get(i + 1), Some('"' | '#'))
                && !chars
                    .get(i.wrapping_sub(1))
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len() {
                    if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                out.push_str("\"\"");
                continue;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
                continue;
            }
            // 'x' and '\n' are chars; 'a is a lifetime.
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => {
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// A module as the layers see it: `leaves::http`, `services::upstream`,
/// `pipeline::exchange`, `proxy`, `edges::config`; the layer is its first part.
fn unit_of(path: &str) -> String {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [layer @ ("leaves" | "services" | "pipeline" | "edges"), module, ..] => {
            format!("{layer}::{module}")
        }
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

fn layer_rank(unit: &str) -> usize {
    match unit.split("::").next().unwrap() {
        "leaves" => 0,
        "services" => 1,
        "pipeline" => 2,
        "proxy" => 3,
        _ => 4,
    }
}

/// The unit a source file belongs to, from its path under src/.
fn unit_of_file(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    unit_of(&parts.join("::"))
}

/// The units a file imports: every `crate::a::b` path, and the logging
/// macros, which live in `leaves::log`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest: String = code[at + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '!')
            .collect();
        let unit = match rest.split("::").next().unwrap_or_default() {
            "log!" | "warn!" | "event!" => "leaves::log".to_string(),
            _ => unit_of(&rest),
        };
        if !unit.is_empty() {
            found.insert(unit);
        }
    }
    for module in ["leaves", "services", "pipeline", "edges", "proxy"] {
        for (at, _) in code.match_indices(&format!("use {module}::")) {
            let rest: String = code[at + 4..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.insert(unit_of(&rest));
        }
    }
    found
}

#[test]
fn layers_only_look_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in sources(&src) {
        let unit = unit_of_file(&src, &file);
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for import in imports(&text) {
            if import == unit || import.is_empty() {
                continue;
            }
            let (from, to) = (layer_rank(&unit), layer_rank(&import));
            let allowed = match (from, to) {
                _ if to > from => false,
                // Services stand on leaves; metrics is the one they all write to.
                (1, 1) => import == "services::metrics",
                _ => true,
            };
            if !allowed {
                wrong.push(format!("{} imports {import}", file.display()));
            }
            graph.entry(unit.clone()).or_default().insert(import);
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that look up or sideways:\n{}",
        wrong.join("\n")
    );

    // No cycle among the units, within a layer or across.
    fn visit<'a>(
        unit: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|u| *u == unit) {
            return Some(format!("{} -> {unit}", path[at..].join(" -> ")));
        }
        if !done.insert(unit) {
            return None;
        }
        path.push(unit);
        for next in graph.get(unit).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for unit in graph.keys() {
        if let Some(cycle) = visit(unit, &graph, &mut Vec::new(), &mut done) {
            panic!("an import cycle: {cycle}");
        }
    }
    // The layers exist: this test is not vacuous.
    for unit in [
        "leaves::http",
        "services::upstream",
        "pipeline::exchange",
        "edges::config",
    ] {
        assert!(graph.contains_key(unit), "{unit} imports nothing?");
    }
}

#[test]
fn methods_live_beside_their_type() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for file in sources(&src) {
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for line in text.lines().map(str::trim_start) {
            let Some(rest) = line.strip_prefix("impl") else {
                continue;
            };
            if !rest.starts_with([' ', '<']) || line.contains(" for ") || !line.ends_with('{') {
                continue;
            }
            // `impl<'a, T> Name<'a, T> {`: the name after the generics.
            let rest = match rest.strip_prefix('<') {
                Some(generic) => {
                    let mut depth = 1;
                    let end = generic
                        .char_indices()
                        .find(|&(_, c)| {
                            depth += match c {
                                '<' => 1,
                                '>' => -1,
                                _ => 0,
                            };
                            depth == 0
                        })
                        .map_or(0, |(i, _)| i + 1);
                    &generic[end..]
                }
                None => rest,
            };
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let defined = ["struct", "enum", "type", "union"]
                .iter()
                .any(|kind| text.contains(&format!("{kind} {name}")));
            if !defined {
                wrong.push(format!("{}: impl {name}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "inherent impls away from their type:\n{}",
        wrong.join("\n")
    );
}
