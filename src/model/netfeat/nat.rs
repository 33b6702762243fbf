//! NAT and firewall of a node, checked: sources and destinations resolved to prefixes, devices
//! checked against the node, port forwards resolved to an address and port. The result is one
//! nftables table per node (`vnet_<lab>`), built by `kernel::nft`.

use std::net::IpAddr;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Serialize;

use super::spec::{ChainKind, FirewallSpec, L4Proto, NatSpec, Verdict};
use super::{check_dev, resolve_target};
use crate::model::lab::Node;
use crate::model::source::Path;
use crate::model::validate::Ctx;

/// Source NAT to a fixed address (or masquerade when `to` is `None`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Snat {
    pub source: Vec<IpNet>,
    pub out: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<IpAddr>,
}

/// A port forward: packets to `port` (arriving on `in_dev`) go to `to_addr:to_port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Dnat {
    pub proto: L4Proto,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_dev: Option<String>,
    pub to_addr: IpAddr,
    pub to_port: u16,
}

/// One allow/deny rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FwRule {
    pub chain: ChainKind,
    pub action: Verdict,
    /// Empty: any source.
    pub from: Vec<IpNet>,
    /// Empty: any destination.
    pub to: Vec<IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<L4Proto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Everything that goes into a node's nftables table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct NftSpec {
    /// Masquerade (`to: None`) and SNAT rules, in file order (masquerade first).
    pub snat: Vec<Snat>,
    pub dnat: Vec<Dnat>,
    /// Policy of the forward chain.
    pub forward_policy: Verdict,
    pub rules: Vec<FwRule>,
}

impl NftSpec {
    /// Whether the node forwards translated packets (and so needs ip_forward).
    pub fn needs_forwarding(&self) -> bool {
        !self.snat.is_empty() || !self.dnat.is_empty()
    }

    /// A one-line summary for plans.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let n = self.snat.iter().filter(|s| s.to.is_none()).count();
        if n > 0 {
            parts.push(format!("{n} masquerade"));
        }
        if self.snat.len() > n {
            parts.push(format!("{} snat", self.snat.len() - n));
        }
        if !self.dnat.is_empty() {
            parts.push(format!("{} port forwards", self.dnat.len()));
        }
        if !self.rules.is_empty() {
            parts.push(format!("{} rules", self.rules.len()));
        }
        if self.forward_policy == Verdict::Drop {
            parts.push("forward policy drop".into());
        }
        parts.join(", ")
    }

    /// A short stable fingerprint of the ruleset: stored in the table, compared on the next
    /// `up`, so an unchanged ruleset is left alone and a changed one is replaced whole.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).expect("serializes");
        // FNV-1a 64: stable across runs and platforms (std's hasher is not).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

