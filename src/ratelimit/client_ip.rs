//! Which address a request comes from, for the per-client limits.
//!
//! The peer address of the connection, unless that peer is a trusted proxy
//! (`TRUSTED_PROXIES`, a list of CIDRs; none by default). Then the forwarded chain is read
//! from the right, the end the proxies append to: the client is the rightmost entry that is
//! not itself a trusted proxy. `X-Forwarded-For` is read when present, else the `for=`
//! parameters of `Forwarded` (RFC 7239). Entries left of the client are whatever the client
//! sent and are never read, so a spoofed header changes nothing; from an untrusted peer no
//! header is read at all.
//!
//! IPv6 clients are keyed by their /64 (one subscriber's usual allocation: otherwise one host
//! could rotate through 2^64 addresses), IPv4-mapped IPv6 addresses as the IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::http::header::{HeaderMap, HeaderName, FORWARDED};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// No trusted proxy: the peer address is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses comma-separated CIDRs (`10.0.0.0/8`) or single addresses (`192.0.2.1`, a /32
    /// or /128); empty items are skipped. `Err` holds the item that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(item.to_owned()),
                },
            };
            nets.push(net);
        }
        Ok(Self { nets })
    }

    /// The CIDRs, for logs.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer`, or behind trusted proxies the rightmost forwarded entry
    /// that is not a trusted proxy. When every entry is trusted, or the walk reaches one that
    /// is not an address, the leftmost trusted address reached stands for the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let forwarded_for = headers.contains_key(&X_FORWARDED_FOR);
        let (name, parse): (_, fn(&str) -> Vec<&str>) = if forwarded_for {
            (&X_FORWARDED_FOR, |v| v.split(',').collect())
        } else {
            (&FORWARDED, forwarded_for_values)
        };
        // Header lines in order, each line's entries in order; walked from the right.
        let lines: Vec<&str> = headers
            .get_all(name)
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        for line in lines.iter().rev() {
            for entry in parse(line).into_iter().rev() {
                match parse_entry(entry) {
                    Some(ip) if self.trusts(ip) => client = ip,
                    Some(ip) => return ip,
                    None => return client,
                }
            }
        }
        client
    }
}

/// The `for=` values of a `Forwarded` header line, in order (quotes kept; see
/// [`parse_entry`]).
fn forwarded_for_values(line: &str) -> Vec<&str> {
    line.split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then_some(value)
            })
        })
        .collect()
}

/// One forwarded entry as an address: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`,
/// `[2001:db8::1]:8080`, any of them quoted. `unknown` and obfuscated names are `None`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"').trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The key a client is limited under: its IPv4 address, or the /64 of its IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn without_trusted_proxies_a_forwarded_header_changes_nothing() {
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        let client = TrustedProxies::none().client(ip("198.51.100.7"), &spoofed);
        assert_eq!(client, ip("198.51.100.7"));
        // Trusted proxies configured, but this peer is not one of them.
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client(ip("198.51.100.7"), &spoofed),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        // The client sent a spoofed entry; the edge proxy appended the real peer, an inner
        // proxy appended the edge.
        let request = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(proxies.client(ip("10.2.2.2"), &request), ip("198.51.100.7"));
        // Split over several header lines, the same.
        let request = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7, 192.0.2.1"),
        ]);
        assert_eq!(proxies.client(ip("10.2.2.2"), &request), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.2.2.2"), &HeaderMap::new()),
            ip("10.2.2.2")
        );
        // Every entry trusted: the leftmost trusted one.
        let request = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(proxies.client(ip("10.2.2.2"), &request), ip("10.9.9.9"));
        // Garbage reached from the right: the last trusted address before it.
        let request = headers(&[("x-forwarded-for", "nonsense, 10.1.1.1")]);
        assert_eq!(proxies.client(ip("10.2.2.2"), &request), ip("10.1.1.1"));
    }

    #[test]
    fn forwarded_for_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let request = headers(&[(
            "forwarded",
            r#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5;by=10.0.0.1"#,
        )]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &request),
            ip("2001:db8:cafe::17")
        );
        let request = headers(&[("forwarded", r#"for="198.51.100.7:8080""#)]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &request), ip("198.51.100.7"));
        let request = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &request), ip("10.0.0.1"));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_matched_as_ipv4() {
        let proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        let request = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), &request),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_proxies_refuse_what_is_not_an_address_or_cidr() {
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8, nope"),
            Err("nope".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/33"),
            Err("10.0.0.0/33".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse(" , ").unwrap(),
            TrustedProxies::none()
        );
        let proxies = TrustedProxies::parse("10.1.2.3/8,::1").unwrap();
        assert_eq!(proxies.nets()[0].to_string(), "10.0.0.0/8");
        assert_eq!(proxies.nets()[1].to_string(), "::1/128");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ones_as_ipv4() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff::9")),
            client_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
