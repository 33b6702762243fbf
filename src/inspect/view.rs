//! What a running lab's namespaces hold, read once from every node (links with their kind
//! details, addresses, routes, forwarding FDBs, bridge VLANs, a few sysctls, root qdiscs and
//! declared devices' BPF programs, and which netnsid
//! each namespace gives the others), so that `trace` and `doctor` can follow devices across
//! namespaces: a veth's peer, a macvlan's lower device, a vxlan's underlay.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfoFlags, InfoData, InfoIpVlan, InfoMacVlan, InfoMacVtap, InfoVxlan, IpVlanFlags, IpVlanMode, LinkAttribute, LinkExtentMask,
    LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::Serialize;

use super::RunningLab;
use crate::error::{Error, Result};
use crate::kernel::netfeat::rawnl::RawNl;
use crate::kernel::netfeat::{bpf, tc};
use crate::kernel::nl::Netlink;
use crate::kernel::{observe, sysctl};
use crate::observed::{ObservedLink, ObservedNs};
use crate::probe::ns;

/// Kind options that decide where frames go, for the kinds that have any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KindDetails {
    #[default]
    None,
    Macvlan {
        mode: String,
    },
    Ipvlan {
        mode: String,
        flags: Vec<String>,
    },
    Vxlan {
        vni: u32,
        remote: Option<IpAddr>,
        local: Option<IpAddr>,
        underlay: Option<u32>,
        port: u16,
        learning: bool,
    },
}

/// One forwarding database entry (bridge or vxlan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The device the entry is on (a bridge port, a vxlan device).
    pub ifindex: u32,
    /// The bridge, for entries learned or added on a bridge.
    pub master: Option<u32>,
    pub vlan: Option<u16>,
    /// VXLAN: the remote tunnel end for this MAC.
    pub dst: Option<IpAddr>,
    /// Permanent (the bridge's or a port's own address).
    pub local: bool,
}

/// A VLAN on a bridge port (or the bridge itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// Everything read from one node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeView {
    pub ns: ObservedNs,
    /// ifindex -> kind details.
    pub details: BTreeMap<u32, KindDetails>,
    /// The netnsid this namespace uses for another node's namespace.
    pub nsids: BTreeMap<i32, String>,
    pub fdb: Vec<FdbEntry>,
    /// ifindex -> VLANs (only with VLAN filtering).
    pub vlans: BTreeMap<u32, Vec<PortVlan>>,
    /// A few sysctls by key (`net.ipv4.ip_forward`, `net.ipv4.conf.eth0.rp_filter`, ...).
    pub sysctls: BTreeMap<String, String>,
    /// Ports of the node's Open vSwitch bridges, by bridge name (as declared: OVS's own
    /// datapath, not the kernel, switches between them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ovs_ports: BTreeMap<String, Vec<String>>,
}

/// A device of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DevRef<'a> {
    pub node: &'a str,
    pub ifindex: u32,
}

/// The whole lab as read from the kernel.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LabView {
    pub nodes: BTreeMap<String, NodeView>,
    /// Built on first use: `trace` and `doctor` ask per hop, and a scan of every device per
    /// question made a 1000-node lab's `doctor` quadratic.
    #[serde(skip)]
    index: std::sync::OnceLock<Index>,
}

/// Reverse lookups over every node's devices and addresses.
#[derive(Clone, Debug, Default)]
struct Index {
    /// node -> ifindex -> devices (node, position in its links) whose IFLA_LINK resolves there.
    uppers: std::collections::HashMap<String, std::collections::HashMap<u32, Vec<(String, usize)>>>,
    /// address -> (node, ifindex) of the devices holding it.
    holders: std::collections::HashMap<IpAddr, Vec<(String, u32)>>,
    /// node -> ifindex -> position in its links: a trace looks devices up at every step.
    links: std::collections::HashMap<String, std::collections::HashMap<u32, usize>>,
    /// node -> bridge ifindex -> positions of its ports (in link order).
    ports: std::collections::HashMap<String, std::collections::HashMap<u32, Vec<usize>>>,
}

fn macvlan_mode(m: &MacVlanMode) -> String {
    match m {
        MacVlanMode::Private => "private".into(),
        MacVlanMode::Vepa => "vepa".into(),
        MacVlanMode::Bridge => "bridge".into(),
        MacVlanMode::Passthrough => "passthru".into(),
        MacVlanMode::Source => "source".into(),
        MacVlanMode::Other(o) => o.to_string(),
        _ => "unknown".into(),
    }
}

