//! The lab record's side of NAT tables, qdiscs, BPF and IPsec: keys generated before planning,
//! what vnet is about to put where (written before it is created), program ids learned after
//! attaching, and the root namespace's table at `down`.

use std::collections::BTreeMap;

use crate::apply::netfeat::attached_ids;
use crate::kernel::handle::NsHandle;
use crate::model::lab::{Lab, HOST};
use crate::observed::{NsState, Observed};
use crate::plan::{FeatureOp, Op, Plan};
use crate::state::netfeat::BpfRecord;
use crate::state::LabState;

/// The record to plan with: the lab's record (or a new one) holding every IPsec key the lab
/// needs, generating the missing ones. `None` when there is no record and nothing to keep.
pub fn with_keys(lab: &Lab, prior: Option<&LabState>) -> std::io::Result<Option<LabState>> {
    let base = prior.map(|p| p.netfeat.clone()).unwrap_or_default();
    let missing = crate::plan::missing_keys(lab, &base);
    if missing.is_empty() {
        return Ok(prior.cloned());
    }
    let mut st = prior.cloned().unwrap_or_else(|| LabState::new(&lab.name, lab.isolated_host));
    for (name, bytes) in missing {
        st.netfeat.keys.insert(name, random_hex(bytes)?);
    }
    Ok(Some(st))
}

fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

/// Before applying: note where tables, qdiscs and xfrm objects are about to be put, and the
/// qdisc each device had before vnet's.
pub fn record_before(st: &mut LabState, plan: &Plan, observed: &Observed) {
    for op in plan.ops() {
        let Op::Feature { node, change } = op else { continue };
        match change {
            FeatureOp::SetNft { .. } => {
                st.netfeat.nft.insert(node.clone());
            }
            FeatureOp::SetQdisc { ifname, .. } => {
                let prev = match observed.nodes.get(node) {
                    Some(NsState::Owned(o) | NsState::Root(o)) => o.features.qdiscs.get(ifname).cloned(),
                    _ => None,
                };
                let ours = prev.as_ref().map(|q| q.handle == crate::observed::netfeat::VNET_QDISC_HANDLE).unwrap_or(false);
                let map = st.netfeat.qdiscs.entry(node.clone()).or_default();
                if !ours || !map.contains_key(ifname) {
                    // A default qdisc (handle 0) comes back by itself when vnet's is deleted.
                    map.insert(ifname.clone(), prev.filter(|q| q.handle != 0 && !ours));
                }
            }
            FeatureOp::AddXfrmState { .. } | FeatureOp::AddXfrmPolicy { .. } => {
                st.netfeat.xfrm.insert(node.clone());
            }
            _ => {}
        }
    }
}

/// After a successful apply: forget what is gone, learn the ids of attached programs.
pub fn record_after(st: &mut LabState, lab: &Lab, plan: &Plan, handles: &BTreeMap<String, NsHandle>) -> Result<(), String> {
    let rec = &mut st.netfeat;
    rec.nft.retain(|n| lab.nodes.get(n).map(|node| node.features.nft.is_some()).unwrap_or(false));
    for (node, map) in rec.qdiscs.iter_mut() {
        map.retain(|dev, _| lab.nodes.get(node).map(|n| n.features.tc.contains_key(dev)).unwrap_or(false));
    }
    rec.qdiscs.retain(|_, m| !m.is_empty());
    let ends: Vec<&str> = lab.ipsec.iter().flat_map(|t| t.ends.iter().map(|e| e.node.as_str())).collect();
    rec.xfrm.retain(|n| ends.contains(&n.as_str()));
    let live: Vec<String> = lab.ipsec.iter().map(|t| format!("{}/", t.name)).collect();
    rec.keys.retain(|k, _| live.iter().any(|p| k.starts_with(p.as_str())));

    // Programs: keep records of attachments still declared; refresh those attached now.
    let mut attached: BTreeMap<String, Vec<(String, crate::model::netfeat::spec::BpfHookSpec, String)>> = BTreeMap::new();
    for op in plan.ops() {
        if let Op::Feature { node, change: FeatureOp::AttachBpf { attach, hash } } = op {
            attached.entry(node.clone()).or_default().push((attach.dev.clone(), attach.hook, hash.clone()));
        }
    }
    for (node, list) in rec.bpf.iter_mut() {
        let declared = lab.nodes.get(node).map(|n| n.features.bpf.clone()).unwrap_or_default();
        list.retain(|r| declared.iter().any(|a| a.dev == r.dev && a.hook == r.hook));
    }
    for (node, list) in attached {
        let Some(h) = handles.get(&node) else { continue };
        let devs: Vec<String> = list.iter().map(|(d, _, _)| d.clone()).collect();
        let ids = attached_ids(h, &devs)?;
        let declared = &lab.nodes[&node].features.bpf;
        let entry = rec.bpf.entry(node.clone()).or_default();
        for (dev, hook, hash) in list {
            let Some(a) = declared.iter().find(|a| a.dev == dev && a.hook == hook) else { continue };
            let Some((_, _, id)) = ids.iter().find(|(d, k, _)| *d == dev && *k == hook) else { continue };
            // The plan may not know the hash (a namespace created by this run was not observed).
            let hash = if hash.is_empty() { crate::kernel::netfeat::bpf::object_hash(&a.object).unwrap_or_default() } else { hash };
            entry.retain(|r| !(r.dev == dev && r.hook == hook));
            entry.push(BpfRecord { dev, hook, object: a.object.clone(), program: a.program.clone(), mode: a.mode, hash, prog_id: *id });
        }
    }
    rec.bpf.retain(|_, l| !l.is_empty());
    Ok(())
}

