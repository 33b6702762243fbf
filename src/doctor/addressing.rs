//! Addresses and routes: declared but missing in the kernel, and addresses held twice.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Ctx, Severity};
use crate::model::source::Seg;
use crate::plan::Op;

pub(super) fn check(ctx: &mut Ctx) {
    let model = ctx.rl.model();
    for (nname, node) in &model.nodes {
        let Some(v) = ctx.view.nodes.get(nname) else { continue };
        for (ifname, iface) in &node.interfaces {
            let Some(l) = v.ns.link(ifname) else { continue };
            for (i, a) in iface.addresses.iter().enumerate() {
                if !v.ns.addrs.iter().any(|x| x.ifindex == l.ifindex && x.addr == *a) {
                    let mut p = iface.path.clone();
                    p.push(Seg::Key("addresses".into()));
                    p.push(Seg::Index(i));
                    let ns = ctx.ns_name(nname);
                    let fix = match ctx.drift.find(|o| matches!(o, Op::AddAddress { node, ifname: d, addr } if node == nname && d == ifname && addr == a)) {
                        Some(o) => format!("{} (or by hand: `ip {ns}addr add {a} dev {ifname}`)", ctx.drift.fix(o)),
                        None => format!("add it: `ip {ns}addr add {a} dev {ifname}` (or `vnet up` again)"),
                    };
                    let f = ctx.finding(
                        "missing-address",
                        Severity::Error,
                        nname,
                        Some(ifname),
                        format!("{a} is declared on {ifname} but the device does not have it"),
                        fix,
                        Some(&p),
                    );
                    ctx.add(f);
                }
            }
        }
        for r in &node.routes {
            if !route_present(&v.ns, r) {
                // The kernel drops routes whose gateway or device went away (a device down).
                let declared_dev = r
                    .via
                    .and_then(|g| node.interfaces.values().find(|i| i.addresses.iter().any(|a| a.contains(&g))))
                    .and_then(|i| v.ns.link(&i.name))
                    .map(|l| l.ifindex);
                let gw_dev = r.via.and_then(|g| v.ns.addrs.iter().find(|a| a.addr.contains(&g)).map(|a| a.ifindex)).or(declared_dev);
                let down_dev = gw_dev
                    .or_else(|| r.dev.as_ref().and_then(|d| v.ns.link(d).map(|l| l.ifindex)))
                    .and_then(|i| v.ns.link_by_index(i))
                    .filter(|l| !l.up || !l.carrier);
                let on_subnet =
                    r.via.is_none() || gw_dev.is_some() || node.interfaces.values().any(|i| i.addresses.iter().any(|a| r.via.is_some_and(|g| a.contains(&g))));
                // The declared device the route leaves by (its own, or the one on the gateway's
                // subnet), gone from the kernel: no route can be added by hand before it is back.
                let gone_dev = r
                    .dev
                    .as_deref()
                    .or_else(|| r.via.and_then(|g| node.interfaces.values().find(|i| i.addresses.iter().any(|a| a.contains(&g)))).map(|i| i.name.as_str()))
                    .filter(|d| node.interfaces.contains_key(*d) && v.ns.link(d).is_none());
                let fix = if let Some(l) = down_dev {
                    format!("{} is down or without carrier, so the kernel removed the route: fix {} first, then `vnet up` again adds the route", l.name, l.name)
                } else if let Some(d) = gone_dev {
                    format!(
                        "the device {d} it leaves by is missing, so the kernel removed the route: {}",
                        ctx.drift.recreate().replace("re-creates it", "re-creates both").replace("re-create it", "re-create both")
                    )
                } else if !on_subnet {
                    format!(
                        "the gateway {} is not on any subnet of {nname}: give {nname} an address on the gateway's subnet, then add the route",
                        r.via.map(|g| g.to_string()).unwrap_or_default()
                    )
                } else if let Some(o) = ctx
                    .drift
                    .find(|o| matches!(o, Op::AddRoute { node, route } if node == nname && route.dst == r.dst && route.table == r.table && route.via == r.via))
                {
                    format!("{} (or by hand: `ip {}{}`)", ctx.drift.fix(o), ctx.ns_name(nname), route_cmd(r))
                } else {
                    format!("add it: `ip {}{}` (or `vnet up` again)", ctx.ns_name(nname), route_cmd(r))
                };
                let f = ctx.finding(
                    "missing-route",
                    Severity::Error,
                    nname,
                    r.dev.as_deref(),
                    format!("route {r} is declared but the kernel does not have it"),
                    fix,
                    Some(&r.path),
                );
                ctx.add(f);
            }
        }
    }
    duplicates(ctx);
}

