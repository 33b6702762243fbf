//! The lab's declared NAT and firewall (`nodes.X.nat`, `nodes.X.firewall`, the nftables table
//! vnet builds from them) applied to a traced packet, as netfilter applies them: port forwards
//! in prerouting, the filter chains (input, forward, output; first matching rule wins, then the
//! chain's policy; a forward chain with policy drop accepts replies of connections it let
//! through), masquerade / SNAT in postrouting; for the answer, connection tracking undoes the
//! translations at the node that made them. Pure: the walk (`super::walk`) calls it per node.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::netfeat::spec::{ChainKind, L4Proto, Verdict as FwAction};
use crate::model::netfeat::{FwRule, NftSpec};

/// What the traced packet carries above IP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "proto", content = "port", rename_all = "lowercase")]
pub enum Proto {
    /// An ICMP echo request (what the confirming probe sends).
    #[default]
    Icmp,
    Tcp(u16),
    Udp(u16),
}

impl Proto {
    fn matches(self, proto: Option<L4Proto>, port: Option<u16>) -> bool {
        match (proto, self) {
            (None, _) => true,
            (Some(L4Proto::Icmp), Proto::Icmp) => true,
            (Some(L4Proto::Tcp), Proto::Tcp(p)) | (Some(L4Proto::Udp), Proto::Udp(p)) => port.is_none_or(|x| x == p),
            _ => false,
        }
    }

    pub fn port(self) -> Option<u16> {
        match self {
            Proto::Icmp => None,
            Proto::Tcp(p) | Proto::Udp(p) => Some(p),
        }
    }

    pub fn with_port(self, port: u16) -> Proto {
        match self {
            Proto::Icmp => Proto::Icmp,
            Proto::Tcp(_) => Proto::Tcp(port),
            Proto::Udp(_) => Proto::Udp(port),
        }
    }
}

/// A translation made on the way there, undone for the answer at the same node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Translation {
    pub node: String,
    /// `true`: the source was rewritten (masquerade / SNAT); `false`: the destination (DNAT).
    pub source: bool,
    pub from: IpAddr,
    pub to: IpAddr,
}

/// What a filter chain decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub accept: bool,
    /// In words: `policy drop`, `rule 2: drop proto icmp`, `reply of a connection it let through`.
    pub why: String,
}

pub fn chain_name(c: ChainKind) -> &'static str {
    match c {
        ChainKind::Forward => "forward",
        ChainKind::Input => "input",
        ChainKind::Output => "output",
    }
}

fn nets_text(l: &[IpNet]) -> String {
    let v: Vec<String> = l.iter().map(|n| if n.prefix_len() == n.max_prefix_len() { n.addr().to_string() } else { n.to_string() }).collect();
    v.join(",")
}

/// A rule as written: `drop from 10.1.0.0/24 to 10.2.0.2 proto tcp port 80`.
pub fn rule_text(r: &FwRule) -> String {
    let mut s = match r.action {
        FwAction::Accept => "accept".to_string(),
        FwAction::Drop => "drop".to_string(),
    };
    if !r.from.is_empty() {
        s.push_str(&format!(" from {}", nets_text(&r.from)));
    }
    if !r.to.is_empty() {
        s.push_str(&format!(" to {}", nets_text(&r.to)));
    }
    if let Some(p) = r.proto {
        s.push_str(&format!(" proto {}", p.name()));
    }
    if let Some(p) = r.port {
        s.push_str(&format!(" port {p}"));
    }
    s
}

/// Whether the lab's table has this chain in the node (and so whether it filters at all).
fn has_chain(spec: &NftSpec, chain: ChainKind) -> bool {
    spec.rules.iter().any(|r| r.chain == chain) || (chain == ChainKind::Forward && spec.forward_policy == FwAction::Drop)
}

/// Runs a packet through one of the lab's filter chains; `None` when the node has no such chain.
/// `reply_allowed`: the packet answers a connection this node's chain let through (conntrack
/// state established).
pub fn filter(spec: &NftSpec, chain: ChainKind, src: Option<IpAddr>, dst: IpAddr, proto: Proto, reply_allowed: bool) -> Option<Decision> {
    if !has_chain(spec, chain) {
        return None;
    }
    let policy = if chain == ChainKind::Forward { spec.forward_policy } else { FwAction::Accept };
    if policy == FwAction::Drop && reply_allowed {
        return Some(Decision { accept: true, why: "reply of a connection it let through (ct state established)".into() });
    }
    let within = |l: &[IpNet], a: Option<IpAddr>| l.is_empty() || a.is_some_and(|a| l.iter().any(|n| n.contains(&a)));
    for (i, r) in spec.rules.iter().enumerate().filter(|(_, r)| r.chain == chain) {
        if within(&r.from, src) && within(&r.to, Some(dst)) && proto.matches(r.proto, r.port) {
            return Some(Decision { accept: r.action == FwAction::Accept, why: format!("rule {}: {}", i + 1, rule_text(r)) });
        }
    }
    Some(Decision { accept: policy == FwAction::Accept, why: format!("policy {}", if policy == FwAction::Accept { "accept" } else { "drop" }) })
}

