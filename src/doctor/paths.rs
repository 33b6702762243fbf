//! Paths between every pair of nodes, followed with the kernel's own lookups (the `trace`
//! walk, no probes), there and back; each drop becomes a finding: no route (and no default
//! route), forwarding off on a router, reverse-path filtering against an asymmetric route, a
//! bridge that does not reflect frames, a next hop nobody answers for, a routing loop.

use std::net::IpAddr;

use ipnet::IpNet;

use super::addressing::route_present;
use super::{Ctx, Finding, Severity};
use crate::error::Result;
use crate::model::lab::TABLE_MAIN;
use crate::model::source::{Path, Seg};
use crate::model::Interface;
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
    let mut unrouted: Unrouted = Vec::new();
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
                // What the file says must not reach is no problem (`no-reach` in `expect`).
                if declared_unreachable(model, a, *dst) {
                    continue;
                }
                // There and back as `trace` walks them (with the lab's declared NAT and firewall).
                let (there, back) = trace::there_and_back(ctx.rl, ctx.view, a, *dst, trace::Proto::Icmp)?;
                // A private address that a node of the lab hides behind NAT: the outside
                // (here a node without a route to it) is not meant to reach it.
                if hidden_behind_nat(model, a_addrs, *dst) && first_drop_is_no_route_at(&there.hops, a) {
                    continue;
                }
                findings(ctx, &there.hops, a, *dst, &mut unrouted)?;
                if let (Some(back), Some(src), Some(at)) = (back, there.src, there.at.as_deref()) {
                    findings(ctx, &back.hops, at, src, &mut unrouted)?;
                }
            }
        }
    }
    // Nodes without a default route: one finding each, naming what they cannot reach.
    for ((node, v6), unreached) in unrouted {
        let addrs: Vec<IpAddr> = unreached.iter().map(|(a, _)| *a).collect();
        let dsts: Vec<String> = unreached.into_iter().map(|(_, w)| w).collect();
        let gw = gateways(ctx, &node, v6, &addrs);
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
        let node_path = routes_path(ctx, &node);
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

/// Where a finding about a node's routes points: its `routes`, or the node when it has none.
fn routes_path(ctx: &Ctx, node: &str) -> Option<Path> {
    ctx.rl.model().nodes.get(node).map(|n| {
        let mut p = n.path.clone();
        if !n.routes.is_empty() {
            p.push(Seg::Key("routes".into()));
        }
        p
    })
}

/// Whether `dst` is in the sources a node masquerades or source-NATs while none of `from`'s
/// addresses is: `dst` is private to the inside of that NAT.
fn hidden_behind_nat(model: &crate::model::Lab, from: &[IpAddr], dst: IpAddr) -> bool {
    model.nodes.values().filter_map(|n| n.features.nft.as_ref()).flat_map(|t| &t.snat).any(|r| {
        let inside = |a: &IpAddr| r.source.iter().any(|s| s.contains(a));
        inside(&dst) && !from.iter().any(inside)
    })
}

/// Whether the first drop of a walk is `node` finding no route at all.
fn first_drop_is_no_route_at(hops: &[Hop], node: &str) -> bool {
    matches!(hops.iter().find(|h| matches!(h, Hop::Drop { .. })), Some(Hop::Drop { node: n, dev: None, cause, .. }) if n == node && cause == "no-route")
}

/// Whether the file's expectations say `from` must not reach `dst` (a `no-reach` naming the
/// node that holds it, or the address itself).
fn declared_unreachable(model: &crate::model::Lab, from: &str, dst: IpAddr) -> bool {
    use crate::model::expect::Expected;
    model.expect.iter().any(|e| e.from == from && e.expected == Expected::Reach { reach: false } && e.targets.iter().any(|t| t.addr == dst))
}

/// When the next hop of a dropped packet (the last route's gateway, or `dst`) is
/// declared on a device of the lab but no device holds it in the kernel: the finding that says so.
fn declared_but_gone(ctx: &Ctx, hops: &[Hop], dst: IpAddr) -> Option<Finding> {
    // The last route lookup before the drop chose the next hop (the drop may be further on, in
    // a bridge or another node's device).
    let next_hop = hops.iter().rev().find_map(|h| match h {
        Hop::Route { gateway, .. } => Some(gateway.unwrap_or(dst)),
        _ => None,
    })?;
    if !ctx.view.holders(next_hop).is_empty() {
        return None;
    }
    let (n, iface, i) = declared_at(ctx, next_hop)?;
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

/// Where the file declares `a`: node, interface and the address's index in its list.
fn declared_at<'a>(ctx: &Ctx<'a>, a: IpAddr) -> Option<(String, &'a Interface, usize)> {
    ctx.rl
        .model()
        .nodes
        .iter()
        .find_map(|(n, node)| node.interfaces.values().find_map(|iface| iface.addresses.iter().position(|x| x.addr() == a).map(|i| (n.clone(), iface, i))))
}

/// Who `dst` belongs to, in words: the node holding it; the node declaring it when the kernel
/// lost it; or nobody in the lab.
fn holder(ctx: &Ctx, dst: IpAddr) -> String {
    if let Some((n, _)) = ctx.view.holders(dst).first() {
        return n.to_string();
    }
    match declared_at(ctx, dst) {
        Some((n, _, _)) => format!("{n}, declared but not in the kernel"),
        None => "outside the lab".into(),
    }
}

/// A node's addresses: what the kernel has (added by hand too) and what the file declares
/// (the kernel may have lost it).
fn addresses(ctx: &Ctx, node: &str) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = ctx.view.nodes.get(node).map(|v| v.ns.addrs.iter().filter(|a| !a.automatic).map(|a| a.addr).collect()).unwrap_or_default();
    if let Some(n) = ctx.rl.model().nodes.get(node) {
        for a in n.interfaces.values().flat_map(|i| i.addresses.iter()) {
            if !out.contains(a) {
                out.push(*a);
            }
        }
    }
    out
}

