//! Which HTTP proxy, if any, a connection goes through: the upstream's own `proxy` setting,
//! else `HTTPS_PROXY` (https targets) or `HTTP_PROXY` (http targets) unless `NO_PROXY` lists
//! the host.
//!
//! `NO_PROXY` is a comma list, as curl reads it: `*` (every host), a host name (itself and
//! every name under it; a leading `.` or `*.` is the same), an IP address or a CIDR network
//! (matching only targets written as that address, no name is resolved), each optionally
//! followed by `:port` (then only that port matches). Loopback is not left out implicitly:
//! list `localhost,127.0.0.1,::1` to reach local services directly. `ALL_PROXY` is not read.
//! Hand-written rather than hyper-util's matcher, which knows no ports in `NO_PROXY`.

use std::net::IpAddr;

use base64::Engine as _;
use http::{HeaderValue, Uri};
use ipnet::IpNet;
use url::{Host, Url};

/// The proxy variables of an environment, read once. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnvironment {
    /// `HTTP_PROXY` (or `http_proxy`): the proxy for `http://` targets.
    pub http_proxy: Option<String>,
    /// `HTTPS_PROXY` (or `https_proxy`): the proxy for `https://` targets.
    pub https_proxy: Option<String>,
    /// `NO_PROXY` (or `no_proxy`): the hosts reached directly.
    pub no_proxy: Option<String>,
}

impl ProxyEnvironment {
    /// Reads this process's environment; the upper-case name wins when both are set, as
    /// curl and reqwest do. Empty values count as unset.
    pub fn from_process() -> Self {
        let read = |upper: &str, lower: &str| {
            [upper, lower]
                .into_iter()
                .filter_map(|name| std::env::var(name).ok())
                .find(|value| !value.trim().is_empty())
        };
        Self {
            http_proxy: read("HTTP_PROXY", "http_proxy"),
            https_proxy: read("HTTPS_PROXY", "https_proxy"),
            no_proxy: read("NO_PROXY", "no_proxy"),
        }
    }

    /// The proxy for `target`, if the environment names one and `NO_PROXY` does not list
    /// it.
    pub fn proxy_for(&self, target: &Url) -> Result<Option<Proxy>, ProxyError> {
        let value = match target.scheme() {
            "https" => self.https_proxy.as_deref(),
            "http" => self.http_proxy.as_deref(),
            _ => None,
        };
        let Some(value) = value.filter(|value| !value.trim().is_empty()) else {
            return Ok(None);
        };
        let no_proxy = NoProxy::parse(self.no_proxy.as_deref().unwrap_or(""));
        let (Some(host), Some(port)) = (target.host(), target.port_or_known_default()) else {
            return Ok(None);
        };
        if no_proxy.matches(&host.to_owned(), port) {
            return Ok(None);
        }
        Proxy::parse(value).map(Some)
    }
}

/// Why a proxy setting cannot be used. Never holds the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Not a URL, or without a host.
    #[error("the proxy is not a URL with a host")]
    NotAUrl,
    /// A scheme other than `http` (TLS to the proxy and SOCKS are not supported).
    #[error("the proxy's scheme {0:?} is not supported; only http:// proxies are")]
    UnsupportedScheme(String),
}

/// An HTTP proxy, tunnelled through with CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port/`.
    pub(crate) uri: Uri,
    /// `Basic …` from the URL's user information, marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.uri)
            .field("authorization", &self.authorization.is_some())
            .finish()
    }
}

