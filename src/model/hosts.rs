//! Labs that span several hosts. The file declares `hosts` (each with its underlay address)
//! and puts every node on one of them; a veth pair whose ends are on different hosts becomes,
//! on each host, a VXLAN device in the node's namespace with the link's VNI (deterministic: a
//! hash of the lab's name and the link's ends), pointed at the other host's underlay address.
//! Each host builds its share (`vnet up FILE --host NAME`): its nodes, its same-host links, its
//! ends of the tunnels. The tunnel devices live in the nodes' namespaces; only their UDP socket
//! is in the host's own namespace (they are created from there), so nothing is added to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diag::Diag;
use super::file::Topology;
use super::kind::{KindSpec, VxlanSpec, VNI_MAX, VXLAN_OVERHEAD, VXLAN_PORT};
use super::lab::{Endpoint, Lab, Node};
use super::source::Seg;
use super::validate::Ctx;

/// A host of a multi-host lab, as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// The host's underlay address: tunnels of its nodes leave from it, and the other hosts
    /// send their tunnels' packets to it.
    pub underlay: String,
    /// MTU of the underlay between hosts (default 1500). A tunnel gets the smaller of its two
    /// hosts' MTUs minus VXLAN's overhead (50 bytes over IPv4, 70 over IPv6), unless its link
    /// or interface sets `mtu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A checked host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    pub underlay: IpAddr,
    pub mtu: u32,
}

/// One end of a link between hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    pub vni: u32,
    pub local: IpAddr,
    pub remote: IpAddr,
    /// The other end (on the other host).
    pub peer: Endpoint,
    pub port: u16,
}

/// The default underlay MTU.
pub const DEFAULT_MTU: u32 = 1500;

fn overhead(a: IpAddr) -> u32 {
    if a.is_ipv4() {
        VXLAN_OVERHEAD
    } else {
        VXLAN_OVERHEAD + 20
    }
}

