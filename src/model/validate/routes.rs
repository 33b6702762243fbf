//! Addresses in CIDR form, and routes: destinations, gateways (on a connected subnet of the
//! node, else a warning), devices, tables and duplicates.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{push_did_you_mean, Ctx};
use crate::model::diag::Diag;
use crate::model::file::TableRef;
use crate::model::lab::{Node, Route, TABLE_LOCAL, TABLE_MAIN};

/// Parses `10.0.0.1/24` / `fd00::1/64`. A bare address is refused: the prefix decides the
/// connected route, so guessing it would be a silent source of "unreachable".
pub fn parse_cidr(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    if !raw.contains('/') {
        if raw.parse::<IpAddr>().is_ok() {
            return Err("missing prefix length (e.g. `/24` or `/64`)".into());
        }
        return Err("not an IP address".into());
    }
    let (a, p) = raw.split_once('/').unwrap();
    let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an IP address"))?;
    let plen: u8 = p.parse().map_err(|_| format!("`{p}` is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if plen > max {
        return Err(format!("prefix length {plen} is over {max}"));
    }
    if addr.is_unspecified() {
        return Err("the unspecified address cannot be assigned".into());
    }
    if addr.is_multicast() {
        return Err("a multicast address cannot be assigned to an interface".into());
    }
    IpNet::new(addr, plen).map_err(|e| e.to_string())
}

/// What is wrong with a value written like an address or a prefix (hex digits with dots or
/// colons, maybe a `/`) that does not parse as one: the message and a short label. `None` when
/// it does not look like one (a node name, say), so the caller's own wording applies.
pub(crate) fn address_like_problem(raw: &str) -> Option<(String, &'static str)> {
    let s = raw.trim();
    let looks = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/'))
        && s.chars().any(|c| c.is_ascii_digit())
        && (s.contains('.') || s.contains(':'));
    if !looks {
        return None;
    }
    let why_addr = |a: &str| -> String {
        if a.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let parts: Vec<&str> = a.split('.').collect();
            if parts.len() != 4 {
                return format!("an IPv4 address has four numbers, `{a}` has {}", parts.len());
            }
            if let Some(bad) = parts.iter().find(|p| p.parse::<u8>().is_err()) {
                return if bad.is_empty() { format!("`{a}` has an empty number") } else { format!("`{bad}` in `{a}` is over 255") };
            }
        }
        format!("`{a}` is not an IP address")
    };
    Some(match s.split_once('/') {
        Some((a, p)) => {
            let why = match a.parse::<IpAddr>() {
                Err(_) => why_addr(a),
                Ok(addr) => {
                    let max = if addr.is_ipv4() { 32 } else { 128 };
                    match p.parse::<u8>() {
                        Ok(plen) if plen > max => format!("prefix length {plen} is over {max}"),
                        Ok(_) => return None,
                        Err(_) => format!("`{p}` is not a prefix length (0 to {max})"),
                    }
                }
            };
            (format!("bad prefix `{s}`: {why}"), "bad prefix")
        }
        None => match s.parse::<IpAddr>() {
            Ok(_) => return None,
            Err(_) => (format!("bad address `{s}`: {}", why_addr(s)), "bad address"),
        },
    })
}

fn parse_route_dst(raw: &str, via: Option<IpAddr>) -> Result<IpNet, String> {
    match raw.trim() {
        "default" => Ok(match via {
            Some(IpAddr::V6(_)) => "::/0".parse().unwrap(),
            _ => "0.0.0.0/0".parse().unwrap(),
        }),
        "default6" => Ok("::/0".parse().unwrap()),
        s if s.contains('/') => {
            let net: IpNet = s.parse().map_err(|_| format!("`{s}` is not a prefix"))?;
            if net.trunc() != net {
                return Err(format!("`{s}` has host bits set; did you mean `{}`?", net.trunc()));
            }
            Ok(net)
        }
        s => {
            let a: IpAddr = s.parse().map_err(|_| format!("`{s}` is not `default`, a prefix or an address"))?;
            Ok(IpNet::from(a))
        }
    }
}

