//! Device kinds this machine's kernel lacks (ipvlan, 802.1Q vlan, bonding, team, dummy, bridge
//! vlan_filtering): run in the stock-kernel VM lane only. Each test first requires its kinds,
//! so a kernel without them fails loudly instead of passing untested.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use vnet::Lab;

fn up(name: &str, yaml: &str) -> Lab {
    Lab::from_file(temp_topology(name, "yaml", yaml)).unwrap()
}

fn detail(lab: &Lab, node: &str, dev: &str, key: &str) -> Option<String> {
    let st = lab.status().unwrap();
    st.nodes.iter().find(|n| n.node == node)?.devices.iter().find(|d| d.name == dev)?.details.get(key).cloned()
}

/// ipvlan slaves in nodes a and b on host:eth0 (created from host's namespace straight into
/// their nodes); ext is behind the lower device.
fn ipvlan_lab(mode: &str) -> Lab {
    up(
        &format!("ipvl-{mode}"),
        &format!(
            r#"
name: ipvl-{mode}
nodes:
  host: {{ interfaces: {{ eth0: {{}} }} }}
  ext: {{ interfaces: {{ eth0: {{ addresses: [10.5.0.100/24] }} }} }}
  a: {{ interfaces: {{ ipv: {{ kind: ipvlan, link: "host:eth0", mode: {mode}, addresses: [10.5.0.1/24] }} }} }}
  b: {{ interfaces: {{ ipv: {{ kind: ipvlan, link: "host:eth0", mode: {mode}, addresses: [10.5.0.2/24] }} }} }}
links: [{{ endpoints: [host:eth0, ext:eth0] }}]
"#
        ),
    )
}

/// Whether a UDP broadcast sent from `from` to 10.5.0.255 reaches a socket in `to`.
fn broadcast_arrives(lab: &Lab, from: &str, to: &str) -> bool {
    let rx = lab.node(to).run(|| UdpSocket::bind("0.0.0.0:9999").unwrap());
    rx.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    lab.node(from).run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_broadcast(true).unwrap();
        for _ in 0..3 {
            let _ = s.send_to(b"hello-all", "10.5.0.255:9999");
        }
    });
    let mut b = [0u8; 32];
    matches!(rx.recv_from(&mut b), Ok((n, _)) if &b[..n] == b"hello-all")
}

