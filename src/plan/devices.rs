//! Planning for stacked and special devices: creation levels (lower devices and masters
//! before the devices on them, across nodes), and the per-device operations that are not link
//! options (bridge port VLANs and static fdb entries, VXLAN remote entries, a bond's primary
//! port, starting teamd for a team).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::{stage, Op, Planner};
use crate::model::anchor;
use crate::model::kind::KindSpec;
use crate::model::lab::{format_mac, parse_mac, Interface, Lab};

/// An operation on one device beyond creating and changing it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum DeviceOp {
    /// VLAN membership of a bridge port (or of the bridge itself: `self_`).
    BridgeVlans {
        bridge: String,
        add: Vec<PortVlan>,
        del: Vec<u16>,
        #[serde(rename = "self")]
        self_: bool,
    },
    /// A static entry in a bridge's forwarding database, on the port it points to.
    BridgeFdb {
        bridge: String,
        #[serde(serialize_with = "ser_mac")]
        mac: [u8; 6],
        vlan: Option<u16>,
    },
    /// A VXLAN remote: frames for `mac` (all zeros: flooding) go to `dst`.
    VxlanFdb {
        #[serde(serialize_with = "ser_mac")]
        mac: [u8; 6],
        dst: IpAddr,
    },
    /// The preferred active port of a bond (set once the port is enslaved).
    BondPrimary { port: String },
    /// Start teamd for a team device, with this JSON configuration.
    StartTeamd { config: String },
}

/// One VLAN of a bridge port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PortVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

fn ser_mac<S: serde::Serializer>(m: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_mac(m))
}

impl std::fmt::Display for DeviceOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceOp::BridgeVlans { bridge, add, del, .. } => {
                write!(f, "vlans on {bridge}:")?;
                for v in add {
                    write!(f, " +{}{}{}", v.vid, if v.pvid { " pvid" } else { "" }, if v.untagged { " untagged" } else { "" })?;
                }
                for v in del {
                    write!(f, " -{v}")?;
                }
                Ok(())
            }
            DeviceOp::BridgeFdb { bridge, mac, vlan } => {
                write!(f, "fdb {} master {bridge}", format_mac(mac))?;
                if let Some(v) = vlan {
                    write!(f, " vlan {v}")?;
                }
                Ok(())
            }
            DeviceOp::VxlanFdb { mac, dst } => write!(f, "fdb {} dst {dst}", format_mac(mac)),
            DeviceOp::BondPrimary { port } => write!(f, "primary {port}"),
            DeviceOp::StartTeamd { config } => write!(f, "teamd {config}"),
        }
    }
}

/// Creation level per (node, device), keyed by the lab's own strings: a big lab looks up
/// thousands of devices, and owned keys cost an allocation each.
pub(super) type Levels<'a> = HashMap<(&'a str, &'a str), u16>;

/// Creation level of every device: one more than the highest of its master, its lower device
/// and (for a veth end) whatever its peer needs, since a pair is created at once.
pub(super) fn levels(lab: &Lab) -> Levels<'_> {
    let mut memo = HashMap::with_capacity(lab.nodes.values().map(|n| n.interfaces.len()).sum());
    for (n, node) in &lab.nodes {
        for i in node.interfaces.keys().chain(node.anchors.keys()) {
            level(lab, (n, i), &mut memo, 0);
        }
    }
    memo
}

const MAX_LEVEL: u16 = 16;

/// The device `node:ifname` with its key borrowed from the lab (None: not the lab's).
fn lookup<'a>(lab: &'a Lab, node: &str, ifname: &str) -> Option<((&'a str, &'a str), &'a Interface)> {
    let (n, spec) = lab.nodes.get_key_value(node)?;
    let (i, iface) = spec.interfaces.get_key_value(ifname).or_else(|| spec.anchors.get_key_value(ifname))?;
    Some(((n.as_str(), i.as_str()), iface))
}

fn level<'a>(lab: &'a Lab, key: (&'a str, &'a str), memo: &mut Levels<'a>, depth: u16) -> u16 {
    if let Some(l) = memo.get(&key) {
        return *l;
    }
    if depth > MAX_LEVEL {
        return MAX_LEVEL;
    }
    let Some((_, iface)) = lookup(lab, key.0, key.1) else { return 0 };
    let mut l = base(lab, key.0, iface, memo, depth);
    if let (KindSpec::Veth(_), Some(peer)) = (&iface.kind, &iface.peer) {
        if let Some(((pnode, _), pi)) = lookup(lab, &peer.node, &peer.ifname) {
            l = l.max(base(lab, pnode, pi, memo, depth));
        }
    }
    let l = l.min(MAX_LEVEL);
    memo.insert(key, l);
    l
}

