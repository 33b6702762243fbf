//! Failure paths through the `vnet` binary (root): the kernel refusing an operation midway
//! (complete rollback, foreign objects untouched), clashes found by the planner (nothing
//! changed), kill -9 during `up` followed by `down` or `gc`, a scratch namespace playing the
//! root namespace for non-isolated labs, `vnet exec`, and two commands on one lab at once.
//! Every lab is taken down by a guard, also when a test fails.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use vnet::lab::unique_name;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn show(o: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), text(&o.stdout), text(&o.stderr))
}

/// The seed tutorial (bridge in `host`, ns1 and ns2 on it) under another name.
fn bridge_lab(lab: &str) -> String {
    std::fs::read_to_string(repo("examples/bridge.yaml")).unwrap().replace("name: bridge", &format!("name: {lab}"))
}

/// Interface details of a device (`ip -j -d link`), panicking when it is missing.
fn link_of(netns: &str, dev: &str) -> serde_json::Value {
    ip_link(Some(netns), dev).unwrap_or_else(|| panic!("{dev} is missing in {netns}"))
}

// ---------------------------------------------------------------------------------------------
// (a) Failures midway and clashes
// ---------------------------------------------------------------------------------------------

/// The file is valid, but the kernel refuses an IPv6 address on a device whose IPv6 the file
/// turns off (`disable_ipv6`, a sysctl set earlier in the plan), late in the plan: everything
/// created before is removed again and the error names the operation, node, device and the
/// kernel's words.
#[test]
fn kernel_refusal_midway_rolls_back_everything() {
    require_root();
    let lab = unique_name("fail-v6");
    let yaml = bridge_lab(&lab).replace(
        "      eth0: { addresses: [192.168.1.12/24] }\n",
        "      eth0: { addresses: [192.168.1.12/24, 'fd00::12/64'] }\n    sysctls: { net.ipv6.conf.eth0.disable_ipv6: 1 }\n",
    );
    assert!(yaml.contains("disable_ipv6"));
    let file = temp_topology(&lab, "yaml", &yaml);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: `addr ns2:eth0 fd00::12/64` failed in node ns2, device eth0: ipv6: IPv6 is disabled on this device"),
        "operation, node, device and kernel text: {err}"
    );
    assert!(err.contains("everything this run created was removed again"), "{err}");
    assert_nothing_left(&lab, None);
}

/// A foreign device in the root namespace (here a scratch namespace vnet runs in) carries the
/// name the lab wants as an *altname*: the planner sees no device of that name, the kernel
/// refuses the creation midway (after the lab's namespaces and bridge exist). Everything of
/// the lab is removed; the foreign device is untouched (no mark put on it, still there).
#[test]
fn kernel_clash_with_a_foreign_altname_leaves_the_foreign_device_alone() {
    require_root();
    let root = Scratch::new("fail-root");
    root.ip(&["link", "add", "fx0", "type", "veth", "peer", "name", "fx1"]);
    root.ip(&["link", "property", "add", "dev", "fx0", "altname", "veth1"]);
    root.ip(&["addr", "add", "198.51.100.1/24", "dev", "fx0"]);
    root.ip(&["link", "set", "fx0", "alias", "someone else's"]);
    let before = link_of(&root.name, "fx0");

    let lab = unique_name("fail-alt");
    let file = temp_topology(&lab, "yaml", &bridge_lab(&lab));
    let _guard = DownGuard::new(&lab, Some(&root));
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("failed in node host, device veth1: File exists"), "{err}");
    assert!(err.contains("everything this run created was removed again"), "{err}");

    assert_nothing_left(&lab, Some(&root.name));
    // The bridge the lab had created in the root before the failure is gone too.
    assert!(ip_link(Some(&root.name), "br1").is_none());
    let after = link_of(&root.name, "fx0");
    assert_eq!(after["ifalias"], "someone else's", "the foreign device keeps its alias");
    assert_eq!(after["ifindex"], before["ifindex"]);
    assert_eq!(after["altnames"], before["altnames"]);
    assert_eq!(ip_addrs(Some(&root.name), "fx0"), ["198.51.100.1/24"]);
    assert!(ip_link(Some(&root.name), "fx1").is_some());
}

