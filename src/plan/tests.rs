//! Planner snapshot tests (pure): the operations for the examples against an empty kernel, and
//! against hand-made partially built, drifted or foreign states. `simulate` applies a plan to
//! an `Observed` the way the kernel would, so "a lab that is up plans nothing" is checked too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::model::file::Topology;
use crate::model::{self, Loaded};
use crate::observed::{ObservedAddr, ObservedRoute, ADDR_GEN_MODE_EUI64, ADDR_GEN_MODE_NONE, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_RA, RTPROT_STATIC};
use crate::state::{group_for, Phase};

fn example(name: &str, isolated: bool) -> Loaded {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    model::load_file_with(&p, |t| t.isolated_host |= isolated).unwrap_or_else(|d| panic!("{name}: {d}"))
}

fn yaml(text: &str) -> Loaded {
    model::load_str("t.yaml", text, model::Format::Yaml).unwrap_or_else(|d| panic!("{d}"))
}

/// The plan as `vnet plan` prints it, whitespace squeezed.
fn lines(p: &Plan) -> Vec<String> {
    p.ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

fn plan_ok(lab: &Lab, obs: &Observed, st: Option<&LabState>) -> Plan {
    plan(lab, obs, st).unwrap_or_else(|c| panic!("unexpected clashes: {c:?}"))
}

/// An observed state where the root namespace has only its own devices (for non-isolated labs).
fn empty_kernel(lab: &Lab) -> Observed {
    let mut o = Observed::default();
    for node in lab.nodes.keys() {
        if lab.netns_name(node).is_none() {
            let ns = ObservedNs { links: vec![foreign_link(1, "lo", None), foreign_link(2, "eth0", None)], ..Default::default() };
            o.nodes.insert(node.clone(), NsState::Root(ns));
        } else {
            o.nodes.insert(node.clone(), NsState::Absent);
        }
    }
    o
}

fn foreign_link(ifindex: u32, name: &str, kind: Option<&str>) -> ObservedLink {
    ObservedLink {
        ifindex,
        name: name.into(),
        kind: kind.map(str::to_string),
        mtu: if name == "lo" { 65536 } else { 1500 },
        up: true,
        carrier: true,
        oper: "up".into(),
        ..Default::default()
    }
}

/// What the kernel holds after `plan` ran on `before`: a small model of the kernel's rules
/// (indexes from one counter, veth peers cross-linked, bridge ports with hairpin off).
fn same_subnet(a: &IpNet, b: &IpNet) -> bool {
    a.prefix_len() == b.prefix_len() && a.network() == b.network()
}

fn simulate(lab: &Lab, before: &Observed, plan: &Plan) -> Observed {
    let mut o = before.clone();
    let group = group_for(&lab.name);
    // New devices get link-local addresses as the lab says (IPv6 on every device here).
    let gen_mode = if lab.ipv6_link_local { ADDR_GEN_MODE_EUI64 } else { ADDR_GEN_MODE_NONE };
    let mut next = 100 + o.nodes.values().filter_map(|s| s.ns()).flat_map(|n| n.links.iter().map(|l| l.ifindex)).max().unwrap_or(0);
    fn ns_mut<'a>(o: &'a mut Observed, node: &str) -> &'a mut ObservedNs {
        match o.nodes.get_mut(node) {
            Some(NsState::Owned(n)) | Some(NsState::Root(n)) => n,
            other => panic!("no namespace for node {node}: {other:?}"),
        }
    }
    for op in plan.ops() {
        match op {
            Op::CreateNetns { node, lo_up, .. } => {
                let mut lo = foreign_link(1, "lo", None);
                lo.up = *lo_up;
                lo.alias = Some(lab.mark());
                o.nodes.insert(node.clone(), NsState::Owned(ObservedNs { links: vec![lo], ..Default::default() }));
            }
            Op::DeleteNetns { node, .. } => {
                o.nodes.remove(node);
            }
            Op::CreateLink(c) => {
                let root = lab.netns_name(&c.node).is_none();
                let (me, peer) = (next, next + 1);
                next += 2;
                let master = c.master.as_ref().map(|m| ns_mut(&mut o, &c.node).link(m).expect("master exists").ifindex);
                let l = ObservedLink {
                    ifindex: me,
                    name: c.ifname.clone(),
                    kind: c.kind.kernel_kind().map(str::to_string),
                    mtu: c.mtu.unwrap_or(1500),
                    mac: c.mac,
                    up: c.up,
                    master,
                    alias: root.then(|| lab.mark()),
                    link: c.peer.as_ref().map(|_| peer),
                    group,
                    spec: Some(c.kind.clone()),
                    hairpin: master.map(|_| false),
                    tx_queues: c.kind.queues(),
                    rx_queues: c.kind.queues(),
                    addr_gen_mode: Some(gen_mode),
                    ipv6_disabled: c.no_ipv6,
                    ..Default::default()
                };
                ns_mut(&mut o, &c.node).links.push(l);
                if let Some(p) = &c.peer {
                    let pl = ObservedLink {
                        ifindex: peer,
                        name: p.ifname.clone(),
                        kind: Some("veth".into()),
                        mtu: p.mtu.unwrap_or(1500),
                        mac: p.mac,
                        link: Some(me),
                        group,
                        spec: Some(c.kind.clone()),
                        tx_queues: Some(p.queues),
                        rx_queues: Some(p.queues),
                        addr_gen_mode: Some(gen_mode),
                        ipv6_disabled: p.no_ipv6,
                        ..Default::default()
                    };
                    ns_mut(&mut o, &p.node).links.push(pl);
                }
            }
            Op::ChangeLink { node, ifname, change } => {
                let ns = ns_mut(&mut o, node);
                let master = match &change.master {
                    Some(Some(m)) => Some(Some(ns.link(m).expect("master exists").ifindex)),
                    Some(None) => Some(None),
                    None => None,
                };
                let l = ns.links.iter_mut().find(|l| &l.name == ifname).expect("changed device exists");
                if let Some(m) = change.mtu {
                    l.mtu = m;
                }
                if let Some(m) = change.mac {
                    l.mac = Some(m);
                }
                if let Some(u) = change.up {
                    l.up = u;
                }
                if let Some(m) = master {
                    l.master = m;
                    l.hairpin = m.map(|_| false);
                }
                if change.mark {
                    l.alias = Some(lab.mark());
                }
            }
            Op::SetKindOptions { node, ifname, kind } => {
                ns_mut(&mut o, node).links.iter_mut().find(|l| &l.name == ifname).unwrap().spec = Some(kind.clone());
            }
            Op::SetPort { node, ifname, hairpin } => {
                ns_mut(&mut o, node).links.iter_mut().find(|l| &l.name == ifname).unwrap().hairpin = Some(*hairpin);
            }
            Op::LinkLocal { node, ifname, on, .. } => {
                let ns = ns_mut(&mut o, node);
                let l = ns.links.iter_mut().find(|l| &l.name == ifname).unwrap();
                l.addr_gen_mode = Some(if *on { ADDR_GEN_MODE_EUI64 } else { ADDR_GEN_MODE_NONE });
                l.ipv6_disabled = false;
                let ifindex = l.ifindex;
                if *on {
                    ns.addrs.push(ObservedAddr { ifindex, addr: "fe80::1/64".parse().unwrap(), automatic: true, secondary: false });
                }
            }
            Op::ForwardPort { node, ifname } => {
                ns_mut(&mut o, node).links.iter_mut().find(|l| &l.name == ifname).unwrap().forwarding = Some(true);
            }
            Op::AddAddress { node, ifname, addr } => {
                let ns = ns_mut(&mut o, node);
                let ifindex = ns.link(ifname).unwrap().ifindex;
                let secondary = addr.addr().is_ipv4() && ns.addrs_of(ifindex).any(|a| !a.secondary && same_subnet(&a.addr, addr));
                ns.addrs.push(ObservedAddr { ifindex, addr: *addr, automatic: false, secondary });
            }
            Op::DelAddress { node, ifname, addr } => {
                let ns = ns_mut(&mut o, node);
                let ifindex = ns.link(ifname).unwrap().ifindex;
                let i = ns.addrs.iter().position(|a| a.ifindex == ifindex && a.addr == *addr).expect("a deleted address exists (else EADDRNOTAVAIL)");
                let gone = ns.addrs.remove(i);
                // Deleting a primary IPv4 address deletes its subnet's secondaries
                // (promote_secondaries off, the default).
                if !gone.secondary && addr.addr().is_ipv4() {
                    ns.addrs.retain(|a| !(a.ifindex == ifindex && a.secondary && same_subnet(&a.addr, addr)));
                }
                // The kernel flushes the IPv4 routes whose gateway no address covers any more.
                let addrs: Vec<IpNet> = ns.addrs.iter().map(|a| a.addr).collect();
                ns.routes.retain(|r| r.via.is_none_or(|v| v.is_ipv6() || addrs.iter().any(|a| a.contains(&v))));
            }
            Op::AddRoute { node, route } => {
                let ns = ns_mut(&mut o, node);
                // The kernel resolves a gateway's device (a dump always names one).
                let on_link = |v: &IpAddr| ns.addrs.iter().find(|a| a.addr.contains(v)).map(|a| a.ifindex);
                let oif = route.dev.as_ref().map(|d| ns.link(d).unwrap().ifindex).or_else(|| route.via.as_ref().and_then(on_link));
                let metric = Some(effective_metric(route)).filter(|m| *m != 0);
                ns.routes.push(ObservedRoute {
                    table: route.table,
                    dst: route.dst,
                    via: route.via,
                    oif,
                    metric,
                    src: route.src,
                    protocol: RTPROT_VNET,
                    kind: 1,
                });
            }
            Op::DelRoute { node, route } => {
                ns_mut(&mut o, node).routes.retain(|r| !(r.dst == route.dst && r.table == route.table && r.via == route.via));
            }
            Op::SetSysctl { node, key, value } | Op::RestoreSysctl { node, key, value } => {
                ns_mut(&mut o, node).sysctls.insert(key.clone(), value.clone());
            }
            // Bridge VLANs, fdb entries, bond primary, teamd: not part of the link dump, so
            // nothing the observer (and thus this simulation) tracks.
            Op::Device { .. } => {}
            // NAT tables, qdiscs, BPF and xfrm state: the examples simulated here have none;
            // their idempotence is checked against the kernel in tests/{nat,tc,bpf,ipsec}.rs.
            Op::Feature { .. } => {}
            Op::Ovs { node, ovs_op } => super::ovs::simulate(lab, &mut o, node, ovs_op),
            Op::DeleteLink { node, ifname } => {
                let ns = ns_mut(&mut o, node);
                if let Some(l) = ns.link(ifname).cloned() {
                    ns.links.retain(|x| x.ifindex != l.ifindex);
                    ns.addrs.retain(|a| a.ifindex != l.ifindex);
                    ns.routes.retain(|r| r.oif != Some(l.ifindex));
                    // A veth takes its twin with it.
                    if let Some(peer) = l.link.filter(|_| l.kind.as_deref() == Some("veth")) {
                        for s in o.nodes.values_mut() {
                            if let NsState::Owned(n) | NsState::Root(n) = s {
                                n.links.retain(|x| !(x.ifindex == peer && x.link == Some(l.ifindex)));
                            }
                        }
                    }
                }
            }
        }
    }
    o
}

