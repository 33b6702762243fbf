//! The picture of a running lab as the kernel has it: its namespaces' devices, addresses,
//! veth pairs, bridge ports, lower devices and VXLAN networks as read back, with what the file
//! declares but the kernel lacks drawn as missing, and devices no one declared in the lab's
//! namespaces drawn as such. Pure: built from a `LabView` already read.

use std::collections::BTreeMap;

use super::ir::{Dev, DevState, Edge, EdgeKind, End, GNode, Graph};
use crate::inspect::view::{KindDetails, LabView};
use crate::model::{Interface, Lab};
use crate::observed::ObservedLink;

/// `root`: the node that is the machine's root namespace (a non-isolated `host`), where only
/// the lab's declared devices are drawn.
pub fn from_view(lab: &Lab, view: &LabView, root: Option<&str>) -> Graph {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut tunnels: BTreeMap<u32, Vec<End>> = BTreeMap::new();
    for (nname, node) in &lab.nodes {
        let declared = |name: &str| node.interfaces.contains_key(name);
        let Some(v) = view.nodes.get(nname) else {
            // The namespace is gone: everything declared is missing.
            let devices = node.interfaces.values().filter(|i| i.name != "lo" || !i.addresses.is_empty()).map(missing).collect();
            nodes.push(GNode { name: format!("{nname} (namespace missing)"), devices });
            continue;
        };
        let shown = |l: &ObservedLink| root != Some(nname.as_str()) || declared(&l.name);
        let mut devices = Vec::new();
        for l in v.ns.links.iter().filter(|l| shown(l)) {
            let addresses: Vec<String> = v.ns.addrs.iter().filter(|a| a.ifindex == l.ifindex && !a.automatic).map(|a| a.addr.to_string()).collect();
            let is_lo = l.name == "lo";
            if is_lo && addresses.iter().all(|a| a.starts_with("127.") || a == "::1/128") {
                continue;
            }
            devices.push(Dev {
                name: l.name.clone(),
                kind: kind_of(l),
                addresses,
                up: l.up,
                // As a file's picture shows it: when declared, or when not the usual 1500.
                mtu: Some(l.mtu).filter(|m| *m != 1500 || node.interfaces.get(&l.name).is_some_and(|i| i.mtu.is_some())),
                state: if declared(&l.name) { DevState::Declared } else { DevState::Undeclared },
            });
            let me = (nname.clone(), l.name.clone());
            if let Some(m) = l.master.and_then(|i| v.ns.link_by_index(i)) {
                edges.push(Edge { from: me.clone(), to: (nname.clone(), m.name.clone()), kind: EdgeKind::Port });
            }
            if let KindDetails::Vxlan { vni, .. } = view.details(nname, l.ifindex) {
                tunnels.entry(*vni).or_default().push(me.clone());
            }
            let Some((other, idx)) = view.linked(nname, l) else { continue };
            let Some(target) = view.link(other, idx) else { continue };
            let them = (other.to_string(), target.name.clone());
            if l.kind.as_deref() == Some("veth") {
                // Each pair once.
                if me < them {
                    edges.push(Edge { from: me, to: them, kind: EdgeKind::Veth });
                }
            } else {
                edges.push(Edge { from: me, to: them, kind: EdgeKind::Lower });
            }
        }
        devices.extend(node.interfaces.values().filter(|i| i.name != "lo" && v.ns.link(&i.name).is_none()).map(missing));
        nodes.push(GNode { name: nname.clone(), devices });
    }
    for (vni, ends) in tunnels {
        for (i, a) in ends.iter().enumerate() {
            for b in ends.iter().skip(i + 1).filter(|b| b.0 != a.0) {
                edges.push(Edge { from: a.clone(), to: b.clone(), kind: EdgeKind::Tunnel { vni } });
            }
        }
    }
    // Edges only between devices drawn (a lower device outside the lab is not).
    let drawn = |e: &End| nodes.iter().any(|n| n.name == e.0 && n.devices.iter().any(|d| d.name == e.1));
    edges.retain(|e| drawn(&e.from) && drawn(&e.to));
    Graph { name: lab.name.clone(), nodes, edges }
}

/// A declared device the kernel lacks, as the file declares it.
fn missing(i: &Interface) -> Dev {
    Dev {
        name: i.name.clone(),
        kind: i.kind.name().to_string(),
        addresses: i.addresses.iter().map(|a| a.to_string()).collect(),
        up: i.up,
        mtu: i.mtu,
        state: DevState::Missing,
    }
}

/// The model's name for an observed kind (`loopback` for lo, `device` for one without a kind).
fn kind_of(l: &ObservedLink) -> String {
    if let Some(spec) = &l.spec {
        return spec.name().to_string();
    }
    match l.kind.as_deref() {
        Some(k) => k.to_string(),
        None if l.name == "lo" => "loopback".into(),
        None => "device".into(),
    }
}
