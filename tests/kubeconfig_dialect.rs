//! kubeconfigs as people and tools write them by hand, read by kproxy exactly as
//! kubectl reads them: kubectl itself is the oracle.
//!
//! Each file goes through `kubectl get --raw` and through kproxy, against two
//! recording fake API servers, A and B, that trust one CA bundle: the outcome is
//! which server was reached with which credential (Authorization and
//! Impersonate-User), or that neither was (refused: at start, or before any
//! request reached a server). The two outcomes must be the same.
//!
//! The files: the hand-written corpus in tests/kubeconfigs/ (each says what it
//! is about), and files from a seeded generator that varies spellings, quoting,
//! block and flow styles, and where duplicate keys and merges stand. A failure
//! names the file; the generated ones are kept for replay, and the seed below
//! (or `KPROXY_DIALECT_SEED`) makes the same files again.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::fake_apiserver::temp_dir;
use support::*;

/// The generator's seed: change it to explore, keep it to replay.
const SEED: u64 = 0x6b70_726f_7879_0019;
/// Generated files per run.
const GENERATED: usize = 320;
/// How long one side may take for one file.
const PER_FILE: Duration = Duration::from_secs(30);

/// What one client made of a kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// No request reached either server.
    Refused,
    /// The requests that did: (server, Authorization, Impersonate-User).
    Reached(Vec<(char, Option<String>, Option<String>)>),
}

struct Lab {
    a: FakeApiServer,
    b: FakeApiServer,
    /// Where the files, the CA bundle and the token files live.
    dir: PathBuf,
    /// The CA bundle (both servers' CAs), base64, for `*-data` fields.
    ca_data: String,
    home: PathBuf,
}

impl Lab {
    fn start() -> Lab {
        let (a, b) = (FakeApiServer::start(), FakeApiServer::start());
        let dir = temp_dir("dialect");
        let bundle = [
            std::fs::read(a.ca_path()).unwrap(),
            std::fs::read(b.ca_path()).unwrap(),
        ]
        .concat();
        std::fs::write(dir.join("ca.crt"), &bundle).unwrap();
        for (name, token) in [
            ("token-a", "file-token-a\n"),
            ("token-b", "file-token-b\n"),
            ("token-empty", ""),
        ] {
            std::fs::write(dir.join(name), token).unwrap();
        }
        let home = temp_dir("dialect-home");
        Lab {
            ca_data: kproxy::leaves::base64::encode(&bundle),
            a,
            b,
            dir,
            home,
        }
    }

    /// A corpus file's text with its placeholders filled in: the servers'
    /// URLs, the CA bundle's path, and the bundle as base64 on one line, over
    /// indented lines of a plain scalar (folded into spaces), or over the lines
    /// of a literal block.
    fn fill(&self, text: &str) -> String {
        let chunks: Vec<&str> = self
            .ca_data
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let lines: Vec<String> = chunks.iter().map(|c| format!("      {c}")).collect();
        text.replace("{{A}}", &self.a.url())
            .replace("{{B}}", &self.b.url())
            .replace("{{CA}}", &self.dir.join("ca.crt").display().to_string())
            .replace("{{CA_DATA_FOLDED}}", &chunks.join("\n      "))
            .replace("{{CA_DATA_LINES}}", &lines.join("\n"))
            .replace("{{CA_DATA}}", &self.ca_data)
    }