/// The record `up` leaves after applying `plan` (namespaces, group, previous sysctl values).
fn record_after(lab: &Lab, before: Option<&LabState>, plan: &Plan, observed_before: &Observed) -> LabState {
    let mut st = before.cloned().unwrap_or_else(|| LabState::new(&lab.name, lab.isolated_host));
    for op in plan.ops() {
        match op {
            Op::CreateNetns { node, netns, .. } => {
                st.netns.insert(node.clone(), netns.clone());
            }
            Op::DeleteNetns { node, .. } => {
                st.netns.remove(node);
            }
            // As `up` notes them: the value observed before, or (a namespace this run made,
            // which nobody observed) the one the executor read before writing: a new
            // namespace's default, 0 here.
            Op::SetSysctl { node, key, .. } => match observed_before.nodes.get(node).and_then(|s| s.ns()) {
                Some(n) => {
                    if let Some(prev) = n.sysctls.get(key) {
                        st.note_sysctl(node, key, prev);
                    }
                }
                None => st.note_sysctl(node, key, "0"),
            },
            _ => {}
        }
    }
    st.phase = Phase::Up;
    // As `up` records the lab after applying (`finish_state`).
    st.take_applied(lab);
    st
}

/// Builds a lab from nothing; returns the kernel afterwards and the record.
fn built(l: &Loaded) -> (Observed, LabState) {
    let empty = empty_kernel(&l.lab);
    let p = plan_ok(&l.lab, &empty, None);
    let after = simulate(&l.lab, &empty, &p);
    let st = record_after(&l.lab, None, &p, &empty);
    (after, st)
}

#[test]
fn examples_against_an_empty_kernel() {
    for (file, isolated) in [("bridge.yaml", true), ("bridge.yaml", false), ("two-ns.yaml", true), ("two-ns.toml", true)] {
        let l = example(file, isolated);
        let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
        let name = format!("empty_{}{}", file.replace('.', "_"), if isolated { "_isolated" } else { "_root" });
        insta::assert_snapshot!(name, p.to_string());
    }
}

#[test]
fn plan_json_form() {
    let l = example("two-ns.yaml", true);
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    insta::assert_snapshot!(serde_json::to_string_pretty(&p).unwrap());
}

#[test]
fn stages_order_the_bridge_example() {
    let l = example("bridge.yaml", true);
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    let stages: Vec<u16> = p.steps.iter().map(|s| s.stage).collect();
    assert!(stages.windows(2).all(|w| w[0] <= w[1]), "stages ascend: {stages:?}");
    let pos = |needle: &str| lines(&p).iter().position(|l| l.starts_with(needle)).unwrap_or_else(|| panic!("no `{needle}` in\n{p}"));
    // The bridge exists before its ports are created with `master`, and comes up after them.
    assert!(pos("+ link host:br1 bridge") < pos("+ link host:veth1 veth"));
    assert!(pos("+ link host:veth1 veth") < pos("~ link host:br1 up"));
    // Namespaces first; addresses before the routes through them.
    assert_eq!(pos("+ netns"), 0);
    assert!(pos("+ addr ns1:eth0") < pos("+ route ns1"));
}

#[test]
fn a_lab_that_is_up_plans_nothing() {
    for (file, isolated) in [("bridge.yaml", true), ("bridge.yaml", false), ("two-ns.yaml", true), ("two-ns.toml", true)] {
        let l = example(file, isolated);
        let (after, st) = built(&l);
        let again = plan_ok(&l.lab, &after, Some(&st));
        assert!(again.is_empty(), "{file} (isolated {isolated}) plans again:\n{again}");
    }
}

#[test]
fn some_namespaces_already_present() {
    let l = example("bridge.yaml", true);
    let (full, st) = built(&l);
    // ns1 was created (lo only) when `up` was killed; host and ns2 were not.
    let mut partial = empty_kernel(&l.lab);
    let mut lo = foreign_link(1, "lo", None);
    lo.alias = Some(l.lab.mark());
    partial.nodes.insert("ns1".into(), NsState::Owned(ObservedNs { links: vec![lo], ..Default::default() }));
    let p = plan_ok(&l.lab, &partial, Some(&st));
    let got = lines(&p);
    assert!(!got.iter().any(|l| l.starts_with("+ netns ns1")), "ns1 is not created again:\n{p}");
    assert!(got.contains(&"+ netns host (bridge-host)".to_string()) && got.contains(&"+ netns ns2 (bridge-ns2)".to_string()));
    assert!(got.contains(&"+ link host:veth1 veth peer ns1:eth0 master br1 up no-ipv6".to_string()), "{p}");
    // Applying it gives the full lab.
    let after = simulate(&l.lab, &partial, &p);
    assert!(plan_ok(&l.lab, &after, Some(&st)).is_empty());
    let _ = full;
}

#[test]
fn veth_pair_intact_or_broken() {
    let l = example("two-ns.yaml", true);
    let (full, st) = built(&l);
    assert!(plan_ok(&l.lab, &full, Some(&st)).is_empty());

    // b's end is gone (say someone deleted the namespace's device): a's end is deleted and
    // the pair made again, with its addresses.
    let mut broken = full.clone();
    if let Some(NsState::Owned(b)) = broken.nodes.get_mut("b") {
        let idx = b.link("eth0").unwrap().ifindex;
        b.links.retain(|l| l.name != "eth0");
        b.addrs.retain(|a| a.ifindex != idx);
    }
    assert_eq!(
        lines(&plan_ok(&l.lab, &broken, Some(&st))),
        [
            "- link a:eth0",
            "+ link a:eth0 veth peer b:eth0 up",
            "~ link b:eth0 up",
            "+ addr a:eth0 10.0.0.1/24",
            "+ addr a:eth0 fd00::1/64",
            "+ addr b:eth0 10.0.0.2/24",
            "+ addr b:eth0 fd00::2/64"
        ]
    );

    // Both ends exist but are not each other's peer (each re-made by hand with a new twin).
    let mut crossed = full.clone();
    if let Some(NsState::Owned(a)) = crossed.nodes.get_mut("a") {
        a.links.iter_mut().find(|l| l.name == "eth0").unwrap().link = Some(9999);
    }
    let p = plan_ok(&l.lab, &crossed, Some(&st));
    assert_eq!(lines(&p)[..3], ["- link a:eth0", "- link b:eth0", "+ link a:eth0 veth peer b:eth0 up"]);
}

/// A pair left with the kernel's queue count (made by an older vnet) is kept while the file
/// says nothing about queues; declaring `queues` on one end re-creates the pair, each end with
/// its own count; once built as declared, nothing is planned.
#[test]
fn veth_queues_are_kept_unless_declared() {
    let text = |b_queues: &str| {
        format!(
            "name: q\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n  b:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.2/24]{b_queues} }}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n"
        )
    };
    let plain = yaml(&text(""));
    let (mut full, st) = built(&plain);
    for node in ["a", "b"] {
        if let Some(NsState::Owned(ns)) = full.nodes.get_mut(node) {
            let l = ns.links.iter_mut().find(|l| l.name == "eth0").unwrap();
            assert_eq!((l.tx_queues, l.rx_queues), (Some(1), Some(1)), "{node}: created with one queue");
            (l.tx_queues, l.rx_queues) = (Some(2), Some(2));
        }
    }
    assert!(plan_ok(&plain.lab, &full, Some(&st)).is_empty());

    let four = yaml(&text(", queues: 4"));
    let p = plan_ok(&four.lab, &full, Some(&st));
    assert_eq!(lines(&p)[..3], ["- link a:eth0", "- link b:eth0", "+ link a:eth0 veth peer b:eth0 peer-queues 4 up"]);
    let after = simulate(&four.lab, &full, &p);
    let st4 = record_after(&four.lab, Some(&st), &p, &full);
    assert!(plan_ok(&four.lab, &after, Some(&st4)).is_empty());
}

#[test]
fn a_foreign_namespace_clashes() {
    let l = example("two-ns.yaml", true);
    let mut o = empty_kernel(&l.lab);
    o.nodes.insert("b".into(), NsState::Foreign);
    let c = plan(&l.lab, &o, None).unwrap_err();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].to_string(), "node b: namespace `two-ns-b` already exists and does not belong to lab `two-ns`; remove it or set another `netns_prefix`");
}

