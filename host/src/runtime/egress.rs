//! Where a plugin's outgoing HTTP requests may go.
//!
//! Deny by default: a request is allowed only when its scheme, host and port match one of the
//! plugin's `allowed_hosts` patterns, and every address its host resolves to is public. Private,
//! loopback, link-local and similar addresses are allowed only when the matching pattern names
//! the host exactly (no wildcard): an operator who writes `http://127.0.0.1:8080` or
//! `http://crm.internal` means it. Cloud metadata endpoints are stricter still: only a pattern
//! whose host is that very IP address allows them.
//!
//! Pattern syntax: `scheme://host[:port]`, where `scheme` is `http` or `https`, `host` is a DNS
//! name, an IP address (IPv6 in brackets), `*.example.com` (any subdomain, not the bare domain)
//! or `*` (any host), and `port` is a number or `*`. Without a port only the scheme's default
//! port (80 or 443) matches.
//!
//! Every refusal says what was refused and which setting would allow it.

use super::sender::Resolver;
use std::fmt;
use std::net::IpAddr;

/// One `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Scheme,
    host: HostMatch,
    port: PortMatch,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this host (lower case, IPv6 without brackets).
    Exact(String),
    /// Any subdomain of this domain (`*.example.com` stores `example.com`).
    Subdomains(String),
    /// Any host.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Exact(u16),
    Any,
}

/// An `allowed_hosts` entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed_hosts entry {pattern:?}: {reason}")]
pub struct PatternError {
    /// The entry as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No pattern matches the request's scheme, host and port.
    #[error(
        "{url} is not in the plugin's allowed_hosts; add \"{suggestion}\" to allowed_hosts to allow it"
    )]
    NotAllowed {
        /// The request's origin.
        url: String,
        /// The pattern that would allow it.
        suggestion: String,
    },
    /// The host resolves to an address that only an exact pattern may reach.
    #[error(
        "{url} resolves to {address}, a {kind} address, which is refused unless allowed_hosts \
         names this host exactly (it matched the wildcard pattern \"{pattern}\")"
    )]
    PrivateAddress {
        /// The request's origin.
        url: String,
        /// The refused address.
        address: IpAddr,
        /// What kind of address it is.
        kind: &'static str,
        /// The pattern that matched.
        pattern: String,
    },
    /// The host is a cloud metadata endpoint, allowed only by a pattern naming its IP address.
    #[error(
        "{url} resolves to {address}, a cloud metadata endpoint, which is refused unless \
         allowed_hosts names \"{address}\" itself"
    )]
    MetadataEndpoint {
        /// The request's origin.
        url: String,
        /// The refused address.
        address: IpAddr,
    },
    /// The request has no usable scheme, host or port.
    #[error("the request URL {url:?} has no scheme, host or port the policy can check")]
    Malformed {
        /// The URL as given.
        url: String,
    },
    /// A bound on what a delivery makes the host hold was reached (see
    /// [`bounds`](super::bounds)).
    #[error("{what}, over the limit ({limit})")]
    Limit {
        /// What the plugin did.
        what: String,
        /// The bound, named, with its value.
        limit: String,
    },
    /// The host name did not resolve.
    #[error("{host} did not resolve: {reason}")]
    Unresolved {
        /// The host.
        host: String,
        /// The resolver's error.
        reason: String,
    },
}

impl Refusal {
    /// Whether the refusal is about the destination address (as opposed to the name).
    pub fn is_address(&self) -> bool {
        matches!(
            self,
            Refusal::PrivateAddress { .. } | Refusal::MetadataEndpoint { .. }
        )
    }

    /// Whether the refusal is a bound reached, which fails the delivery.
    pub fn is_limit(&self) -> bool {
        matches!(self, Refusal::Limit { .. })
    }
}

