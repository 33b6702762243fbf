//! One interface: its addresses and options, bridge ports and masters.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use indexmap::IndexMap;

use super::{parse_cidr, push_did_you_mean, Ctx};
use crate::model::diag::Diag;
use crate::model::file::InterfaceSpec;
use crate::model::kind::KindSpec;
use crate::model::lab::{parse_mac, Endpoint, Interface, Node};
use crate::model::source::Path;

pub(super) fn check_interface(
    ctx: &mut Ctx,
    nname: &str,
    ifname: &str,
    spec: &InterfaceSpec,
    path: &Path,
    addr_decls: &mut Vec<AddrDecl>,
    peer: Option<Endpoint>,
) -> Interface {
    let me = Endpoint::new(nname, ifname);
    let is_lo = matches!(spec.kind, KindSpec::Loopback(_));
    if let Some(mtu) = spec.mtu {
        let max = if is_lo { 65536 } else { 65535 };
        if !(68..=max).contains(&mtu) {
            ctx.error_at(&ctx.mtu_path(&me, path), format!("mtu {mtu} of `{me}` is out of range (68..={max})"), "out of range");
        }
    }
    let mac = match &spec.mac {
        None => None,
        Some(raw) => {
            let mp = ctx.sub(path, "mac");
            match parse_mac(raw) {
                Err(why) => {
                    ctx.error_at(&mp, format!("bad MAC address `{raw}`: {why}"), "bad MAC");
                    None
                }
                Ok(m) if m[0] & 1 == 1 => {
                    ctx.error_at(
                        &mp,
                        format!("MAC `{raw}` is a multicast address; a device needs a unicast one (first byte even), e.g. 02:..."),
                        "multicast MAC",
                    );
                    None
                }
                Ok(m) if m == [0; 6] => {
                    ctx.error_at(&mp, "MAC 00:00:00:00:00:00 is not a valid device address", "zero MAC");
                    None
                }
                Ok(_) if is_lo => {
                    ctx.error_at(&mp, "the loopback device has no MAC address", "not settable on lo");
                    None
                }
                Ok(m) => Some(m),
            }
        }
    };
    let mut addresses = Vec::new();
    let mut small_mtu_reported = false;
    for (i, raw) in spec.addresses.iter().enumerate() {
        let ap = ctx.idx(&ctx.sub(path, "addresses"), i);
        match parse_cidr(raw) {
            Err(why) => ctx.error_at(&ap, format!("bad address `{raw}`: {why}"), "bad CIDR"),
            Ok(net) => {
                if let Some((_, _, op)) = addr_decls.iter().rev().take_while(|(_, ep, _)| *ep == me).find(|(a, _, _)| *a == net.addr()) {
                    let (span, other_span) = (ctx.span(&ap), ctx.span(op));
                    ctx.push(
                        Diag::error(format!("address {} is declared twice (on the same interface)", net.addr()))
                            .maybe_label(span, "declared again here")
                            .maybe_label(other_span, "first declared here"),
                    );
                } else {
                    addr_decls.push((net.addr(), me.clone(), ap.clone()));
                }
                if net.addr().is_ipv6() && !small_mtu_reported {
                    if let Some(m) = spec.mtu.filter(|m| *m < 1280) {
                        small_mtu_reported = true;
                        let span = ctx.span(&ctx.mtu_path(&me, path));
                        ctx.push(
                            Diag::error(format!("`{me}` has IPv6 address {} but mtu {m}: IPv6 needs an MTU of at least 1280", net.addr()))
                                .maybe_label(span, "below 1280")
                                .maybe_label(ctx.span(&ap), "an IPv6 address")
                                .help(
                                    "the kernel turns IPv6 off on a device under 1280 and refuses its IPv6 addresses; raise the MTU or drop the IPv6 addresses",
                                ),
                        );
                    }
                }
                addresses.push(net);
            }
        }
    }
    if spec.hairpin.is_some() && spec.master.is_none() {
        ctx.error_at(&ctx.sub(path, "hairpin"), format!("`hairpin` is a bridge port option but `{me}` has no `master`"), "needs `master`");
    }
    Interface {
        name: ifname.to_string(),
        kind: spec.kind.clone(),
        up: spec.up.unwrap_or(true),
        mtu: spec.mtu,
        mac,
        addresses,
        master: spec.master.clone(),
        hairpin: spec.hairpin,
        peer,
        path: path.clone(),
    }
}