#[test]
fn a_foreign_device_clashes() {
    // In the lab's own namespace: a device without the lab's group or mark.
    let l = example("bridge.yaml", true);
    let (mut o, st) = built(&l);
    if let Some(NsState::Owned(h)) = o.nodes.get_mut("host") {
        let br = h.links.iter_mut().find(|l| l.name == "br1").unwrap();
        br.group = 0;
        br.alias = None;
    }
    let c = plan(&l.lab, &o, Some(&st)).unwrap_err();
    assert_eq!(c.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["node host: interface `br1` already exists and does not belong to lab `bridge`"]);

    // In the real root namespace: an unmarked device with a name the lab wants (a veth end).
    let l = example("bridge.yaml", false);
    let mut o = empty_kernel(&l.lab);
    if let Some(NsState::Root(r)) = o.nodes.get_mut("host") {
        r.links.push(foreign_link(7, "veth2", Some("veth")));
    }
    let c = plan(&l.lab, &o, None).unwrap_err();
    assert_eq!(c.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["node host: interface `veth2` already exists and does not belong to lab `bridge`"]);
    // A marked one of another lab is not ours either.
    if let Some(NsState::Root(r)) = o.nodes.get_mut("host") {
        r.links.last_mut().unwrap().alias = Some("vnet:other".into());
    }
    assert!(plan(&l.lab, &o, None).is_err());
}

#[test]
fn in_the_real_root_the_labs_group_alone_proves_nothing() {
    // Anyone can put a device in any group: without the mark or the record, it is not ours.
    let l = example("bridge.yaml", false);
    let (mut o, st) = built(&l);
    if let Some(NsState::Root(r)) = o.nodes.get_mut("host") {
        let mut theirs = foreign_link(90, "theirs0", Some("veth"));
        theirs.group = group_for("bridge");
        r.links.push(theirs);
    }
    assert!(plan_ok(&l.lab, &o, Some(&st)).is_empty(), "not deleted as an undeclared device of the lab");
    // With a name the lab wants, it is a clash, not a device to adopt or replace.
    let mut o = empty_kernel(&l.lab);
    if let Some(NsState::Root(r)) = o.nodes.get_mut("host") {
        let mut theirs = foreign_link(7, "veth2", Some("veth"));
        theirs.group = group_for("bridge");
        r.links.push(theirs);
    }
    let c = plan(&l.lab, &o, None).unwrap_err();
    assert_eq!(c.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["node host: interface `veth2` already exists and does not belong to lab `bridge`"]);
}

#[test]
fn root_devices_are_marked() {
    let l = example("bridge.yaml", false);
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    // The root end of each veth is the creator (marked in the same batch by the executor); a
    // root end created as a peer would get `mark` in its change.
    assert!(lines(&p).contains(&"+ link host:veth1 veth peer ns1:eth0 master br1 up".to_string()), "{p}");
    // A device of the lab that lost its mark gets it back.
    let (mut o, st) = built(&l);
    if let Some(NsState::Root(r)) = o.nodes.get_mut("host") {
        let v = r.links.iter_mut().find(|l| l.name == "veth1").unwrap();
        v.alias = None;
        v.group = group_for("bridge");
    }
    assert_eq!(lines(&plan_ok(&l.lab, &o, Some(&st))), ["~ link host:veth1 mark"]);
}

/// two-ns with one more node and a few knobs, as a starting point for edits.
const BASE: &str = "name: edit
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
    routes:
      - { to: 10.5.0.0/16, via: 10.0.0.2 }
    sysctls: { net.ipv4.ip_forward: 1 }
  b:
    interfaces:
      eth0: { addresses: [10.0.0.2/24] }
      br0: { kind: bridge, stp: false }
  c: {}
links:
  - endpoints: [a:eth0, b:eth0]
";

#[test]
fn edits_plan_only_the_difference() {
    let v1 = yaml(BASE);
    let (kernel, st) = built(&v1);
    assert!(plan_ok(&v1.lab, &kernel, Some(&st)).is_empty());

    let v2 = yaml(
        &BASE
            .replace("eth0: { addresses: [10.0.0.1/24] }", "eth0: { addresses: [10.0.0.11/24], mtu: 1400, mac: '02:00:00:00:00:0a' }")
            .replace("via: 10.0.0.2 }", "via: 10.0.0.3 }\n      - { to: 10.6.0.0/16, dev: eth0, metric: 7 }")
            .replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0")
            .replace("stp: false", "stp: true, forward_delay: 4")
            .replace("  c: {}\n", "  d: {}\n"),
    );
    let p = plan_ok(&v2.lab, &kernel, Some(&st));
    assert_eq!(
        lines(&p),
        [
            "+ netns d (edit-d)",
            "~ sysctl a: net.ipv4.ip_forward = 0",
            "~ bridge b:br0 {\"kind\":\"bridge\",\"stp\":true,\"forward_delay\":4}",
            "~ link a:eth0 mtu 1400 mac 02:00:00:00:00:0a",
            "- addr a:eth0 10.0.0.1/24",
            "+ addr a:eth0 10.0.0.11/24",
            "- route a: 10.5.0.0/16 via 10.0.0.2 dev eth0",
            "+ route a: 10.6.0.0/16 dev eth0 metric 7",
            "+ route a: 10.5.0.0/16 via 10.0.0.3",
            "- netns c (edit-c)",
        ]
    );
    let after = simulate(&v2.lab, &kernel, &p);
    let st2 = record_after(&v2.lab, Some(&st), &p, &kernel);
    assert!(plan_ok(&v2.lab, &after, Some(&st2)).is_empty());
}

#[test]
fn drift_in_the_kernel_is_put_back() {
    let l = yaml(BASE);
    let (mut k, st) = built(&l);
    if let Some(NsState::Owned(a)) = k.nodes.get_mut("a") {
        a.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
        a.links.iter_mut().find(|l| l.name == "eth0").unwrap().up = false;
        a.routes.clear();
        // An address someone added by hand on the lab's device is removed.
        let idx = a.link("eth0").unwrap().ifindex;
        a.addrs.push(ObservedAddr { ifindex: idx, addr: "10.0.0.99/24".parse().unwrap(), automatic: false, secondary: true });
        // A link-local address the kernel made (before its generation went off): the lab
        // declares no IPv6, so it goes.
        a.addrs.push(ObservedAddr { ifindex: idx, addr: "fe80::1/64".parse().unwrap(), automatic: true, secondary: false });
    }
    if let Some(NsState::Owned(b)) = k.nodes.get_mut("b") {
        b.links.iter_mut().find(|l| l.name == "br0").unwrap().spec =
            Some(KindSpec::Bridge(crate::model::kind::BridgeSpec { stp: Some(true), ..Default::default() }));
    }
    assert_eq!(
        lines(&plan_ok(&l.lab, &k, Some(&st))),
        [
            "~ sysctl a: net.ipv4.ip_forward = 1",
            "~ bridge b:br0 {\"kind\":\"bridge\",\"stp\":false}",
            "~ link a:eth0 up",
            "- addr a:eth0 10.0.0.99/24",
            "- addr a:eth0 fe80::1/64",
            "+ route a: 10.5.0.0/16 via 10.0.0.2",
        ]
    );
}

/// In a lab without IPv6, a new veth end that stays down gets its link-local generation off
/// from the plan (one that comes up gets it from the executor, before it is up).
#[test]
fn a_new_end_that_stays_down_gets_no_link_local() {
    let l = yaml("name: d\nnodes:\n  a:\n    interfaces: { eth0: { addresses: [10.0.0.1/24] } }\n  b:\n    interfaces: { eth0: { up: false } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n");
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    let ll: Vec<String> = lines(&p).into_iter().filter(|x| x.contains("link-local")).collect();
    assert_eq!(ll, ["~ link b:eth0 ipv6 link-local off"]);
    let on = yaml("name: d\nipv6: on\nnodes:\n  a:\n    interfaces: { eth0: {} }\n  b:\n    interfaces: { eth0: { up: false } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n");
    assert!(!lines(&plan_ok(&on.lab, &empty_kernel(&on.lab), None)).iter().any(|x| x.contains("link-local")));
}

/// `ipv6` changed on a running lab (or the first IPv6 address under `auto`): existing devices
/// get their link-local addresses back, or lose them, as a fresh build would have them; the
/// file's own `addr_gen_mode` sysctl, `lo` and devices without IPv6 are left alone.
#[test]
fn ipv6_link_local_follows_the_file_on_existing_devices() {
    let l = yaml(BASE);
    let (k, st) = built(&l);
    assert!(!l.lab.ipv6_link_local);
    let on = yaml(&BASE.replace("name: edit\n", "name: edit\nipv6: on\n"));
    let p = plan_ok(&on.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["~ link a:eth0 ipv6 link-local on", "~ link b:eth0 ipv6 link-local on", "~ link b:br0 ipv6 link-local on"]);
    assert!(!disturbs(&on.lab, &p, &k));
    let k_on = simulate(&on.lab, &k, &p);
    assert!(plan_ok(&on.lab, &k_on, Some(&st)).is_empty());
    // The first IPv6 address under `auto` does the same.
    let v6 = yaml(&BASE.replace("addresses: [10.0.0.1/24]", "addresses: [10.0.0.1/24, fd00::1/64]"));
    assert!(v6.lab.ipv6_link_local);
    assert_eq!(
        lines(&plan_ok(&v6.lab, &k, Some(&st)))[..3],
        ["~ link a:eth0 ipv6 link-local on", "~ link b:eth0 ipv6 link-local on", "~ link b:br0 ipv6 link-local on"]
    );
    // A link-local address deleted by hand from a device that is up and has its carrier comes
    // back; the kernel makes none before the carrier, nor for a device it does not give one.
    let mut k_gone = k_on.clone();
    if let Some(NsState::Owned(a)) = k_gone.nodes.get_mut("a") {
        let eth0 = a.links.iter_mut().find(|l| l.name == "eth0").unwrap();
        (eth0.up, eth0.oper, eth0.mac) = (true, "up".into(), Some([2, 0, 0, 0, 0, 1]));
        let ifindex = eth0.ifindex;
        a.addrs.retain(|x| !(x.ifindex == ifindex && x.addr.to_string().starts_with("fe80")));
    }
    assert_eq!(lines(&plan_ok(&on.lab, &k_gone, Some(&st))), ["~ link a:eth0 ipv6 link-local on"]);
    for oper in ["down", "lowerlayerdown"] {
        let mut k_nocarrier = k_gone.clone();
        if let Some(NsState::Owned(a)) = k_nocarrier.nodes.get_mut("a") {
            a.links.iter_mut().find(|l| l.name == "eth0").unwrap().oper = oper.into();
        }
        assert!(plan_ok(&on.lab, &k_nocarrier, Some(&st)).is_empty(), "{oper}");
    }
    // And back: generation off, the addresses it made deleted (which can take routes with them).
    let p = plan_ok(&l.lab, &k_on, Some(&st));
    assert_eq!(
        lines(&p),
        [
            "~ link a:eth0 ipv6 link-local off",
            "~ link b:eth0 ipv6 link-local off",
            "~ link b:br0 ipv6 link-local off",
            "- addr a:eth0 fe80::1/64",
            "- addr b:eth0 fe80::1/64",
            "- addr b:br0 fe80::1/64",
        ]
    );
    assert!(disturbs(&l.lab, &p, &k_on));
    assert!(plan_ok(&l.lab, &simulate(&l.lab, &k_on, &p), Some(&st)).is_empty());
    // Without IPv6 on a device, or with the file setting the mode itself: left alone.
    let mut k2 = k.clone();
    if let Some(NsState::Owned(b)) = k2.nodes.get_mut("b") {
        b.links.iter_mut().find(|l| l.name == "br0").unwrap().ipv6_disabled = true;
        b.links.iter_mut().find(|l| l.name == "eth0").unwrap().addr_gen_mode = None;
    }
    let own = yaml(
        &BASE
            .replace("name: edit\n", "name: edit\nipv6: on\n")
            .replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 1, net.ipv6.conf.eth0.addr_gen_mode: 1"),
    );
    assert!(plan_ok(&own.lab, &k2, Some(&st)).ops().all(|o| !matches!(o, Op::LinkLocal { .. })), "{}", plan_ok(&own.lab, &k2, Some(&st)));
}

