//! Stock-kernel lane (runs only in the VM, see scripts/test-vm): the foundation's labs on
//! Debian's stock kernel, which is older than this machine's and built with other options.

mod common;

use std::process::Command;

use common::*;
use vnet::Lab;

#[test]
fn bridge_tutorial_comes_up_with_traffic_on_the_stock_kernel() {
    require_root();
    require(&["veth", "bridge"]);
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let name = lab.name().to_string();
    let host = lab.node("host").netns().unwrap().to_string();
    let br = ip_link(Some(&host), "br1").expect("br1 exists");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert_eq!(ip_link(Some(&host), "veth2").unwrap()["master"], "br1");
    assert_eq!(ip_addrs(Some(lab.node("ns2").netns().unwrap()), "eth0"), vec!["192.168.1.12/24"]);
    assert!(ping(&lab, "ns1", "192.168.1.12"), "ns1 reaches ns2 through the bridge");
    assert!(ping(&lab, "ns2", "192.168.1.10"), "ns2 reaches the bridge's address");
    drop(lab);
    assert_gone(&name);
}

#[test]
fn cli_up_exec_down_on_the_stock_kernel() {
    require_root();
    let file = temp_topology(
        "stockcli",
        "yaml",
        &std::fs::read_to_string(repo("examples/two-ns.yaml")).unwrap().replace("name: two-ns", &format!("name: stockcli-{}", std::process::id())),
    );
    let lab = format!("stockcli-{}", std::process::id());
    let up = Command::new(vnet_bin()).args(["up", file.to_str().unwrap(), "--isolated-host"]).output().unwrap();
    assert!(up.status.success(), "vnet up: {}", String::from_utf8_lossy(&up.stderr));
    let ping6 = Command::new(vnet_bin()).args(["exec", &lab, "a", "--", "ping", "-c1", "-W2", "fd00::2"]).output().unwrap();
    let ping4 = Command::new(vnet_bin()).args(["exec", &lab, "b", "--", "ping", "-c1", "-W2", "10.0.0.1"]).output().unwrap();
    let down = Command::new(vnet_bin()).args(["down", &lab]).output().unwrap();
    assert!(ping6.status.success(), "IPv6 a -> b: {}", String::from_utf8_lossy(&ping6.stdout));
    assert!(ping4.status.success(), "IPv4 b -> a: {}", String::from_utf8_lossy(&ping4.stdout));
    assert!(down.status.success(), "vnet down: {}", String::from_utf8_lossy(&down.stderr));
    assert_gone(&lab);
}