#[test]
fn stock_ipvlan_l2_and_l3_reach_across_nodes_and_l3_stops_broadcast() {
    require_root();
    require(&["ipvlan"]);
    let lab = ipvlan_lab("l2");
    let a = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&a), "ipv").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "ipvlan");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "l2");
    assert_eq!(detail(&lab, "a", "ipv", "mode").as_deref(), Some("l2"));
    assert!(reach(&lab, "a", "10.5.0.2"), "l2: slaves in two nodes reach each other");
    assert!(reach(&lab, "b", "10.5.0.100"), "l2: the outside is reachable");
    assert!(broadcast_arrives(&lab, "ext", "b"), "l2 passes broadcast");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);

    let lab = ipvlan_lab("l3");
    let a = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&a), "ipv").unwrap();
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "l3");
    let flags: Vec<String> = l["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    assert!(flags.contains(&"NOARP".to_string()), "l3 slaves do no ARP: {flags:?}");
    assert!(reach(&lab, "a", "10.5.0.2"), "l3: slaves in two nodes reach each other");
    assert!(!broadcast_arrives(&lab, "a", "b"), "l3: broadcast does not pass");
    let arp = lab.node("ext").command("arping").args(["-c", "2", "-w", "2", "-I", "eth0", "10.5.0.1"]).output();
    if let Ok(o) = arp {
        assert!(!o.status.success(), "l3: ARP for a slave's address gets no answer");
    }
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn stock_vlan_same_id_reaches_other_id_is_isolated() {
    require_root();
    require(&["vlan"]);
    // a, b, c hang off trunk bridge sw:br0; e has a VLAN directly on that bridge (another node).
    let lab = up(
        "vlan",
        r#"
name: vlan
nodes:
  sw:
    interfaces:
      br0: { kind: bridge }
      pa: { master: br0 }
      pb: { master: br0 }
      pc: { master: br0 }
      pq: { master: br0 }
  a: { interfaces: { eth0: {}, v10: { kind: vlan, link: eth0, id: 10, addresses: [10.10.0.1/24] } } }
  b: { interfaces: { eth0: {}, v10: { kind: vlan, link: eth0, id: 10, addresses: [10.10.0.2/24] } } }
  c: { interfaces: { eth0: {}, v20: { kind: vlan, link: eth0, id: 20, addresses: [10.10.0.3/24] } } }
  e: { interfaces: { v10: { kind: vlan, link: "sw:br0", id: 10, addresses: [10.10.0.254/24] } } }
  q: { interfaces: { eth0: {}, s100: { kind: vlan, link: eth0, id: 100, protocol: 802.1ad } } }
links:
  - endpoints: [sw:pa, a:eth0]
  - endpoints: [sw:pb, b:eth0]
  - endpoints: [sw:pc, c:eth0]
  - endpoints: [sw:pq, q:eth0]
"#,
    );
    let a = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&a), "v10").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "vlan");
    assert_eq!(l["linkinfo"]["info_data"]["id"], 10);
    assert_eq!(detail(&lab, "a", "v10", "id").as_deref(), Some("10"));
    let q = lab.node("q").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&q), "s100").unwrap()["linkinfo"]["info_data"]["protocol"], "802.1ad");
    assert!(reach(&lab, "a", "10.10.0.2"), "same VLAN id reaches across the trunk");
    assert!(reach(&lab, "b", "10.10.0.254"), "a VLAN on the bridge itself (from another node) is on the segment");
    assert!(!reach(&lab, "a", "10.10.0.3"), "VLAN 20 is isolated from VLAN 10");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn stock_dummy_holds_an_address_that_others_reach() {
    require_root();
    require(&["dummy"]);
    let lab = up(
        "dummy",
        r#"
name: dummy
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.8.0.1/24] }
      dummy0: { kind: dummy, addresses: [10.9.9.9/32] }
  b:
    interfaces:
      eth0: { addresses: [10.8.0.2/24] }
    routes: [{ to: 10.9.9.9/32, via: 10.8.0.1 }]
links: [{ endpoints: [a:eth0, b:eth0] }]
"#,
    );
    let a = lab.node("a").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&a), "dummy0").unwrap()["linkinfo"]["info_kind"], "dummy");
    assert_eq!(ip_addrs(Some(&a), "dummy0"), vec!["10.9.9.9/32"]);
    assert!(reach(&lab, "b", "10.9.9.9"));
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

/// The bonding / team lab: node a aggregates eth0 and eth1, both cabled to bridge sw:br0,
/// behind which sits node b.
fn lag_yaml(name: &str, master: &str) -> String {
    format!(
        r#"
name: {name}
nodes:
  a:
    interfaces:
      {master}
      eth0: {{}}
      eth1: {{}}
  sw:
    interfaces:
      br0: {{ kind: bridge }}
      p0: {{ master: br0 }}
      p1: {{ master: br0 }}
      pb: {{ master: br0 }}
  b: {{ interfaces: {{ eth0: {{ addresses: [10.6.0.2/24] }} }} }}
links:
  - endpoints: [a:eth0, sw:p0]
  - endpoints: [a:eth1, sw:p1]
  - endpoints: [b:eth0, sw:pb]
"#
    )
}

