//! Generated topologies for the scale benchmark, each with the same lab expressed three ways:
//! a vnet topology, an `ip -batch` build, and a plain shell script of `ip` commands.

use std::net::Ipv4Addr;

use indexmap::IndexMap;

use crate::model::file::{InterfaceSpec, LinkSpec, NodeSpec, RouteSpec, SysctlValue, Topology};
use crate::model::kind::{BridgeSpec, KindSpec};

/// Which shape to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// One bridge in the host, N namespaces each with a veth to it, one /16. Above 1000 nodes,
    /// one bridge (and /16) per 1000 nodes, routed by the host: the kernel caps a bridge at
    /// 1023 ports.
    Star,
    /// N namespaces in a line, routed hop by hop, ip_forward on.
    Chain,
    /// A two-level tree: the host routes between ~sqrt(N) switch nodes, each a bridge with its
    /// share of the N leaf namespaces in a /16 of its own.
    Tree,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Star => "star",
            Shape::Chain => "chain",
            Shape::Tree => "tree",
        }
    }
}

/// One device of a generated lab, in terms every builder (vnet, ip batch, ip script) can use.
#[derive(Clone, Debug)]
pub struct GenLink {
    /// (node, ifname) of the end that carries a master (or the first end).
    pub a: (String, String),
    pub b: (String, String),
    pub a_master: Option<String>,
    pub b_master: Option<String>,
}

/// A generated lab.
#[derive(Clone, Debug)]
pub struct Generated {
    pub shape: Shape,
    pub nodes: usize,
    /// Node names in creation order; `host` first.
    pub namespaces: Vec<String>,
    /// (node, bridge name, address)
    pub bridges: Vec<(String, String, Option<String>)>,
    pub links: Vec<GenLink>,
    /// (node, ifname, cidr)
    pub addresses: Vec<(String, String, String)>,
    /// (node, destination, gateway)
    pub routes: Vec<(String, String, String)>,
    /// Nodes with ip_forward on.
    pub forwarding: Vec<String>,
    /// One probe per node: (node, destination address).
    pub probes: Vec<(String, Ipv4Addr)>,
}

/// Address `i` of segment `seg`: 10.seg.0.0/16, `.1` is the hub.
fn seg_addr(seg: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, seg as u8, 0, 0)) + i as u32 + 1)
}

