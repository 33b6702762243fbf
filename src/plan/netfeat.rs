//! Planning NAT/firewall tables, qdiscs, BPF attachments and xfrm objects: the declared state
//! against what the kernel has (and what the lab record says vnet put there). An unchanged lab
//! plans nothing; a changed declaration plans exactly its difference.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::lab::{Lab, Node};
use crate::model::netfeat::ipsec::{Crypto, KeySource, Tunnel};
use crate::model::netfeat::spec::IpsecMode;
use crate::model::netfeat::Impairment;
use crate::observed::netfeat::{NftDrift, NsFeatures, ObservedQdisc, XfrmAlg, XfrmPolicy, XfrmState, XfrmTmpl, IPPROTO_ESP, VNET_BPF_PRIO, VNET_QDISC_HANDLE};
use crate::observed::{NsState, Observed};
use crate::state::netfeat::Record;
use crate::state::LabState;

use super::netfeat_ops::FeatureOp;
use super::{stage, Op, Step};

/// The name of the lab's nftables table (one per node namespace).
pub fn table_name(lab: &str) -> String {
    format!("vnet_{lab}")
}

pub(super) fn plan(lab: &Lab, observed: &Observed, state: Option<&LabState>, replaced: &super::Replaced) -> Vec<Step> {
    let empty_rec = Record::default();
    let rec = state.map(|s| &s.netfeat).unwrap_or(&empty_rec);
    let xfrm_want = xfrm_desired(lab, rec);
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for (nname, node) in &lab.nodes {
        let (have, owned) = match observed.nodes.get(nname) {
            Some(NsState::Owned(o)) => (Some(&o.features), true),
            Some(NsState::Root(o)) => (Some(&o.features), false),
            _ => (None, true),
        };
        let empty = NsFeatures::new();
        let have = have.unwrap_or(&empty);
        let mut ops = Vec::new();
        nft(lab, node, have, &mut ops);
        qdiscs(node, have, rec, replaced, &mut ops);
        bpf(node, have, rec, replaced, &mut ops);
        if owned {
            let (states, policies) = xfrm_want.get(nname.as_str()).cloned().unwrap_or_default();
            xfrm(&states, &policies, have, &mut ops);
        }
        for op in ops {
            let step = Step { stage: stage::FEATURES, op: Op::Feature { node: nname.clone(), change: op } };
            if matches!(&step.op, Op::Feature { change, .. } if change.is_removal()) {
                removals.push(step);
            } else {
                additions.push(step);
            }
        }
    }
    removals.extend(additions);
    removals
}

/// The lab's table: written when absent, of another ruleset, or changed by hand since vnet
/// wrote it (its content no longer what nft listed then); rewritten whole, in one transaction.
fn nft(lab: &Lab, node: &Node, have: &NsFeatures, ops: &mut Vec<FeatureOp>) {
    let table = table_name(&lab.name);
    let drift = match (&node.features.nft, &have.nft) {
        (Some(want), Some(h)) if h.fingerprint.as_deref() == Some(want.fingerprint().as_str()) => h.edits(),
        (Some(_), Some(_)) => Some(NftDrift::Other),
        (Some(_), None) => Some(NftDrift::Absent),
        (None, Some(_)) => return ops.push(FeatureOp::DeleteNft { table }),
        (None, None) => None,
    };
    if let (Some(want), Some(drift)) = (&node.features.nft, drift) {
        ops.push(FeatureOp::SetNft { table, spec: want.clone(), drift });
    }
}

/// Whether a device is deleted and re-created by this plan (so its qdisc and programs are gone).
fn recreated(replaced: &super::Replaced, node: &str, dev: &str) -> bool {
    replaced.contains(&(node.to_string(), dev.to_string()))
}

fn qdiscs(node: &Node, have: &NsFeatures, rec: &Record, replaced: &super::Replaced, ops: &mut Vec<FeatureOp>) {
    for dev in node.interfaces.keys() {
        let want = node.features.tc.get(dev);
        let current = if recreated(replaced, &node.name, dev) { None } else { have.qdiscs.get(dev) };
        let ours = current.map(|q| q.handle == VNET_QDISC_HANDLE).unwrap_or(false);
        match want {
            Some(imp) if !(ours && current.map(|q| same_qdisc(imp, q)).unwrap_or(false)) => {
                ops.push(FeatureOp::SetQdisc { ifname: dev.clone(), imp: imp.clone() });
            }
            Some(_) => {}
            None if ours => {
                let previous = rec.qdiscs.get(&node.name).and_then(|m| m.get(dev)).cloned().flatten();
                ops.push(FeatureOp::RestoreQdisc { ifname: dev.clone(), previous });
            }
            None => {}
        }
    }
}

/// The kernel's u32 form of a probability (as the encoder writes it).
fn prob(f: Option<f64>) -> u32 {
    f.map(|f| (f * u32::MAX as f64).round_ties_even() as u32).unwrap_or(0)
}

