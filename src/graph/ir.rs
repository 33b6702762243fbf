//! What a picture of a lab shows, independent of the output format: nodes holding their
//! devices, and the relations between devices (veth links, bridge ports, children of a lower
//! device, tunnels). Built from the model. Pure.
//!
//! Kind-specific options are read generically from the kind's serialized form (`lower` / `link`
//! / `parent` / `dev` name the lower device, `vni` / `id` a VXLAN's network id), so device kinds
//! added to the model later appear without changes here.

use serde_json::Value;

use crate::model::Lab;

/// One device of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dev {
    pub name: String,
    pub kind: String,
    pub addresses: Vec<String>,
    pub up: bool,
    pub mtu: Option<u32>,
    pub state: DevState,
}

/// How a device drawn from the kernel stands against the lab's file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DevState {
    /// Declared (and, drawn from the kernel, present).
    #[default]
    Declared,
    /// Declared, but the kernel has no such device.
    Missing,
    /// In a lab namespace, but not declared.
    Undeclared,
}

/// A node (namespace) and its devices, in declaration order (`lo` left out unless it has addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GNode {
    pub name: String,
    pub devices: Vec<Dev>,
}

/// `node`, `device`.
pub type End = (String, String);

/// How two devices are related.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// A veth pair (drawn as a cable).
    Veth,
    /// `from` is a port of bridge `to` (same node).
    Port,
    /// `from` (macvlan, ipvlan, vlan, ...) is a child of lower device `to`.
    Lower,
    /// VXLAN devices with the same VNI (drawn dashed, labelled).
    Tunnel { vni: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: End,
    pub to: End,
    pub kind: EdgeKind,
}

/// A whole picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<GNode>,
    pub edges: Vec<Edge>,
}

impl Graph {
    pub fn device(&self, e: &End) -> Option<&Dev> {
        self.nodes.iter().find(|n| n.name == e.0)?.devices.iter().find(|d| d.name == e.1)
    }
}

/// The lower device named in a kind's options: `dev`, `node:dev`, or none.
pub(super) fn lower_of(node: &str, opts: &Value) -> Option<End> {
    for key in ["lower", "link", "parent", "dev", "device"] {
        if let Some(s) = opts.get(key).and_then(Value::as_str) {
            return Some(match s.split_once(':') {
                Some((n, d)) => (n.to_string(), d.to_string()),
                None => (node.to_string(), s.to_string()),
            });
        }
    }
    None
}

pub(super) fn vni_of(opts: &Value) -> Option<u32> {
    ["vni", "id"].iter().find_map(|k| opts.get(*k).and_then(Value::as_u64)).map(|v| v as u32)
}

/// Builds the picture of a validated lab.
pub fn from_lab(lab: &Lab) -> Graph {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut tunnels: Vec<(u32, End)> = Vec::new();
    for (nname, node) in &lab.nodes {
        let mut devices = Vec::new();
        for (ifname, i) in &node.interfaces {
            if ifname == "lo" && i.addresses.is_empty() {
                continue;
            }
            let opts = serde_json::to_value(&i.kind).unwrap_or(Value::Null);
            let kind = i.kind.name().to_string();
            devices.push(Dev {
                name: ifname.clone(),
                kind: kind.clone(),
                addresses: i.addresses.iter().map(|a| a.to_string()).collect(),
                up: i.up,
                mtu: i.mtu,
                state: DevState::Declared,
            });
            let me = (nname.clone(), ifname.clone());
            if let Some(p) = &i.peer {
                // Each pair once.
                if (nname.as_str(), ifname.as_str()) < (p.node.as_str(), p.ifname.as_str()) {
                    edges.push(Edge { from: me.clone(), to: (p.node.clone(), p.ifname.clone()), kind: EdgeKind::Veth });
                }
            }
            if let Some(m) = &i.master {
                edges.push(Edge { from: me.clone(), to: (nname.clone(), m.clone()), kind: EdgeKind::Port });
            }
            if kind == "vxlan" {
                if let Some(v) = vni_of(&opts) {
                    tunnels.push((v, me.clone()));
                }
            }
            if kind != "veth" && kind != "bridge" && kind != "loopback" {
                if let Some(l) = lower_of(nname, &opts) {
                    edges.push(Edge { from: me, to: l, kind: EdgeKind::Lower });
                }
            }
        }
        nodes.push(GNode { name: nname.clone(), devices });
    }
    for (i, (v, a)) in tunnels.iter().enumerate() {
        for (w, b) in tunnels.iter().skip(i + 1) {
            if v == w && a.0 != b.0 {
                edges.push(Edge { from: a.clone(), to: b.clone(), kind: EdgeKind::Tunnel { vni: *v } });
            }
        }
    }
    Graph { name: lab.name.clone(), nodes, edges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_str, Format};

    #[test]
    fn veth_pairs_once_ports_and_addresses() {
        let l = load_str("b.yaml", &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bridge.yaml")).unwrap(), Format::Yaml).unwrap().lab;
        let g = from_lab(&l);
        assert_eq!(g.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["host", "ns1", "ns2"]);
        let host = &g.nodes[0];
        assert_eq!(host.devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["br1", "veth1", "veth2"], "lo without addresses is left out");
        assert_eq!(host.devices[0].addresses, ["192.168.1.10/24"]);
        let veths: Vec<_> = g.edges.iter().filter(|e| e.kind == EdgeKind::Veth).collect();
        assert_eq!(veths.len(), 2, "each pair once");
        let ports: Vec<_> = g.edges.iter().filter(|e| e.kind == EdgeKind::Port).map(|e| e.from.1.as_str()).collect();
        assert_eq!(ports, ["veth1", "veth2"]);
    }

    #[test]
    fn generic_kind_options_give_lower_devices_and_vnis() {
        let v = serde_json::json!({"kind": "macvlan", "lower": "eth0", "mode": "bridge"});
        assert_eq!(lower_of("h", &v), Some(("h".into(), "eth0".into())));
        let v = serde_json::json!({"kind": "macvlan", "link": "host:eth1"});
        assert_eq!(lower_of("m1", &v), Some(("host".into(), "eth1".into())));
        assert_eq!(vni_of(&serde_json::json!({"kind": "vxlan", "vni": 42})), Some(42));
        assert_eq!(vni_of(&serde_json::json!({"kind": "vlan", "mode": 3})), None);
    }
}