impl HostPattern {
    /// Parses one `allowed_hosts` entry.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let error = |reason| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| error("expected scheme://host[:port]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(error("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(error(
                "only scheme, host and port are allowed, no path or user",
            ));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| error("malformed host or port"))?;
        let port = match port {
            None => PortMatch::Exact(scheme.default_port()),
            Some("*") => PortMatch::Any,
            Some(port) => PortMatch::Exact(port.parse().map_err(|_| error("malformed port"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(error("a wildcard must be `*` or `*.domain`"));
            }
            HostMatch::Subdomains(domain.to_string())
        } else if host.is_empty() || host.contains('*') {
            return Err(error("a wildcard must be `*` or `*.domain`"));
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern {
            scheme,
            host,
            port,
            text: pattern.to_string(),
        })
    }

    fn matches(&self, target: &Target) -> bool {
        self.scheme == target.scheme
            && match self.port {
                PortMatch::Any => true,
                PortMatch::Exact(port) => port == target.port,
            }
            && match &self.host {
                HostMatch::Any => true,
                HostMatch::Exact(host) => *host == target.host,
                HostMatch::Subdomains(domain) => target
                    .host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
            }
    }

    fn is_exact(&self) -> bool {
        matches!(self.host, HostMatch::Exact(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets); `None` when malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, port)) if !port.contains(':') => Some((host, Some(port))),
        Some(_) => None,
    }
}

/// The parts of a request the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    /// Lower case; IPv6 without brackets.
    host: String,
    port: u16,
}

impl Target {
    fn from_uri(uri: &http::Uri) -> Option<Self> {
        let scheme = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let host = uri.host()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        Some(Target { scheme, host, port })
    }

    fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            format!("{}://{host}", self.scheme.as_str())
        } else {
            format!("{}://{host}:{}", self.scheme.as_str(), self.port)
        }
    }
}

/// A plugin's egress policy: its parsed `allowed_hosts`.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    patterns: Vec<HostPattern>,
}

impl EgressPolicy {
    /// Parses every entry; the first bad one is the error.
    pub fn new<S: AsRef<str>>(allowed_hosts: &[S]) -> Result<Self, PatternError> {
        let patterns = allowed_hosts
            .iter()
            .map(|p| HostPattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy { patterns })
    }

    /// The patterns, as written.
    pub fn patterns(&self) -> impl Iterator<Item = &HostPattern> {
        self.patterns.iter()
    }

    /// Checks a request: its origin against the patterns, then every address its host resolves
    /// to (asking `resolver` once; an IP literal is its own answer) against the private and
    /// metadata ranges. The answer is the checked addresses, the only ones to connect to.
    pub async fn check(
        &self,
        uri: &http::Uri,
        resolver: &dyn Resolver,
    ) -> Result<Vec<IpAddr>, Refusal> {
        let target = Target::from_uri(uri).ok_or_else(|| Refusal::Malformed {
            url: uri.to_string(),
        })?;
        let pattern = self.matching_pattern(&target)?;
        let addresses = resolve(&target, resolver).await?;
        check_addresses(&target, pattern, &addresses)?;
        Ok(addresses)
    }

    /// Checks only the request's origin against the patterns, resolving nothing: for requests
    /// that go to a local stand-in instead of their destination (`callhook plugin test`).
    pub fn check_origin(&self, uri: &http::Uri) -> Result<(), Refusal> {
        let target = Target::from_uri(uri).ok_or_else(|| Refusal::Malformed {
            url: uri.to_string(),
        })?;
        self.matching_pattern(&target).map(|_| ())
    }

    /// The pattern that allows `target`, preferring an exact one.
    fn matching_pattern(&self, target: &Target) -> Result<&HostPattern, Refusal> {
        let mut matching = self.patterns.iter().filter(|p| p.matches(target));
        let first = matching.next();
        let exact = first.filter(|p| p.is_exact()).or_else(|| {
            self.patterns
                .iter()
                .find(|p| p.is_exact() && p.matches(target))
        });
        exact.or(first).ok_or_else(|| Refusal::NotAllowed {
            url: target.origin(),
            suggestion: target.origin(),
        })
    }
}

async fn resolve(target: &Target, resolver: &dyn Resolver) -> Result<Vec<IpAddr>, Refusal> {
    if let Ok(address) = target.host.parse::<IpAddr>() {
        return Ok(vec![address]);
    }
    let unresolved = |reason: String| Refusal::Unresolved {
        host: target.host.clone(),
        reason,
    };
    let addresses = resolver
        .resolve(&target.host, target.port)
        .await
        .map_err(|e| unresolved(e.to_string()))?;
    if addresses.is_empty() {
        return Err(unresolved("no address".into()));
    }
    Ok(addresses)
}