#[test]
fn devices_no_longer_declared_are_deleted_once() {
    let l = yaml(BASE);
    let (k, st) = built(&l);
    // Drop the a-b link (a veth pair whose ends are both in the lab) and the bridge.
    let v2 = yaml(
        &BASE
            .replace("      eth0: { addresses: [10.0.0.1/24] }\n    routes:\n      - { to: 10.5.0.0/16, via: 10.0.0.2 }\n", "")
            .replace("    interfaces:\n      eth0: { addresses: [10.0.0.2/24] }\n      br0: { kind: bridge, stp: false }\n", "")
            .replace("links:\n  - endpoints: [a:eth0, b:eth0]\n", ""),
    );
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["- route a: 10.5.0.0/16 via 10.0.0.2 dev eth0", "- link a:eth0", "- link b:br0"]);
    // A device the lab never made (no group, no mark) in its namespace is left alone.
    let mut k2 = k.clone();
    if let Some(NsState::Owned(c)) = k2.nodes.get_mut("c") {
        c.links.push(foreign_link(500, "stray0", Some("veth")));
    }
    assert!(plan_ok(&l.lab, &k2, Some(&st)).is_empty());
}

#[test]
fn kind_changes_recreate_the_device() {
    let l = yaml(BASE);
    let (k, st) = built(&l);
    let v2 = yaml(&BASE.replace("br0: { kind: bridge, stp: false }", "br0: { peer: 'c:eth0' }"));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["- link b:br0", "+ link b:br0 veth peer c:eth0 up", "~ link c:eth0 up"]);
}

#[test]
fn removed_settings_are_restored() {
    let l = yaml(BASE);
    let (k, mut st) = built(&l);
    // The lab changed ip_forward from 0 (recorded) and no longer declares it.
    st.sysctl_restore.insert("a".into(), BTreeMap::from([("net.ipv4.ip_forward".to_string(), "0".to_string())]));
    let v2 = yaml(&BASE.replace("    sysctls: { net.ipv4.ip_forward: 1 }\n", ""));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["~ sysctl a: net.ipv4.ip_forward = 0 (restore)"]);
    assert_eq!(sysctl_keys(&v2.lab, Some(&st)).get("a").unwrap(), &vec!["net.ipv4.ip_forward".to_string()]);
}

#[test]
fn a_node_removed_from_the_file_deletes_its_namespace() {
    let l = yaml(BASE);
    let (k, st) = built(&l);
    let v2 = yaml(&BASE.replace("  c: {}\n", ""));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["- netns c (edit-c)"]);
    // Without a record the planner cannot know the namespace was the lab's: nothing.
    assert!(plan_ok(&v2.lab, &k, None).is_empty());
    let _: Option<Topology> = None;
}

#[test]
fn new_namespaces_get_loopback_settings_from_the_file() {
    let l = yaml("name: lo\nnodes:\n  a:\n    interfaces:\n      lo: { up: false }\n  b:\n    interfaces:\n      lo: { mtu: 1500 }\n");
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    assert_eq!(lines(&p), ["+ netns a (lo-a)", "+ netns b (lo-b)", "~ link b:lo mtu 1500"]);
    assert!(matches!(&p.steps[0].op, Op::CreateNetns { lo_up: false, .. }));
    let after = simulate(&l.lab, &empty_kernel(&l.lab), &p);
    let st = record_after(&l.lab, None, &p, &empty_kernel(&l.lab));
    assert!(plan_ok(&l.lab, &after, Some(&st)).is_empty());
}

#[test]
fn hairpin_and_masters_of_existing_ports() {
    let text = "name: hp\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n      p1: { master: br0, hairpin: true, peer: 'b:p1' }\n      p2: { master: br0, peer: 'b:p2' }\n  b: {}\n";
    let l = yaml(text);
    let p = plan_ok(&l.lab, &empty_kernel(&l.lab), None);
    assert!(lines(&p).contains(&"~ port a:p1 hairpin on".to_string()), "{p}");
    let (k, st) = built(&l);
    // p2 leaves the bridge, p1 turns hairpin off.
    let v2 = yaml(&text.replace("p2: { master: br0, peer: 'b:p2' }", "p2: { peer: 'b:p2' }").replace("hairpin: true", "hairpin: false"));
    // p2, no longer a port, gets back the IPv6 that vnet turned off on it as a port.
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["~ link a:p2 nomaster", "~ port a:p1 hairpin off", "~ link a:p2 ipv6 on, link-local off"]);
}

/// Hairpin follows the reset rule: a port whose hairpin someone turned on by hand, which the
/// file never declared, is left so; one the record declared and the file dropped goes off.
#[test]
fn hairpin_is_set_only_where_declared_or_dropped() {
    let text = "name: hp\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n      p1: { master: br0, peer: 'b:p1' }\n      p2: { master: br0, hairpin: true, peer: 'b:p2' }\n  b: {}\n";
    let l = yaml(text);
    let (mut k, st) = built(&l);
    assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty());
    if let Some(NsState::Owned(a)) = k.nodes.get_mut("a") {
        a.links.iter_mut().find(|l| l.name == "p1").unwrap().hairpin = Some(true);
    }
    assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty(), "{}", plan_ok(&l.lab, &k, Some(&st)));
    assert!(plan_ok(&l.lab, &k, None).is_empty(), "without a record nothing was declared");
    // p2's hairpin deleted from the file: back to the kernel's default.
    let v2 = yaml(&text.replace(", hairpin: true", ""));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["~ port a:p2 hairpin off"]);
    // Declared off where someone turned it on: off again.
    let v3 = yaml(&text.replace("p1: { master: br0,", "p1: { master: br0, hairpin: false,"));
    assert_eq!(lines(&plan_ok(&v3.lab, &k, Some(&st))), ["~ port a:p1 hairpin off"]);
}

/// A port of a bridge without STP that is not forwarding (left listening or learning when STP
/// went off) is put to forwarding; ports of a bridge running STP, ports without carrier or
/// down, and ports of a bridge that is down are left to the kernel.
#[test]
fn ports_of_a_bridge_without_stp_forward_at_once() {
    let text = "name: stp\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, stp: true }\n      p1: { master: br0, peer: 'b:eth0' }\n      p2: { master: br0, peer: 'c:eth0' }\n  b: {}\n  c: {}\n";
    let l = yaml(text);
    let (mut k, st) = built(&l);
    let set = |k: &mut Observed, f: &dyn Fn(&mut ObservedLink)| {
        if let Some(NsState::Owned(a)) = k.nodes.get_mut("a") {
            a.links.iter_mut().filter(|l| l.name.starts_with('p') || l.name == "br0").for_each(f);
        }
    };
    set(&mut k, &|l| {
        l.up = true;
        l.carrier = true;
        l.forwarding = l.master.map(|_| l.name == "p2");
        if let Some(KindSpec::Bridge(b)) = &mut l.spec {
            b.stp = Some(true);
        }
    });
    assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty(), "STP on: the kernel's timers decide");
    let off = yaml(&text.replace("stp: true", "stp: false"));
    let p = plan_ok(&off.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["~ bridge a:br0 {\"kind\":\"bridge\",\"stp\":false}", "~ port a:p1 forwarding"]);
    assert!(p.steps[0].stage < p.steps[1].stage, "STP goes off before the port is set");
    let after = simulate(&off.lab, &k, &p);
    assert!(plan_ok(&off.lab, &after, Some(&st)).is_empty());
    // STP deleted from the file: off (the default), the same.
    let dropped = yaml(&text.replace(", stp: true", ""));
    assert_eq!(lines(&plan_ok(&dropped.lab, &k, Some(&st))), ["~ bridge a:br0 {\"kind\":\"bridge\",\"stp\":false}", "~ port a:p1 forwarding"]);
    // Already off (turned off by an earlier up whose ports were still learning).
    let mut k2 = k.clone();
    set(&mut k2, &|l| {
        if let Some(KindSpec::Bridge(b)) = &mut l.spec {
            b.stp = Some(false);
        }
    });
    assert_eq!(lines(&plan_ok(&off.lab, &k2, Some(&st))), ["~ port a:p1 forwarding"]);
    // Never declared: STP is as the kernel has it.
    assert!(plan_ok(&dropped.lab, &k, None).is_empty());
    assert_eq!(lines(&plan_ok(&dropped.lab, &k2, None)), ["~ port a:p1 forwarding"]);
    // No carrier, the port down, the bridge down: nothing to set.
    for f in [&(|l: &mut ObservedLink| l.carrier = l.name != "p1") as &dyn Fn(&mut ObservedLink), &|l| l.up = l.name != "br0"] {
        let mut k3 = k2.clone();
        set(&mut k3, f);
        let p = plan_ok(&off.lab, &k3, Some(&st));
        assert!(!lines(&p).iter().any(|x| x.contains("forwarding")), "{p}");
    }
}

