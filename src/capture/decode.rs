//! Just enough decoding of a frame for filters and one-line summaries: Ethernet (with 802.1Q
//! tags), ARP, IPv4, IPv6, and the ICMP / TCP / UDP headers above them. Pure.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fields of a frame that filters and summaries use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    pub vlan: Option<u16>,
    pub ethertype: u16,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6).
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// One-line description of the payload.
    pub info: String,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes a frame of the given pcap link type (1 Ethernet, 101 raw IP).
pub fn decode(linktype: u32, frame: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    if linktype == super::pcap::LINKTYPE_RAW {
        let v = frame.first().map(|b| b >> 4).unwrap_or(0);
        d.ethertype = if v == 6 { 0x86dd } else { 0x0800 };
        l3(&mut d, frame);
        return d;
    }
    if frame.len() < 14 {
        d.info = format!("short frame ({} bytes)", frame.len());
        return d;
    }
    d.dst_mac = frame[0..6].try_into().ok();
    d.src_mac = frame[6..12].try_into().ok();
    let mut et = be16(frame, 12).unwrap_or(0);
    let mut off = 14;
    while et == 0x8100 || et == 0x88a8 {
        d.vlan = be16(frame, off).map(|t| t & 0x0fff);
        et = be16(frame, off + 2).unwrap_or(0);
        off += 4;
    }
    d.ethertype = et;
    l3(&mut d, frame.get(off..).unwrap_or(&[]));
    d
}

