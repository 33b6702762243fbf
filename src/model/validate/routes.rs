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

pub(super) fn check_routes(ctx: &mut Ctx, nname: &str, spec: &crate::model::file::NodeSpec, node: Option<&Node>) -> Vec<Route> {
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
                ctx.error_at(
                    &ctx.sub(&p, "dev"),
                    format!("unknown device `{dev}` in a route of node `{nname}`"),
                    format!("no device `{dev}` in node `{nname}`"),
                );
                push_did_you_mean(ctx, dev, node.interfaces.keys());
                ok = false;
            }
        }
        // The gateway must be on a connected prefix of the node (warning: on-link tricks exist).
        if let (Some(v), Some(node)) = (via, node) {
            let link_local_v6 = matches!(v, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
            let reachable =
                node.interfaces.iter().any(|(name, i)| r.dev.as_ref().is_none_or(|d| d == name) && i.addresses.iter().any(|a| a.contains(&v) && a.addr() != v))
                    || (link_local_v6 && r.dev.is_some())
                    || out.iter().any(|other| other.via.is_none() && other.dst.contains(&v));
            if !reachable {
                let own = node.interfaces.values().find(|i| i.addresses.iter().any(|a| a.addr() == v));
                let other_dev = r.dev.as_ref().and_then(|d| {
                    node.interfaces
                        .values()
                        .filter(|i| &i.name != d)
                        .find_map(|i| i.addresses.iter().find(|a| a.contains(&v) && a.addr() != v).map(|a| (d, i, a.trunc())))
                });
                let (msg, label) = match (own, other_dev) {
                    (Some(i), _) => (
                        format!("gateway {v} is node `{nname}`'s own address (on `{}`): a gateway is the next router's address", i.name),
                        "the node's own address",
                    ),
                    (None, Some((d, i, net))) => (format!("gateway {v} is not on a subnet of `{d}`: it is on `{}` ({net})", i.name), "on another device"),
                    (None, None) => {
                        (format!("gateway {v} is not reachable through any address of node `{nname}`"), "no address of the node covers this gateway")
                    }
                };
                ctx.warn_at(&ctx.sub(&p, "via"), msg, label);
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
    out
}
