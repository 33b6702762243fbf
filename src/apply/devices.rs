//! Executor support for stacked and special devices: lower devices (IFLA_LINK, and creation
//! from the lower's namespace straight into another node), tun/tap made by ioctl, learning
//! indexes by name where the kernel sends no echo (kernels before 6.3, and devices born in
//! another namespace), and the `Op::Device` operations (bridge VLANs and fdb, VXLAN remotes,
//! bond primary, teamd).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::link::{AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::journal::Done;
use super::{ApplyError, Executor, Pending, Then};
use crate::kernel::handle::{self, NsHandle};
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkSet};
use crate::kernel::netns;
use crate::kernel::nl::{Netlink, Request};
use crate::kernel::observe::decode_link;
use crate::kernel::sysctl;
use crate::kernel::tun::{self, TunFlags};
use crate::model::kind::{KindSpec, TunSpec};
use crate::model::lab::Lab;
use crate::observed::ObservedLink;
use crate::plan::{CreateLink, DeviceOp, Op, Step};

/// NLM_F_APPEND: add another entry with the same key (VXLAN flood lists).
const NLM_F_APPEND: u16 = 0x800;
/// NUD_NOARP | NUD_PERMANENT, what `bridge fdb append` uses.
const NUD_STATIC_PERMANENT: u16 = 0x40 | 0x80;

/// The namespace whose socket sends an operation: a device whose lower device lives in
/// another node is created from the lower's namespace (IFLA_LINK is resolved there) and born
/// in its own node through IFLA_NET_NS_FD, so it is never moved afterwards.
pub(super) fn send_node(lab: &Lab, op: &Op) -> String {
    if let Op::CreateLink(c) = op {
        // A tunnel end of a multi-host lab: its UDP socket must be on the host's underlay.
        if lab.tunnel(&c.node, &c.ifname).is_some() {
            return lab.underlay_node();
        }
        if let Some(l) = c.kind.lower_endpoint(&c.node) {
            if l.node != c.node && lab.node(&l.node).is_some() {
                return l.node;
            }
        }
    }
    op.node().to_string()
}

/// How a create message carries a lower device.
#[derive(Default)]
pub(super) struct Lower {
    /// IFLA_LINK.
    pub link: Option<u32>,
    /// An index inside the kind's options (a VXLAN's underlay).
    pub info_index: Option<u32>,
    /// The device's own namespace, when the message goes out on the lower's socket.
    pub target_fd: Option<RawFd>,
}

/// Adds IFLA_LINK to a create message.
pub(super) fn with_link(mut m: RouteNetlinkMessage, link: Option<u32>) -> RouteNetlinkMessage {
    if let (RouteNetlinkMessage::NewLink(l), Some(i)) = (&mut m, link) {
        l.attributes.push(LinkAttribute::Link(i));
    }
    m
}

pub(super) fn tun_flags(kind: &KindSpec) -> Option<TunFlags> {
    match kind {
        KindSpec::Tun(s) => Some(flags_of(s, false)),
        KindSpec::Tap(s) => Some(flags_of(s, true)),
        _ => None,
    }
}

fn flags_of(s: &TunSpec, tap: bool) -> TunFlags {
    TunFlags { tap, multi_queue: s.multi_queue.unwrap_or(false), vnet_hdr: s.vnet_hdr.unwrap_or(false) }
}

/// Looks a device up by name through a namespace's socket.
pub(super) fn lookup(h: &mut NsHandle, name: &str) -> Option<ObservedLink> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let reply = h.nl.request(RouteNetlinkMessage::GetLink(m), 0).ok()?;
    reply.into_iter().find_map(|r| match r {
        RouteNetlinkMessage::NewLink(l) => Some(decode_link(&l)),
        _ => None,
    })
}