pub(crate) fn check(
    ctx: &mut Ctx,
    nname: &str,
    nat: Option<&NatSpec>,
    fw: Option<&FirewallSpec>,
    node: &Node,
    addrs: &IndexMap<String, Vec<IpNet>>,
    np: &Path,
) -> Option<NftSpec> {
    if nat.is_none() && fw.is_none() {
        return None;
    }
    let mut out = NftSpec { snat: Vec::new(), dnat: Vec::new(), forward_policy: Verdict::Accept, rules: Vec::new() };
    if let Some(nat) = nat {
        let base = ctx.sub(np, "nat");
        for (i, m) in nat.masquerade.iter().enumerate() {
            let p = ctx.idx(&ctx.sub(&base, "masquerade"), i);
            let src = resolve_target(ctx, &m.source, &ctx.sub(&p, "source"), addrs);
            let dev_ok = check_dev(ctx, nname, &m.out, node, &ctx.sub(&p, "out"));
            if dev_ok {
                masquerade_source(ctx, nname, &m.out, node, &ctx.sub(&p, "out"));
            }
            if let (Some(source), true) = (src, dev_ok) {
                out.snat.push(Snat { source: v4_only(ctx, source, &ctx.sub(&p, "source")), out: m.out.clone(), to: None });
            }
        }
        for (i, s) in nat.snat.iter().enumerate() {
            let p = ctx.idx(&ctx.sub(&base, "snat"), i);
            let src = resolve_target(ctx, &s.source, &ctx.sub(&p, "source"), addrs);
            let dev_ok = check_dev(ctx, nname, &s.out, node, &ctx.sub(&p, "out"));
            let to = match s.to.trim().parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => Some(IpAddr::V4(a)),
                Ok(IpAddr::V6(_)) => {
                    ctx.error_at(&ctx.sub(&p, "to"), format!("SNAT to `{}`: vnet translates IPv4 only", s.to), "IPv6 address");
                    None
                }
                Err(_) => {
                    ctx.error_at(&ctx.sub(&p, "to"), format!("SNAT target `{}` is not an IPv4 address", s.to), "not an address");
                    None
                }
            };
            if let (Some(source), true, Some(to)) = (src, dev_ok, to) {
                out.snat.push(Snat { source: v4_only(ctx, source, &ctx.sub(&p, "source")), out: s.out.clone(), to: Some(to) });
            }
        }
        let mut seen: IndexMap<(L4Proto, u16, Option<String>), Path> = IndexMap::new();
        for (i, f) in nat.port_forwards.iter().enumerate() {
            let p = ctx.idx(&ctx.sub(&base, "port_forwards"), i);
            let proto = f.proto.unwrap_or(L4Proto::Tcp);
            if proto == L4Proto::Icmp {
                ctx.error_at(&ctx.sub(&p, "proto"), "a port forward is `tcp` or `udp`; ICMP has no ports", "no ports");
                continue;
            }
            if f.port == 0 {
                ctx.error_at(&ctx.sub(&p, "port"), "port 0 cannot be forwarded", "port 0");
                continue;
            }
            if let Some(d) = &f.in_dev {
                if !check_dev(ctx, nname, d, node, &ctx.sub(&p, "in")) {
                    continue;
                }
            }
            let Some((to_addr, to_port)) = resolve_hostport(ctx, &f.to, &ctx.sub(&p, "to"), addrs) else { continue };
            let key = (proto, f.port, f.in_dev.clone());
            if let Some(prev) = seen.get(&key) {
                let (span, prev_span) = (ctx.span(&p), ctx.span(prev));
                ctx.push(
                    crate::model::Diag::error(format!("{} port {} is forwarded twice", proto.name(), f.port))
                        .maybe_label(span, "forwarded again here")
                        .maybe_label(prev_span, "first forwarded here"),
                );
                continue;
            }
            seen.insert(key, p.clone());
            out.dnat.push(Dnat { proto, port: f.port, in_dev: f.in_dev.clone(), to_addr, to_port });
        }
    }
    if let Some(fw) = fw {
        let base = ctx.sub(np, "firewall");
        out.forward_policy = fw.policy.unwrap_or(Verdict::Accept);
        for (i, r) in fw.rules.iter().enumerate() {
            let p = ctx.idx(&ctx.sub(&base, "rules"), i);
            let mut ok = true;
            let from = match &r.from {
                None => Vec::new(),
                Some(s) => resolve_target(ctx, s, &ctx.sub(&p, "from"), addrs).unwrap_or_else(|| {
                    ok = false;
                    Vec::new()
                }),
            };
            let to = match &r.to {
                None => Vec::new(),
                Some(s) => resolve_target(ctx, s, &ctx.sub(&p, "to"), addrs).unwrap_or_else(|| {
                    ok = false;
                    Vec::new()
                }),
            };
            if r.port.is_some() && !matches!(r.proto, Some(L4Proto::Tcp) | Some(L4Proto::Udp)) {
                ctx.error_at(&ctx.sub(&p, "port"), "a rule with `port` needs `proto: tcp` or `proto: udp`", "port without protocol");
                ok = false;
            }
            let fam = |l: &[IpNet]| -> (bool, bool) { (l.iter().any(|n| n.addr().is_ipv4()), l.iter().any(|n| n.addr().is_ipv6())) };
            if ok && !from.is_empty() && !to.is_empty() {
                let (f4, f6) = fam(&from);
                let (t4, t6) = fam(&to);
                if !(f4 && t4 || f6 && t6) {
                    ctx.error_at(&p, "`from` and `to` share no IP family, so the rule can never match", "families differ");
                    ok = false;
                }
            }
            if ok {
                out.rules.push(FwRule { chain: r.chain.unwrap_or(ChainKind::Forward), action: r.action, from, to, proto: r.proto, port: r.port });
            }
        }
    }
    Some(out)
}

