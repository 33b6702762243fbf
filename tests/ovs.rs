//! Open vSwitch labs on this machine (no openvswitch kernel module: the userspace datapath),
//! each with the lab's private ovsdb-server and ovs-vswitchd. Checked through vnet's OVSDB
//! client, independently through ovs-vsctl/ovs-ofctl and `ip -j`, and with real traffic.

mod common;
#[path = "common/preflight_oracle.rs"]
mod oracle;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vnet::lab::unique_name;
use vnet::model::{self, Format, Topology};
use vnet::ovs::{daemon, vswitch, Target};
use vnet::plan::Op;
use vnet::Lab;

/// Two nodes on an OVS bridge in node `sw` (ports pa, pb), plus what `extra` adds to the
/// bridge (indented under `ovs0:`), and more YAML for nodes/links.
fn pair(ovs0: &str, more_nodes: &str, more_links: &str) -> String {
    format!(
        "name: ovs-pair
nodes:
  sw:
    interfaces:
      ovs0:
        kind: ovs-bridge
{ovs0}
      pa: {{ master: ovs0 }}
      pb: {{ master: ovs0 }}
  a:
    interfaces:
      eth0: {{ addresses: [10.0.0.1/24] }}
  b:
    interfaces:
      eth0: {{ addresses: [10.0.0.2/24] }}
{more_nodes}
links:
  - endpoints: [a:eth0, sw:pa]
  - endpoints: [b:eth0, sw:pb]
{more_links}"
    )
}

fn up(name: &str, text: &str) -> Lab {
    require_root();
    let f = temp_topology(name, "yaml", text);
    Lab::from_file(&f).unwrap_or_else(|e| panic!("{e}"))
}

fn topology(text: &str) -> Topology {
    model::load_str("t.yaml", text, Format::Yaml).unwrap_or_else(|d| panic!("{d}")).lab.topology
}

fn ovs_dir(lab: &Lab, node: &str) -> PathBuf {
    Path::new("/run/vnet").join(lab.name()).join("ovs").join(node)
}

