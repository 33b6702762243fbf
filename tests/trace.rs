//! `vnet trace` on real labs: routed, bridged, macvlan (bridge and vepa modes) and a VXLAN
//! overlay; every trace ends with a real probe that must agree with the lookups, and the route
//! steps are compared with `ip route get`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use vnet::trace::{self, Hop, Verdict};
use vnet::Lab;

/// A lab built from YAML text (no file: no locations in findings).
fn lab_from(yaml: &str) -> Lab {
    Lab::from_topology(vnet::model::load_str("t.yaml", yaml, vnet::model::Format::Yaml).unwrap().lab.topology, Default::default()).unwrap()
}

fn texts(hops: &[Hop]) -> Vec<String> {
    hops.iter().map(Hop::text).collect()
}

#[test]
fn routed_trace_there_and_back_agrees_with_the_probe_and_iproute2() {
    require_root();
    let lab = Lab::from_file(repo("examples/routed.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "a", "c").unwrap();
    assert_eq!(
        texts(&t.hops),
        [
            "a: route lookup for 10.2.0.2: unicast via 10.1.0.1 dev eth0 src 10.1.0.2",
            "a:eth0 -> r:eth0 (veth)",
            "r: arrives on eth0 (10.1.0.1 is here)",
            "r: route lookup for 10.2.0.2 (from 10.1.0.2, arrived on eth0): unicast dev eth1",
            "r:eth1 -> c:eth0 (veth)",
            "c: arrives on eth0 (10.2.0.2 is here)",
            "c: route lookup for 10.2.0.2 (from 10.1.0.2, arrived on eth0): local dev lo",
            "c: delivered locally (on eth0)",
        ]
    );
    assert_eq!(t.verdict, Verdict::Delivered);
    assert_eq!(t.back_verdict, Some(Verdict::Delivered));
    assert_eq!(texts(&t.back)[0], "c: route lookup for 10.1.0.2: unicast via 10.2.0.1 dev eth0 src 10.2.0.2");
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "{c:?}");
    // iproute2 sees the same first lookup.
    let g = ip_json(lab.node("a").netns(), &["route", "get", "10.2.0.2"]);
    assert_eq!(g[0]["gateway"], "10.1.0.1");
    assert_eq!(g[0]["prefsrc"], "10.1.0.2");
    // And the forwarding lookup at r, asked as `ip route get ... from ... iif eth0`.
    let g = ip_json(lab.node("r").netns(), &["route", "get", "10.2.0.2", "from", "10.1.0.2", "iif", "eth0"]);
    assert_eq!(g[0]["dev"], "eth1");

    // d gets the packet but cannot answer: the way back says why, the probe agrees.
    let t = trace::trace_running(&rl, "a", "d").unwrap();
    assert_eq!(t.verdict, Verdict::Delivered);
    assert_eq!(t.back_verdict, Some(Verdict::Dropped));
    assert_eq!(texts(&t.back), ["d: route lookup for 10.1.0.2: error", "d: DROPPED: no route (network unreachable)"]);
    let c = t.confirm.unwrap();
    assert!(!c.reply && c.agrees, "{c:?}");

    // The router has no route to 10.9.9.9: dropped there, and the router says so.
    let t = trace::trace_running(&rl, "a", "10.9.9.9").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    assert!(matches!(t.hops.last(), Some(Hop::Drop { node, cause, .. }) if node == "r" && cause == "no-route"), "{:?}", t.hops);
    assert_eq!(t.confirm.unwrap().seen, "network unreachable from 10.1.0.1");

    // CLI: readable list, JSON, exit codes (0 only for a round trip the probe confirms).
    let out = Command::new(vnet_bin()).args(["trace", lab.name(), "a", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  2. a:eth0 -> r:eth0 (veth)\n") && text.contains("probe: reply from 10.2.0.2 (agrees)"), "{text}");
    let out = Command::new(vnet_bin()).args(["trace", lab.name(), "a", "d", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["verdict"], "delivered");
    assert_eq!(j["back_verdict"], "dropped");
    assert_eq!(j["hops"][1]["step"], "link");
    assert_eq!(j["back"][1]["cause"], "no-route");
}

#[test]
fn forwarding_off_is_the_kernels_verdict() {
    require_root();
    let lab = Lab::from_file(repo("examples/routed.yaml")).unwrap();
    let r = lab.node("r");
    assert!(r.command("sysctl").args(["-qw", "net.ipv4.ip_forward=0"]).status().unwrap().success());
    let t = trace::trace_running(&lab.running().unwrap(), "a", "c").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    match t.hops.last() {
        Some(Hop::Drop { node, dev, cause, why }) => {
            assert_eq!((node.as_str(), dev.as_deref(), cause.as_str()), ("r", Some("eth0"), "forwarding-off"));
            assert!(why.contains("forwarding is off"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.confirm.unwrap().agrees);
}

#[test]
fn bridge_trace_uses_the_fdb_and_stops_at_a_down_port() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let rl = lab.running().unwrap();
    // Teach the bridge where ns2 is.
    assert!(ping(&lab, "ns2", "192.168.1.10"));
    let t = trace::trace_running(&rl, "ns1", "ns2").unwrap();
    let h = texts(&t.hops);
    assert_eq!(h[0], "ns1: route lookup for 192.168.1.12: unicast dev eth0 src 192.168.1.11");
    assert_eq!(h[1], "ns1:eth0 -> host:veth1 (veth)");
    assert!(h[2].starts_with("host: bridge br1 forwards for ") && h[2].ends_with(" out of veth2 (forwarding database)"), "{h:?}");
    assert_eq!(h[3], "host:veth2 -> ns2:eth0 (veth)");
    assert_eq!(t.verdict, Verdict::Delivered);
    assert!(t.confirm.unwrap().agrees);
    // The MAC the bridge looked up is ns2's, as the kernel's FDB shows it.
    let mac = ip_link(lab.node("ns2").netns(), "eth0").unwrap()["address"].as_str().unwrap().to_string();
    assert!(h[2].contains(&mac));
    // Take ns2's end down: the trace stops at the bridge port without carrier.
    ip(lab.node("ns2").netns().unwrap(), &["link", "set", "eth0", "down"]);
    let t = trace::trace_running(&rl, "ns1", "192.168.1.12").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    assert!(matches!(t.hops.last(), Some(Hop::Drop { cause, .. }) if cause == "no-carrier" || cause == "device-down"), "{:?}", t.hops);
    assert!(t.confirm.unwrap().agrees);
}

#[test]
fn macvlan_bridge_mode_goes_straight_to_the_sibling() {
    require_root();
    let lab = lab_from(&macvlan_switch("trmv"));
    macvlans(&lab, "bridge", "10.6.0");
    let t = trace::trace_running(&lab.running().unwrap(), "m1", "10.6.0.12").unwrap();
    assert_eq!(texts(&t.hops)[1], "m1:mv1 -> m2:mv2 (macvlan bridge mode, sibling on the same lower device)");
    assert_eq!(t.verdict, Verdict::Delivered);
    assert!(t.confirm.unwrap().reply);
}

#[test]
fn macvlan_vepa_mode_goes_out_and_back_through_a_hairpin_port() {
    require_root();
    let lab = lab_from(&macvlan_switch("trmv"));
    macvlans(&lab, "vepa", "10.6.0");
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "m1", "10.6.0.12").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    assert!(texts(&t.hops).last().unwrap().contains("does not send a frame back out of the port it came in on (p0 has hairpin off)"), "{:?}", texts(&t.hops));
    assert!(t.confirm.unwrap().agrees);
    ip(lab.node("sw").netns().unwrap(), &["link", "set", "p0", "type", "bridge_slave", "hairpin", "on"]);
    // m1's neighbour entry for m2 failed a moment ago; let it resolve before timing a probe.
    assert!((0..3).any(|_| ping(&lab, "m1", "10.6.0.12")), "vepa siblings talk through a hairpin port");
    let t = trace::trace_running(&rl, "m1", "10.6.0.12").unwrap();
    let h = texts(&t.hops);
    assert_eq!(h[1], "m1:mv1 -> h:up0 (macvlan vepa mode, out through the lower device)");
    assert_eq!(h[2], "h:up0 -> sw:p0 (veth)");
    assert!(h[3].starts_with("sw: bridge br0 forwards") && h[3].contains("out of p0"), "{h:?}");
    assert_eq!(h[4], "sw:p0 -> h:up0 (veth)");
    assert_eq!(h[5], "h:up0 -> m2:mv2 (macvlan on its lower device)");
    assert_eq!(t.verdict, Verdict::Delivered);
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "{c:?}");
}

const UNDERLAY: &str = "name: trvx
nodes:
  h1: { interfaces: { eth0: { addresses: [192.0.2.1/24] } } }
  h2: { interfaces: { eth0: { addresses: [192.0.2.2/24] } } }
links:
  - endpoints: [h1:eth0, h2:eth0]
";

#[test]
fn vxlan_trace_follows_the_underlay_to_the_remote_end() {
    require_root();
    let lab = lab_from(UNDERLAY);
    for (n, local, remote, addr) in [("h1", "192.0.2.1", "192.0.2.2", "10.42.0.1/24"), ("h2", "192.0.2.2", "192.0.2.1", "10.42.0.2/24")] {
        let ns = lab.node(n).netns().unwrap().to_string();
        ip(&ns, &["link", "add", "vx42", "type", "vxlan", "id", "42", "local", local, "remote", remote, "dev", "eth0", "dstport", "4789"]);
        ip(&ns, &["addr", "add", addr, "dev", "vx42"]);
        ip(&ns, &["link", "set", "vx42", "up"]);
    }
    let t = trace::trace_running(&lab.running().unwrap(), "h1", "10.42.0.2").unwrap();
    let h = texts(&t.hops);
    assert_eq!(h[0], "h1: route lookup for 10.42.0.2: unicast dev vx42 src 10.42.0.1");
    assert_eq!(h[1], "h1:vx42 -> h2:vx42 (vxlan vni 42, encapsulated to 192.0.2.2)");
    assert_eq!(h[2], "h1:eth0 -> h2:eth0 (underlay: veth)");
    assert!(h.iter().any(|x| x == "h2: arrives on vx42 (10.42.0.2 is here)"), "{h:?}");
    assert_eq!(t.verdict, Verdict::Delivered);
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "the overlay really carries the probe: {c:?}");
}

#[test]
fn trace_goes_on_when_another_nodes_namespace_is_missing() {
    require_root();
    let lab = lab_from(
        "name: t
nodes:
  a: { interfaces: { eth0: { addresses: [10.31.0.1/24] } } }
  c: { interfaces: { eth0: { addresses: [10.31.0.2/24] }, eth1: { addresses: [10.32.0.2/24] } } }
  d: { interfaces: { eth0: { addresses: [10.32.0.3/24] } } }
links:
  - endpoints: [a:eth0, c:eth0]
  - endpoints: [c:eth1, d:eth0]
",
    );
    let d = lab.node("d").netns().unwrap().to_string();
    assert!(Command::new("ip").args(["netns", "del", &d]).status().unwrap().success());
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "a", "c").unwrap();
    assert_eq!(t.verdict, Verdict::Delivered);
    let want = format!("the namespace {d} of node d is missing (lab `{}` is not as recorded): run `vnet up` with its file again to re-create it", lab.name());
    for (from, to) in [("a", "d"), ("a", "10.32.0.3"), ("d", "a")] {
        let e = trace::trace_running(&rl, from, to).map(|_| ()).unwrap_err();
        assert_eq!(e.to_string(), want, "{from} -> {to}");
    }
    let out = Command::new(vnet_bin()).args(["trace", lab.name(), "a", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(vnet_bin()).args(["trace", lab.name(), "a", "d"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), format!("error: {want}"));
}

#[test]
fn vxlan_default_fdb_entry_is_the_remote_and_head_end_replication_follows_the_copy_that_arrives() {
    require_root();
    // host2's vxlan42 has no `remote`: only `fdb: [{ dst: 192.168.100.1 }]`, the all-zeros entry.
    let lab = Lab::from_file(repo("examples/vxlan-overlay.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "work2", "work1").unwrap();
    let h = texts(&t.hops);
    assert!(
        h.iter().any(|x| x == "host2:vxlan42 -> host1:vxlan42 (vxlan vni 42, encapsulated to 192.168.100.1; default remote: the all-zeros FDB entry)"),
        "{h:?}"
    );
    assert_eq!(h.last().unwrap(), "work1: delivered locally (on eth0)");
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Delivered, Some(Verdict::Delivered)));
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "{c:?}");
    // A second default entry towards an address nobody holds: the kernel sends a copy to each;
    // the trace follows the one that reaches the destination.
    let host2 = lab.node("host2").netns().unwrap().to_string();
    let out = Command::new("bridge").args(["-n", &host2, "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan42", "dst", "192.168.100.9"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = trace::trace_running(&rl, "work2", "work1").unwrap();
    let h = texts(&t.hops);
    assert!(
        h.iter().any(|x| x.starts_with(
            "host2:vxlan42 -> host1:vxlan42 (vxlan vni 42, encapsulated to 192.168.100.1; all-zeros FDB entries: head-end replication to 2 remotes"
        )),
        "{h:?}"
    );
    assert_eq!(t.verdict, Verdict::Delivered);
    assert!(t.confirm.unwrap().agrees);
    // The doctor finds no path drop on the overlay.
    let r = vnet::doctor::doctor(lab.name()).unwrap();
    assert!(!r.findings.iter().any(|f| f.code == "path-drop"), "{:?}", r.findings);
}

#[test]
fn a_macvlan_whose_lower_device_is_down_or_without_carrier_carries_nothing() {
    require_root();
    let lab = Lab::from_file(repo("examples/macvlan-bridge.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "ns1", "ns2").unwrap();
    assert_eq!(t.verdict, Verdict::Delivered);
    assert!(t.confirm.unwrap().agrees);
    let host = lab.node("host").netns().unwrap().to_string();
    ip(&host, &["link", "set", "eth0", "down"]);
    let t = trace::trace_running(&rl, "ns1", "ns2").unwrap();
    assert_eq!(texts(&t.hops)[1], "host: DROPPED at eth0: eth0 is down: the macvlan ns1:macv1 on it carries nothing");
    assert!(matches!(t.hops.last(), Some(Hop::Drop { node, dev, cause, .. }) if node == "host" && dev.as_deref() == Some("eth0") && cause == "device-down"));
    assert_eq!(t.verdict, Verdict::Dropped);
    let c = t.confirm.unwrap();
    assert!(!c.reply && c.agrees, "{c:?}");
    // Up, but what it is cabled to is down: no carrier, nothing carried either.
    ip(&host, &["link", "set", "eth0", "up"]);
    ip(lab.node("switch").netns().unwrap(), &["link", "set", "port0", "down"]);
    let t = trace::trace_running(&rl, "ns1", "ns2").unwrap();
    assert!(matches!(t.hops.last(), Some(Hop::Drop { node, cause, .. }) if node == "host" && cause == "no-carrier"), "{:?}", t.hops);
    let c = t.confirm.unwrap();
    assert!(!c.reply && c.agrees, "{c:?}");
}

#[test]
fn masquerade_declared_in_the_lab_is_applied_there_and_undone_for_the_answer() {
    require_root();
    let lab = Lab::from_file(repo("examples/nat.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "ns1", "internet").unwrap();
    let h = texts(&t.hops);
    assert!(h.contains(&"host: masquerade out of wan0 (nodes.host.nat): source 192.168.1.11 -> 203.0.113.1".to_string()), "{h:?}");
    assert!(h.contains(&"internet: route lookup for 203.0.113.8 (from 203.0.113.1, arrived on eth0): local dev lo".to_string()), "{h:?}");
    let b = texts(&t.back);
    assert_eq!(b[0], "internet: route lookup for 203.0.113.1: unicast dev eth0 src 203.0.113.8");
    assert!(b.contains(&"host: answer to a translated connection (connection tracking): destination 203.0.113.1 -> 192.168.1.11".to_string()), "{b:?}");
    assert_eq!(b.last().unwrap(), "ns1: delivered locally (on eth0)");
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Delivered, Some(Verdict::Delivered)));
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "{c:?}");
    // Without NAT the other way: internet has no route to the private side, and says so.
    let t = trace::trace_running(&rl, "internet", "ns1").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    assert!(t.confirm.unwrap().agrees);
    // CLI exit code: 0 for the confirmed round trip.
    let out = Command::new(vnet_bin()).args(["trace", lab.name(), "ns1", "internet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn port_forward_rewrites_the_destination_of_a_tcp_packet_and_the_answers_source() {
    require_root();
    let lab = Lab::from_file(repo("examples/nat.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let view = vnet::inspect::view::LabView::observe(&rl).unwrap();
    let (there, back) = trace::there_and_back(&rl, &view, "internet", "203.0.113.1".parse().unwrap(), trace::Proto::Tcp(8080)).unwrap();
    let h = texts(&there.hops);
    assert!(
        h.contains(&"host: port forward tcp 8080 -> 192.168.1.11:80 (nodes.host.nat): destination 203.0.113.1:8080 -> 192.168.1.11:80".to_string()),
        "{h:?}"
    );
    assert_eq!((there.verdict, there.at.as_deref()), (Verdict::Delivered, Some("ns1")));
    let back = back.unwrap();
    let b = texts(&back.hops);
    assert!(b.contains(&"host: answer to a port-forwarded connection (connection tracking): source 192.168.1.11 -> 203.0.113.1".to_string()), "{b:?}");
    assert_eq!((back.verdict, back.at.as_deref()), (Verdict::Delivered, Some("internet")));
    // ICMP is not forwarded: to 203.0.113.1 it is the host's own address.
    let t = trace::trace_running(&rl, "internet", "203.0.113.1").unwrap();
    assert!(texts(&t.hops).last().unwrap().starts_with("host: delivered locally"));
}

const FIREWALLED: &str = "name: trfw
nodes:
  a:
    interfaces: { eth0: { addresses: [10.1.0.2/24] } }
    routes: [ { to: default, via: 10.1.0.1 } ]
  r:
    interfaces:
      eth0: { addresses: [10.1.0.1/24] }
      eth1: { addresses: [10.2.0.1/24] }
    sysctls: { net.ipv4.ip_forward: 1 }
    firewall:
      policy: drop
      rules:
        - { action: accept, from: a, to: c, proto: tcp, port: 443 }
  c:
    interfaces: { eth0: { addresses: [10.2.0.2/24] } }
    routes: [ { to: default, via: 10.2.0.1 } ]
links:
  - endpoints: [a:eth0, r:eth0]
  - endpoints: [r:eth1, c:eth0]
";

#[test]
fn the_labs_declared_firewall_drops_and_accepts_as_the_kernel_does() {
    require_root();
    // Policy drop on the forward chain, only TCP 443 allowed: the echo request is dropped at r.
    let lab = lab_from(FIREWALLED);
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "a", "c").unwrap();
    assert_eq!(texts(&t.hops).last().unwrap(), "r: DROPPED: by firewall (policy drop, chain forward) declared in nodes.r.firewall");
    assert!(matches!(t.hops.last(), Some(Hop::Drop { cause, .. }) if cause == "firewall"));
    assert_eq!(t.verdict, Verdict::Dropped);
    let c = t.confirm.unwrap();
    assert!(!c.reply && c.agrees, "{c:?}");
    // The doctor leaves a drop the file asks for alone.
    let r = vnet::doctor::doctor(lab.name()).unwrap();
    assert!(!r.findings.iter().any(|f| f.code == "path-drop"), "{:?}", r.findings);
    drop(rl);
    drop(lab);

    // ICMP from a allowed (rule 2): the request passes by that rule, the answer as established;
    // c's own ICMP to a is not (policy), nor to r itself (input rule 3).
    let text = FIREWALLED.replace("trfw", "trfw2").replace(
        "        - { action: accept, from: a, to: c, proto: tcp, port: 443 }\n",
        "        - { action: accept, from: a, to: c, proto: tcp, port: 443 }\n        - { action: accept, from: a, proto: icmp }\n        - { action: drop, chain: input, from: c, proto: icmp }\n",
    );
    let lab = lab_from(&text);
    let rl = lab.running().unwrap();
    let t = trace::trace_running(&rl, "a", "c").unwrap();
    assert!(texts(&t.hops).contains(&"r: firewall accepts (chain forward, rule 2: accept from 10.1.0.2 proto icmp)".to_string()), "{:?}", texts(&t.hops));
    assert!(texts(&t.back).contains(&"r: firewall accepts (chain forward, reply of a connection it let through (ct state established))".to_string()));
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Delivered, Some(Verdict::Delivered)));
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees, "{c:?}");
    let t = trace::trace_running(&rl, "c", "a").unwrap();
    assert_eq!(texts(&t.hops).last().unwrap(), "r: DROPPED: by firewall (policy drop, chain forward) declared in nodes.r.firewall");
    assert!(t.confirm.unwrap().agrees);
    let t = trace::trace_running(&rl, "c", "10.2.0.1").unwrap();
    assert_eq!(texts(&t.hops).last().unwrap(), "r: DROPPED: by firewall (rule 3: drop from 10.2.0.2 proto icmp, chain input) declared in nodes.r.firewall");
    let c = t.confirm.unwrap();
    assert!(!c.reply && c.agrees, "{c:?}");
}

#[test]
fn a_probe_that_disagrees_names_netfilter_rules_the_file_does_not_declare() {
    require_root();
    let lab = Lab::from_file(repo("examples/routed.yaml")).unwrap();
    let st = lab.node("c").command("iptables").args(["-A", "INPUT", "-p", "icmp", "-j", "DROP"]).status().unwrap();
    assert!(st.success());
    let t = trace::trace_running(&lab.running().unwrap(), "a", "c").unwrap();
    assert_eq!(t.verdict, Verdict::Delivered);
    let c = t.confirm.clone().unwrap();
    assert!(!c.reply && !c.agrees, "{c:?}");
    assert_eq!(t.notes, ["node c has firewall rules not declared in the file (iptables filter -A INPUT -p icmp -j DROP): they may drop this packet"]);
    assert!(trace::hop::render(&t)
        .ends_with("note: node c has firewall rules not declared in the file (iptables filter -A INPUT -p icmp -j DROP): they may drop this packet\n"));
}

const PORTS: &str = "name: trport
nodes:
  a:
    interfaces: { eth0: { addresses: [10.1.0.2/24] } }
    routes: [ { to: default, via: 10.1.0.1 } ]
  r:
    interfaces:
      eth0: { addresses: [10.1.0.1/24] }
      eth1: { addresses: [10.2.0.1/24] }
    sysctls: { net.ipv4.ip_forward: 1 }
    firewall:
      rules:
        - { action: drop, to: c, proto: tcp, port: 22 }
        - { action: accept, to: c, proto: tcp, port: 80 }
  c:
    interfaces: { eth0: { addresses: [10.2.0.2/24] } }
    routes: [ { to: default, via: 10.2.0.1 } ]
links:
  - endpoints: [a:eth0, r:eth0]
  - endpoints: [r:eth1, c:eth0]
";

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(vnet_bin()).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn tcp_and_udp_traces_take_the_firewall_rules_of_their_port_and_probe_with_a_connection() {
    require_root();
    let lab = lab_from(PORTS);
    let rl = lab.running().unwrap();
    // TCP 80: accepted by rule 2, and a real connection to a listener the trace starts in c.
    let t = trace::trace_running_flow(&rl, "a", "c", trace::Proto::Tcp(80)).unwrap();
    assert!(texts(&t.hops).contains(&"r: firewall accepts (chain forward, rule 2: accept to 10.2.0.2 proto tcp port 80)".to_string()), "{:?}", texts(&t.hops));
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Delivered, Some(Verdict::Delivered)));
    let c = t.confirm.clone().unwrap();
    assert_eq!(c.seen, "tcp 10.2.0.2:80 open; listener started by the trace in c");
    assert!(c.reply && c.agrees, "{c:?}");
    assert!(trace::hop::render(&t).starts_with("trace a -> 10.2.0.2 tcp port 80 in lab "), "{}", trace::hop::render(&t));
    // TCP 22: dropped at r by rule 1, named; the connection times out although c listens.
    let t = trace::trace_running_flow(&rl, "a", "c", trace::Proto::Tcp(22)).unwrap();
    assert_eq!(
        texts(&t.hops).last().unwrap(),
        "r: DROPPED: by firewall (rule 1: drop to 10.2.0.2 proto tcp port 22, chain forward) declared in nodes.r.firewall"
    );
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Dropped, None));
    let c = t.confirm.clone().unwrap();
    assert_eq!(c.seen, "tcp 10.2.0.2:22 timeout; listener started by the trace in c");
    assert!(!c.reply && c.agrees, "{c:?}");
    // ICMP: no rule matches, the policy accepts.
    let t = trace::trace_running(&rl, "a", "c").unwrap();
    assert!(texts(&t.hops).contains(&"r: firewall accepts (chain forward, policy accept)".to_string()), "{:?}", texts(&t.hops));
    assert_eq!(t.verdict, Verdict::Delivered);
    let c = t.confirm.unwrap();
    assert!(c.reply && c.agrees && c.seen == "reply from 10.2.0.2", "{c:?}");
    // UDP 22: the TCP rule does not match; the trace's listener answers the datagram.
    let t = trace::trace_running_flow(&rl, "a", "c", trace::Proto::Udp(22)).unwrap();
    assert_eq!(t.verdict, Verdict::Delivered);
    let c = t.confirm.unwrap();
    assert_eq!(c.seen, "udp 10.2.0.2:22 open; listener started by the trace in c");
    assert!(c.agrees);
    // A port something already listens on: the probe tests that listener.
    let listener = lab.node("c").run(|| std::net::TcpListener::bind("10.2.0.2:8080").unwrap());
    let t = trace::trace_running_flow(&rl, "a", "c", trace::Proto::Tcp(8080)).unwrap();
    assert_eq!(t.confirm.unwrap().seen, "tcp 10.2.0.2:8080 open; something already listens in c");
    drop(listener);
    // The trace's own listeners are gone: c's port 80 is free again.
    assert!(lab.node("c").run(|| std::net::TcpListener::bind("10.2.0.2:80")).is_ok());

    // CLI: exit codes as for ICMP (0 only for a round trip the probe confirms), the protocol in
    // the header and in JSON; a port of 0 or both protocols at once are invalid (2).
    let (code, out, err) = cli(&["trace", lab.name(), "a", "c", "--tcp", "80"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(" tcp port 80 in lab ") && out.contains("probe: tcp 10.2.0.2:80 open; listener started by the trace in c (agrees)"), "{out}");
    let (code, out, err) = cli(&["trace", lab.name(), "a", "c", "--tcp", "22"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("r: DROPPED: by firewall (rule 1: drop to 10.2.0.2 proto tcp port 22, chain forward) declared in nodes.r.firewall\nverdict: dropped\n"),
        "{out}"
    );
    let (code, out, _) = cli(&["trace", lab.name(), "a", "c", "--tcp", "22", "--json"]);
    assert_eq!(code, Some(1));
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((j["proto"].as_str(), j["port"].as_u64(), j["verdict"].as_str()), (Some("tcp"), Some(22), Some("dropped")), "{j:#}");
    let (code, out, _) = cli(&["trace", lab.name(), "a", "c"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = cli(&["trace", lab.name(), "a", "c", "--udp", "53"]);
    assert_eq!(code, Some(0), "{out}");
    for bad in [vec!["--tcp", "0"], vec!["--tcp", "80", "--udp", "53"], vec!["--udp", "65536"]] {
        let mut args = vec!["trace", lab.name(), "a", "c"];
        args.extend(bad.iter().copied());
        let (code, _, err) = cli(&args);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
    }
}

#[test]
fn a_port_forward_traced_with_tcp_is_confirmed_by_a_connection_to_its_target() {
    require_root();
    let lab = Lab::from_file(repo("examples/nat.yaml")).unwrap();
    let rl = lab.running().unwrap();
    let t = trace::trace_running_flow(&rl, "internet", "203.0.113.1", trace::Proto::Tcp(8080)).unwrap();
    let h = texts(&t.hops);
    assert!(
        h.contains(&"host: port forward tcp 8080 -> 192.168.1.11:80 (nodes.host.nat): destination 203.0.113.1:8080 -> 192.168.1.11:80".to_string()),
        "{h:?}"
    );
    assert_eq!(h.last().unwrap(), "ns1: delivered locally (on eth0)");
    assert!(texts(&t.back).contains(&"host: answer to a port-forwarded connection (connection tracking): source 192.168.1.11 -> 203.0.113.1".to_string()));
    assert_eq!((t.verdict, t.back_verdict), (Verdict::Delivered, Some(Verdict::Delivered)));
    // The connection to 203.0.113.1:8080 is answered by the listener on ns1's port 80 only.
    let c = t.confirm.unwrap();
    assert_eq!(c.seen, "tcp 203.0.113.1:8080 open; listener started by the trace in ns1 on 192.168.1.11:80");
    assert!(c.reply && c.agrees, "{c:?}");
    // The forward is for TCP: UDP to the same port is the host's own.
    let t = trace::trace_running_flow(&rl, "internet", "203.0.113.1", trace::Proto::Udp(8080)).unwrap();
    assert_eq!(texts(&t.hops).last().unwrap(), "host: delivered locally (on wan0)");
    assert_eq!(t.confirm.unwrap().seen, "udp 203.0.113.1:8080 open; listener started by the trace in host");
    let (code, out, err) = cli(&["trace", lab.name(), "internet", "203.0.113.1", "--tcp", "8080"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("probe: tcp 203.0.113.1:8080 open; listener started by the trace in ns1 on 192.168.1.11:80 (agrees)"), "{out}");
}
