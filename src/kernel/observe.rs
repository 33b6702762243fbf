//! Reads what a namespace holds (links, addresses, routes, chosen sysctls) with three dumps,
//! and decodes it into `observed` types.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::Nla;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, LinkAttribute, LinkFlags, LinkMessage, LinkProtoInfoBridge};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::kinds;
use super::msg;
use super::nl::{KernelError, Netlink};
use super::sysctl;
use crate::observed::{ObservedAddr, ObservedLink, ObservedNs, ObservedRoute};

/// Dumps a namespace through its socket; sysctls are read through /proc, so the calling
/// thread must be in the same namespace when `sysctl_keys` is not empty.
pub fn observe_ns(nl: &mut Netlink, sysctl_keys: &[String]) -> Result<ObservedNs, KernelError> {
    let mut ns = ObservedNs { links: links(nl)?, ..Default::default() };
    let lo = ns.link("lo").map(|l| l.ifindex);
    nl.dump_each(msg::dump_addrs(), |m| {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            ns.addrs.extend(decode_addr(&a, lo));
        }
    })?;
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        nl.dump_each(msg::dump_routes(fam), |m| {
            if let RouteNetlinkMessage::NewRoute(r) = m {
                ns.routes.extend(decode_route(&r));
            }
        })?;
    }
    for k in sysctl_keys {
        if let Ok(v) = sysctl::read(k) {
            ns.sysctls.insert(k.clone(), v);
        }
    }
    Ok(ns)
}

/// Dumps the links of a namespace.
pub fn links(nl: &mut Netlink) -> Result<Vec<ObservedLink>, KernelError> {
    dump_links_with(nl, msg::dump_links())
}

/// The namespace's bridge ports (name, flags, master, STP state in `forwarding`; no kind).
pub fn bridge_ports(nl: &mut Netlink) -> Result<Vec<ObservedLink>, KernelError> {
    dump_links_with(nl, msg::dump_bridge_ports())
}

fn dump_links_with(nl: &mut Netlink, req: RouteNetlinkMessage) -> Result<Vec<ObservedLink>, KernelError> {
    let mut out = Vec::new();
    nl.dump_each(req, |m| {
        if let RouteNetlinkMessage::NewLink(l) = m {
            out.push(decode_link(&l));
        }
    })?;
    Ok(out)
}

/// Decodes one RTM_NEWLINK (dump entry or echo).
pub fn decode_link(l: &LinkMessage) -> ObservedLink {
    let mut o = ObservedLink {
        ifindex: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up),
        carrier: l.header.flags.contains(LinkFlags::LowerUp),
        ..Default::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => o.name = n.clone(),
            LinkAttribute::Mtu(m) => o.mtu = *m,
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(mac);
                o.mac = Some(m);
            }
            LinkAttribute::Controller(m) => o.master = Some(*m),
            LinkAttribute::IfAlias(s) => o.alias = Some(s.clone()),
            LinkAttribute::Link(i) => o.link = Some(*i),
            LinkAttribute::LinkNetNsId(i) => o.link_netnsid = Some(*i),
            LinkAttribute::Group(g) => o.group = *g,
            LinkAttribute::NumTxQueues(q) => o.tx_queues = Some(*q),
            LinkAttribute::NumRxQueues(q) => o.rx_queues = Some(*q),
            LinkAttribute::OperState(s) => o.oper = s.to_string().to_ascii_lowercase(),
            LinkAttribute::AfSpecUnspec(specs) => {
                for a in specs.iter().filter_map(|s| if let AfSpecUnspec::Inet6(v) = s { Some(v) } else { None }).flatten() {
                    match a {
                        AfSpecInet6::AddrGenMode(m) => o.addr_gen_mode = Some(u8::from(m)),
                        AfSpecInet6::DevConf(c) => o.ipv6_disabled = c.disable_ipv6 != 0,
                        _ => {}
                    }
                }
            }
            // Bridge ports in an AF_BRIDGE message: IFLA_BRPORT_STATE (1), BR_STATE_FORWARDING (3).
            LinkAttribute::ProtoInfoBridge(infos) => {
                for i in infos {
                    if let LinkProtoInfoBridge::Other(nla) = i {
                        if nla.kind() == 1 {
                            let mut v = vec![0u8; nla.value_len()];
                            nla.emit_value(&mut v);
                            o.forwarding = v.first().map(|s| *s == 3);
                        }
                    }
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                let d = kinds::decode(infos);
                o.kind = d.kind;
                o.spec = d.spec;
                o.port_kind = d.port_kind;
                o.hairpin = d.hairpin;
                o.forwarding = d.forwarding;
                o.details = d.details;
            }
            _ => {}
        }
    }
    o
}

fn decode_addr(a: &AddressMessage, lo: Option<u32>) -> Option<ObservedAddr> {
    let mut local = None;
    let mut address = None;
    for at in &a.attributes {
        match at {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let net = IpNet::new(ip, a.header.prefix_len).ok()?;
    let automatic = match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || (Some(a.header.index) == lo && v6.is_loopback()),
        IpAddr::V4(v4) => Some(a.header.index) == lo && v4.is_loopback() && a.header.prefix_len == 8 && v4.octets() == [127, 0, 0, 1],
    };
    let secondary = a.header.flags.contains(netlink_packet_route::address::AddressHeaderFlags::Secondary);
    Some(ObservedAddr { ifindex: a.header.index, addr: net, automatic, secondary })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn decode_route(r: &RouteMessage) -> Option<ObservedRoute> {
    let v6 = r.header.address_family == AddressFamily::Inet6;
    let mut table = u32::from(r.header.table);
    let mut dst = None;
    let mut via = None;
    let mut oif = None;
    let mut metric = None;
    let mut src = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => via = route_addr(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::PrefSource(s) => src = route_addr(s),
            _ => {}
        }
    }
    let base: IpAddr = if v6 { IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) };
    let dst = IpNet::new(dst.unwrap_or(base), r.header.destination_prefix_length).ok()?;
    Some(ObservedRoute { table, dst, via, oif, metric, src, protocol: u8::from(r.header.protocol), kind: u8::from(r.header.kind) })
}