fn check_addresses(
    target: &Target,
    pattern: &HostPattern,
    addresses: &[IpAddr],
) -> Result<(), Refusal> {
    for &address in addresses {
        if is_metadata_endpoint(address) {
            let named =
                matches!(&pattern.host, HostMatch::Exact(h) if h.parse::<IpAddr>() == Ok(address));
            if !named {
                return Err(Refusal::MetadataEndpoint {
                    url: target.origin(),
                    address,
                });
            }
        } else if let Some(kind) = special_range(address)
            && !pattern.is_exact()
        {
            return Err(Refusal::PrivateAddress {
                url: target.origin(),
                address,
                kind,
                pattern: pattern.to_string(),
            });
        }
    }
    Ok(())
}

/// Well-known cloud instance metadata addresses (AWS, GCP, Azure, Oracle, DigitalOcean,
/// Alibaba, AWS IPv6 and ECS task metadata), also when carried inside an IPv6 address
/// ([`embedded_ipv4`]).
fn is_metadata_endpoint(address: IpAddr) -> bool {
    const METADATA: [&str; 4] = [
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "fd00:ec2::254",
    ];
    let address = canonical(address);
    let embedded = match address {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    METADATA.iter().any(|m| {
        let m = m.parse::<IpAddr>();
        m == Ok(address) || embedded.is_some_and(|e| m == Ok(e))
    })
}

/// Maps IPv4-mapped IPv6 addresses to IPv4, so `::ffff:10.0.0.1` is judged as `10.0.0.1`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address carries by a translation scheme: NAT64
/// (`64:ff9b::/96`), IPv4-compatible (`::/96`) or 6to4 (`2002::/16`, the gateway's address).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let last = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        _ => None,
    }
}

