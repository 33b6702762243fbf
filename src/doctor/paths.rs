//! Paths between every pair of nodes, followed with the kernel's own lookups (the `trace`
//! walk, no probes), there and back; each drop becomes a finding: no route (and no default
//! route), forwarding off on a router, reverse-path filtering against an asymmetric route, a
//! bridge that does not reflect frames, a next hop nobody answers for, a routing loop.

use std::net::IpAddr;

use super::{Ctx, Severity};
use crate::error::Result;
use crate::model::source::Seg;
use crate::plan::Op;
use crate::probe::route::Lookup;
use crate::trace::{self, Hop};

/// At most this many nodes are paired (every ordered pair is walked both ways).
const MAX_NODES: usize = 40;

pub(super) fn check(ctx: &mut Ctx) -> Result<usize> {
    let model = ctx.rl.model();
    let mut ends: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for (n, node) in &model.nodes {
        // A node whose namespace is gone has its own finding; its pairs cannot be followed.
        if ctx.rl.is_missing(n) {
            continue;
        }
        // Declared addresses first, then what the kernel has (addresses added by hand count too).
        let mut addrs: Vec<IpAddr> = node.interfaces.values().flat_map(|i| i.addresses.iter().map(|a| a.addr())).filter(|a| !a.is_loopback()).collect();
        if let Some(v) = ctx.view.nodes.get(n) {
            addrs.extend(v.ns.addrs.iter().filter(|a| !a.automatic && !a.addr.addr().is_loopback()).map(|a| a.addr.addr()));
        }
        let mut firsts = Vec::new();
        if let Some(a) = addrs.iter().find(|a| a.is_ipv4()) {
            firsts.push(*a);
        }
        if let Some(a) = addrs.iter().find(|a| a.is_ipv6()) {
            firsts.push(*a);
        }
        if !firsts.is_empty() {
            ends.push((n.clone(), firsts));
        }
    }
    ends.truncate(MAX_NODES);
    let mut pairs = 0;
    let mut unrouted: Vec<((String, bool), Vec<String>)> = Vec::new();
    for (a, a_addrs) in &ends {
        for (b, b_addrs) in &ends {
            if a == b {
                continue;
            }
            pairs += 1;
            for dst in b_addrs {
                if !a_addrs.iter().any(|x| x.is_ipv4() == dst.is_ipv4()) {
                    continue;
                }
                // There and back as `trace` walks them (with the lab's declared NAT and firewall).
                let (there, back) = trace::there_and_back(ctx.rl, ctx.view, a, *dst, trace::Proto::Icmp)?;
                findings(ctx, &there.hops, a, *dst, &mut unrouted)?;
                if let (Some(back), Some(src), Some(at)) = (back, there.src, there.at.as_deref()) {
                    findings(ctx, &back.hops, at, src, &mut unrouted)?;
                }
            }
        }
    }
    // Nodes without a default route: one finding each, naming what they cannot reach.
    for ((node, v6), dsts) in unrouted {
        let gw = gateways(ctx, &node, v6);
        // A default route the file declares but the kernel lost: apply the file again.
        let declared =
            ctx.drift.find(|o| matches!(o, Op::AddRoute { node: n, route } if *n == node && route.dst.prefix_len() == 0 && route.dst.addr().is_ipv6() == v6));
        let suggest = match (declared, gw.first()) {
            (Some(o), _) => ctx.drift.fix(o),
            (None, gw) => match gw {
                Some((n, a)) => format!("add `{{ to: {}, via: {a} }}` ({n}) to nodes.{node}.routes", if v6 { "default6" } else { "default" }),
                None => format!("give {node} an address on a subnet with a router, then a default route via it"),
            },
        };
        let node_path = ctx.rl.model().nodes.get(&node).map(|n| {
            let mut p = n.path.clone();
            if !n.routes.is_empty() {
                p.push(Seg::Key("routes".into()));
            }
            p
        });
        let f = ctx.finding(
            "no-default-route",
            Severity::Error,
            &node,
            None,
            format!("{node} has no {} default route and no route to {}", if v6 { "IPv6" } else { "IPv4" }, dsts.join(", ")),
            suggest,
            node_path.as_deref(),
        );
        ctx.add(f);
    }
    Ok(pairs)
}

