//! Lab-wide checks of how devices stack: lower devices (macvlan, macvtap, ipvlan, vlan on a
//! `link`, vxlan on a `dev`), ports listed on bonds and teams, and bridge VLAN/fdb entries that
//! name ports. Runs once every interface of every node is known; also fills in what follows
//! from the stacking (ports' `master`, the VXLAN MTU default).

use std::collections::{BTreeMap, HashSet};

use indexmap::IndexMap;

use super::{KindSpec, MacvlanMode, VXLAN_OVERHEAD};
use crate::model::diag::Diag;
use crate::model::lab::{Endpoint, Node, HOST};
use crate::model::source::Path;
use crate::model::validate::Ctx;

/// Checks and resolves stacking; findings go to `ctx`.
pub(crate) fn resolve(ctx: &mut Ctx, nodes: &mut IndexMap<String, Node>, isolated_host: bool) {
    listed_ports(ctx, nodes);
    super::ovs::resolve(ctx, nodes);
    lowers(ctx, nodes, isolated_host);
    bridge_ports(ctx, nodes);
    bond_primary(ctx, nodes);
    vxlan_mtu(nodes);
}

fn field_of(kind: &KindSpec) -> &'static str {
    if matches!(kind, KindSpec::Vxlan(_)) {
        "dev"
    } else {
        "link"
    }
}

/// `ports: [...]` on bonds and teams: each port must exist in the node and have no other master.
fn listed_ports(ctx: &mut Ctx, nodes: &mut IndexMap<String, Node>) {
    for node in nodes.values_mut() {
        let mut claimed: BTreeMap<String, (String, Path)> = BTreeMap::new();
        let mut set: Vec<(String, String)> = Vec::new();
        for m in node.interfaces.values() {
            let pp = ctx.sub(&m.path, "ports");
            for (i, port) in m.kind.listed_ports().iter().enumerate() {
                let p = ctx.idx(&pp, i);
                let me = Endpoint::new(&node.name, port);
                let Some(pi) = node.interfaces.get(port) else {
                    if !ctx.failed_iface(&node.name, port) {
                        ctx.error_at(
                            &p,
                            format!("unknown device `{port}` in the ports of {} `{}:{}`", m.kind.name(), node.name, m.name),
                            format!("no device `{port}` in node `{}`", node.name),
                        );
                    }
                    continue;
                };
                if port == &m.name {
                    ctx.error_at(&p, format!("{} `{}:{}` cannot be its own port", m.kind.name(), node.name, m.name), "same device");
                    continue;
                }
                if let Some(other) = pi.master.as_ref().filter(|o| *o != &m.name) {
                    let other_span = ctx.span(&ctx.sub(&pi.path, "master"));
                    let span = ctx.span(&p);
                    ctx.push(
                        Diag::error(format!("`{me}` is listed as a port of {} `{}` but is already a port of `{other}`", m.kind.name(), m.name))
                            .maybe_label(span, "listed here")
                            .maybe_label(other_span, "its master")
                            .help("a device has at most one master"),
                    );
                    continue;
                }
                if let Some((prev, prev_path)) = claimed.get(port) {
                    let prev_span = ctx.span(prev_path);
                    let span = ctx.span(&p);
                    ctx.push(
                        Diag::error(format!("`{me}` is listed as a port of both `{prev}` and `{}`", m.name))
                            .maybe_label(span, "second listing")
                            .maybe_label(prev_span, "first listing")
                            .help("a device has at most one master"),
                    );
                    continue;
                }
                claimed.insert(port.clone(), (m.name.clone(), p));
                set.push((port.clone(), m.name.clone()));
            }
        }
        for (port, master) in set {
            if let Some(pi) = node.interfaces.get_mut(&port) {
                pi.master = Some(master);
            }
        }
    }
}