/// Masquerade rewrites sources to an IPv4 address of the device packets leave through: a
/// warning when `out` has none (the packets are dropped), or when it is a port of a master
/// (routed packets leave through the master, so the rule never matches).
fn masquerade_source(ctx: &mut Ctx, nname: &str, out: &str, node: &Node, p: &Path) {
    let Some(dev) = node.interfaces.get(out) else { return };
    if let Some(master) = &dev.master {
        ctx.warn_at(
            p,
            format!("masquerade out of `{nname}:{out}`, a port of `{master}`: routed packets leave through `{master}`, so the rule never matches"),
            format!("a port of `{master}`"),
        );
        if let Some(d) = ctx.diags.last_mut() {
            d.help = Some(format!("write `out: {master}`"));
        }
        return;
    }
    if dev.addresses.iter().any(|a| a.addr().is_ipv4()) {
        return;
    }
    ctx.warn_at(
        p,
        format!("masquerade out of `{nname}:{out}`, which has no IPv4 address: masquerade takes the new source from it, so the packets are dropped"),
        "no IPv4 address",
    );
    if let Some(d) = ctx.diags.last_mut() {
        d.help = Some(format!("give `{out}` an IPv4 address, masquerade out of the device that has one, or use `snat` with a fixed `to`"));
    }
}

/// NAT rewrites IPv4 only: IPv6 sources are dropped from the match (with an error if none is left).
fn v4_only(ctx: &mut Ctx, list: Vec<IpNet>, p: &Path) -> Vec<IpNet> {
    let v4: Vec<IpNet> = list.iter().copied().filter(|n| n.addr().is_ipv4()).collect();
    if v4.is_empty() {
        ctx.error_at(p, "NAT source has no IPv4 prefix; vnet translates IPv4 only", "IPv6 only");
    }
    v4
}

/// `node:port` (the node's first IPv4 address) or `a.b.c.d:port`.
fn resolve_hostport(ctx: &mut Ctx, raw: &str, p: &Path, addrs: &IndexMap<String, Vec<IpNet>>) -> Option<(IpAddr, u16)> {
    let Some((host, port)) = raw.trim().rsplit_once(':') else {
        ctx.error_at(p, format!("`{raw}` is not `node:port` or `address:port`"), "expected node:port");
        return None;
    };
    let port: u16 = match port.parse() {
        Ok(0) | Err(_) => {
            ctx.error_at(p, format!("`{port}` in `{raw}` is not a port (1-65535)"), "bad port");
            return None;
        }
        Ok(n) => n,
    };
    if let Ok(IpAddr::V4(a)) = host.parse::<IpAddr>() {
        return Some((IpAddr::V4(a), port));
    }
    match addrs.get(host) {
        Some(list) => match list.iter().find(|a| a.addr().is_ipv4()) {
            Some(a) => Some((a.addr(), port)),
            None => {
                ctx.error_at(p, format!("node `{host}` has no IPv4 address to forward to"), "no IPv4 address");
                None
            }
        },
        None if ctx.failed_node(host) => None,
        None => {
            if let Some((msg, label)) = crate::model::validate::address_like_problem(host) {
                ctx.error_at(p, format!("{msg} (in `{raw}`)"), label);
                return None;
            }
            ctx.error_at(p, format!("`{host}` in `{raw}` is neither a node nor an IPv4 address"), "unknown node");
            None
        }
    }
}