/// `root`: the node is the machine's root namespace, where undeclared devices and addresses
/// exist, so what the file alone cannot show reachable is only a warning.
pub(super) fn check_routes(ctx: &mut Ctx, nname: &str, spec: &crate::model::file::NodeSpec, node: Option<&Node>, root: bool) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    let rbase = ctx.sub(&ctx.node_path(nname), "routes");
    for (i, r) in spec.routes.iter().enumerate() {
        let p = ctx.idx(&rbase, i);
        let mut ok = true;
        let via = match &r.via {
            None => None,
            Some(v) => match v.trim().parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    ctx.error_at(&ctx.sub(&p, "via"), format!("gateway `{v}` is not an IP address"), "bad address");
                    ok = false;
                    None
                }
            },
        };
        let dst = match parse_route_dst(&r.to, via) {
            Ok(d) => Some(d),
            Err(why) => {
                ctx.error_at(&ctx.sub(&p, "to"), format!("bad route destination: {why}"), "bad destination");
                ok = false;
                None
            }
        };
        let src = match &r.src {
            None => None,
            Some(s) => match s.trim().parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    ctx.error_at(&ctx.sub(&p, "src"), format!("source `{s}` is not an IP address"), "bad address");
                    ok = false;
                    None
                }
            },
        };
        let table = match &r.table {
            None => TABLE_MAIN,
            Some(TableRef::Id(0)) => {
                ctx.error_at(&ctx.sub(&p, "table"), "table 0 is not a routing table", "use 1.. or main");
                ok = false;
                0
            }
            Some(TableRef::Id(n)) => *n,
            Some(TableRef::Name(s)) => match s.as_str() {
                "main" => TABLE_MAIN,
                "local" => TABLE_LOCAL,
                "default" => 253,
                other => {
                    ctx.error_at(&ctx.sub(&p, "table"), format!("unknown table `{other}`: use a number, `main` or `local`"), "unknown table");
                    ok = false;
                    0
                }
            },
        };
        if r.via.is_none() && r.dev.is_none() {
            ctx.error_at(&p, "a route needs `via` (a gateway), `dev` (a device), or both", "neither via nor dev");
            ok = false;
        }
        if let (Some(d), Some(v)) = (dst, via) {
            if d.addr().is_ipv4() != v.is_ipv4() {
                ctx.error_at(&ctx.sub(&p, "via"), format!("gateway {v} and destination {d} are of different IP families"), "family mismatch");
                ok = false;
            }
        }
        if let (Some(d), Some(s)) = (dst, src) {
            if d.addr().is_ipv4() != s.is_ipv4() {
                ctx.error_at(&ctx.sub(&p, "src"), format!("source {s} and destination {d} are of different IP families"), "family mismatch");
                ok = false;
            }
        }
        if let (Some(dev), Some(node)) = (&r.dev, node) {
            if !node.interfaces.contains_key(dev) {
                if !ctx.failed_iface(nname, dev) {
                    ctx.error_at(
                        &ctx.sub(&p, "dev"),
                        format!("unknown device `{dev}` in a route of node `{nname}`"),
                        format!("no device `{dev}` in node `{nname}`"),
                    );
                    push_did_you_mean(ctx, dev, node.interfaces.keys());
                }
                ok = false;
            }
        }
        if ok {
            if let Some(dst) = dst {
                let route = Route { dst, via, dev: r.dev.clone(), metric: r.metric, table, src, path: p.clone() };
                if let Some(first) = out.iter().find(|o| o.dst == route.dst && o.table == route.table && o.metric == route.metric) {
                    let table = match table {
                        TABLE_MAIN => "main".to_string(),
                        TABLE_LOCAL => "local".to_string(),
                        t => t.to_string(),
                    };
                    let (span, first_span) = (ctx.span(&p), ctx.span(&first.path));
                    ctx.push(
                        Diag::error(format!("route to {} (table {table}, metric {}) is declared twice", route.dst, route.metric.unwrap_or(0)))
                            .maybe_label(span, "declared again here")
                            .maybe_label(first_span, "first declared here")
                            .help("routes are told apart by destination, table and metric; merge them or give one another metric"),
                    );
                } else {
                    out.push(route);
                }
            }
        }
    }
    if let Some(node) = node.filter(|_| !ctx.partial) {
        for r in &out {
            check_next_hop(ctx, node, r, &out, root);
        }
    }
    out
}