/// Nodes sharing a subnet with `node` (address on that subnet), forwarding ones first.
fn gateways(ctx: &Ctx, node: &str, v6: bool, dsts: &[IpAddr]) -> Vec<(String, IpAddr)> {
    let view = ctx.view;
    let mut out: Vec<(bool, usize, String, IpAddr)> = Vec::new();
    for a in addresses(ctx, node).iter().filter(|a| a.addr().is_ipv6() == v6 && !a.addr().is_loopback()) {
        let net = a.trunc();
        for n in view.nodes.keys() {
            if n == node {
                continue;
            }
            // A neighbour is a gateway for these destinations only if it has them or a route
            // to them (a node on the same subnet that reaches none of them is no way there).
            let Some(v) = view.nodes.get(n) else { continue };
            let own: Vec<IpAddr> = addresses(ctx, n).iter().map(|b| b.addr()).collect();
            let reached = dsts.iter().filter(|d| own.contains(d) || v.ns.routes.iter().any(|r| r.kind == 1 && r.dst.contains(*d))).count();
            if reached == 0 {
                continue;
            }
            for b in addresses(ctx, n) {
                if net.contains(&b.addr()) && !out.iter().any(|(_, _, x, y)| x == n && *y == b.addr()) {
                    let key = if v6 { "net.ipv6.conf.all.forwarding" } else { "net.ipv4.ip_forward" };
                    let fwd = view.sysctl(n, key) == Some("1");
                    out.push((fwd, reached, n.clone(), b.addr()));
                }
            }
        }
    }
    out.sort_by_key(|(f, reached, n, _)| (!*f, std::cmp::Reverse(*reached), n.clone()));
    out.into_iter().map(|(_, _, n, a)| (n, a)).collect()
}

/// Why a node has no route to an address, when the device or addressing checks see the cause.
enum Known {
    /// Their finding says it, with its fix: the path adds nothing.
    Reported,
    /// A cause of its own, said in place of the missing route.
    Instead(Finding),
}