/// The flows of a bridge as ovs-ofctl dumps them.
fn dump_flows(dir: &Path, bridge: &str) -> String {
    let out = Command::new("ovs-ofctl").args(["--no-stats", "dump-flows"]).arg(format!("unix:{}/{bridge}.mgmt", dir.display())).output().unwrap();
    assert!(out.status.success(), "ovs-ofctl dump-flows: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// OVS processes whose command line names `needle` (read from /proc, not through vnet).
fn ovs_processes(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).to_string();
        if (comm.trim() == "ovsdb-server" || comm.trim() == "ovs-vswitchd") && cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn ovs_ops(plan: &vnet::plan::Plan) -> Vec<String> {
    plan.ops().filter(|o| matches!(o, Op::Ovs { .. })).map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn two_nodes_on_an_ovs_bridge_reach_each_other_and_a_second_up_changes_nothing() {
    let text = pair("", "", "");
    let mut lab = up("ovs-reach", &text);
    let dir = ovs_dir(&lab, "sw");
    let sw = lab.node("sw").netns().unwrap().to_string();

    // Independently: ovs-vsctl sees the bridge, its ports, the mark and the userspace datapath.
    assert_eq!(vsctl(&dir, &["list-br"]), "ovs0");
    let mut ports: Vec<String> = vsctl(&dir, &["list-ports", "ovs0"]).lines().map(str::to_string).collect();
    ports.sort();
    assert_eq!(ports, ["pa", "pb"]);
    assert_eq!(vsctl(&dir, &["get", "Bridge", "ovs0", "datapath_type"]), "netdev");
    for (table, row) in [("Bridge", "ovs0"), ("Port", "pa"), ("Interface", "pb"), ("Port", "ovs0")] {
        assert_eq!(vsctl(&dir, &["get", table, row, "external_ids:vnet-lab"]).trim_matches('"'), lab.name(), "{table} {row}");
    }
    // The daemons run inside node sw (ovs-vswitchd opens the ports there).
    let pids = ovs_processes(&format!("/run/vnet/{}/", lab.name()));
    assert_eq!(pids.len(), 2, "ovsdb-server and ovs-vswitchd: {pids:?}");
    let sw_ns = std::fs::read_link(format!("/run/netns/{sw}")).ok();
    let ino = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    for pid in &pids {
        assert_eq!(ino(&format!("/proc/{pid}/ns/net")), ino(&format!("/run/netns/{sw}")), "pid {pid} runs in node sw ({sw_ns:?})");
    }
    // The bridge's own interface is a device of node sw, up.
    let br = ip_link(Some(&sw), "ovs0").expect("ovs0 exists in node sw");
    assert!(br["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{br}");

    // Through vnet's client.
    let mut c = Target::new(&dir).connect().unwrap();
    let bridges = vswitch::snapshot(&mut c).unwrap();
    assert_eq!(bridges.len(), 1);
    assert_eq!(bridges[0].lab.as_deref(), Some(lab.name()));
    assert!(bridges[0].ports.iter().all(|p| p.lab.as_deref() == Some(lab.name())));

    assert!(ping(&lab, "a", "10.0.0.2"));
    assert!(ping(&lab, "b", "10.0.0.1"));
    // doctor has nothing to say: OVS's ports are its own, not kernel bridge ports, and the
    // path walk crosses the OVS bridge as a switch.
    let report = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap();
    assert_eq!(report.findings, vec![], "{}", vnet::doctor::render(&report));
    let out = std::process::Command::new(vnet_bin()).args(["trace", lab.name(), "a", "10.0.0.2"]).output().unwrap();
    let walk = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{walk}{}", String::from_utf8_lossy(&out.stderr));
    assert!(walk.contains("sw: bridge ovs0 forwards") && walk.contains("out of pb (Open vSwitch as a learning switch; its flows are not followed)"), "{walk}");

    // A second `up` of the same file plans nothing.
    let r = lab.update(topology(&text)).unwrap();
    assert!(r.plan.is_empty(), "second up: {}", r.plan);
    assert_eq!(ovs_processes(&format!("/run/vnet/{}/", lab.name())), pids, "the same daemons keep running");
}

#[test]
fn a_declared_drop_flow_stops_traffic_and_removing_it_restores_it() {
    let with_flow = pair("        flows:\n          - priority=100,in_port=pa,actions=drop", "", "");
    let without = pair("", "", "");
    let mut lab = up("ovs-flow", &with_flow);
    let dir = ovs_dir(&lab, "sw");
    let flows = dump_flows(&dir, "ovs0");
    let ours: Vec<&str> = flows.lines().filter(|l| l.contains("actions=drop")).collect();
    assert_eq!(ours.len(), 1, "{flows}");
    let tag = format!("cookie=0x{:08x}", vnet::plan::ovs::lab_cookie_tag(lab.name()));
    assert!(ours[0].contains(&tag) && ours[0].contains("priority=100") && ours[0].contains("in_port"), "{flows}");
    assert!(!ping(&lab, "a", "10.0.0.2"), "the drop flow stops a's traffic");

    // Removing the flow (a lab update) applies only that.
    let r = lab.update(topology(&without)).unwrap();
    assert_eq!(r.plan.len(), 1, "{}", r.plan);
    assert!(ovs_ops(&r.plan)[0].starts_with("~ ovs sw: flows ovs0 -0x"), "{}", r.plan);
    assert!(!dump_flows(&dir, "ovs0").contains("actions=drop"));
    assert!(reach_retrying(&lab, "a", "10.0.0.2"), "traffic flows again");

    // And adding it back, only that again.
    let r = lab.update(topology(&with_flow)).unwrap();
    assert_eq!(ovs_ops(&r.plan), ["~ ovs sw: flows ovs0 +[table=0,priority=100,in_port=pa,actions=drop]"], "{}", r.plan);
    assert_eq!(r.plan.len(), 1);
    assert!(!ping(&lab, "a", "10.0.0.2"));
}

#[test]
fn ports_with_different_vlan_tags_are_isolated() {
    let text = pair(
        "        ports:\n          pa: { tag: 10 }\n          pb: { tag: 10 }\n          pc: { tag: 20 }",
        "  c:\n    interfaces:\n      eth0: { addresses: [10.0.0.3/24] }",
        "  - endpoints: [c:eth0, sw:pc]",
    );
    let lab = up("ovs-vlan", &text);
    let dir = ovs_dir(&lab, "sw");
    assert_eq!(vsctl(&dir, &["get", "Port", "pa", "tag"]), "10");
    assert_eq!(vsctl(&dir, &["get", "Port", "pc", "tag"]), "20");
    assert!(ping(&lab, "a", "10.0.0.2"), "same VLAN");
    assert!(!ping(&lab, "a", "10.0.0.3"), "VLAN 10 does not reach VLAN 20");
    assert!(!ping(&lab, "c", "10.0.0.2"), "VLAN 20 does not reach VLAN 10");
}

#[test]
fn a_port_added_or_removed_on_a_running_lab_is_all_that_changes() {
    let two = pair("", "", "");
    let three = pair("", "  c:\n    interfaces:\n      eth0: { addresses: [10.0.0.3/24] }", "  - endpoints: [c:eth0, sw:pc]");
    let three = three.replace("      pb: { master: ovs0 }\n", "      pb: { master: ovs0 }\n      pc: { master: ovs0 }\n");
    let mut lab = up("ovs-port", &two);
    let dir = ovs_dir(&lab, "sw");
    let pids = ovs_processes(&format!("/run/vnet/{}/", lab.name()));
    let r = lab.update(topology(&three)).unwrap();
    assert_eq!(ovs_ops(&r.plan), ["~ ovs sw: port ovs0 [pc]"], "{}", r.plan);
    assert!(reach_retrying(&lab, "c", "10.0.0.1"));
    let r = lab.update(topology(&two)).unwrap();
    assert!(ovs_ops(&r.plan).contains(&"~ ovs sw: del port ovs0 pc".to_string()), "{}", r.plan);
    let mut ports: Vec<String> = vsctl(&dir, &["list-ports", "ovs0"]).lines().map(str::to_string).collect();
    ports.sort();
    assert_eq!(ports, ["pa", "pb"]);
    assert_eq!(ovs_processes(&format!("/run/vnet/{}/", lab.name())), pids, "the daemons were not restarted");
    assert!(ping(&lab, "a", "10.0.0.2"));
}

#[test]
fn the_bridge_interface_and_an_internal_port_carry_addresses() {
    // ovs0's own interface in 10.0.0.0/24 (with an MTU); an internal port on VLAN 30 with a
    // second subnet, reached by node b through an access port of the same VLAN.
    let text = pair("        addresses: [10.0.0.254/24]\n        mtu: 1400\n        ports:\n          pb: { tag: 30 }\n          mgmt0: { tag: 30 }", "", "")
        .replace("      pb: { master: ovs0 }\n", "      pb: { master: ovs0 }\n      mgmt0: { kind: ovs-internal, master: ovs0, addresses: [10.30.0.1/24] }\n")
        .replace("eth0: { addresses: [10.0.0.2/24] }", "eth0: { addresses: [10.30.0.2/24] }");
    let mut lab = up("ovs-internal", &text);
    let sw = lab.node("sw").netns().unwrap().to_string();
    assert_eq!(ip_addrs(Some(&sw), "ovs0"), vec!["10.0.0.254/24"]);
    assert_eq!(ip_addrs(Some(&sw), "mgmt0"), vec!["10.30.0.1/24"]);
    assert_eq!(ip_link(Some(&sw), "ovs0").unwrap()["mtu"], 1400, "mtu_request reached the device");
    let dir = ovs_dir(&lab, "sw");
    assert_eq!(vsctl(&dir, &["get", "Interface", "mgmt0", "type"]), "internal");
    assert!(ping(&lab, "a", "10.0.0.254"), "a reaches the bridge's own interface");
    assert!(ping(&lab, "b", "10.30.0.1"), "b reaches the internal port on its VLAN");
    let r = lab.update(topology(&text)).unwrap();
    assert!(r.plan.is_empty(), "devices made by OVS are recognised as the lab's: {}", r.plan);
}

#[test]
fn down_leaves_no_ovs_bridge_port_flow_or_daemon() {
    let lab = up("ovs-down", &pair("        flows:\n          - priority=5,arp,actions=normal", "", ""));
    let name = lab.name().to_string();
    let sw = lab.node("sw").netns().unwrap().to_string();
    let needle = format!("/run/vnet/{name}/");
    let pids = ovs_processes(&needle);
    assert_eq!(pids.len(), 2);
    let report = lab.down().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(ovs_processes(&needle).is_empty(), "no daemon of the lab is left");
    for pid in pids {
        assert!(!daemon::alive(pid), "pid {pid} is gone");
    }
    assert!(!Path::new(&format!("/run/netns/{sw}")).exists());
    assert_nothing_left(&name, None);
}

#[test]
fn a_flow_ovs_refuses_rolls_back_everything_and_stops_the_daemons() {
    require_root();
    // Passes vnet's syntax check (values are ovs-ofctl's to judge), refused by ovs-ofctl.
    let lab = unique_name("ovs-refused");
    let text = pair("        flows:\n          - in_port=pa,actions=mod_vlan_vid:5000", "", "").replace("name: ovs-pair", &format!("name: {lab}"));
    let f = temp_topology(&lab, "yaml", &text);
    let opts = vnet::lab::LabOptions { unique_name: false, isolated_host: true };
    let err = match Lab::from_file_with(&f, opts) {
        Ok(l) => panic!("lab {} came up", l.name()),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("ovs-ofctl") && err.contains("5000"), "{err}");
    assert!(err.contains("everything this run created was removed again"), "{err}");
    assert!(ovs_processes(&format!("/run/vnet/{lab}/")).is_empty(), "the lab's daemons were stopped");
    assert_nothing_left(&lab, None);
}

/// An Open vSwitch started by the test in a scratch namespace, standing in for the machine's.
struct TestOvs {
    dir: PathBuf,
}

impl TestOvs {
    fn start(scratch: &Scratch) -> TestOvs {
        let dir = std::env::temp_dir().join(format!("vnet-test-ovs-{}-{}", std::process::id(), scratch.name));
        daemon::start(&dir, Some(&scratch.name), "scratch").unwrap();
        TestOvs { dir }
    }
}

impl Drop for TestOvs {
    fn drop(&mut self) {
        let _ = daemon::stop(&self.dir, &Default::default());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_shared_ovs_is_used_and_down_leaves_what_others_made() {
    require_root();
    let root = Scratch::new("ovs-root");
    let sys = TestOvs::start(&root);
    // Someone else's bridge, port and flow in the same Open vSwitch.
    root.ip(&["link", "add", "fport", "type", "veth", "peer", "name", "fpeer"]);
    let mut c = Target::new(&sys.dir).connect().unwrap();
    // Written through vnet's OVSDB client, without any lab's mark.
    let ops = vec![
        serde_json::json!({"op": "insert", "table": "Interface", "row": {"name": "fbr0", "type": "internal"}, "uuid-name": "i0"}),
        serde_json::json!({"op": "insert", "table": "Port", "row": {"name": "fbr0", "interfaces": ["named-uuid", "i0"]}, "uuid-name": "p0"}),
        serde_json::json!({"op": "insert", "table": "Interface", "row": {"name": "fport"}, "uuid-name": "i1"}),
        serde_json::json!({"op": "insert", "table": "Port", "row": {"name": "fport", "interfaces": ["named-uuid", "i1"]}, "uuid-name": "p1"}),
        serde_json::json!({"op": "insert", "table": "Bridge", "row": {"name": "fbr0", "datapath_type": "netdev", "ports": ["set", [["named-uuid", "p0"], ["named-uuid", "p1"]]]}, "uuid-name": "b"}),
        serde_json::json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}),
    ];
    vswitch::commit_and_wait(&mut c, ops).unwrap();
    let sysdir = sys.dir.display().to_string();
    let ofctl = |args: &[&str]| {
        let out = Command::new("ovs-ofctl").args(args).output().unwrap();
        assert!(out.status.success(), "ovs-ofctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let fmgmt = format!("unix:{sysdir}/fbr0.mgmt");
    ofctl(&["add-flow", &fmgmt, "cookie=0x77,priority=9,in_port=fport,actions=drop"]);

    // A lab whose `host` is the scratch namespace (non-isolated), with an OVS bridge there.
    let lab = unique_name("ovs-shared");
    let text = format!(
        "name: {lab}
nodes:
  host:
    interfaces:
      ovs0:
        kind: ovs-bridge
        flows: [\"priority=7,in_port=ha,actions=normal\"]
      ha: {{ master: ovs0 }}
      hb: {{ master: ovs0 }}
  a:
    interfaces:
      eth0: {{ addresses: [10.0.0.1/24] }}
  b:
    interfaces:
      eth0: {{ addresses: [10.0.0.2/24] }}
links:
  - endpoints: [a:eth0, host:ha]
  - endpoints: [b:eth0, host:hb]
"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, Some(&root));
    let run = |args: &[&str]| {
        let mut cmd = vnet_cmd(Some(&root.name), args);
        cmd.env("OVS_RUNDIR", &sys.dir);
        cmd.output().unwrap()
    };
    let out = run(&["up", file.to_str().unwrap()]);
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    // vnet used the running Open vSwitch: no private one for the lab.
    assert!(ovs_processes(&format!("/run/vnet/{lab}/")).is_empty(), "no private Open vSwitch");
    assert!(!Path::new(&format!("/run/vnet/{lab}/ovs")).exists());
    let mut brs: Vec<String> = vsctl(&sys.dir, &["list-br"]).lines().map(str::to_string).collect();
    brs.sort();
    assert_eq!(brs, ["fbr0", "ovs0"]);
    assert_eq!(vsctl(&sys.dir, &["get", "Bridge", "ovs0", "external_ids:vnet-lab"]).trim_matches('"'), lab);
    let ping_ok = Command::new("ip").args(["netns", "exec", &format!("{lab}-a"), "ping", "-c1", "-W2", "10.0.0.2"]).output().unwrap().status.success();
    assert!(ping_ok, "a reaches b through the shared Open vSwitch");
    let out = run(&["plan", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stdout));

    let out = run(&["down", &lab]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(vsctl(&sys.dir, &["list-br"]), "fbr0", "the lab's bridge is gone, the other one stays");
    let mut fports: Vec<String> = vsctl(&sys.dir, &["list-ports", "fbr0"]).lines().map(str::to_string).collect();
    fports.sort();
    assert_eq!(fports, ["fport"]);
    assert!(vsctl(&sys.dir, &["--columns=name", "find", "Port", &format!("external_ids:vnet-lab={lab}")]).is_empty());
    let flows = ofctl(&["--no-stats", "dump-flows", &fmgmt]);
    assert!(flows.contains("cookie=0x77") && flows.contains("actions=drop"), "the foreign flow stays: {flows}");
    assert_eq!(daemon::running(&sys.dir).len(), 2, "the shared Open vSwitch keeps running");
    assert!(ip_link(Some(&root.name), "ovs0").is_none(), "the lab bridge's device went with it");
    assert!(ip_link(Some(&root.name), "fbr0").is_some(), "the other bridge's device stays");
    assert_nothing_left(&lab, Some(&root.name));
}

#[test]
fn gc_stops_the_daemons_of_a_lab_whose_record_is_lost() {
    require_root();
    let lab = unique_name("ovs-gc");
    let text = pair("", "", "").replace("name: ovs-pair", &format!("name: {lab}"));
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap()]);
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    let needle = format!("/run/vnet/{lab}/");
    assert_eq!(ovs_processes(&needle).len(), 2);
    // The record (and the lab's directory) vanish, as after a crash that lost /run/vnet/LAB.
    std::fs::remove_dir_all(format!("/run/vnet/{lab}")).unwrap();
    let out = vnet(None, &["gc", "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("ovs-vswitchd") && said.contains(&lab), "{said}");
    assert_eq!(ovs_processes(&needle).len(), 2, "a dry run changes nothing");
    let out = vnet(None, &["gc"]);
    assert!(out.status.success() || !String::from_utf8_lossy(&out.stderr).contains(&lab), "gc: {}", String::from_utf8_lossy(&out.stderr));
    assert!(ovs_processes(&needle).is_empty(), "gc stopped them");
    assert_nothing_left(&lab, None);
}

#[test]
fn the_seed_example_drops_what_openflow_port_1_sends() {
    require_root();
    let lab = Lab::from_file(repo("examples/ovs.yaml")).unwrap();
    let dir = ovs_dir(&lab, "sw");
    assert_eq!(vsctl(&dir, &["get", "Interface", "em1", "ofport"]), "1", "em1 asked for port 1");
    let flows = dump_flows(&dir, "ovs0");
    assert!(flows.lines().any(|l| l.contains("in_port=1") && l.contains("actions=drop")), "{flows}");
    assert!(!ping(&lab, "a", "10.0.0.2"), "a sends through port 1: dropped");
}

#[test]
fn a_declared_kernel_datapath_needs_the_openvswitch_module() {
    require_root();
    let has = oracle::iproute2_verdicts().into_iter().find(|(n, _)| n == "openvswitch").map(|(_, ok)| ok).unwrap();
    let lab = unique_name("ovs-system");
    let text = pair("        datapath: system", "", "").replace("name: ovs-pair", &format!("name: {lab}"));
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if has {
        assert!(out.status.success(), "{stderr}");
        assert_eq!(vsctl(&Path::new("/run/vnet").join(&lab).join("ovs/sw"), &["get", "Bridge", "ovs0", "datapath_type"]), "system");
    } else {
        assert_eq!(out.status.code(), Some(3), "refused as a missing kernel feature: {stderr}");
        assert!(stderr.contains("this kernel lacks openvswitch (CONFIG_OPENVSWITCH); the lab needs it for node sw, OVS bridge ovs0"), "{stderr}");
        assert!(ovs_processes(&format!("/run/vnet/{lab}/")).is_empty(), "nothing was started");
        assert_nothing_left(&lab, None);
    }
}

#[test]
fn gc_takes_the_rows_of_a_lost_lab_out_of_a_shared_ovs_and_leaves_the_rest() {
    require_root();
    let root = Scratch::new("ovs-gcroot");
    let sys = TestOvs::start(&root);
    let lab = unique_name("ovs-gcsys");
    let text = format!(
        "name: {lab}
nodes:
  host:
    interfaces:
      ovs0: {{ kind: ovs-bridge, flows: [\"priority=3,actions=normal\"] }}
      ha: {{ master: ovs0 }}
  a:
    interfaces:
      eth0: {{ addresses: [10.0.0.1/24] }}
links:
  - endpoints: [a:eth0, host:ha]
"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, Some(&root));
    let run = |args: &[&str]| {
        let mut cmd = vnet_cmd(Some(&root.name), args);
        cmd.env("OVS_RUNDIR", &sys.dir);
        cmd.output().unwrap()
    };
    // Someone else's bridge beside the lab's.
    let mut c = Target::new(&sys.dir).connect().unwrap();
    let ops = vec![
        serde_json::json!({"op": "insert", "table": "Interface", "row": {"name": "other0", "type": "internal"}, "uuid-name": "i"}),
        serde_json::json!({"op": "insert", "table": "Port", "row": {"name": "other0", "interfaces": ["named-uuid", "i"]}, "uuid-name": "p"}),
        serde_json::json!({"op": "insert", "table": "Bridge", "row": {"name": "other0", "datapath_type": "netdev", "ports": ["named-uuid", "p"]}, "uuid-name": "b"}),
        serde_json::json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}),
    ];
    vswitch::commit_and_wait(&mut c, ops).unwrap();
    let out = run(&["up", file.to_str().unwrap()]);
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    let mut brs: Vec<String> = vsctl(&sys.dir, &["list-br"]).lines().map(str::to_string).collect();
    brs.sort();
    assert_eq!(brs, ["other0", "ovs0"]);
    // The lab's record is lost; its namespaces and marked devices remain, and its OVS rows.
    std::fs::remove_dir_all(format!("/run/vnet/{lab}")).unwrap();
    let out = run(&["gc", "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains(&format!("Open vSwitch rows of lab {lab}")), "{said}");
    assert_eq!(vsctl(&sys.dir, &["list-br"]).lines().count(), 2, "a dry run changes nothing");
    let out = run(&["gc"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&lab), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(vsctl(&sys.dir, &["list-br"]), "other0", "only the lost lab's bridge went");
    assert_eq!(daemon::running(&sys.dir).len(), 2, "the shared Open vSwitch keeps running");
    assert_nothing_left(&lab, Some(&root.name));
}

#[test]
fn ovsdb_transactions_are_atomic_and_a_taken_name_is_refused() {
    require_root();
    let root = Scratch::new("ovs-txn");
    let sys = TestOvs::start(&root);
    let mut c = Target::new(&sys.dir).connect().unwrap();
    assert!(c.list_dbs().unwrap().contains(&"Open_vSwitch".to_string()));
    let row = |name: &str, port: &str| vnet::plan::ovs::BridgeRow {
        name: name.into(),
        datapath: "netdev".into(),
        fail_mode: Some("secure".into()),
        controller: Some("ptcp:16653:127.0.0.1".into()),
        local: vnet::plan::ovs::PortRow { name: name.into(), internal: true, ..Default::default() },
        ports: vec![vnet::plan::ovs::PortRow { name: port.into(), internal: true, tag: Some(7), ..Default::default() }],
    };
    let add = vnet::plan::ovs::OvsOp::AddBridge { bridge: row("tx0", "txp0") };
    vswitch::apply(&mut c, "labx", &[&add]).unwrap();
    let b = vswitch::snapshot(&mut c).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].name.as_str(), b[0].lab.as_deref(), b[0].fail_mode.as_deref()), ("tx0", Some("labx"), Some("secure")));
    assert_eq!(b[0].controllers, ["ptcp:16653:127.0.0.1"]);
    let p = b[0].port("txp0").unwrap();
    assert_eq!((p.tag, p.lab.as_deref(), p.interfaces[0].kind.as_str()), (Some(7), Some("labx"), "internal"));
    assert_eq!(vsctl(&sys.dir, &["get", "Port", "txp0", "tag"]), "7");

    // The same bridge name again: the guard refuses the whole transaction; none of its rows
    // (the second port) is left behind.
    let again = vnet::plan::ovs::OvsOp::AddBridge { bridge: row("tx0", "txp1") };
    let err = vswitch::apply(&mut c, "labx", &[&again]).unwrap_err().to_string();
    assert!(err.contains("wait") && err.contains("timed out"), "{err}");
    assert!(vsctl(&sys.dir, &["--columns=name", "find", "Interface", "name=txp1"]).is_empty(), "nothing of the refused transaction");

    // Removal takes exactly the lab's rows.
    assert_eq!(vswitch::remove_lab(&mut c, "other-lab").unwrap(), Vec::<String>::new());
    assert_eq!(vswitch::remove_lab(&mut c, "labx").unwrap(), ["tx0"]);
    assert!(vswitch::snapshot(&mut c).unwrap().is_empty());
}