/// When the next hop of a dropped packet (the last route's gateway, or `dst`) is
/// declared on a device of the lab but no device holds it in the kernel: the finding that says so.
fn declared_but_gone(ctx: &Ctx, hops: &[Hop], dst: IpAddr) -> Option<super::Finding> {
    // The last route lookup before the drop chose the next hop (the drop may be further on, in
    // a bridge or another node's device).
    let next_hop = hops.iter().rev().find_map(|h| match h {
        Hop::Route { gateway, .. } => Some(gateway.unwrap_or(dst)),
        _ => None,
    })?;
    if !ctx.view.holders(next_hop).is_empty() {
        return None;
    }
    let (n, iface, i) = ctx.rl.model().nodes.iter().find_map(|(n, node)| {
        node.interfaces.values().find_map(|iface| iface.addresses.iter().position(|a| a.addr() == next_hop).map(|i| (n.clone(), iface, i)))
    })?;
    let mut p = iface.path.clone();
    p.push(Seg::Key("addresses".into()));
    p.push(Seg::Index(i));
    Some(ctx.finding(
        "declared-address-gone",
        Severity::Error,
        &n,
        Some(&iface.name),
        format!("{next_hop} is declared on {n}:{} but the kernel does not have it: nothing in the lab answers for it", iface.name),
        match ctx.drift.find(|o| match o {
            Op::AddAddress { node, ifname, addr } => *node == n && *ifname == iface.name && addr.addr() == next_hop,
            Op::CreateLink(c) => (c.node == n && c.ifname == iface.name) || c.peer.as_ref().is_some_and(|p| p.node == n && p.ifname == iface.name),
            _ => false,
        }) {
            Some(o) => ctx.drift.fix(o),
            None => "run `vnet up` again: it puts the address (and its device) back".into(),
        },
        Some(&p),
    ))
}

/// Nodes sharing a subnet with `node` (address on that subnet), forwarding ones first.
fn gateways(ctx: &Ctx, node: &str, v6: bool) -> Vec<(String, IpAddr)> {
    let view = ctx.view;
    let Some(me) = view.nodes.get(node) else { return Vec::new() };
    let mut out = Vec::new();
    for a in me.ns.addrs.iter().filter(|a| a.addr.addr().is_ipv6() == v6 && !a.automatic) {
        let net = a.addr.trunc();
        for (n, v) in &view.nodes {
            if n == node {
                continue;
            }
            for b in &v.ns.addrs {
                if net.contains(&b.addr.addr()) && !b.automatic {
                    let key = if v6 { "net.ipv6.conf.all.forwarding" } else { "net.ipv4.ip_forward" };
                    let fwd = view.sysctl(n, key) == Some("1");
                    out.push((fwd, n.clone(), b.addr.addr()));
                }
            }
        }
    }
    out.sort_by_key(|(f, n, _)| (!*f, n.clone()));
    out.into_iter().map(|(_, n, a)| (n, a)).collect()
}

type Unrouted = Vec<((String, bool), Vec<String>)>;

