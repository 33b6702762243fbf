//! `vnet doctor` on labs broken on purpose, one per finding: each finding names the node and
//! device, says the fix, and points at the topology line when it comes from the file. Labs are
//! broken either in the file or afterwards by hand (`ip` in the lab's own namespaces), the way
//! people break them.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use vnet::doctor::{self, Finding};
use vnet::Lab;

const BASE: &str = "name: doc
nodes:
  a:
    interfaces: { eth0: { addresses: [10.1.0.2/24] } }
    routes: [ { to: default, via: 10.1.0.1 } ]
  r:
    interfaces:
      eth0: { addresses: [10.1.0.1/24] }
      eth1: { addresses: [10.2.0.1/24] }
    sysctls: { net.ipv4.ip_forward: 1 }
  c:
    interfaces: { eth0: { addresses: [10.2.0.2/24] } }
    routes: [ { to: default, via: 10.2.0.1 } ]
links:
  - endpoints: [a:eth0, r:eth0]
  - endpoints: [r:eth1, c:eth0]
";

/// Brings up a topology text from a file (so findings carry its lines).
fn up(name: &str, text: &str) -> (Lab, String) {
    let path = temp_topology(name, "yaml", text);
    (Lab::from_file(&path).unwrap(), path.display().to_string())
}

fn findings(lab: &Lab) -> Vec<Finding> {
    doctor::doctor_running(&lab.running().unwrap()).unwrap().findings
}

/// The one finding with this code (and node, device); panics listing all when missing.
fn find<'a>(f: &'a [Finding], code: &str, node: &str, dev: Option<&str>) -> &'a Finding {
    f.iter().find(|x| x.code == code && x.node == node && x.device.as_deref() == dev).unwrap_or_else(|| panic!("no {code} finding at {node}:{dev:?} in {f:#?}"))
}

/// `file:line:` of the first line containing `needle`.
fn line_of(path: &str, text: &str, needle: &str) -> String {
    let n = text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in text")) + 1;
    format!("{path}:{n}:")
}

#[test]
fn a_healthy_lab_has_no_findings_and_cli_exit_codes_follow() {
    require_root();
    let (lab, _) = up("doc-healthy", BASE);
    assert_eq!(findings(&lab), vec![], "a lab as declared has nothing to fix");
    let out = Command::new(vnet_bin()).args(["doctor", lab.name()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no problems found (6 node pairs traced)"));
    // Break it: JSON names the finding, exit code 1.
    ip(lab.node("r").netns().unwrap(), &["link", "set", "eth1", "down"]);
    let out = Command::new(vnet_bin()).args(["doctor", lab.name(), "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = j["findings"].as_array().unwrap();
    assert!(
        f.iter().any(|x| x["code"] == "device-down" && x["node"] == "r" && x["device"] == "eth1" && x["fix"].as_str().unwrap().contains("link set eth1 up")),
        "{j:#}"
    );
}

#[test]
fn device_down_and_peer_down() {
    require_root();
    let (lab, path) = up("doc-down", BASE);
    ip(lab.node("c").netns().unwrap(), &["link", "set", "eth0", "down"]);
    let f = findings(&lab);
    let d = find(&f, "device-down", "c", Some("eth0"));
    assert!(d.location.as_deref().unwrap().starts_with(&line_of(&path, BASE, "[10.2.0.2/24]")), "{d:?}");
    assert!(d.fix.contains(&format!("ip -n {} link set eth0 up", lab.node("c").netns().unwrap())), "{}", d.fix);
    let p = find(&f, "peer-down", "r", Some("eth1"));
    assert_eq!(p.message, "eth1 has no carrier: its peer c:eth0 is down");
    // Independently: the kernel says the same.
    let l = ip_link(lab.node("r").netns(), "eth1").unwrap();
    assert!(l["flags"].as_array().unwrap().iter().any(|x| x == "NO-CARRIER"));
}

#[test]
fn missing_address_missing_route_and_duplicate_address() {
    require_root();
    let (lab, path) = up("doc-addr", BASE);
    let a = lab.node("a").netns().unwrap().to_string();
    let c = lab.node("c").netns().unwrap().to_string();
    ip(&c, &["route", "del", "default"]);
    ip(&a, &["addr", "add", "10.2.0.2/24", "dev", "eth0"]);
    ip(&a, &["addr", "del", "10.1.0.2/24", "dev", "eth0"]);
    let f = findings(&lab);
    let m = find(&f, "missing-address", "a", Some("eth0"));
    assert_eq!(m.message, "10.1.0.2/24 is declared on eth0 but the device does not have it");
    assert!(m.location.as_deref().unwrap().starts_with(&line_of(&path, BASE, "10.1.0.2/24")), "{m:?}");
    let r = find(&f, "missing-route", "c", None);
    assert!(r.message.starts_with("route default via 10.2.0.1 is declared but the kernel does not have it"), "{r:?}");
    assert!(r.fix.contains("route add default via 10.2.0.1"), "{}", r.fix);
    assert!(r.location.as_deref().unwrap().starts_with(&line_of(&path, BASE, "via: 10.2.0.1")), "{r:?}");
    let d = find(&f, "duplicate-address", "c", Some("eth0"));
    assert!(d.message.starts_with("10.2.0.2 is held by 2 devices (a:eth0, c:eth0)"), "{d:?}");
    find(&f, "duplicate-address", "a", Some("eth0"));
    // The route missing in c also means c has no default route any more; the file declares it,
    // so the fix is to apply the file again, not to add the route to it.
    let n = find(&f, "no-default-route", "c", None);
    assert!(n.fix.starts_with("the kernel differs from the file (`vnet plan` shows `+ route c: default via 10.2.0.1`)"), "{}", n.fix);
    assert!(!n.fix.contains("to nodes.c.routes"), "{}", n.fix);
}

#[test]
fn forwarding_off_on_a_router() {
    require_root();
    let text = BASE.replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0");
    let (lab, path) = up("doc-fwd", &text);
    let f = findings(&lab);
    let x = find(&f, "ip-forward-off", "r", None);
    assert!(x.message.contains("does not forward: net.ipv4.ip_forward is 0"), "{x:?}");
    assert_eq!(x.fix, "set `net.ipv4.ip_forward: 1` in nodes.r.sysctls");
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "ip_forward")), "{x:?}");
    assert!(!ping(&lab, "a", "10.2.0.2"), "and indeed nothing crosses r");
}

#[test]
fn no_default_route_with_a_suggested_gateway() {
    require_root();
    let text = BASE.replace("    routes: [ { to: default, via: 10.2.0.1 } ]\n", "");
    let (lab, path) = up("doc-nodefault", &text);
    let f = findings(&lab);
    let x = find(&f, "no-default-route", "c", None);
    assert_eq!(x.message, "c has no IPv4 default route and no route to 10.1.0.2 (a), 10.1.0.1 (r)");
    assert_eq!(x.fix, "add `{ to: default, via: 10.2.0.1 }` (r) to nodes.c.routes");
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "  c:")), "{x:?}");
}