fn kind_details(l: &LinkMessage) -> KindDetails {
    for a in &l.attributes {
        let LinkAttribute::LinkInfo(infos) = a else { continue };
        for i in infos {
            let LinkInfo::Data(d) = i else { continue };
            match d {
                InfoData::MacVlan(v) => {
                    let mode = v.iter().find_map(|x| match x {
                        InfoMacVlan::Mode(m) => Some(macvlan_mode(m)),
                        _ => None,
                    });
                    return KindDetails::Macvlan { mode: mode.unwrap_or_else(|| "vepa".into()) };
                }
                InfoData::MacVtap(v) => {
                    let mode = v.iter().find_map(|x| match x {
                        InfoMacVtap::Mode(m) => Some(macvlan_mode(m)),
                        _ => None,
                    });
                    return KindDetails::Macvlan { mode: mode.unwrap_or_else(|| "vepa".into()) };
                }
                InfoData::IpVlan(v) => {
                    let mut mode = "l3".to_string();
                    let mut flags = Vec::new();
                    for x in v {
                        match x {
                            InfoIpVlan::Mode(m) => {
                                mode = match m {
                                    IpVlanMode::L2 => "l2".into(),
                                    IpVlanMode::L3 => "l3".into(),
                                    IpVlanMode::L3S => "l3s".into(),
                                    other => format!("{other:?}").to_lowercase(),
                                }
                            }
                            InfoIpVlan::Flags(f) => {
                                if f.contains(IpVlanFlags::Private) {
                                    flags.push("private".into());
                                }
                                if f.contains(IpVlanFlags::Vepa) {
                                    flags.push("vepa".into());
                                }
                            }
                            _ => {}
                        }
                    }
                    return KindDetails::Ipvlan { mode, flags };
                }
                InfoData::Vxlan(v) => {
                    let mut vni = 0;
                    let (mut remote, mut local, mut underlay, mut port, mut learning) = (None, None, None, 8472, true);
                    for x in v {
                        match x {
                            InfoVxlan::Id(i) => vni = *i,
                            InfoVxlan::Group(g) => remote = Some(IpAddr::V4(*g)),
                            InfoVxlan::Group6(g) => remote = Some(IpAddr::V6(*g)),
                            InfoVxlan::Local(a) => local = Some(IpAddr::V4(*a)),
                            InfoVxlan::Local6(a) => local = Some(IpAddr::V6(*a)),
                            InfoVxlan::Link(i) => underlay = Some(*i),
                            InfoVxlan::Port(p) => port = *p,
                            InfoVxlan::Learning(b) => learning = *b,
                            _ => {}
                        }
                    }
                    return KindDetails::Vxlan { vni, remote, local, underlay, port, learning };
                }
                _ => {}
            }
        }
    }
    KindDetails::None
}

fn vlans_of(l: &LinkMessage) -> Vec<PortVlan> {
    let mut out = Vec::new();
    for a in &l.attributes {
        if let LinkAttribute::AfSpecBridge(specs) = a {
            for s in specs {
                if let AfSpecBridge::VlanInfo(v) = s {
                    out.push(PortVlan {
                        vid: v.vid,
                        pvid: v.flags.contains(BridgeVlanInfoFlags::Pvid),
                        untagged: v.flags.contains(BridgeVlanInfoFlags::Untagged),
                    });
                }
            }
        }
    }
    out
}

fn fdb_of(m: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let (mut master, mut vlan, mut dst) = (None, None, None);
    for a in &m.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => mac = Some(<[u8; 6]>::try_from(b.as_slice()).ok()?),
            NeighbourAttribute::Controller(c) => master = Some(*c),
            NeighbourAttribute::Vlan(v) => vlan = Some(*v),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            // AF_BRIDGE dumps (the vxlan FDB) carry NDA_DST as raw bytes: 4 for IPv4, 16 for IPv6.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => dst = raw_ip(b),
            _ => {}
        }
    }
    if master.is_none() && m.header.flags.contains(NeighbourFlags::Controller) {
        master = None;
    }
    Some(FdbEntry { mac: mac?, ifindex: m.header.ifindex, master, vlan, dst, local: m.header.state == NeighbourState::Permanent })
}