fn l3(d: &mut Decoded, p: &[u8]) {
    match d.ethertype {
        0x0806 => arp(d, p),
        0x0800 => {
            if p.len() < 20 {
                d.info = "IP, truncated".into();
                return;
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
            let len = be16(p, 2).unwrap_or(0);
            let frag = be16(p, 6).unwrap_or(0) & 0x1fff;
            d.src = Some(src);
            d.dst = Some(dst);
            d.proto = Some(p[9]);
            let rest = if frag == 0 { p.get(ihl..).unwrap_or(&[]) } else { &[] };
            l4(d, p[9], rest, usize::from(len).saturating_sub(ihl), "IP");
        }
        0x86dd => {
            if p.len() < 40 {
                d.info = "IP6, truncated".into();
                return;
            }
            let src: [u8; 16] = p[8..24].try_into().unwrap_or([0; 16]);
            let dst: [u8; 16] = p[24..40].try_into().unwrap_or([0; 16]);
            d.src = Some(IpAddr::V6(Ipv6Addr::from(src)));
            d.dst = Some(IpAddr::V6(Ipv6Addr::from(dst)));
            d.proto = Some(p[6]);
            l4(d, p[6], &p[40..], usize::from(be16(p, 4).unwrap_or(0)), "IP6");
        }
        other => d.info = format!("ethertype 0x{other:04x}"),
    }
}

fn arp(d: &mut Decoded, p: &[u8]) {
    if p.len() < 28 {
        d.info = "ARP, truncated".into();
        return;
    }
    let op = be16(p, 6).unwrap_or(0);
    let spa = IpAddr::V4(Ipv4Addr::new(p[14], p[15], p[16], p[17]));
    let tpa = IpAddr::V4(Ipv4Addr::new(p[24], p[25], p[26], p[27]));
    d.src = Some(spa);
    d.dst = Some(tpa);
    d.info = match op {
        1 => format!("ARP, Request who-has {tpa} tell {spa}"),
        2 => format!("ARP, Reply {spa} is-at {}", crate::model::lab::format_mac(&p[8..14])),
        o => format!("ARP, op {o}"),
    };
}

fn l4(d: &mut Decoded, proto: u8, p: &[u8], len: usize, fam: &str) {
    let (s, t) = (d.src.map(|a| a.to_string()).unwrap_or_default(), d.dst.map(|a| a.to_string()).unwrap_or_default());
    match proto {
        6 | 17 if p.len() >= 4 => {
            d.sport = be16(p, 0);
            d.dport = be16(p, 2);
            let (sp, dp) = (d.sport.unwrap_or(0), d.dport.unwrap_or(0));
            if proto == 6 {
                let flags = p.get(13).copied().unwrap_or(0);
                let mut f = String::new();
                for (bit, c) in [(0x02, 'S'), (0x01, 'F'), (0x04, 'R'), (0x08, 'P'), (0x10, '.')] {
                    if flags & bit != 0 {
                        f.push(c);
                    }
                }
                let hl = usize::from(p.get(12).copied().unwrap_or(0) >> 4) * 4;
                d.info = format!("{fam} {s}.{sp} > {t}.{dp}: Flags [{f}], length {}", len.saturating_sub(hl));
            } else {
                d.info = format!("{fam} {s}.{sp} > {t}.{dp}: UDP, length {}", len.saturating_sub(8));
            }
        }
        1 | 58 if p.len() >= 4 => {
            let (ty, code) = (p[0], p[1]);
            let what = match (proto, ty) {
                (1, 8) | (58, 128) => format!("echo request, id {}, seq {}", be16(p, 4).unwrap_or(0), be16(p, 6).unwrap_or(0)),
                (1, 0) | (58, 129) => format!("echo reply, id {}, seq {}", be16(p, 4).unwrap_or(0), be16(p, 6).unwrap_or(0)),
                (1, 3) => format!("destination unreachable (code {code})"),
                (1, 11) | (58, 3) => "time exceeded".into(),
                (58, 1) => format!("destination unreachable (code {code})"),
                (58, 2) => "packet too big".into(),
                (58, 133) => "router solicitation".into(),
                (58, 134) => "router advertisement".into(),
                (58, 135) => "neighbor solicitation".into(),
                (58, 136) => "neighbor advertisement".into(),
                (58, 143) => "multicast listener report v2".into(),
                _ => format!("type {ty}, code {code}"),
            };
            let name = if proto == 1 { "ICMP" } else { "ICMP6" };
            d.info = format!("{fam} {s} > {t}: {name} {what}, length {len}");
        }
        other => {
            let _ = write!(d.info, "{fam} {s} > {t}: protocol {other}, length {len}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Ethernet + IPv4 + ICMP echo request frame.
    pub fn icmp_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let icmp = [8u8, 0, 0, 0, 0, 7, 0, 1, 0xaa, 0xbb];
        let total = (20 + icmp.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 1, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&icmp);
        f
    }

    /// An Ethernet + IPv4 + TCP SYN frame.
    pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = 40u16;
        f.extend_from_slice(&[0x45, 0, 0, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02;
        f.extend_from_slice(&tcp);
        f
    }

    #[test]
    fn icmp_tcp_and_arp_summaries() {
        let d = decode(1, &icmp_frame([10, 0, 0, 1], [10, 0, 0, 2]));
        assert_eq!(d.info, "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 10");
        assert_eq!(d.proto, Some(1));
        let d = decode(1, &tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80));
        assert_eq!(d.info, "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], length 0");
        assert_eq!((d.sport, d.dport), (Some(40000), Some(80)));
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let d = decode(1, &arp);
        assert_eq!(d.info, "ARP, Request who-has 10.0.0.2 tell 10.0.0.1");
        assert_eq!(d.ethertype, 0x0806);
    }

    #[test]
    fn vlan_tags_and_raw_ip() {
        let mut f = icmp_frame([10, 0, 0, 1], [10, 0, 0, 2]);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
        let d = decode(1, &f);
        assert_eq!(d.vlan, Some(42));
        assert_eq!(d.dst, Some("10.0.0.2".parse().unwrap()));
        let raw = &icmp_frame([10, 0, 0, 1], [10, 0, 0, 2])[14..];
        let d = decode(101, raw);
        assert_eq!(d.src, Some("10.0.0.1".parse().unwrap()));
        assert!(d.info.contains("echo request"));
    }
}