/// Separate networks on purpose (a VXLAN overlay and its underlay): what the file declares
/// with `no-reach` is not a problem, and without it the fix never proposes as gateway a
/// neighbour that has no way to the destinations either.
#[test]
fn separate_networks_declared_or_not() {
    require_root();
    let text = std::fs::read_to_string(repo("examples/vxlan-overlay.yaml")).unwrap();
    let (lab, _) = up("doc-overlay", &text);
    assert_eq!(findings(&lab), vec![], "every unreachable pair is declared `no-reach`");
    drop(lab);
    let bare = text.split("\nexpect:\n").next().unwrap().to_string() + "\n";
    let (lab, _) = up("doc-overlay-bare", &bare);
    let f = findings(&lab);
    let x = find(&f, "no-default-route", "host1", None);
    assert_eq!(x.message, "host1 has no IPv4 default route and no route to 10.42.0.1 (work1), 10.42.0.2 (work2)");
    // host2 shares host1's subnet but does not reach 10.42.0.0/24 either: no gateway to name.
    assert_eq!(x.fix, "give host1 an address on a subnet with a router, then a default route via it");
    assert!(f.iter().all(|x| x.code == "no-default-route"), "{f:#?}");
}

#[test]
fn mtu_mismatch_between_link_ends() {
    require_root();
    let text =
        BASE.replace("c:\n    interfaces: { eth0: { addresses: [10.2.0.2/24] } }", "c:\n    interfaces: { eth0: { addresses: [10.2.0.2/24], mtu: 1400 } }");
    let (lab, path) = up("doc-mtu", &text);
    let f = findings(&lab);
    let x = find(&f, "mtu-mismatch", "c", Some("eth0"));
    assert!(x.message.contains("r:eth1 has mtu 1500 but c:eth0 has mtu 1400") || x.message.contains("c:eth0 has mtu 1400 but r:eth1 has mtu 1500"), "{x:?}");
    assert_eq!(x.fix, "give both ends the same MTU (`mtu: 1400` on the link or on both interfaces)");
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "mtu: 1400")), "{x:?}");
}

#[test]
fn unreachable_next_hop() {
    require_root();
    let text = BASE.replace("routes: [ { to: default, via: 10.1.0.1 } ]", "routes: [ { to: default, via: 10.1.0.99 } ]");
    let (lab, _) = up("doc-nexthop", &text);
    let f = findings(&lab);
    let x = find(&f, "unreachable-next-hop", "r", Some("eth0"));
    assert!(x.message.contains("no device of r holds 10.1.0.99"), "{x:?}");
}

const ASYM: &str = "name: asym
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.1.0.2/24] }
      eth1: { addresses: [10.4.0.2/24] }
    routes: [ { to: 10.2.0.0/24, via: 10.1.0.1 } ]
    sysctls: { net.ipv4.conf.all.rp_filter: 1 }
  r1:
    interfaces:
      eth0: { addresses: [10.1.0.1/24] }
      eth1: { addresses: [10.2.0.1/24] }
    sysctls: { net.ipv4.ip_forward: 1 }
  r2:
    interfaces:
      eth0: { addresses: [10.4.0.1/24] }
      eth1: { addresses: [10.5.0.1/24] }
    routes: [ { to: 10.1.0.0/24, via: 10.4.0.2 } ]
    sysctls: { net.ipv4.ip_forward: 1 }
  c:
    interfaces:
      eth0: { addresses: [10.2.0.2/24] }
      eth1: { addresses: [10.5.0.2/24] }
    routes: [ { to: 10.1.0.0/24, via: 10.5.0.1 } ]
links:
  - endpoints: [a:eth0, r1:eth0]
  - endpoints: [r1:eth1, c:eth0]
  - endpoints: [a:eth1, r2:eth0]
  - endpoints: [r2:eth1, c:eth1]
";

#[test]
fn rp_filter_drops_asymmetric_answers() {
    require_root();
    let (lab, path) = up("doc-asym", ASYM);
    let f = findings(&lab);
    let x = find(&f, "rp-filter", "a", Some("eth1"));
    assert!(
        x.message.starts_with(
            "a drops packets from 10.2.0.2 arriving on eth1: reverse-path filtering is strict (rp_filter=1) and its route back to 10.2.0.2 leaves by eth0"
        ),
        "{x:?}"
    );
    assert!(x.fix.contains("net.ipv4.conf.eth1.rp_filter: 2"), "{}", x.fix);
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, ASYM, "rp_filter: 1")), "{x:?}");
    // The traffic really dies there, and lives with loose filtering.
    assert!(!ping(&lab, "a", "10.2.0.2"));
    let a = lab.node("a").netns().unwrap().to_string();
    let out = Command::new("ip").args(["netns", "exec", &a, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2"]).status().unwrap();
    assert!(out.success());
    assert!(ping(&lab, "a", "10.2.0.2"), "loose rp_filter lets the answer in");
    let after = findings(&lab);
    assert!(after.iter().all(|x| !(x.code == "rp-filter" && x.message.contains("from 10.2.0.2"))), "{after:#?}");
    // Loose filtering still drops sources with no route back at all: c's 10.5.0.2.
    let y = find(&after, "rp-filter", "a", Some("eth1"));
    assert!(
        y.message
            .starts_with("a drops packets from 10.5.0.2 arriving on eth1: reverse-path filtering is loose (rp_filter=2) and it has no route back to 10.5.0.2"),
        "{y:?}"
    );
}

#[test]
fn macvlan_vepa_siblings_need_a_hairpin_switch_port() {
    require_root();
    let text = macvlan_switch("mv");
    let (lab, path) = up("doc-vepa", &text);
    macvlans(&lab, "vepa", "10.5.0");
    let f = findings(&lab);
    let x = find(&f, "macvlan-hairpin", "h", Some("up0"));
    assert!(
        x.message.starts_with(
            "macvlans m1:mv1 and m2:mv2 on up0 are in vepa mode: their frames to each other go out to the switch port sw:p0, which has hairpin off"
        ),
        "{x:?}"
    );
    assert!(x.fix.starts_with("set `hairpin: true` on sw:p0"), "{}", x.fix);
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "p0: { master")), "{x:?}");
    // The path analysis sees the bridge refuse to reflect the frame, too.
    find(&f, "hairpin-off", "sw", Some("p0"));
    assert!(!ping(&lab, "m1", "10.5.0.12"));
    // With hairpin on the switch port they meet.
    ip(lab.node("sw").netns().unwrap(), &["link", "set", "p0", "type", "bridge_slave", "hairpin", "on"]);
    assert!(findings(&lab).iter().all(|x| x.code != "macvlan-hairpin" && x.code != "hairpin-off"));
    assert!((0..3).any(|_| ping(&lab, "m1", "10.5.0.12")), "vepa siblings talk through a hairpin port");
}