// ---- Settings the file dropped (`plan::resets`) ----

const RESET: &str = "name: rs
nodes:
  a:
    interfaces:
      lo: { mtu: 1500 }
      br0: { kind: bridge, stp: true, ageing_time: 100, forward_delay: 4, multicast_snooping: false, vlan_filtering: true }
      p1: { master: br0, peer: 'b:eth0' }
  b:
    interfaces:
      eth0: { mtu: 1400, addresses: [10.0.0.2/24] }
      eth1: {}
  c:
    interfaces:
      eth1: {}
links:
  - { endpoints: [b:eth1, c:eth1], mtu: 9000 }
";

/// The lines of RESET a user deletes: every option of the bridge, every MTU.
fn reset_dropped() -> String {
    RESET
        .replace("      lo: { mtu: 1500 }\n", "")
        .replace(", stp: true, ageing_time: 100, forward_delay: 4, multicast_snooping: false, vlan_filtering: true", "")
        .replace("mtu: 1400, ", "")
        .replace(", mtu: 9000", "")
}

/// A setting the lab's record declares and the file no longer does goes back to what the
/// kernel gives a fresh device: bridge options to their defaults, MTUs to the kind's own
/// (whether set on the interface or on its link); applied once, nothing is left to do.
#[test]
fn a_dropped_setting_goes_back_to_the_kernel_default() {
    let v1 = yaml(RESET);
    let (k, st) = built(&v1);
    assert!(plan_ok(&v1.lab, &k, Some(&st)).is_empty());
    let v2 = yaml(&reset_dropped());
    let p = plan_ok(&v2.lab, &k, Some(&st));
    assert_eq!(
        lines(&p),
        [
            "~ bridge a:br0 {\"kind\":\"bridge\",\"stp\":false,\"ageing_time\":300,\"forward_delay\":15,\"multicast_snooping\":true,\"vlan_filtering\":false}",
            "~ link a:lo mtu 65536",
            "~ link b:eth0 mtu 1500",
            "~ link b:eth1 mtu 1500",
            "~ link c:eth1 mtu 1500",
        ]
    );
    let after = simulate(&v2.lab, &k, &p);
    let st2 = record_after(&v2.lab, Some(&st), &p, &k);
    assert!(plan_ok(&v2.lab, &after, Some(&st2)).is_empty());
    // Only the dropped option is reset; the ones still declared keep their value.
    let v3 = yaml(&RESET.replace("stp: true, ", ""));
    assert_eq!(
        lines(&plan_ok(&v3.lab, &k, Some(&st))),
        ["~ bridge a:br0 {\"kind\":\"bridge\",\"stp\":false,\"ageing_time\":100,\"forward_delay\":4,\"multicast_snooping\":false,\"vlan_filtering\":true}"]
    );
    // Already at the default (someone put it back): nothing to do.
    let mut k4 = k.clone();
    if let Some(NsState::Owned(b)) = k4.nodes.get_mut("b") {
        b.links.iter_mut().find(|l| l.name == "eth0").unwrap().mtu = 1500;
    }
    let v4 = yaml(&RESET.replace("mtu: 1400, ", ""));
    assert!(plan_ok(&v4.lab, &k4, Some(&st)).is_empty());
}

/// What the record never declared is not forced, whatever the kernel holds (the kernel's own
/// choice, or someone's): the file dropping nothing, nothing is reset; and without a record
/// nothing is known to have been declared.
#[test]
fn a_setting_never_declared_is_left_as_the_kernel_has_it() {
    let v = yaml(&reset_dropped());
    let (mut k, st) = built(&v);
    if let Some(NsState::Owned(a)) = k.nodes.get_mut("a") {
        let br = a.links.iter_mut().find(|l| l.name == "br0").unwrap();
        // The kernel sized the bridge to a port; someone turned STP on and shortened ageing.
        br.mtu = 1400;
        br.spec = Some(KindSpec::Bridge(crate::model::kind::BridgeSpec { stp: Some(true), ageing_time: Some(10), ..Default::default() }));
        a.links.iter_mut().find(|l| l.name == "lo").unwrap().mtu = 1500;
    }
    if let Some(NsState::Owned(b)) = k.nodes.get_mut("b") {
        b.links.iter_mut().find(|l| l.name == "eth0").unwrap().mtu = 9000;
    }
    assert!(plan_ok(&v.lab, &k, Some(&st)).is_empty(), "{}", plan_ok(&v.lab, &k, Some(&st)));
    // A lab built from RESET, planned with the options dropped but without a record.
    let (k1, _) = built(&yaml(RESET));
    assert!(plan_ok(&v.lab, &k1, None).is_empty());
}

/// A bridge whose `mtu` the file drops goes to its smallest port's MTU (what the kernel gives
/// it as ports join), with the ports as the plan leaves them; stacked devices take their
/// lower device's (a VXLAN minus its headers).
#[test]
fn dropped_mtus_of_bridges_and_stacked_devices_follow_the_devices_under_them() {
    let text = "name: mt
nodes:
  a:
    interfaces:
      br0: { kind: bridge, mtu: 9000 }
      p1: { master: br0, mtu: 9000, peer: 'b:p1' }
      p2: { master: br0, mtu: 9000, peer: 'b:p2' }
      eth0: { mtu: 9000, peer: 'b:eth0' }
      mv0: { kind: macvlan, link: eth0, mode: bridge, mtu: 1400 }
      vx0: { kind: vxlan, vni: 5, remote: 10.0.0.2, dev: eth0, mtu: 1400 }
      vx6: { kind: vxlan, vni: 6, remote: 'fd00::2', dev: eth0, dstport: 4790, mtu: 1400 }
  b: {}
";
    let v1 = yaml(text);
    let (k, st) = built(&v1);
    let drop = |t: &str, what: &[&str]| what.iter().fold(t.to_string(), |t, w| t.replace(w, ""));
    // Its ports still at 9000: the bridge already is where the kernel would put it.
    let v2 = yaml(&drop(text, &["kind: bridge, mtu: 9000", ", mtu: 1400"]).replace("br0: {  }", "br0: { kind: bridge }"));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["~ link a:mv0 mtu 9000", "~ link a:vx0 mtu 8950", "~ link a:vx6 mtu 8930"]);
    // A port going back to 1500 takes the bridge with it; so does the lower device.
    let v3 = yaml(&drop(text, &[", mtu: 9000", ", mtu: 1400"]).replace("{ mtu: 9000, peer", "{ peer"));
    assert_eq!(
        lines(&plan_ok(&v3.lab, &k, Some(&st))),
        [
            "~ link a:br0 mtu 1500",
            "~ link a:p1 mtu 1500",
            "~ link a:p2 mtu 1500",
            "~ link a:eth0 mtu 1500",
            "~ link a:mv0 mtu 1500",
            "~ link a:vx0 mtu 1450",
            "~ link a:vx6 mtu 1430"
        ]
    );
}

// ---- Open vSwitch ----

const OVS: &str = "
name: sdn
nodes:
  sw:
    interfaces:
      ovs0:
        kind: ovs-bridge
        fail_mode: secure
        addresses: [10.0.0.254/24]
        ports:
          pa: { tag: 10, ofport: 1 }
        flows:
          - priority=100,in_port=pa,actions=normal
      pa: { master: ovs0 }
      pb: { master: ovs0 }
      m0: { kind: ovs-internal, master: ovs0 }
  a:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
  b:
    interfaces:
      eth0: { addresses: [10.0.0.2/24] }
links:
  - endpoints: [a:eth0, sw:pa]
  - endpoints: [b:eth0, sw:pb]
";

/// Builds an OVS lab from nothing with or without the kernel datapath.
fn built_ovs(l: &Loaded, kernel_datapath: bool) -> (Observed, LabState, Plan) {
    let mut empty = empty_kernel(&l.lab);
    empty.ovs.insert("sw".into(), crate::observed::ovs::ObservedOvs { kernel_datapath, ..Default::default() });
    let p = plan_ok(&l.lab, &empty, None);
    let after = simulate(&l.lab, &empty, &p);
    let mut st = record_after(&l.lab, None, &p, &empty);
    st.ovs.insert("sw".into(), crate::state::OvsRecord::default());
    (after, st, p)
}

#[test]
fn ovs_lab_from_nothing_then_nothing_to_do() {
    let l = yaml(OVS);
    let (after, st, p) = built_ovs(&l, false);
    let ovs: Vec<String> = lines(&p).into_iter().filter(|x| x.starts_with("~ ovs") || x.contains("sw:ovs0") || x.contains("sw:m0")).collect();
    assert_eq!(
        ovs,
        [
            "~ ovs sw: start ovsdb-server and ovs-vswitchd",
            "~ ovs sw: bridge ovs0 datapath=netdev fail_mode=secure ports [pa tag=10 ofport=1] [pb] [m0 internal]",
            "~ link sw:ovs0 up",
            "~ link sw:m0 up",
            "~ ovs sw: flows ovs0 +[table=0,priority=100,in_port=pa,actions=normal]",
            "+ addr sw:ovs0 10.0.0.254/24",
        ]
    );
    // OVS ports get no kernel master: OVS attaches them.
    assert!(lines(&p).iter().any(|x| x == "+ link sw:pa veth peer a:eth0 up"), "{p}");
    // Start before the bridge, the bridge after its ports exist, flows after the bridge.
    let stage_of = |pred: &dyn Fn(&Op) -> bool| p.steps.iter().find(|s| pred(&s.op)).unwrap().stage;
    let create = stage_of(&|o| matches!(o, Op::CreateLink(c) if c.ifname == "pa"));
    let start = stage_of(&|o| matches!(o, Op::Ovs { ovs_op: ovs::OvsOp::Start, .. }));
    let bridge = stage_of(&|o| matches!(o, Op::Ovs { ovs_op: ovs::OvsOp::AddBridge { .. }, .. }));
    let flows = stage_of(&|o| matches!(o, Op::Ovs { ovs_op: ovs::OvsOp::Flows { .. }, .. }));
    assert!(create < bridge && start < bridge && bridge < flows, "{create} {start} {bridge} {flows}");
    // Devices OVS made are the lab's (their addresses too): a second up plans nothing.
    let again = plan_ok(&l.lab, &after, Some(&st));
    assert!(again.is_empty(), "{again}");
    // With the openvswitch module the bridge gets the kernel datapath.
    let (_, _, p) = built_ovs(&l, true);
    assert!(lines(&p).iter().any(|x| x.starts_with("~ ovs sw: bridge ovs0 datapath=system")), "{p}");
}