/// The kind of a non-public address, or `None` for a public one.
///
/// IPv6 addresses that reach IPv4 through a translator (NAT64, IPv4-compatible, 6to4) are
/// special as a whole: what they reach depends on a gateway, not on the name's owner.
fn special_range(address: IpAddr) -> Option<&'static str> {
    match canonical(address) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("non-unicast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("carrier-grade NAT")
            } else if a == 192 && b == 0 && c == 0 {
                Some("IETF protocol assignment")
            } else if a == 198 && (b == 18 || b == 19) {
                Some("benchmarking")
            } else if a == 0 || a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("non-unicast")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                Some("NAT64")
            } else if s[..6] == [0; 6] {
                Some("IPv4-compatible")
            } else if s[0] == 0x2002 {
                Some("6to4")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> EgressPolicy {
        EgressPolicy::new(patterns).unwrap()
    }

    /// Checks like [`EgressPolicy::check`], but names (other than `localhost`) resolve to the
    /// public address 93.184.216.34 instead of asking DNS, which tests may not have.
    async fn check(patterns: &[&str], url: &str) -> Result<(), Refusal> {
        let uri: http::Uri = url.parse().unwrap();
        let target = Target::from_uri(&uri).unwrap();
        if target.host == "localhost" || target.host.parse::<IpAddr>().is_ok() {
            return policy(patterns)
                .check(&uri, &super::super::sender::SystemResolver)
                .await
                .map(drop);
        }
        let policy = policy(patterns);
        let pattern = policy.matching_pattern(&target)?;
        check_addresses(&target, pattern, &["93.184.216.34".parse().unwrap()])
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in [
            "crm.example.com",
            "ftp://crm.example.com",
            "https://crm.example.com/path",
            "https://user@crm.example.com",
            "https://crm.example.com:http",
            "https://cr*m.example.com",
            "https://*.",
            "https://",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn accepts_matching_origins() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["https://crm.example.com"],
                "https://crm.example.com/hook?x=1",
            ),
            (&["https://CRM.example.com"], "https://crm.EXAMPLE.com:443/"),
            (&["https://*.hubapi.com:443"], "https://api.hubapi.com/crm"),
            (&["http://127.0.0.1:*"], "http://127.0.0.1:38211/sink"),
            (&["http://[::1]:8080"], "http://[::1]:8080/"),
            (&["https://*"], "https://93.184.216.34/"),
            (&["http://169.254.169.254"], "http://169.254.169.254/latest"),
        ];
        for (patterns, url) in cases {
            assert_eq!(check(patterns, url).await, Ok(()), "{patterns:?} {url}");
        }
    }

    #[tokio::test]
    async fn refuses_what_no_pattern_names() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "https://crm.example.com/"),
            (&["https://crm.example.com"], "http://crm.example.com/"),
            (
                &["https://crm.example.com"],
                "https://crm.example.com:8443/",
            ),
            (&["https://crm.example.com"], "https://evil.com/"),
            (&["https://*.hubapi.com"], "https://hubapi.com/"),
            (
                &["https://*.hubapi.com"],
                "https://api.hubapi.com.evil.com/",
            ),
            (&["https://*.hubapi.com"], "https://xhubapi.com/"),
        ];
        for (patterns, url) in cases {
            assert!(
                matches!(check(patterns, url).await, Err(Refusal::NotAllowed { .. })),
                "{patterns:?} {url}"
            );
        }
    }

    #[tokio::test]
    async fn refusal_names_the_pattern_that_would_allow_it() {
        let refusal = check(&[], "http://10.1.2.3:8080/x").await.unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "http://10.1.2.3:8080 is not in the plugin's allowed_hosts; add \"http://10.1.2.3:8080\" to allowed_hosts to allow it"
        );
    }

    #[tokio::test]
    async fn wildcards_do_not_reach_private_or_metadata_addresses() {
        for url in [
            "https://127.0.0.1/",
            "https://10.0.0.1/",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd12::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
        ] {
            assert!(
                matches!(
                    check(&["https://*"], url).await,
                    Err(Refusal::PrivateAddress { .. })
                ),
                "{url}"
            );
        }
        for url in [
            "http://169.254.169.254/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
        ] {
            assert!(
                matches!(
                    check(&["http://*"], url).await,
                    Err(Refusal::MetadataEndpoint { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn special_ranges_are_classified() {
        let cases = [
            ("0.1.2.3", Some("reserved")),
            ("192.0.0.8", Some("IETF protocol assignment")),
            ("192.0.1.1", None),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.254", Some("benchmarking")),
            ("198.20.0.1", None),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.254", Some("reserved")),
            ("100.64.0.1", Some("carrier-grade NAT")),
            ("93.184.216.34", None),
            ("64:ff9b::a00:1", Some("NAT64")),
            ("64:ff9b::5db8:d822", Some("NAT64")),
            ("::a00:1", Some("IPv4-compatible")),
            ("::5db8:d822", Some("IPv4-compatible")),
            ("2002:a00:1::1", Some("6to4")),
            ("::ffff:198.18.0.1", Some("benchmarking")),
            ("2606:2800:220:1::1", None),
        ];
        for (address, kind) in cases {
            assert_eq!(special_range(address.parse().unwrap()), kind, "{address}");
        }
    }

    #[test]
    fn metadata_endpoints_are_recognised_inside_ipv6() {
        let cases = [
            ("169.254.169.254", true),
            ("::ffff:169.254.169.254", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("::a9fe:a9fe", true),
            ("2002:a9fe:a9fe::1", true),
            ("fd00:ec2::254", true),
            ("64:ff9b::a00:1", false),
            ("169.254.169.253", false),
        ];
        for (address, metadata) in cases {
            assert_eq!(
                is_metadata_endpoint(address.parse().unwrap()),
                metadata,
                "{address}"
            );
        }
    }

    #[tokio::test]
    async fn wildcards_do_not_reach_translated_or_reserved_addresses() {
        for url in [
            "https://0.0.0.1/",
            "https://192.0.0.170/",
            "https://198.18.5.5/",
            "https://240.1.2.3/",
            "https://[64:ff9b::a00:1]/",
            "https://[::a00:1]/",
            "https://[2002:a00:1::1]/",
        ] {
            assert!(
                matches!(
                    check(&["https://*"], url).await,
                    Err(Refusal::PrivateAddress { .. })
                ),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_needs_an_exact_pattern() {
        assert!(matches!(
            check(&["http://*:*"], "http://localhost:9/").await,
            Err(Refusal::PrivateAddress { .. })
        ));
        assert_eq!(
            check(&["http://localhost:9"], "http://localhost:9/").await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn metadata_needs_the_ip_itself_even_with_an_exact_name() {
        // An exact *name* pattern does not open the metadata endpoint.
        let target = Target {
            scheme: Scheme::Http,
            host: "metadata.internal".into(),
            port: 80,
        };
        let pattern = HostPattern::parse("http://metadata.internal").unwrap();
        let address: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(matches!(
            check_addresses(&target, &pattern, &[address]),
            Err(Refusal::MetadataEndpoint { .. })
        ));
    }
}
