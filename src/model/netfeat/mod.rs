//! NAT, firewall, traffic control, BPF and IPsec: what a node (or a pair of nodes) declares
//! beside its devices. `spec` is the file form; this module holds the checked forms the planner
//! consumes, and the checks themselves (one file per feature), all located in the file.

pub mod bpf;
pub mod ipsec;
pub mod nat;
pub mod spec;
pub mod spec_decode;
pub mod tc;
pub mod units;

use std::net::IpAddr;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Serialize;

pub use bpf::BpfAttach;
pub use ipsec::{Crypto, KeySource, Tunnel, TunnelEnd};
pub use nat::{Dnat, FwRule, NftSpec, Snat};
pub use tc::Impairment;

use super::file::{NodeSpec, Topology};
use super::lab::Node;
use super::source::Path;
use super::validate::Ctx;

/// What a node declares beside devices, routes and sysctls.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeFeatures {
    /// NAT and firewall: the lab's nftables table in this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nft: Option<NftSpec>,
    /// Traffic control per device.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub tc: IndexMap<String, Impairment>,
    /// BPF programs attached to devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bpf: Vec<BpfAttach>,
}

impl NodeFeatures {
    pub fn is_empty(&self) -> bool {
        self.nft.is_none() && self.tc.is_empty() && self.bpf.is_empty()
    }
}

/// The sysctl NAT needs; vnet sets it unless the file sets it itself.
pub const IP_FORWARD: &str = "net.ipv4.ip_forward";

/// Checks the feature sections of every node; `nodes` already hold their interfaces, routes
/// and sysctls. Adds `net.ipv4.ip_forward = 1` to nodes doing NAT that do not set it.
pub(crate) fn check_nodes(ctx: &mut Ctx, topo: &Topology, nodes: &mut IndexMap<String, Node>) {
    let addrs = node_addresses(nodes);
    let base_dir = base_dir(ctx);
    for (nname, spec) in &topo.nodes {
        let Some(node) = nodes.get(nname) else { continue };
        let f = check_node(ctx, nname, spec, node, &addrs, &base_dir);
        if let Some(node) = nodes.get_mut(nname) {
            if f.nft.as_ref().map(|n| n.needs_forwarding()).unwrap_or(false) {
                match node.sysctls.get(IP_FORWARD) {
                    None => {
                        node.sysctls.insert(IP_FORWARD.to_string(), "1".to_string());
                    }
                    Some(v) if v.trim() == "0" => {
                        let p = ctx.sub(&ctx.sub(&ctx.node_path(nname), "sysctls"), IP_FORWARD);
                        ctx.warn_at(
                            &p,
                            format!("node `{nname}` does NAT but sets {IP_FORWARD} = 0: translated packets will not be forwarded"),
                            "forwarding off",
                        );
                    }
                    Some(_) => {}
                }
            }
            node.features = f;
        }
    }
}

fn check_node(ctx: &mut Ctx, nname: &str, spec: &NodeSpec, node: &Node, addrs: &IndexMap<String, Vec<IpNet>>, base_dir: &std::path::Path) -> NodeFeatures {
    let np = ctx.node_path(nname);
    let nft = nat::check(ctx, nname, spec.nat.as_ref(), spec.firewall.as_ref(), node, addrs, &np);
    let tc = tc::check_map(ctx, nname, &spec.tc, node, &ctx.sub(&np, "tc"));
    let bpf = bpf::check_list(ctx, nname, &spec.bpf, node, &ctx.sub(&np, "bpf"), base_dir);
    NodeFeatures { nft, tc, bpf }
}

/// Every node's addresses (for rules and forwards that name nodes).
fn node_addresses(nodes: &IndexMap<String, Node>) -> IndexMap<String, Vec<IpNet>> {
    nodes
        .iter()
        .map(|(n, node)| {
            let list = node.interfaces.values().filter(|i| i.name != "lo").flat_map(|i| i.addresses.iter().copied()).collect();
            (n.clone(), list)
        })
        .collect()
}

/// Relative object paths are relative to the topology file's directory (or the working
/// directory for topologies built in code); made absolute so the lab record names one file
/// whatever directory later commands run from.
fn base_dir(ctx: &Ctx) -> std::path::PathBuf {
    let name = &ctx.doc().source.name;
    let dir = if name.starts_with('<') {
        std::path::PathBuf::from(".")
    } else {
        std::path::Path::new(name)
            .parent()
            .map(|p| if p.as_os_str().is_empty() { std::path::PathBuf::from(".") } else { p.to_path_buf() })
            .unwrap_or_else(|| ".".into())
    };
    std::path::absolute(&dir).map(|d| normalize(&d)).unwrap_or(dir)
}

/// Drops `.` components (no filesystem access).
fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// A source or destination as written: a node name (its addresses), a prefix or an address.
pub(crate) fn resolve_target(ctx: &mut Ctx, raw: &str, path: &Path, addrs: &IndexMap<String, Vec<IpNet>>) -> Option<Vec<IpNet>> {
    let s = raw.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            ctx.error_at(path, format!("`{s}` has host bits set; did you mean `{}`?", net.trunc()), "host bits set");
            return None;
        }
        return Some(vec![net]);
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(vec![IpNet::from(a)]);
    }
    match addrs.get(s) {
        Some(list) if list.is_empty() => {
            ctx.error_at(path, format!("node `{s}` has no addresses to match on"), "node without addresses");
            None
        }
        Some(list) => Some(list.iter().map(|a| IpNet::from(a.addr())).collect()),
        None if ctx.failed_node(s) => None,
        None => {
            // `10.0.0.0/33` is a bad prefix, not an unknown node.
            if let Some((msg, label)) = crate::model::validate::address_like_problem(s) {
                ctx.error_at(path, msg, label);
                return None;
            }
            ctx.error_at(path, format!("`{s}` is neither a node, a prefix nor an address"), "unknown node");
            let names: Vec<&String> = addrs.keys().collect();
            if let Some(best) = names.iter().find(|n| close(s, n)) {
                if let Some(d) = ctx.diags.last_mut() {
                    d.help = Some(format!("did you mean `{best}`?"));
                }
            }
            None
        }
    }
}

fn close(a: &str, b: &str) -> bool {
    crate::model::validate::edit_distance(a, b) <= 2
}

/// An error when `dev` is not a device of the node.
pub(crate) fn check_dev(ctx: &mut Ctx, nname: &str, dev: &str, node: &Node, path: &Path) -> bool {
    if node.interfaces.contains_key(dev) {
        return true;
    }
    if ctx.failed_iface(nname, dev) {
        return false;
    }
    ctx.error_at(path, format!("unknown device `{dev}` in node `{nname}`"), format!("no device `{dev}` in node `{nname}`"));
    if let Some(best) = node.interfaces.keys().find(|n| close(dev, n)) {
        if let Some(d) = ctx.diags.last_mut() {
            d.help = Some(format!("did you mean `{best}`?"));
        }
    }
    false
}

#[cfg(test)]
mod tests;