fn lowers(ctx: &mut Ctx, nodes: &IndexMap<String, Node>, isolated_host: bool) {
    // lower endpoint -> uppers (endpoint, kind, path of the `link` field)
    let mut uppers: BTreeMap<Endpoint, Vec<(Endpoint, KindSpec, Path)>> = BTreeMap::new();
    for (nname, node) in nodes {
        for iface in node.interfaces.values() {
            let Some(lower) = iface.kind.lower_endpoint(nname) else { continue };
            let me = Endpoint::new(nname, &iface.name);
            let kind = iface.kind.name();
            let lp = ctx.sub(&iface.path, field_of(&iface.kind));
            let Some(lnode) = nodes.get(&lower.node) else {
                if ctx.failed_node(&lower.node) {
                    continue;
                }
                ctx.error_at(&lp, format!("unknown node `{}` in the lower device `{lower}` of {kind} `{me}`", lower.node), format!("no node `{}`", lower.node));
                continue;
            };
            let Some(li) = lnode.interfaces.get(&lower.ifname) else {
                if ctx.failed_iface(&lower.node, &lower.ifname) {
                    continue;
                }
                ctx.error_at(
                    &lp,
                    format!("unknown device `{lower}`: the lower device of {kind} `{me}` must be declared in the lab"),
                    format!("no device `{}` in node `{}`", lower.ifname, lower.node),
                );
                continue;
            };
            if lower == me {
                ctx.error_at(&lp, format!("{kind} `{me}` cannot be its own lower device"), "same device");
                continue;
            }
            if lower.node != *nname {
                if !iface.kind.lower_may_be_elsewhere() {
                    ctx.error_at(&lp, format!("the underlay device of {kind} `{me}` must be in node `{nname}`, not `{}`", lower.node), "another node");
                    continue;
                }
                if nname == HOST && !isolated_host {
                    ctx.error_at(&lp, format!("{kind} `{me}` is in the real root namespace; its lower device must be there too (vnet only creates root-namespace devices from the root namespace)"), "another node");
                    continue;
                }
            }
            if matches!(li.kind, KindSpec::Loopback(_)) {
                ctx.error_at(&lp, format!("{kind} `{me}` cannot sit on the loopback device"), "loopback");
                continue;
            }
            if matches!(iface.kind, KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Ipvlan(_)) && matches!(li.kind, KindSpec::Tun(_)) {
                ctx.error_at(&lp, format!("{kind} `{me}` needs an Ethernet lower device; `{lower}` is a tun (layer 3)"), "not Ethernet");
                continue;
            }
            // Measured: `ip link set mv0 mtu 1600` on a macvlan over a 1500 veth is refused
            // (EINVAL); its MTU may be at most its lower device's. So is a VLAN's (Debian's
            // 6.1 kernel, lower veth or dummy at 1400: `ip link add link l0 name v mtu 1401
            // type vlan id 10`, 802.1Q or 802.1ad, EINVAL; `ip link set v mtu 1401` after, ERANGE).
            // An ipvlan's is not checked: the kernel takes any (mtu 1500 or 9000 over a 1400 or
            // 1500 lower, at creation and after, in modes l2, l3, l3s), and resets it to the
            // lower's whenever the lower's MTU changes.
            if matches!(iface.kind, KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Vlan(_)) {
                let lower_mtu = li.mtu.or(matches!(li.kind, KindSpec::Veth(_)).then_some(1500));
                if let (Some(m), Some(lm)) = (iface.mtu, lower_mtu) {
                    if m > lm {
                        ctx.error_at(
                            &ctx.sub(&iface.path, "mtu"),
                            format!(
                                "mtu {m} of {kind} `{me}` is above its lower device `{lower}`'s {lm}: the kernel refuses a {kind} larger than its lower device"
                            ),
                            format!("above {lm}"),
                        );
                    }
                }
            }
            if cycles(nodes, &me) {
                ctx.error_at(&lp, format!("the lower devices of `{me}` loop back to itself"), "cycle");
                continue;
            }
            uppers.entry(lower).or_default().push((me, iface.kind.clone(), lp));
        }
    }
    for (lower, list) in &uppers {
        let ipvlan = list.iter().find(|(_, k, _)| matches!(k, KindSpec::Ipvlan(_)));
        let macvlan = list.iter().find(|(_, k, _)| matches!(k, KindSpec::Macvlan(_) | KindSpec::Macvtap(_)));
        if let (Some((a, _, ap)), Some((b, bk, bp))) = (ipvlan, macvlan) {
            let (sa, sb) = (ctx.span(ap), ctx.span(bp));
            ctx.push(
                Diag::error(format!("ipvlan `{a}` and {} `{b}` share the lower device `{lower}`; the kernel refuses that (EBUSY)", bk.name()))
                    .maybe_label(sa, "ipvlan here")
                    .maybe_label(sb, format!("{} here", bk.name()))
                    .help("put the ipvlan devices and the macvlan devices on different lower devices"),
            );
        }
        let shared = list.iter().filter(|(_, k, _)| matches!(k, KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Ipvlan(_))).count();
        for (me, k, p) in list {
            if let KindSpec::Macvlan(s) | KindSpec::Macvtap(s) = k {
                if s.mode() == MacvlanMode::Passthru && shared > 1 {
                    let others: Vec<String> = list.iter().filter(|(o, _, _)| o != me).map(|(o, _, _)| format!("`{o}`")).collect();
                    let span = ctx.span(p);
                    ctx.push(
                        Diag::error(format!(
                            "{} `{me}` is in passthru mode: it takes over its lower device `{lower}`, which therefore cannot carry {} too",
                            k.name(),
                            others.join(", ")
                        ))
                        .maybe_label(span, "passthru here")
                        .help("one passthru device per lower device; use bridge, vepa or private mode to share it"),
                    );
                }
            }
        }
    }
}

