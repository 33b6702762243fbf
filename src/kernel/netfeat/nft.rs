//! The lab's nftables table in a node: built as nftables JSON with the `nftables` crate and
//! handed to `nft -j -f -` in one transaction (add + delete + add: the old table, if any, is
//! replaced atomically). Callers run these functions on a thread inside the node's network
//! namespace: `nft` inherits it. vnet only ever names its own table.

use ipnet::IpNet;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem, CT};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;

use crate::model::netfeat::spec::{ChainKind, L4Proto, Verdict};
use crate::model::netfeat::NftSpec;
use crate::observed::netfeat::{NftContent, NftTable};

/// The table of a lab: `vnet_<lab>` (one per node namespace).
pub fn table_name(lab: &str) -> String {
    crate::plan::netfeat_table_name(lab)
}

/// Prefix of the (empty) chain that carries the ruleset's fingerprint.
const SPEC_CHAIN: &str = "spec-";

fn table(name: &str) -> NfListObject<'static> {
    NfListObject::Table(Table { family: NfFamily::INet, name: Cow::Owned(name.to_string()), handle: None })
}

fn chain(t: &str, name: &str, kind: Option<(NfChainType, NfHook, i32, Verdict)>) -> NfObject<'static> {
    let mut c = Chain { family: NfFamily::INet, table: Cow::Owned(t.to_string()), name: Cow::Owned(name.to_string()), ..Default::default() };
    if let Some((ty, hook, prio, policy)) = kind {
        c._type = Some(ty);
        c.hook = Some(hook);
        c.prio = Some(prio);
        c.policy = Some(match policy {
            Verdict::Accept => NfChainPolicy::Accept,
            Verdict::Drop => NfChainPolicy::Drop,
        });
    }
    NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(c)))
}

fn rule(t: &str, chain: &str, expr: Vec<Statement<'static>>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: Cow::Owned(t.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        ..Default::default()
    })))
}

fn payload(proto: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField { protocol: Cow::Owned(proto.into()), field: Cow::Owned(field.into()) })))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op: Operator::EQ })
}

fn net_expr(n: &IpNet) -> Expression<'static> {
    if n.prefix_len() == n.max_prefix_len() {
        Expression::String(Cow::Owned(n.addr().to_string()))
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix { addr: Box::new(Expression::String(Cow::Owned(n.addr().to_string()))), len: n.prefix_len() as u32 }))
    }
}

/// `ip saddr X` / `ip6 daddr {X, Y}` for the prefixes of one family.
fn addr_match(v6: bool, field: &str, nets: &[&IpNet]) -> Statement<'static> {
    let proto = if v6 { "ip6" } else { "ip" };
    let right =
        if nets.len() == 1 { net_expr(nets[0]) } else { Expression::Named(NamedExpression::Set(nets.iter().map(|n| SetItem::Element(net_expr(n))).collect())) };
    eq(payload(proto, field), right)
}

fn verdict(v: Verdict) -> Statement<'static> {
    match v {
        Verdict::Accept => Statement::Accept(None),
        Verdict::Drop => Statement::Drop(None),
    }
}

fn s(x: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(x.to_string()))
}

