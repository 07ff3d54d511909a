//! kubeconfig files, found, read and merged as kubectl does (client-go's
//! `clientcmd` loader):
//!
//! - `--kubeconfig FILE` alone, which must exist; else each file in `KUBECONFIG`
//!   (`:`-separated, duplicates dropped, missing ones skipped); else
//!   `$HOME/.kube/config` if it exists;
//! - for each cluster, user and context name, the first file that defines it wins,
//!   whole entry; `current-context` is the first non-empty one;
//! - unknown keys are ignored (Rancher writes some), a value of the wrong type is
//!   an error, relative paths are relative to the file that holds them.
//!
//! Only the data is here; what it means for the proxy is decided in
//! [`super::upstream`].

use std::path::{Path, PathBuf};

use super::{ConfigError, Environment};
use crate::leaves::base64;
use crate::leaves::secret::Secret;
use crate::leaves::yaml::{self, Value};

/// All the kubeconfig files kubectl would read, merged.
#[derive(Default)]
pub struct Kubeconfig {
    /// The files that were read, in order (for messages).
    pub files: Vec<PathBuf>,
    pub clusters: Vec<Entry<Cluster>>,
    pub users: Vec<Entry<User>>,
    pub contexts: Vec<Entry<Context>>,
    /// The name, and the file that set it.
    pub current_context: Option<(String, PathBuf)>,
}

/// A named cluster, user or context, with the file it came from.
pub struct Entry<T> {
    pub name: String,
    pub file: PathBuf,
    pub value: T,
}

impl<T> Entry<T> {
    /// `user "kind-kind" in /home/me/.kube/config`: how messages name it.
    pub fn describe(&self, kind: &str) -> String {
        format!("{kind} {:?} in {}", self.name, self.file.display())
    }
}

#[derive(Default)]
pub struct Cluster {
    pub server: Option<String>,
    pub certificate_authority: Option<PathBuf>,
    pub certificate_authority_data: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
    pub proxy_url: Option<String>,
}

/// A user ("AuthInfo"). Its secrets are [`Secret`]s, which never print.
#[derive(Default)]
pub struct User {
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_certificate_data: Option<Vec<u8>>,
    pub client_key: Option<PathBuf>,
    pub client_key_data: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub exec: Option<Exec>,
    /// Only its name: every provider is gone from kubectl since 1.26.
    pub auth_provider: Option<String>,
    pub impersonate: Option<String>,
    pub impersonate_uid: Option<String>,
    pub impersonate_groups: Vec<String>,
    pub impersonate_extra: Vec<(String, Vec<String>)>,
}

/// A credential plugin (`users[].user.exec`), checked when its user is chosen.
#[derive(Clone, Default)]
pub struct Exec {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub api_version: Option<String>,
    pub install_hint: Option<String>,
    pub provide_cluster_info: bool,
    pub interactive_mode: Option<String>,
}

#[derive(Default)]
pub struct Context {
    pub cluster: Option<String>,
    pub user: Option<String>,
}

/// The files kubectl would read, in order; `explicit` is `--kubeconfig`.
pub fn files(explicit: Option<&Path>, env: &dyn Environment) -> Result<Vec<PathBuf>, ConfigError> {
    if let Some(path) = explicit {
        // kubectl: a missing --kubeconfig is fatal, not skipped.
        return match path.exists() {
            true => Ok(vec![path.to_path_buf()]),
            false => Err(ConfigError::NoSuchKubeconfig(path.to_path_buf())),
        };
    }
    if let Some(list) = env.var("KUBECONFIG") {
        let mut files: Vec<PathBuf> = Vec::new();
        for path in list.split(':').filter(|p| !p.is_empty()).map(PathBuf::from) {
            if !files.contains(&path) && path.exists() {
                files.push(path);
            }
        }
        return Ok(files);
    }
    let default = env
        .var("HOME")
        .map(|home| Path::new(&home).join(".kube/config"));
    Ok(default.filter(|p| p.exists()).into_iter().collect())
}