pub fn generate(shape: Shape, n: usize) -> Generated {
    let mut g = Generated {
        shape,
        nodes: n,
        namespaces: vec!["host".into()],
        bridges: Vec::new(),
        links: Vec::new(),
        addresses: Vec::new(),
        routes: Vec::new(),
        forwarding: Vec::new(),
        probes: Vec::new(),
    };
    match shape {
        Shape::Star => {
            // A Linux bridge holds at most 1023 ports, and one broadcast domain of thousands of
            // ports drowns in its own ARP floods: past 1000 nodes the host holds one bridge per
            // 1000 nodes, each with its own /16, and routes between them.
            let per_bridge = 1000;
            let bridges = n.div_ceil(per_bridge).max(1);
            for b in 0..bridges {
                g.bridges.push(("host".into(), format!("br{b}"), Some(format!("{}/16", seg_addr(b, 0)))));
            }
            if bridges > 1 {
                g.forwarding.push("host".into());
            }
            for i in 1..=n {
                let node = format!("n{i}");
                let b = (i - 1) / per_bridge;
                let hub = seg_addr(b, 0);
                g.namespaces.push(node.clone());
                g.links.push(GenLink {
                    a: ("host".into(), format!("v{i}")),
                    b: (node.clone(), "eth0".into()),
                    a_master: Some(format!("br{b}")),
                    b_master: None,
                });
                g.addresses.push((node.clone(), "eth0".into(), format!("{}/16", seg_addr(b, (i - 1) % per_bridge + 1))));
                g.routes.push((node.clone(), "default".into(), hub.to_string()));
                g.probes.push((node, hub));
            }
        }
        Shape::Tree => {
            // The host routes between ~sqrt(N) switch nodes, each a bridge with its leaves in a
            // /16 of its own. One broadcast domain across the whole tree would not work past
            // ~1000 nodes: every ARP broadcast, flooded through all switches, is queued once
            // per leaf on the receiving CPU's backlog (net.core.netdev_max_backlog, 1000, not
            // per namespace) and the overflow drops replies.
            let k = ((n as f64).sqrt().ceil() as usize).clamp(1, 256);
            g.forwarding.push("host".into());
            for s in 1..=k {
                let sw = format!("s{s}");
                g.namespaces.push(sw.clone());
                g.bridges.push((sw.clone(), "br0".into(), None));
                g.links.push(GenLink { a: (sw, "up0".into()), b: ("host".into(), format!("u{s}")), a_master: Some("br0".into()), b_master: None });
                g.addresses.push(("host".into(), format!("u{s}"), format!("{}/16", seg_addr(s - 1, 0))));
            }
            for i in 1..=n {
                let node = format!("n{i}");
                let s = (i - 1) % k + 1;
                let gw = seg_addr(s - 1, 0);
                g.namespaces.push(node.clone());
                g.links.push(GenLink { a: (format!("s{s}"), format!("p{i}")), b: (node.clone(), "eth0".into()), a_master: Some("br0".into()), b_master: None });
                g.addresses.push((node.clone(), "eth0".into(), format!("{}/16", seg_addr(s - 1, (i - 1) / k + 1))));
                g.routes.push((node.clone(), "default".into(), gw.to_string()));
                g.probes.push((node, gw));
            }
        }
        Shape::Chain => {
            // Link k joins r{k} and r{k+1} with 10.x.y.(4k)/30: .1 on r{k}, .2 on r{k+1}.
            let link_base = |k: usize| u32::from(Ipv4Addr::new(10, 64, 0, 0)) + 4 * k as u32;
            let left = |k: usize| Ipv4Addr::from(link_base(k) + 1);
            let right = |k: usize| Ipv4Addr::from(link_base(k) + 2);
            // The host joins r1 as the chain's first hop.
            g.links.push(GenLink { a: ("host".into(), "e1".into()), b: ("r1".into(), "e0".into()), a_master: None, b_master: None });
            g.addresses.push(("host".into(), "e1".into(), format!("{}/30", left(0))));
            for i in 1..=n {
                let node = format!("r{i}");
                g.namespaces.push(node.clone());
                g.forwarding.push(node.clone());
                g.addresses.push((node.clone(), "e0".into(), format!("{}/30", right(i - 1))));
                if i < n {
                    g.links.push(GenLink { a: (node.clone(), "e1".into()), b: (format!("r{}", i + 1), "e0".into()), a_master: None, b_master: None });
                    g.addresses.push((node.clone(), "e1".into(), format!("{}/30", left(i))));
                }
                // Toward the host: everything in 10.64.0.0/30 goes left; the rest goes right.
                if i > 1 {
                    g.routes.push((node.clone(), format!("{}/30", Ipv4Addr::from(link_base(0))), left(i - 1).to_string()));
                }
                if i < n {
                    g.routes.push((node.clone(), "default".into(), right(i).to_string()));
                }
                // One probe per node: its left neighbour.
                g.probes.push((node, left(i - 1)));
            }
        }
    }
    g
}