/// The hardware address of device `ifindex` in the handle's namespace, asked on a socket of its
/// own (the executor holds the namespace handles shared while it builds requests).
fn link_mac(h: &NsHandle, ifindex: u32) -> std::io::Result<Option<[u8; 6]>> {
    netns::run_in(Some(&h.fd), move || {
        let mut nl = Netlink::open()?;
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        let reply = nl.request(RouteNetlinkMessage::GetLink(m), 0).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(reply.into_iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => decode_link(&l).mac,
            _ => None,
        }))
    })?
}

impl Executor<'_> {
    /// Turns IPv6 off on the devices this stage created with `no_ipv6` (bridge ports), through
    /// their `disable_ipv6` sysctls, on a thread in each node: before they have carrier, so the
    /// kernel never adds their IPv6 routes. A device without IPv6 state (a kernel without IPv6,
    /// an MTU under 1280) has no such sysctl: nothing to turn off.
    pub(super) fn ports_without_ipv6(&mut self, steps: &[Step], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        let mut by_node: BTreeMap<&str, Vec<(usize, String)>> = BTreeMap::new();
        for (k, s) in steps.iter().enumerate() {
            let Op::CreateLink(c) = &s.op else { continue };
            let key = |ifname: &str| crate::model::validate::sysctl_key(&["net", "ipv6", "conf", ifname, "disable_ipv6"].map(str::to_string));
            if c.no_ipv6 {
                by_node.entry(c.node.as_str()).or_default().push((k, key(&c.ifname)));
            }
            if let Some(p) = c.peer.as_ref().filter(|p| p.no_ipv6) {
                by_node.entry(p.node.as_str()).or_default().push((k, key(&p.ifname)));
            }
        }
        if by_node.is_empty() {
            return Ok(());
        }
        let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| by_node.contains_key(h.node.as_str())).collect();
        let results = handle::par_each_in(&mut hs, |h| {
            by_node[h.node.as_str()].iter().find_map(|(k, key)| match sysctl::write(key, "1") {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some((*k, key.clone(), e)),
                _ => None,
            })
        });
        match results.into_iter().flatten().next() {
            Some((k, key, e)) => Err(self.fail(&steps[k], format!("turn IPv6 off on a bridge port: write {key}: {e}"), e.raw_os_error())),
            None => Ok(()),
        }
    }

    /// Where the lower device of a new device is, as the create message needs it.
    pub(super) fn lower(&self, handles: &BTreeMap<String, NsHandle>, step: &Step, c: &CreateLink) -> Result<Lower, ApplyError> {
        if self.ctx.lab.tunnel(&c.node, &c.ifname).is_some() && self.ctx.lab.underlay_node() != c.node {
            // Born in its node's namespace from the underlay's socket (see `send_node`).
            let h = handles.get(&c.node).ok_or_else(|| self.fail(step, format!("no namespace handle for node {}", c.node), None))?;
            return Ok(Lower { target_fd: Some(h.raw_fd()), ..Default::default() });
        }
        let Some(ep) = c.kind.lower_endpoint(&c.node) else { return Ok(Lower::default()) };
        let idx = self.index(handles, step, &ep.node, &ep.ifname)?;
        let mut l = Lower::default();
        if matches!(c.kind, KindSpec::Vxlan(_)) {
            l.info_index = Some(idx);
        } else {
            l.link = Some(idx);
        }
        if ep.node != c.node {
            let h = handles.get(&c.node).ok_or_else(|| self.fail(step, format!("no namespace handle for node {}", c.node), None))?;
            l.target_fd = Some(h.raw_fd());
        }
        Ok(l)
    }

    /// Creates a tun/tap device with ioctls on a thread inside its namespace (synchronously,
    /// before the stage's batch), then sets the rest over netlink.
    pub(super) fn create_tun(
        &mut self,
        k: usize,
        step: &Step,
        c: &CreateLink,
        handles: &BTreeMap<String, NsHandle>,
        out: &mut Vec<Pending>,
    ) -> Result<(), ApplyError> {
        let flags = tun_flags(&c.kind).expect("tun kind");
        let (owner, group) = match &c.kind {
            KindSpec::Tun(s) | KindSpec::Tap(s) => (s.owner, s.group),
            _ => (None, None),
        };
        let h = handles.get(&c.node).ok_or_else(|| self.fail(step, format!("no namespace handle for node {}", c.node), None))?;
        let name = c.ifname.clone();
        let idx = netns::run_in(Some(&h.fd), || tun::create(&name, flags, owner, group)).and_then(|r| r).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound { " (no /dev/net/tun: is the tun module loaded?)" } else { "" };
            self.fail(step, format!("TUNSETIFF on /dev/net/tun: {e}{hint}"), e.raw_os_error())
        })?;
        self.journal.push(Done::Tun { node: c.node.clone(), ifname: c.ifname.clone(), flags });
        let master = match &c.master {
            Some(m) => Some(self.index(handles, step, &c.node, m)?),
            None => None,
        };
        // Ownership by alias: a group delete refuses groups holding devices rtnetlink cannot
        // delete, and the namespace's end removes tun devices anyway. Born down, it gets no
        // link-local address in a lab without IPv6 (in any namespace) before it comes up.
        let set = LinkSet { mtu: c.mtu, mac: c.mac, master, alias: Some(self.mark.clone()), no_ipv6_ll: !self.ctx.lab.ipv6_link_local, ..Default::default() };
        let then = Then::Index { name: c.ifname.clone(), ifindex: idx };
        out.push(Pending { step: k, req: Request::new(msg::set_link(idx, None, &set), 0), then, enodev_ok: false, optional: false });
        if c.up {
            let set = LinkSet { up: Some(true), ..Default::default() };
            out.push(Pending { step: k, req: Request::new(msg::set_link(idx, None, &set), 0), then: Then::Nothing, enodev_ok: false, optional: false });
        }
        Ok(())
    }

    /// Deletes a tun/tap device (rtnetlink cannot); false when the device is not one.
    pub(super) fn delete_tun(&self, step: &Step, node: &str, ifname: &str, handles: &BTreeMap<String, NsHandle>) -> Result<bool, ApplyError> {
        let Some(have) = self.observed_ns(node).and_then(|o| o.link(ifname)) else { return Ok(false) };
        if have.kind.as_deref() != Some("tun") {
            return Ok(false);
        }
        let flags = have.spec.as_ref().and_then(tun_flags).unwrap_or_default();
        let Some(h) = handles.get(node) else { return Ok(false) };
        let name = ifname.to_string();
        netns::run_in(Some(&h.fd), || tun::delete(&name, flags))
            .and_then(|r| r)
            .map_err(|e| self.fail(step, format!("delete tun/tap: {e}"), e.raw_os_error()))?;
        Ok(true)
    }

    /// Learns indexes by name when a creation brought no echo.
    pub(super) fn learn(&mut self, node: &str, name: &str, peer: Option<(String, String)>, handles: &mut BTreeMap<String, NsHandle>) {
        if let Some(h) = handles.get_mut(node) {
            if let Some(l) = lookup(h, name) {
                h.ifindex.insert(l.name.clone(), l.ifindex);
                self.journal.push(Done::Link { node: node.to_string(), ifindex: l.ifindex });
            }
        }
        if let Some((pn, pi)) = peer {
            if let Some(ph) = handles.get_mut(&pn) {
                if let Some(l) = lookup(ph, &pi) {
                    ph.ifindex.insert(l.name.clone(), l.ifindex);
                }
            }
        }
    }

    /// Requests for one `Op::Device`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn device_requests(
        &mut self,
        k: usize,
        step: &Step,
        node: &str,
        ifname: &str,
        op: &DeviceOp,
        handles: &BTreeMap<String, NsHandle>,
        out: &mut Vec<Pending>,
    ) -> Result<(), ApplyError> {
        let idx = self.index(handles, step, node, ifname)?;
        let mut push = |req: RouteNetlinkMessage, flags: u16| {
            out.push(Pending { step: k, req: Request::new(req, flags), then: Then::Nothing, enodev_ok: false, optional: false })
        };
        match op {
            DeviceOp::BridgeVlans { add, del, self_, .. } => {
                let head = |infos: Vec<AfSpecBridge>| {
                    let mut m = LinkMessage::default();
                    m.header.interface_family = AddressFamily::Bridge;
                    m.header.index = idx;
                    let mut spec = Vec::new();
                    if *self_ {
                        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
                    }
                    spec.extend(infos);
                    m.attributes.push(LinkAttribute::AfSpecBridge(spec));
                    m
                };
                if !add.is_empty() {
                    let infos = add
                        .iter()
                        .map(|v| {
                            let mut f = BridgeVlanInfoFlags::empty();
                            if v.pvid {
                                f |= BridgeVlanInfoFlags::Pvid;
                            }
                            if v.untagged {
                                f |= BridgeVlanInfoFlags::Untagged;
                            }
                            AfSpecBridge::VlanInfo(BridgeVlanInfo { flags: f, vid: v.vid })
                        })
                        .collect();
                    push(RouteNetlinkMessage::SetLink(head(infos)), 0);
                }
                if !del.is_empty() {
                    let infos = del.iter().map(|v| AfSpecBridge::VlanInfo(BridgeVlanInfo { flags: BridgeVlanInfoFlags::empty(), vid: *v })).collect();
                    push(RouteNetlinkMessage::DelLink(head(infos)), 0);
                }
            }
            DeviceOp::BridgeFdb { bridge, mac, vlan } => {
                let mut m = NeighbourMessage::default();
                m.header.family = AddressFamily::Bridge;
                m.header.ifindex = idx;
                if bridge == ifname {
                    m.header.state = NeighbourState::Permanent;
                    m.header.flags = NeighbourFlags::Own;
                } else {
                    m.header.state = NeighbourState::Noarp;
                    m.header.flags = NeighbourFlags::Controller;
                }
                m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
                if let Some(v) = vlan {
                    m.attributes.push(NeighbourAttribute::Vlan(*v));
                }
                push(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE);
            }
            DeviceOp::VxlanFdb { mac, dst } => {
                let mut m = NeighbourMessage::default();
                m.header.family = AddressFamily::Bridge;
                m.header.ifindex = idx;
                m.header.state = NeighbourState::Other(NUD_STATIC_PERMANENT);
                m.header.flags = NeighbourFlags::Own;
                m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
                m.attributes.push(NeighbourAttribute::Destination(match dst {
                    IpAddr::V4(a) => NeighbourAddress::Inet(*a),
                    IpAddr::V6(a) => NeighbourAddress::Inet6(*a),
                }));
                push(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_APPEND);
            }
            DeviceOp::BondPrimary { port } => {
                let p = self.index(handles, step, node, port)?;
                let set = LinkSet { info: Some(kinds::bond_primary_info(p)), ..Default::default() };
                push(msg::set_link(idx, None, &set), 0);
            }
            DeviceOp::StartTeamd { config } => {
                let netns = self.ctx.lab.netns_name(node);
                // The team's address goes into teamd's configuration: see `team::pin_hwaddr`.
                let h = handles.get(node).ok_or_else(|| self.fail(step, format!("no namespace handle for node {node}"), None))?;
                let mac = link_mac(h, idx).map_err(|e| self.fail(step, format!("read the address of {ifname}: {e}"), e.raw_os_error()))?;
                let config = match mac {
                    Some(mac) => super::team::pin_hwaddr(config, mac),
                    None => config.clone(),
                };
                let pid = super::team::start(&self.ctx.lab.name, node, netns.as_deref(), ifname, &config)
                    .map_err(|e| self.fail(step, format!("start teamd: {e}"), e.raw_os_error()))?;
                self.journal.push(Done::Process { node: node.to_string(), pid });
            }
        }
        Ok(())
    }
}
