//! The API server's URL: `--server`, a kubeconfig's `server`, or the in-cluster
//! environment.

use std::fmt;
use std::net::IpAddr;

use super::{ConfigError, ConfigProblem};
use crate::leaves::http::split_host_port;

/// The API server's address, as taken from `--server`, a kubeconfig or the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub https: bool,
    /// Host as written in a URL: an IPv6 literal keeps its brackets.
    pub host: String,
    pub port: u16,
    /// The path after the host, without a trailing `/`: empty, or `/k8s/clusters/c-abc`
    /// behind Rancher. kubectl proxy ignores it unless `--append-server-path`.
    pub path: String,
}

impl ServerUrl {
    /// Parses `--server`'s `http(s)://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<ServerUrl, ConfigError> {
        ServerUrl::parse_from(url, "--server")
    }

    /// Parses `http(s)://host[:port][/path]`; `from` names where it was written.
    /// A query or fragment is dropped, as client-go drops it.
    pub fn parse_from(url: &str, from: &str) -> Result<ServerUrl, ConfigError> {
        let bad = |why: &'static str| {
            ConfigError::from(ConfigProblem::ServerUrl {
                from: from.to_string(),
                url: url.to_string(),
                why,
            })
        };
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("expected https://HOST[:PORT]"));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(bad("the path holds spaces or control characters"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None => default_port,
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad("bad host"));
        }
        Ok(ServerUrl {
            https,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// `https://HOST:PORT` as `rest.InClusterConfig` builds it (IPv6 in brackets).
    pub fn in_cluster(host: &str, port: &str) -> Result<ServerUrl, ConfigError> {
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host.to_string(),
        };
        ServerUrl::parse(&format!("https://{host}:{port}")).map_err(|_| {
            ConfigError::from(ConfigProblem::InClusterAddress {
                host,
                port: port.to_string(),
            })
        })
    }

    /// The host without IPv6 brackets: what DNS, sockets and TLS want.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// `host:port`, the value of the Host header sent upstream.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let ok = |url: &str, https, host: &str, port| {
            let parsed = ServerUrl::parse(url).unwrap();
            assert_eq!(
                (parsed.https, &parsed.host[..], parsed.port),
                (https, host, port),
                "{url}"
            )
        };
        ok("https://10.0.0.1:6443", true, "10.0.0.1", 6443);
        ok(
            "https://kubernetes.default.svc",
            true,
            "kubernetes.default.svc",
            443,
        );
        ok("https://[fd00::1]:443/", true, "[fd00::1]", 443);
        ok("http://127.0.0.1:8080", false, "127.0.0.1", 8080);
        for bad in [
            "10.0.0.1:443",
            "https://",
            "https://h:x",
            "https://[::1",
            "ftp://h",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
        let rancher = ServerUrl::parse("https://r.example/k8s/clusters/c-abc/?x=1").unwrap();
        assert_eq!(rancher.path, "/k8s/clusters/c-abc");
        assert_eq!(ServerUrl::parse("https://h/").unwrap().path, "");
        assert!(ServerUrl::parse("https://h/a b").is_err());
        assert_eq!(
            ServerUrl::in_cluster("fd00::1", "443").unwrap().to_string(),
            "https://[fd00::1]:443"
        );
    }
}
