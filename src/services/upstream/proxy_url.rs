//! A cluster's `proxy-url`: connections to the API server through an HTTP proxy
//! (`CONNECT`) or a SOCKS5 proxy, as client-go makes them. The TLS handshake with
//! the API server runs inside the tunnel, end to end: the proxy sees the host and
//! port, never the token. Unlike kubectl proxy, tunnels for exec, attach and
//! port-forward go through the proxy too (client-go's upgrade dialer skips it).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};

/// Where the proxy is, and how to ask it for a tunnel.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: Kind,
    /// As in a URL: an IPv6 literal keeps its brackets.
    pub host: String,
    pub port: u16,
    /// From the URL's user info: `Proxy-Authorization: Basic` for HTTP, RFC 1929
    /// username and password for SOCKS5.
    credentials: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Http,
    Socks5,
}

/// Never shows the password.
impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} proxy {}:{}", self.kind, self.host, self.port)
    }
}

/// Why a `proxy-url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyUrlError {
    NoScheme,
    /// `https://`: TLS to the proxy, then TLS again inside it.
    Https,
    UnsupportedScheme(String),
    BadHost,
    BadPort,
    NoHost,
    BadEscape,
    NotUtf8,
}

impl fmt::Display for ProxyUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyUrlError::NoScheme => f.write_str("expected SCHEME://HOST[:PORT]"),
            ProxyUrlError::Https => f.write_str(
                "an https:// proxy is not supported by kproxy: use http:// or socks5://",
            ),
            ProxyUrlError::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported scheme {scheme:?}, must be http, https, or socks5"
            ),
            ProxyUrlError::BadHost => f.write_str("bad host"),
            ProxyUrlError::BadPort => f.write_str("bad port"),
            ProxyUrlError::NoHost => f.write_str("no host"),
            ProxyUrlError::BadEscape => f.write_str("a bad %-escape in the user info"),
            ProxyUrlError::NotUtf8 => f.write_str("user info that is not UTF-8"),
        }
    }
}

impl std::error::Error for ProxyUrlError {}