/// The whole transaction that (re)creates the table with `spec`.
pub fn ruleset(t: &str, spec: &NftSpec) -> Nftables<'static> {
    let mut o: Vec<NfObject<'static>> = vec![
        NfObject::CmdObject(NfCmd::Add(table(t))),
        NfObject::CmdObject(NfCmd::Delete(table(t))),
        NfObject::CmdObject(NfCmd::Add(table(t))),
        chain(t, &format!("{SPEC_CHAIN}{}", spec.fingerprint()), None),
    ];
    if !spec.dnat.is_empty() {
        o.push(chain(t, "prerouting", Some((NfChainType::NAT, NfHook::Prerouting, -100, Verdict::Accept))));
        for d in &spec.dnat {
            let mut e = Vec::new();
            if let Some(i) = &d.in_dev {
                e.push(eq(meta(MetaKey::Iifname), s(i)));
            }
            e.push(eq(payload(d.proto.name(), "dport"), Expression::Number(u32::from(d.port))));
            let fam = if d.to_addr.is_ipv4() { NATFamily::IP } else { NATFamily::IP6 };
            e.push(Statement::DNAT(Some(NAT {
                addr: Some(s(&d.to_addr.to_string())),
                family: Some(fam),
                port: Some(Expression::Number(u32::from(d.to_port))),
                flags: None,
            })));
            o.push(rule(t, "prerouting", e));
        }
    }
    if !spec.snat.is_empty() {
        o.push(chain(t, "postrouting", Some((NfChainType::NAT, NfHook::Postrouting, 100, Verdict::Accept))));
        for n in &spec.snat {
            let nets: Vec<&IpNet> = n.source.iter().collect();
            let mut e = vec![addr_match(false, "saddr", &nets), eq(meta(MetaKey::Oifname), s(&n.out))];
            e.push(match n.to {
                None => Statement::Masquerade(None),
                Some(a) => Statement::SNAT(Some(NAT { addr: Some(s(&a.to_string())), family: Some(NATFamily::IP), port: None, flags: None })),
            });
            o.push(rule(t, "postrouting", e));
        }
    }
    let mut chains: Vec<ChainKind> = spec.rules.iter().map(|r| r.chain).collect();
    if spec.forward_policy == Verdict::Drop {
        chains.push(ChainKind::Forward);
    }
    chains.sort();
    chains.dedup();
    for c in chains {
        let (name, hook) = match c {
            ChainKind::Forward => ("forward", NfHook::Forward),
            ChainKind::Input => ("input", NfHook::Input),
            ChainKind::Output => ("output", NfHook::Output),
        };
        let policy = if c == ChainKind::Forward { spec.forward_policy } else { Verdict::Accept };
        o.push(chain(t, name, Some((NfChainType::Filter, hook, 0, policy))));
        if policy == Verdict::Drop {
            // Replies of connections the rules let through.
            let states = Expression::List(vec![s("established"), s("related")]);
            let ct = Expression::Named(NamedExpression::CT(CT { key: Cow::Borrowed("state"), family: None, dir: None }));
            o.push(rule(t, name, vec![Statement::Match(Match { left: ct, right: states, op: Operator::IN }), Statement::Accept(None)]));
        }
        for r in spec.rules.iter().filter(|r| r.chain == c) {
            for v6 in [false, true] {
                let from: Vec<&IpNet> = r.from.iter().filter(|n| n.addr().is_ipv6() == v6).collect();
                let to: Vec<&IpNet> = r.to.iter().filter(|n| n.addr().is_ipv6() == v6).collect();
                // A rule naming addresses applies to their family only.
                if (!r.from.is_empty() && from.is_empty()) || (!r.to.is_empty() && to.is_empty()) {
                    continue;
                }
                let any_addr = r.from.is_empty() && r.to.is_empty();
                if any_addr && v6 && r.proto != Some(L4Proto::Icmp) {
                    // An address-free rule is written once, for both families (meta l4proto).
                    continue;
                }
                let mut e = Vec::new();
                if !any_addr {
                    e.push(eq(meta(MetaKey::Nfproto), s(if v6 { "ipv6" } else { "ipv4" })));
                }
                if !from.is_empty() {
                    e.push(addr_match(v6, "saddr", &from));
                }
                if !to.is_empty() {
                    e.push(addr_match(v6, "daddr", &to));
                }
                match (r.proto, r.port) {
                    (Some(L4Proto::Icmp), _) => {
                        if any_addr {
                            e.push(eq(meta(MetaKey::Nfproto), s(if v6 { "ipv6" } else { "ipv4" })));
                        }
                        e.push(eq(meta(MetaKey::L4proto), s(if v6 { "ipv6-icmp" } else { "icmp" })));
                    }
                    (Some(p), Some(port)) => e.push(eq(payload(p.name(), "dport"), Expression::Number(u32::from(port)))),
                    (Some(p), None) => e.push(eq(meta(MetaKey::L4proto), s(p.name()))),
                    (None, _) => {}
                }
                e.push(verdict(r.action));
                o.push(rule(t, name, e));
            }
        }
    }
    Nftables { objects: Cow::Owned(o) }
}

/// The transaction that removes the table (and nothing else); harmless when it is absent.
pub fn delete_ruleset(t: &str) -> Nftables<'static> {
    Nftables { objects: Cow::Owned(vec![NfObject::CmdObject(NfCmd::Add(table(t))), NfObject::CmdObject(NfCmd::Delete(table(t)))]) }
}

/// Runs a transaction with `nft -j -f -` in the calling thread's namespace.
pub fn apply(n: &Nftables) -> Result<(), String> {
    nftables::helper::apply_ruleset(n).map_err(explain)
}

fn explain(e: nftables::helper::NftablesError) -> String {
    match e {
        nftables::helper::NftablesError::NftExecution { inner, .. } if inner.kind() == std::io::ErrorKind::NotFound => {
            "the `nft` program is not installed (Debian package `nftables`; scripts/setup installs it)".to_string()
        }
        nftables::helper::NftablesError::NftFailed { stderr, .. } => format!("nft refused the ruleset: {}", stderr.trim()),
        other => other.to_string(),
    }
}