#[test]
fn ovs_edits_plan_only_the_difference() {
    let l = yaml(OVS);
    let (after, st, _) = built_ovs(&l, false);
    let v2 = yaml(
        &OVS.replace("          - priority=100,in_port=pa,actions=normal\n", "          - priority=100,in_port=pa,actions=drop\n")
            .replace("pa: { tag: 10, ofport: 1 }", "pa: { tag: 20, ofport: 1 }")
            .replace("fail_mode: secure", "fail_mode: standalone")
            .replace("      m0: { kind: ovs-internal, master: ovs0 }\n", ""),
    );
    let p = plan_ok(&v2.lab, &after, Some(&st));
    let cookie = |line: &str| format!("0x{:016x}", ovs::flow_cookie("sdn", line));
    assert_eq!(
        lines(&p),
        [
            "~ ovs sw: set bridge ovs0 fail_mode=standalone",
            "~ ovs sw: set port ovs0 [pa tag=20 ofport=1]",
            format!("~ ovs sw: flows ovs0 +[table=0,priority=100,in_port=pa,actions=drop] -{}", cookie("table=0,priority=100,in_port=pa,actions=normal"))
                .as_str(),
            "~ ovs sw: del port ovs0 m0",
        ]
    );
    let after2 = simulate(&v2.lab, &after, &p);
    assert!(plan_ok(&v2.lab, &after2, Some(&st)).is_empty());
}

#[test]
fn ovs_rows_of_others_clash_and_are_never_planned_for_change() {
    let l = yaml(OVS);
    let (mut after, st, _) = built_ovs(&l, false);
    let o = after.ovs.get_mut("sw").unwrap();
    // Someone else's bridge, and someone else's port on the lab's bridge.
    let mut foreign = o.bridges[0].clone();
    foreign.name = "other".into();
    foreign.lab = None;
    foreign.ports.retain(|p| p.name == "pb");
    foreign.ports[0].name = "x1".into();
    foreign.ports[0].interfaces[0].name = "x1".into();
    foreign.ports[0].lab = None;
    foreign.ports[0].interfaces[0].lab = None;
    o.bridges.push(foreign.clone());
    let mut extra = foreign.ports[0].clone();
    extra.name = "x2".into();
    extra.interfaces[0].name = "x2".into();
    o.bridges[0].ports.push(extra);
    assert!(plan_ok(&l.lab, &after, Some(&st)).is_empty(), "others' rows are left alone");

    // A bridge of that name that is not the lab's clashes.
    let mut clash = after.clone();
    clash.ovs.get_mut("sw").unwrap().bridges[0].lab = Some("another-lab".into());
    let c = plan(&l.lab, &clash, Some(&st)).unwrap_err();
    assert_eq!(c[0].to_string(), "node sw: OVS bridge `ovs0` already exists and does not belong to lab `sdn`");
    // A port the lab wants that a foreign bridge holds clashes.
    let mut clash = after.clone();
    clash.ovs.get_mut("sw").unwrap().bridges[1].ports[0].name = "pb".into();
    clash.ovs.get_mut("sw").unwrap().bridges[1].ports[0].interfaces[0].name = "pb".into();
    clash.ovs.get_mut("sw").unwrap().bridges[0].ports.retain(|p| p.name != "pb");
    let c = plan(&l.lab, &clash, Some(&st)).unwrap_err();
    assert_eq!(c[0].to_string(), "node sw: OVS port `pb` already exists on OVS bridge `other`, which does not belong to lab `sdn`");
}

#[test]
fn removed_ovs_bridges_and_nodes_stop_what_they_used() {
    let l = yaml(OVS);
    let (after, st, _) = built_ovs(&l, false);
    // The bridge goes (its ports become plain veth ends): the bridge is deleted and the
    // private OVS, now unused, stops.
    let v2 = yaml(&OVS.replace("        kind: ovs-bridge\n", "        kind: bridge\n").replace(
        "        fail_mode: secure\n        addresses: [10.0.0.254/24]\n        ports:\n          pa: { tag: 10, ofport: 1 }\n        flows:\n          - priority=100,in_port=pa,actions=normal\n",
        "",
    ).replace("      m0: { kind: ovs-internal, master: ovs0 }\n", ""));
    let p = plan_ok(&v2.lab, &after, Some(&st));
    let l2 = lines(&p);
    assert!(l2.contains(&"~ ovs sw: del bridge ovs0".to_string()), "{p}");
    assert!(l2.contains(&"~ ovs sw: stop ovsdb-server and ovs-vswitchd".to_string()), "{p}");
    assert!(l2.contains(&"+ link sw:ovs0 bridge".to_string()), "{p}");
    // The node goes: its OVS stops before its namespace is deleted.
    let v3 = yaml(
        "
name: sdn
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
  b:
    interfaces:
      eth0: { addresses: [10.0.0.2/24] }
links:
  - endpoints: [a:eth0, b:eth0]
",
    );
    let p = plan_ok(&v3.lab, &after, Some(&st));
    let stop = p.steps.iter().find(|s| matches!(&s.op, Op::Ovs { node, ovs_op: ovs::OvsOp::Stop } if node == "sw")).expect("stop").stage;
    let del = p.steps.iter().find(|s| matches!(&s.op, Op::DeleteNetns { node, .. } if node == "sw")).expect("netns delete").stage;
    assert!(stop < del, "{p}");
}

// ---- Side effects of the kernel, sysctl originals ----