/// Whether an installed qdisc does what `imp` says (within the kernel's time quantum).
pub fn same_qdisc(imp: &Impairment, q: &ObservedQdisc) -> bool {
    let p = &q.params;
    if q.kind != imp.qdisc_kind() {
        return false;
    }
    let near = |a: u64, b: u64| a.abs_diff(b) <= 2_000;
    if imp.needs_netem() {
        near(p.delay_ns, imp.delay_ns.unwrap_or(0))
            && near(p.jitter_ns, imp.jitter_ns.unwrap_or(0))
            && p.loss == prob(imp.loss)
            && p.duplicate == prob(imp.duplicate)
            && p.reorder == prob(imp.reorder)
            && p.corrupt == prob(imp.corrupt)
            && p.rate == imp.rate.unwrap_or(0)
            && p.limit == imp.limit.unwrap_or(1000)
    } else {
        let burst = imp.tbf_burst() as u64;
        p.rate == imp.rate.unwrap_or(0) && p.limit == imp.tbf_limit() && (p.burst as u64).abs_diff(burst) <= burst / 100 + 2
    }
}

/// How a device's root qdisc compares with the traffic control the lab declares for it (what
/// `status` shows and `doctor` reports; the planner's own test is `same_qdisc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QdiscDrift {
    /// Nothing declared and nothing but the kernel's default qdisc.
    Clean,
    /// vnet's qdisc, doing what is declared.
    AsDeclared,
    /// Declared, but the device has only the kernel's default qdisc (vnet's was deleted).
    Missing,
    /// Declared, but the root qdisc does something else: vnet's with other parameters, or one
    /// that somebody else put in its place.
    Differs,
    /// Not declared, yet the device has a root qdisc other than the kernel's default.
    Undeclared,
}

impl QdiscDrift {
    /// Whether the kernel lacks what the lab declares.
    pub fn is_drift(self) -> bool {
        matches!(self, QdiscDrift::Missing | QdiscDrift::Differs)
    }
}

/// Compares the declared traffic control of a device with its root qdisc (`None`: no qdisc
/// observed, as for a device that is gone).
pub fn qdisc_drift(want: Option<&Impairment>, have: Option<&ObservedQdisc>) -> QdiscDrift {
    let non_default = have.filter(|q| !q.is_default());
    match (want, non_default) {
        (Some(imp), Some(q)) if q.is_vnet() && same_qdisc(imp, q) => QdiscDrift::AsDeclared,
        (Some(_), Some(_)) => QdiscDrift::Differs,
        (Some(_), None) => QdiscDrift::Missing,
        (None, Some(_)) => QdiscDrift::Undeclared,
        (None, None) => QdiscDrift::Clean,
    }
}

fn bpf(node: &Node, have: &NsFeatures, rec: &Record, replaced: &super::Replaced, ops: &mut Vec<FeatureOp>) {
    let recs = rec.bpf.get(&node.name).map(Vec::as_slice).unwrap_or(&[]);
    for a in &node.features.bpf {
        let hash = match have.object_hashes.get(&a.object) {
            Some(Ok(h)) => h.clone(),
            // Unreadable now: attaching reports why.
            _ => String::new(),
        };
        let attached = if recreated(replaced, &node.name, &a.dev) {
            None
        } else {
            have.bpf
                .iter()
                .find(|b| b.ifname == a.dev && b.hook == a.hook && (b.hook == crate::model::netfeat::spec::BpfHookSpec::Xdp || b.prio == VNET_BPF_PRIO))
        };
        let current = recs.iter().find(|r| r.dev == a.dev && r.hook == a.hook).is_some_and(|r| {
            r.object == a.object
                && r.program == a.program
                && r.mode == a.mode
                && !hash.is_empty()
                && r.hash == hash
                && attached.map(|b| b.prog_id) == Some(r.prog_id)
        });
        if !current {
            ops.push(FeatureOp::AttachBpf { attach: a.clone(), hash });
        }
    }
    for r in recs {
        let wanted = node.features.bpf.iter().any(|a| a.dev == r.dev && a.hook == r.hook);
        let present = have.bpf.iter().any(|b| b.ifname == r.dev && b.hook == r.hook && b.prog_id == r.prog_id);
        if !wanted && present && node.interfaces.contains_key(&r.dev) {
            ops.push(FeatureOp::DetachBpf { ifname: r.dev.clone(), hook: r.hook, mode: r.mode });
        }
    }
}

