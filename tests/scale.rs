//! Correctness at scale: a 1000-node star built by vnet is what `status` and `ip` say, carries
//! traffic end to end, and leaves nothing behind. (Speed is measured by `vnet bench`, not here.)

mod common;

use common::*;
use vnet::bench::{generate, Shape};
use vnet::lab::LabOptions;
use vnet::Lab;

#[test]
fn star_1000_is_complete_and_reachable_end_to_end() {
    require_root();
    let g = generate(Shape::Star, 1000);
    let lab = Lab::from_topology(g.topology("scale-star"), LabOptions::default()).unwrap();
    let name = lab.name().to_string();

    let st = lab.status().unwrap();
    assert_eq!(st.nodes.len(), 1001);
    let mut devices = 0;
    for n in &st.nodes {
        assert!(n.present, "node {} missing", n.node);
        for d in &n.devices {
            assert!(d.up, "{}:{} is down", n.node, d.name);
            devices += 1;
        }
        if n.node != "host" {
            let eth0 = n.devices.iter().find(|d| d.name == "eth0").expect("eth0");
            assert!(eth0.carrier, "{}: eth0 has no carrier", n.node);
            assert_eq!(eth0.addresses.len(), 1, "{}: {:?}", n.node, eth0.addresses);
            assert!(n.routes.iter().any(|r| r.dst == "default"), "{}: no default route", n.node);
        }
    }
    // host: lo, br0, 1000 veth ends; each node: lo, eth0.
    assert_eq!(devices, 2 + 1000 + 2 * 1000);
    // Independently: the host namespace holds 1000 bridge ports.
    let host = lab.node("host").netns().unwrap().to_string();
    let ports = ip_json(Some(&host), &["link", "show", "master", "br0"]);
    assert_eq!(ports.as_array().unwrap().len(), 1000);

    // Node 1 reaches node 1000 across the bridge.
    let n1000 = g.addresses.iter().find(|(n, _, _)| n == "n1000").unwrap().2.split('/').next().unwrap().to_string();
    assert!(ping(&lab, "n1", &n1000), "n1 cannot reach n1000 ({n1000})");

    let report = lab.down().unwrap();
    assert_eq!(report.namespaces.len(), 1001);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_gone(&name);
}

#[test]
fn chain_and_tree_carry_traffic() {
    require_root();
    for shape in [Shape::Chain, Shape::Tree] {
        let g = generate(shape, 40);
        let lab = Lab::from_topology(g.topology(&format!("scale-{}", shape.name())), LabOptions::default()).unwrap();
        for (node, dst) in g.probes.iter().step_by(7) {
            assert!(ping(&lab, node, &dst.to_string()), "{shape:?}: {node} cannot reach {dst}");
        }
        let name = lab.name().to_string();
        drop(lab);
        assert_gone(&name);
    }
}

/// Procfs instances mounted anywhere this process can see.
fn proc_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(" - proc ")).count()
}

/// vnet opens sysctls through private procfs instances, each replaced after 64 opens
/// (src/kernel/sysctl.rs). Across more nodes than two instances serve, every value lands in its
/// own node's namespace as the machine's /proc shows it, reads back as set (a second `up` finds
/// nothing to do), and no procfs mount is left where anyone can see it.
#[test]
fn sysctls_of_many_nodes_land_each_in_its_own_namespace() {
    require_root();
    let before = proc_mounts();
    let ttl = |i: usize| (100 + i).to_string();
    let mut b = Lab::builder("sysctls");
    for i in 1..=150 {
        let node = format!("n{i}");
        b = b.node(&node).sysctl(&node, "net.ipv4.ip_default_ttl", &ttl(i));
    }
    let mut lab = b.up().unwrap();
    let name = lab.name().to_string();
    for i in 1..=150 {
        let seen = lab.node(&format!("n{i}")).run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap());
        assert_eq!(seen.trim(), ttl(i), "n{i}");
    }
    assert_eq!(proc_mounts(), before, "a procfs mount of vnet's is visible");
    let again = lab.update(lab.model().topology.clone()).unwrap();
    assert!(again.plan.is_empty(), "every sysctl reads back as set: {}", again.plan);
    drop(lab);
    assert_gone(&name);
}