/// What the kernel refuses when the route is added: a gateway no connected subnet or device
/// route of the node reaches ("Nexthop has invalid gateway"), a device that is down, a source
/// that is not the node's. Errors, since `up` is certain to fail on them; in the machine's root
/// namespace (`host` without `isolated_host`) undeclared devices may make them work, so
/// warnings there.
fn check_next_hop(ctx: &mut Ctx, node: &Node, r: &Route, all: &[Route], root: bool) {
    let nname = node.name.as_str();
    let report = |ctx: &mut Ctx, path: &[crate::model::source::Seg], msg: String, label: &str, help: &str| {
        let span = ctx.span(path);
        let d = if root { Diag::warning(msg) } else { Diag::error(msg) };
        ctx.push(d.maybe_label(span, label).help(help));
    };
    let is_up = |d: &str| node.interfaces.get(d).is_some_and(|i| i.up);
    if let Some(d) = &r.dev {
        if node.interfaces.contains_key(d) && !is_up(d) {
            let msg = format!("route to {} of node `{nname}` goes through `{d}`, which is declared `up: false`", r.dst);
            report(
                ctx,
                &ctx.sub(&r.path, "dev"),
                msg,
                "a device that is down",
                "the kernel refuses routes through a device that is down; bring it up or drop the route",
            );
            return;
        }
    }
    if let Some(v) = r.via {
        let link_local_v6 = matches!(v, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
        let via_path = ctx.sub(&r.path, "via");
        if link_local_v6 {
            if r.dev.is_none() {
                let msg = format!("gateway {v} is a link-local address: the route needs `dev` to say on which link");
                report(ctx, &via_path, msg, "link-local gateway without `dev`", "add `dev: IFNAME` to the route");
            }
        } else if let Some(why) = not_a_router(node, v) {
            report(
                ctx,
                &via_path,
                format!("gateway {v} is {why}"),
                "not a router's address",
                "the kernel refuses it (\"Nexthop has invalid gateway\"); use the next router's own address",
            );
        } else if !gateway_reachable(node, r, all) {
            gateway_problem(ctx, node, r, v, &via_path, root);
        }
    }
    if let Some(s) = r.src {
        let own = s.is_loopback() || node.interfaces.values().any(|i| i.addresses.iter().any(|a| a.addr() == s));
        if !own {
            let mut mine: Vec<String> =
                node.interfaces.values().flat_map(|i| i.addresses.iter()).filter(|a| a.addr().is_ipv4() == s.is_ipv4()).map(|a| a.addr().to_string()).collect();
            mine.dedup();
            let help = if mine.is_empty() {
                format!("`src` is the address the node sends from on this route; node `{nname}` has no address of that family")
            } else {
                format!("`src` is the address the node sends from on this route; node `{nname}` has {}", mine.join(", "))
            };
            let msg = format!("source {s} of the route to {} is not an address of node `{nname}`", r.dst);
            report(ctx, &ctx.sub(&r.path, "src"), msg, "not the node's address", &help);
        }
    }
}

/// Addresses no router holds: multicast, and an IPv4 subnet's broadcast address.
fn not_a_router(node: &Node, v: IpAddr) -> Option<String> {
    if v.is_multicast() {
        return Some("a multicast address".into());
    }
    node.interfaces.values().flat_map(|i| i.addresses.iter()).find_map(|a| match (a, v) {
        (IpNet::V4(n), IpAddr::V4(g)) if n.prefix_len() <= 30 && n.broadcast() == g => Some(format!("the broadcast address of {}", n.trunc())),
        _ => None,
    })
}

/// A gateway is reached through a connected subnet of an up device (the kernel adds no prefix
/// route for a device that is down) or a device route of the node, in the route's own table or
/// the ones every lookup sees (local, main, default). A route through another gateway does not
/// count: IPv4 and IPv6 both refuse recursive next hops.
fn gateway_reachable(node: &Node, r: &Route, all: &[Route]) -> bool {
    let Some(v) = r.via else { return true };
    let dev_ok = |name: &str| r.dev.as_deref().is_none_or(|d| d == name) && node.interfaces.get(name).is_some_and(|i| i.up);
    let connected = node.interfaces.iter().any(|(name, i)| dev_ok(name) && i.addresses.iter().any(|a| a.contains(&v) && a.addr() != v));
    let seen_tables = [r.table, TABLE_MAIN, TABLE_LOCAL, 253];
    let device_route = all.iter().any(|o| o.via.is_none() && o.dst.contains(&v) && seen_tables.contains(&o.table) && o.dev.as_deref().is_some_and(dev_ok));
    connected || device_route
}

fn gateway_problem(ctx: &mut Ctx, node: &Node, r: &Route, v: IpAddr, via_path: &[crate::model::source::Seg], root: bool) {
    let nname = node.name.as_str();
    let own = node.interfaces.values().find(|i| i.addresses.iter().any(|a| a.addr() == v));
    let covering = |i: &&crate::model::lab::Interface| i.addresses.iter().find(|a| a.contains(&v) && a.addr() != v).map(|a| a.trunc());
    let down = node.interfaces.values().filter(|i| !i.up).find_map(|i| covering(&i).map(|net| (i, net)));
    let other_dev = r.dev.as_ref().and_then(|d| node.interfaces.values().filter(|i| &i.name != d && i.up).find_map(|i| covering(&i).map(|net| (d, i, net))));
    let refused = "the kernel refuses a gateway that no connected subnet of the node reaches (\"Nexthop has invalid gateway\")";
    let (msg, label, help) = match (own, down, other_dev) {
        (Some(i), _, _) => {
            let msg = format!("gateway {v} is node `{nname}`'s own address (on `{}`): a gateway is the next router's address", i.name);
            // IPv4 takes it (packets go nowhere); IPv6 refuses it.
            if v.is_ipv4() {
                ctx.warn_at(via_path, msg, "the node's own address");
                return;
            }
            (msg, "the node's own address", "the kernel refuses an IPv6 gateway that is a local address; use the next router's address".to_string())
        }
        (None, Some((i, net)), _) => (
            format!("gateway {v} is on {net} of `{}`, which is declared `up: false`", i.name),
            "on a device that is down",
            format!("a device that is down has no connected route; bring `{}` up", i.name),
        ),
        (None, None, Some((d, i, net))) => (
            format!("gateway {v} is not on a subnet of `{d}`: it is on `{}` ({net})", i.name),
            "on another device",
            format!("{refused}; use `dev: {}` or drop `dev`", i.name),
        ),
        (None, None, None) => (
            format!("gateway {v} is not reachable through any address of node `{nname}`"),
            "no address of the node covers this gateway",
            format!("{refused}; give the node an address on the gateway's subnet, or a route to it with `dev`"),
        ),
    };
    let span = ctx.span(via_path);
    let d = if root { Diag::warning(msg) } else { Diag::error(msg) };
    ctx.push(d.maybe_label(span, label).help(help));
}
