//! ICMP and ICMPv6 echo messages: building requests and reading what comes back (replies and
//! the errors that quote our request). Pure byte handling, unit-tested.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Payload marker so that replies to other programs' pings are never taken for ours.
pub const MAGIC: &[u8; 8] = b"vnetchk\0";
/// ICMP echo header length.
pub const ICMP_HDR: usize = 8;

/// Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: header, then the marker and the probe number, padded with a pattern to
/// `len` bytes of ICMP message (at least 16). IPv6 checksums are filled by the kernel.
pub fn echo_request(v6: bool, id: u16, seq: u16, token: u64, len: usize) -> Vec<u8> {
    let len = len.max(ICMP_HDR + 16);
    let mut b = vec![0u8; len];
    b[0] = if v6 { 128 } else { 8 };
    b[4..6].copy_from_slice(&id.to_be_bytes());
    b[6..8].copy_from_slice(&seq.to_be_bytes());
    b[8..16].copy_from_slice(MAGIC);
    b[16..24].copy_from_slice(&token.to_be_bytes());
    for (i, x) in b.iter_mut().enumerate().skip(24) {
        *x = i as u8;
    }
    if !v6 {
        let c = checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }
    b
}

/// What an incoming ICMP message says about one of our echo requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An echo reply carrying our marker.
    Reply { id: u16, seq: u16, token: Option<u64> },
    /// An error quoting our request: destination unreachable (incl. fragmentation needed /
    /// packet too big, which carry `mtu`), time exceeded, parameter problem.
    Error { id: u16, seq: u16, kind: ErrorKind, mtu: Option<u32>, quoted_dst: Option<IpAddr> },
}

/// ICMP errors, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    NetUnreachable,
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
    /// IPv4 "fragmentation needed and DF set" / IPv6 "packet too big".
    FragNeeded,
    /// Administratively prohibited (firewall reject, prohibit route).
    Prohibited,
    /// No route (IPv6 code 0).
    NoRoute,
    TimeExceeded,
    ParameterProblem,
    Other,
}

