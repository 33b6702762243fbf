//! Stock-kernel lane (runs only in the VM, see scripts/test-vm): Open vSwitch on the kernel
//! datapath, which Debian's kernel has (the openvswitch module) and this machine's lacks.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vnet::model::{self, Format, Topology};
use vnet::Lab;

const PAIR: &str = "name: ovs-stock
nodes:
  sw:
    interfaces:
      ovs0:
        kind: ovs-bridge
        ports:
          pa: { tag: 10 }
          pb: { tag: 10 }
          pc: { tag: 20 }
FLOWS
      pa: { master: ovs0 }
      pb: { master: ovs0 }
      pc: { master: ovs0 }
  a:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
  b:
    interfaces:
      eth0: { addresses: [10.0.0.2/24] }
  c:
    interfaces:
      eth0: { addresses: [10.0.0.3/24] }
links:
  - endpoints: [a:eth0, sw:pa]
  - endpoints: [b:eth0, sw:pb]
  - endpoints: [c:eth0, sw:pc]
";

const DROP: &str = "        flows:\n          - priority=100,in_port=pa,actions=drop";

fn topology(text: &str) -> Topology {
    model::load_str("t.yaml", text, Format::Yaml).unwrap_or_else(|d| panic!("{d}")).lab.topology
}

/// Open vSwitch 3.1 (Debian 12) counts CPU cores through a cache stamped with the monotonic
/// clock since boot and first refreshed 10 s after boot: before that it sees 0 cores, starts no
/// upcall handler for the kernel datapath's per-CPU dispatch, and every upcall of a datapath
/// made then is lost for good (`ovs-appctl dpctl/show`: `lost`). The VM runs its tests right
/// after booting, so OVS labs wait until the guest has been up long enough.
fn after_ovs_cpu_count_settles() {
    let uptime = || std::fs::read_to_string("/proc/uptime").ok().and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0);
    while uptime() < 11.0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn daemons(lab: &str) -> Vec<PathBuf> {
    vnet::ovs::daemon::all_under(Path::new("/run/vnet")).into_iter().map(|(_, _, d)| d).filter(|d| d.starts_with(format!("/run/vnet/{lab}/"))).collect()
}

#[test]
fn ovs_bridges_use_the_kernel_datapath_where_the_module_is() {
    require_root();
    require(&["veth", "openvswitch"]);
    after_ovs_cpu_count_settles();
    let with_drop = PAIR.replace("FLOWS\n", &format!("{DROP}\n"));
    let without = PAIR.replace("FLOWS\n", "");
    let f = temp_topology("ovs-stock", "yaml", &without);
    let mut lab = Lab::from_file(&f).unwrap();
    let name = lab.name().to_string();
    let dir = Path::new("/run/vnet").join(&name).join("ovs/sw");
    let sw = lab.node("sw").netns().unwrap().to_string();

    // Chosen automatically: the kernel datapath, whose device lives in node sw.
    assert_eq!(vsctl(&dir, &["get", "Bridge", "ovs0", "datapath_type"]), "system");
    let dp = ip_link(Some(&sw), "ovs-system").expect("the kernel datapath's device is in node sw");
    assert_eq!(dp["linkinfo"]["info_kind"], "openvswitch");
    assert_eq!(ip_link(Some(&sw), "pa").unwrap()["master"], "ovs-system", "ports are datapath ports");
    assert_eq!(ip_link(Some(&sw), "ovs0").unwrap()["linkinfo"]["info_kind"], "openvswitch");

    // VLANs isolate, and the same file again changes nothing.
    assert!(reach_retrying(&lab, "a", "10.0.0.2"), "same VLAN");
    assert!(!ping(&lab, "a", "10.0.0.3"), "VLAN 10 does not reach VLAN 20");
    let r = lab.update(topology(&without)).unwrap();
    assert!(r.plan.is_empty(), "{}", r.plan);

    // A drop flow (a lab update) stops a's traffic; removing it restores it.
    let r = lab.update(topology(&with_drop)).unwrap();
    assert_eq!(r.plan.len(), 1, "{}", r.plan);
    assert!(!ping(&lab, "a", "10.0.0.2"));
    let r = lab.update(topology(&without)).unwrap();
    assert_eq!(r.plan.len(), 1, "{}", r.plan);
    assert!(reach_retrying(&lab, "a", "10.0.0.2"));

    assert_eq!(daemons(&name).len(), 2);
    let report = lab.down().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(daemons(&name).is_empty(), "the lab's daemons stopped");
    assert_nothing_left(&name, None);
}

#[test]
fn a_private_ovs_in_the_root_namespace_leaves_no_datapath_behind() {
    require_root();
    require(&["veth", "openvswitch"]);
    after_ovs_cpu_count_settles();
    // A scratch namespace plays the machine's root namespace, which runs no Open vSwitch: the
    // lab's private one runs there, and its kernel datapath and devices must go at `down`.
    let root = Scratch::new("ovs-root");
    let lab = vnet::lab::unique_name("ovs-root");
    let text = format!(
        "name: {lab}
nodes:
  host:
    interfaces:
      ovs0: {{ kind: ovs-bridge, addresses: [10.0.0.254/24] }}
      ha: {{ master: ovs0 }}
      m0: {{ kind: ovs-internal, master: ovs0 }}
  a:
    interfaces:
      eth0: {{ addresses: [10.0.0.1/24] }}
links:
  - endpoints: [a:eth0, host:ha]
"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, Some(&root));
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    assert!(ip_link(Some(&root.name), "ovs-system").is_some(), "the kernel datapath is in the root");
    let reached = (0..8).any(|_| {
        let ok = Command::new("ip").args(["netns", "exec", &format!("{lab}-a"), "ping", "-c1", "-W1", "10.0.0.254"]).status().unwrap().success();
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        ok
    });
    assert!(reached, "a reaches the bridge's address in the root");
    let out = vnet(Some(&root.name), &["down", &lab]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    for dev in ["ovs-system", "ovs0", "m0", "ha"] {
        assert!(ip_link(Some(&root.name), dev).is_none(), "{dev} left in the root namespace");
    }
    assert!(daemons(&lab).is_empty());
    assert_nothing_left(&lab, Some(&root.name));
}