/// Ports a Linux bridge can hold: port numbers are 10 bits and 0 is reserved (BR_MAX_PORTS).
pub const BRIDGE_MAX_PORTS: usize = 1023;

pub(super) fn check_bridge_ports(ctx: &mut Ctx, nname: &str, node: &Node) {
    for br in node.interfaces.values().filter(|i| matches!(i.kind, KindSpec::Bridge(_))) {
        for port in node.interfaces.values().filter(|i| i.master.as_deref() == Some(br.name.as_str()) && !i.addresses.is_empty()) {
            ctx.warn_at(
                &ctx.sub(&port.path, "addresses"),
                format!("`{nname}:{}` is a port of bridge `{}`: the bridge takes all its traffic, so addresses on the port do not answer", port.name, br.name),
                "address on a bridge port",
            );
            if let Some(last) = ctx.diags_last_mut() {
                last.help = Some(format!("put the address on the bridge `{}` instead", br.name));
            }
        }
        let ports = node.interfaces.values().filter(|i| i.master.as_deref() == Some(br.name.as_str())).count();
        if ports > BRIDGE_MAX_PORTS {
            ctx.error_at_key(
                &br.path,
                format!("bridge `{nname}:{}` has {ports} ports; a Linux bridge holds at most {BRIDGE_MAX_PORTS}", br.name),
                "too many ports",
            );
            if let Some(last) = ctx.diags_last_mut() {
                last.help = Some("spread the ports over several bridges joined by veth pairs (one L2 segment)".into());
            }
        }
    }
}

pub(super) fn check_master(ctx: &mut Ctx, nname: &str, node: &Node, iface: &Interface, all: &IndexMap<String, Node>) {
    let Some(master) = &iface.master else { return };
    let mp = ctx.sub(&iface.path, "master");
    let me = Endpoint::new(nname, &iface.name);
    if master == &iface.name {
        ctx.error_at(&mp, format!("`{me}` cannot be its own master"), "same interface");
        return;
    }
    if matches!(iface.kind, KindSpec::Loopback(_)) {
        ctx.error_at(&mp, "the loopback device cannot be a bridge port", "lo has no master");
        return;
    }
    match node.interfaces.get(master) {
        // Its own error (an unknown kind, say) is reported.
        None if ctx.failed_iface(nname, master) => {}
        None => {
            ctx.error_at(
                &mp,
                format!("unknown device `{master}`: `master` of `{me}` must be a bridge, bond or team in node `{nname}`"),
                format!("no device `{master}` in node `{nname}`"),
            );
            let elsewhere =
                all.iter().filter(|(n, _)| *n != nname).find_map(|(n, other)| other.interfaces.get(master).filter(|m| m.kind.is_master()).map(|m| (n, m)));
            match elsewhere {
                Some((other, m)) => {
                    if let Some(last) = ctx.diags_last_mut() {
                        last.help = Some(format!("`{master}` is a {} in node `{other}`; a port and its master must be in the same node (connect the nodes with a veth pair and make the far end the port)", m.kind.name()));
                    }
                }
                None => push_did_you_mean(ctx, master, node.interfaces.keys()),
            }
        }
        // A master that failed to decode (`stp` without `kind: bridge`): a link made a plain
        // veth in its place.
        Some(_) if ctx.failed_iface(nname, master) => {}
        Some(m) if !m.kind.is_master() => {
            ctx.error_at(
                &mp,
                format!("`master` of `{me}` is `{master}`, a {}; it must be a bridge, bond or team in the same node", m.kind.name()),
                "not a master",
            );
        }
        Some(m) => {
            if iface.kind.is_master() && m.kind.is_master() && matches!(iface.kind, KindSpec::Bridge(_)) && matches!(m.kind, KindSpec::Bridge(_)) {
                ctx.error_at(
                    &mp,
                    format!("bridge `{me}` cannot be a port of bridge `{master}`: the kernel refuses bridges inside bridges"),
                    "bridge in a bridge",
                );
            }
            // Cycles through masters (a -> b -> a).
            let mut seen = HashSet::new();
            seen.insert(iface.name.clone());
            let mut cur = m;
            while let Some(next) = &cur.master {
                if !seen.insert(cur.name.clone()) || next == &iface.name {
                    ctx.error_at(&mp, format!("`master` chain of `{me}` loops back to itself"), "cycle");
                    break;
                }
                match node.interfaces.get(next) {
                    Some(n) => cur = n,
                    None => break,
                }
            }
        }
    }
}