#[test]
fn macvlan_private_siblings_never_meet() {
    require_root();
    let (lab, _) = up("doc-private", &macvlan_switch("mv"));
    macvlans(&lab, "private", "10.5.0");
    ip(lab.node("sw").netns().unwrap(), &["link", "set", "p0", "type", "bridge_slave", "hairpin", "on"]);
    let f = findings(&lab);
    let x = find(&f, "macvlan-private", "h", Some("up0"));
    assert!(x.message.contains("one is in private mode: they never reach each other, even through a hairpin switch"), "{x:?}");
    assert!(!ping(&lab, "m1", "10.5.0.12"), "private mode isolates them even with hairpin on");
}

#[test]
fn port_not_in_its_bridge_and_bridge_without_carrier() {
    require_root();
    let text = std::fs::read_to_string(repo("examples/bridge.yaml")).unwrap().replace("name: bridge", "name: docbr");
    let text = text.replace(
        "      veth2: { master: br1 }\n",
        "      veth2: { master: br1 }\n      br9: { kind: bridge, addresses: [192.168.9.1/24] }\n      veth9: { master: br9 }\n      br8: { kind: bridge }\n",
    ) + "  - endpoints: [ns3:eth0, host:veth9]\n";
    let text = text.replace("\nlinks:", "\n  ns3:\n    interfaces: { eth0: { addresses: [192.168.9.2/24] } }\nlinks:");
    let (lab, path) = up("doc-bridge", &text);
    let host = lab.node("host").netns().unwrap().to_string();
    ip(&host, &["link", "set", "veth1", "nomaster"]);
    ip(lab.node("ns3").netns().unwrap(), &["link", "set", "eth0", "down"]);
    let f = findings(&lab);
    let x = find(&f, "not-in-bridge", "host", Some("veth1"));
    assert_eq!(x.message, "veth1 should be a port of bridge br1 but it is attached to no bridge: frames from its peer go nowhere");
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "veth1: { master")), "{x:?}");
    assert!(!ping(&lab, "ns1", "192.168.1.12"));
    // A bridge whose only port lost its carrier has none either.
    let c = find(&f, "no-carrier", "host", Some("br9"));
    assert_eq!(c.message, "bridge br9 has no carrier: none of its ports (veth9) has carrier; it forwards nothing");
    assert!(c.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "br9: {")), "{c:?}");
    find(&f, "peer-down", "host", Some("veth9"));
    let l = ip_link(Some(&host), "br9").unwrap();
    assert!(l["flags"].as_array().unwrap().iter().any(|x| x == "NO-CARRIER"), "the kernel agrees: {l}");
    // A bridge nothing is attached to.
    let e = find(&f, "no-ports", "host", Some("br8"));
    assert_eq!(e.message, "bridge br8 has no ports: nothing is connected to it");
}

const EDGE: &str = "name: edge
nodes:
  inner:
    interfaces: { eth0: { addresses: [10.0.0.2/24] } }
    routes: [ { to: default, via: 10.0.0.1 } ]
  edge:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
      eth1: { addresses: [203.0.113.2/24] }
    routes: [ { to: default, via: 203.0.113.1 } ]
    sysctls: { net.ipv4.ip_forward: 1 }
  isp:
    # Plays the internet: knows nothing of 10.0.0.0/24.
    interfaces: { eth0: { addresses: [203.0.113.1/24] } }
links:
  - endpoints: [inner:eth0, edge:eth0]
  - endpoints: [edge:eth1, isp:eth0]
";

#[test]
fn traffic_leaving_the_lab_needs_masquerade() {
    require_root();
    let (lab, path) = up("doc-nat", EDGE);
    let f = findings(&lab);
    let x = find(&f, "missing-masquerade", "edge", Some("eth1"));
    assert_eq!(x.message, "edge forwards traffic from private subnets (10.0.0.0/24 on eth0) out of eth1 (eth1 has public addressing) without masquerade: answers to private addresses have no way back");
    assert!(x.fix.contains("oifname eth1 masquerade"), "{}", x.fix);
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, EDGE, "ip_forward")), "{x:?}");
    assert!(!ping(&lab, "inner", "203.0.113.1"), "without NAT the answer has no way back");
    // Do what the fix says.
    let e = lab.node("edge");
    for cmd in ["add table ip nat", "add chain ip nat post { type nat hook postrouting priority 100; }", "add rule ip nat post oifname eth1 masquerade"] {
        let st = e.command("nft").args(cmd.split(' ')).status().unwrap();
        assert!(st.success(), "nft {cmd}");
    }
    assert!(findings(&lab).iter().all(|x| x.code != "missing-masquerade"));
    assert!(ping(&lab, "inner", "203.0.113.1"), "with masquerade the answer comes back");
}

#[test]
fn a_missing_namespace_is_a_finding_not_an_abort() {
    require_root();
    let (lab, path) = up("doc-nsgone", BASE);
    let c = lab.node("c").netns().unwrap().to_string();
    let out = Command::new("ip").args(["netns", "del", &c]).output().unwrap();
    assert!(out.status.success());
    let f = findings(&lab);
    let x = find(&f, "missing-namespace", "c", None);
    assert_eq!(x.message, format!("the namespace of node c is missing ({c} does not exist): nothing of c is in the kernel"));
    assert_eq!(x.fix, "run `vnet up` with the lab's file again to re-create it");
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, BASE, "  c:")), "{x:?}");
    // Nothing else is said about c: its devices and pairs are the namespace's finding.
    assert!(f.iter().all(|x| x.node != "c" || x.code == "missing-namespace"), "{f:#?}");
    let out = Command::new(vnet_bin()).args(["doctor", lab.name()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("error [missing-namespace] c: the namespace of node c is missing ({c} does not exist)")), "{text}");
}

#[test]
fn an_address_declared_but_gone_from_the_kernel_is_said_so() {
    require_root();
    let (lab, path) = up("doc-addrgone", BASE);
    ip(lab.node("c").netns().unwrap(), &["addr", "del", "10.2.0.2/24", "dev", "eth0"]);
    let f = findings(&lab);
    let x = find(&f, "declared-address-gone", "c", Some("eth0"));
    assert_eq!(x.message, "10.2.0.2 is declared on c:eth0 but the kernel does not have it: nothing in the lab answers for it");
    assert_eq!(
        x.fix,
        "the kernel differs from the file (`vnet plan` shows `+ addr c:eth0 10.2.0.2/24`): run `vnet up` with the lab's file again to put it back"
    );
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, BASE, "[10.2.0.2/24]")), "{x:?}");
    assert!(f.iter().all(|x| !x.message.contains("is not an address of any node")), "{f:#?}");
}