/// Reads and merges `files` (see the module's rules).
pub fn load(files: &[PathBuf]) -> Result<Kubeconfig, ConfigError> {
    let mut merged = Kubeconfig {
        files: files.to_vec(),
        ..Kubeconfig::default()
    };
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| ConfigError::Unreadable {
            file: file.clone(),
            source,
        })?;
        let text = text_of(&bytes).ok_or_else(|| ConfigError::NotText(file.clone()))?;
        let one = parse(file, &text)?;
        merge(&mut merged.clusters, one.clusters);
        merge(&mut merged.users, one.users);
        merge(&mut merged.contexts, one.contexts);
        if merged.current_context.is_none() {
            merged.current_context = one.current_context;
        }
    }
    Ok(merged)
}

/// A file's text: UTF-8, or UTF-16 after its byte-order mark, as libyaml
/// (and so kubectl) reads either.
fn text_of(bytes: &[u8]) -> Option<String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        (rest.len() % 2 == 0).then(|| String::from_utf16(&units).ok())?
    };
    match bytes {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

fn merge<T>(into: &mut Vec<Entry<T>>, from: Vec<Entry<T>>) {
    for entry in from {
        if !into.iter().any(|e| e.name == entry.name) {
            into.push(entry);
        }
    }
}

/// One file, read as kubectl reads it: YAML by go-yaml v2's rules (see
/// [`yaml`]), then typed as Go's JSON decoder types it into client-go's
/// `Config`: keys are case-sensitive, unknown keys are ignored, `null` and an
/// empty string are as good as absent, and a value of the wrong type anywhere
/// kubectl decodes one is an error, even in a field kproxy does not use. An
/// empty file is an empty configuration.
pub fn parse(file: &Path, text: &str) -> Result<Kubeconfig, ConfigError> {
    let doc = yaml::parse(text, yaml::Limits::KUBECONFIG).map_err(|source| ConfigError::Yaml {
        file: file.to_path_buf(),
        source,
    })?;
    let root = Field {
        value: &doc,
        at: String::new(),
        file,
    };
    if !matches!(doc, Value::Map(_) | Value::Null) {
        return Err(root.wrong("a mapping (clusters:, users:, contexts:)"));
    }
    // kubectl finds the kind and version first, with field names in any case.
    for (key, want) in [("kind", "Config"), ("apiVersion", "v1")] {
        if let Some(found) = root.string_any_case(key)? {
            if found != want {
                return Err(root.wrong(&format!("{key}: {want} (not {found:?})")));
            }
        }
    }
    root.extensions("extensions")?;
    if let Some(preferences) = root.get("preferences") {
        preferences.object()?;
        preferences.boolean("colors")?;
        preferences.extensions("extensions")?;
    }
    Ok(Kubeconfig {
        files: Vec::new(),
        clusters: root.entries("clusters", "cluster", cluster)?,
        users: root.entries("users", "user", user)?,
        contexts: root.entries("contexts", "context", context)?,
        current_context: root
            .string("current-context")?
            .map(|name| (name, file.to_path_buf())),
    })
}

fn cluster(node: &Field) -> Result<Cluster, ConfigError> {
    node.boolean("disable-compression")?;
    node.extensions("extensions")?;
    Ok(Cluster {
        server: node.string("server")?,
        certificate_authority: node.path("certificate-authority")?,
        certificate_authority_data: node.data("certificate-authority-data")?,
        insecure_skip_tls_verify: node.boolean("insecure-skip-tls-verify")?,
        tls_server_name: node.string("tls-server-name")?,
        proxy_url: node.string("proxy-url")?,
    })
}

fn user(node: &Field) -> Result<User, ConfigError> {
    node.extensions("extensions")?;
    let extra = match node.get("as-user-extra") {
        None => Vec::new(),
        Some(extra) => extra
            .pairs()?
            .into_iter()
            .map(|(key, values)| Ok((key, values.strings_here()?)))
            .collect::<Result<_, ConfigError>>()?,
    };
    let auth_provider = match node.get("auth-provider") {
        Some(provider) => {
            provider.object()?;
            if let Some(config) = provider.get("config") {
                for (_, value) in config.pairs()? {
                    value.string_here()?;
                }
            }
            Some(provider.string("name")?.unwrap_or_default())
        }
        None => None,
    };
    Ok(User {
        token: node.string("token")?.map(Secret),
        token_file: node.path("tokenFile")?,
        client_certificate: node.path("client-certificate")?,
        client_certificate_data: node.data("client-certificate-data")?,
        client_key: node.path("client-key")?,
        client_key_data: node
            .data("client-key-data")?
            .map(|key| Secret(String::from_utf8_lossy(&key).into_owned())),
        username: node.string("username")?,
        password: node.string("password")?.map(Secret),
        exec: node
            .get("exec")
            .map(|exec| exec_plugin(&exec))
            .transpose()?,
        auth_provider,
        impersonate: node.string("as")?,
        impersonate_uid: node.string("as-uid")?,
        impersonate_groups: node.strings("as-groups")?,
        impersonate_extra: extra,
    })
}

fn exec_plugin(node: &Field) -> Result<Exec, ConfigError> {
    node.object()?;
    let env = match node.get("env") {
        None => Vec::new(),
        Some(list) => list
            .items()?
            .iter()
            .map(|var| {
                var.object_or_null()?;
                let name = var.string("name")?.unwrap_or_default();
                Ok((name, var.string("value")?.unwrap_or_default()))
            })
            .collect::<Result<_, ConfigError>>()?,
    };
    // client-go: a command with a path separator is relative to the file; a
    // bare name is looked up in PATH.
    let command = node
        .string("command")?
        .map(|command| match command.contains('/') {
            true => node.resolve(&command).display().to_string(),
            false => command,
        });
    Ok(Exec {
        command,
        args: node.strings("args")?,
        env,
        api_version: node.string("apiVersion")?,
        install_hint: node.string("installHint")?,
        provide_cluster_info: node.boolean("provideClusterInfo")?,
        interactive_mode: node.string("interactiveMode")?,
    })
}

fn context(node: &Field) -> Result<Context, ConfigError> {
    node.string("namespace")?;
    node.extensions("extensions")?;
    Ok(Context {
        cluster: node.string("cluster")?,
        user: node.string("user")?,
    })
}

/// A place in the document, for typed reads with errors that say where.
struct Field<'a> {
    value: &'a Value,
    /// `users["kind"].user.exec`, say.
    at: String,
    file: &'a Path,
}