/// The proxy a sender's settings ask for: `setting` (`http://[user:password@]host:port`, or
/// without the scheme) wins; without it, the process environment's when `from_environment`.
/// The two fields of [`UpstreamSettings`](crate::UpstreamSettings) that say it.
pub fn proxy_settings(
    setting: Option<&str>,
    from_environment: bool,
) -> Result<(Option<Url>, ProxyEnvironment), ProxyError> {
    let proxy = match setting {
        Some(proxy) => {
            let proxy = proxy.trim();
            let url = if proxy.contains("://") {
                Url::parse(proxy)
            } else {
                Url::parse(&format!("http://{proxy}"))
            };
            Some(url.map_err(|_| ProxyError::NotAUrl)?)
        }
        None => None,
    };
    let environment = if from_environment {
        ProxyEnvironment::from_process()
    } else {
        ProxyEnvironment::default()
    };
    Ok((proxy, environment))
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port]`; without a scheme, `http://` is meant.
    pub fn parse(value: &str) -> Result<Self, ProxyError> {
        let value = value.trim();
        let url = if value.contains("://") {
            Url::parse(value)
        } else {
            Url::parse(&format!("http://{value}"))
        }
        .map_err(|_| ProxyError::NotAUrl)?;
        Self::from_url(&url)
    }

    /// The proxy at `url`.
    pub fn from_url(url: &Url) -> Result<Self, ProxyError> {
        if url.scheme() != "http" {
            return Err(ProxyError::UnsupportedScheme(url.scheme().to_owned()));
        }
        let host = url.host().ok_or(ProxyError::NotAUrl)?;
        let port = url.port_or_known_default().ok_or(ProxyError::NotAUrl)?;
        let uri = format!("http://{host}:{port}/")
            .parse::<Uri>()
            .map_err(|_| ProxyError::NotAUrl)?;
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |text: &str| percent_decode(text).ok_or(ProxyError::NotAUrl);
            let user = decode(url.username())?;
            let password = decode(url.password().unwrap_or(""))?;
            let credentials =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let mut value = HeaderValue::try_from(format!("Basic {credentials}"))
                .map_err(|_| ProxyError::NotAUrl)?;
            value.set_sensitive(true);
            Some(value)
        };
        Ok(Self { uri, authorization })
    }
}