/// A port forward matching a packet arriving on `iif`: (new address, new port, rule in words).
pub fn dnat(spec: &NftSpec, iif: &str, dst: IpAddr, proto: Proto) -> Option<(IpAddr, u16, String)> {
    spec.dnat.iter().find_map(|d| {
        if d.to_addr.is_ipv4() != dst.is_ipv4() {
            return None;
        }
        let p = match (d.proto, proto) {
            (L4Proto::Tcp, Proto::Tcp(p)) | (L4Proto::Udp, Proto::Udp(p)) => p,
            _ => return None,
        };
        if p != d.port || d.in_dev.as_deref().is_some_and(|i| i != iif) {
            return None;
        }
        Some((d.to_addr, d.to_port, format!("port forward {} {} -> {}:{}", d.proto.name(), d.port, d.to_addr, d.to_port)))
    })
}

/// Masquerade / SNAT for a packet from `src` leaving through `out`: (new source, rule in words).
/// `out_addrs`: the device's IPv4 addresses; masquerade takes the one on the next hop's subnet,
/// else the first (as the kernel's `inet_select_addr`).
pub fn snat(spec: &NftSpec, src: IpAddr, out: &str, out_addrs: &[IpNet], next_hop: IpAddr) -> Option<Option<(IpAddr, String)>> {
    let s = spec.snat.iter().find(|s| s.out == out && s.source.iter().any(|n| n.contains(&src)))?;
    Some(match s.to {
        Some(to) => Some((to, format!("snat to {to} out of {out}"))),
        None => {
            let v4: Vec<&IpNet> = out_addrs.iter().filter(|a| a.addr().is_ipv4()).collect();
            v4.iter().find(|a| a.contains(&next_hop)).or(v4.first()).map(|a| (a.addr(), format!("masquerade out of {out}")))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::netfeat::{Dnat, Snat};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec() -> NftSpec {
        NftSpec {
            snat: vec![Snat { source: vec![net("192.168.1.0/24")], out: "wan0".into(), to: None }],
            dnat: vec![Dnat { proto: L4Proto::Tcp, port: 8080, in_dev: Some("wan0".into()), to_addr: ip("192.168.1.11"), to_port: 80 }],
            forward_policy: FwAction::Drop,
            rules: vec![
                FwRule {
                    chain: ChainKind::Forward,
                    action: FwAction::Accept,
                    from: vec![net("10.1.0.0/24")],
                    to: vec![],
                    proto: Some(L4Proto::Tcp),
                    port: Some(443),
                },
                FwRule { chain: ChainKind::Input, action: FwAction::Drop, from: vec![], to: vec![], proto: Some(L4Proto::Icmp), port: None },
            ],
        }
    }

    #[test]
    fn chains_rules_and_policy() {
        let s = spec();
        let d = filter(&s, ChainKind::Forward, Some(ip("10.1.0.2")), ip("10.2.0.2"), Proto::Icmp, false).unwrap();
        assert_eq!(d, Decision { accept: false, why: "policy drop".into() });
        let d = filter(&s, ChainKind::Forward, Some(ip("10.1.0.2")), ip("10.2.0.2"), Proto::Tcp(443), false).unwrap();
        assert_eq!(d, Decision { accept: true, why: "rule 1: accept from 10.1.0.0/24 proto tcp port 443".into() });
        assert!(filter(&s, ChainKind::Forward, Some(ip("10.2.0.2")), ip("10.1.0.2"), Proto::Icmp, true).unwrap().accept);
        let d = filter(&s, ChainKind::Input, Some(ip("10.1.0.2")), ip("10.1.0.1"), Proto::Icmp, false).unwrap();
        assert_eq!(d, Decision { accept: false, why: "rule 2: drop proto icmp".into() });
        assert!(filter(&s, ChainKind::Input, None, ip("10.1.0.1"), Proto::Udp(53), false).unwrap().accept);
        assert_eq!(filter(&s, ChainKind::Output, None, ip("10.1.0.1"), Proto::Icmp, false), None);
    }

    #[test]
    fn translations() {
        let s = spec();
        let out = [net("203.0.113.1/24")];
        assert_eq!(snat(&s, ip("192.168.1.11"), "wan0", &out, ip("203.0.113.8")), Some(Some((ip("203.0.113.1"), "masquerade out of wan0".into()))));
        assert_eq!(snat(&s, ip("10.0.0.1"), "wan0", &out, ip("203.0.113.8")), None);
        assert_eq!(snat(&s, ip("192.168.1.11"), "br1", &out, ip("203.0.113.8")), None);
        assert_eq!(dnat(&s, "wan0", ip("203.0.113.1"), Proto::Tcp(8080)).map(|d| (d.0, d.1)), Some((ip("192.168.1.11"), 80)));
        assert_eq!(dnat(&s, "br1", ip("203.0.113.1"), Proto::Tcp(8080)), None);
        assert_eq!(dnat(&s, "wan0", ip("203.0.113.1"), Proto::Icmp), None);
    }
}
