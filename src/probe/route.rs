//! The kernel's own route lookup (RTM_GETROUTE, what `ip route get` asks): for a packet sent by
//! the node, or for one arriving on a device (`iif`), as the forwarding path would see it. The
//! kernel's verdicts keep their meaning: EHOSTUNREACH for a forwarding lookup on a node with
//! forwarding off, EXDEV for a source that reverse-path filtering rejects.

use std::net::IpAddr;

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::Serialize;

use crate::kernel::nl::{KernelError, Netlink};

/// What to look up.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub dst: Option<IpAddr>,
    pub src: Option<IpAddr>,
    /// Input device: look up as a packet arriving there (forwarding), not as one sent locally.
    pub iif: Option<u32>,
    /// Force the output device.
    pub oif: Option<u32>,
}

impl Lookup {
    pub fn to(dst: IpAddr) -> Lookup {
        Lookup { dst: Some(dst), ..Default::default() }
    }
}

/// The kernel's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteAnswer {
    /// `unicast`, `local` (delivered to this node), `broadcast`, `unreachable`, ...
    pub kind: String,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// The source address the kernel picks.
    pub src: Option<IpAddr>,
    pub table: Option<u32>,
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The RTM_GETROUTE request of a lookup.
pub fn request(l: &Lookup) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    let v6 = l.dst.or(l.src).map(|a| a.is_ipv6()).unwrap_or(false);
    m.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let full = if v6 { 128 } else { 32 };
    if let Some(d) = l.dst {
        m.header.destination_prefix_length = full;
        m.attributes.push(RouteAttribute::Destination(RouteAddress::from(d)));
    }
    if let Some(s) = l.src {
        m.header.source_prefix_length = full;
        m.attributes.push(RouteAttribute::Source(RouteAddress::from(s)));
    }
    if let Some(i) = l.iif {
        m.attributes.push(RouteAttribute::Iif(i));
    }
    if let Some(o) = l.oif {
        m.attributes.push(RouteAttribute::Oif(o));
    }
    m.header.flags = RouteFlags::empty();
    RouteNetlinkMessage::GetRoute(m)
}

fn kind_name(t: RouteType) -> String {
    match t {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        RouteType::Nat => "nat".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Decodes the reply.
pub fn decode(m: &RouteMessage) -> RouteAnswer {
    let mut a = RouteAnswer { kind: kind_name(m.header.kind), oif: None, gateway: None, src: None, table: Some(u32::from(m.header.table)) };
    for at in &m.attributes {
        match at {
            RouteAttribute::Oif(o) => a.oif = Some(*o),
            RouteAttribute::Gateway(g) => a.gateway = addr(g),
            RouteAttribute::PrefSource(s) => a.src = addr(s),
            RouteAttribute::Table(t) => a.table = Some(*t),
            _ => {}
        }
    }
    a
}

/// Asks the kernel of the socket's namespace.
pub fn get(nl: &mut Netlink, l: &Lookup) -> Result<RouteAnswer, KernelError> {
    let reply = nl.request(request(l), 0)?;
    reply
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(decode(&r)),
            _ => None,
        })
        .ok_or(KernelError { errno: libc::EPROTO, text: Some("no route in the kernel's answer".into()) })
}

/// Words for a lookup's error.
pub fn error_text(e: &KernelError, forwarding: bool) -> String {
    match e.errno {
        libc::ENETUNREACH => "no route (network unreachable)".into(),
        libc::EHOSTUNREACH if forwarding => "not forwarded: forwarding is off or no route (host unreachable)".into(),
        libc::EHOSTUNREACH => "no route (host unreachable)".into(),
        libc::EXDEV => "dropped by reverse-path filtering (rp_filter): the source is not reachable back through this device".into(),
        libc::EACCES => "prohibited by a prohibit route".into(),
        libc::EINVAL => "dropped by a blackhole route (or invalid request)".into(),
        libc::ENODEV => "input device is down or gone".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn request_carries_destination_source_and_iif() {
        let m = request(&Lookup { dst: Some("10.0.2.2".parse().unwrap()), src: Some("10.0.1.2".parse().unwrap()), iif: Some(3), oif: None });
        let RouteNetlinkMessage::GetRoute(r) = &m else { panic!() };
        assert_eq!(r.header.address_family, AddressFamily::Inet);
        assert_eq!(r.header.destination_prefix_length, 32);
        assert_eq!(r.header.source_prefix_length, 32);
        assert!(r.attributes.contains(&RouteAttribute::Iif(3)));
        // Bytes as iproute2 sends for `ip route get 10.0.2.2 from 10.0.1.2 iif <3>`: rtmsg then
        // RTA_DST(1) 10.0.2.2, RTA_SRC(2) 10.0.1.2, RTA_IIF(3) 3.
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf);
        assert_eq!(&buf[..4], &[2, 32, 32, 0]);
        assert_eq!(&buf[12..20], &[8, 0, 1, 0, 10, 0, 2, 2]);
        assert_eq!(&buf[20..28], &[8, 0, 2, 0, 10, 0, 1, 2]);
        assert_eq!(&buf[28..36], &[8, 0, 3, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn errors_in_words() {
        let e = KernelError { errno: libc::EXDEV, text: None };
        assert!(error_text(&e, true).contains("rp_filter"));
        let e = KernelError { errno: libc::EHOSTUNREACH, text: None };
        assert!(error_text(&e, true).contains("forwarding is off"));
    }
}
