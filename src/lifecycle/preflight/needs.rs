//! What a plan needs from the kernel. This is the one place where operations and options are
//! mapped to kernel features: a branch that adds a device kind, a qdisc, an IPsec tunnel or a
//! kind option that needs more than its kind (a bridge's `vlan_filtering`) adds its arm here.

use crate::model::kind::KindSpec;
use crate::plan::ovs::OvsOp;
use crate::plan::{Op, Plan};

use super::feature::{Feature, Requirement};

/// Everything the plan's operations need, in plan order (duplicates are fine).
pub fn requirements(plan: &Plan) -> Vec<Requirement> {
    let mut out = Vec::new();
    for op in plan.ops() {
        op_needs(op, &mut out);
    }
    out
}

fn op_needs(op: &Op, out: &mut Vec<Requirement>) {
    match op {
        Op::CreateLink(c) => {
            if let Some(k) = c.kind.kernel_kind() {
                out.push(Requirement::device(Feature::Kind(k.to_string()), &c.node, &c.ifname));
            }
            for f in kind_option_needs(&c.kind) {
                out.push(Requirement::device(f, &c.node, &c.ifname));
            }
        }
        Op::SetKindOptions { node, ifname, kind } => {
            for f in kind_option_needs(kind) {
                out.push(Requirement::device(f, node, ifname));
            }
        }
        // An OVS bridge on the kernel datapath needs the openvswitch module.
        Op::Ovs { node, ovs_op: OvsOp::AddBridge { bridge } } if bridge.datapath == "system" => {
            out.push(Requirement::new(Feature::Openvswitch, format!("node {node}, OVS bridge {}", bridge.name)));
        }
        Op::Ovs { node, ovs_op: OvsOp::SetBridge { bridge, datapath: Some(d), .. } } if d == "system" => {
            out.push(Requirement::new(Feature::Openvswitch, format!("node {node}, OVS bridge {bridge}")));
        }
        _ => {}
    }
}

/// Features a kind's options need beyond the kind itself. Kinds add their arms here.
fn kind_option_needs(kind: &KindSpec) -> Vec<Feature> {
    match kind {
        KindSpec::Bridge(b) if b.vlan_filtering == Some(true) => vec![Feature::BridgeVlanFiltering],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, Format};
    use crate::observed::{NsState, Observed};

    #[test]
    fn a_new_lab_needs_its_device_kinds_per_device() {
        let text = "name: n\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n      eth0: { master: br0 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
        let loaded = model::load_str("n.yaml", text, Format::Yaml).unwrap();
        let observed = Observed { nodes: loaded.lab.nodes.keys().map(|n| (n.clone(), NsState::Absent)).collect(), ..Default::default() };
        let plan = crate::plan::plan(&loaded.lab, &observed, None).unwrap();
        let reqs: Vec<String> = requirements(&plan).iter().map(|r| format!("{} for {}", r.what, r.needed_by)).collect();
        assert!(reqs.contains(&"bridge for node a, device br0".to_string()), "{reqs:?}");
        assert!(reqs.iter().any(|r| r.starts_with("veth for node ")), "{reqs:?}");
        assert!(!reqs.iter().any(|r| r.starts_with("loopback")), "lo needs nothing: {reqs:?}");
        assert!(!reqs.iter().any(|r| r.starts_with("bridge-vlan-filtering")), "{reqs:?}");
    }

    #[test]
    fn options_beyond_the_kind_are_needed_too() {
        let text = "name: n\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, vlan_filtering: true }\n      d0: { kind: dummy }\n      i0: { kind: ipvlan, link: d0 }\n";
        let loaded = model::load_str("n.yaml", text, Format::Yaml).unwrap();
        let observed = Observed { nodes: loaded.lab.nodes.keys().map(|n| (n.clone(), NsState::Absent)).collect(), ..Default::default() };
        let plan = crate::plan::plan(&loaded.lab, &observed, None).unwrap();
        let reqs: Vec<String> = requirements(&plan).iter().map(|r| format!("{} for {}", r.what, r.needed_by)).collect();
        for want in
            ["bridge for node a, device br0", "bridge-vlan-filtering for node a, device br0", "dummy for node a, device d0", "ipvlan for node a, device i0"]
        {
            assert!(reqs.contains(&want.to_string()), "{want} missing from {reqs:?}");
        }
    }
}

#[cfg(test)]
mod ovs_tests {
    use super::*;
    use crate::model::{self, Format};
    use crate::observed::ovs::ObservedOvs;
    use crate::observed::{NsState, Observed};

    fn reqs(text: &str, kernel_datapath: bool) -> Vec<String> {
        let loaded = model::load_str("n.yaml", text, Format::Yaml).unwrap();
        let mut observed = Observed { nodes: loaded.lab.nodes.keys().map(|n| (n.clone(), NsState::Absent)).collect(), ..Default::default() };
        observed.ovs.insert("sw".into(), ObservedOvs { kernel_datapath, ..Default::default() });
        let plan = crate::plan::plan(&loaded.lab, &observed, None).unwrap();
        requirements(&plan).iter().map(|r| format!("{} for {}", r.what, r.needed_by)).collect()
    }

    #[test]
    fn the_kernel_datapath_needs_the_openvswitch_module() {
        let declared = "name: n\nnodes:\n  sw:\n    interfaces:\n      ovs0: { kind: ovs-bridge, datapath: system }\n";
        assert!(reqs(declared, false).contains(&"openvswitch for node sw, OVS bridge ovs0".to_string()));
        // Chosen automatically: system only where the kernel has it, so nothing is missing.
        let auto = "name: n\nnodes:\n  sw:\n    interfaces:\n      ovs0: { kind: ovs-bridge }\n";
        assert!(reqs(auto, true).contains(&"openvswitch for node sw, OVS bridge ovs0".to_string()));
        assert!(!reqs(auto, false).iter().any(|r| r.starts_with("openvswitch")));
        let netdev = "name: n\nnodes:\n  sw:\n    interfaces:\n      ovs0: { kind: ovs-bridge, datapath: netdev }\n";
        assert!(!reqs(netdev, true).iter().any(|r| r.starts_with("openvswitch")));
    }
}