/// Runs `vnet ARGS` and returns (exit code, stdout).
fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(vnet_bin()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The findings of `vnet doctor LAB --json` (exit code 1 when there are errors, 0 otherwise).
fn cli_findings(lab: &str) -> Vec<Finding> {
    let (code, out) = cli(&["doctor", lab, "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let f: Vec<Finding> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Finding {
            code: Box::leak(x["code"].as_str().unwrap().to_string().into_boxed_str()),
            severity: if x["severity"] == "error" { doctor::Severity::Error } else { doctor::Severity::Warning },
            node: x["node"].as_str().unwrap().into(),
            device: x["device"].as_str().map(str::to_string),
            message: x["message"].as_str().unwrap().into(),
            fix: x["fix"].as_str().unwrap().into(),
            location: x["location"].as_str().map(str::to_string),
        })
        .collect();
    assert_eq!(code, if f.iter().any(|x| x.severity == doctor::Severity::Error) { 1 } else { 0 }, "{out}");
    f
}

/// `vnet down` of a lab the test made with the CLI, also when it panics.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(vnet_bin()).args(["down", &self.0]).output();
    }
}

#[test]
fn drift_from_the_file_is_fixed_by_applying_the_file_again() {
    require_root();
    // Made with the CLI (`vnet up FILE`), so the fix can name the command that puts it back.
    let name = vnet::lab::unique_name("docdrift");
    let text = BASE
        .replace("name: doc", &format!("name: {name}"))
        .replace("eth1: { addresses: [10.2.0.1/24] }", "eth1: { addresses: [10.2.0.1/24], mtu: 1400 }")
        .replace("c:\n    interfaces: { eth0: { addresses: [10.2.0.2/24] } }", "c:\n    interfaces: { eth0: { addresses: [10.2.0.2/24], mtu: 1400 } }");
    let path = temp_topology(&name, "yaml", &text).display().to_string();
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    let _down = Down(name.clone());
    let ns = |n: &str| format!("{name}-{n}");
    // What people do by hand: a route deleted, an MTU changed, an address added.
    ip(&ns("a"), &["route", "del", "default"]);
    ip(&ns("c"), &["link", "set", "eth0", "mtu", "1500"]);
    ip(&ns("c"), &["addr", "add", "10.1.0.2/24", "dev", "eth0"]);
    let f = cli_findings(&name);
    let back = format!("`vnet up {path} --isolated-host` puts it back");
    let r = find(&f, "missing-route", "a", None);
    assert!(r.fix.starts_with(&format!("the kernel differs from the file (`vnet plan` shows `+ route a: default via 10.1.0.1`): {back}")), "{}", r.fix);
    let n = find(&f, "no-default-route", "a", None);
    assert_eq!(n.fix, format!("the kernel differs from the file (`vnet plan` shows `+ route a: default via 10.1.0.1`): {back}"));
    let m = f.iter().find(|x| x.code == "mtu-mismatch").unwrap_or_else(|| panic!("no mtu-mismatch in {f:#?}"));
    assert_eq!(m.fix, format!("the kernel differs from the file (`vnet plan` shows `~ link c:eth0 mtu 1400`): {back}"));
    let d = find(&f, "duplicate-address", "c", Some("eth0"));
    let gone = format!("`vnet up {path} --isolated-host` removes it");
    assert_eq!(d.fix, format!("this one is not in the file: the kernel differs from the file (`vnet plan` shows `- addr c:eth0 10.1.0.2/24`): {gone}"));
    let d = find(&f, "duplicate-address", "a", Some("eth0"));
    assert!(d.fix.starts_with("this one is declared; the file does not declare 10.1.0.2 on c:eth0"), "{}", d.fix);
    // It does put it back.
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cli_findings(&name), vec![]);
    // Forwarding switched off by hand on the router.
    let out = Command::new("ip").args(["netns", "exec", &ns("r"), "sysctl", "-qw", "net.ipv4.ip_forward=0"]).output().unwrap();
    assert!(out.status.success());
    let f = cli_findings(&name);
    let x = find(&f, "ip-forward-off", "r", None);
    assert_eq!(x.fix, format!("the kernel differs from the file (`vnet plan` shows `~ sysctl r: net.ipv4.ip_forward = 1`): {back}"));
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&["doctor", &name]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no problems found"), "{out}");
}

/// Whatever `vnet plan` would change and no other check explains is a finding of its own: a
/// route or address added by hand (warnings: the file's own state is there), a link-local
/// address deleted, a port's declared hairpin turned off, a declared sysctl changed (errors).
/// Each names the operation that puts it back, at the line it concerns; `up` clears them all.
#[test]
fn every_difference_plan_shows_is_a_finding() {
    require_root();
    let name = vnet::lab::unique_name("docplan");
    let text = format!(
        "name: {name}
nodes:
  host:
    interfaces:
      br0: {{ kind: bridge, addresses: [fd00::1/64] }}
      v1: {{ master: br0, hairpin: true }}
    sysctls: {{ net.ipv6.conf.all.forwarding: 1 }}
  a:
    interfaces: {{ eth0: {{ addresses: [fd00::2/64] }} }}
links:
  - endpoints: [host:v1, a:eth0]
"
    );
    let path = temp_topology(&name, "yaml", &text).display().to_string();
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    let _down = Down(name.clone());
    let ns = |n: &str| format!("{name}-{n}");
    // The link-local address of a:eth0 appears with its carrier (linkwatch, after `up`).
    let link_local = || ip_addrs(Some(&ns("a")), "eth0").into_iter().find(|a| a.starts_with("fe80"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while link_local().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(cli_findings(&name), vec![], "as declared");
    ip(&ns("a"), &["addr", "del", &link_local().unwrap(), "dev", "eth0"]);
    ip(&ns("a"), &["route", "add", "fd09::/64", "via", "fd00::1"]);
    ip(&ns("a"), &["addr", "add", "fd00::99/64", "dev", "eth0", "nodad"]);
    ip(&ns("host"), &["link", "set", "v1", "type", "bridge_slave", "hairpin", "off"]);
    let out = Command::new("ip").args(["netns", "exec", &ns("host"), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]).output().unwrap();
    assert!(out.status.success());
    let f = cli_findings(&name);
    let back = format!("`vnet up {path} --isolated-host` puts it back");
    let gone = format!("`vnet up {path} --isolated-host` removes it");
    let shows = |op: &str, then: &str| format!("the kernel differs from the file (`vnet plan` shows `{op}`): {then}");
    let x = find(&f, "link-local-missing", "a", Some("eth0"));
    assert_eq!((x.severity, x.fix.clone()), (doctor::Severity::Error, shows("~ link a:eth0 ipv6 link-local on", &back)));
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "eth0: {")), "{x:?}");
    let x = find(&f, "undeclared-route", "a", Some("eth0"));
    assert_eq!(x.severity, doctor::Severity::Warning);
    assert!(x.message.contains("fd09::/64 via fd00::1"), "{x:?}");
    assert!(
        x.fix.starts_with("the kernel differs from the file (`vnet plan` shows `- route a: fd09::/64 via fd00::1 dev eth0") && x.fix.ends_with(&gone),
        "{x:?}"
    );
    let x = find(&f, "undeclared-address", "a", Some("eth0"));
    assert_eq!((x.severity, x.fix.clone()), (doctor::Severity::Warning, shows("- addr a:eth0 fd00::99/64", &gone)));
    let x = find(&f, "hairpin-differs", "host", Some("v1"));
    assert_eq!(x.message, "bridge port v1 has hairpin off, declared on");
    assert_eq!(x.fix, shows("~ port host:v1 hairpin on", &back));
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "v1: {")), "{x:?}");
    let x = find(&f, "sysctl-differs", "host", None);
    assert_eq!(x.fix, shows("~ sysctl host: net.ipv6.conf.all.forwarding = 1", &back));
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "sysctls:")), "{x:?}");
    // One finding per difference: no operation is reported twice.
    assert_eq!(f.iter().filter(|x| x.fix.contains("`vnet plan` shows")).count(), 5, "{f:#?}");
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cli_findings(&name), vec![], "`up` put everything back");
}