/// Prefix of the (empty) chain that records the table's content as vnet wrote it:
/// `content-<rules>-<digest>` (see `content`).
const CONTENT_CHAIN: &str = "content-";

/// `nft -j list table inet T` in the calling thread's namespace (`None`: no such table).
fn list(t: &str) -> Result<Option<serde_json::Value>, String> {
    let out = std::process::Command::new("nft").args(["-j", "list", "table", "inet", t]).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "the `nft` program is not installed (Debian package `nftables`; scripts/setup installs it)".to_string()
        } else {
            format!("run nft: {e}")
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") || err.contains("does not exist") {
            return Ok(None);
        }
        return Err(format!("nft list table: {}", err.trim()));
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| format!("nft -j output: {e}"))
}

/// The content of a listed table: its chains (with hook, priority, policy) and rules as nft
/// lists them, without handles (which change on every rewrite), nft's own `metainfo`, and the
/// content chain itself. An FNV-1a 64 digest of that, and the number of rules.
pub fn content(listing: &serde_json::Value) -> NftContent {
    let mut text = String::new();
    let mut rules = 0;
    for o in listing["nftables"].as_array().into_iter().flatten() {
        let Some((kind, body)) = o.as_object().and_then(|m| m.iter().next()) else { continue };
        if kind == "metainfo" || (kind == "chain" && body["name"].as_str().is_some_and(|n| n.starts_with(CONTENT_CHAIN))) {
            continue;
        }
        if kind == "rule" {
            rules += 1;
        }
        let mut body = body.clone();
        if let Some(m) = body.as_object_mut() {
            m.remove("handle");
        }
        text.push_str(kind);
        text.push_str(&body.to_string());
        text.push('\n');
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    NftContent { rules, digest: format!("{h:016x}") }
}

fn content_chain(c: &NftContent) -> String {
    format!("{CONTENT_CHAIN}{}-{}", c.rules, c.digest)
}

fn parse_content_chain(name: &str) -> Option<NftContent> {
    let (rules, digest) = name.strip_prefix(CONTENT_CHAIN)?.split_once('-')?;
    Some(NftContent { rules: rules.parse().ok()?, digest: digest.to_string() })
}

/// Records in the table (just written by `ruleset`) what nft lists of it, so that a later
/// observation tells a table changed by hand from the one vnet wrote: one listing and one
/// more transaction, only when vnet writes the table.
pub fn seal(t: &str) -> Result<(), String> {
    let listing = list(t)?.ok_or_else(|| format!("table inet {t} is gone right after it was written"))?;
    let c = content(&listing);
    apply(&Nftables { objects: Cow::Owned(vec![chain(t, &content_chain(&c), None)]) })
}

/// The lab's table in the calling thread's namespace, if present.
pub fn observe(t: &str) -> Result<Option<NftTable>, String> {
    let Some(v) = list(t)? else { return Ok(None) };
    let chains: Vec<&str> = v["nftables"].as_array().into_iter().flatten().filter_map(|o| o.get("chain")).filter_map(|c| c["name"].as_str()).collect();
    let fingerprint = chains.iter().find_map(|n| n.strip_prefix(SPEC_CHAIN).map(str::to_string));
    let written = chains.iter().find_map(|n| parse_content_chain(n));
    Ok(Some(NftTable { name: t.to_string(), fingerprint, written, content: content(&v) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(extra_chain: &str, rule_handle: u32, rule_port: u32) -> serde_json::Value {
        serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "vnet_x", "handle": 3}},
            {"chain": {"family": "inet", "table": "vnet_x", "name": "spec-00ff", "handle": 1}},
            {"chain": {"family": "inet", "table": "vnet_x", "name": extra_chain, "handle": 2}},
            {"chain": {"family": "inet", "table": "vnet_x", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "inet", "table": "vnet_x", "chain": "forward", "handle": rule_handle,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": rule_port}}, {"accept": null}]}}
        ]})
    }

    /// Handles and the content chain do not count; a rule's expression does.
    #[test]
    fn content_ignores_handles_and_its_own_chain() {
        let a = content(&listing("content-1-abc", 5, 80));
        assert_eq!(a.rules, 1);
        assert_eq!(a, content(&listing("content-1-def", 9, 80)));
        assert_ne!(a, content(&listing("content-1-abc", 5, 81)));
        assert_ne!(a, content(&listing("other", 5, 80)), "a chain someone added counts");
    }

    #[test]
    fn content_chain_round_trips() {
        let c = NftContent { rules: 12, digest: "0123456789abcdef".into() };
        assert_eq!(parse_content_chain(&content_chain(&c)), Some(c));
        assert_eq!(parse_content_chain("content-x"), None);
    }
}