fn findings(ctx: &mut Ctx, hops: &[Hop], from: &str, dst: IpAddr, unrouted: &mut Unrouted) -> Result<()> {
    let holder = ctx.view.holders(dst).first().map(|(n, _)| n.to_string()).unwrap_or_else(|| "outside the lab".into());
    let mut last_src: Option<IpAddr> = None;
    for h in hops {
        if let Hop::Route { src, .. } = h {
            last_src = src.or(last_src);
        }
        let Hop::Drop { node, dev, cause, why } = h else { continue };
        let dev_s = dev.clone();
        match cause.as_str() {
            "rp-filter" => {
                let src = last_src.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
                let d = dev_s.clone().unwrap_or_default();
                let back = match last_src {
                    Some(s) => match ctx.rl.route_lookup(node, Lookup::to(s))? {
                        Ok((_, Some(bd))) => format!("its route back to {s} leaves by {bd}"),
                        _ => format!("it has no route back to {s}"),
                    },
                    None => String::new(),
                };
                let mode = ctx.view.rp_filter(node, &d);
                let path = ctx.sysctl_path(node, &["net.ipv4.conf.all.rp_filter", &format!("net.ipv4.conf.{d}.rp_filter")]);
                let f = ctx.finding(
                    "rp-filter",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!(
                        "{node} drops packets from {src} arriving on {d}: reverse-path filtering is {} (rp_filter={mode}) and {back} (asymmetric routing, seen on the way {from} -> {dst})",
                        if mode == 1 { "strict" } else { "loose" }
                    ),
                    format!("set `net.ipv4.conf.all.rp_filter: 2` and `net.ipv4.conf.{d}.rp_filter: 2` (loose) in nodes.{node}.sysctls, or make the routes symmetric"),
                    path.as_deref(),
                );
                ctx.add(f);
            }
            "forwarding-off" => {
                let key = if dst.is_ipv4() { "net.ipv4.ip_forward" } else { "net.ipv6.conf.all.forwarding" };
                let path = ctx.sysctl_path(node, &[key]);
                let fix = match ctx.drift.find(|o| matches!(o, Op::SetSysctl { node: n, key: k, .. } if n == node && k == key)) {
                    Some(o) => ctx.drift.fix(o),
                    None => format!("set `{key}: 1` in nodes.{node}.sysctls"),
                };
                let f = ctx.finding(
                    "ip-forward-off",
                    Severity::Error,
                    node,
                    None,
                    format!("{node} is on the way from {from} to {dst} ({holder}) but does not forward: {key} is 0"),
                    fix,
                    path.as_deref(),
                );
                ctx.add(f);
            }
            "no-route" if dev.is_none() => {
                let v6 = dst.is_ipv6();
                let has_default =
                    ctx.view.nodes.get(node).map(|v| v.ns.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6)).unwrap_or(false);
                let node_path = ctx.rl.model().nodes.get(node).map(|n| {
                    let mut p = n.path.clone();
                    if !n.routes.is_empty() {
                        p.push(Seg::Key("routes".into()));
                    }
                    p
                });
                if has_default {
                    let f = ctx.finding(
                        "no-route",
                        Severity::Error,
                        node,
                        None,
                        format!("{node} has no route to {dst} ({holder}): {why}"),
                        format!("add a route to {dst}'s subnet in nodes.{node}.routes"),
                        node_path.as_deref(),
                    );
                    ctx.add(f);
                } else {
                    let key = (node.clone(), v6);
                    let what = format!("{dst} ({holder})");
                    match unrouted.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, list)) => {
                            if !list.contains(&what) {
                                list.push(what);
                            }
                        }
                        None => unrouted.push((key, vec![what])),
                    }
                }
            }
            "no-route" => {
                let f = ctx.finding(
                    "no-route",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!("{node} forwards packets from {from} to {dst} ({holder}) but has no route for them: {why}"),
                    format!("add a route to {dst}'s subnet in nodes.{node}.routes"),
                    ctx.rl.model().nodes.get(node).map(|n| n.path.clone()).as_deref(),
                );
                ctx.add(f);
            }
            "hairpin-off" => {
                let path = dev.as_ref().and_then(|d| ctx.iface_path(node, d));
                let f = ctx.finding(
                    "hairpin-off",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!("on the way {from} -> {dst}: {why}"),
                    format!("set `hairpin: true` on {}:{}", node, dev_s.clone().unwrap_or_default()),
                    path.as_deref(),
                );
                ctx.add(f);
            }
            "no-neighbour" => {
                // A next hop the file declares on a device, gone from the kernel.
                if let Some(f) = declared_but_gone(ctx, hops, dst) {
                    ctx.add(f);
                    continue;
                }
                let f = ctx.finding(
                    "unreachable-next-hop",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!("on the way {from} -> {dst}: {why}"),
                    "check the gateway address of the route and the addresses on this segment".into(),
                    None,
                );
                ctx.add(f);
            }
            "loop" => {
                let f = ctx.finding(
                    "routing-loop",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!("on the way {from} -> {dst}: {why}"),
                    "check the routes of the nodes on this path: they send the packet in a circle".into(),
                    None,
                );
                ctx.add(f);
            }
            // Down devices, missing devices, private macvlans: reported by the device checks.
            // A drop by the firewall the file declares is what the file asks for.
            "device-down" | "no-carrier" | "missing-device" | "macvlan-private" | "firewall" => {}
            other => {
                let f = ctx.finding(
                    "path-drop",
                    Severity::Warning,
                    node,
                    dev_s.as_deref(),
                    format!("on the way {from} -> {dst}: {why} ({other})"),
                    "see `vnet trace` for the whole path".into(),
                    None,
                );
                ctx.add(f);
            }
        }
    }
    Ok(())
}