fn raw_ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Sysctls read in every node (per-device ones for each device too).
fn sysctl_keys(ns: &ObservedNs) -> Vec<String> {
    let mut k = vec![
        "net.ipv4.ip_forward".to_string(),
        "net.ipv6.conf.all.forwarding".into(),
        "net.ipv4.conf.all.rp_filter".into(),
        "net.ipv4.conf.all.arp_ignore".into(),
    ];
    for l in &ns.links {
        if l.name.contains('.') {
            continue;
        }
        k.push(format!("net.ipv4.conf.{}.rp_filter", l.name));
        k.push(format!("net.ipv4.conf.{}.forwarding", l.name));
    }
    k
}

/// Reads one node (all but `nsids`, see `resolve_nsids`); the calling thread is inside its
/// namespace. `bpf_devs`: devices whose BPF programs to list (those the lab declares some on).
fn read_node(bpf_devs: &[String]) -> std::io::Result<NodeView> {
    let mut nl = Netlink::open()?;
    let kerr = |e: crate::kernel::nl::KernelError| std::io::Error::other(e.to_string());
    let mut ns = observe::observe_ns(&mut nl, &[]).map_err(kerr)?;
    // Busy bridges' teardown anchors are vnet's machinery, down and outside every path.
    ns.links.retain(|l| !crate::model::anchor::is_anchor(&l.name));
    // Root qdiscs of every device (one dump), BPF programs of the declaring devices: `doctor`
    // compares them with the declared traffic control.
    let mut raw = RawNl::open(netlink_sys::protocols::NETLINK_ROUTE)?;
    for (ifindex, q) in tc::dump_roots(&mut raw).map_err(kerr)? {
        if let Some(n) = ns.name_of(ifindex) {
            ns.features.qdiscs.insert(n.to_string(), q);
        }
    }
    if !bpf_devs.is_empty() {
        let devs: Vec<(String, u32)> = bpf_devs.iter().filter_map(|d| ns.link(d).map(|l| (d.clone(), l.ifindex))).collect();
        ns.features.bpf = bpf::observe(&mut raw, &devs).map_err(kerr)?;
    }
    for k in sysctl_keys(&ns) {
        if let Ok(v) = sysctl::read(&k) {
            ns.sysctls.insert(k, v);
        }
    }
    let mut details = BTreeMap::new();
    nl.dump_each(crate::kernel::msg::dump_links(), |m| {
        if let RouteNetlinkMessage::NewLink(l) = m {
            let d = kind_details(&l);
            if d != KindDetails::None {
                details.insert(l.header.index, d);
            }
        }
    })
    .map_err(kerr)?;
    // Bridge VLANs (per port, only where VLAN filtering is on).
    let mut vlans = BTreeMap::new();
    let mut req = LinkMessage::default();
    req.header.interface_family = AddressFamily::Bridge;
    req.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
    if let Ok(msgs) = nl.dump(RouteNetlinkMessage::GetLink(req)) {
        for m in msgs {
            if let RouteNetlinkMessage::NewLink(l) = m {
                let v = vlans_of(&l);
                if !v.is_empty() {
                    vlans.insert(l.header.index, v);
                }
            }
        }
    }
    let mut fdb = Vec::new();
    let mut q = NeighbourMessage::default();
    q.header.family = AddressFamily::Bridge;
    if let Ok(msgs) = nl.dump(RouteNetlinkMessage::GetNeighbour(q)) {
        for m in msgs {
            if let RouteNetlinkMessage::NewNeighbour(n) = m {
                fdb.extend(fdb_of(&n));
            }
        }
    }
    let sysctls = ns.sysctls.clone();
    Ok(NodeView { ns, details, nsids: BTreeMap::new(), fdb, vlans, sysctls, ovs_ports: BTreeMap::new() })
}

/// The netnsids a node's cross-namespace devices carry (IFLA_LINK_NETNSID).
fn needed_nsids(v: &NodeView) -> std::collections::BTreeSet<i32> {
    v.ns.links.iter().filter_map(|l| l.link_netnsid).filter(|id| *id >= 0).collect()
}

/// For each node, the nodes likely behind its netnsids: those holding a device that points back
/// at one of its devices (a veth's peer: each end's IFLA_LINK is the other's index). Asking
/// these first keeps a star's leaves at one question each instead of one per node.
fn nsid_candidates(views: &[NodeView]) -> Vec<Vec<usize>> {
    let mut back: std::collections::HashMap<(u32, u32), Vec<usize>> = Default::default();
    for (b, v) in views.iter().enumerate() {
        for l in v.ns.links.iter().filter(|l| l.link_netnsid.is_some()) {
            if let Some(link) = l.link {
                back.entry((l.ifindex, link)).or_default().push(b);
            }
        }
    }
    views
        .iter()
        .enumerate()
        .map(|(a, v)| {
            let mut c: Vec<usize> =
                v.ns.links
                    .iter()
                    .filter(|l| l.link_netnsid.is_some())
                    .filter_map(|l| back.get(&(l.link?, l.ifindex)))
                    .flatten()
                    .copied()
                    .filter(|b| *b != a)
                    .collect();
            c.sort_unstable();
            c.dedup();
            c
        })
        .collect()
}

