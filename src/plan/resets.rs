//! Settings the file no longer declares go back to the kernel's default.
//!
//! The rule: the file is the truth for what vnet set, and only for that. A setting that the
//! lab's record (`LabState::topology`: the file as last applied successfully) declares for a
//! device, and that the file now leaves out, is planned back to what the kernel gives a fresh
//! device of that kind: bridge options (STP off, ageing time 300 s, forward delay 15 s,
//! multicast snooping on, VLAN filtering off), a bridge port's `hairpin` (off) and the MTU
//! (`Planner::default_mtu`: what a fresh build of the file would give the device). A setting
//! the record does not declare is never forced, whatever the kernel holds: the value is the
//! kernel's own (a bridge sized to its smallest port) or someone else's (a port's hairpin
//! turned on by hand). A lab without a record, or whose record holds no topology, resets
//! nothing; a device the plan creates or re-creates starts from the defaults anyway. A dropped
//! `mac` is left as it is (a fresh device's address is random).

use std::collections::HashMap;

use super::Planner;
use crate::model::file::{InterfaceSpec, Topology};
use crate::model::kind::{KindSpec, VXLAN_OVERHEAD};
use crate::model::lab::{Endpoint, Interface};
use crate::state::LabState;

/// The MTU the kernel gives a new Ethernet-like device (veth, bridge without ports, tun...).
const ETH_DATA_LEN: u32 = 1500;
/// The MTU of a new namespace's `lo`.
const LOOPBACK_MTU: u32 = 65536;
/// Outer headers of a VXLAN over IPv6: Ethernet 14 + IPv6 40 + UDP 8 + VXLAN 8.
const VXLAN6_OVERHEAD: u32 = 70;
/// Stacking depth beyond which a default is not worked out (validation refuses cycles).
const MAX_DEPTH: u16 = 16;

/// What the lab's record says the lab declared at its last successful `up`.
pub(super) struct Prior<'a> {
    topo: Option<&'a Topology>,
    /// MTUs set on links (`links: [{ endpoints, mtu }]`), per end.
    link_mtu: HashMap<Endpoint, u32>,
}

impl<'a> Prior<'a> {
    pub(super) fn new(state: Option<&'a LabState>) -> Self {
        let topo = state.and_then(|s| s.topology.as_ref());
        let mut link_mtu = HashMap::new();
        for l in topo.iter().flat_map(|t| &t.links) {
            let Some(m) = l.mtu else { continue };
            for e in l.endpoints.iter().filter_map(|e| Endpoint::parse(e)) {
                link_mtu.entry(e).or_insert(m);
            }
        }
        Prior { topo, link_mtu }
    }

    fn spec(&self, node: &str, ifname: &str) -> Option<&'a InterfaceSpec> {
        self.topo?.nodes.get(node)?.interfaces.get(ifname)
    }

    /// The MTU the record declares for a device: its own `mtu`, else its link's (as validation
    /// resolves it).
    fn mtu(&self, node: &str, ifname: &str) -> Option<u32> {
        self.spec(node, ifname).and_then(|s| s.mtu).or_else(|| {
            if self.link_mtu.is_empty() {
                return None;
            }
            self.link_mtu.get(&Endpoint::new(node, ifname)).copied()
        })
    }

    fn kind(&self, node: &str, ifname: &str) -> Option<&'a KindSpec> {
        self.spec(node, ifname).map(|s| &s.kind)
    }
}

impl Planner<'_> {
    /// The MTU to put back on an existing device whose `mtu` the file dropped; `None` when the
    /// file declares one or the record never did (see the module's rule).
    pub(super) fn mtu_reset(&self, node: &str, iface: &Interface) -> Option<u32> {
        if iface.mtu.is_some() {
            return None;
        }
        self.prior.mtu(node, &iface.name)?;
        self.default_mtu(node, iface, 0)
    }

    /// Off for a bridge port whose `hairpin` the file dropped since the record (the kernel's
    /// default); `None` when the file declares it or the record never did.
    pub(super) fn hairpin_reset(&self, node: &str, iface: &Interface) -> Option<bool> {
        if iface.hairpin.is_some() {
            return None;
        }
        self.prior.spec(node, &iface.name)?.hairpin.map(|_| false)
    }

    /// The device's kind options with the kernel's defaults for those the file dropped since
    /// the record; `None` when none was dropped.
    pub(super) fn kind_reset(&self, node: &str, iface: &Interface) -> Option<KindSpec> {
        iface.kind.with_dropped_reset(self.prior.kind(node, &iface.name)?)
    }

    /// The MTU the kernel gives a fresh device of this kind, with the devices it depends on as
    /// this plan leaves them: 1500 for veth, tun/tap, bond..., 65536 for `lo`; a bridge takes
    /// its smallest port's (the kernel sizes it so whenever a port joins or leaves; 1500
    /// without ports); macvlan, ipvlan and VLAN take their lower device's; a VXLAN its underlay
    /// device's minus its headers (50 bytes over IPv4, 70 over IPv6; 1500 without `dev`).
    /// `None` where vnet does not size the device (OVS) or cannot tell.
    pub(super) fn default_mtu(&self, node: &str, iface: &Interface, depth: u16) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match &iface.kind {
            KindSpec::Loopback(_) => LOOPBACK_MTU,
            KindSpec::Bridge(_) => {
                let mut min: Option<u32> = None;
                for p in self.lab.node(node)?.interfaces.values().filter(|p| p.master.as_deref() == Some(iface.name.as_str())) {
                    let m = self.mtu_after(node, p, depth + 1)?;
                    min = Some(min.map_or(m, |x| x.min(m)));
                }
                min.unwrap_or(ETH_DATA_LEN)
            }
            KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Ipvlan(_) | KindSpec::Vlan(_) => self.lower_mtu(node, iface, depth)?,
            KindSpec::Vxlan(v) if v.dev.is_some() => {
                let v6 = [v.remote_ip(), v.group_ip(), v.local_ip()].iter().flatten().any(|a| a.is_ipv6());
                self.lower_mtu(node, iface, depth)?.saturating_sub(if v6 { VXLAN6_OVERHEAD } else { VXLAN_OVERHEAD })
            }
            KindSpec::OvsBridge(_) | KindSpec::OvsInternal(_) => return None,
            _ => ETH_DATA_LEN,
        })
    }

    /// The MTU of a device's lower device once this plan is applied (a device the lab does not
    /// declare, such as the host's own, as observed).
    fn lower_mtu(&self, node: &str, iface: &Interface, depth: u16) -> Option<u32> {
        let ep = iface.kind.lower_endpoint(node)?;
        match self.lab.interface(&ep) {
            Some(lower) => self.mtu_after(&ep.node, lower, depth + 1),
            None => self.ns(&ep.node).link(&ep.ifname).map(|l| l.mtu),
        }
    }

    /// The MTU a lab device has once this plan is applied: the declared one, else the default
    /// (a device to create, or one whose MTU is reset), else what the kernel holds now.
    fn mtu_after(&self, node: &str, iface: &Interface, depth: u16) -> Option<u32> {
        if let Some(m) = iface.mtu {
            return Some(m);
        }
        match self.ns(node).link(&iface.name) {
            Some(have) if self.prior.mtu(node, &iface.name).is_none() => Some(have.mtu),
            _ => self.default_mtu(node, iface, depth),
        }
    }
}