/// The link's VNI: a hash of the lab's name and the link's two ends (in order), in 1..=VNI_MAX.
pub fn vni_for(lab: &str, a: &Endpoint, b: &Endpoint) -> u32 {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    let mut h: u32 = 0x811c_9dc5;
    for byte in lab.bytes().chain([0]).chain(a.to_string().bytes()).chain([0]).chain(b.to_string().bytes()) {
        h ^= u32::from(byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    1 + (h ^ (h >> 24)) % VNI_MAX
}

fn hosts_path(name: &str) -> Vec<Seg> {
    vec![Seg::Key("hosts".into()), Seg::Key(name.into())]
}

/// Checks `hosts` and each node's `host`, records each node's host, and turns every veth pair
/// whose ends are on different hosts into a pair of tunnel ends (MTU filled in).
pub(crate) fn resolve(ctx: &mut Ctx, topo: &Topology, nodes: &mut IndexMap<String, Node>) -> (IndexMap<String, Host>, BTreeMap<Endpoint, Tunnel>) {
    let mut hosts: IndexMap<String, Host> = IndexMap::new();
    let mut seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (name, h) in &topo.hosts {
        let p = hosts_path(name);
        if let Some(problem) = super::validate::plain_name_problem("host", name, 64, true) {
            ctx.error_at_key(&p, problem, "invalid host name");
        }
        let up = ctx.sub(&p, "underlay");
        let addr = match h.underlay.trim().parse::<IpAddr>() {
            Ok(a) if a.is_unspecified() || a.is_multicast() || a.is_loopback() => {
                ctx.error_at(&up, format!("underlay address {a} of host `{name}` cannot carry tunnels between hosts"), "not a unicast host address");
                continue;
            }
            Ok(a) => a,
            Err(_) => {
                ctx.error_at(&up, format!("underlay `{}` of host `{name}` is not an IP address", h.underlay), "bad address");
                continue;
            }
        };
        if let Some(other) = seen.insert(addr, name.clone()) {
            ctx.error_at(&up, format!("hosts `{other}` and `{name}` have the same underlay address {addr}"), "used twice");
        }
        let mtu = h.mtu.unwrap_or(DEFAULT_MTU);
        let min = 68 + overhead(addr);
        if !(min..=65535).contains(&mtu) {
            ctx.error_at(
                &ctx.sub(&p, "mtu"),
                format!("underlay MTU {mtu} of host `{name}` is out of range ({min}..=65535: a tunnel needs {} bytes of it)", overhead(addr)),
                "out of range",
            );
        }
        hosts.insert(name.clone(), Host { name: name.clone(), underlay: addr, mtu });
    }
    if hosts.values().map(|h| h.underlay.is_ipv4()).collect::<BTreeSet<_>>().len() > 1 {
        ctx.error_at(&[Seg::Key("hosts".into())], "hosts mix IPv4 and IPv6 underlay addresses; a tunnel joins two hosts over one family", "mixed families");
    }

    // Each node's host.
    for (nname, spec) in &topo.nodes {
        let np = ctx.node_path(nname);
        match (&spec.host, topo.hosts.is_empty()) {
            (Some(h), true) => {
                ctx.error_at(&ctx.sub(&np, "host"), format!("node `{nname}` names host `{h}`, but the lab declares no `hosts`"), "no such host");
            }
            (Some(h), false) if !topo.hosts.contains_key(h) => {
                ctx.error_at(&ctx.sub(&np, "host"), format!("unknown host `{h}` for node `{nname}`"), format!("no host named `{h}`"));
                super::validate::push_did_you_mean(ctx, h, topo.hosts.keys());
            }
            (None, false) => {
                let names: Vec<&str> = topo.hosts.keys().map(String::as_str).collect();
                ctx.error_at_key(
                    &np,
                    format!("node `{nname}` is on no host: the lab declares hosts ({}), so every node names its `host`", names.join(", ")),
                    "add `host:`",
                );
            }
            _ => {}
        }
        if let Some(n) = nodes.get_mut(nname) {
            n.host = spec.host.clone();
        }
    }
    let mut tunnels = BTreeMap::new();
    if hosts.is_empty() {
        return (hosts, tunnels);
    }
    let host_of = |nodes: &IndexMap<String, Node>, node: &str| nodes.get(node).and_then(|n| n.host.clone());

    // Stacking across hosts is impossible: a lower device must be on the same machine.
    for (nname, node) in nodes.iter() {
        for i in node.interfaces.values() {
            let Some(lower) = i.kind.lower_endpoint(nname) else {
                continue;
            };
            let (mine, theirs) = (host_of(nodes, nname), host_of(nodes, &lower.node));
            if lower.node != *nname && mine.is_some() && theirs.is_some() && mine != theirs {
                let field = if matches!(i.kind, KindSpec::Vxlan(_)) { "dev" } else { "link" };
                ctx.error_at(
                    &ctx.sub(&i.path, field),
                    format!(
                        "{} `{nname}:{}` is on host `{}`, its lower device `{lower}` on host `{}`; a device and its lower must be on one host",
                        i.kind.name(),
                        i.name,
                        mine.unwrap_or_default(),
                        theirs.unwrap_or_default()
                    ),
                    "another host",
                );
            }
        }
    }

    // Veth pairs between hosts become tunnels.
    let mut pairs: Vec<(Endpoint, Endpoint)> = Vec::new();
    for (nname, node) in nodes.iter() {
        for i in node.interfaces.values() {
            let (KindSpec::Veth(_), Some(peer)) = (&i.kind, &i.peer) else {
                continue;
            };
            let me = Endpoint::new(nname, &i.name);
            let (ha, hb) = (host_of(nodes, nname), host_of(nodes, &peer.node));
            if me < *peer && ha.is_some() && hb.is_some() && ha != hb {
                pairs.push((me, peer.clone()));
            }
        }
    }
    pairs.sort();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for (a, b) in pairs {
        let (Some(ha), Some(hb)) = (host_of(nodes, &a.node).and_then(|h| hosts.get(&h).cloned()), host_of(nodes, &b.node).and_then(|h| hosts.get(&h).cloned()))
        else {
            continue; // a bad host was reported above
        };
        let mut vni = vni_for(&topo.name, &a, &b);
        while !used.insert(vni) {
            vni = vni % VNI_MAX + 1;
        }
        let path_mtu = ha.mtu.min(hb.mtu).saturating_sub(overhead(ha.underlay));
        for (ep, local, remote, peer) in [(&a, &ha, &hb, &b), (&b, &hb, &ha, &a)] {
            let Some(iface) = nodes.get_mut(&ep.node).and_then(|n| n.interfaces.get_mut(&ep.ifname)) else {
                continue;
            };
            match iface.mtu {
                None => iface.mtu = Some(path_mtu.max(68)),
                Some(m) if m > path_mtu => {
                    let p = iface.path.clone();
                    ctx.warn_at(
                        &p,
                        format!("`{ep}` crosses from host `{}` to host `{}` with MTU {m}, over the {path_mtu} the underlay leaves for a tunnel; larger packets will be dropped or fragmented", local.name, remote.name),
                        "MTU too large for the tunnel",
                    );
                }
                Some(_) => {}
            }
            tunnels.insert(ep.clone(), Tunnel { vni, local: local.underlay, remote: remote.underlay, peer: peer.clone(), port: VXLAN_PORT });
        }
    }
    (hosts, tunnels)
}

/// The share of host `host`: its nodes, with each tunnel end turned into a VXLAN device.
pub fn share(lab: &Lab, host: &str) -> Result<Lab, Diag> {
    if !lab.hosts.contains_key(host) {
        let names: Vec<&str> = lab.hosts.keys().map(String::as_str).collect();
        let msg = if names.is_empty() {
            format!("`--host {host}`: lab {} declares no `hosts`; it is built on one machine (drop `--host`)", lab.name)
        } else {
            format!("`--host {host}`: lab {} has no host `{host}` (its hosts: {})", lab.name, names.join(", "))
        };
        return Err(Diag::error(msg));
    }
    let mut out = lab.clone();
    out.nodes.retain(|_, n| n.host.as_deref() == Some(host));
    out.tunnels.retain(|ep, _| out.nodes.contains_key(&ep.node));
    for (ep, t) in &out.tunnels {
        let Some(iface) = out.nodes.get_mut(&ep.node).and_then(|n| n.interfaces.get_mut(&ep.ifname)) else {
            continue;
        };
        iface.kind = KindSpec::Vxlan(VxlanSpec {
            vni: t.vni,
            remote: Some(t.remote.to_string()),
            local: Some(t.local.to_string()),
            dstport: Some(t.port),
            ..Default::default()
        });
        iface.peer = None;
    }
    out.topology.nodes.retain(|n, _| out.nodes.contains_key(n));
    out.topology.links.retain(|l| l.endpoints.iter().filter_map(|e| Endpoint::parse(e)).all(|e| out.nodes.contains_key(&e.node)));
    out.share = Some(host.to_string());
    Ok(out)
}

/// Refuses to build a multi-host lab without choosing a host.
pub fn require_share(lab: &Lab) -> Result<(), Diag> {
    if !lab.hosts.is_empty() && lab.share.is_none() {
        let names: Vec<&str> = lab.hosts.keys().map(String::as_str).collect();
        return Err(Diag::error(format!("lab {} spans hosts ({}): each host builds its share with `vnet up FILE --host NAME`", lab.name, names.join(", "))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_str, Format};

    const TWO: &str = r#"
name: mh
hosts:
  h1: { underlay: 192.168.200.1 }
  h2: { underlay: 192.168.200.2, mtu: 9000 }
nodes:
  a: { host: h1, interfaces: { eth0: { addresses: [10.50.0.1/24] }, eth1: {} } }
  e: { host: h1 }
  b: { host: h2, interfaces: { eth0: { addresses: [10.50.0.2/24], master: br0 }, br0: { kind: bridge } } }
  c: { host: h2 }
  d: { host: h1 }
links:
  - endpoints: [a:eth0, b:eth0]
  - endpoints: [a:eth1, e:eth0]
  - endpoints: [d:eth0, c:eth0]
    mtu: 1400
"#;

    fn errors(yaml: &str) -> Vec<String> {
        match load_str("t.yaml", yaml, Format::Yaml) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|x| x.message.clone()).collect(),
        }
    }

    #[test]
    fn cross_host_links_become_tunnels_with_deterministic_vnis_and_mtus() {
        let lab = load_str("t.yaml", TWO, Format::Yaml).unwrap().lab;
        assert_eq!(lab.tunnels.len(), 4, "two links cross hosts, two ends each");
        let t = &lab.tunnels[&Endpoint::new("a", "eth0")];
        assert_eq!(t.vni, vni_for("mh", &Endpoint::new("a", "eth0"), &Endpoint::new("b", "eth0")));
        assert_eq!(t.vni, lab.tunnels[&Endpoint::new("b", "eth0")].vni, "both ends share the VNI");
        assert_ne!(t.vni, lab.tunnels[&Endpoint::new("c", "eth0")].vni, "one VNI per link");
        assert_eq!((t.local.to_string(), t.remote.to_string()), ("192.168.200.1".into(), "192.168.200.2".into()));
        assert!(!lab.tunnels.contains_key(&Endpoint::new("a", "eth1")), "a same-host link stays a veth pair");
        let mtu = |n: &str, i: &str| lab.nodes[n].interfaces[i].mtu;
        assert_eq!(mtu("a", "eth0"), Some(1450), "the smaller underlay MTU (1500) minus 50");
        assert_eq!(mtu("d", "eth0"), Some(1400), "the link's own MTU wins");
        assert_eq!(mtu("a", "eth1"), None);
        // Another lab name gives other VNIs.
        let other = load_str("t.yaml", &TWO.replace("name: mh", "name: mh2"), Format::Yaml).unwrap().lab;
        assert_ne!(other.tunnels[&Endpoint::new("a", "eth0")].vni, t.vni);
    }

    #[test]
    fn a_share_holds_its_nodes_and_its_tunnel_ends() {
        let lab = load_str("t.yaml", TWO, Format::Yaml).unwrap().lab;
        let h1 = share(&lab, "h1").unwrap();
        assert_eq!(h1.nodes.keys().collect::<Vec<_>>(), vec!["a", "e", "d"]);
        let a0 = &h1.nodes["a"].interfaces["eth0"];
        let KindSpec::Vxlan(v) = &a0.kind else { panic!("a:eth0 is {:?}", a0.kind) };
        assert_eq!(v.vni, lab.tunnels[&Endpoint::new("a", "eth0")].vni);
        assert_eq!(v.remote.as_deref(), Some("192.168.200.2"));
        assert_eq!(v.local.as_deref(), Some("192.168.200.1"));
        assert_eq!(v.port(), 4789);
        assert_eq!(a0.addresses[0].to_string(), "10.50.0.1/24");
        assert!(a0.peer.is_none());
        assert!(matches!(h1.nodes["a"].interfaces["eth1"].kind, KindSpec::Veth(_)));
        assert_eq!(h1.topology.nodes.len(), 3);
        let h2 = share(&lab, "h2").unwrap();
        let b0 = &h2.nodes["b"].interfaces["eth0"];
        assert!(matches!(b0.kind, KindSpec::Vxlan(_)));
        assert_eq!(b0.master.as_deref(), Some("br0"), "a tunnel end can be a bridge port");
        assert!(share(&lab, "h3").unwrap_err().message.contains("has no host `h3` (its hosts: h1, h2)"));
        assert!(require_share(&lab).unwrap_err().message.contains("--host NAME"));
        assert!(require_share(&h1).is_ok());
    }

    #[test]
    fn bad_hosts_are_reported() {
        let e = errors("name: x\nhosts: { h1: { underlay: 10.0.0.1 } }\nnodes: { a: { host: h2 }, b: {} }\n");
        assert!(e.iter().any(|m| m == "unknown host `h2` for node `a`"), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("node `b` is on no host")), "{e:?}");
        let e = errors("name: x\nnodes: { a: { host: h1 } }\n");
        assert_eq!(e, vec!["node `a` names host `h1`, but the lab declares no `hosts`"]);
        let e = errors("name: x\nhosts: { h1: { underlay: 10.0.0.1 }, h2: { underlay: 10.0.0.1 } }\nnodes: { a: { host: h1 } }\n");
        assert_eq!(e, vec!["hosts `h1` and `h2` have the same underlay address 10.0.0.1"]);
        let e = errors("name: x\nhosts: { h1: { underlay: 10.0.0.1 }, h2: { underlay: 'fd00::2' } }\nnodes: { a: { host: h1 } }\n");
        assert!(e[0].starts_with("hosts mix IPv4 and IPv6"), "{e:?}");
        let e = errors("name: x\nhosts: { h1: { underlay: nowhere } }\nnodes: { a: { host: h1 } }\n");
        assert_eq!(e, vec!["underlay `nowhere` of host `h1` is not an IP address"]);
        let e = errors("name: x\nhosts: { h1: { underlay: 10.0.0.1, mtu: 100 } }\nnodes: { a: { host: h1 } }\n");
        assert!(e[0].starts_with("underlay MTU 100 of host `h1` is out of range"), "{e:?}");
        let e = errors(
            "name: x\nhosts: { h1: { underlay: 10.0.0.1 }, h2: { underlay: 10.0.0.2 } }\nnodes:\n  a: { host: h1, interfaces: { eth0: {} } }\n  b: { host: h2, interfaces: { mv: { kind: macvlan, link: 'a:eth0' } } }\n  c: { host: h1 }\nlinks: [ { endpoints: [a:eth0, c:eth0] } ]\n",
        );
        assert!(e.iter().any(|m| m.contains("a device and its lower must be on one host")), "{e:?}");
    }

    #[test]
    fn an_mtu_over_the_tunnel_budget_is_a_warning() {
        let yaml = TWO.replace("    mtu: 1400\n", "    mtu: 1500\n");
        let l = load_str("t.yaml", &yaml, Format::Yaml).unwrap();
        let w: Vec<String> = l.warnings.iter().map(|d| d.message.clone()).collect();
        assert!(w.iter().any(|m| m.contains("with MTU 1500, over the 1450 the underlay leaves")), "{w:?}");
    }
}