impl Generated {
    /// The same lab as a vnet topology (isolated host).
    pub fn topology(&self, lab: &str) -> Topology {
        let mut nodes: IndexMap<String, NodeSpec> = IndexMap::new();
        for ns in &self.namespaces {
            nodes.insert(ns.clone(), NodeSpec::default());
        }
        for (node, br, addr) in &self.bridges {
            let mut i = InterfaceSpec::new(KindSpec::Bridge(BridgeSpec { multicast_snooping: Some(false), ..Default::default() }));
            i.addresses.extend(addr.clone());
            nodes[node].interfaces.insert(br.clone(), i);
        }
        for l in &self.links {
            for ((node, ifname), master) in [(&l.a, &l.a_master), (&l.b, &l.b_master)] {
                if let Some(m) = master {
                    let mut i = InterfaceSpec::new(KindSpec::Veth(Default::default()));
                    i.master = Some(m.clone());
                    nodes[node].interfaces.insert(ifname.clone(), i);
                }
            }
        }
        for (node, ifname, cidr) in &self.addresses {
            let e = nodes[node].interfaces.entry(ifname.clone()).or_insert_with(|| InterfaceSpec::new(KindSpec::Veth(Default::default())));
            e.addresses.push(cidr.clone());
        }
        for (node, dst, via) in &self.routes {
            nodes[node].routes.push(RouteSpec { to: dst.clone(), via: Some(via.clone()), ..Default::default() });
        }
        for node in &self.forwarding {
            nodes[node].sysctls.insert("net.ipv4.ip_forward".into(), SysctlValue::Int(1));
        }
        Topology {
            name: lab.to_string(),
            isolated_host: true,
            netns_prefix: None,
            ipv6: None,
            neighbour_limits: None,
            ipsec: Vec::new(),
            expect: Vec::new(),
            nodes,
            links: self.links.iter().map(|l| LinkSpec { endpoints: vec![format!("{}:{}", l.a.0, l.a.1), format!("{}:{}", l.b.0, l.b.1)], mtu: None }).collect(),
            ..Default::default()
        }
    }

    /// The best hand-tuned `ip -batch` build: one batch in the host for the namespaces, then
    /// one `ip -n NS -batch` per namespace that creates devices (veth peers born in their
    /// namespace with their final name), then one per namespace for what happens inside it.
    pub fn ip_batch(&self, ns: &dyn Fn(&str) -> String) -> (String, Vec<(String, String)>) {
        let mut host = String::new();
        for n in &self.namespaces {
            host.push_str(&format!("netns add {}\n", ns(n)));
        }
        for node in &self.forwarding {
            host.push_str(&format!("netns exec {} sysctl -qw net.ipv4.ip_forward=1\n", ns(node)));
        }
        let mut creators: IndexMap<String, String> = IndexMap::new();
        let mut inside: IndexMap<String, String> = self.namespaces.iter().map(|n| (n.clone(), String::new())).collect();
        for (node, br, _) in &self.bridges {
            creators.entry(node.clone()).or_default().push_str(&format!("link add {br} type bridge mcast_snooping 0\n"));
        }
        for l in &self.links {
            let ((an, ai), (bn, bi)) = (&l.a, &l.b);
            let master = l.a_master.as_ref().map(|m| format!(" master {m}")).unwrap_or_default();
            creators.entry(an.clone()).or_default().push_str(&format!("link add {ai}{master} up type veth peer name {bi} netns {}\n", ns(bn)));
            let m = l.b_master.as_ref().map(|m| format!(" master {m}")).unwrap_or_default();
            inside[bn].push_str(&format!("link set {bi}{m} up\n"));
        }
        for (node, br, addr) in &self.bridges {
            inside[node].push_str(&format!("link set {br} up\n"));
            if let Some(a) = addr {
                inside[node].push_str(&format!("addr add {a} dev {br}\n"));
            }
        }
        for (node, ifname, cidr) in &self.addresses {
            inside[node].push_str(&format!("addr add {cidr} dev {ifname}\n"));
        }
        for n in &self.namespaces {
            inside[n].push_str("link set lo up\n");
        }
        for (node, dst, via) in &self.routes {
            inside[node].push_str(&format!("route add {dst} via {via}\n"));
        }
        let files = creators.into_iter().chain(inside).filter(|(_, t)| !t.is_empty()).map(|(n, t)| (ns(&n), t)).collect();
        (host, files)
    }