/// An address as declared: the address, its interface, and where it is written.
pub(super) type AddrDecl = (IpAddr, Endpoint, Path);

/// The same address twice is an error where the two can meet: in one node (one namespace) or
/// on one layer-2 segment. Separate sites reusing a private range (behind NAT, say) are fine.
pub(super) fn check_duplicate_addresses(ctx: &mut Ctx, nodes: &IndexMap<String, Node>, decls: &[AddrDecl]) {
    let segs = crate::model::segments::segments_of(nodes);
    let seg_of: HashMap<&Endpoint, usize> = segs.iter().enumerate().flat_map(|(k, s)| s.iter().map(move |ep| (ep, k))).collect();
    let mut seen: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (k, (addr, ep, path)) in decls.iter().enumerate() {
        let earlier = seen.entry(*addr).or_default();
        let clash = earlier.iter().map(|&j| &decls[j]).find(|(_, o, _)| o.node == ep.node || (seg_of.contains_key(o) && seg_of.get(o) == seg_of.get(ep)));
        earlier.push(k);
        if let Some((_, other, op)) = clash {
            let where_ =
                if other.node == ep.node { format!("also on `{other}`, in the same node") } else { format!("also on `{other}`, on the same layer-2 segment") };
            let (span, other_span) = (ctx.span(path), ctx.span(op));
            ctx.push(
                Diag::error(format!("address {addr} is declared twice ({where_})"))
                    .maybe_label(span, "declared again here")
                    .maybe_label(other_span, "first declared here"),
            );
        }
    }
}

/// The same MAC on two devices of one layer-2 segment: neighbours and bridges cannot tell them
/// apart, so frames for one go to the other. A warning at the second one. Devices that share
/// their MAC by design are left alone: a VLAN or ipvlan and its lower device, a master and its
/// ports, the ports of one bond or team (it gives them its own MAC).
pub(super) fn check_duplicate_macs(ctx: &mut Ctx, nodes: &IndexMap<String, Node>) {
    let segs = crate::model::segments::segments_of(nodes);
    for seg in &segs {
        let with_mac: Vec<(&Endpoint, &Interface)> =
            seg.iter().filter_map(|ep| nodes.get(&ep.node).and_then(|n| n.interfaces.get(&ep.ifname)).filter(|i| i.mac.is_some()).map(|i| (ep, i))).collect();
        let mut reported: HashSet<&Endpoint> = HashSet::new();
        for (k, (ep, i)) in with_mac.iter().enumerate() {
            if reported.contains(ep) {
                continue;
            }
            let first = with_mac[..k].iter().find(|(o, oi)| oi.mac == i.mac && !shares_mac_by_design(nodes, o, oi, ep, i));
            let Some((other, oi)) = first else { continue };
            reported.insert(ep);
            let mac = crate::model::lab::format_mac(&i.mac.unwrap_or_default());
            let (span, other_span) = (ctx.span(&ctx.sub(&i.path, "mac")), ctx.span(&ctx.sub(&oi.path, "mac")));
            ctx.push(
                Diag::warning(format!(
                    "MAC {mac} of `{ep}` is also the MAC of `{other}`, on the same layer-2 segment: neighbours and bridges cannot tell them apart, so frames for one reach the other"
                ))
                .maybe_label(span, "same MAC again")
                .maybe_label(other_span, "first here")
                .help("give each device of a segment its own MAC (or leave `mac` out: the kernel picks a random one)"),
            );
        }
    }
}