fn xfrm(states: &[XfrmState], policies: &[XfrmPolicy], have: &NsFeatures, ops: &mut Vec<FeatureOp>) {
    let skey = |s: &XfrmState| (s.dst, s.spi, s.proto);
    for h in &have.xfrm_states {
        match states.iter().find(|w| skey(w) == skey(h)) {
            Some(w) if w == h => {}
            _ => ops.push(FeatureOp::DelXfrmState { state: h.clone() }),
        }
    }
    for w in states {
        if !have.xfrm_states.iter().any(|h| h == w) {
            ops.push(FeatureOp::AddXfrmState { state: w.clone() });
        }
    }
    let pkey = |p: &XfrmPolicy| (p.src, p.dst, p.dir);
    for h in &have.xfrm_policies {
        match policies.iter().find(|w| pkey(w) == pkey(h)) {
            Some(w) if w == h => {}
            _ => ops.push(FeatureOp::DelXfrmPolicy { policy: h.clone() }),
        }
    }
    for w in policies {
        if !have.xfrm_policies.iter().any(|h| h == w) {
            ops.push(FeatureOp::AddXfrmPolicy { policy: w.clone() });
        }
    }
}

/// Name under which a generated key is kept: `<connection>/<aead|enc|auth>/<direction>`.
pub fn key_name(base: &str, dir: usize) -> String {
    format!("{base}/{dir}")
}

fn key_bytes(k: &KeySource, dir: usize, rec: &Record) -> Vec<u8> {
    match k {
        KeySource::Given(b) => b.clone(),
        KeySource::Generated { name, .. } => {
            rec.keys.get(&key_name(name, dir)).map(|h| crate::model::netfeat::ipsec::parse_hex(h).unwrap_or_default()).unwrap_or_default()
        }
    }
}

/// The states and policies each node should hold: node -> (states, policies).
pub fn xfrm_desired<'a>(lab: &'a Lab, rec: &Record) -> BTreeMap<&'a str, (Vec<XfrmState>, Vec<XfrmPolicy>)> {
    let mut out: BTreeMap<&str, (Vec<XfrmState>, Vec<XfrmPolicy>)> = BTreeMap::new();
    for t in &lab.ipsec {
        let sas: Vec<XfrmState> = (0..2).map(|d| sa(t, d, rec)).collect();
        for k in 0..2 {
            let (me, peer) = (&t.ends[k], &t.ends[1 - k]);
            let mode = u8::from(t.mode == IpsecMode::Tunnel);
            let tmpl = |src, dst| Some(XfrmTmpl { src, dst, proto: IPPROTO_ESP, mode, reqid: t.reqid });
            let mut pols = vec![
                XfrmPolicy { src: me.subnet, dst: peer.subnet, dir: 1, tmpl: tmpl(me.address, peer.address) },
                XfrmPolicy { src: peer.subnet, dst: me.subnet, dir: 0, tmpl: tmpl(peer.address, me.address) },
            ];
            if t.mode == IpsecMode::Tunnel && me.subnet != ipnet::IpNet::from(me.address) {
                // Traffic for the subnet behind this gateway is forwarded, not delivered locally.
                pols.push(XfrmPolicy { src: peer.subnet, dst: me.subnet, dir: 2, tmpl: tmpl(peer.address, me.address) });
            }
            let e = out.entry(me.node.as_str()).or_default();
            e.0.extend(sas.iter().cloned());
            e.1.extend(pols);
        }
    }
    out
}

/// The SA of direction `d` (0: first end -> second, 1: second -> first).
fn sa(t: &Tunnel, d: usize, rec: &Record) -> XfrmState {
    let (from, to) = (&t.ends[d], &t.ends[1 - d]);
    let mut s = XfrmState {
        src: from.address,
        dst: to.address,
        spi: t.spi[d],
        proto: IPPROTO_ESP,
        mode: u8::from(t.mode == IpsecMode::Tunnel),
        reqid: t.reqid,
        aead: None,
        enc: None,
        auth: None,
    };
    match &t.crypto {
        Crypto::Aead { algo, key, icv_bits } => s.aead = Some(XfrmAlg { name: algo.clone(), key: key_bytes(key, d, rec), bits: *icv_bits }),
        Crypto::EncAuth { enc, enc_key, auth, auth_key, trunc_bits } => {
            s.enc = Some(XfrmAlg { name: enc.clone(), key: key_bytes(enc_key, d, rec), bits: 0 });
            s.auth = Some(XfrmAlg { name: auth.clone(), key: key_bytes(auth_key, d, rec), bits: *trunc_bits });
        }
    }
    s
}

/// Keys the lab needs generated (name, length in bytes) that the record does not hold yet.
pub fn missing_keys(lab: &Lab, rec: &Record) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for t in &lab.ipsec {
        let sources: Vec<&KeySource> = match &t.crypto {
            Crypto::Aead { key, .. } => vec![key],
            Crypto::EncAuth { enc_key, auth_key, .. } => vec![enc_key, auth_key],
        };
        for k in sources {
            if let KeySource::Generated { name, bytes } = k {
                for d in 0..2 {
                    let n = key_name(name, d);
                    if !rec.keys.contains_key(&n) {
                        out.push((n, *bytes));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "netfeat_tests.rs"]
mod tests;