    /// The tutorial way: one `ip` command per step, veths created in the host and moved.
    pub fn ip_script(&self, ns: &dyn Fn(&str) -> String) -> String {
        let mut s = String::from("set -e\n");
        for n in &self.namespaces {
            s.push_str(&format!("ip netns add {}\n", ns(n)));
        }
        for (node, br, _) in &self.bridges {
            s.push_str(&format!("ip -n {} link add {br} type bridge mcast_snooping 0\n", ns(node)));
        }
        for (k, l) in self.links.iter().enumerate() {
            let (an, ai) = &l.a;
            let (bn, bi) = &l.b;
            // Created in the host under temporary names, then moved and renamed (the seeds' way).
            s.push_str(&format!("ip link add vbA{k} type veth peer name vbB{k}\n"));
            s.push_str(&format!("ip link set vbA{k} netns {}\n", ns(an)));
            s.push_str(&format!("ip link set vbB{k} netns {}\n", ns(bn)));
            s.push_str(&format!("ip -n {} link set vbA{k} name {ai}\n", ns(an)));
            s.push_str(&format!("ip -n {} link set vbB{k} name {bi}\n", ns(bn)));
            if let Some(m) = &l.a_master {
                s.push_str(&format!("ip -n {} link set {ai} master {m}\n", ns(an)));
            }
            if let Some(m) = &l.b_master {
                s.push_str(&format!("ip -n {} link set {bi} master {m}\n", ns(bn)));
            }
            s.push_str(&format!("ip -n {} link set {ai} up\n", ns(an)));
            s.push_str(&format!("ip -n {} link set {bi} up\n", ns(bn)));
        }
        for (node, br, addr) in &self.bridges {
            s.push_str(&format!("ip -n {} link set {br} up\n", ns(node)));
            if let Some(a) = addr {
                s.push_str(&format!("ip -n {} addr add {a} dev {br}\n", ns(node)));
            }
        }
        for (node, ifname, cidr) in &self.addresses {
            s.push_str(&format!("ip -n {} addr add {cidr} dev {ifname}\n", ns(node)));
        }
        for n in &self.namespaces {
            s.push_str(&format!("ip -n {} link set lo up\n", ns(n)));
        }
        for (node, dst, via) in &self.routes {
            s.push_str(&format!("ip -n {} route add {dst} via {via}\n", ns(node)));
        }
        for node in &self.forwarding {
            s.push_str(&format!("ip netns exec {} sysctl -qw net.ipv4.ip_forward=1\n", ns(node)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_topologies_validate() {
        for shape in [Shape::Star, Shape::Chain, Shape::Tree] {
            let g = generate(shape, 20);
            let t = g.topology(&format!("bench-{}", shape.name()));
            let loaded = crate::model::load_topology(&t).unwrap_or_else(|d| panic!("{shape:?}: {d}"));
            assert_eq!(loaded.lab.nodes.len(), g.namespaces.len());
            assert_eq!(g.probes.len(), 20);
        }
    }

    #[test]
    fn big_stars_stay_under_the_bridge_port_limit() {
        let g = generate(Shape::Star, 2500);
        let t = g.topology("bench-big");
        let loaded = crate::model::load_topology(&t).unwrap_or_else(|d| panic!("{d}"));
        let host = &loaded.lab.nodes["host"];
        for br in ["br0", "br1", "br2"] {
            let ports = host.interfaces.values().filter(|i| i.master.as_deref() == Some(br)).count();
            assert!(ports <= 1023 && ports > 400, "{br}: {ports}");
        }
        assert_eq!(host.interfaces["br1"].addresses[0].to_string(), "10.1.0.1/16");
        assert_eq!(host.sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
    }

    #[test]
    fn chain_routes_stay_constant_per_node() {
        let g = generate(Shape::Chain, 50);
        for node in &g.namespaces[1..] {
            assert!(g.routes.iter().filter(|r| &r.0 == node).count() <= 2);
        }
    }

    #[test]
    fn ip_script_moves_veths_like_the_tutorials() {
        let g = generate(Shape::Star, 2);
        let s = g.ip_script(&|n| format!("x-{n}"));
        assert!(s.contains("ip link set vbB0 netns x-n1"));
        assert!(s.contains("ip -n x-n1 route add default via 10.0.0.1"));
        assert!(s.contains("ip -n x-host addr add 10.0.0.1/16 dev br0"));
        let (host, files) = g.ip_batch(&|n| format!("x-{n}"));
        assert!(host.contains("netns add x-n2"));
        assert!(files.iter().any(|(ns, t)| ns == "x-host" && t.contains("link add v1 master br0 up type veth peer name eth0 netns x-n1")));
        assert!(files.iter().any(|(ns, t)| ns == "x-host" && t.contains("addr add 10.0.0.1/16 dev br0")));
    }
}