#[test]
fn a_macvlan_without_carrier_names_its_lower_device() {
    require_root();
    let text = std::fs::read_to_string(repo("examples/macvlan-bridge.yaml")).unwrap();
    let (lab, _) = up("doc-mvlower", &text);
    let host = lab.node("host").netns().unwrap().to_string();
    ip(&host, &["link", "set", "eth0", "down"]);
    let f = findings(&lab);
    let x = find(&f, "no-carrier", "ns1", Some("macv1"));
    assert_eq!(x.message, "macv1 has no carrier: its lower device host:eth0 is down");
    assert_eq!(x.fix, format!("bring the lower device host:eth0 up: `ip -n {host} link set eth0 up`"));
    // The path analysis puts the drop at the lower device, not at the switch.
    find(&f, "device-down", "host", Some("eth0"));
    assert!(!f.iter().any(|x| x.code == "path-drop" && x.node == "ns1"), "{f:#?}");
}

/// The root qdisc of a device as `tc -j` shows it.
fn tc_root(netns: &str, dev: &str) -> Value {
    let out = Command::new("tc").args(["-n", netns, "-j", "qdisc", "show", "dev", dev, "root"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn tc(netns: &str, args: &str) {
    let out = Command::new("tc").args(["-n", netns]).args(args.split_whitespace()).output().unwrap();
    assert!(out.status.success(), "tc -n {netns} {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `vnet status LAB --json`: exit code and the `tc` entry of each device (`node:dev` ->).
fn status_tc(lab: &str) -> (i32, std::collections::BTreeMap<String, Value>, String) {
    let (code, out) = cli(&["status", lab, "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut m = std::collections::BTreeMap::new();
    for n in j[0]["nodes"].as_array().unwrap() {
        for d in n["devices"].as_array().unwrap() {
            if !d["tc"].is_null() {
                m.insert(format!("{}:{}", n["node"].as_str().unwrap(), d["name"].as_str().unwrap()), d["tc"].clone());
            }
        }
    }
    let (_, text) = cli(&["status", lab]);
    (code, m, text)
}

#[test]
fn traffic_control_drift_in_status_and_doctor() {
    require_root();
    // Made with the CLI (`vnet up FILE`), so the fix can name the command that puts it back.
    let name = vnet::lab::unique_name("doctc");
    let text = BASE.replace("name: doc", &format!("name: {name}")).replace(
        "  a:\n    interfaces: { eth0: { addresses: [10.1.0.2/24] } }\n",
        "  a:\n    interfaces: { eth0: { addresses: [10.1.0.2/24] } }\n    tc:\n      eth0: { rate: 10mbit }\n",
    );
    let path = temp_topology(&name, "yaml", &text).display().to_string();
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    let _down = Down(name.clone());
    let ns = |n: &str| format!("{name}-{n}");
    let back = format!("`vnet up {path} --isolated-host` puts it back");

    // As declared: status shows the qdisc on a:eth0 only, doctor has nothing to say.
    let (code, tcs, text) = status_tc(&name);
    assert_eq!(code, 0, "{text}");
    assert_eq!(tcs.keys().collect::<Vec<_>>(), ["a:eth0"], "{tcs:?}");
    let t = &tcs["a:eth0"];
    assert_eq!((t["state"].as_str(), t["declared"].as_str()), (Some("as-declared"), Some("tbf rate 10mbit")), "{t}");
    assert_eq!((t["qdisc"]["kind"].as_str(), t["qdisc"]["handle"].as_str(), t["qdisc"]["owner"].as_str()), (Some("tbf"), Some("7654:"), Some("vnet")), "{t}");
    assert_eq!(t["qdisc"]["params"]["rate"], tc_root(&ns("a"), "eth0")["options"]["rate"], "the rate tc reports");
    assert!(text.contains("\n      tc tbf 7654: rate 10mbit burst 12500b (as declared)\n"), "{text}");
    assert_eq!(cli_findings(&name), vec![]);

    // Deleted by hand: status says MISSING (exit 1), doctor says how to put it back.
    tc(&ns("a"), "qdisc del dev eth0 root");
    let (code, tcs, text) = status_tc(&name);
    assert_eq!(code, 1, "{text}");
    assert_eq!(tcs["a:eth0"]["state"], "missing");
    assert!(text.contains("\n      tc MISSING: declared tbf rate 10mbit; the kernel has its default qdisc noqueue 0:\n"), "{text}");
    let f = cli_findings(&name);
    let m = find(&f, "tc-missing", "a", Some("eth0"));
    assert_eq!(m.severity, doctor::Severity::Error);
    assert_eq!(m.message, "the traffic control declared on eth0 (tbf rate 10mbit) is not in the kernel: the device has only its default qdisc (noqueue 0:)");
    assert_eq!(m.fix, format!("the kernel differs from the file (`vnet plan` shows `~ qdisc a:eth0 tbf rate 10mbit`): {back}"));
    assert!(m.location.as_deref().unwrap().starts_with(&line_of(&path, &text_of(&path), "eth0: { rate: 10mbit }")), "{m:?}");
    let (code, out) = cli(&["doctor", &name]);
    assert_eq!(code, 1, "{out}");

    // Other parameters on vnet's handle, then somebody else's qdisc in its place.
    tc(&ns("a"), "qdisc add dev eth0 root handle 7654: tbf rate 3mbit burst 12500 limit 30000");
    let (code, tcs, text) = status_tc(&name);
    assert_eq!((code, tcs["a:eth0"]["state"].as_str()), (1, Some("differs")), "{text}");
    assert!(text.contains("\n      tc DIFFERS: declared tbf rate 10mbit; the kernel has tbf 7654: rate 3mbit burst 12500b\n"), "{text}");
    let f = cli_findings(&name);
    let d = find(&f, "tc-differs", "a", Some("eth0"));
    assert_eq!(d.message, "eth0 has root qdisc tbf 7654: rate 3mbit burst 12500b (vnet's qdisc with other parameters), but the file declares tbf rate 10mbit");
    assert_eq!(d.fix, format!("the kernel differs from the file (`vnet plan` shows `~ qdisc a:eth0 tbf rate 10mbit`): {back}"));
    tc(&ns("a"), "qdisc replace dev eth0 root handle 8001: pfifo limit 50");
    let f = cli_findings(&name);
    let d = find(&f, "tc-differs", "a", Some("eth0"));
    assert!(d.message.starts_with("eth0 has root qdisc pfifo 8001: (a qdisc vnet did not put there, in place of vnet's)"), "{d:?}");

    // A qdisc nobody declared on c:eth0: a warning, and `up` would not remove it.
    tc(&ns("c"), "qdisc add dev eth0 root handle 8002: tbf rate 1mbit burst 10kb limit 20kb");
    let (_, tcs, text) = status_tc(&name);
    assert_eq!((tcs["c:eth0"]["state"].as_str(), tcs["c:eth0"]["qdisc"]["owner"].as_str()), (Some("undeclared"), Some("other")), "{text}");
    assert!(text.contains("\n      tc tbf 8002: rate 1mbit burst "), "{text}");
    assert!(text.contains(" (not declared, not put there by vnet)\n"), "{text}");
    let f = cli_findings(&name);
    let u = find(&f, "tc-undeclared", "c", Some("eth0"));
    assert_eq!(u.severity, doctor::Severity::Warning);
    assert!(u.message.contains("which the file does not declare and vnet did not put there"), "{u:?}");
    assert!(u.fix.contains(&format!("`tc -n {} qdisc del dev eth0 root`", ns("c"))), "{}", u.fix);

    // The fix works: the file puts a's qdisc back; c's is not the lab's and stays (a warning:
    // doctor exits 0, status too).
    let (code, out) = cli(&["up", &path, "--isolated-host"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((tc_root(&ns("a"), "eth0")["handle"].as_str(), tc_root(&ns("c"), "eth0")["handle"].as_str()), (Some("7654:"), Some("8002:")));
    let f = cli_findings(&name);
    assert_eq!(f.iter().map(|x| x.code).collect::<Vec<_>>(), ["tc-undeclared"], "{f:#?}");
    let (code, tcs, _) = status_tc(&name);
    assert_eq!((code, tcs["a:eth0"]["state"].as_str()), (0, Some("as-declared")));
    let (code, _) = cli(&["doctor", &name]);
    assert_eq!(code, 0);

    // After `vnet impair`, what was applied is not the file: the fix is the same impairment.
    let (code, out) = cli(&["impair", &name, "a:eth0", "rate", "5mbit"]);
    assert_eq!(code, 0, "{out}");
    tc(&ns("a"), "qdisc del dev eth0 root");
    let f = cli_findings(&name);
    let m = find(&f, "tc-missing", "a", Some("eth0"));
    assert_eq!(m.fix, format!("`vnet impair {name} a:eth0 rate 5mbit` puts back the traffic control last applied"));
    let (code, out) = cli(&["impair", &name, "a:eth0", "rate", "5mbit"]);
    assert_eq!(code, 0, "{out}");
    assert!(!cli_findings(&name).iter().any(|x| x.code == "tc-missing"));
}

fn text_of(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// (code, node, device) of every finding, sorted: what a test expects exactly.
fn codes(f: &[Finding]) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = f.iter().map(|x| (x.code.to_string(), x.node.clone(), x.device.clone())).collect();
    v.sort();
    v
}

fn expect_codes(list: &[(&str, &str, Option<&str>)]) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = list.iter().map(|(c, n, d)| (c.to_string(), n.to_string(), d.map(str::to_string))).collect();
    v.sort();
    v
}

/// Sets a sysctl inside a lab's namespace.
fn sysctl(netns: &str, kv: &str) {
    let out = Command::new("ip").args(["netns", "exec", netns, "sysctl", "-qw", kv]).output().unwrap();
    assert!(out.status.success(), "sysctl {kv} in {netns}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The findings on examples/routed.yaml as declared: d has no route back by design, and says so.
fn assert_routed_as_declared(f: &[Finding]) {
    assert_eq!(codes(f), expect_codes(&[("no-default-route", "d", None)]), "{f:#?}");
    let d = find(f, "no-default-route", "d", None);
    assert!(d.message.starts_with("d has no IPv4 default route and no route to "), "{d:?}");
    for x in ["10.1.0.2 (a)", "10.1.0.1 (r)", "10.2.0.2 (c)"] {
        assert!(d.message.contains(x), "{x} in {d:?}");
    }
    assert_eq!(d.fix, "add `{ to: default, via: 10.3.0.1 }` (r) to nodes.d.routes");
}

#[test]
fn routed_example_as_declared_keeps_its_one_true_finding() {
    require_root();
    let text = text_of(repo("examples/routed.yaml").to_str().unwrap());
    let (lab, path) = up("doc-routed", &text);
    let f = findings(&lab);
    assert_routed_as_declared(&f);
    let d = find(&f, "no-default-route", "d", None);
    assert!(d.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "  d:")), "{d:?}");
    // Indeed: a's requests reach d, d's answers have no way back.
    assert!(!ping(&lab, "a", "10.3.0.2"));
    assert!(ping(&lab, "r", "10.3.0.2"));
}

#[test]
fn path_findings_blame_the_device_and_address_the_kernel_lost_not_the_routes_of_the_file() {
    require_root();
    // Without its `expect` section: a -> d (declared `no-reach` there) is walked too.
    let text = text_of(repo("examples/routed.yaml").to_str().unwrap()).split("\nexpect:\n").next().unwrap().to_string() + "\n";
    let (lab, _) = up("doc-routedbroken", &text);
    let ns = |n: &str| lab.node(n).netns().unwrap().to_string();
    ip(&ns("a"), &["route", "del", "default"]);
    ip(&ns("r"), &["link", "set", "eth2", "down"]);
    sysctl(&ns("r"), "net.ipv4.ip_forward=0");
    ip(&ns("d"), &["addr", "del", "10.3.0.2/24", "dev", "eth0"]);
    let f = findings(&lab);
    assert_eq!(
        codes(&f),
        expect_codes(&[
            ("missing-route", "a", None),
            ("no-default-route", "a", None),
            ("no-default-route", "d", None),
            ("missing-address", "d", Some("eth0")),
            ("peer-down", "d", Some("eth0")),
            ("ip-forward-off", "r", None),
            ("device-down", "r", Some("eth2")),
        ]),
        "{f:#?}"
    );
    let back = "run `vnet up` with the lab's file again to put it back";
    // 10.3.0.2 is d's, declared: not an address outside the lab.
    let a = find(&f, "no-default-route", "a", None);
    assert_eq!(a.message, "a has no IPv4 default route and no route to 10.2.0.2 (c), 10.3.0.2 (d, declared but not in the kernel)");
    assert_eq!(a.fix, format!("the kernel differs from the file (`vnet plan` shows `+ route a: default via 10.1.0.1`): {back}"));
    assert!(f.iter().all(|x| !x.message.contains("outside the lab")), "{f:#?}");
    // r lost its route to 10.3.0.0/24 with eth2: device-down says so; no default route via a.
    let down = find(&f, "device-down", "r", Some("eth2"));
    assert!(down.fix.contains(&format!("ip -n {} link set eth2 up", ns("r"))), "{}", down.fix);
    assert!(f.iter().all(|x| x.node != "r" || !["no-default-route", "no-route"].contains(&x.code)), "{f:#?}");
    assert!(f.iter().all(|x| !x.fix.contains("via: 10.1.0.2") && !x.fix.contains("nodes.r.routes")), "{f:#?}");
    // The kernel drifted, the file is right: every fix about it applies the file again or works by hand.
    let fwd = find(&f, "ip-forward-off", "r", None);
    assert_eq!(fwd.fix, format!("the kernel differs from the file (`vnet plan` shows `~ sysctl r: net.ipv4.ip_forward = 1`): {back}"));
    assert!(find(&f, "missing-address", "d", Some("eth0")).fix.starts_with("the kernel differs from the file (`vnet plan` shows `+ addr d:eth0 10.3.0.2/24`)"));
    // d has no route back by design (the file's true finding), gateway from its declared subnet.
    let d = find(&f, "no-default-route", "d", None);
    assert_eq!(d.fix, "add `{ to: default, via: 10.3.0.1 }` (r) to nodes.d.routes");
    // The fixes put the lab back as declared.
    ip(&ns("a"), &["route", "add", "default", "via", "10.1.0.1"]);
    ip(&ns("r"), &["link", "set", "eth2", "up"]);
    sysctl(&ns("r"), "net.ipv4.ip_forward=1");
    ip(&ns("d"), &["addr", "add", "10.3.0.2/24", "dev", "eth0"]);
    assert_routed_as_declared(&findings(&lab));
}

#[test]
fn a_subnet_of_the_nodes_own_device_without_its_address_or_connected_route() {
    require_root();
    let text = text_of(repo("examples/routed.yaml").to_str().unwrap());
    let (lab, _) = up("doc-routedaddr", &text);
    let r = lab.node("r").netns().unwrap().to_string();
    // The address of r:eth2 removed: its connected route went with it.
    ip(&r, &["addr", "del", "10.3.0.1/24", "dev", "eth2"]);
    let f = findings(&lab);
    assert_eq!(codes(&f), expect_codes(&[("missing-address", "r", Some("eth2")), ("no-default-route", "d", None)]), "{f:#?}");
    assert!(find(&f, "missing-address", "r", Some("eth2")).fix.contains(&format!("ip -n {r} addr add 10.3.0.1/24 dev eth2")));
    assert!(f.iter().all(|x| !x.fix.contains("nodes.r.routes")), "{f:#?}");
    ip(&r, &["addr", "add", "10.3.0.1/24", "dev", "eth2"]);
    assert_routed_as_declared(&findings(&lab));
    // The connected route deleted by hand, the address still there: `vnet up` would not put it
    // back (the kernel makes it), so the fix is the `ip` command.
    ip(&r, &["route", "del", "10.3.0.0/24", "dev", "eth2"]);
    let f = findings(&lab);
    assert_eq!(codes(&f), expect_codes(&[("missing-route", "r", Some("eth2")), ("no-default-route", "d", None)]), "{f:#?}");
    let m = find(&f, "missing-route", "r", Some("eth2"));
    assert_eq!(
        m.message,
        "r has no route to 10.3.0.2 (d): the connected route 10.3.0.0/24 dev eth2 of its address 10.3.0.1/24 is not in the kernel (deleted by hand)"
    );
    let cmd = format!("ip -n {r} route add 10.3.0.0/24 dev eth2 proto kernel scope link src 10.3.0.1");
    assert!(m.fix.contains(&format!("`{cmd}`")), "{}", m.fix);
    ip(&r, &cmd.split(' ').skip(3).collect::<Vec<_>>());
    assert_routed_as_declared(&findings(&lab));
    assert!(ping(&lab, "r", "10.3.0.2"));
    // A router's device deleted (and its peer with it): the devices are the cause, the routes
    // c lost with its device come back with `vnet up`, not by hand.
    ip(&r, &["link", "del", "eth1"]);
    let f = findings(&lab);
    assert_eq!(
        codes(&f),
        expect_codes(&[
            ("missing-device", "r", Some("eth1")),
            ("missing-device", "c", Some("eth0")),
            ("missing-route", "c", None),
            ("missing-route", "c", None),
            ("no-default-route", "c", None),
            ("no-default-route", "d", None),
        ]),
        "{f:#?}"
    );
    for m in f.iter().filter(|x| x.code == "missing-route") {
        assert_eq!(
            m.fix,
            "the device eth0 it leaves by is missing, so the kernel removed the route: run `vnet up` with the lab's file again to re-create both"
        );
    }
    assert!(find(&f, "no-default-route", "d", None).message.contains("10.2.0.2 (c, declared but not in the kernel)"), "{f:#?}");
    assert!(f.iter().all(|x| x.node != "r" || x.code == "missing-device"), "{f:#?}");
}

#[test]
fn a_bridge_port_out_of_its_bridge_or_a_bridge_down_is_the_cause_not_the_next_hop() {
    require_root();
    let text = text_of(repo("examples/bridge.yaml").to_str().unwrap());
    let (lab, _) = up("doc-brcause", &text);
    let host = lab.node("host").netns().unwrap().to_string();
    assert_eq!(findings(&lab), vec![]);
    ip(&host, &["link", "set", "veth1", "nomaster"]);
    let f = findings(&lab);
    assert_eq!(codes(&f), expect_codes(&[("not-in-bridge", "host", Some("veth1"))]), "{f:#?}");
    assert!(!ping(&lab, "ns2", "192.168.1.11"));
    ip(&host, &["link", "set", "veth1", "master", "br1"]);
    assert_eq!(findings(&lab), vec![]);
    // The bridge down: host's connected route to 192.168.1.0/24 is gone; no default route to add.
    ip(&host, &["link", "set", "br1", "down"]);
    let f = findings(&lab);
    assert_eq!(codes(&f), expect_codes(&[("device-down", "host", Some("br1"))]), "{f:#?}");
    ip(&host, &["link", "set", "br1", "up"]);
    assert_eq!(findings(&lab), vec![]);
}

const LOOSE: &str = "name: loose
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.1.0.2/24] }
      eth1: { addresses: [10.4.0.2/24] }
    routes:
      - { to: 10.2.0.0/24, via: 10.1.0.1 }
      - { to: 10.5.0.0/24, via: 10.4.0.1 }
    sysctls: { net.ipv4.conf.all.rp_filter: 2 }
  r1:
    interfaces:
      eth0: { addresses: [10.1.0.1/24] }
      eth1: { addresses: [10.2.0.1/24] }
    sysctls: { net.ipv4.ip_forward: 1 }
  r2:
    interfaces:
      eth0: { addresses: [10.4.0.1/24] }
      eth1: { addresses: [10.5.0.1/24] }
    routes: [ { to: 10.1.0.0/24, via: 10.4.0.2 }, { to: 10.2.0.0/24, via: 10.5.0.2 } ]
    sysctls: { net.ipv4.ip_forward: 1 }
  c:
    interfaces:
      eth0: { addresses: [10.2.0.2/24] }
      eth1: { addresses: [10.5.0.2/24] }
    routes: [ { to: 10.1.0.0/24, via: 10.5.0.1 } ]
links:
  - endpoints: [a:eth0, r1:eth0]
  - endpoints: [r1:eth1, c:eth0]
  - endpoints: [a:eth1, r2:eth0]
  - endpoints: [r2:eth1, c:eth1]
";

#[test]
fn reverse_path_filtering_and_routes_changed_by_hand_are_fixed_by_the_file() {
    require_root();
    let (lab, path) = up("doc-loose", LOOSE);
    let ns = |n: &str| lab.node(n).netns().unwrap().to_string();
    let back = "run `vnet up` with the lab's file again to put it back";
    let base = findings(&lab);
    // (Other pairs lack routes by design: they are not what this test is about.)
    assert!(base.iter().all(|x| x.code != "rp-filter" && x.node != "r2"), "{base:#?}");
    // Strict filtering set by hand: the file says loose, so the fix is the file again.
    sysctl(&ns("a"), "net.ipv4.conf.all.rp_filter=1");
    let f = findings(&lab);
    let x = find(&f, "rp-filter", "a", Some("eth1"));
    assert!(x.message.contains("reverse-path filtering is strict (rp_filter=1) and its route back to 10.2.0.2 leaves by eth0"), "{x:?}");
    assert_eq!(x.fix, format!("the kernel differs from the file (`vnet plan` shows `~ sysctl a: net.ipv4.conf.all.rp_filter = 2`): {back}"));
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, LOOSE, "rp_filter: 2")), "{x:?}");
    sysctl(&ns("a"), "net.ipv4.conf.all.rp_filter=2");
    assert_eq!(codes(&findings(&lab)), codes(&base));
    // a's route back to 10.5.0.0/24 deleted: loose filtering drops c's 10.5.0.2; the route is declared.
    ip(&ns("a"), &["route", "del", "10.5.0.0/24"]);
    let f = findings(&lab);
    let x = find(&f, "rp-filter", "a", Some("eth1"));
    assert!(x.message.contains("reverse-path filtering is loose (rp_filter=2) and it has no route back to 10.5.0.2"), "{x:?}");
    assert_eq!(x.fix, format!("the kernel differs from the file (`vnet plan` shows `+ route a: 10.5.0.0/24 via 10.4.0.1`): {back}"));
    find(&f, "missing-route", "a", None);
    let mut want = codes(&base);
    want.extend(expect_codes(&[("missing-route", "a", None), ("rp-filter", "a", Some("eth1"))]));
    want.sort();
    assert_eq!(codes(&f), want, "{f:#?}");
    ip(&ns("a"), &["route", "add", "10.5.0.0/24", "via", "10.4.0.1"]);
    assert_eq!(codes(&findings(&lab)), codes(&base));
    // A router's declared route deleted: `missing-route` is the cause of what it cannot forward.
    ip(&ns("r2"), &["route", "del", "10.1.0.0/24"]);
    let f = findings(&lab);
    let m = find(&f, "missing-route", "r2", None);
    assert!(m.fix.starts_with("the kernel differs from the file (`vnet plan` shows `+ route r2: 10.1.0.0/24 via 10.4.0.2`)"), "{}", m.fix);
    assert!(f.iter().all(|x| x.node != "r2" || x.code == "missing-route"), "{f:#?}");
    assert!(f.iter().all(|x| !x.fix.contains("nodes.r2.routes")), "{f:#?}");
}

#[test]
fn the_loose_filter_without_a_route_back_asks_for_the_route() {
    require_root();
    let text = LOOSE.replace("      - { to: 10.5.0.0/24, via: 10.4.0.1 }\n", "");
    let (lab, path) = up("doc-noroute-back", &text);
    let f = findings(&lab);
    let x = find(&f, "rp-filter", "a", Some("eth1"));
    assert!(x.message.contains("reverse-path filtering is loose (rp_filter=2) and it has no route back to 10.5.0.2"), "{x:?}");
    assert_eq!(
        x.fix,
        "add a route back to 10.5.0.2 through eth1 to nodes.a.routes (strict or loose, the filter drops sources with no route back), or turn filtering off: `net.ipv4.conf.all.rp_filter: 0` and `net.ipv4.conf.eth1.rp_filter: 0` in nodes.a.sysctls"
    );
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "rp_filter: 2")), "{x:?}");
}