fn tx(ns: &str, dev: &str) -> u64 {
    ip_json(Some(ns), &["-s", "link", "show", dev])[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

/// Pings until it works again (failover takes a moment), at most `secs`.
fn reach_within(lab: &Lab, node: &str, addr: &str, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if reach(lab, node, addr) {
            return true;
        }
    }
    false
}

#[test]
fn stock_bond_active_backup_survives_the_active_port_going_down() {
    require_root();
    require(&["bond"]);
    let lab =
        up("bond", &lag_yaml("bond", "bond0: { kind: bond, mode: active-backup, miimon: 50, primary: eth0, ports: [eth0, eth1], addresses: [10.6.0.1/24] }"));
    let a = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&a), "bond0").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "bond");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "active-backup");
    assert_eq!(l["linkinfo"]["info_data"]["miimon"], 50);
    assert_eq!(ip_link(Some(&a), "eth0").unwrap()["master"], "bond0");
    assert_eq!(ip_link(Some(&a), "eth1").unwrap()["master"], "bond0");
    assert!(reach(&lab, "a", "10.6.0.2"));
    assert_eq!(detail(&lab, "a", "bond0", "active_port").as_deref(), Some("eth0"), "primary eth0 is active");
    assert_eq!(detail(&lab, "a", "bond0", "mode").as_deref(), Some("active-backup"));
    // Take the active port down: traffic goes on through eth1.
    assert!(lab.node("a").command("ip").args(["link", "set", "eth0", "down"]).status().unwrap().success());
    assert!(reach_within(&lab, "a", "10.6.0.2", 10), "traffic survives the active port going down");
    assert_eq!(detail(&lab, "a", "bond0", "active_port").as_deref(), Some("eth1"));
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn stock_team_activebackup_survives_the_active_port_going_down_and_down_stops_teamd() {
    require_root();
    require(&["team"]);
    assert!(std::process::Command::new("teamd").arg("--version").output().map(|o| o.status.success()).unwrap_or(false), "teamd is installed (scripts/setup)");
    let lab = up("team", &lag_yaml("team", "team0: { kind: team, runner: activebackup, ports: [eth0, eth1], addresses: [10.6.0.1/24] }"));
    let a = lab.node("a").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&a), "team0").unwrap()["linkinfo"]["info_kind"], "team");
    assert_eq!(ip_link(Some(&a), "eth0").unwrap()["master"], "team0");
    let pid: u32 = detail(&lab, "a", "team0", "teamd_pid").expect("status shows teamd").parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "teamd runs");
    assert!(reach_within(&lab, "a", "10.6.0.2", 10));
    // The active port is the one that transmits.
    let (t0, t1) = (tx(&a, "eth0"), tx(&a, "eth1"));
    assert!(reach(&lab, "a", "10.6.0.2"));
    let (d0, d1) = (tx(&a, "eth0") - t0, tx(&a, "eth1") - t1);
    let active = if d0 >= d1 { "eth0" } else { "eth1" };
    assert!(lab.node("a").command("ip").args(["link", "set", active, "down"]).status().unwrap().success());
    assert!(reach_within(&lab, "a", "10.6.0.2", 15), "traffic survives {active} going down");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
    let end = Instant::now() + Duration::from_secs(3);
    while vnet::apply::team::alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!vnet::apply::team::alive(pid), "down leaves no teamd running");
}