/// Plans that change what existed before can make the kernel change more by itself (`up`
/// then observes again); builds and additions cannot, so they cost no second observation.
#[test]
fn only_changes_to_what_exists_disturb() {
    for (file, isolated) in [("bridge.yaml", true), ("bridge.yaml", false), ("two-ns.yaml", true)] {
        let l = example(file, isolated);
        let empty = empty_kernel(&l.lab);
        assert!(!disturbs(&l.lab, &plan_ok(&l.lab, &empty, None), &empty), "a fresh build of {file}");
    }
    let l = yaml(BASE);
    let (k, st) = built(&l);
    let disturbs_with = |text: &str| {
        let v = yaml(text);
        let p = plan_ok(&v.lab, &k, Some(&st));
        assert!(!p.is_empty(), "{text}");
        disturbs(&v.lab, &p, &k)
    };
    // A new node cabled to an existing bridge: created, attached, brought up.
    let more = BASE.replace("  c: {}\n", "  c:\n    interfaces:\n      eth0: { addresses: [10.0.0.3/24] }\n") + "  - endpoints: [c:eth0, b:p3]\n";
    let more = more.replace("      br0: { kind: bridge, stp: false }\n", "      br0: { kind: bridge, stp: false }\n      p3: { master: br0 }\n");
    assert!(!disturbs_with(&more));
    assert!(!disturbs_with(&BASE.replace("  c: {}\n", "  c: {}\n  d: {}\n")), "a new node");
    assert!(!disturbs_with(&BASE.replace("[10.0.0.2/24]", "[10.0.0.2/24, 10.0.0.9/24]")), "an address added");
    assert!(disturbs_with(&BASE.replace("[10.0.0.1/24]", "[10.0.0.5/24]")), "an address replaced");
    assert!(disturbs_with(&BASE.replace("[10.0.0.1/24]", "[10.0.0.1/16]")), "a prefix changed");
    assert!(disturbs_with(&BASE.replace("eth0: { addresses: [10.0.0.2/24] }", "eth0: { addresses: [10.0.0.2/24], mtu: 1400 }")), "an MTU changed");
    assert!(!disturbs_with(&BASE.replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0")), "forwarding changed");
    assert!(disturbs_with(&BASE.replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 1, net.ipv6.conf.all.disable_ipv6: 1")), "IPv6 turned off");
    assert!(
        disturbs_with(
            &BASE
                .replace("a:eth0, b:eth0", "a:eth0, b:eth1")
                .replace("      eth0: { addresses: [10.0.0.2/24] }\n", "      eth1: { addresses: [10.0.0.2/24] }\n")
        ),
        "a renamed end"
    );
    // A port leaving its bridge.
    let text = "name: hp\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, mtu: 1400 }\n      p1: { master: br0, mtu: 1400, peer: 'b:p1' }\n  b: {}\n";
    let l = yaml(text);
    let (k, st) = built(&l);
    let v2 = yaml(&text.replace("p1: { master: br0, mtu: 1400,", "p1: { mtu: 1400,"));
    let p = plan_ok(&v2.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["~ link a:p1 nomaster", "~ link a:p1 ipv6 on, link-local off"]);
    assert!(disturbs(&v2.lab, &p, &k));
    // A new port joining the existing bridge (maybe built by an older vnet, whose MTU the
    // kernel then sizes anew).
    let v3 = yaml(&text.replace("  b: {}\n", "      p2: { master: br0, peer: 'b:p2' }\n  b: {}\n"));
    let p = plan_ok(&v3.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["+ link a:p2 veth peer b:p2 master br0 up no-ipv6", "~ link b:p2 up"]);
    assert!(disturbs(&v3.lab, &p, &k));
    // Built from nothing: the executor sets the bridge's MTU after its creation, so that its
    // ports joining leave it alone; no second pass.
    let empty = empty_kernel(&l.lab);
    assert!(!disturbs(&l.lab, &plan_ok(&l.lab, &empty, None), &empty));
}

/// A replaced address takes the routes through it (the kernel's doing, simulated): the plan
/// made from the kernel afterwards puts them back, which is what `up`'s next pass applies.
#[test]
fn routes_the_kernel_flushed_are_planned_again() {
    let text = "name: r\nnodes:\n  a:\n    interfaces: { eth0: { addresses: [10.0.0.1/24] } }\n    routes: [ { to: default, via: 10.0.0.2 } ]\n  b:\n    interfaces: { eth0: { addresses: [10.0.0.2/24] } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    let l = yaml(text);
    let (k, st) = built(&l);
    for new in ["10.0.0.5/24", "10.0.0.1/16"] {
        let v2 = yaml(&text.replace("[10.0.0.1/24]", &format!("[{new}]")));
        let p = plan_ok(&v2.lab, &k, Some(&st));
        assert_eq!(lines(&p), ["- addr a:eth0 10.0.0.1/24", format!("+ addr a:eth0 {new}").as_str()]);
        assert!(disturbs(&v2.lab, &p, &k));
        let after = simulate(&v2.lab, &k, &p);
        let st2 = record_after(&v2.lab, Some(&st), &p, &k);
        let next = plan_ok(&v2.lab, &after, Some(&st2));
        assert_eq!(lines(&next), ["+ route a: default via 10.0.0.2"]);
        assert!(!disturbs(&v2.lab, &next, &after), "adding the route back needs no further pass");
        assert!(plan_ok(&v2.lab, &simulate(&v2.lab, &after, &next), Some(&st2)).is_empty());
    }
}

fn route(dst: &str, via: Option<&str>, oif: u32, protocol: u8, kind: u8) -> ObservedRoute {
    ObservedRoute {
        table: if kind == 1 { 254 } else { 255 },
        dst: dst.parse().unwrap(),
        via: via.map(|v| v.parse().unwrap()),
        oif: Some(oif),
        metric: None,
        src: None,
        protocol,
        kind,
    }
}

/// In a lab's own namespace every route the file does not declare goes, whatever its protocol
/// (vnet's, an older vnet's `static`, `boot` as `ip route add` gives, a daemon's), except the
/// kernel's own: connected and local routes, router advertisements, other route types.
#[test]
fn undeclared_routes_in_lab_namespaces_go_whatever_their_protocol() {
    let l = yaml(BASE);
    let (mut k, st) = built(&l);
    let NsState::Owned(a) = k.nodes.get_mut("a").unwrap() else { unreachable!() };
    let eth0 = a.link("eth0").unwrap().ifindex;
    a.routes.extend([
        route("10.9.1.0/24", Some("10.0.0.2"), eth0, RTPROT_BOOT, 1),
        route("10.9.2.0/24", Some("10.0.0.2"), eth0, RTPROT_STATIC, 1),
        route("10.9.3.0/24", Some("10.0.0.2"), eth0, 16, 1),
        route("10.9.4.0/24", None, eth0, RTPROT_VNET, 1),
        route("10.0.0.0/24", None, eth0, RTPROT_KERNEL, 1),
        route("10.0.0.1/32", None, eth0, RTPROT_KERNEL, 2),
        route("fd00:9::/64", Some("fe80::1"), eth0, RTPROT_RA, 1),
        route("10.9.5.0/24", None, eth0, RTPROT_BOOT, 6),
    ]);
    let p = plan_ok(&l.lab, &k, Some(&st));
    assert_eq!(
        lines(&p),
        [
            "- route a: 10.9.1.0/24 via 10.0.0.2 dev eth0 proto boot",
            "- route a: 10.9.2.0/24 via 10.0.0.2 dev eth0 proto static",
            "- route a: 10.9.3.0/24 via 10.0.0.2 dev eth0 proto dhcp",
            "- route a: 10.9.4.0/24 dev eth0",
        ]
    );
    let del: Vec<Option<u8>> = p.ops().filter_map(|o| if let Op::DelRoute { route, .. } = o { Some(route.proto) } else { None }).collect();
    assert_eq!(del, [Some(RTPROT_BOOT), Some(RTPROT_STATIC), Some(16), None], "deletions name the route's protocol (vnet's: none)");
    assert!(plan_ok(&l.lab, &simulate(&l.lab, &k, &p), Some(&st)).is_empty());
}

/// A lab an older vnet built holds its routes as `static`: declared, they are the lab's as
/// they are (nothing re-added); a declared route added by hand is the lab's too.
#[test]
fn routes_of_an_older_vnet_or_by_hand_are_recognised() {
    let l = yaml(BASE);
    let (mut k, st) = built(&l);
    for proto in [RTPROT_STATIC, RTPROT_BOOT] {
        let NsState::Owned(a) = k.nodes.get_mut("a").unwrap() else { unreachable!() };
        a.routes.iter_mut().filter(|r| r.dst.to_string() == "10.5.0.0/16").for_each(|r| r.protocol = proto);
        assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty(), "proto {proto}");
    }
    // A changed gateway replaces the old route, deleted with its protocol.
    let v2 = yaml(&BASE.replace("via: 10.0.0.2 }", "via: 10.0.0.3 }"));
    assert_eq!(lines(&plan_ok(&v2.lab, &k, Some(&st))), ["- route a: 10.5.0.0/16 via 10.0.0.2 dev eth0 proto boot", "+ route a: 10.5.0.0/16 via 10.0.0.3"]);
}

/// In the real root namespace vnet deletes only the routes it added (its protocol) through the
/// lab's devices; others through them are left (a declared one counts as present), and routes
/// through the machine's own devices are never looked at.
#[test]
fn root_namespace_routes_vnet_did_not_add_are_left_alone() {
    let text = "name: rr
nodes:
  host:
    interfaces: { veth1: { addresses: [10.0.0.1/24] } }
    routes: [ { to: 10.5.0.0/16, via: 10.0.0.2 } ]
  a:
    interfaces: { eth0: { addresses: [10.0.0.2/24] } }
links:
  - endpoints: [a:eth0, host:veth1]
";
    let l = yaml(text);
    let (mut k, st) = built(&l);
    assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty(), "{}", plan_ok(&l.lab, &k, Some(&st)));
    let NsState::Root(h) = k.nodes.get_mut("host").unwrap() else { panic!("host is the root namespace") };
    let veth1 = h.link("veth1").unwrap().ifindex;
    let eth0 = h.link("eth0").unwrap().ifindex;
    h.routes.extend([
        route("10.9.1.0/24", Some("10.0.0.2"), veth1, RTPROT_BOOT, 1),
        route("10.9.2.0/24", Some("10.0.0.2"), veth1, RTPROT_STATIC, 1),
        route("10.9.3.0/24", Some("10.0.0.2"), veth1, RTPROT_VNET, 1),
        route("0.0.0.0/0", Some("192.0.2.1"), eth0, RTPROT_VNET, 1),
        route("10.9.4.0/24", None, eth0, RTPROT_BOOT, 1),
    ]);
    h.routes.iter_mut().filter(|r| r.dst.to_string() == "10.5.0.0/16").for_each(|r| r.protocol = RTPROT_STATIC);
    assert_eq!(lines(&plan_ok(&l.lab, &k, Some(&st))), ["- route host: 10.9.3.0/24 via 10.0.0.2 dev veth1"]);
}

/// The value before the lab first set a sysctl is what comes back, whatever the file set in
/// between (here: a namespace the lab made, 0 before, then 1, then 0).
#[test]
fn sysctl_originals_survive_edits() {
    let l = yaml(BASE);
    let (k, st) = built(&l);
    assert_eq!(st.sysctl_restore["a"]["net.ipv4.ip_forward"], "0");
    let v2 = yaml(&BASE.replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0"));
    let p = plan_ok(&v2.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["~ sysctl a: net.ipv4.ip_forward = 0"]);
    let k2 = simulate(&v2.lab, &k, &p);
    let st2 = record_after(&v2.lab, Some(&st), &p, &k);
    assert_eq!(st2.sysctl_restore["a"]["net.ipv4.ip_forward"], "0", "the lab's own 1 is not taken for the original");
    let v3 = yaml(&BASE.replace("    sysctls: { net.ipv4.ip_forward: 1 }\n", ""));
    assert!(plan_ok(&v3.lab, &k2, Some(&st2)).is_empty(), "already at its original value");
    // From the lab's 1 it goes back to the original 0.
    assert_eq!(lines(&plan_ok(&v3.lab, &k, Some(&st2))), ["~ sysctl a: net.ipv4.ip_forward = 0 (restore)"]);
    let st3 = record_after(&v3.lab, Some(&st2), &Plan::default(), &k);
    assert!(st3.sysctl_restore.is_empty(), "restored: forgotten");
}

/// NAT implies ip_forward = 1; once the node no longer does NAT, it goes back like a declared one.
#[test]
fn implied_forwarding_is_restored_when_nat_goes() {
    let text = "name: n
nodes:
  gw:
    interfaces:
      lan0: { addresses: [10.1.0.1/24] }
      wan0: { addresses: [198.51.100.1/24] }
    nat:
      masquerade: [{ source: 10.1.0.0/24, out: wan0 }]
  h:
    interfaces: { eth0: { addresses: [10.1.0.2/24] } }
  i:
    interfaces: { eth0: { addresses: [198.51.100.2/24] } }
links:
  - endpoints: [h:eth0, gw:lan0]
  - endpoints: [i:eth0, gw:wan0]
";
    let l = yaml(text);
    let empty = empty_kernel(&l.lab);
    assert!(lines(&plan_ok(&l.lab, &empty, None)).contains(&"~ sysctl gw: net.ipv4.ip_forward = 1".to_string()));
    let (k, st) = built(&l);
    assert_eq!(st.sysctl_restore["gw"]["net.ipv4.ip_forward"], "0");
    let v2 = yaml(&text.replace("    nat:\n      masquerade: [{ source: 10.1.0.0/24, out: wan0 }]\n", ""));
    let p = plan_ok(&v2.lab, &k, Some(&st));
    assert_eq!(lines(&p), ["~ sysctl gw: net.ipv4.ip_forward = 0 (restore)"]);
    let st2 = record_after(&v2.lab, Some(&st), &p, &k);
    assert!(plan_ok(&v2.lab, &simulate(&v2.lab, &k, &p), Some(&st2)).is_empty());
}

#[test]
fn a_primary_address_goes_without_taking_the_secondaries_that_stay() {
    let v1 = yaml("name: sec\nnodes:\n  a:\n    interfaces:\n      eth0: {kind: veth, peer: b:eth0, addresses: [10.0.0.1/24, 10.0.0.2/24, 10.0.0.3/24, 10.1.0.1/24]}\n  b: {}\n");
    let (kernel, st) = built(&v1);
    let secondaries: Vec<String> = match kernel.nodes.get("a") {
        Some(NsState::Owned(a)) => a.addrs.iter().filter(|a| a.secondary).map(|a| a.addr.to_string()).collect(),
        _ => panic!("node a"),
    };
    assert_eq!(secondaries, ["10.0.0.2/24", "10.0.0.3/24"]);
    // The primary and one secondary go, one secondary stays.
    let v2 = yaml("name: sec\nnodes:\n  a:\n    interfaces:\n      eth0: {kind: veth, peer: b:eth0, addresses: [10.0.0.3/24, 10.1.0.1/24]}\n  b: {}\n");
    let p = plan_ok(&v2.lab, &kernel, Some(&st));
    assert_eq!(lines(&p), ["- addr a:eth0 10.0.0.2/24", "- addr a:eth0 10.0.0.3/24", "- addr a:eth0 10.0.0.1/24", "+ addr a:eth0 10.0.0.3/24"]);
    let after = simulate(&v2.lab, &kernel, &p);
    let have: Vec<String> = match after.nodes.get("a") {
        Some(NsState::Owned(a)) => a.addrs.iter().filter(|a| !a.automatic).map(|a| a.addr.to_string()).collect(),
        _ => panic!("node a"),
    };
    assert_eq!(have, ["10.1.0.1/24", "10.0.0.3/24"]);
    let st2 = record_after(&v2.lab, Some(&st), &p, &kernel);
    assert!(plan_ok(&v2.lab, &after, Some(&st2)).is_empty());
    // A secondary that goes while its primary stays is just deleted.
    let v3 = yaml("name: sec\nnodes:\n  a:\n    interfaces:\n      eth0: {kind: veth, peer: b:eth0, addresses: [10.0.0.1/24, 10.1.0.1/24]}\n  b: {}\n");
    assert_eq!(lines(&plan_ok(&v3.lab, &kernel, Some(&st))), ["- addr a:eth0 10.0.0.2/24", "- addr a:eth0 10.0.0.3/24"]);
}

/// Bridge ports keep no IPv6 of their own in a lab without link-local addresses (the kernel's
/// per-port IPv6 routes make a big bridge quadratic), on either end of a veth; not when the lab
/// has link-local addresses, in a root namespace, when the file sets `disable_ipv6` itself
/// (the device's, or the node's `all`/`default`), nor on a port of anything but a bridge.
#[test]
fn bridge_ports_are_made_without_ipv6() {
    let base = "name: p6\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n      p1: { master: br0, peer: 'b:e1' }\n  b:\n    interfaces:\n      br1: { kind: bridge }\n      e1: { master: br1 }\n      e2: { peer: 'a:x2' }\n";
    let created = |text: &str| -> Vec<String> {
        let l = yaml(text);
        let mut v: Vec<String> =
            lines(&plan_ok(&l.lab, &empty_kernel(&l.lab), None)).into_iter().filter(|s| s.starts_with("+ link") && s.contains("veth")).collect();
        v.sort();
        v
    };
    assert_eq!(created(base), ["+ link a:p1 veth peer b:e1 master br0 up no-ipv6 peer-no-ipv6", "+ link a:x2 veth peer b:e2 up"]);
    assert_eq!(created(&base.replace("name: p6\n", "name: p6\nipv6: on\n")), ["+ link a:p1 veth peer b:e1 master br0 up", "+ link a:x2 veth peer b:e2 up"]);
    for sysctl in ["p1", "all", "default"] {
        let text = base.replace("  b:\n", &format!("    sysctls: {{ net.ipv6.conf.{sysctl}.disable_ipv6: 1 }}\n  b:\n"));
        assert_eq!(created(&text)[0], "+ link a:p1 veth peer b:e1 master br0 up peer-no-ipv6", "{sysctl}");
    }
    // In the root namespace (a lab without an isolated host): its sysctls are not vnet's.
    let root = base.replace("  a:\n", "  host:\n").replace("'a:x2'", "'host:x2'");
    assert_eq!(created(&root)[0], "+ link host:p1 veth peer b:e1 master br0 up peer-no-ipv6");
    let bond = base.replace("br0: { kind: bridge }", "br0: { kind: bond }");
    assert!(!created(&bond)[0].contains(" no-ipv6"), "{:?}", created(&bond));
    // Built, the lab plans nothing more; with link-local addresses on, the ports get IPv6 back.
    let l = yaml(base);
    let (k, st) = built(&l);
    assert!(plan_ok(&l.lab, &k, Some(&st)).is_empty());
    let on = yaml(&base.replace("name: p6\n", "name: p6\nipv6: on\n"));
    let p = plan_ok(&on.lab, &k, Some(&st));
    assert!(lines(&p).contains(&"~ link a:p1 ipv6 on, link-local on".to_string()), "{p}");
    assert!(lines(&p).contains(&"~ link b:e1 ipv6 on, link-local on".to_string()), "{p}");
    assert!(lines(&p).contains(&"~ link a:x2 ipv6 link-local on".to_string()), "{p}");
    let after = simulate(&on.lab, &k, &p);
    assert!(plan_ok(&on.lab, &after, Some(&st)).is_empty(), "{}", plan_ok(&on.lab, &after, Some(&st)));
}

/// A node `s` with bridge `br0` and `ports` veth ports, each to a node of its own.
fn busy_bridge(ports: usize, isolated: bool) -> Loaded {
    let mut t = format!("name: bb\nisolated_host: {isolated}\nnodes:\n  host:\n    interfaces:\n      br0: {{ kind: bridge, stp: false }}\n");
    for i in 1..=ports {
        t += &format!("      p{i}: {{ master: br0, peer: 'n{i}:eth0' }}\n");
    }
    for i in 1..=ports {
        t += &format!("  n{i}: {{}}\n");
    }
    yaml(&t)
}

fn creates<'a>(p: &'a Plan, ifname: &str) -> Option<(usize, &'a CreateLink)> {
    p.ops().enumerate().find_map(|(k, o)| match o {
        Op::CreateLink(c) if c.ifname == ifname => Some((k, c)),
        _ => None,
    })
}

/// `model::anchor`: a bridge with 16 ports or more gets a down VXLAN port created after the
/// bridge and before every other port, so that it is the bridge's oldest port; built, the lab
/// plans nothing more.
#[test]
fn a_busy_bridge_gets_its_anchor_before_its_ports() {
    let l = busy_bridge(16, true);
    let mut empty = empty_kernel(&l.lab);
    empty.vxlan = true;
    let p = plan_ok(&l.lab, &empty, None);
    let (at, a) = creates(&p, "vnet~br0").unwrap_or_else(|| panic!("no anchor:\n{p}"));
    assert_eq!((a.node.as_str(), a.master.as_deref(), a.up), ("host", Some("br0"), false));
    assert!(matches!(&a.kind, KindSpec::Vxlan(v) if v.vni == crate::model::kind::VNI_MAX && v.dev.is_none() && v.remote.is_none()), "{:?}", a.kind);
    assert_eq!((a.mtu, a.mac), (Some(crate::model::anchor::MTU), Some(crate::model::anchor::MAC)));
    assert!(creates(&p, "br0").unwrap().0 < at);
    for i in 1..=16 {
        let (k, _) = creates(&p, &format!("p{i}")).expect("port created");
        assert!(k > at, "p{i} is created before the anchor:\n{p}");
    }
    let after = simulate(&l.lab, &empty, &p);
    let st = record_after(&l.lab, None, &p, &empty);
    let again = plan_ok(&l.lab, &after, Some(&st));
    assert!(again.is_empty(), "plans again:\n{again}");

    // Down to 15 ports: the anchor goes with the need for it.
    let fewer = busy_bridge(15, true);
    let p = plan_ok(&fewer.lab, &after, Some(&st));
    assert!(lines(&p).iter().any(|o| o.contains("vnet~br0")) && creates(&p, "vnet~br0").is_none(), "{p}");
    assert!(p.ops().any(|o| matches!(o, Op::DeleteLink { ifname, .. } if ifname == "vnet~br0")), "{p}");
}

/// No anchor where it would save nothing or cannot be made: fewer than 16 ports, a kernel
/// without VXLAN, a bridge that already exists (an anchor made now would be its newest port),
/// a bridge in the machine's root namespace.
#[test]
fn anchors_only_with_a_new_busy_bridge_in_the_labs_own_namespace() {
    let few = busy_bridge(15, true);
    assert!(few.lab.nodes["host"].anchors.is_empty());
    let mut empty = empty_kernel(&few.lab);
    empty.vxlan = true;
    assert!(creates(&plan_ok(&few.lab, &empty, None), "vnet~br0").is_none());

    let l = busy_bridge(20, true);
    assert_eq!(l.lab.nodes["host"].anchors.keys().collect::<Vec<_>>(), ["vnet~br0"]);
    let (built_without, st) = built(&l);
    assert!(creates(&plan_ok(&l.lab, &empty_kernel(&l.lab), None), "vnet~br0").is_none(), "planned without VXLAN");
    let mut later = built_without.clone();
    later.vxlan = true;
    let again = plan_ok(&l.lab, &later, Some(&st));
    assert!(again.is_empty(), "an existing bridge got an anchor:\n{again}");

    let root = busy_bridge(20, false);
    assert!(root.lab.nodes["host"].anchors.is_empty());
}
