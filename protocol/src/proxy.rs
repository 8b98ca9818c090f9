//! The PROXY protocol header (HAProxy's, versions 1 and 2), which a load
//! balancer in TCP mode writes first on each connection it opens to a
//! server: who the real client is. Decoded here, sans-IO and bounded,
//! before anything else of the connection (TLS included) is read.
//!
//! Version 1 is one text line, at most 107 bytes with its CRLF:
//! `PROXY TCP4 203.0.113.7 192.0.2.1 56324 8888\r\n` (also `TCP6`, and
//! `UNKNOWN`). Version 2 is binary: a 12-byte signature, a version and
//! command byte, a family byte, a 16-bit length and that many bytes of
//! addresses and TLVs (ignored here, but counted against the limit).
//!
//! Addresses are `core::net` values: plain data, no socket involved.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every version 2 header starts with.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, CRLF included (the specification's).
pub const PROXY_V1_MAX_LEN: usize = 107;
/// The largest version 2 header accepted, fixed part included: room for
/// the addresses and the TLVs load balancers add (TLS details, a cloud
/// endpoint id), and a bound on what a peer can make the server hold.
pub const PROXY_V2_MAX_LEN: usize = 16 + 1024;

const V1_PREFIX: &[u8] = b"PROXY ";

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection: the real client (`source`) and the address it
    /// connected to (`destination`, on the proxy).
    Proxied {
        /// The client's address: log, count and authorise by this one.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`, a health check), or one
    /// whose addresses it does not know or carry (v1 `UNKNOWN`, v2
    /// `UNSPEC` or Unix addresses): the socket's peer address stands.
    Local,
}

/// Why bytes are not a PROXY header: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes start neither version's header.
    #[error("no PROXY protocol header (first bytes {0:02x?})")]
    Missing(Vec<u8>),
    /// The peer closed the connection inside the header.
    #[error("connection closed after {len} byte(s) of a PROXY header")]
    Truncated {
        /// The header bytes received.
        len: usize,
    },
    /// A version 1 line without its CRLF within 107 bytes.
    #[error("PROXY v1 line longer than {PROXY_V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A version 1 line that does not parse.
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    /// A version 2 header that declares more than the limit.
    #[error("PROXY v2 header of {len} bytes exceeds the limit {PROXY_V2_MAX_LEN}")]
    V2TooLong {
        /// The header's length, fixed part included.
        len: usize,
    },
    /// A version 2 header that does not parse.
    #[error("malformed PROXY v2 header: {0}")]
    V2Malformed(&'static str),
}

/// Decodes the PROXY header at the start of `buf`: `Ok(Some((header,
/// n)))` when it is whole (its `n` bytes are not part of the
/// conversation), `Ok(None)` when `buf` is a prefix of one (read more and
/// call again), an error as soon as the bytes cannot become one (a
/// conversation without the header fails on its first byte).
pub fn decode_proxy_header(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let starts = |prefix: &[u8]| {
        let n = buf.len().min(prefix.len());
        buf.get(..n) == prefix.get(..n)
    };
    if starts(&PROXY_V2_SIGNATURE) {
        if buf.len() < PROXY_V2_SIGNATURE.len() {
            return Ok(None);
        }
        return decode_v2(buf);
    }
    if starts(V1_PREFIX) {
        return decode_v1(buf);
    }
    let head = buf.get(..buf.len().min(8)).unwrap_or_default();
    Err(ProxyError::Missing(head.to_vec()))
}

fn decode_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = buf
        .get(..buf.len().min(PROXY_V1_MAX_LEN))
        .unwrap_or_default();
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= PROXY_V1_MAX_LEN {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1Malformed("CR not followed by LF")),
    }
    let line = std::str::from_utf8(buf.get(V1_PREFIX.len()..cr).unwrap_or_default())
        .map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    let header = parse_v1_fields(line)?;
    Ok(Some((header, cr + 2)))
}

fn parse_v1_fields(line: &str) -> Result<ProxyHeader, ProxyError> {
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    let want_v6 = match family {
        // Anything may follow UNKNOWN; the receiver ignores it.
        "UNKNOWN" => return Ok(ProxyHeader::Local),
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::V1Malformed(
                "family is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let mut next = |what: &'static str| {
        fields
            .next()
            .filter(|f| !f.is_empty())
            .ok_or(ProxyError::V1Malformed(what))
    };
    let (src, dst) = (next("no source address")?, next("no destination address")?);
    let (sport, dport) = (next("no source port")?, next("no destination port")?);
    if fields.next().is_some() {
        return Err(ProxyError::V1Malformed("fields after the destination port"));
    }
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| ProxyError::V1Malformed("bad address"))?;
        if ip.is_ipv6() == want_v6 {
            Ok(ip)
        } else {
            Err(ProxyError::V1Malformed("address not of the family"))
        }
    };
    // Ports are decimal without a sign or leading zeros.
    let port = |s: &str| -> Result<u16, ProxyError> {
        let ok = s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        s.parse()
            .ok()
            .filter(|_| ok)
            .ok_or(ProxyError::V1Malformed("bad port"))
    };
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