/// teamd learns a port's original address only by seeing the device before it is enslaved, and
/// without an address in its configuration it gives the team its first port's original address.
/// `up` creates and enslaves ports in quick succession: when teamd did not run in between (a
/// loaded machine), it failed on every port ("Port original hardware address has different
/// length (0)"), kept no port and the team dropped all traffic for good. Here teamd is held
/// stopped while the ports are created and enslaved, which makes that interleaving certain.
#[test]
fn stock_team_takes_ports_enslaved_before_teamd_saw_them() {
    require_root();
    require(&["team"]);
    let lab = up("teamlate", "name: teamlate\nnodes:\n  a: { interfaces: { team0: { kind: team, runner: activebackup } } }\n");
    let a = lab.node("a").netns().unwrap().to_string();
    let pid = detail(&lab, "a", "team0", "teamd_pid").expect("status shows teamd");
    // `up` waits for the runner's mode only; let teamd finish starting before holding it.
    let log = vnet::state::lab_dir(lab.name()).join("teamd/a.team0.log");
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("successfully started") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    kill("-STOP");
    for (port, peer) in [("u0", "p0"), ("u1", "p1")] {
        ip(&a, &["link", "add", port, "type", "veth", "peer", "name", peer]);
        ip(&a, &["link", "set", port, "master", "team0"]);
        ip(&a, &["link", "set", peer, "up"]);
    }
    kill("-CONT");
    let ports: Vec<String> = ["u0", "u1"].iter().map(|p| ip_link(Some(&a), p).unwrap()["ifindex"].to_string()).collect();
    let active = || {
        let out = lab.node("a").command("teamnl").args(["team0", "getoption", "activeport"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !ports.contains(&active()) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let why = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ports.contains(&active()), "teamd made a port active (activeport {}, ports {ports:?}); teamd's log:\n{why}", active());
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn stock_bridge_vlan_filtering_isolates_vlans_and_keeps_static_fdb() {
    require_root();
    require(&["bridge"]);
    let lab = up(
        "brvlan",
        r#"
name: brvlan
nodes:
  sw:
    interfaces:
      br0:
        kind: bridge
        vlan_filtering: true
        multicast_snooping: false
        vlans:
          pa: [{ vid: 10, pvid: true, untagged: true }]
          pb: [{ vid: 10, pvid: true, untagged: true }]
          pc: [{ vid: 20, pvid: true, untagged: true }]
        fdb:
          - { mac: "02:00:00:00:00:0b", port: pb, vlan: 10 }
      pa: { master: br0 }
      pb: { master: br0 }
      pc: { master: br0 }
  a: { interfaces: { eth0: { addresses: [10.7.0.1/24] } } }
  b: { interfaces: { eth0: { mac: "02:00:00:00:00:0b", addresses: [10.7.0.2/24] } } }
  c: { interfaces: { eth0: { addresses: [10.7.0.3/24] } } }
links:
  - endpoints: [sw:pa, a:eth0]
  - endpoints: [sw:pb, b:eth0]
  - endpoints: [sw:pc, c:eth0]
"#,
    );
    let sw = lab.node("sw").netns().unwrap().to_string();
    let br = ip_link(Some(&sw), "br0").unwrap();
    assert_eq!(br["linkinfo"]["info_data"]["vlan_filtering"], 1);
    assert_eq!(br["linkinfo"]["info_data"]["mcast_snooping"], 0);
    let out = std::process::Command::new("bridge").args(["-n", &sw, "-j", "vlan", "show"]).output().unwrap();
    let vlans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let of = |port: &str| -> Vec<u64> {
        vlans
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["ifname"] == port)
            .flat_map(|p| p["vlans"].as_array().unwrap().iter().map(|v| v["vlan"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(of("pa"), vec![10], "default VLAN 1 left, VLAN 10 added");
    assert_eq!(of("pc"), vec![20]);
    let out = std::process::Command::new("bridge").args(["-n", &sw, "-j", "fdb", "show", "dev", "pb"]).output().unwrap();
    let fdb: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(fdb.as_array().unwrap().iter().any(|e| e["mac"] == "02:00:00:00:00:0b" && e["vlan"] == 10 && e["state"] == "static"), "{fdb}");
    assert!(reach(&lab, "a", "10.7.0.2"), "same VLAN: reachable");
    assert!(!reach(&lab, "a", "10.7.0.3"), "other VLAN: isolated");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn stock_team_and_ipvlan_examples_come_up() {
    require_root();
    require(&["team", "ipvlan", "macvlan"]);
    let lab = Lab::from_file(repo("examples/bridge-team-veth.yaml")).unwrap();
    assert!(reach_within(&lab, "A", "10.20.0.254", 10), "A reaches upstream through br0 and team0");
    assert!(reach(&lab, "B", "10.20.0.10"));
    drop(lab);
    let lab = Lab::from_file(repo("examples/team-macvlan.yaml")).unwrap();
    assert!(reach_within(&lab, "A", "10.30.0.254", 10), "a macvlan on the team reaches upstream");
    assert!(reach(&lab, "A", "10.30.0.11"));
    drop(lab);
    let lab = Lab::from_file(repo("examples/ipvlan-l3.yaml")).unwrap();
    let blue = lab.node("blue").netns().unwrap().to_string();
    assert_eq!(ip_addrs(Some(&blue), "ipvl0"), vec!["10.1.1.1/24"]);
    assert!(reach(&lab, "blue", "10.1.1.2"));
}
