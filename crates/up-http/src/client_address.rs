//! Which client a request comes from, for the per-client rate limit: the peer address, or,
//! behind a trusted reverse proxy, the address that proxy saw.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;

/// `X-Forwarded-For` (de facto standard; not in `http`'s list of constants).
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The rate-limit key of the client that sent a request.
///
/// With `trust_forwarded_for`, the address comes from the **last** `X-Forwarded-For` entry, or
/// when that header is absent, from the `for=` of the last `Forwarded` element (RFC 7239 §5.2):
/// the hop our own proxy added. Earlier entries are whatever the client sent and would let it
/// pick a fresh key for every request. Without a usable header, the peer address counts; with no
/// peer address either (a router called in-process), all such requests share one key.
///
/// IPv6 addresses count per /64, the block one subscriber usually gets (RFC 6177), so a single
/// client cannot evade the limit by cycling through its own addresses.
pub(crate) fn client_key(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> IpAddr {
    let forwarded = if trust_forwarded_for {
        forwarded_client(headers)
    } else {
        None
    };
    let address = forwarded
        .or(peer.map(|peer| peer.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    address_key(address)
}

/// The key one client's address counts under: IPv4 addresses (IPv4-mapped IPv6 ones too) as
/// they are, IPv6 addresses per /64, the block one subscriber usually gets (RFC 6177), so a
/// single client cannot get a fresh key by cycling through its own addresses.
pub(crate) fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    if let Some(value) = headers.get_all(X_FORWARDED_FOR).iter().next_back() {
        let last = value.to_str().ok()?.rsplit(',').next()?;
        return node_address(last);
    }
    let value = headers.get_all(FORWARDED).iter().next_back()?;
    let last_element = value.to_str().ok()?.rsplit(',').next()?;
    last_element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| node_address(value))
            .flatten()
    })
}

/// An address from a forwarding header node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`. Obfuscated nodes (`_hidden`, `unknown`) give `None`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(bracketed) = node.strip_prefix('[') {
        let (inside, _port) = bracketed.split_once(']')?;
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 4000);

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_peer_counts_unless_a_proxy_is_trusted() {
        let spoofed = headers(&[("x-forwarded-for", b"192.0.2.7")]);
        assert_eq!(client_key(&spoofed, Some(PEER), false), ip("10.0.0.1"));
        assert_eq!(client_key(&spoofed, Some(PEER), true), ip("192.0.2.7"));
        assert_eq!(client_key(&spoofed, None, false), ip("0.0.0.0"));
    }

    #[test]
    fn the_last_hop_counts_not_what_the_client_wrote() {
        let appended = headers(&[
            ("x-forwarded-for", b"198.51.100.1"),
            ("x-forwarded-for", b"203.0.113.9, 192.0.2.7"),
        ]);
        assert_eq!(client_key(&appended, Some(PEER), true), ip("192.0.2.7"));
        let forwarded = headers(&[(
            "forwarded",
            b"for=198.51.100.1;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=x",
        )]);
        assert_eq!(
            client_key(&forwarded, Some(PEER), true),
            ip("2001:db8:cafe::")
        );
        let with_port = headers(&[("x-forwarded-for", b"192.0.2.7:555")]);
        assert_eq!(client_key(&with_port, Some(PEER), true), ip("192.0.2.7"));
    }

    #[test]
    fn unusable_headers_fall_back_to_the_peer() {
        for value in [
            &b"unknown"[..],
            b"_hidden",
            b"",
            b"\xff\xfe",
            b"[::1",
            b"999.1.1.1",
        ] {
            let xff = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                client_key(&xff, Some(PEER), true),
                ip("10.0.0.1"),
                "{value:?}"
            );
            let forwarded = headers(&[("forwarded", value)]);
            assert_eq!(
                client_key(&forwarded, Some(PEER), true),
                ip("10.0.0.1"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let none = HeaderMap::new();
        let a = SocketAddr::new(ip("2001:db8:1:2:aaaa::1"), 1);
        let b = SocketAddr::new(ip("2001:db8:1:2:bbbb::2"), 1);
        assert_eq!(
            client_key(&none, Some(a), false),
            client_key(&none, Some(b), false)
        );
        let mapped = SocketAddr::new(ip("::ffff:192.0.2.7"), 1);
        assert_eq!(client_key(&none, Some(mapped), false), ip("192.0.2.7"));
    }
}