/// The cause of `node`'s missing route to `dst` that is not missing from the file: `dst` is on
/// the subnet of one of the node's own declared devices, and that device is missing, down or
/// without its declared address (its connected route went with it), or that connected route
/// was deleted; or `dst` is behind a declared route the kernel lost. `forwarded`: the packet
/// came from elsewhere (a lost default route is then the `missing-route` finding's too; for
/// what the node itself sends it is `no-default-route`'s, with the plan's fix).
fn known_cause(ctx: &Ctx, node: &str, dst: IpAddr, forwarded: bool) -> Option<Known> {
    let n = ctx.rl.model().nodes.get(node)?;
    let v = ctx.view.nodes.get(node)?;
    let reported = |code: &str, dev: &str| ctx.out.iter().any(|f| f.code == code && f.node == node && f.device.as_deref() == Some(dev));
    let own = n
        .interfaces
        .values()
        .flat_map(|i| i.addresses.iter().enumerate().map(move |(k, a)| (i, k, a)))
        .filter(|(_, _, a)| a.contains(&dst))
        .max_by_key(|(_, _, a)| a.prefix_len());
    if let Some((iface, k, a)) = own {
        let dev = iface.name.as_str();
        match v.ns.link(dev) {
            None if reported("missing-device", dev) => return Some(Known::Reported),
            Some(l) if !l.up && iface.up && reported("device-down", dev) => return Some(Known::Reported),
            Some(l) if !l.up && !iface.up => {
                let f = ctx.finding(
                    "no-route",
                    Severity::Error,
                    node,
                    Some(dev),
                    format!("{node} has no route to {dst} ({}): it is on the subnet of {a} on {dev}, which the file declares down", holder(ctx, dst)),
                    format!("declare {dev} up (drop `up: false` in nodes.{node}.interfaces.{dev}) so that its subnet is reachable"),
                    Some(&iface.path),
                );
                return Some(Known::Instead(f));
            }
            Some(l) if l.up => {
                let has = v.ns.addrs.iter().any(|x| x.ifindex == l.ifindex && x.addr == *a);
                if !has && reported("missing-address", dev) {
                    return Some(Known::Reported);
                }
                let net = a.trunc();
                if has && !v.ns.routes.iter().any(|r| r.dst == net && r.table == TABLE_MAIN && r.oif == Some(l.ifindex)) {
                    // The address is there, its connected route is not: deleted by hand. `vnet
                    // up` does not put back what the kernel makes itself.
                    let mut p = iface.path.clone();
                    p.push(Seg::Key("addresses".into()));
                    p.push(Seg::Index(k));
                    let fam = if net.addr().is_ipv6() { "-6 " } else { "" };
                    let f = ctx.finding(
                        "missing-route",
                        Severity::Error,
                        node,
                        Some(dev),
                        format!(
                            "{node} has no route to {dst} ({}): the connected route {net} dev {dev} of its address {a} is not in the kernel (deleted by hand)",
                            holder(ctx, dst)
                        ),
                        format!(
                            "put it back: `ip {}{fam}route add {net} dev {dev} proto kernel scope link src {}` (or delete the address {a} and add it again)",
                            ctx.ns_name(node),
                            a.addr()
                        ),
                        Some(&p),
                    );
                    return Some(Known::Instead(f));
                }
            }
            _ => {}
        }
    }
    // Behind a declared route the kernel lost: `missing-route` (made for every declared route the
    // kernel lacks) says so and how to put it back.
    let r = n.routes.iter().filter(|r| r.table == TABLE_MAIN && r.dst.contains(&dst)).max_by_key(|r| r.dst.prefix_len())?;
    (!route_present(&v.ns, r) && (forwarded || !r.is_default())).then_some(Known::Reported)
}

/// A finding of the device checks on this device: it explains what a path sees there.
fn device_reported(ctx: &Ctx, node: &str, dev: &str) -> bool {
    const CODES: [&str; 5] = ["missing-device", "device-down", "peer-down", "no-carrier", "not-in-bridge"];
    ctx.out.iter().any(|f| f.node == node && f.device.as_deref() == Some(dev) && CODES.contains(&f.code))
}

/// Whether a device finding explains why `next_hop` did not answer on the segment where `node`
/// dropped the packet: on the device it left by, or on the holder's device or its peer.
fn next_hop_reported(ctx: &Ctx, node: &str, dev: Option<&str>, next_hop: IpAddr) -> bool {
    if dev.is_some_and(|d| device_reported(ctx, node, d)) {
        return true;
    }
    ctx.view.holders(next_hop).into_iter().any(|(hn, hi)| {
        let Some(l) = ctx.view.link(hn, hi) else { return false };
        device_reported(ctx, hn, &l.name)
            || ctx.view.linked(hn, l).and_then(|(pn, pi)| ctx.view.link(pn, pi).map(|p| (pn, p))).is_some_and(|(pn, p)| device_reported(ctx, pn, &p.name))
    })
}