#[test]
fn hairpin_turned_off_by_hand_is_fixed_by_the_file() {
    require_root();
    let text = macvlan_switch("mv").replace("p0: { master: br0 }", "p0: { master: br0, hairpin: true }");
    let (lab, _) = up("doc-hairpin-drift", &text);
    macvlans(&lab, "vepa", "10.5.0");
    assert!(findings(&lab).iter().all(|x| x.code != "macvlan-hairpin" && x.code != "hairpin-off"));
    ip(lab.node("sw").netns().unwrap(), &["link", "set", "p0", "type", "bridge_slave", "hairpin", "off"]);
    let f = findings(&lab);
    let fix = "the kernel differs from the file (`vnet plan` shows `~ port sw:p0 hairpin on`): run `vnet up` with the lab's file again to put it back";
    assert_eq!(find(&f, "macvlan-hairpin", "h", Some("up0")).fix, fix);
    assert_eq!(find(&f, "hairpin-off", "sw", Some("p0")).fix, fix);
}

#[test]
fn a_device_the_file_declares_down_is_the_files_cause() {
    require_root();
    let text = BASE.replace("eth1: { addresses: [10.2.0.1/24] }", "eth1: { addresses: [10.2.0.1/24], up: false }");
    let (lab, path) = up("doc-decldown", &text);
    let f = findings(&lab);
    assert_eq!(codes(&f), expect_codes(&[("no-route", "r", Some("eth1")), ("peer-down", "c", Some("eth0"))]), "{f:#?}");
    let x = find(&f, "no-route", "r", Some("eth1"));
    assert_eq!(x.message, "r has no route to 10.2.0.2 (c): it is on the subnet of 10.2.0.1/24 on eth1, which the file declares down");
    assert!(x.fix.contains("drop `up: false` in nodes.r.interfaces.eth1"), "{}", x.fix);
    assert!(x.location.as_deref().unwrap().starts_with(&line_of(&path, &text, "up: false")), "{x:?}");
    let p = find(&f, "peer-down", "c", Some("eth0"));
    assert!(p.fix.starts_with("the file declares the peer down: drop `up: false` in nodes.r.interfaces.eth1"), "{}", p.fix);
    assert!(!ping(&lab, "a", "10.2.0.2"));
}