impl ProxyUrl {
    /// `http://[user:password@]host[:port]` (port 80 by default) or
    /// `socks5://[user:password@]host[:port]` (1080), as client-go accepts them.
    pub fn parse(url: &str) -> Result<ProxyUrl, ProxyUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(ProxyUrlError::NoScheme)?;
        let (kind, default_port) = match scheme {
            "http" => (Kind::Http, 80),
            "socks5" => (Kind::Socks5, 1080),
            // client-go speaks TLS to an https proxy, then TLS again inside:
            // two TLS layers kproxy's transport does not nest.
            "https" => return Err(ProxyUrlError::Https),
            other => return Err(ProxyUrlError::UnsupportedScheme(other.to_string())),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let credentials = match userinfo {
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                Some((decode(user)?, decode(password)?))
            }
            None => None,
        };
        let (host, port) =
            crate::leaves::http::split_host_port(hostport).ok_or(ProxyUrlError::BadHost)?;
        let port = match port {
            Some(p) => p.parse().map_err(|_| ProxyUrlError::BadPort)?,
            None => default_port,
        };
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        Ok(ProxyUrl {
            kind,
            host: host.to_string(),
            port,
            credentials,
        })
    }

    /// The host without IPv6 brackets, to dial.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// Asks the proxy, over `tcp`, for a tunnel to `host:port` (host bare).
    pub fn tunnel(&self, tcp: &mut TcpStream, host: &str, port: u16) -> io::Result<()> {
        match self.kind {
            Kind::Http => self.connect(tcp, host, port),
            Kind::Socks5 => self.socks5(tcp, host, port),
        }
    }

    fn connect(&self, tcp: &mut TcpStream, host: &str, port: u16) -> io::Result<()> {
        let target = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let authorization = match &self.credentials {
            Some((user, password)) => format!(
                "Proxy-Authorization: Basic {}\r\n",
                crate::leaves::base64::encode(format!("{user}:{password}").as_bytes())
            ),
            None => String::new(),
        };
        write!(
            tcp,
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{authorization}\r\n"
        )?;
        // Byte by byte up to the blank line: whatever follows is the API server's.
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 || tcp.read(&mut byte)? == 0 {
                return Err(refused(
                    self,
                    &target,
                    "it closed the connection or sent no answer",
                ));
            }
            head.push(byte[0]);
        }
        let status = String::from_utf8_lossy(&head);
        let line = status.lines().next().unwrap_or_default();
        match line.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            _ => Err(refused(self, &target, line)),
        }
    }

    /// RFC 1928, with RFC 1929 username and password when the URL has them. A
    /// host name goes to the proxy to resolve, as client-go's dialer sends it.
    fn socks5(&self, tcp: &mut TcpStream, host: &str, port: u16) -> io::Result<()> {
        let target = format!("{host}:{port}");
        let fail = |why: &str| refused(self, &target, why);
        let methods: &[u8] = match self.credentials {
            Some(_) => &[5, 2, 0, 2],
            None => &[5, 1, 0],
        };
        tcp.write_all(methods)?;
        let mut reply = [0u8; 2];
        tcp.read_exact(&mut reply)?;
        match (reply, &self.credentials) {
            ([5, 0], _) => {}
            ([5, 2], Some((user, password))) => {
                let (user, password) = (user.as_bytes(), password.as_bytes());
                if user.len() > 255 || password.len() > 255 {
                    return Err(fail("username or password longer than SOCKS5 allows"));
                }
                let mut auth = vec![1, user.len() as u8];
                auth.extend_from_slice(user);
                auth.push(password.len() as u8);
                auth.extend_from_slice(password);
                tcp.write_all(&auth)?;
                tcp.read_exact(&mut reply)?;
                if reply[1] != 0 {
                    return Err(fail("it refused the username and password"));
                }
            }
            _ => {
                return Err(fail(
                    "it accepts none of the offered authentication methods",
                ))
            }
        }
        let mut request = vec![5, 1, 0];
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                request.push(1);
                request.extend_from_slice(&v4.octets());
            }
            Ok(IpAddr::V6(v6)) => {
                request.push(4);
                request.extend_from_slice(&v6.octets());
            }
            Err(_) if host.len() <= 255 => {
                request.extend_from_slice(&[3, host.len() as u8]);
                request.extend_from_slice(host.as_bytes());
            }
            Err(_) => return Err(fail("host name too long for SOCKS5")),
        }
        request.extend_from_slice(&port.to_be_bytes());
        tcp.write_all(&request)?;
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head)?;
        if head[1] != 0 {
            return Err(fail(match head[1] {
                2 => "connection not allowed by its rules",
                3 => "network unreachable",
                4 => "host unreachable",
                5 => "connection refused",
                6 => "TTL expired",
                _ => "general failure",
            }));
        }
        // The address it bound, then the port: read and forget.
        let rest = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut len = [0u8];
                tcp.read_exact(&mut len)?;
                len[0] as usize + 2
            }
            _ => return Err(fail("a malformed answer")),
        };
        tcp.read_exact(&mut vec![0u8; rest])
    }
}

fn refused(proxy: &ProxyUrl, target: &str, why: &str) -> io::Error {
    io::Error::other(format!(
        "the proxy {}:{} (proxy-url) gave no tunnel to {target}: {why}",
        proxy.host, proxy.port
    ))
}

/// `%XX` in a URL's user info; a broken escape is an error, as in Go's url.Parse.
fn decode(text: &str) -> Result<String, ProxyUrlError> {
    let bytes = crate::leaves::path::percent_decode(text).ok_or(ProxyUrlError::BadEscape)?;
    String::from_utf8(bytes).map_err(|_| ProxyUrlError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("http://u%40x:p%3Ass@proxy.example:3128/").unwrap();
        assert_eq!(
            (p.kind, &p.host[..], p.port),
            (Kind::Http, "proxy.example", 3128)
        );
        assert_eq!(p.credentials, Some(("u@x".into(), "p:ss".into())));
        assert!(!format!("{p:?}").contains("p:ss"));
        let p = ProxyUrl::parse("socks5://[::1]").unwrap();
        assert_eq!((p.kind, p.bare_host(), p.port), (Kind::Socks5, "::1", 1080));
        assert_eq!(ProxyUrl::parse("https://p:443"), Err(ProxyUrlError::Https));
        assert!(ProxyUrl::parse("ftp://p")
            .unwrap_err()
            .to_string()
            .contains("must be http, https, or socks5"));
        assert!(ProxyUrl::parse("p:3128").is_err());
        assert!(ProxyUrl::parse("http://:3128").is_err());
        assert!(ProxyUrl::parse("http://u:%zz@p:1").is_err());
    }
}