    /// Both clients' outcomes for one file, with what each printed.
    fn run(&self, name: &str, bytes: &[u8]) -> (Outcome, Outcome, String) {
        let file = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&file, bytes).unwrap();
        let kubectl_tag = format!("{name}-kubectl");
        let said_kubectl = self.kubectl(&file, &kubectl_tag);
        let kproxy_tag = format!("{name}-kproxy");
        let said_kproxy = self.kproxy(&file, &kproxy_tag);
        (
            self.outcome(&kubectl_tag),
            self.outcome(&kproxy_tag),
            format!("kubectl said: {said_kubectl}\nkproxy said: {said_kproxy}"),
        )
    }

    fn outcome(&self, tag: &str) -> Outcome {
        // kubectl adds `&timeout=20s` for its --request-timeout.
        let target = format!("/api?case={tag}");
        let ours = |t: &str| t == target || t.starts_with(&format!("{target}&"));
        let mut reached = Vec::new();
        for (server, fake) in [('A', &self.a), ('B', &self.b)] {
            for request in fake.requests().iter().filter(|r| ours(&r.target)) {
                let header = |name| request.header(name).map(str::to_string);
                reached.push((server, header("Authorization"), header("Impersonate-User")));
            }
        }
        match reached.is_empty() {
            true => Outcome::Refused,
            false => Outcome::Reached(reached),
        }
    }

    fn kubectl(&self, file: &Path, tag: &str) -> String {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(file)
            .args(["--request-timeout=20s", "get", "--raw"])
            .arg(format!("/api?case={tag}"))
            .env_remove("KUBECONFIG")
            .env("HOME", &self.home)
            .stdin(Stdio::null());
        let out = finish(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        first_line(&out)
    }

    fn kproxy(&self, file: &Path, tag: &str) -> String {
        let mut cmd = kproxy_command();
        cmd.arg("--kubeconfig")
            .arg(file)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PER_FILE).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("Starting to serve on ") else {
            // It stopped at start: its one line says why.
            return first_line(&finish(child));
        };
        let (_, body, _) = curl(&[&format!("http://{addr}/api?case={tag}")]);
        let _ = child.kill();
        let stderr = finish(child);
        match stderr.trim().is_empty() {
            true => format!("(served) {}", body.lines().next().unwrap_or_default()),
            false => format!("(served) {}", first_line(&stderr)),
        }
    }
}