/// Whether following lower devices from `start` comes back to it.
fn cycles(nodes: &IndexMap<String, Node>, start: &Endpoint) -> bool {
    let mut seen = HashSet::new();
    let mut cur = start.clone();
    for _ in 0..64 {
        let Some(i) = nodes.get(&cur.node).and_then(|n| n.interfaces.get(&cur.ifname)) else { return false };
        let Some(next) = i.kind.lower_endpoint(&cur.node) else { return false };
        if &next == start {
            return true;
        }
        if !seen.insert(next.clone()) {
            return false; // a loop not through `start`: reported on its own members
        }
        cur = next;
    }
    true
}

/// Bridge `vlans` keys and `fdb` ports name the bridge itself or one of its ports.
fn bridge_ports(ctx: &mut Ctx, nodes: &IndexMap<String, Node>) {
    for (nname, node) in nodes {
        for br in node.interfaces.values() {
            let KindSpec::Bridge(b) = &br.kind else { continue };
            let is_port = |p: &str| p == br.name || node.interfaces.get(p).is_some_and(|i| i.master.as_deref() == Some(br.name.as_str()));
            let vp = ctx.sub(&br.path, "vlans");
            for port in b.vlans.keys() {
                if !is_port(port) {
                    let p = ctx.sub(&vp, port);
                    ctx.error_at_key(
                        &p,
                        format!(
                            "`{port}` in the vlans of bridge `{nname}:{}` is not one of its ports (no device of node `{nname}` with `master: {}`)",
                            br.name, br.name
                        ),
                        "not a port",
                    );
                }
            }
            let fp = ctx.sub(&br.path, "fdb");
            for (i, e) in b.fdb.iter().enumerate() {
                if e.port != br.name && !is_port(&e.port) {
                    let p = ctx.sub(&ctx.idx(&fp, i), "port");
                    ctx.error_at(&p, format!("fdb port `{}` is not a port of bridge `{nname}:{}`", e.port, br.name), "not a port");
                }
            }
        }
    }
}

fn bond_primary(ctx: &mut Ctx, nodes: &IndexMap<String, Node>) {
    for (nname, node) in nodes {
        for bond in node.interfaces.values() {
            let KindSpec::Bond(b) = &bond.kind else { continue };
            let Some(p) = &b.primary else { continue };
            let ok = node.interfaces.get(p).is_some_and(|i| i.master.as_deref() == Some(bond.name.as_str()));
            if !ok && p != &bond.name {
                let pp = ctx.sub(&bond.path, "primary");
                ctx.error_at(&pp, format!("primary `{p}` of bond `{nname}:{}` is not one of its ports", bond.name), "not a port");
            }
        }
    }
}

/// A VXLAN without an MTU gets its underlay's MTU (1500 when none is named) minus the
/// encapsulation overhead, so overlay packets are never fragmented or dropped.
fn vxlan_mtu(nodes: &mut IndexMap<String, Node>) {
    let mut set = Vec::new();
    for (nname, node) in nodes.iter() {
        for i in node.interfaces.values() {
            let KindSpec::Vxlan(v) = &i.kind else { continue };
            if i.mtu.is_some() {
                continue;
            }
            let under = v.dev.as_ref().and_then(|d| node.interfaces.get(d)).and_then(|d| d.mtu).unwrap_or(1500);
            let v6 = v.remote_ip().or(v.group_ip()).or(v.local_ip()).is_some_and(|a| a.is_ipv6());
            let overhead = if v6 { VXLAN_OVERHEAD + 20 } else { VXLAN_OVERHEAD };
            set.push((nname.clone(), i.name.clone(), under.saturating_sub(overhead).max(68)));
        }
    }
    for (n, i, mtu) in set {
        if let Some(iface) = nodes.get_mut(&n).and_then(|n| n.interfaces.get_mut(&i)) {
            iface.mtu = Some(mtu);
        }
    }
}