/// An update that fails midway on a running lab (a route through an unreachable gateway, after
/// the address, MTU and sysctl changes were made) puts the lab back as it was: also the default
/// route the kernel flushed by itself when the old address went, which no journal entry holds.
/// A later `plan` of the old file has nothing to do, and a re-created link comes back too.
#[test]
fn a_failed_update_puts_back_what_the_kernel_removed_by_itself() {
    require_root();
    let lab = unique_name("fail-upd");
    let _guard = DownGuard::new(&lab, None);
    let v1 = format!(
        "name: {lab}
isolated_host: true
nodes:
  a:
    interfaces: {{ eth0: {{ addresses: [10.0.0.1/24] }} }}
    routes: [ {{ to: default, via: 10.0.0.2 }} ]
    sysctls: {{ net.ipv4.ip_forward: 1 }}
  b:
    interfaces: {{ eth0: {{ addresses: [10.0.0.2/24] }} }}
links:
  - endpoints: [a:eth0, b:eth0]
"
    );
    let file = temp_topology(&lab, "yaml", &v1);
    let out = vnet(None, &["up", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let (a, b) = (format!("{lab}-a"), format!("{lab}-b"));
    let eth0 = link_of(&a, "eth0");

    let v2 = v1
        .replace("eth0: { addresses: [10.0.0.1/24] }", "eth0: { addresses: [10.0.0.5/24], mtu: 1300 }")
        .replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0, net.ipv6.conf.eth0.disable_ipv6: 1")
        .replace("[10.0.0.5/24]", "[10.0.0.5/24, 'fd00::5/64']")
        .replace("[10.0.0.2/24]", "[10.0.0.2/24, 10.0.0.3/24]");
    let bad = temp_topology(&format!("{lab}-v2"), "yaml", &v2);
    let out = vnet(None, &["up", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("`addr a:eth0 fd00::5/64` failed in node a"), "{err}");
    assert!(err.contains("everything this run created was removed again"), "{err}");

    let routes = ip_json(Some(&a), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.0.0.2", "the default route is back: {routes}");
    assert_eq!(ip_addrs(Some(&a), "eth0"), ["10.0.0.1/24"]);
    assert_eq!(ip_addrs(Some(&b), "eth0"), ["10.0.0.2/24"]);
    assert_eq!(link_of(&a, "eth0")["mtu"], eth0["mtu"]);
    let fwd = std::process::Command::new("ip").args(["netns", "exec", &a, "cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(text(&fwd.stdout).trim(), "1");
    let plan = vnet(None, &["plan", file.to_str().unwrap()]);
    assert!(text(&plan.stdout).contains("nothing to do"), "{}", show(&plan));

    // The link renamed (so deleted and made again) before the same failure: it comes back.
    let v3 = v1
        .replace("[a:eth0, b:eth0]", "[a:eth1, b:eth0]")
        .replace("eth0: { addresses: [10.0.0.1/24] }", "eth1: { addresses: [10.0.0.1/24, 'fd00::1/64'] }")
        .replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 1, net.ipv6.conf.eth1.disable_ipv6: 1");
    let bad = temp_topology(&format!("{lab}-v3"), "yaml", &v3);
    let out = vnet(None, &["up", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("everything this run created was removed again"), "{}", show(&out));
    assert_eq!(ip_addrs(Some(&a), "eth0"), ["10.0.0.1/24"]);
    assert!(ip_link(Some(&a), "eth1").is_none());
    assert_eq!(ip_json(Some(&a), &["route", "show", "default"])[0]["gateway"], "10.0.0.2");
    let plan = vnet(None, &["plan", file.to_str().unwrap()]);
    assert!(text(&plan.stdout).contains("nothing to do"), "{}", show(&plan));
}

/// A namespace named like one the lab wants, not the lab's: the planner reports the clash
/// (exit 1), nothing is created, the foreign namespace and what it holds stay.
#[test]
fn planner_clash_with_a_foreign_namespace_changes_nothing() {
    require_root();
    let lab = unique_name("fail-ns");
    // `ip netns add` of the name the lab wants for node b; removed by the Scratch guard.
    let out = std::process::Command::new("ip").args(["netns", "add", &format!("{lab}-b")]).output().unwrap();
    assert!(out.status.success());
    let foreign = Scratch { name: format!("{lab}-b") };
    foreign.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "other"]);
    foreign.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);

    let yaml = format!("name: {lab}\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n  b:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.2/24] }}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n");
    let file = temp_topology(&lab, "yaml", &yaml);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("clashes with objects that are not its own (nothing was changed)"), "{err}");
    assert!(err.contains(&format!("node b: namespace `{lab}-b` already exists and does not belong to lab `{lab}`")), "{err}");
    // Nothing of the lab: only the foreign namespace has its prefix.
    assert_eq!(namespaces_with_prefix(&format!("{lab}-")), [format!("{lab}-b")]);
    assert!(!Path::new("/run/vnet").join(&lab).exists(), "no record");
    assert_eq!(ip_addrs(Some(&foreign.name), "eth0"), ["198.51.100.2/24"]);
    assert!(ip_link(Some(&foreign.name), "other").is_some());
    // `plan` says the same without changing anything.
    let out = vnet(None, &["plan", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // `down` finds nothing of the lab and leaves the foreign namespace alone.
    let out = vnet(None, &["down", &lab]);
    assert!(text(&out.stderr).contains("no lab named"), "{}", show(&out));
    assert!(Path::new("/run/netns").join(&foreign.name).exists());
    assert_eq!(ip_addrs(Some(&foreign.name), "eth0"), ["198.51.100.2/24"]);
}

/// An unmarked device with a name the lab wants in the root namespace: planner clash.
#[test]
fn planner_clash_with_a_foreign_root_device_changes_nothing() {
    require_root();
    let root = Scratch::new("fail-dev");
    root.ip(&["link", "add", "veth2", "type", "veth", "peer", "name", "keep2"]);
    let lab = unique_name("fail-dev");
    let file = temp_topology(&lab, "yaml", &bridge_lab(&lab));
    let _guard = DownGuard::new(&lab, Some(&root));
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains(&format!("node host: interface `veth2` already exists and does not belong to lab `{lab}`")), "{}", show(&out));
    assert_nothing_left(&lab, Some(&root.name));
    assert!(ip_link(Some(&root.name), "br1").is_none(), "nothing was created");
    let v = link_of(&root.name, "veth2");
    assert!(v["ifalias"].is_null(), "not marked: {v}");
}

// ---------------------------------------------------------------------------------------------
// (b) kill -9 during `up`, then `down` or `gc`
// ---------------------------------------------------------------------------------------------

/// Starts `vnet up`, waits until `ready()` says the build is under way, kills it with SIGKILL
/// and checks that it was killed (not finished).
fn kill_mid_up(scratch: Option<&Scratch>, args: &[&str], ready: impl Fn() -> bool) {
    let mut child = vnet_cmd(scratch.map(|s| s.name.as_str()), args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if ready() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("`vnet up` ended ({status}) before it could be killed: {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "`vnet up` made no visible progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "`vnet up` had already finished: {status}");
}

fn record_phase(lab: &str) -> Option<String> {
    let s = std::fs::read_to_string(Path::new("/run/vnet").join(lab).join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    v["phase"].as_str().map(str::to_string)
}

/// `down` or `gc` after the kill; `gc` run by someone else in between is fine too.
fn clean_up_after_kill(scratch: Option<&Scratch>, lab: &str, with_gc: bool) {
    let sc = scratch.map(|s| s.name.as_str());
    if with_gc {
        let out = vnet(sc, &["gc"]);
        let o = text(&out.stdout);
        assert!(
            o.contains(&format!("lab {lab}")) || o.contains(&format!("namespace {lab}-")) || record_phase(lab).is_none(),
            "gc does not name the lab:\n{}",
            show(&out)
        );
    } else {
        // Another test's `gc` may be removing the abandoned lab right now: `down` is refused as
        // busy (4) while that gc holds the lab's lock, and then finds nothing or what is left.
        let started = Instant::now();
        let out = loop {
            let out = vnet(sc, &["down", lab]);
            if out.status.code() != Some(4) || started.elapsed() > Duration::from_secs(30) {
                break out;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(out.status.code() == Some(0) || text(&out.stderr).contains("no lab named"), "{}", show(&out));
    }
}

fn kill_200_node_up_then(with_gc: bool) {
    require_root();
    let lab = unique_name(if with_gc { "kill-gc" } else { "kill-down" });
    let file = temp_topology(&lab, "yaml", &star_topology(&lab, "hub", 200, true));
    let _guard = DownGuard::new(&lab, None);
    let prefix = format!("{lab}-");
    // down: kill while namespaces are being made; gc: once all exist (devices being made).
    let want = if with_gc { 201 } else { 40 };
    kill_mid_up(None, &["up", file.to_str().unwrap()], || namespaces_with_prefix(&prefix).len() >= want);
    let left = namespaces_with_prefix(&prefix).len();
    assert!(left >= want, "namespaces existed at the kill: {left}");
    assert_eq!(record_phase(&lab).as_deref(), Some("building"), "the record says `up` did not finish");
    clean_up_after_kill(None, &lab, with_gc);
    assert_nothing_left(&lab, None);
}

#[test]
fn kill_during_up_of_200_nodes_then_down_leaves_nothing() {
    kill_200_node_up_then(false);
}

#[test]
fn kill_during_up_of_200_nodes_then_gc_leaves_nothing() {
    kill_200_node_up_then(true);
}

// ---------------------------------------------------------------------------------------------
// (c) A scratch namespace as the root of non-isolated labs
// ---------------------------------------------------------------------------------------------

/// Foreign devices that look like the lab's: an unmarked veth pair with the lab's naming, and
/// one whose alias resembles a mark. Returns their names.
fn foreign_lookalikes(root: &Scratch, lab: &str) -> Vec<(String, serde_json::Value)> {
    root.ip(&["link", "add", "veth3", "type", "veth", "peer", "name", "veth4"]);
    root.ip(&["link", "set", "veth4", "alias", &format!("vnet-{lab}")]);
    root.ip(&["link", "add", "p61", "type", "veth", "peer", "name", "p999"]);
    ["veth3", "veth4", "p61", "p999"].iter().map(|d| (d.to_string(), link_of(&root.name, d))).collect()
}

fn assert_untouched(root: &Scratch, before: &[(String, serde_json::Value)]) {
    for (d, v) in before {
        let now = ip_link(Some(&root.name), d).unwrap_or_else(|| panic!("foreign {d} was removed"));
        assert_eq!(now["ifindex"], v["ifindex"], "{d}");
        assert_eq!(now["ifalias"], v["ifalias"], "{d}");
    }
}

#[test]
fn root_devices_of_a_non_isolated_lab_are_marked_and_down_removes_exactly_them() {
    require_root();
    let root = Scratch::new("scr-root");
    let lab = unique_name("scr-down");
    let before = foreign_lookalikes(&root, &lab);
    let file = temp_topology(&lab, "yaml", &bridge_lab(&lab));
    let _guard = DownGuard::new(&lab, Some(&root));
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let mut marked = devices_with_alias(Some(&root.name), &format!("vnet:{lab}"));
    marked.sort();
    assert_eq!(marked, ["br1", "veth1", "veth2"], "the lab's root devices carry its mark");
    // Only ns1 and ns2 are namespaces: `host` is the (scratch) root.
    let mut ns = namespaces_with_prefix(&format!("{lab}-"));
    ns.sort();
    assert_eq!(ns, [format!("{lab}-ns1"), format!("{lab}-ns2")]);
    assert_eq!(ip_addrs(Some(&root.name), "br1"), ["192.168.1.10/24"]);
    let ping = vnet(Some(&root.name), &["exec", &lab, "ns1", "--", "ping", "-c1", "-W2", "192.168.1.12"]);
    assert_eq!(ping.status.code(), Some(0), "{}", show(&ping));
    // `exec` in `host` runs in the namespace vnet runs in: the scratch root.
    let out = vnet(Some(&root.name), &["exec", &lab, "host", "--", "cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(text(&out.stdout).trim(), "1");

    let out = vnet(Some(&root.name), &["down", &lab]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("2 namespaces and 3 root-namespace devices removed"), "{}", show(&out));
    assert_nothing_left(&lab, Some(&root.name));
    assert_untouched(&root, &before);
    // The root's sysctl went back to what it was.
    let fwd = std::process::Command::new("ip").args(["netns", "exec", &root.name, "cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(text(&fwd.stdout).trim(), "0");
}

/// `down` removes a root-host lab's devices in one request by the lab's interface group only
/// when nothing else is in that group: a foreign pair carrying the lab's group number stays.
#[test]
fn a_foreign_device_in_the_labs_interface_group_survives_down_and_gc() {
    require_root();
    let root = Scratch::new("scr-grp");
    let lab = unique_name("scr-grp");
    let group = vnet::state::group_for(&lab).to_string();
    root.ip(&["link", "add", "theirs0", "type", "veth", "peer", "name", "theirs1"]);
    root.ip(&["link", "set", "theirs0", "group", &group]);
    let before: Vec<(String, serde_json::Value)> = ["theirs0", "theirs1"].iter().map(|d| (d.to_string(), link_of(&root.name, d))).collect();
    let file = temp_topology(&lab, "yaml", &star_topology(&lab, "host", 20, false));
    let _guard = DownGuard::new(&lab, Some(&root));
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(devices_with_alias(Some(&root.name), &format!("vnet:{lab}")).len(), 21, "br0 and 20 ports");

    let out = vnet(Some(&root.name), &["down", &lab]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("20 namespaces and 21 root-namespace devices removed"), "{}", show(&out));
    assert_nothing_left(&lab, Some(&root.name));
    assert_untouched(&root, &before);
    assert_eq!(link_of(&root.name, "theirs0")["group"].as_str(), Some(group.as_str()), "still in the lab's group");

    // gc of a crashed lab's root devices decides the same way.
    let out = vnet(Some(&root.name), &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    std::fs::remove_file(vnet::state::lab_dir(&lab).join("state.json")).unwrap();
    let out = vnet(Some(&root.name), &["gc"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(devices_with_alias(Some(&root.name), &format!("vnet:{lab}")).is_empty(), "{}", show(&out));
    assert_untouched(&root, &before);
}

/// Kills `up` of a non-isolated star once some of its root devices exist.
fn kill_scratch_root_up(root: &Scratch, lab: &str) {
    let file = temp_topology(lab, "yaml", &star_topology(lab, "host", 60, false));
    let mark = format!("vnet:{lab}");
    let name = root.name.clone();
    kill_mid_up(Some(root), &["up", file.to_str().unwrap()], || devices_with_alias(Some(&name), &mark).len() >= 3);
    assert!(!devices_with_alias(Some(&root.name), &mark).is_empty());
}

#[test]
fn kill_mid_up_in_a_scratch_root_then_gc_removes_marked_devices_only() {
    require_root();
    let root = Scratch::new("scr-gc");
    let lab = unique_name("scr-gc");
    let before = foreign_lookalikes(&root, &lab);
    let _guard = DownGuard::new(&lab, Some(&root));
    kill_scratch_root_up(&root, &lab);
    clean_up_after_kill(Some(&root), &lab, true);
    assert_nothing_left(&lab, Some(&root.name));
    assert_untouched(&root, &before);
}

/// Record lost as well: `down` finds the namespaces and root devices by their marks alone.
#[test]
fn kill_mid_up_and_lost_record_then_down_finds_everything_by_its_marks() {
    require_root();
    let root = Scratch::new("scr-lost");
    let lab = unique_name("scr-lost");
    let before = foreign_lookalikes(&root, &lab);
    let _guard = DownGuard::new(&lab, Some(&root));
    kill_scratch_root_up(&root, &lab);
    std::fs::remove_dir_all(Path::new("/run/vnet").join(&lab)).unwrap();
    let out = vnet(Some(&root.name), &["down", &lab]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_nothing_left(&lab, Some(&root.name));
    assert_untouched(&root, &before);
}

// ---------------------------------------------------------------------------------------------
// (d) vnet exec
// ---------------------------------------------------------------------------------------------

/// Removes a directory when dropped.
struct RmDir(std::path::PathBuf);
impl Drop for RmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn exec_runs_in_the_node_and_passes_the_exit_code_through() {
    require_root();
    let lab = unique_name("exec");
    // A node name no other test uses, for the /etc/netns/<node> fallback.
    let node = format!("x{}", std::process::id());
    let yaml = format!("name: {lab}\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n  {node}:\n    interfaces:\n      e1: {{ addresses: [10.0.0.2/24] }}\nlinks:\n  - endpoints: [a:eth0, {node}:e1]\n");
    let file = temp_topology(&lab, "yaml", &yaml);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Exit codes and signals come through.
    for (cmd, code) in [("exit 0", 0), ("exit 7", 7), ("exit 255", 255), ("kill -TERM $$", 128 + 15)] {
        let out = vnet(None, &["exec", &lab, "a", "--", "sh", "-c", cmd]);
        assert_eq!(out.status.code(), Some(code), "{cmd}: {}", show(&out));
    }
    // The node's own /sys/class/net and its traffic.
    let out = vnet(None, &["exec", &lab, "a", "--", "ls", "/sys/class/net"]);
    assert_eq!(text(&out.stdout).split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let out = vnet(None, &["exec", &lab, &node, "--", "cat", "/sys/class/net/e1/mtu"]);
    assert_eq!(text(&out.stdout).trim(), "1500");
    let out = vnet(None, &["exec", &lab, "a", "--", "ping", "-c1", "-W2", "10.0.0.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // Without `--`, as with `ip netns exec`: the command's own options stay its own, and a
    // later `--` is the command's too.
    let out = vnet(None, &["exec", &lab, "a", "ip", "-br", "link", "show", "dev", "eth0"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).starts_with("eth0"), "{}", show(&out));
    let out = vnet(None, &["exec", &lab, "a", "sh", "-c", "echo \"$@\"", "sh", "--", "-x"]);
    assert_eq!(text(&out.stdout), "-- -x\n", "{}", show(&out));
    let out = vnet(None, &["exec", &lab, "a"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // A command that is not there, or cannot run: 127 and 126, as a shell says.
    let out = vnet(None, &["exec", &lab, "a", "no-such-command-here"]);
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    assert!(text(&out.stderr).contains(&format!("run `no-such-command-here` in {lab}:a")), "{}", show(&out));
    let out = vnet(None, &["exec", &lab, "a", "/etc"]);
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));

    // /etc/netns/<namespace>/ is bound over /etc, as with `ip netns exec`; then /etc/netns/<node>/.
    let etc_netns_existed = Path::new("/etc/netns").exists();
    let by_ns = RmDir(Path::new("/etc/netns").join(format!("{lab}-a")));
    std::fs::create_dir_all(&by_ns.0).unwrap();
    std::fs::write(by_ns.0.join("hosts"), "203.0.113.7 only-in-a\n").unwrap();
    let by_node = RmDir(Path::new("/etc/netns").join(&node));
    std::fs::create_dir_all(&by_node.0).unwrap();
    std::fs::write(by_node.0.join("hosts"), "203.0.113.8 only-in-node\n").unwrap();
    let out = vnet(None, &["exec", &lab, "a", "--", "cat", "/etc/hosts"]);
    assert_eq!(text(&out.stdout), "203.0.113.7 only-in-a\n", "{}", show(&out));
    let out = vnet(None, &["exec", &lab, &node, "--", "cat", "/etc/hosts"]);
    assert_eq!(text(&out.stdout), "203.0.113.8 only-in-node\n", "{}", show(&out));
    // Outside the node, /etc is the machine's.
    assert_ne!(std::fs::read_to_string("/etc/hosts").unwrap(), "203.0.113.7 only-in-a\n");
    drop((by_ns, by_node));
    if !etc_netns_existed {
        let _ = std::fs::remove_dir("/etc/netns");
    }

    let out = vnet(None, &["exec", &lab, "nosuch", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("lab `{lab}` has no node `nosuch`")), "{}", show(&out));
    let out = vnet(None, &["exec", "no-such-lab-at-all", "a", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no lab named `no-such-lab-at-all`"), "{}", show(&out));
}

// ---------------------------------------------------------------------------------------------
// (e) Two commands on one lab at once
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_up_of_a_lab_being_built_is_refused_as_busy() {
    require_root();
    let lab = unique_name("busy");
    let file = temp_topology(&lab, "yaml", &star_topology(&lab, "hub", 200, true));
    let f = file.to_str().unwrap().to_string();
    let _guard = DownGuard::new(&lab, None);
    let mut first = vnet_cmd(None, &["up", &f]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while !vnet::state::is_locked(&lab) {
        assert!(first.try_wait().unwrap().is_none(), "the first `up` ended before taking its lock");
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = vnet(None, &["up", &f]);
    let down = vnet(None, &["down", &lab]);
    let first_status = first.wait().unwrap();
    assert_eq!(second.status.code(), Some(4), "{}", show(&second));
    assert!(text(&second.stderr).contains(&format!("lab `{lab}` is busy")), "{}", show(&second));
    assert_eq!(down.status.code(), Some(4), "down is refused while up runs: {}", show(&down));
    assert!(first_status.success(), "the first `up` is not disturbed: {first_status}");
    assert_eq!(namespaces_with_prefix(&format!("{lab}-")).len(), 201);

    // Same with the lock held by someone else than vnet (deterministic).
    let lock = vnet::state::lock(&lab).unwrap();
    let out = vnet(None, &["up", &f]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    drop(lock);
    let out = vnet(None, &["up", &f]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("nothing to do"), "{}", show(&out));
}

// (e) kill -9 during `vnet bench`, then `gc`
// ---------------------------------------------------------------------------------------------

/// Where a run that raised the neighbour limits notes what it changed until it puts it back.
const LIMITS_JOURNAL: &str = "/run/lock/vnet-neigh-limits.json";

/// Tests that compare the machine's neighbour limits before and after take turns.
fn limits_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn neigh_limits() -> Vec<String> {
    (1..=3).map(|n| std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{n}")).unwrap().trim().to_string()).collect()
}

/// Kills a `vnet bench star` once `ready(pid)` holds, with its children (`group`) or alone
/// (they go on running); returns its pid (also its process group).
fn kill_bench_when(group: bool, ready: impl Fn(u32) -> bool) -> u32 {
    kill_when(&["bench", "star", "--nodes", "60", "--skip-script"], group, ready)
}

/// Kills `vnet ARGS` once `ready(pid)` holds (see `kill_bench_when`).
fn kill_when(args: &[&str], group: bool, ready: impl Fn(u32) -> bool) -> u32 {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(vnet_bin()).args(args).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    let started = Instant::now();
    while !ready(pid) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the benchmark ended ({status}) before it could be killed");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the benchmark made no visible progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    let target = if group { -(pid as i32) } else { pid as i32 };
    unsafe { libc::kill(target, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the benchmark had finished");
    if group {
        // Until every process of the group is gone (a syscall under way completes first).
        while unsafe { libc::kill(-(pid as i32), 0) } == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    pid
}

fn bench_record(pid: u32) -> Option<serde_json::Value> {
    let s = std::fs::read_to_string(format!("/run/vnet/.bench/{pid}.json")).ok()?;
    serde_json::from_str(&s).ok()
}

/// The killed benchmark's directory of generated files went with its record.
fn assert_no_scratch(pid: u32) {
    let dir = std::env::temp_dir().join(format!("vnet-bench-star60-{pid}"));
    assert!(!dir.exists(), "gc left the benchmark's files in {}", dir.display());
}

#[test]
fn kill_during_a_benchmark_then_gc_removes_its_labs_and_restores_the_limits() {
    require_root();
    let _turn = limits_turn();
    let before = neigh_limits();

    // While vnet's lab is up: the benchmark owns it, gc removes it as abandoned.
    let pid = kill_bench_when(true, |pid| labs_owned_by(pid).iter().any(|(lab, _)| *lab == format!("vb-star60-{pid}")));
    let lab = format!("vb-star60-{pid}");
    let out = vnet(None, &["gc"]);
    assert!(text(&out.stdout).contains(&format!("lab {lab}")) || record_phase(&lab).is_none(), "gc does not name the benchmark's lab:\n{}", show(&out));
    assert_gone(&lab);
    assert!(bench_record(pid).is_none(), "the benchmark's record is gone");
    assert_eq!(neigh_limits(), before, "the neighbour limits are back");
    assert_no_scratch(pid);

    // While the `ip -batch` baseline is built: its namespaces carry no mark; the record names
    // them. Only the benchmark dies: its `ip -batch` goes on adding namespaces until gc stops it.
    let names = std::cell::RefCell::new(Vec::<String>::new());
    let pgid = std::cell::Cell::new(0i32);
    let pid = kill_bench_when(false, |pid| {
        let rec = bench_record(pid);
        pgid.set(rec.as_ref().and_then(|v| v["baseline_pgid"].as_i64()).unwrap_or(0) as i32);
        let listed: Vec<String> =
            rec.map(|v| v["namespaces"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let made = listed.iter().filter(|n| Path::new("/run/netns").join(n).exists()).count();
        *names.borrow_mut() = listed;
        made >= 10 && pgid.get() > 0
    });
    let names = names.into_inner();
    assert_eq!(names.len(), 61, "the record names every baseline namespace");
    // A gc run from a namespace playing a lab's host cannot see the limits (they exist only in
    // the machine's first namespace): it must leave them, and their record, to a gc there.
    let scratch = Scratch::new("bench-gc");
    let out = vnet(Some(&scratch.name), &["gc"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        Path::new(LIMITS_JOURNAL).exists() || neigh_limits() == before,
        "a gc in a namespace dropped the journal of limits it could not restore:\n{}",
        show(&out)
    );
    drop(scratch);
    let out = vnet(None, &["gc"]);
    assert!(text(&out.stdout).contains(&format!("benchmark (pid {pid})")) || bench_record(pid).is_none(), "gc does not name the benchmark:\n{}", show(&out));
    let alive = || unsafe { libc::kill(-pgid.get(), 0) } == 0;
    let t = Instant::now();
    // Killed processes are gone once reaped (by init: their parent died).
    while alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!alive(), "gc stopped the baseline build: {:?}", std::fs::read_to_string(format!("/proc/{}/status", pgid.get())));
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<&String> = names.iter().filter(|n| Path::new("/run/netns").join(n).exists()).collect();
    assert!(left.is_empty(), "baseline namespaces left: {left:?}");
    assert!(bench_record(pid).is_none(), "the benchmark's record is gone");
    assert_no_scratch(pid);
    assert_eq!(neigh_limits(), before, "the neighbour limits are back; gc said:\n{}", show(&out));
    assert!(!Path::new("/run/vnet/.bench").exists(), "no benchmark records remain");
}

#[test]
fn kill_during_a_check_benchmark_then_gc_restores_the_limits_and_removes_its_lab() {
    require_root();
    let _turn = limits_turn();
    let before = neigh_limits();
    // Killed once the limits are raised (its record names them) and its lab is up.
    let pid = kill_when(&["bench", "check", "--nodes", "100", "--no-baseline"], true, |pid| {
        let lab_up = labs_owned_by(pid).iter().any(|(_, phase)| phase == "up");
        lab_up && Path::new(LIMITS_JOURNAL).exists()
    });
    assert_ne!(neigh_limits(), before, "the benchmark had raised the limits");
    let out = vnet(None, &["gc"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(neigh_limits(), before, "the neighbour limits are back; gc said:\n{}", show(&out));
    assert!(!Path::new(LIMITS_JOURNAL).exists(), "the journal of the raised limits is gone");
    let owned = labs_owned_by(pid);
    assert!(owned.is_empty(), "labs of the killed benchmark left: {owned:?}");
}

/// The labs whose record names `pid` as owner, with their phase.
fn labs_owned_by(pid: u32) -> Vec<(String, String)> {
    std::fs::read_dir("/run/vnet")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let s = std::fs::read_to_string(e.path().join("state.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            (v["owner_pid"].as_u64() == Some(pid as u64)).then(|| {
                let phase = v["phase"].as_str().unwrap_or_default().to_string();
                (e.file_name().to_string_lossy().to_string(), phase)
            })
        })
        .collect()
}

/// A lab named on the command line is held to the file's naming rules before anything touches
/// the records: `down ""` once removed the whole run directory, every lab's record with it.
#[test]
fn lab_names_on_the_command_line_never_reach_other_records() {
    let run = std::env::temp_dir().join(format!("vnet-test-{}-run", std::process::id()));
    let keep = run.join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("state.json"), "{}").unwrap();
    for (cmd, name, why) in [
        ("down", "", "lab name cannot be empty"),
        ("down", ".", "lab name `.` contains `.`"),
        ("down", "x/../keep", "lab name `x/../keep` contains `/`"),
        ("status", "..", "lab name `..` contains `.`"),
        ("check", "../keep", "contains `.`"),
        ("doctor", "keep/", "contains `/`"),
    ] {
        let out = vnet_cmd(None, &[cmd, name]).env("VNET_RUN_DIR", &run).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd} {name:?}: {}", show(&out));
        assert!(text(&out.stderr).contains(why), "{cmd} {name:?}: {}", show(&out));
        assert!(keep.join("state.json").exists(), "{cmd} {name:?} removed another lab's record");
    }
    let out = vnet_cmd(None, &["graph", "x/../keep"]).env("VNET_RUN_DIR", &run).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("is neither a topology file nor a lab"), "{}", show(&out));
    std::fs::remove_dir_all(&run).unwrap();
}

/// A running lab's nodes stay where they are: a new `netns_prefix`, or its host moved between
/// the machine's root namespace and an isolated one, is refused with nothing changed (it would
/// build the lab again beside itself and lose the old namespaces). A lab whose record was lost
/// gets its own (marked) namespaces back at the next `up`, so that `down` removes them.
#[test]
fn a_running_lab_keeps_its_namespaces_and_a_lost_record_finds_them_again() {
    require_root();
    // Plays the machine's root namespace, should a refusal ever let a build through.
    let scratch = Scratch::new("keep");
    let lab = unique_name("keep");
    let body = "nodes:\n  host:\n    interfaces: { br0: { kind: bridge }, v1: { master: br0 } }\n  a: { interfaces: { eth0: { addresses: [10.0.0.1/24] } } }\nlinks: [ { endpoints: [host:v1, a:eth0] } ]\n";
    let file = temp_topology(&lab, "yaml", &format!("name: {lab}\n{body}"));
    let moved = temp_topology(&format!("{lab}-moved"), "yaml", &format!("name: {lab}\nnetns_prefix: {lab}x-\n{body}"));
    let (file, moved) = (file.to_str().unwrap(), moved.to_str().unwrap());
    let _guard = DownGuard::new(&lab, Some(&scratch));
    let run = |args: &[&str]| vnet(Some(&scratch.name), args);
    let out = run(&["up", file, "--isolated-host"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut before = namespaces_with_prefix(&format!("{lab}-"));
    before.sort();
    assert_eq!(before, [format!("{lab}-a"), format!("{lab}-host")]);

    let out = run(&["up", moved, "--isolated-host"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr)
            .contains(&format!("the running lab `{lab}` has its namespaces named `{lab}-NODE`; this file names them `{lab}x-NODE` (`netns_prefix` changed")),
        "{}",
        show(&out)
    );
    assert!(text(&out.stderr).contains(&format!("keep `netns_prefix: {lab}-` while the lab runs, or run `vnet down {lab}` first")), "{}", show(&out));
    assert!(namespaces_with_prefix(&format!("{lab}x-")).is_empty(), "nothing built under the new prefix");

    for cmd in ["up", "plan"] {
        let out = run(&[cmd, file]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", show(&out));
        assert!(
            text(&out.stderr)
                .contains(&format!("node `host` of the running lab `{lab}` is in namespace `{lab}-host`; this file puts it in the machine's root namespace")),
            "{cmd}: {}",
            show(&out)
        );
        assert!(text(&out.stderr).contains("pass `--isolated-host`"), "{cmd}: {}", show(&out));
    }
    let in_scratch = std::process::Command::new("ip").args(["-n", &scratch.name, "-br", "link"]).output().unwrap();
    assert_eq!(text(&in_scratch.stdout).lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect::<Vec<_>>(), ["lo"], "nothing built in the root");
    let mut after = namespaces_with_prefix(&format!("{lab}-"));
    after.sort();
    assert_eq!(after, before, "the running lab is untouched");

    // The record is lost; the namespaces carry the lab's mark and are taken back.
    std::fs::remove_dir_all(Path::new("/run/vnet").join(&lab)).unwrap();
    let out = run(&["up", file, "--isolated-host"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new("/run/vnet").join(&lab).join("state.json")).unwrap()).unwrap();
    assert_eq!(st["netns"], serde_json::json!({ "a": format!("{lab}-a"), "host": format!("{lab}-host") }));
    let out = run(&["down", &lab]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("2 namespaces"), "{}", show(&out));
    assert_gone(&lab);
}

/// A `gc` run with another run directory (a test suite's `VNET_RUN_DIR`) finds the labs of this
/// one unrecorded in its own, yet leaves them alone: every run directory labs were recorded in
/// is listed machine-wide, and a lab recorded in another is that directory's to judge.
#[test]
fn gc_of_another_run_directory_leaves_this_ones_labs_alone() {
    require_root();
    let lab = unique_name("rundir");
    let file = temp_topology(&lab, "yaml", &star_topology(&lab, "host", 3, true));
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let before = namespaces_with_prefix(&format!("{lab}-"));
    assert_eq!(before.len(), 4, "{before:?}");

    let other = std::env::temp_dir().join(unique_name("vnet-test-rundir"));
    std::fs::create_dir_all(&other).unwrap();
    let out = vnet_cmd(None, &["gc", "--json"]).env("VNET_RUN_DIR", &other).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!text(&out.stdout).contains(&lab), "gc of {} took the lab for its own: {}", other.display(), show(&out));
    assert_eq!(namespaces_with_prefix(&format!("{lab}-")), before);
    let out = vnet(None, &["status", &lab]);
    assert_eq!(out.status.code(), Some(0), "the lab is whole: {}", show(&out));
    std::fs::remove_dir_all(&other).unwrap();

    // Its own gc still judges it: removed once its record is lost.
    std::fs::remove_file(vnet::state::lab_dir(&lab).join("state.json")).unwrap();
    let out = vnet(None, &["gc"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(namespaces_with_prefix(&format!("{lab}-")).is_empty(), "{}", show(&out));
}
