//! Which kubeconfig entries apply (client-go's `DeferredLoadingClientConfig`):
//! a context (`--context`, else the merged `current-context`), or `--cluster`
//! and `--user` on their own; with none, `--server` alone; with neither, in a
//! Pod, the in-cluster environment and service account.

use std::path::PathBuf;

use super::kubeconfig::{Cluster, Context, Entry, Kubeconfig, User};
use super::{ConfigError, ConfigProblem, Environment, Looked, ServerUrl};
use crate::edges::cli::Args;

/// What the flags are laid over: a kubeconfig's cluster and user, or the Pod's
/// in-cluster settings, or nothing.
#[derive(Default)]
pub struct Base<'a> {
    /// Whether a kubeconfig selected anything (a context, `--cluster` or
    /// `--user`): then who kproxy is must come from it or the flags.
    pub selected: bool,
    /// The context that selected the cluster and user, if one did.
    pub context: Option<&'a Entry<Context>>,
    pub cluster: Option<&'a Entry<Cluster>>,
    pub user: Option<&'a Entry<User>>,
    pub in_cluster: Option<InCluster>,
}

pub struct InCluster {
    pub server: ServerUrl,
    pub ca: PathBuf,
    pub token: PathBuf,
}

/// kubectl's rule: in-cluster only when no kubeconfig selects anything, and
/// `KUBERNETES_SERVICE_HOST` and `_PORT` are set.
pub fn in_cluster(
    args: &Args,
    env: &dyn Environment,
    files: &[PathBuf],
) -> Result<InCluster, ConfigError> {
    let (Some(host), Some(port)) = (
        env.var("KUBERNETES_SERVICE_HOST"),
        env.var("KUBERNETES_SERVICE_PORT"),
    ) else {
        let looked = match files {
            [] => Looked::NoKubeconfig,
            _ => Looked::NoContext(files.to_vec()),
        };
        return Err(ConfigError::from(ConfigProblem::NoApiServer(looked)));
    };
    Ok(InCluster {
        server: ServerUrl::in_cluster(&host, &port)?,
        ca: args.serviceaccount_dir.join("ca.crt"),
        token: args.serviceaccount_dir.join("token"),
    })
}

/// The cluster and user a context (or `--cluster`/`--user`) selects; `None`
/// when nothing is selected, which lets `--server` or in-cluster apply.
pub fn select<'a>(
    config: &'a Kubeconfig,
    args: &Args,
    warnings: &mut Vec<String>,
) -> Result<Option<Base<'a>>, ConfigError> {
    let find = |kind: &'static str, name: &str| {
        ConfigError::from(ConfigProblem::NoSuchEntry {
            kind,
            name: name.to_string(),
            files: config.files.clone(),
        })
    };
    let context: Option<&Entry<Context>> = match (&args.context, &config.current_context) {
        (Some(name), _) => {
            Some(named(&config.contexts, name).ok_or_else(|| find("context", name))?)
        }
        (None, Some((name, file))) => Some(named(&config.contexts, name).ok_or_else(|| {
            ConfigError::from(ConfigProblem::DanglingCurrentContext {
                name: name.clone(),
                file: file.clone(),
            })
        })?),
        (None, None) => None,
    };
    if context.is_none() && args.cluster.is_none() && args.user.is_none() {
        return Ok(None);
    }

    let cluster = match (
        &args.cluster,
        context.and_then(|c| c.value.cluster.as_ref()),
    ) {
        (Some(name), _) => {
            Some(named(&config.clusters, name).ok_or_else(|| find("cluster", name))?)
        }
        (None, Some(name)) => Some(named(&config.clusters, name).ok_or_else(|| {
            ConfigError::from(ConfigProblem::NoSuchCluster {
                context: context.map(|c| c.describe("context")).unwrap_or_default(),
                name: name.clone(),
                files: config.files.clone(),
            })
        })?),
        (None, None) => None,
    };
    let user = match (&args.user, context.and_then(|c| c.value.user.as_ref())) {
        (Some(name), _) => Some(named(&config.users, name).ok_or_else(|| find("auth info", name))?),
        (None, Some(name)) => {
            let user = named(&config.users, name);
            if user.is_none() {
                // kubectl goes on without credentials (over https it then
                // asks for a username: see `auth::credentials`); say so, once.
                warnings.push(format!(
                    "{} names user {name:?}, which no kubeconfig defines: \
                     sending requests without credentials",
                    context.map(|c| c.describe("context")).unwrap_or_default()
                ));
            }
            user
        }
        (None, None) => None,
    };
    Ok(Some(Base {
        selected: true,
        context,
        cluster,
        user,
        in_cluster: None,
    }))
}

fn named<'a, T>(entries: &'a [Entry<T>], name: &str) -> Option<&'a Entry<T>> {
    entries.iter().find(|e| e.name == name)
}
