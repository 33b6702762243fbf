//! Devices: missing, down, a veth whose peer is down, no carrier, a port not in its bridge,
//! MTU mismatches between the two ends of a link or along one bridge segment.

use std::collections::BTreeMap;

use super::{Ctx, Severity};
use crate::model::source::Seg;
use crate::plan::Op;

pub(super) fn check(ctx: &mut Ctx) {
    let model = ctx.rl.model();
    for (nname, node) in &model.nodes {
        // A node whose namespace is gone has its own finding.
        if ctx.rl.is_missing(nname) {
            continue;
        }
        for (ifname, iface) in &node.interfaces {
            let path = Some(iface.path.as_slice());
            let Some(l) = ctx.view.link_named(nname, ifname).cloned() else {
                let f = ctx.finding(
                    "missing-device",
                    Severity::Error,
                    nname,
                    Some(ifname),
                    format!("{ifname} is declared but the kernel has no such device in {nname}"),
                    ctx.drift.recreate(),
                    path,
                );
                ctx.add(f);
                continue;
            };
            if iface.up && !l.up {
                let ns = ctx.ns_name(nname);
                let f = ctx.finding(
                    "device-down",
                    Severity::Error,
                    nname,
                    Some(ifname),
                    format!("{ifname} is down (declared up)"),
                    format!("bring it up: `ip {ns}link set {ifname} up` (or `vnet up` again)"),
                    path,
                );
                ctx.add(f);
                continue;
            }
            if !l.up {
                continue;
            }
            if l.kind.as_deref() == Some("bridge") && ctx.view.ports(nname, l.ifindex).is_empty() {
                let f = ctx.finding(
                    "no-ports",
                    Severity::Warning,
                    nname,
                    Some(ifname),
                    format!("bridge {ifname} has no ports: nothing is connected to it"),
                    format!("attach devices with `master: {ifname}`"),
                    path,
                );
                ctx.add(f);
            }
            // Up but no carrier: a veth whose peer is down, a bridge without a working port.
            if !l.carrier && ifname != "lo" {
                match l.kind.as_deref() {
                    Some("veth") => {
                        let peer = ctx.view.linked(nname, &l).and_then(|(pn, pi)| ctx.view.link(pn, pi).map(|p| (pn.to_string(), p.clone())));
                        if let Some((pn, p)) = peer {
                            if !p.up {
                                let ns = ctx.rl.model().netns_name(&pn).map(|n| format!("-n {n} ")).unwrap_or_default();
                                let ppath = ctx.iface_path(&pn, &p.name);
                                // Down as the file declares it: `vnet up` would take it down again.
                                let declared_down = ctx.rl.model().nodes.get(&pn).and_then(|n| n.interfaces.get(&p.name)).is_some_and(|i| !i.up);
                                let fix = if declared_down {
                                    format!("the file declares the peer down: drop `up: false` in nodes.{pn}.interfaces.{} (`ip {ns}link set {} up` lasts only until the next `vnet up`)", p.name, p.name)
                                } else {
                                    format!("bring the peer up: `ip {ns}link set {} up`", p.name)
                                };
                                let f = ctx.finding(
                                    "peer-down",
                                    Severity::Error,
                                    nname,
                                    Some(ifname),
                                    format!("{ifname} has no carrier: its peer {pn}:{} is down", p.name),
                                    fix,
                                    ppath.as_deref().or(path),
                                );
                                ctx.add(f);
                                continue;
                            }
                        }
                        let f = ctx.finding(
                            "no-carrier",
                            Severity::Error,
                            nname,
                            Some(ifname),
                            format!("{ifname} has no carrier"),
                            "check its peer: it must exist and be up".into(),
                            path,
                        );
                        ctx.add(f);
                    }
                    Some("bridge") => {
                        let ports = ctx.view.ports(nname, l.ifindex);
                        let why = if ports.is_empty() {
                            "it has no ports".to_string()
                        } else {
                            format!("none of its ports ({}) has carrier", ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "))
                        };
                        let f = ctx.finding(
                            "no-carrier",
                            Severity::Warning,
                            nname,
                            Some(ifname),
                            format!("bridge {ifname} has no carrier: {why}; it forwards nothing"),
                            "attach ports (`master: <bridge>` on them) and bring them and their peers up".into(),
                            path,
                        );
                        ctx.add(f);
                    }
                    _ => {
                        // A macvlan / ipvlan has carrier when its lower device has: name it.
                        let stacked = matches!(l.kind.as_deref(), Some("macvlan" | "macvtap" | "ipvlan" | "ipvtap"));
                        let lower =
                            if stacked { ctx.view.linked(nname, &l).and_then(|(n, i)| ctx.view.link(n, i).map(|x| (n.to_string(), x.clone()))) } else { None };
                        let (message, fix) = match lower {
                            Some((ln, low)) if !low.up => {
                                let ns = ctx.rl.model().netns_name(&ln).map(|n| format!("-n {n} ")).unwrap_or_default();
                                (
                                    format!("{ifname} has no carrier: its lower device {ln}:{} is down", low.name),
                                    format!("bring the lower device {ln}:{} up: `ip {ns}link set {} up`", low.name, low.name),
                                )
                            }
                            Some((ln, low)) => (
                                format!("{ifname} has no carrier: its lower device {ln}:{} has none", low.name),
                                format!("check what the lower device {ln}:{} is connected to", low.name),
                            ),
                            None => (format!("{ifname} has no carrier"), "check what the device is connected to".into()),
                        };
                        let f = ctx.finding("no-carrier", Severity::Warning, nname, Some(ifname), message, fix, path);
                        ctx.add(f);
                    }
                }
            }
            // A port that is not in its bridge. An Open vSwitch bridge's ports are its own
            // (its userspace datapath enslaves nothing in the kernel).
            let ovs_master = iface.master.as_ref().and_then(|m| node.interfaces.get(m)).is_some_and(|m| m.kind.is_ovs());
            if let Some(master) = iface.master.as_ref().filter(|_| !ovs_master) {
                let have = l.master.and_then(|m| ctx.view.link(nname, m)).map(|m| m.name.clone());
                if have.as_deref() != Some(master.as_str()) {
                    let mut mp = iface.path.clone();
                    mp.push(Seg::Key("master".into()));
                    let now = match &have {
                        Some(h) => format!("it is attached to {h}"),
                        None => "it is attached to no bridge".into(),
                    };
                    let ns = ctx.ns_name(nname);
                    let f = ctx.finding(
                        "not-in-bridge",
                        Severity::Error,
                        nname,
                        Some(ifname),
                        format!("{ifname} should be a port of bridge {master} but {now}: frames from its peer go nowhere"),
                        format!("attach it: `ip {ns}link set {ifname} master {master}` (or `vnet up` again)"),
                        Some(&mp),
                    );
                    ctx.add(f);
                }
            }
        }
    }
    mtu(ctx);
}

/// The two ends of a link, and every device on one bridge segment, need one MTU: a frame
/// bigger than the receiver's MTU is dropped without a word.
fn mtu(ctx: &mut Ctx) {
    let view = ctx.view;
    let mut done: Vec<(String, u32)> = Vec::new();
    for (nname, v) in &view.nodes {
        for l in &v.ns.links {
            if l.kind.as_deref() != Some("veth") || done.contains(&(nname.clone(), l.ifindex)) {
                continue;
            }
            let Some((pn, pi)) = view.linked(nname, l) else { continue };
            let Some(p) = view.link(pn, pi) else { continue };
            done.push((pn.to_string(), pi));
            if p.mtu != l.mtu {
                // An MTU the file declares, changed in the kernel: the file is right already.
                let drifted = ctx
                    .drift
                    .find(|o| matches!(o, Op::ChangeLink { node, ifname, change } if change.mtu.is_some() && ((node == nname && *ifname == l.name) || (node == pn && *ifname == p.name))))
                    .map(|o| ctx.drift.fix(o));
                // Point at whichever end declares its MTU.
                let (at_node, at_dev) = if ctx.rl.model().nodes.get(pn).and_then(|n| n.interfaces.get(&p.name)).and_then(|i| i.mtu).is_some() {
                    (pn.to_string(), p.name.clone())
                } else {
                    (nname.clone(), l.name.clone())
                };
                let mut path = ctx.iface_path(&at_node, &at_dev);
                if let Some(pp) = path.as_mut() {
                    pp.push(Seg::Key("mtu".into()));
                }
                let f = ctx.finding(
                    "mtu-mismatch",
                    Severity::Warning,
                    &at_node,
                    Some(&at_dev),
                    format!(
                        "the two ends of a link differ: {nname}:{} has mtu {} but {pn}:{} has mtu {}; bigger frames are dropped silently at the smaller end",
                        l.name, l.mtu, p.name, p.mtu
                    ),
                    drifted.unwrap_or_else(|| format!("give both ends the same MTU (`mtu: {}` on the link or on both interfaces)", l.mtu.min(p.mtu))),
                    path.as_deref(),
                );
                ctx.add(f);
            }
        }
        // Bridge segments: the bridge's ports and what they lead to.
        for b in v.ns.links.iter().filter(|l| l.kind.as_deref() == Some("bridge")) {
            let mut mtus: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            let mut members: Vec<(String, String)> = vec![(nname.clone(), b.name.clone())];
            for p in view.ports(nname, b.ifindex) {
                mtus.entry(p.mtu).or_default().push(format!("{nname}:{}", p.name));
                members.push((nname.clone(), p.name.clone()));
                if let Some((pn, pi)) = view.linked(nname, p) {
                    if let Some(peer) = view.link(pn, pi) {
                        if p.kind.as_deref() == Some("veth") {
                            mtus.entry(peer.mtu).or_default().push(format!("{pn}:{}", peer.name));
                            members.push((pn.to_string(), peer.name.clone()));
                        }
                    }
                }
            }
            if mtus.len() > 1 {
                let list = mtus.iter().map(|(m, d)| format!("mtu {m}: {}", d.join(", "))).collect::<Vec<_>>().join("; ");
                let min = *mtus.keys().next().unwrap_or(&1500);
                let path = ctx.iface_path(nname, &b.name);
                let drifted = ctx
                    .drift
                    .find(|o| matches!(o, Op::ChangeLink { node, ifname, change } if change.mtu.is_some() && members.iter().any(|(n, d)| n == node && d == ifname)))
                    .map(|o| ctx.drift.fix(o));
                let f = ctx.finding(
                    "mtu-mismatch",
                    Severity::Warning,
                    nname,
                    Some(&b.name),
                    format!("devices on the segment of bridge {} have different MTUs ({list}); frames bigger than the smallest are dropped silently", b.name),
                    drifted.unwrap_or_else(|| format!("give every device on this segment the same MTU, e.g. `mtu: {min}`")),
                    path.as_deref(),
                );
                ctx.add(f);
            }
        }
    }
}
