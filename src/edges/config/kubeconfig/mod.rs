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
//! `config/upstream.rs`.

use std::path::{Path, PathBuf};

use field::Field;

use super::{ConfigError, ConfigProblem, Environment};
use crate::leaves::secret::Secret;
use crate::leaves::yaml::{self, Value};

mod field;

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
            false => Err(ConfigError::from(ConfigProblem::NoSuchKubeconfig(
                path.to_path_buf(),
            ))),
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
        let bytes = std::fs::read(file).map_err(|source| {
            ConfigError::from(ConfigProblem::Unreadable {
                file: file.clone(),
                source,
            })
        })?;
        let text = text_of(&bytes)
            .ok_or_else(|| ConfigError::from(ConfigProblem::NotText(file.clone())))?;
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
    let doc = yaml::parse(text, yaml::Limits::KUBECONFIG).map_err(|source| {
        ConfigError::from(ConfigProblem::Yaml {
            file: file.to_path_buf(),
            source,
        })
    })?;
    let root = Field::root(&doc, file);
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