/// Before changing anything: the qdiscs and the ESP transforms the plan needs must exist in
/// this kernel (netem and ESP are often missing); every missing piece is named.
pub fn preflight(plan: &Plan) -> crate::error::Result<()> {
    let mut lines = Vec::new();
    let mut kinds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut states = Vec::new();
    for op in plan.ops() {
        match op {
            Op::Feature { node, change: FeatureOp::SetQdisc { ifname, imp } } => kinds.entry(imp.qdisc_kind()).or_default().push(format!("{node}:{ifname}")),
            Op::Feature { node, change: FeatureOp::AddXfrmState { state } } => states.push((node.clone(), state.clone())),
            _ => {}
        }
    }
    if !kinds.is_empty() {
        let list: Vec<&str> = kinds.keys().copied().collect();
        let missing = crate::kernel::netfeat::tc::missing_qdiscs(&list).map_err(|e| crate::error::Error::io("probe qdiscs", e))?;
        for k in missing {
            lines.push(format!(
                "this kernel lacks the {k} qdisc (CONFIG_NET_SCH_{}); the lab needs it for {}",
                k.to_ascii_uppercase(),
                kinds[k.as_str()].join(", ")
            ));
        }
    }
    // One probe per distinct transform is enough.
    let mut seen: Vec<String> = Vec::new();
    for (node, s) in states {
        let sig = format!("{:?}{:?}{:?}{}", s.aead.as_ref().map(|a| &a.name), s.enc.as_ref().map(|a| &a.name), s.auth.as_ref().map(|a| &a.name), s.mode);
        if seen.contains(&sig) {
            continue;
        }
        seen.push(sig);
        match crate::kernel::netfeat::xfrm::probe_state(&s).map_err(|e| crate::error::Error::io("probe ESP", e))? {
            Ok(()) => {}
            Err(e) => lines.push(format!("this kernel refuses the ESP state {} -> {} of node {node}: {e} (ESP needs CONFIG_INET_ESP / CONFIG_INET6_ESP and the algorithm's crypto modules)", s.src, s.dst)),
        }
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::Unsupported(lines))
    }
}

/// `down` of a lab whose `host` is the real root namespace: remove its nftables table there
/// (devices and namespaces take everything else with them).
pub fn down_root(st: &LabState, problems: &mut Vec<String>) {
    if st.isolated_host || !st.netfeat.nft.contains(HOST) {
        return;
    }
    let t = crate::kernel::netfeat::nft::table_name(&st.lab);
    if let Err(e) = crate::kernel::netfeat::nft::apply(&crate::kernel::netfeat::nft::delete_ruleset(&t)) {
        problems.push(format!("delete nftables table inet {t}: {e}"));
    }
}