/// Whether the kernel has a declared route (same destination and table, and gateway and
/// metric when declared).
pub(super) fn route_present(ns: &crate::observed::ObservedNs, r: &crate::model::Route) -> bool {
    ns.routes.iter().any(|o| o.dst == r.dst && o.table == r.table && (r.via.is_none() || o.via == r.via) && (r.metric.is_none() || o.metric == r.metric))
}

fn declared_path(ctx: &Ctx, node: &str, dev: &str, a: IpAddr) -> Option<Vec<Seg>> {
    let iface = ctx.rl.model().nodes.get(node)?.interfaces.get(dev)?;
    let i = iface.addresses.iter().position(|x| x.addr() == a)?;
    let mut p = iface.path.clone();
    p.push(Seg::Key("addresses".into()));
    p.push(Seg::Index(i));
    Some(p)
}

/// One address on two devices of the lab: answers come from whichever wins the ARP race.
fn duplicates(ctx: &mut Ctx) {
    let mut by_addr: BTreeMap<IpAddr, Vec<(String, String)>> = BTreeMap::new();
    for (n, v) in &ctx.view.nodes {
        for a in &v.ns.addrs {
            let ip = a.addr.addr();
            let link_local = matches!(ip, IpAddr::V6(x) if (x.segments()[0] & 0xffc0) == 0xfe80);
            if ip.is_loopback() || link_local {
                continue;
            }
            let dev = v.ns.name_of(a.ifindex).unwrap_or("?").to_string();
            by_addr.entry(ip).or_default().push((n.clone(), dev));
        }
    }
    for (ip, holders) in by_addr {
        if holders.len() < 2 {
            continue;
        }
        let list = holders.iter().map(|(n, d)| format!("{n}:{d}")).collect::<Vec<_>>().join(", ");
        // Holders the file does not declare (added by hand): applying the file removes them.
        let strays: Vec<(&(String, String), String)> = holders
            .iter()
            .filter_map(|h| {
                ctx.drift
                    .find(|o| matches!(o, Op::DelAddress { node, ifname, addr } if *node == h.0 && *ifname == h.1 && addr.addr() == ip))
                    .map(|o| (h, ctx.drift.fix(o)))
            })
            .collect();
        for (n, d) in &holders {
            let path = declared_path(ctx, n, d, ip);
            let fix = match strays.iter().find(|((sn, sd), _)| sn == n && sd == d) {
                Some((_, fix)) => format!("this one is not in the file: {fix}"),
                None if path.is_some() && !strays.is_empty() => {
                    let others = strays.iter().map(|((sn, sd), _)| format!("{sn}:{sd}")).collect::<Vec<_>>().join(", ");
                    format!("this one is declared; the file does not declare {ip} on {others}: {}", strays[0].1)
                }
                None => format!("give all but one of them another address (`ip {}addr del {ip} dev {d}` here if this one is the stray)", ctx.ns_name(n)),
            };
            let f = ctx.finding(
                "duplicate-address",
                Severity::Error,
                n,
                Some(d),
                format!("{ip} is held by {} devices ({list}): replies come from whichever answers ARP/NDP first", holders.len()),
                fix,
                path.as_deref(),
            );
            ctx.add(f);
        }
    }
}

/// `route add ...` as iproute2 takes it.
fn route_cmd(r: &crate::model::Route) -> String {
    let fam = if r.dst.addr().is_ipv6() { "-6 " } else { "" };
    let dst = if r.dst.prefix_len() == 0 { "default".to_string() } else { r.dst.to_string() };
    let mut s = format!("{fam}route add {dst}");
    if let Some(v) = r.via {
        s.push_str(&format!(" via {v}"));
    }
    if let Some(d) = &r.dev {
        s.push_str(&format!(" dev {d}"));
    }
    if let Some(m) = r.metric {
        s.push_str(&format!(" metric {m}"));
    }
    if r.table != 254 {
        s.push_str(&format!(" table {}", r.table));
    }
    s
}