fn decode_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(&[ver_cmd, family, hi, lo]) = buf.get(12..16) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Malformed("version is not 2"));
    }
    let len = 16 + usize::from(u16::from_be_bytes([hi, lo]));
    if len > PROXY_V2_MAX_LEN {
        return Err(ProxyError::V2TooLong { len });
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => {
            return Err(ProxyError::V2Malformed(
                "command is neither LOCAL nor PROXY",
            ));
        }
    };
    let Some(body) = buf.get(16..len) else {
        return Ok(None);
    };
    if local {
        return Ok(Some((ProxyHeader::Local, len)));
    }
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let header = match family {
        // TCP or UDP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes.
        0x11 | 0x12 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::V2Malformed("IPv4 addresses cut short"))?;
            let v4 = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            proxied(v4(0), v4(4), u16_at(a, 8), u16_at(a, 10))
        }
        // Over IPv6: 16 + 16 address bytes, 2 + 2 port bytes.
        0x21 | 0x22 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::V2Malformed("IPv6 addresses cut short"))?;
            let v6 = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            proxied(v6(0), v6(16), u16_at(a, 32), u16_at(a, 34))
        }
        // UNSPEC, or Unix socket addresses: no IP address to hand on.
        0x00 | 0x31 | 0x32 => ProxyHeader::Local,
        _ => {
            return Err(ProxyError::V2Malformed(
                "unknown address family or protocol",
            ));
        }
    };
    Ok(Some((header, len)))
}

fn proxied(src: IpAddr, dst: IpAddr, sport: Option<u16>, dport: Option<u16>) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: SocketAddr::new(src, sport.unwrap_or_default()),
        destination: SocketAddr::new(dst, dport.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(buf: &[u8]) -> (ProxyHeader, usize) {
        match decode_proxy_header(buf) {
            Ok(Some(h)) => h,
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    /// The client 203.0.113.7:56324 that connected to 192.0.2.1:8888.
    fn example() -> ProxyHeader {
        let addr = |s: &str| s.parse().unwrap_or_else(|e| panic!("{e}"));
        ProxyHeader::Proxied {
            source: addr("203.0.113.7:56324"),
            destination: addr("192.0.2.1:8888"),
        }
    }

    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = PROXY_V2_SIGNATURE.to_vec();
        h.extend([ver_cmd, family]);
        h.extend(u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.extend(body);
        h
    }

    #[test]
    fn v1_tcp4_names_the_client_and_ends_after_crlf() {
        let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8888\r\n\0\0\0\x0e";
        let (h, n) = whole(line);
        assert_eq!(n, line.len() - 4, "the frame after it is not consumed");
        assert_eq!(h, example());
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let (h, _) = whole(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
        assert!(
            matches!(h, ProxyHeader::Proxied { source, .. } if source.to_string() == "[2001:db8::1]:1")
        );
        assert_eq!(whole(b"PROXY UNKNOWN\r\n").0, ProxyHeader::Local);
        assert_eq!(
            whole(b"PROXY UNKNOWN ff::1 ::1 1 2\r\n").0,
            ProxyHeader::Local
        );
    }

    #[test]
    fn v1_rejects_what_the_specification_does() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        ] {
            assert!(
                matches!(decode_proxy_header(bad), Err(ProxyError::V1Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                decode_proxy_header(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(decode_proxy_header(&long), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_inet_and_inet6_name_the_client() {
        let body = [203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x22, 0xb8];
        let (h, n) = whole(&v2(0x21, 0x11, &body));
        assert_eq!(n, 16 + 12);
        assert_eq!(h, example());
        let mut body6 = [0u8; 36 + 5];
        body6[15] = 1; // ::1
        body6[32..34].copy_from_slice(&7u16.to_be_bytes());
        let (h, n) = whole(&v2(0x21, 0x21, &body6));
        assert_eq!(n, 16 + 41, "TLVs after the addresses are skipped");
        assert!(
            matches!(h, ProxyHeader::Proxied { source, .. } if source.to_string() == "[::1]:7")
        );
    }

    #[test]
    fn v2_local_and_unspec_keep_the_socket_address() {
        assert_eq!(whole(&v2(0x20, 0x00, &[])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(0x20, 0x11, &[0; 12])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(0x21, 0x31, &[0; 216])).0, ProxyHeader::Local);
    }

    #[test]
    fn v2_refuses_a_bad_version_command_family_length_or_cut_addresses() {
        let cases: [(Vec<u8>, &str); 5] = [
            (v2(0x11, 0x11, &[0; 12]), "version"),
            (v2(0x22, 0x11, &[0; 12]), "command"),
            (v2(0x21, 0x41, &[0; 12]), "family"),
            (v2(0x21, 0x21, &[0; 12]), "IPv6"),
            (v2(0x21, 0x11, &[0; 2000]), "exceeds"),
        ];
        for (bytes, what) in cases {
            let e = decode_proxy_header(&bytes).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(what)),
                "{what}: {e:?}"
            );
        }
    }

    #[test]
    fn a_too_long_v2_header_is_refused_from_its_16_bytes() {
        let mut h = PROXY_V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            decode_proxy_header(&h),
            Err(ProxyError::V2TooLong { len: 16 + 65535 })
        );
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8888\r\n".to_vec();
        let v2 = v2(0x21, 0x11, &[1; 12]);
        for header in [v1, v2] {
            for n in 0..header.len() {
                assert_eq!(decode_proxy_header(&header[..n]), Ok(None), "prefix of {n}");
            }
        }
    }

    #[test]
    fn a_frame_without_a_header_fails_on_its_first_byte() {
        for first in [
            &[0u8][..],
            b"\0\0\0\x0e\x02",
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01",
        ] {
            assert!(
                matches!(decode_proxy_header(first), Err(ProxyError::Missing(_))),
                "{first:?}"
            );
        }
    }
}