/// How the calling thread's namespace numbers other nodes, for the ids in `needed`: the
/// candidates are asked first, every other node only while an id is still unknown.
fn resolve_nsids(needed: &std::collections::BTreeSet<i32>, first: &[(String, i32)], rest: &[(String, i32)]) -> std::io::Result<BTreeMap<i32, String>> {
    let mut nl = Netlink::open()?;
    let mut nsids = BTreeMap::new();
    for (node, fd) in first.iter().chain(rest.iter().filter(|(n, _)| !first.iter().any(|(f, _)| f == n))) {
        if needed.iter().all(|id| nsids.contains_key(id)) {
            break;
        }
        let mut m = NsidMessage::default();
        m.attributes.push(NsidAttribute::Fd(*fd as u32));
        if let Ok(reply) = nl.request(RouteNetlinkMessage::GetNsId(m), 0) {
            for r in reply {
                if let RouteNetlinkMessage::NewNsId(n) = r {
                    for a in n.attributes {
                        if let NsidAttribute::Id(id) = a {
                            if id >= 0 {
                                nsids.insert(id, node.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(nsids)
}

impl LabView {
    /// Reads every node of a running lab (in parallel); a node whose namespace is gone has no
    /// view.
    pub fn observe(rl: &RunningLab) -> Result<LabView> {
        let nodes: Vec<String> = rl.model().nodes.keys().filter(|n| !rl.is_missing(n)).cloned().collect();
        let others: Vec<(String, i32)> = nodes.iter().map(|n| (n.clone(), rl.fds[n].as_raw_fd())).collect();
        let fds = rl.borrowed(&nodes)?;
        let bpf_devs: Vec<Vec<String>> = nodes.iter().map(|n| rl.model().nodes[n].features.bpf.iter().map(|b| b.dev.clone()).collect()).collect();
        let views = ns::in_each(&fds, |i| read_node(&bpf_devs[i])).map_err(|e| Error::io("read the lab's namespaces", e))?;
        let mut views: Vec<NodeView> = nodes.iter().zip(views).map(|(n, v)| v.map_err(|e| Error::io(format!("read node {n}"), e))).collect::<Result<_>>()?;
        // Then how each node numbers the namespaces its devices point into.
        let candidates = nsid_candidates(&views);
        let needed: Vec<_> = views.iter().map(needed_nsids).collect();
        let asking: Vec<usize> = (0..nodes.len()).filter(|i| !needed[*i].is_empty()).collect();
        let ask_fds: Vec<_> = asking.iter().map(|i| fds[*i]).collect();
        let resolved = ns::in_each(&ask_fds, |k| {
            let i = asking[k];
            let first: Vec<(String, i32)> = candidates[i].iter().map(|b| others[*b].clone()).collect();
            let rest: Vec<(String, i32)> = others.iter().filter(|(n, _)| *n != nodes[i]).cloned().collect();
            resolve_nsids(&needed[i], &first, &rest)
        })
        .map_err(|e| Error::io("read the lab's namespace ids", e))?;
        for (i, r) in asking.into_iter().zip(resolved) {
            views[i].nsids = r.map_err(|e| Error::io(format!("read node {}", nodes[i]), e))?;
        }
        let mut out = LabView::default();
        for (n, mut v) in nodes.into_iter().zip(views) {
            for (name, i) in &rl.model().nodes[&n].interfaces {
                if let Some(br) = i.master.as_ref().filter(|m| rl.model().nodes[&n].interfaces.get(*m).is_some_and(|b| b.kind.is_ovs())) {
                    v.ovs_ports.entry(br.clone()).or_default().push(name.clone());
                }
            }
            out.nodes.insert(n, v);
        }
        Ok(out)
    }

    pub fn link(&self, node: &str, ifindex: u32) -> Option<&ObservedLink> {
        let k = *self.index().links.get(node)?.get(&ifindex)?;
        self.nodes.get(node)?.ns.links.get(k)
    }

    pub fn link_named(&self, node: &str, name: &str) -> Option<&ObservedLink> {
        self.nodes.get(node)?.ns.link(name)
    }

    pub fn details(&self, node: &str, ifindex: u32) -> &KindDetails {
        static NONE: KindDetails = KindDetails::None;
        self.nodes.get(node).and_then(|n| n.details.get(&ifindex)).unwrap_or(&NONE)
    }

    /// `node:ifname` of a device.
    pub fn name(&self, node: &str, ifindex: u32) -> String {
        format!("{node}:{}", self.link(node, ifindex).map(|l| l.name.as_str()).unwrap_or("?"))
    }

    /// The node and index IFLA_LINK points at (a veth's peer, a macvlan's lower device),
    /// following IFLA_LINK_NETNSID into another node.
    pub fn linked<'a>(&'a self, node: &'a str, l: &ObservedLink) -> Option<(&'a str, u32)> {
        let idx = l.link?;
        match l.link_netnsid {
            None => Some((node, idx)),
            Some(id) => {
                let other = self.nodes.get(node)?.nsids.get(&id)?;
                let (k, _) = self.nodes.get_key_value(other)?;
                Some((k.as_str(), idx))
            }
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut ix = Index::default();
            for (n, v) in &self.nodes {
                let links = ix.links.entry(n.clone()).or_default();
                let ports = ix.ports.entry(n.clone()).or_default();
                for (k, l) in v.ns.links.iter().enumerate() {
                    links.entry(l.ifindex).or_insert(k);
                    if let Some(m) = l.master {
                        ports.entry(m).or_default().push(k);
                    }
                }
                for (k, l) in v.ns.links.iter().enumerate() {
                    if let Some((target, idx)) = self.linked(n, l) {
                        ix.uppers.entry(target.to_string()).or_default().entry(idx).or_default().push((n.clone(), k));
                    }
                }
                for x in &v.ns.addrs {
                    ix.holders.entry(x.addr.addr()).or_default().push((n.clone(), x.ifindex));
                }
            }
            ix
        })
    }

    /// Devices whose IFLA_LINK is this device (macvlans, ipvlans, vlans on a lower; a veth's peer).
    pub fn uppers<'a>(&'a self, node: &str, ifindex: u32) -> Vec<(&'a str, &'a ObservedLink)> {
        let Some(list) = self.index().uppers.get(node).and_then(|m| m.get(&ifindex)) else { return Vec::new() };
        list.iter()
            .filter_map(|(n, k)| {
                let (name, v) = self.nodes.get_key_value(n)?;
                Some((name.as_str(), v.ns.links.get(*k)?))
            })
            .filter(|(n, l)| !(*n == node && l.ifindex == ifindex))
            .collect()
    }

    /// Nodes and devices holding an address.
    pub fn holders(&self, a: IpAddr) -> Vec<(&str, u32)> {
        let Some(list) = self.index().holders.get(&a) else { return Vec::new() };
        list.iter().filter_map(|(n, i)| self.nodes.get_key_value(n).map(|(name, _)| (name.as_str(), *i))).collect()
    }

    /// The Open vSwitch bridge a device of `node` is a port of, with the bridge's ports.
    pub fn ovs_bridge_of(&self, node: &str, ifname: &str) -> Option<(&str, &[String])> {
        self.nodes.get(node)?.ovs_ports.iter().find(|(_, ports)| ports.iter().any(|p| p == ifname)).map(|(b, p)| (b.as_str(), p.as_slice()))
    }

    /// Ports of a bridge.
    pub fn ports<'a>(&'a self, node: &str, bridge: u32) -> Vec<&'a ObservedLink> {
        let (Some(v), Some(list)) = (self.nodes.get(node), self.index().ports.get(node).and_then(|m| m.get(&bridge))) else { return Vec::new() };
        list.iter().filter_map(|k| v.ns.links.get(*k)).collect()
    }

    /// A sysctl of a node, as read.
    pub fn sysctl(&self, node: &str, key: &str) -> Option<&str> {
        self.nodes.get(node)?.sysctls.get(key).map(String::as_str)
    }

    /// The effective rp_filter of a device: the larger of `all` and the device's own.
    pub fn rp_filter(&self, node: &str, dev: &str) -> u8 {
        let get = |k: &str| self.sysctl(node, k).and_then(|v| v.parse::<u8>().ok()).unwrap_or(0);
        get("net.ipv4.conf.all.rp_filter").max(get(&format!("net.ipv4.conf.{dev}.rp_filter")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::ObservedAddr;
    use netlink_packet_route::link::InfoKind;

    #[test]
    fn macvlan_and_vxlan_details_decode() {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Private)])),
        ]));
        assert_eq!(kind_details(&l), KindDetails::Macvlan { mode: "private".into() });
        let mut v = LinkMessage::default();
        v.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Id(42), InfoVxlan::Group("192.0.2.2".parse().unwrap()), InfoVxlan::Link(3), InfoVxlan::Port(4789)])),
        ]));
        assert_eq!(
            kind_details(&v),
            KindDetails::Vxlan { vni: 42, remote: Some("192.0.2.2".parse().unwrap()), local: None, underlay: Some(3), port: 4789, learning: true }
        );
    }

    #[test]
    fn bridge_family_fdb_entries_keep_their_vxlan_destination() {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = 4;
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 168, 100, 1])));
        let e = fdb_of(&m).unwrap();
        assert_eq!((e.mac, e.ifindex, e.dst), ([0; 6], 4, Some("192.168.100.1".parse().unwrap())));
    }

    fn link(ifindex: u32, name: &str, link: Option<u32>, nsid: Option<i32>) -> ObservedLink {
        ObservedLink { ifindex, name: name.into(), link, link_netnsid: nsid, ..Default::default() }
    }

    /// A host with veths to a and b (same indexes on both sides of each pair, as the kernel
    /// may give), a macvlan in b on the host's uplink (no device points back), and a local veth.
    fn views() -> Vec<NodeView> {
        let node = |links: Vec<ObservedLink>, addrs: &[(u32, &str)]| NodeView {
            ns: ObservedNs {
                links,
                addrs: addrs.iter().map(|(i, a)| ObservedAddr { ifindex: *i, addr: a.parse().unwrap(), automatic: false, secondary: false }).collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        vec![
            node(
                vec![
                    link(1, "lo", None, None),
                    link(5, "va", Some(2), Some(0)),
                    link(6, "vb", Some(2), Some(1)),
                    link(7, "up0", None, None),
                    link(8, "l1", Some(9), None),
                    link(9, "l2", Some(8), None),
                ],
                &[(7, "10.0.0.1/24")],
            ),
            node(vec![link(1, "lo", None, None), link(2, "eth0", Some(5), Some(0))], &[(2, "10.1.0.2/24")]),
            node(
                vec![link(1, "lo", None, None), link(2, "eth0", Some(6), Some(0)), link(3, "mv0", Some(7), Some(0))],
                &[(2, "10.1.0.3/24"), (3, "10.1.0.3/24")],
            ),
        ]
    }

    #[test]
    fn netnsids_are_asked_first_of_the_nodes_whose_devices_point_back() {
        let v = views();
        // host: its veths' peers are in a (index 1) and b (2); a and b: the host.
        assert_eq!(nsid_candidates(&v), vec![vec![1, 2], vec![0], vec![0]]);
        // b's macvlan needs the same id as its veth: nothing more to ask.
        assert_eq!(needed_nsids(&v[2]).into_iter().collect::<Vec<_>>(), vec![0]);
        assert!(needed_nsids(&NodeView::default()).is_empty());
    }

    #[test]
    fn uppers_and_holders_follow_ids_across_namespaces() {
        let mut view = LabView::default();
        for (n, mut v) in ["host", "a", "b"].into_iter().zip(views()) {
            v.nsids = match n {
                "host" => [(0, "a".to_string()), (1, "b".to_string())].into(),
                _ => [(0, "host".to_string())].into(),
            };
            view.nodes.insert(n.into(), v);
        }
        let names = |u: Vec<(&str, &ObservedLink)>| u.into_iter().map(|(n, l)| format!("{n}:{}", l.name)).collect::<Vec<_>>();
        assert_eq!(names(view.uppers("host", 7)), ["b:mv0"]);
        assert_eq!(names(view.uppers("host", 5)), ["a:eth0"]);
        assert_eq!(names(view.uppers("a", 2)), ["host:va"]);
        assert_eq!(names(view.uppers("b", 2)), ["host:vb"]);
        assert_eq!(names(view.uppers("host", 8)), ["host:l2"]);
        assert!(view.uppers("host", 1).is_empty() && view.uppers("nowhere", 2).is_empty());
        assert_eq!(view.holders("10.1.0.3".parse().unwrap()), [("b", 2), ("b", 3)]);
        assert_eq!(view.holders("10.0.0.1".parse().unwrap()), [("host", 7)]);
        assert!(view.holders("10.9.9.9".parse().unwrap()).is_empty());
    }
}
