//! Veth pairing across the lab, from `links` and `peer:` settings.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::{ifname_problem, push_did_you_mean, Ctx};
use crate::model::diag::Diag;
use crate::model::file::{InterfaceSpec, Topology};
use crate::model::kind::{KindSpec, VethSpec};
use crate::model::lab::Endpoint;
use crate::model::source::{Path, Seg};

/// Pairs veth ends from `links` and `peer:` settings; adds undeclared ends as plain veths.
/// Returns each end's peer.
pub(super) fn resolve_veths(
    topo: &Topology,
    ctx: &mut Ctx,
    ifaces: &mut IndexMap<String, IndexMap<String, (InterfaceSpec, Path)>>,
) -> HashMap<Endpoint, Endpoint> {
    let mut peers: HashMap<Endpoint, Endpoint> = HashMap::new();
    // Where each end was first paired (for "declared twice" messages).
    let mut first: HashMap<Endpoint, Path> = HashMap::new();
    // Ends named by a pairing that was refused: "has no peer" would only repeat that error.
    let mut refused: HashSet<Endpoint> = ctx.failed_peers().into_iter().collect();

    // Pairs two ends; false (with the error reported) when one of them already has another peer.
    let mut pair = |ctx: &mut Ctx, a: &Endpoint, b: &Endpoint, pa: &Path, pb: &Path, peers: &mut HashMap<Endpoint, Endpoint>| -> bool {
        for (end, p, other) in [(a, pa, b), (b, pb, a)] {
            if let Some(prev) = peers.get(end) {
                if prev == other {
                    continue; // same pair stated twice (link + peer), consistent
                }
                let span = ctx.span(p);
                let prev_span = first.get(end).and_then(|fp| ctx.span(fp));
                ctx.push(
                    Diag::error(format!("veth end `{end}` is declared twice: paired with `{prev}` and with `{other}`"))
                        .maybe_label(span, "second pairing")
                        .maybe_label(prev_span, "first pairing")
                        .help("a veth end belongs to exactly one pair; give the second one another interface name"),
                );
                return false;
            }
        }
        first.entry(a.clone()).or_insert_with(|| pa.clone());
        first.entry(b.clone()).or_insert_with(|| pb.clone());
        peers.insert(a.clone(), b.clone());
        peers.insert(b.clone(), a.clone());
        true
    };

    for (li, link) in topo.links.iter().enumerate() {
        let lp = ctx.idx(&[Seg::Key("links".into())], li);
        let ep_path = ctx.sub(&lp, "endpoints");
        if link.endpoints.len() != 2 {
            // Count what the file says (a link that failed to decode was reported already).
            if let Some(serde_json::Value::Array(a)) = ctx.doc().get(&ep_path) {
                if a.len() != 2 {
                    ctx.error_at(&ep_path, format!("a link has exactly two endpoints, got {}", a.len()), "expected [node:ifname, node:ifname]");
                }
            }
            refused.extend(link.endpoints.iter().filter_map(|r| Endpoint::parse(r)));
            // A link that failed to decode (a bad entry among its endpoints) names its ends in
            // the file only: theirs is that error, not "no peer".
            if let Some(serde_json::Value::Array(a)) = ctx.doc().get(&ep_path) {
                refused.extend(a.iter().filter_map(|v| v.as_str()).filter_map(Endpoint::parse));
            }
            continue;
        }
        let mut ends = Vec::new();
        // Every end the link names, good or bad: when the link is refused, none of them gets
        // "has no peer" on top of the link's error.
        let mut named = Vec::new();
        for (j, raw) in link.endpoints.iter().enumerate() {
            let p = ctx.idx(&ep_path, j);
            match Endpoint::parse(raw) {
                None => ctx.error_at(&p, format!("endpoint `{raw}` is not of the form `node:ifname`"), "expected node:ifname"),
                Some(ep) => {
                    named.push(ep.clone());
                    if !topo.nodes.contains_key(&ep.node) {
                        if !ctx.failed_node(&ep.node) {
                            ctx.error_at(&p, format!("unknown node `{}` in link endpoint `{raw}`", ep.node), format!("no node named `{}`", ep.node));
                            push_did_you_mean(ctx, &ep.node, topo.nodes.keys());
                        }
                    } else if let Some(problem) = ifname_problem(&ep.ifname) {
                        // A declared interface has the error at its name already.
                        if !ifaces.get(&ep.node).is_some_and(|m| m.contains_key(&ep.ifname)) {
                            ctx.error_at(&p, problem, "invalid interface name");
                        }
                    } else {
                        ends.push((ep, p));
                    }
                }
            }
        }
        if ends.len() != 2 {
            refused.extend(named);
            continue;
        }
        let (b, pb) = ends.pop().unwrap();
        let (a, pa) = ends.pop().unwrap();
        if a == b {
            ctx.error_at(&ep_path, format!("link connects `{a}` to itself"), "both ends are the same");
            refused.insert(a);
            continue;
        }
        let mut ok = true;
        for (ep, p) in [(&a, &pa), (&b, &pb)] {
            if let Some((spec, _)) = ifaces.get(&ep.node).and_then(|m| m.get(&ep.ifname)) {
                if !matches!(spec.kind, KindSpec::Veth(_)) {
                    let kind = spec.kind.name();
                    ctx.error_at(p, format!("link endpoint `{ep}` is a {kind}; a link end must be a veth"), format!("`{ep}` is declared as a {kind}"));
                    ok = false;
                }
            }
        }
        if !ok || !pair(ctx, &a, &b, &pa, &pb, &mut peers) {
            refused.insert(a);
            refused.insert(b);
            continue;
        }
        // A link's MTU is checked once, here, where it is written.
        let link_mtu = link.mtu.filter(|m| {
            let ok = (68..=65535).contains(m);
            if !ok {
                ctx.error_at(&ctx.sub(&lp, "mtu"), format!("mtu {m} of the link `{a}` — `{b}` is out of range (68..=65535)"), "out of range");
            }
            ok
        });
        for (ep, p) in [(&a, &pa), (&b, &pb)] {
            let node = ifaces.entry(ep.node.clone()).or_default();
            let from_link = if !node.contains_key(&ep.ifname) {
                let mut spec = InterfaceSpec::new(KindSpec::Veth(VethSpec::default()));
                spec.mtu = link_mtu;
                node.insert(ep.ifname.clone(), (spec, p.clone()));
                link_mtu.is_some()
            } else if let Some((spec, _)) = node.get_mut(&ep.ifname).filter(|(s, _)| s.mtu.is_none()) {
                spec.mtu = link_mtu;
                link_mtu.is_some()
            } else {
                false
            };
            if from_link {
                let mp = ctx.sub(&lp, "mtu");
                ctx.note_mtu_from_link(ep, mp);
            }
        }
    }

    // `peer:` on declared veths.
    let mut implicit: Vec<(Endpoint, Path)> = Vec::new();
    for (nname, list) in ifaces.iter() {
        for (ifname, (spec, path)) in list {
            if let KindSpec::Veth(VethSpec { peer: Some(raw), .. }) = &spec.kind {
                let pp = ctx.sub(path, "peer");
                let me = Endpoint::new(nname, ifname);
                match Endpoint::parse(raw) {
                    None => ctx.error_at(&pp, format!("peer `{raw}` is not of the form `node:ifname`"), "expected node:ifname"),
                    Some(other) if other == me => ctx.error_at(&pp, format!("veth `{me}` cannot be its own peer"), "same as this end"),
                    Some(other) => {
                        if !topo.nodes.contains_key(&other.node) {
                            if !ctx.failed_node(&other.node) {
                                ctx.error_at(&pp, format!("unknown node `{}` in peer `{raw}`", other.node), format!("no node named `{}`", other.node));
                                push_did_you_mean(ctx, &other.node, topo.nodes.keys());
                            }
                        } else if let Some(problem) = ifname_problem(&other.ifname) {
                            if !ifaces.get(&other.node).is_some_and(|m| m.contains_key(&other.ifname)) {
                                ctx.error_at(&pp, problem, "invalid interface name");
                            }
                            refused.insert(other.clone());
                        } else {
                            let declared = ifaces.get(&other.node).and_then(|m| m.get(&other.ifname));
                            match declared {
                                Some((ospec, _)) if !matches!(ospec.kind, KindSpec::Veth(_)) => {
                                    ctx.error_at(&pp, format!("peer `{other}` is a {}; a veth's peer must be a veth", ospec.kind.name()), "not a veth");
                                }
                                _ => {
                                    if pair(ctx, &me, &other, &pp, &pp, &mut peers) {
                                        if declared.is_none() {
                                            implicit.push((other.clone(), pp.clone()));
                                        }
                                        continue;
                                    }
                                    refused.insert(other.clone());
                                }
                            }
                        }
                    }
                }
                refused.insert(me);
            }
        }
    }
    for (ep, p) in implicit {
        let node = ifaces.entry(ep.node.clone()).or_default();
        node.entry(ep.ifname.clone()).or_insert((InterfaceSpec::new(KindSpec::Veth(VethSpec::default())), p));
    }

    // Ends that never found a peer.
    for (nname, list) in ifaces.iter() {
        for (ifname, (spec, path)) in list {
            let me = Endpoint::new(nname, ifname);
            if matches!(spec.kind, KindSpec::Veth(_)) && !peers.contains_key(&me) && ifname != "lo" && !refused.contains(&me) {
                let span = ctx.key_span(path);
                ctx.push(
                    Diag::error(format!("veth `{me}` has no peer"))
                        .maybe_label(span, "declared here without a peer")
                        .help(format!("add a link `endpoints: [{me}, <node>:<ifname>]`, set `peer: <node>:<ifname>`, or give the interface a `kind`")),
                );
            }
        }
    }
    peers
}
