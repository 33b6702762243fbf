//! VXLAN options (IFLA_VXLAN_*). The remote (unicast) and the multicast group share
//! IFLA_VXLAN_GROUP/GROUP6; the underlay device is IFLA_VXLAN_LINK (an ifindex the executor
//! supplies). Static remote entries are fdb neighbours, not link options (see `fdb`).

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkInfo};

use crate::model::kind::VxlanSpec;

pub(super) fn info(s: &VxlanSpec, dev: Option<u32>) -> Vec<LinkInfo> {
    let mut d = vec![InfoVxlan::Id(s.vni)];
    match s.remote_ip().or(s.group_ip()) {
        Some(IpAddr::V4(a)) => d.push(InfoVxlan::Group(a)),
        Some(IpAddr::V6(a)) => d.push(InfoVxlan::Group6(a)),
        None => {}
    }
    match s.local_ip() {
        Some(IpAddr::V4(a)) => d.push(InfoVxlan::Local(a)),
        Some(IpAddr::V6(a)) => d.push(InfoVxlan::Local6(a)),
        None => {}
    }
    if let Some(i) = dev {
        d.push(InfoVxlan::Link(i));
    }
    d.push(InfoVxlan::Port(s.port()));
    if let Some(t) = s.ttl {
        d.push(InfoVxlan::Ttl(t));
    }
    if let Some(l) = s.learning {
        d.push(InfoVxlan::Learning(l));
    }
    vec![LinkInfo::Kind(InfoKind::Vxlan), LinkInfo::Data(InfoData::Vxlan(d))]
}

/// Decoded options, plus the underlay ifindex (for `status`).
pub(super) fn decode(d: &[InfoVxlan]) -> (VxlanSpec, Option<u32>) {
    let mut s = VxlanSpec::default();
    let mut link = None;
    for a in d {
        match a {
            InfoVxlan::Id(v) => s.vni = *v,
            InfoVxlan::Group(a) => set_group(&mut s, IpAddr::V4(*a)),
            InfoVxlan::Group6(a) => set_group(&mut s, IpAddr::V6(*a)),
            InfoVxlan::Local(a) if !a.is_unspecified() => s.local = Some(a.to_string()),
            InfoVxlan::Local6(a) if !a.is_unspecified() => s.local = Some(a.to_string()),
            InfoVxlan::Link(i) => link = Some(*i),
            InfoVxlan::Port(p) => s.dstport = Some(*p),
            InfoVxlan::Ttl(t) => s.ttl = Some(*t),
            InfoVxlan::Learning(l) => s.learning = Some(*l),
            _ => {}
        }
    }
    (s, link)
}

fn set_group(s: &mut VxlanSpec, a: IpAddr) {
    if a.is_unspecified() {
        return;
    }
    if a.is_multicast() {
        s.group = Some(a.to_string());
    } else {
        s.remote = Some(a.to_string());
    }
}