/// Whether two devices share a MAC by design (see `check_duplicate_macs`).
fn shares_mac_by_design(nodes: &IndexMap<String, Node>, a: &Endpoint, ai: &Interface, b: &Endpoint, bi: &Interface) -> bool {
    if a.node != b.node {
        return false;
    }
    let on_lower =
        |x: &Interface, y: &Endpoint| matches!(x.kind, KindSpec::Vlan(_) | KindSpec::Ipvlan(_)) && x.kind.lower_endpoint(&y.node).as_ref() == Some(y);
    let master_of = |x: &Interface, y: &Interface| y.master.as_deref() == Some(x.name.as_str());
    let bonded = || {
        ai.master.is_some()
            && ai.master == bi.master
            && nodes
                .get(&a.node)
                .and_then(|n| n.interfaces.get(ai.master.as_deref().unwrap_or_default()))
                .is_some_and(|m| matches!(m.kind, KindSpec::Bond(_) | KindSpec::Team(_)))
    };
    on_lower(ai, b) || on_lower(bi, a) || master_of(ai, bi) || master_of(bi, ai) || bonded()
}

/// Both ends of a veth pair declared with different MTUs (on the interfaces, or one on its
/// link's and one on its own): frames over the smaller MTU that the other end sends are dropped
/// without a word. A warning at the pair, once. An end without an MTU is left alone (`vnet
/// doctor` compares the kernel's MTUs).
pub(super) fn check_veth_mtus(ctx: &mut Ctx, nodes: &IndexMap<String, Node>) {
    for (nname, node) in nodes {
        for i in node.interfaces.values() {
            let (KindSpec::Veth(_), Some(peer)) = (&i.kind, &i.peer) else { continue };
            let me = Endpoint::new(nname, &i.name);
            // Once per pair, and only when the other end is a veth here too (not a tunnel end).
            let Some(pi) = nodes.get(&peer.node).and_then(|n| n.interfaces.get(&peer.ifname)) else { continue };
            if !matches!(pi.kind, KindSpec::Veth(_))
                || pi.peer.as_ref() != Some(&me)
                || (peer.node.as_str(), peer.ifname.as_str()) < (nname.as_str(), i.name.as_str())
            {
                continue;
            }
            let (Some(a), Some(b)) = (i.mtu, pi.mtu) else { continue };
            // An MTU out of range is an error of its own.
            if a == b || !(68..=65535).contains(&a) || !(68..=65535).contains(&b) {
                continue;
            }
            let (sa, sb) = (ctx.span(&ctx.mtu_path(&me, &i.path)), ctx.span(&ctx.mtu_path(peer, &pi.path)));
            let small = a.min(b);
            ctx.push(
                Diag::warning(format!(
                    "the ends of veth pair `{me}` — `{peer}` have different MTUs ({a} and {b}): frames over {small} bytes from the larger end are dropped without an error"
                ))
                .maybe_label(sa, format!("mtu of `{me}`"))
                .maybe_label(sb, format!("mtu of `{peer}`"))
                .help(format!("give both ends the same MTU (`mtu: {small}` on the link, or on both interfaces)")),
            );
        }
    }
}