impl ErrorKind {
    pub fn text(self) -> &'static str {
        match self {
            ErrorKind::NetUnreachable => "network unreachable",
            ErrorKind::HostUnreachable => "host unreachable",
            ErrorKind::ProtocolUnreachable => "protocol unreachable",
            ErrorKind::PortUnreachable => "port unreachable",
            ErrorKind::FragNeeded => "fragmentation needed",
            ErrorKind::Prohibited => "administratively prohibited",
            ErrorKind::NoRoute => "no route to destination",
            ErrorKind::TimeExceeded => "time exceeded (TTL)",
            ErrorKind::ParameterProblem => "parameter problem",
            ErrorKind::Other => "ICMP error",
        }
    }

    /// Classifies an ICMPv4 (type, code).
    pub fn v4(ty: u8, code: u8) -> ErrorKind {
        match (ty, code) {
            (3, 0) | (3, 6) | (3, 11) => ErrorKind::NetUnreachable,
            (3, 1) | (3, 7) | (3, 12) => ErrorKind::HostUnreachable,
            (3, 2) => ErrorKind::ProtocolUnreachable,
            (3, 3) => ErrorKind::PortUnreachable,
            (3, 4) => ErrorKind::FragNeeded,
            (3, 9) | (3, 10) | (3, 13) => ErrorKind::Prohibited,
            (11, _) => ErrorKind::TimeExceeded,
            (12, _) => ErrorKind::ParameterProblem,
            _ => ErrorKind::Other,
        }
    }

    /// Classifies an ICMPv6 (type, code).
    pub fn v6(ty: u8, code: u8) -> ErrorKind {
        match (ty, code) {
            (1, 0) => ErrorKind::NoRoute,
            (1, 1) | (1, 5) | (1, 6) => ErrorKind::Prohibited,
            (1, 3) | (1, 2) => ErrorKind::HostUnreachable,
            (1, 4) => ErrorKind::PortUnreachable,
            (2, _) => ErrorKind::FragNeeded,
            (3, _) => ErrorKind::TimeExceeded,
            (4, _) => ErrorKind::ParameterProblem,
            _ => ErrorKind::Other,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

fn token_of(icmp: &[u8]) -> Option<u64> {
    if icmp.len() >= 24 && &icmp[8..16] == MAGIC {
        Some(u64::from_be_bytes(icmp[16..24].try_into().ok()?))
    } else {
        None
    }
}

/// Parses what a raw IPv4 ICMP socket returns (IP header included).
pub fn parse_v4(pkt: &[u8]) -> Option<Answer> {
    let ihl = usize::from(*pkt.first()? & 0x0f) * 4;
    if pkt.first()? >> 4 != 4 || pkt.get(9) != Some(&1) || ihl < 20 {
        return None;
    }
    parse_icmp_v4(pkt.get(ihl..)?)
}

/// Parses an ICMPv4 message (no IP header).
pub fn parse_icmp_v4(icmp: &[u8]) -> Option<Answer> {
    let ty = *icmp.first()?;
    let code = *icmp.get(1)?;
    match ty {
        0 => {
            let token = token_of(icmp);
            token?;
            Some(Answer::Reply { id: be16(icmp, 4)?, seq: be16(icmp, 6)?, token })
        }
        3 | 11 | 12 => {
            let inner = icmp.get(8..)?;
            let ihl = usize::from(*inner.first()? & 0x0f) * 4;
            if inner.first()? >> 4 != 4 || inner.get(9) != Some(&1) || ihl < 20 {
                return None;
            }
            let dst = IpAddr::V4(Ipv4Addr::new(*inner.get(16)?, *inner.get(17)?, *inner.get(18)?, *inner.get(19)?));
            let q = inner.get(ihl..)?;
            if *q.first()? != 8 {
                return None;
            }
            let kind = ErrorKind::v4(ty, code);
            let mtu = if kind == ErrorKind::FragNeeded { be16(icmp, 6).map(u32::from) } else { None };
            Some(Answer::Error { id: be16(q, 4)?, seq: be16(q, 6)?, kind, mtu, quoted_dst: Some(dst) })
        }
        _ => None,
    }
}

/// Parses an ICMPv6 message as a raw ICMPv6 socket returns it (no IPv6 header).
pub fn parse_v6(icmp: &[u8]) -> Option<Answer> {
    let ty = *icmp.first()?;
    let code = *icmp.get(1)?;
    match ty {
        129 => {
            let token = token_of(icmp);
            token?;
            Some(Answer::Reply { id: be16(icmp, 4)?, seq: be16(icmp, 6)?, token })
        }
        1..=4 => {
            let inner = icmp.get(8..)?;
            if inner.first()? >> 4 != 6 {
                return None;
            }
            let dst: [u8; 16] = inner.get(24..40)?.try_into().ok()?;
            // Our requests carry no extension headers: next header is ICMPv6.
            if *inner.get(6)? != 58 {
                return None;
            }
            let q = inner.get(40..)?;
            if *q.first()? != 128 {
                return None;
            }
            let kind = ErrorKind::v6(ty, code);
            let mtu = if ty == 2 { be32(icmp, 4) } else { None };
            Some(Answer::Error { id: be16(q, 4)?, seq: be16(q, 6)?, kind, mtu, quoted_dst: Some(IpAddr::V6(Ipv6Addr::from(dst))) })
        }
        _ => None,
    }
}

/// Reads the id and sequence of our own request quoted in an error-queue message (the kernel
/// returns the ICMP header of the request that failed).
pub fn quoted_request(icmp: &[u8], v6: bool) -> Option<(u16, u16)> {
    let want = if v6 { 128 } else { 8 };
    if *icmp.first()? != want {
        return None;
    }
    Some((be16(icmp, 4)?, be16(icmp, 6)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_packet() {
        // RFC 1071 example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A request's checksum verifies to zero.
        let r = echo_request(false, 0x1234, 7, 99, 64);
        assert_eq!(checksum(&r), 0);
        assert_eq!(r.len(), 64);
    }

    fn ipv4_header(proto: u8, dst: [u8; 4], payload: usize) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1];
        h.extend_from_slice(&dst);
        let total = (20 + payload) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h
    }

    #[test]
    fn reply_is_matched_by_id_seq_and_marker() {
        let mut reply = echo_request(false, 0xbeef, 42, 7, 32);
        reply[0] = 0;
        let mut pkt = ipv4_header(1, [10, 0, 0, 1], reply.len());
        pkt.extend_from_slice(&reply);
        assert_eq!(parse_v4(&pkt), Some(Answer::Reply { id: 0xbeef, seq: 42, token: Some(7) }));
        // Someone else's reply (no marker) is not ours.
        let mut other = vec![0u8, 0, 0, 0, 0xbe, 0xef, 0, 42];
        other.extend_from_slice(&[0u8; 56]);
        let mut pkt = ipv4_header(1, [10, 0, 0, 1], other.len());
        pkt.extend_from_slice(&other);
        assert_eq!(parse_v4(&pkt), None);
    }

    #[test]
    fn frag_needed_quotes_the_request_and_carries_the_mtu() {
        let req = echo_request(false, 5, 6, 1, 1472);
        let mut icmp = vec![3u8, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&1400u16.to_be_bytes());
        icmp.extend_from_slice(&ipv4_header(1, [10, 0, 2, 2], req.len()));
        icmp.extend_from_slice(&req[..8]);
        let mut pkt = ipv4_header(1, [10, 0, 0, 1], icmp.len());
        pkt.extend_from_slice(&icmp);
        assert_eq!(
            parse_v4(&pkt),
            Some(Answer::Error { id: 5, seq: 6, kind: ErrorKind::FragNeeded, mtu: Some(1400), quoted_dst: Some("10.0.2.2".parse().unwrap()) })
        );
        // Host unreachable (ARP failed) likewise, without an MTU.
        icmp[1] = 1;
        let mut pkt = ipv4_header(1, [10, 0, 0, 1], icmp.len());
        pkt.extend_from_slice(&icmp);
        assert!(matches!(parse_v4(&pkt), Some(Answer::Error { kind: ErrorKind::HostUnreachable, mtu: None, .. })));
    }

    #[test]
    fn icmpv6_reply_and_packet_too_big() {
        let mut reply = echo_request(true, 9, 10, 3, 32);
        reply[0] = 129;
        assert_eq!(parse_v6(&reply), Some(Answer::Reply { id: 9, seq: 10, token: Some(3) }));
        let req = echo_request(true, 9, 11, 4, 1452);
        let mut icmp = vec![2u8, 0, 0, 0];
        icmp.extend_from_slice(&1280u32.to_be_bytes());
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
        ip6.extend_from_slice(&[0u8; 16]);
        let dst: Ipv6Addr = "fd00::2".parse().unwrap();
        ip6.extend_from_slice(&dst.octets());
        icmp.extend_from_slice(&ip6);
        icmp.extend_from_slice(&req[..8]);
        assert_eq!(parse_v6(&icmp), Some(Answer::Error { id: 9, seq: 11, kind: ErrorKind::FragNeeded, mtu: Some(1280), quoted_dst: Some(IpAddr::V6(dst)) }));
        assert_eq!(quoted_request(&req, true), Some((9, 11)));
        assert_eq!(quoted_request(&req, false), None);
    }

    #[test]
    fn error_kinds_in_words() {
        assert_eq!(ErrorKind::v4(3, 3), ErrorKind::PortUnreachable);
        assert_eq!(ErrorKind::v4(3, 13), ErrorKind::Prohibited);
        assert_eq!(ErrorKind::v6(1, 4), ErrorKind::PortUnreachable);
        assert_eq!(ErrorKind::v6(1, 3).text(), "host unreachable");
    }
}
