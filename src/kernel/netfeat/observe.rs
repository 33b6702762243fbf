//! Observing the lab's features in its namespaces: the nftables table, root qdiscs, BPF
//! programs and xfrm objects. Only nodes that declare a feature, or where the lab record says
//! vnet put one, are looked at, so labs without these features pay nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::kernel::handle::{self, NsHandle};
use crate::model::lab::Lab;
use crate::observed::netfeat::NsFeatures;
use crate::observed::{NsState, Observed};
use crate::state::LabState;

use super::rawnl::RawNl;
use super::{bpf, nft, tc, xfrm};

/// What to look at in one node.
#[derive(Clone, Debug, Default)]
struct Wants {
    nft: bool,
    qdiscs: bool,
    bpf_devs: Vec<String>,
    xfrm: bool,
}

impl Wants {
    fn any(&self) -> bool {
        self.nft || self.qdiscs || !self.bpf_devs.is_empty() || self.xfrm
    }
}

/// Fills `features` of every observed namespace that needs it.
pub fn observe(lab: &Lab, state: Option<&LabState>, handles: &mut BTreeMap<String, NsHandle>, observed: &mut Observed) -> Result<(), String> {
    let rec = state.map(|s| s.netfeat.clone()).unwrap_or_default();
    let xfrm_nodes: Vec<&str> = lab.ipsec.iter().flat_map(|t| t.ends.iter().map(|e| e.node.as_str())).collect();
    let mut wants: BTreeMap<String, Wants> = BTreeMap::new();
    let mut hashes: BTreeMap<String, BTreeMap<PathBuf, Result<String, String>>> = BTreeMap::new();
    for (name, node) in &lab.nodes {
        let f = &node.features;
        let mut bpf_devs: Vec<String> = f.bpf.iter().map(|b| b.dev.clone()).collect();
        bpf_devs.extend(rec.bpf.get(name).into_iter().flatten().map(|r| r.dev.clone()));
        bpf_devs.retain(|d| node.interfaces.contains_key(d));
        bpf_devs.sort();
        bpf_devs.dedup();
        let w = Wants {
            nft: f.nft.is_some() || rec.nft.contains(name),
            qdiscs: !f.tc.is_empty() || rec.qdiscs.contains_key(name),
            bpf_devs,
            xfrm: xfrm_nodes.contains(&name.as_str()) || rec.xfrm.contains(name),
        };
        if w.any() {
            wants.insert(name.clone(), w);
        }
        let hs: BTreeMap<PathBuf, Result<String, String>> = f.bpf.iter().map(|b| (b.object.clone(), bpf::object_hash(&b.object))).collect();
        if !hs.is_empty() {
            hashes.insert(name.clone(), hs);
        }
    }
    if wants.is_empty() && hashes.is_empty() {
        return Ok(());
    }
    let table = nft::table_name(&lab.name);
    let names: BTreeMap<String, BTreeMap<u32, String>> =
        observed.nodes.iter().filter_map(|(n, s)| s.ns().map(|ns| (n.clone(), ns.links.iter().map(|l| (l.ifindex, l.name.clone())).collect()))).collect();
    let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| wants.contains_key(&h.node)).collect();
    let results = handle::par_each_in(&mut hs, |h| {
        let w = &wants[&h.node];
        let ifnames = names.get(&h.node).cloned().unwrap_or_default();
        (h.node.clone(), observe_node(w, &table, &ifnames))
    });
    for (node, r) in results {
        let f = r.map_err(|e| format!("observe node {node}: {e}"))?;
        if let Some(NsState::Owned(ns) | NsState::Root(ns)) = observed.nodes.get_mut(&node) {
            ns.features = f;
        }
    }
    for (node, h) in hashes {
        if let Some(NsState::Owned(ns) | NsState::Root(ns)) = observed.nodes.get_mut(&node) {
            ns.features.object_hashes = h;
        }
    }
    Ok(())
}

/// Root qdiscs of every device in every namespace with a handle (one dump per namespace, so
/// qdiscs nobody declared show too) and the BPF programs on the devices in `bpf_devs` (node ->
/// devices): what `status` compares with the lab's declared traffic control.
pub fn observe_tc(handles: &mut BTreeMap<String, NsHandle>, observed: &mut Observed, bpf_devs: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let names: BTreeMap<String, BTreeMap<u32, String>> =
        observed.nodes.iter().filter_map(|(n, s)| s.ns().map(|ns| (n.clone(), ns.links.iter().map(|l| (l.ifindex, l.name.clone())).collect()))).collect();
    let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| names.contains_key(&h.node)).collect();
    let results = handle::par_each_in(&mut hs, |h| {
        let w = Wants { qdiscs: true, bpf_devs: bpf_devs.get(&h.node).cloned().unwrap_or_default(), ..Default::default() };
        (h.node.clone(), observe_node(&w, "", &names[&h.node]))
    });
    for (node, r) in results {
        let f = r.map_err(|e| format!("observe node {node}: {e}"))?;
        if let Some(NsState::Owned(ns) | NsState::Root(ns)) = observed.nodes.get_mut(&node) {
            ns.features.qdiscs = f.qdiscs;
            ns.features.bpf = f.bpf;
        }
    }
    Ok(())
}

fn observe_node(w: &Wants, table: &str, ifnames: &BTreeMap<u32, String>) -> Result<NsFeatures, String> {
    let mut f = NsFeatures::new();
    if w.nft {
        f.nft = nft::observe(table)?;
    }
    if w.qdiscs || !w.bpf_devs.is_empty() {
        let mut nl = RawNl::open(netlink_sys::protocols::NETLINK_ROUTE).map_err(|e| e.to_string())?;
        if w.qdiscs {
            for (ifindex, q) in tc::dump_roots(&mut nl).map_err(|e| format!("list qdiscs: {e}"))? {
                if let Some(n) = ifnames.get(&ifindex) {
                    f.qdiscs.insert(n.clone(), q);
                }
            }
        }
        if !w.bpf_devs.is_empty() {
            let devs: Vec<(String, u32)> = w.bpf_devs.iter().filter_map(|d| ifnames.iter().find(|(_, n)| *n == d).map(|(i, n)| (n.clone(), *i))).collect();
            f.bpf = bpf::observe(&mut nl, &devs).map_err(|e| format!("list BPF programs: {e}"))?;
        }
    }
    if w.xfrm {
        let mut nl = RawNl::open(xfrm::NETLINK_XFRM).map_err(|e| e.to_string())?;
        f.xfrm_states = xfrm::dump_states(&mut nl).map_err(|e| format!("list xfrm states: {e}"))?;
        f.xfrm_policies = xfrm::dump_policies(&mut nl).map_err(|e| format!("list xfrm policies: {e}"))?;
    }
    Ok(f)
}