/// Waits for a child (killing it past [`PER_FILE`]); returns its stderr.
fn finish(mut child: Child) -> String {
    let deadline = Instant::now() + PER_FILE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// The hand-written corpus: (file name, text with placeholders).
fn corpus() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubeconfigs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap();
            (name, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

/// Runs every (name, bytes) through both clients on a few threads; returns
/// the mismatches and a count of outcomes by kind.
fn differential(lab: &Arc<Lab>, files: Vec<(String, Vec<u8>)>) -> (Vec<String>, [usize; 3]) {
    let queue = Arc::new(Mutex::new(files));
    let found = Arc::new(Mutex::new((Vec::new(), [0usize; 3])));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (lab, queue, found) = (lab.clone(), queue.clone(), found.clone());
            thread::spawn(move || loop {
                let Some((name, bytes)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let (theirs, ours, said) = lab.run(&name, &bytes);
                let mut found = found.lock().unwrap();
                let kind = match &theirs {
                    Outcome::Refused => 0,
                    Outcome::Reached(r) if r[0].0 == 'A' => 1,
                    Outcome::Reached(_) => 2,
                };
                found.1[kind] += 1;
                if theirs != ours || std::env::var_os("KPROXY_DIALECT_ALL").is_some() {
                    found.0.push(format!(
                        "{name}:\n  kubectl: {theirs:?}\n  kproxy:  {ours:?}\n  {}",
                        said.replace('\n', "\n  ")
                    ));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let mut found = found.lock().unwrap();
    found.0.sort();
    (std::mem::take(&mut found.0), found.1)
}

fn report(what: &str, mismatches: &[String], counts: [usize; 3]) {
    eprintln!(
        "{what}: refused by both or neither reached {}, server A {}, server B {}",
        counts[0], counts[1], counts[2]
    );
    assert!(
        mismatches.is_empty(),
        "{} of {what} read differently by kproxy and kubectl:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn hand_written_kubeconfigs_are_read_as_kubectl_reads_them() {
    if !have_tool("kubectl", "kubectl") {
        return;
    }
    let lab = Arc::new(Lab::start());
    let files: Vec<(String, Vec<u8>)> = corpus()
        .into_iter()
        .map(|(name, text)| {
            let text = lab.fill(&text);
            // Byte-level variants the corpus cannot hold as text.
            let bytes = match name.as_str() {
                n if n.contains("bom") => [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat(),
                n if n.contains("crlf") => text.replace('\n', "\r\n").into_bytes(),
                n if n.contains("utf16") => {
                    let mut out = vec![0xff, 0xfe];
                    text.encode_utf16()
                        .for_each(|u| out.extend(u.to_le_bytes()));
                    out
                }
                _ => text.into_bytes(),
            };
            (name, bytes)
        })
        .collect();
    assert!(files.len() >= 40, "the corpus holds {} files", files.len());
    let (mismatches, counts) = differential(&lab, files);
    report("the hand-written kubeconfigs", &mismatches, counts);
    // The corpus means to reach both servers and to be refused: if one of these
    // is zero, something other than the dialect broke.
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[test]
fn generated_kubeconfigs_are_read_as_kubectl_reads_them() {
    if !have_tool("kubectl", "kubectl") {
        return;
    }
    let seed = std::env::var("KPROXY_DIALECT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let lab = Arc::new(Lab::start());
    let mut rng = Rng(seed);
    let files: Vec<(String, Vec<u8>)> = (0..GENERATED)
        .map(|i| (format!("gen-{seed}-{i:03}"), generate(&mut rng, &lab)))
        .collect();
    let kept = temp_dir("dialect-generated");
    for (name, bytes) in &files {
        std::fs::write(kept.join(format!("{name}.kubeconfig")), bytes).unwrap();
    }
    let (mismatches, counts) = differential(&lab, files);
    report(
        &format!(
            "{GENERATED} generated kubeconfigs (seed {seed}, kept in {})",
            kept.display()
        ),
        &mismatches,
        counts,
    );
    assert!(counts.iter().all(|&n| n > 10), "{counts:?}");
}

/// xorshift64*: small, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A YAML value to write: a scalar already spelled, or a collection written
/// in block or flow style as the generator decides.
enum Y {
    Scalar(String),
    Map(Vec<(String, Y)>, Option<&'static str>),
    Seq(Vec<Y>),
    Alias(&'static str),
}

fn s(text: &str) -> Y {
    Y::Scalar(text.to_string())
}

/// A kubeconfig: two clusters (A and B), two users, two contexts, and one of
/// them current; then each field spelled, quoted, styled, duplicated or merged
/// in some way, many of which kubectl refuses.
fn generate(rng: &mut Rng, lab: &Lab) -> Vec<u8> {
    let mut clusters = Vec::new();
    let mut anchored = false;
    for (name, url) in [("a", lab.a.url()), ("b", lab.b.url())] {
        let mut body = vec![("server".to_string(), Y::Scalar(quote(rng, &url)))];
        match rng.below(6) {
            0 => body.push(("certificate-authority-data".into(), s(&lab.ca_data))),
            1 => body.push((
                "insecure-skip-tls-verify".into(),
                s(rng.pick::<&str>(&[
                    "true",
                    "True",
                    "yes",
                    "Yes",
                    "on",
                    "ON",
                    "y",
                    "\"true\"",
                    "1",
                    "!!bool yes",
                    "false",
                    "no",
                    "off",
                    "n",
                    "~",
                    "",
                ])),
            )),
            _ => body.push((
                "certificate-authority".into(),
                Y::Scalar(quote(rng, &lab.dir.join("ca.crt").display().to_string())),
            )),
        }
        if rng.chance(15) {
            // The other server, before or after: the last one written wins.
            let other = match name {
                "a" => lab.b.url(),
                _ => lab.a.url(),
            };
            let at = rng.below(body.len() + 1);
            body.insert(at, ("server".into(), Y::Scalar(quote(rng, &other))));
        }
        if rng.chance(8) {
            body.push((
                rng.pick(&["Server", "SERVER", "server "]).to_string(),
                s("x"),
            ));
        }
        let anchor = (!anchored && rng.chance(25)).then(|| {
            anchored = true;
            "base"
        });
        if anchor.is_none() && anchored && rng.chance(60) {
            // Merged where it stands: keys before it lose, keys after it win.
            let at = rng.below(body.len() + 1);
            body.insert(at, ("<<".into(), Y::Alias("base")));
        }
        clusters.push(entry(rng, name, "cluster", Y::Map(body, anchor)));
    }
    let mut users = Vec::new();
    for (name, file, token) in [("ua", "token-a", "tok-a"), ("ub", "token-b", "tok-b")] {
        let mut body = Vec::new();
        match rng.below(7) {
            0 => body.push(("tokenFile".into(), Y::Scalar(quote(rng, file)))),
            1 => {
                body.push(("username".into(), Y::Scalar(quote(rng, name))));
                body.push(("password".into(), Y::Scalar(quote(rng, "p4ss"))));
            }
            2 => body.push((
                "token".into(),
                s(rng.pick::<&str>(&[
                    "12345",
                    "0x1F",
                    "yes",
                    "~",
                    "null",
                    "",
                    "'12345'",
                    "!!str 12345",
                    "1e3",
                    "\"\"",
                    "tok:en",
                    "!!str",
                    "\"tok-c\"",
                ])),
            )),
            _ => body.push(("token".into(), Y::Scalar(quote(rng, token)))),
        }
        if rng.chance(15) {
            let at = rng.below(body.len() + 1);
            body.insert(at, ("token".into(), Y::Scalar(quote(rng, "tok-dup"))));
        }
        if rng.chance(12) {
            body.push((
                "as".into(),
                s(rng.pick::<&str>(&["admin", "yes", "'on'", "1", "~", "\"\""])),
            ));
        }
        if rng.chance(6) {
            body.push(("token".into(), s(rng.pick::<&str>(&["~", "null", ""]))));
        }
        users.push(entry(rng, name, "user", Y::Map(body, None)));
    }
    let contexts = |rng: &mut Rng, swap: bool| {
        let pairs = match swap {
            false => [("ca", "a", "ua"), ("cb", "b", "ub")],
            true => [("ca", "b", "ub"), ("cb", "a", "ua")],
        };
        let list: Vec<Y> = pairs
            .iter()
            .map(|(name, cluster, user)| {
                let body = vec![
                    ("cluster".to_string(), Y::Scalar(quote(rng, cluster))),
                    ("user".to_string(), Y::Scalar(quote(rng, user))),
                ];
                entry(rng, name, "context", Y::Map(body, None))
            })
            .collect();
        Y::Seq(list)
    };
    let current = *rng.pick(&["ca", "cb"]);
    let mut top = vec![
        ("apiVersion".to_string(), s("v1")),
        ("kind".to_string(), s("Config")),
        ("clusters".to_string(), Y::Seq(clusters)),
        ("users".to_string(), Y::Seq(users)),
        ("contexts".to_string(), contexts(rng, false)),
        (
            "current-context".to_string(),
            Y::Scalar(quote(rng, current)),
        ),
    ];
    if rng.chance(12) {
        let at = rng.below(top.len() + 1);
        let other = if current == "ca" { "cb" } else { "ca" };
        top.insert(at, ("current-context".into(), Y::Scalar(quote(rng, other))));
    }
    if rng.chance(12) {
        let at = rng.below(top.len() + 1);
        top.insert(at, ("contexts".into(), contexts(rng, true)));
    }
    if rng.chance(5) {
        top.push((
            "preferences".into(),
            Y::Map(
                vec![("colors".into(), s(rng.pick::<&str>(&["yes", "1", "true"])))],
                None,
            ),
        ));
    }
    let doc = Y::Map(top, None);
    let json = rng.chance(8);
    let mut text = match json {
        true => json_text(&doc),
        false => block(rng, &doc, 0),
    };
    if rng.chance(8) {
        text = text.replace('\n', "\r\n");
    }
    if rng.chance(5) {
        text.insert(0, '\u{feff}');
    }
    text.into_bytes()
}

/// `{name: N, KIND: body}`, the name spelled one way or another.
fn entry(rng: &mut Rng, name: &str, kind: &str, body: Y) -> Y {
    let name = Y::Scalar(quote(rng, name));
    match rng.chance(50) {
        true => Y::Map(vec![("name".into(), name), (kind.into(), body)], None),
        false => Y::Map(vec![(kind.into(), body), ("name".into(), name)], None),
    }
}

/// A string in one of YAML's spellings of it: plain where that is allowed,
/// quoted either way, or tagged. (Plain `12345` is then a number, and so on:
/// the point.)
fn quote(rng: &mut Rng, text: &str) -> String {
    let plain_ok = !text.is_empty()
        && !text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.contains([',', '[', ']', '{', '}']);
    match rng.below(5) {
        0 | 1 if plain_ok => text.to_string(),
        0 | 2 => format!("'{}'", text.replace('\'', "''")),
        3 => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        _ if plain_ok => format!("!!str {text}"),
        _ => format!("!!str '{}'", text.replace('\'', "''")),
    }
}

/// Block style at `indent`, with flow style chosen for some collections.
fn block(rng: &mut Rng, y: &Y, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match y {
        Y::Map(entries, _) => {
            for (key, value) in entries {
                out.push_str(&format!("{pad}{key}:"));
                out.push_str(&block_value(rng, value, indent + 2, indent));
            }
        }
        Y::Seq(items) => {
            for item in items {
                // The item's own lines go two deeper than its dash.
                let rendered = match item {
                    Y::Map(..) if rng.chance(70) => block(rng, item, indent + 2),
                    _ => format!("{}{}\n", " ".repeat(indent + 2), flow(item)),
                };
                out.push_str(&format!("{pad}- {}", &rendered[indent + 2..]));
            }
        }
        Y::Scalar(_) | Y::Alias(_) => out.push_str(&format!("{pad}{}\n", flow(y))),
    }
    out
}

/// What follows `key:` in block style.
fn block_value(rng: &mut Rng, value: &Y, indent: usize, key_indent: usize) -> String {
    let comment = if rng.chance(5) { " # a comment" } else { "" };
    match value {
        Y::Map(entries, anchor) if !entries.is_empty() && rng.chance(75) => {
            let anchor = anchor.map(|a| format!(" &{a}")).unwrap_or_default();
            format!("{anchor}{comment}\n{}", block(rng, value, indent))
        }
        Y::Seq(items) if !items.is_empty() && rng.chance(75) => {
            // kubectl writes list items at the key's own indentation.
            let at = if rng.chance(50) { key_indent } else { indent };
            format!("{comment}\n{}", block(rng, value, at))
        }
        _ => format!(" {}{comment}\n", flow(value)),
    }
}

/// Flow style: `{k: v, ...}`, `[a, ...]`.
fn flow(y: &Y) -> String {
    match y {
        Y::Scalar(text) => text.clone(),
        Y::Alias(name) => format!("*{name}"),
        Y::Seq(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Y::Map(entries, anchor) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| match v {
                    // A flow scalar must not end the entry with a bare tag.
                    Y::Scalar(text) if text.is_empty() || text.ends_with("!!str") => {
                        format!("{k}: {text} ")
                    }
                    _ => format!("{k}: {}", flow(v)),
                })
                .collect();
            let anchor = anchor.map(|a| format!("&{a} ")).unwrap_or_default();
            format!("{anchor}{{{}}}", entries.join(", "))
        }
    }
}

/// The whole document as JSON, which is YAML too: only strings, no tags, no
/// aliases (a scalar that is not a plain string becomes one, quoted).
fn json_text(y: &Y) -> String {
    match y {
        Y::Scalar(text) => {
            let bare = text
                .trim_start_matches("!!str ")
                .trim_matches(|c| c == '\'' || c == '"');
            match text.as_str() {
                "true" | "false" | "null" => text.clone(),
                t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.to_string(),
                _ => format!("\"{}\"", bare.replace('\\', "\\\\").replace('"', "\\\"")),
            }
        }
        Y::Alias(_) => "null".into(),
        Y::Seq(items) => format!(
            "[{}]",
            items.iter().map(json_text).collect::<Vec<_>>().join(",")
        ),
        Y::Map(entries, _) => {
            let entries: Vec<String> = entries
                .iter()
                .filter(|(k, _)| k != "<<")
                .map(|(k, v)| format!("\"{k}\":{}", json_text(v)))
                .collect();
            format!("{{{}}}\n", entries.join(","))
        }
    }
}
