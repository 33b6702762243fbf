//! Stock-kernel lane: `doctor`'s vlan-mismatch needs bridge VLAN filtering, which this machine's
//! kernel lacks. Two hosts on one subnet behind ports with different untagged VLANs are found,
//! and the finding goes away (and traffic flows) once both ports share the VLAN.

mod common;

use std::process::Command;

use common::*;
use vnet::doctor;
use vnet::Lab;

fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bridge_ports_in_different_vlans_are_found() {
    require_root();
    require(&["bridge"]);
    // Devices made by hand: on Linux < 6.3 (Debian 12's 6.1) `up` cannot build bridges yet (it
    // learns new devices' indexes from NLM_F_ECHO, honoured for RTM_NEWLINK only since 6.3).
    let lab = Lab::builder("vlans").node("sw").node("h1").node("h2").up().unwrap();
    let sw = lab.node("sw").netns().unwrap().to_string();
    // Fails loudly where the kernel has no VLAN filtering: this test belongs to the stock lane.
    run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1"]);
    run("ip", &["-n", &sw, "link", "set", "br0", "up"]);
    for (i, (port, vid)) in [("p1", "10"), ("p2", "20")].into_iter().enumerate() {
        let h = lab.node(&format!("h{}", i + 1)).netns().unwrap().to_string();
        run("ip", &["-n", &sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &h]);
        run("ip", &["-n", &sw, "link", "set", port, "master", "br0", "up"]);
        run("ip", &["-n", &h, "addr", "add", &format!("10.7.0.{}/24", i + 1), "dev", "eth0"]);
        run("ip", &["-n", &h, "link", "set", "eth0", "up"]);
        run("bridge", &["-n", &sw, "vlan", "del", "dev", port, "vid", "1"]);
        run("bridge", &["-n", &sw, "vlan", "add", "dev", port, "vid", vid, "pvid", "untagged"]);
    }
    let f = doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    let x = f.iter().find(|x| x.code == "vlan-mismatch").unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!((x.node.as_str(), x.device.as_deref()), ("sw", Some("p2")));
    assert_eq!(
        x.message,
        "ports p1 (untagged VLAN 10) and p2 (untagged VLAN 20) of bridge br0 lead to hosts on one subnet 10.7.0.0/24: they never reach each other"
    );
    assert!(!ping(&lab, "h1", "10.7.0.2"));
    run("bridge", &["-n", &sw, "vlan", "add", "dev", "p2", "vid", "10", "pvid", "untagged"]);
    run("bridge", &["-n", &sw, "vlan", "del", "dev", "p2", "vid", "20"]);
    let f = doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    assert!(f.iter().all(|x| x.code != "vlan-mismatch"), "{f:#?}");
    // Under emulation the first answer may take a while: a few tries.
    let ok = (0..5).any(|_| ping(&lab, "h1", "10.7.0.2"));
    let vlans = Command::new("bridge").args(["-n", &sw, "vlan", "show"]).output().unwrap();
    assert!(ok, "same VLAN, reachable; bridge vlan show:\n{}", String::from_utf8_lossy(&vlans.stdout));
}