/// The fix for packets from `src` that `node` drops on `dev` by reverse-path filtering (effective
/// mode `mode`; `routed_back`: it has a route back to `src`, by another device). When the file
/// already has what lets them in (the sysctls, or the route back), the kernel drifted from it and
/// applying the file again is the fix.
fn rp_filter_fix(ctx: &Ctx, node: &str, dev: &str, keys: &[String; 2], mode: u8, src: Option<IpAddr>, routed_back: bool) -> String {
    // A declared route back to the source through this device, lost by the kernel.
    let on_dev = |via: Option<IpAddr>, rdev: Option<&str>| {
        rdev == Some(dev)
            || via
                .is_some_and(|g| ctx.rl.model().nodes.get(node).and_then(|n| n.interfaces.get(dev)).is_some_and(|i| i.addresses.iter().any(|a| a.contains(&g))))
    };
    if let Some(o) = src.and_then(|s| {
        ctx.drift.find(
            |o| matches!(o, Op::AddRoute { node: n, route } if n == node && route.table == TABLE_MAIN && route.dst.contains(&s) && on_dev(route.via, route.dev.as_deref())),
        )
    }) {
        return ctx.drift.fix(o);
    }
    // The declared filtering, which `vnet up` would put back: off, or loose where a route back exists.
    let ops: Vec<&Op> = keys.iter().filter_map(|k| ctx.drift.find(|o| matches!(o, Op::SetSysctl { node: n, key, .. } if n == node && key == k))).collect();
    let value = |k: &str| {
        let declared = ops.iter().find_map(|o| match o {
            Op::SetSysctl { key, value, .. } if key == k => value.parse::<u8>().ok(),
            _ => None,
        });
        declared.or_else(|| ctx.view.sysctl(node, k).and_then(|v| v.parse::<u8>().ok())).unwrap_or(0)
    };
    let declared_mode = value(&keys[0]).max(value(&keys[1]));
    if let Some(o) = ops.first() {
        if declared_mode == 0 || (declared_mode == 2 && routed_back) {
            return ctx.drift.fix(o);
        }
    }
    let s = src.map(|s| s.to_string()).unwrap_or_else(|| "the source".into());
    if mode == 1 && routed_back {
        format!("set `{}: 2` and `{}: 2` (loose) in nodes.{node}.sysctls, or make the routes symmetric", keys[0], keys[1])
    } else {
        format!(
            "add a route back to {s} through {dev} to nodes.{node}.routes (strict or loose, the filter drops sources with no route back), or turn filtering off: `{}: 0` and `{}: 0` in nodes.{node}.sysctls",
            keys[0], keys[1]
        )
    }
}

/// Per node and family (IPv6?): the destinations it has no route to, with their label.
type Unrouted = Vec<((String, bool), Vec<(IpAddr, String)>)>;

fn findings(ctx: &mut Ctx, hops: &[Hop], from: &str, dst: IpAddr, unrouted: &mut Unrouted) -> Result<()> {
    let holder = holder(ctx, dst);
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
                // The device the route back to the source leaves by (None: no route back).
                let back_dev = match last_src {
                    Some(s) => match ctx.rl.route_lookup(node, Lookup::to(s))? {
                        Ok((_, Some(bd))) => Some(bd),
                        _ => None,
                    },
                    None => None,
                };
                let back = match (last_src, &back_dev) {
                    (Some(s), Some(bd)) => format!("its route back to {s} leaves by {bd}"),
                    (Some(s), None) => format!("it has no route back to {s}"),
                    (None, _) => String::new(),
                };
                let mode = ctx.view.rp_filter(node, &d);
                let keys = ["net.ipv4.conf.all.rp_filter".to_string(), format!("net.ipv4.conf.{d}.rp_filter")];
                let path = ctx.sysctl_path(node, &[&keys[0], &keys[1]]);
                let fix = rp_filter_fix(ctx, node, &d, &keys, mode, last_src, back_dev.is_some());
                let f = ctx.finding(
                    "rp-filter",
                    Severity::Error,
                    node,
                    dev_s.as_deref(),
                    format!(
                        "{node} drops packets from {src} arriving on {d}: reverse-path filtering is {} (rp_filter={mode}) and {back} (asymmetric routing, seen on the way {from} -> {dst})",
                        if mode == 1 { "strict" } else { "loose" }
                    ),
                    fix,
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
                match known_cause(ctx, node, dst, false) {
                    Some(Known::Reported) => continue,
                    Some(Known::Instead(f)) => {
                        ctx.add(f);
                        continue;
                    }
                    None => {}
                }
                let v6 = dst.is_ipv6();
                let has_default =
                    ctx.view.nodes.get(node).map(|v| v.ns.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6)).unwrap_or(false);
                let node_path = routes_path(ctx, node);
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
                    let what = (dst, format!("{dst} ({holder})"));
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
                match known_cause(ctx, node, dst, true) {
                    Some(Known::Reported) => continue,
                    Some(Known::Instead(f)) => {
                        ctx.add(f);
                        continue;
                    }
                    None => {}
                }
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
                    match ctx.drift.find(|o| matches!(o, Op::SetPort { node: n, ifname, hairpin: true } if n == node && Some(ifname) == dev.as_ref())) {
                        Some(o) => ctx.drift.fix(o),
                        None => format!("set `hairpin: true` on {}:{}", node, dev_s.clone().unwrap_or_default()),
                    },
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
                // A device on the way to the next hop is missing, down, without carrier or out
                // of its bridge: that device's finding is the cause.
                let next_hop = hops.iter().rev().find_map(|h| match h {
                    Hop::Route { gateway, .. } => Some(gateway.unwrap_or(dst)),
                    _ => None,
                });
                if next_hop.is_some_and(|nh| next_hop_reported(ctx, node, dev.as_deref(), nh)) {
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