/// What one end (`iface` in `node`) needs by itself: to come after its master and its lower
/// device.
fn base<'a>(lab: &'a Lab, node: &'a str, iface: &'a Interface, memo: &mut Levels<'a>, depth: u16) -> u16 {
    let mut l = 0;
    if let Some((mkey, mi)) = iface.master.as_deref().and_then(|m| lookup(lab, node, m)) {
        // teamd starts between a team's creation and its ports' (it sets the team's mode,
        // which the kernel refuses while ports are present); a bridge's anchor joins before
        // its other ports (`model::anchor`).
        let anchored = || !anchor::is_anchor(&iface.name) && lab.nodes[node].anchors.values().any(|a| a.master.as_deref() == Some(mkey.1));
        let gap = if matches!(mi.kind, KindSpec::Team(_)) || anchored() { 2 } else { 1 };
        l = l.max(level(lab, mkey, memo, depth + 1) + gap);
    }
    if let Some(lower) = iface.kind.lower_endpoint(node) {
        if let Some((lkey, _)) = lookup(lab, &lower.node, &lower.ifname) {
            l = l.max(level(lab, lkey, memo, depth + 1) + 1);
        }
    }
    l
}

impl Planner<'_> {
    /// Whether this plan creates (or re-creates) the device.
    fn creates(&self, node: &str, ifname: &str) -> bool {
        self.steps.iter().any(|s| match &s.op {
            Op::CreateLink(c) => c.node == node && c.ifname == ifname,
            _ => false,
        }) || self.steps.iter().any(|s| match &s.op {
            Op::CreateLink(c) => c.peer.as_ref().is_some_and(|p| p.node == node && p.ifname == ifname),
            _ => false,
        })
    }

    fn device_op(&mut self, st: u16, node: &str, ifname: &str, op: DeviceOp) {
        self.push(st, Op::Device { node: node.into(), ifname: ifname.into(), device_op: op });
    }

    /// Operations that follow a device's creation. The kernel does not report bridge VLANs,
    /// fdb entries or the team runner in a link dump, so they are planned with the device they
    /// belong to: a running lab keeps them until the device is re-created.
    pub(super) fn device_extras(&mut self) {
        let lab = self.lab;
        for (nname, node) in &lab.nodes {
            for iface in node.interfaces.values() {
                match &iface.kind {
                    KindSpec::Bridge(b) => {
                        for (port, list) in &b.vlans {
                            if !self.creates(nname, port) && !self.creates(nname, &iface.name) {
                                continue;
                            }
                            let add: Vec<PortVlan> = list
                                .iter()
                                .map(|v| {
                                    let (vid, pvid, untagged) = v.parts();
                                    PortVlan { vid, pvid, untagged }
                                })
                                .collect();
                            // Leave the default VLAN 1 unless the list keeps it.
                            let del = if add.iter().any(|v| v.vid == 1) { Vec::new() } else { vec![1] };
                            let op = DeviceOp::BridgeVlans { bridge: iface.name.clone(), add, del, self_: port == &iface.name };
                            self.device_op(stage::PORT, nname, port, op);
                        }
                        for e in &b.fdb {
                            if !self.creates(nname, &e.port) && !self.creates(nname, &iface.name) {
                                continue;
                            }
                            let Ok(mac) = parse_mac(&e.mac) else { continue };
                            let op = DeviceOp::BridgeFdb { bridge: iface.name.clone(), mac, vlan: e.vlan };
                            self.device_op(stage::PORT + 1, nname, &e.port, op);
                        }
                    }
                    KindSpec::Vxlan(v) if self.creates(nname, &iface.name) => {
                        for (mac, dst) in v.fdb_entries() {
                            self.device_op(stage::PORT, nname, &iface.name, DeviceOp::VxlanFdb { mac, dst });
                        }
                    }
                    KindSpec::Bond(b) => {
                        if let Some(p) = &b.primary {
                            if self.creates(nname, &iface.name) || self.creates(nname, p) {
                                self.device_op(stage::PORT, nname, &iface.name, DeviceOp::BondPrimary { port: p.clone() });
                            }
                        }
                    }
                    KindSpec::Team(t) if self.creates(nname, &iface.name) => {
                        let config = t.teamd_config(&iface.name);
                        let level = self.level(nname, &iface.name);
                        self.device_op(stage::CREATE + level + 1, nname, &iface.name, DeviceOp::StartTeamd { config });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Whether `master` (in `node`) is a team.
    pub(super) fn joins_team(&self, node: &str, master: Option<&String>) -> bool {
        master.and_then(|m| self.lab.node(node)?.interfaces.get(m)).is_some_and(|m| matches!(m.kind, KindSpec::Team(_)))
    }

    /// Whether `master` (in `node`) only takes ports that are down (bond, team).
    pub(super) fn joins_down(&self, node: &str, master: Option<&String>) -> bool {
        master.and_then(|m| self.lab.node(node)?.interfaces.get(m)).is_some_and(|m| m.kind.ports_join_down())
    }

    /// Whether a port of `master` keeps no IPv6 of its own (`CreateLink::no_ipv6`): in a lab
    /// without link-local addresses, a port of a Linux bridge in one of the lab's namespaces
    /// (a root namespace's sysctls are not vnet's to change) whose `disable_ipv6` the file
    /// does not set. It still forwards IPv6 frames: that is the bridge's work, not the port's.
    pub(super) fn port_without_ipv6(&self, node: &str, ifname: &str, master: Option<&String>) -> bool {
        !self.lab.ipv6_link_local && self.port_ipv6_follows_lab(node, ifname, master)
    }

    /// Whether the lab's `ipv6` decides if this device has IPv6 at all: a Linux bridge's port
    /// in one of the lab's namespaces whose `disable_ipv6` the file does not set.
    pub(super) fn port_ipv6_follows_lab(&self, node: &str, ifname: &str, master: Option<&String>) -> bool {
        let Some(n) = self.lab.node(node) else { return false };
        let to_bridge = master.and_then(|m| n.interfaces.get(m)).is_some_and(|m| matches!(m.kind, KindSpec::Bridge(_)));
        to_bridge && self.ipv6_follows_lab(node, ifname)
    }

    /// Whether vnet may turn a device's IPv6 on or off: in one of the lab's namespaces, and the
    /// file sets neither the device's `disable_ipv6` nor its node's `all` or `default` one.
    pub(super) fn ipv6_follows_lab(&self, node: &str, ifname: &str) -> bool {
        let Some(n) = self.lab.node(node) else { return false };
        !self.is_root(node) && ![ifname, "all", "default"].iter().any(|d| n.sysctls.contains_key(&disable_ipv6_key(d)))
    }
}

/// The sysctl key of a device's `disable_ipv6`, as the file's `sysctls` spell it.
pub(super) fn disable_ipv6_key(ifname: &str) -> String {
    crate::model::validate::sysctl_key(&["net", "ipv6", "conf", ifname, "disable_ipv6"].map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_str, Format};

    fn lab(yaml: &str) -> Lab {
        match load_str("t.yaml", yaml, Format::Yaml) {
            Ok(l) => l.lab,
            Err(d) => panic!("{}", d.iter().map(|x| x.message.clone()).collect::<Vec<_>>().join("\n")),
        }
    }

    #[test]
    fn lowers_and_masters_come_first_across_nodes() {
        let l = lab(r#"
name: lv
nodes:
  host:
    interfaces:
      br0: { kind: bridge }
      eth0: { master: br0 }
  a:
    interfaces:
      mv0: { kind: macvlan, link: "host:eth0", mode: bridge }
      v10: { kind: vlan, link: mv0, id: 10 }
  b:
    interfaces:
      eth0: {}
links:
  - endpoints: [host:eth0, b:eth0]
"#);
        let lv = levels(&l);
        let get = |n: &str, i: &str| lv[&(n, i)];
        assert_eq!(get("host", "br0"), 0);
        assert_eq!(get("host", "eth0"), 1);
        assert_eq!(get("b", "eth0"), 1, "a veth pair is created at once, at the level its ends need");
        assert_eq!(get("a", "mv0"), 2);
        assert_eq!(get("a", "v10"), 3);
    }
}