/// `%XX` decoding of URL user information.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A parsed `NO_PROXY` list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Everything,
    /// Lower case, without a leading dot.
    Domain(String),
    Network(IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    pattern: Pattern,
    port: Option<u16>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` value; entries that make no sense are skipped.
    pub fn parse(list: &str) -> Self {
        let entries = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .filter_map(Entry::parse)
            .collect();
        Self { entries }
    }

    /// Whether `host:port` is reached without the proxy.
    pub fn matches(&self, host: &Host<String>, port: u16) -> bool {
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|only| only == port)
                && match (&entry.pattern, host) {
                    (Pattern::Everything, _) => true,
                    (Pattern::Domain(domain), Host::Domain(name)) => {
                        // Compared as bytes: a name made by hand need not be ASCII.
                        let name = name.trim_end_matches('.').as_bytes();
                        let domain = domain.as_bytes();
                        match name.len().checked_sub(domain.len()) {
                            Some(0) => name.eq_ignore_ascii_case(domain),
                            Some(dot) => {
                                name.get(dot - 1) == Some(&b'.')
                                    && name[dot..].eq_ignore_ascii_case(domain)
                            }
                            None => false,
                        }
                    }
                    (Pattern::Network(network), Host::Ipv4(ip)) => {
                        network.contains(&IpAddr::V4(*ip))
                    }
                    (Pattern::Network(network), Host::Ipv6(ip)) => {
                        network.contains(&IpAddr::V6(*ip))
                    }
                    _ => false,
                }
        })
    }
}

impl Entry {
    fn parse(entry: &str) -> Option<Self> {
        if entry == "*" {
            return Some(Self {
                pattern: Pattern::Everything,
                port: None,
            });
        }
        if let Some(network) = parse_ip(entry) {
            return Some(Self {
                pattern: Pattern::Network(network),
                port: None,
            });
        }
        // `[v6]:port`, `[v6]`, `v4:port`, `name:port`.
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (address, after) = rest.split_once(']')?;
                let port = match after.strip_prefix(':') {
                    Some(port) => Some(port.parse().ok()?),
                    None if after.is_empty() => None,
                    None => return None,
                };
                (address, port)
            }
            None => match entry.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (entry, None),
            },
        };
        let pattern = match parse_ip(host) {
            Some(network) => Pattern::Network(network),
            None => {
                let domain = host.trim_start_matches("*.").trim_start_matches('.');
                let domain = domain.trim_end_matches('.');
                if domain.is_empty() || domain.contains(['/', ':', '*', ' ']) {
                    return None;
                }
                Pattern::Domain(domain.to_ascii_lowercase())
            }
        };
        Some(Self { pattern, port })
    }
}

/// An address (as a network of one) or a CIDR network.
fn parse_ip(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Host<String> {
        Host::parse(text).expect("host")
    }

    #[test]
    fn no_proxy_matches_suffixes_on_label_boundaries() {
        let list = NoProxy::parse("example.com, .internal ,*.corp.test");
        assert!(list.matches(&host("example.com"), 443));
        assert!(list.matches(&host("API.Example.com"), 443));
        assert!(!list.matches(&host("notexample.com"), 443));
        assert!(list.matches(&host("a.internal"), 80));
        assert!(list.matches(&host("internal"), 80));
        assert!(list.matches(&host("x.corp.test"), 80));
        assert!(!list.matches(&host("corp.test.evil"), 80));
    }

    #[test]
    fn no_proxy_ports_limit_an_entry() {
        let list = NoProxy::parse("relay.local:8080,127.0.0.1:9000,[::1]:7000");
        assert!(list.matches(&host("relay.local"), 8080));
        assert!(!list.matches(&host("relay.local"), 443));
        assert!(list.matches(&host("127.0.0.1"), 9000));
        assert!(!list.matches(&host("127.0.0.1"), 9001));
        assert!(list.matches(&host("[::1]"), 7000));
        assert!(!list.matches(&host("[::1]"), 7001));
    }

    #[test]
    fn no_proxy_addresses_and_networks_match_literal_targets_only() {
        let list = NoProxy::parse("10.0.0.0/8, ::1, 192.168.1.7");
        assert!(list.matches(&host("10.1.2.3"), 443));
        assert!(list.matches(&host("[::1]"), 443));
        assert!(list.matches(&host("192.168.1.7"), 443));
        assert!(!list.matches(&host("192.168.1.8"), 443));
        // No name is resolved to compare.
        assert!(!list.matches(&host("localhost"), 443));
    }

    #[test]
    fn no_proxy_star_matches_all_and_loopback_is_not_implicit() {
        assert!(NoProxy::parse("*").matches(&host("fcm.googleapis.com"), 443));
        let none = NoProxy::parse("");
        assert!(!none.matches(&host("127.0.0.1"), 80));
        assert!(!none.matches(&host("localhost"), 80));
        // Nonsense entries are skipped, the rest still applies.
        let list = NoProxy::parse("a:b:c, ,good.test");
        assert!(list.matches(&host("good.test"), 1));
    }

    #[test]
    fn the_environment_picks_by_scheme_and_honours_no_proxy() {
        let environment = ProxyEnvironment {
            http_proxy: Some("proxy.local:3128".to_owned()),
            https_proxy: Some("http://user:p%40ss@secure-proxy.local:8080".to_owned()),
            no_proxy: Some("skip.test".to_owned()),
        };
        let url = |text: &str| Url::parse(text).expect("url");
        let http = environment
            .proxy_for(&url("http://relay.test/"))
            .expect("valid")
            .expect("proxied");
        assert_eq!(http.uri, "http://proxy.local:3128/");
        assert_eq!(http.authorization, None);
        let https = environment
            .proxy_for(&url("https://fcm.googleapis.com/"))
            .expect("valid")
            .expect("proxied");
        assert_eq!(https.uri, "http://secure-proxy.local:8080/");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:p@ss")
        );
        assert_eq!(
            https.authorization.as_ref().map(HeaderValue::as_bytes),
            Some(expected.as_bytes())
        );
        assert_eq!(
            environment.proxy_for(&url("https://a.skip.test/")),
            Ok(None)
        );
        assert_eq!(
            ProxyEnvironment::default().proxy_for(&url("https://x.test/")),
            Ok(None)
        );
    }

    #[test]
    fn a_senders_proxy_setting_wins_and_may_leave_out_the_scheme() {
        let (proxy, _) = proxy_settings(Some(" proxy.example:3128 "), true).expect("a URL");
        assert_eq!(
            proxy.map(|url| url.to_string()),
            Some("http://proxy.example:3128/".to_owned())
        );
        let (proxy, environment) = proxy_settings(None, false).expect("nothing to parse");
        assert!(proxy.is_none());
        assert_eq!(environment, ProxyEnvironment::default());
        assert_eq!(
            proxy_settings(Some("http://[::1"), false).map(|_| ()),
            Err(ProxyError::NotAUrl)
        );
    }

    #[test]
    fn only_http_proxies_are_accepted() {
        assert_eq!(
            Proxy::parse("socks5://proxy:1080"),
            Err(ProxyError::UnsupportedScheme("socks5".to_owned()))
        );
        assert_eq!(
            Proxy::parse("https://proxy:443"),
            Err(ProxyError::UnsupportedScheme("https".to_owned()))
        );
        assert!(Proxy::parse("http://proxy").is_ok());
    }
}