impl<'a> Field<'a> {
    fn wrong(&self, expected: &str) -> ConfigError {
        let at = match self.at.is_empty() {
            true => "the document",
            false => &self.at,
        };
        ConfigError::Field {
            file: self.file.to_path_buf(),
            at: at.to_string(),
            expected: expected.to_string(),
        }
    }

    fn child(&self, at: String, value: &'a Value) -> Field<'a> {
        Field {
            value,
            at,
            file: self.file,
        }
    }

    fn child_at(&self, key: &str) -> String {
        match self.at.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.at),
        }
    }

    /// The value under `key`, or `None` when absent or null (JSON's null
    /// leaves a Go field as it was).
    fn get(&self, key: &str) -> Option<Field<'a>> {
        self.value
            .get(key)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| self.child(self.child_at(key), v))
    }

    /// A struct: a mapping (JSON decodes nothing else into one).
    fn object(&self) -> Result<(), ConfigError> {
        match self.value {
            Value::Map(_) => Ok(()),
            _ => Err(self.wrong("a mapping")),
        }
    }

    fn object_or_null(&self) -> Result<(), ConfigError> {
        match self.value {
            Value::Null => Ok(()),
            _ => self.object(),
        }
    }

    /// An empty string counts as absent, as Go's zero value does.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let value = self.get(key).map(|node| node.string_here()).transpose()?;
        Ok(value.filter(|s| !s.is_empty()))
    }

    /// `kind` and `apiVersion` as kubectl first reads them, with Go's
    /// case-insensitive field names (`Kind:` counts).
    fn string_any_case(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Value::Map(entries) = self.value else {
            return Ok(None);
        };
        let found = entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .min_by_key(|(k, _)| k != key);
        match found {
            None | Some((_, Value::Null)) => Ok(None),
            Some((k, value)) => self.child(self.child_at(k), value).string_here().map(Some),
        }
    }

    fn string_here(&self) -> Result<String, ConfigError> {
        match self.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Number(_) | Value::Bool(_) => Err(self.wrong("a string (put it in quotes)")),
            _ => Err(self.wrong("a string")),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(node) => match node.value {
                Value::Bool(b) => Ok(*b),
                _ => Err(node.wrong("true or false")),
            },
        }
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key)?.map(|p| self.resolve(&p)))
    }

    /// Relative to the directory of the file that holds it; no `~` expansion.
    fn resolve(&self, path: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        dir.join(path)
    }

    /// A `[]byte` field: base64 as Go decodes it; empty counts as absent.
    fn data(&self, key: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(node) = self.get(key) else {
            return Ok(None);
        };
        let text = node.string_here()?;
        match base64::decode(&text) {
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => Ok(Some(bytes)),
            None => Err(node.wrong(
                "base64 (as `base64 -w0 FILE` prints it; only line breaks may come between)",
            )),
        }
    }

    fn items(&self) -> Result<Vec<Field<'a>>, ConfigError> {
        match self.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| self.child(format!("{}[{i}]", self.at), item))
                .collect()),
            _ => Err(self.wrong("a list")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(node) => node.strings_here(),
        }
    }

    /// A `[]string`: a null item is Go's empty string.
    fn strings_here(&self) -> Result<Vec<String>, ConfigError> {
        let items = match self.value {
            Value::Null => return Ok(Vec::new()),
            _ => self.items()?,
        };
        items
            .iter()
            .map(|item| match item.value {
                Value::Null => Ok(String::new()),
                _ => item.string_here(),
            })
            .collect()
    }

    fn pairs(&self) -> Result<Vec<(String, Field<'a>)>, ConfigError> {
        let Value::Map(map) = self.value else {
            return Err(self.wrong("a mapping"));
        };
        Ok(map
            .iter()
            .map(|(key, value)| (key.clone(), self.child(self.child_at(key), value)))
            .collect())
    }

    /// `extensions:`: a list of `{name, extension}`, where an extension may be
    /// anything; names once each, as kubectl converts the list into a map.
    fn extensions(&self, key: &str) -> Result<(), ConfigError> {
        self.entries(key, "extension", |_| Ok(())).map(drop)
    }

    /// `clusters:` and the like: a list of `{name: N, KIND: {...}}`, each name
    /// once (kubectl: "duplicate name in list"). A null item is an entry
    /// with an empty name, as Go decodes it.
    fn entries<T>(
        &self,
        list: &str,
        kind: &str,
        read: fn(&Field) -> Result<T, ConfigError>,
    ) -> Result<Vec<Entry<T>>, ConfigError> {
        let Some(node) = self.get(list) else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<Entry<T>> = Vec::new();
        for item in node.items()? {
            item.object_or_null()?;
            let name = item.string("name")?.unwrap_or_default();
            if entries.iter().any(|e| e.name == name) {
                return Err(item.wrong(&format!(
                    "a {kind} name used once (duplicate name {name:?})"
                )));
            }
            let body = match item.get(kind) {
                Some(mut body) => {
                    body.at = format!("{list}[{name:?}].{kind}");
                    if kind != "extension" {
                        body.object()?;
                    }
                    read(&body)?
                }
                None => read(&item.child(String::new(), &Value::Null))?,
            };
            entries.push(Entry {
                name,
                file: self.file.to_path_buf(),
                value: body,
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Kubeconfig {
        parse(Path::new("/home/me/.kube/config"), text).unwrap()
    }

    fn error(text: &str) -> String {
        match parse(Path::new("/k/config"), text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_what_kubectl_writes_and_what_people_edit() {
        let config = parsed(
            r#"
apiVersion: v1
kind: Config
preferences: {}
base: &tls {insecure-skip-tls-verify: true}
clusters:
- name: rancher        # a comment
  cluster:
    server: "https://rancher.example/k8s/clusters/c-abc"
    certificate-authority-data: "Zm9v\
      YmFy"
    api-version: v1    # unknown: ignored
- {name: edge, cluster: {<<: *tls, server: 'https://10.0.0.1:6443', tls-server-name: api}}
users:
- name: me
  user:
    tokenFile: ../tokens/me
    client-certificate: /abs/cert.pem
    as: alice
    as-groups: [dev, ops]
    as-user-extra: {scopes: [read]}
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/plugin
      args: [get-token]
      env: [{name: A, value: b}]
      provideClusterInfo: true
- name: plain
  user:
    password: |
      s3cret
contexts:
- {name: c, context: {cluster: rancher, user: me}}
current-context: c
"#,
        );
        let rancher = &config.clusters[0];
        assert_eq!(rancher.name, "rancher");
        assert_eq!(
            rancher.value.server.as_deref(),
            Some("https://rancher.example/k8s/clusters/c-abc")
        );
        assert_eq!(
            rancher.value.certificate_authority_data.as_deref(),
            Some(&b"foobar"[..])
        );
        let edge = &config.clusters[1].value;
        assert!(edge.insecure_skip_tls_verify, "merged in from the anchor");
        assert_eq!(edge.tls_server_name.as_deref(), Some("api"));
        let me = &config.users[0].value;
        assert_eq!(
            me.token_file.as_deref(),
            Some(Path::new("/home/me/.kube/../tokens/me"))
        );
        assert_eq!(
            me.client_certificate.as_deref(),
            Some(Path::new("/abs/cert.pem"))
        );
        assert_eq!(me.impersonate.as_deref(), Some("alice"));
        assert_eq!(me.impersonate_groups, ["dev", "ops"]);
        assert_eq!(
            me.impersonate_extra,
            [("scopes".to_string(), vec!["read".to_string()])]
        );
        let exec = me.exec.as_ref().unwrap();
        assert_eq!(exec.command.as_deref(), Some("/home/me/.kube/./bin/plugin"));
        assert_eq!(exec.env, [("A".to_string(), "b".to_string())]);
        assert!(exec.provide_cluster_info);
        assert_eq!(
            config.users[1].value.password.as_ref().unwrap().0,
            "s3cret\n"
        );
        assert_eq!(config.contexts[0].value.user.as_deref(), Some("me"));
        assert_eq!(config.current_context.as_ref().unwrap().0, "c");
    }

    #[test]
    fn empty_files_are_empty_configurations() {
        assert!(parsed("").clusters.is_empty());
        assert!(parsed("# nothing\n").current_context.is_none());
        assert!(parsed("current-context: \"\"").current_context.is_none());
    }

    #[test]
    fn wrong_types_say_where() {
        let e = error("clusters:\n- name: a\n  cluster: {server: 6443}\n");
        assert!(
            e.contains(r#"clusters["a"].cluster.server: expected a string (put it in quotes)"#),
            "{e}"
        );
        let e = error("clusters:\n- name: a\n  cluster: {insecure-skip-tls-verify: yes please}\n");
        assert!(e.contains("expected true or false"), "{e}");
        let e = error("users:\n- name: u\n  user: {client-key-data: '***'}\n");
        assert!(
            e.contains(r#"users["u"].user.client-key-data: expected base64"#),
            "{e}"
        );
        let e = error("users: {u: 1}\n");
        assert!(e.contains("users: expected a list"), "{e}");
        let e = error("contexts:\n- name: x\n- name: x\n");
        assert!(e.contains(r#"duplicate name "x""#), "{e}");
        let e = error("clusters: [\n");
        assert!(e.starts_with("kubeconfig /k/config: not valid YAML"), "{e}");
        let e = error("- a\n");
        assert!(e.contains("the document: expected a mapping"), "{e}");
    }
}
