//! Helpers shared by integration tests. Every test builds its labs with `vnet::Lab` (isolated
//! host, unique name), so tests can run in parallel and never touch the real root namespace.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Path of a file under the repository root.
pub fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The `vnet` binary built for this test run.
pub fn vnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vnet"))
}

/// Integration tests build real namespaces: they need root.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "integration tests need root (they build network namespaces)");
}

/// Runs `ip -n NETNS ARGS`, asserting success.
pub fn ip(netns: &str, args: &[&str]) {
    let out = Command::new("ip").args(["-n", netns]).args(args).output().unwrap();
    assert!(out.status.success(), "ip -n {netns} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A switch node `sw` (bridge br0 with port p0) cabled to `h:up0`, and empty nodes m1, m2 to
/// receive macvlans of `up0` (see `macvlans`).
pub fn macvlan_switch(lab: &str) -> String {
    format!(
        "name: {lab}
nodes:
  sw:
    interfaces:
      br0: {{ kind: bridge, stp: false }}
      p0: {{ master: br0 }}
  h: {{}}
  m1: {{}}
  m2: {{}}
links:
  - endpoints: [h:up0, sw:p0]
"
    )
}

/// Two macvlans on h:up0 in the given mode, moved into m1 and m2 as mv1 and mv2 with
/// addresses SUBNET.11/24 and SUBNET.12/24, made by hand (what the doctor and trace must read).
pub fn macvlans(lab: &vnet::Lab, mode: &str, subnet: &str) {
    let h = lab.node("h").netns().unwrap().to_string();
    for (i, m) in ["m1", "m2"].iter().enumerate() {
        let ns = lab.node(m).netns().unwrap().to_string();
        let name = format!("mv{}", i + 1);
        ip(&h, &["link", "add", "link", "up0", "name", &name, "type", "macvlan", "mode", mode]);
        ip(&h, &["link", "set", &name, "netns", &ns]);
        ip(&ns, &["addr", "add", &format!("{subnet}.{}/24", 11 + i), "dev", &name]);
        ip(&ns, &["link", "set", &name, "up"]);
    }
}

/// `ip -j ARGS` in a namespace (None: the test's own namespace), parsed.
pub fn ip_json(netns: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.arg("-j").args(args);
    let out = cmd.output().expect("run ip");
    assert!(out.status.success(), "ip {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()))
}

/// The `ip -j link` entry of one device.
pub fn ip_link(netns: Option<&str>, dev: &str) -> Option<Value> {
    ip_json(netns, &["-d", "link", "show"]).as_array()?.iter().find(|l| l["ifname"] == dev).cloned()
}

/// Addresses (`a.b.c.d/len`) of a device as `ip -j addr` shows them.
pub fn ip_addrs(netns: Option<&str>, dev: &str) -> Vec<String> {
    let v = ip_json(netns, &["addr", "show", "dev", dev]);
    let mut out = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            out.push(format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]));
        }
    }
    out
}

/// One ICMP echo from a node (iputils ping; installed by scripts/setup).
pub fn ping(lab: &vnet::Lab, node: &str, addr: &str) -> bool {
    lab.node(node).command("ping").args(["-c", "1", "-W", "2", addr]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Whether `node` reaches `addr` (three echoes, one answer is enough).
pub fn reach(lab: &vnet::Lab, node: &str, addr: &str) -> bool {
    lab.node(node).command("ping").args(["-c", "3", "-i", "0.3", "-W", "1", addr]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Pings until one answer, for up to about 4 s: after a flow or port change, a neighbour
/// entry that failed while traffic was dropped makes the first packet fail at once (and a
/// single `ping -c1` exit), so each try is its own ping.
pub fn reach_retrying(lab: &vnet::Lab, node: &str, addr: &str) -> bool {
    for _ in 0..8 {
        let ok = lab.node(node).command("ping").args(["-c", "1", "-W", "1", addr]).output().map(|o| o.status.success()).unwrap_or(false);
        if ok {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    false
}

/// `ovs-vsctl ARGS` against the database of the OVS instance in `dir`, asserting success.
pub fn vsctl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("ovs-vsctl").arg(format!("--db=unix:{}/db.sock", dir.display())).args(args).output().unwrap();
    assert!(out.status.success(), "ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Namespaces under /run/netns whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with(prefix)).collect())
        .unwrap_or_default()
}

/// Asserts that nothing of a lab is left: no namespace, no record.
pub fn assert_gone(lab: &str) {
    let left = namespaces_with_prefix(&format!("{lab}-"));
    assert!(left.is_empty(), "namespaces of lab {lab} left behind: {left:?}");
    assert!(!std::path::Path::new("/run/vnet").join(lab).exists(), "record of lab {lab} left behind");
}

/// This test process's directory of topology files, removed when the process exits.
fn temp_dir() -> PathBuf {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn remove() {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("vnet-test-{}", std::process::id())));
    }
    // SAFETY: registers a plain function; the test harness ends the process with exit().
    ONCE.call_once(|| unsafe {
        libc::atexit(remove);
    });
    std::env::temp_dir().join(format!("vnet-test-{}", std::process::id()))
}

/// Writes a topology to a temporary file with the given extension and returns its path.
pub fn temp_topology(name: &str, ext: &str, text: &str) -> PathBuf {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.{ext}"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Declares what a test needs from the kernel, by the preflight's feature names: device kinds
/// (`ipvlan`, `vlan`, `dummy`, `bond`, ...), qdiscs (`netem`, `htb`, ..., or `qdisc:NAME`), `esp`,
/// `bridge-vlan-filtering` (see `vnet::lifecycle::preflight::Feature::parse`). Tests in
/// `tests/stock_*.rs` run in the stock-kernel VM lane and call this first: if the running kernel
/// lacks a feature the test fails loudly instead of passing without testing.
pub fn require(features: &[&str]) {
    let missing = vnet::lifecycle::preflight::missing_named(features).expect("probe the kernel");
    assert!(
        missing.is_empty(),
        "this test requires {missing:?}, which the running kernel ({}) lacks; it belongs to the stock-kernel lane",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
    );
}

/// Runs the `vnet` binary (in `scratch`'s network namespace when given, entered with nsenter
/// so that /run/netns stays shared) and returns its output.
pub fn vnet(scratch: Option<&str>, args: &[&str]) -> std::process::Output {
    vnet_cmd(scratch, args).output().expect("run vnet")
}

/// The `vnet` command line, not started yet.
pub fn vnet_cmd(scratch: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = match scratch {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(vnet_bin());
            c
        }
        None => Command::new(vnet_bin()),
    };
    cmd.args(args).env("NO_COLOR", "1");
    cmd
}

/// A network namespace created by the test (`ip netns add`) and deleted when dropped. Used as
/// the "root" of a non-isolated lab, or as a foreign namespace.
pub struct Scratch {
    pub name: String,
}

impl Scratch {
    pub fn new(base: &str) -> Scratch {
        let name = vnet::lab::unique_name(base);
        let out = Command::new("ip").args(["netns", "add", &name]).output().unwrap();
        assert!(out.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr));
        Scratch { name }
    }

    /// Runs `ip -n SCRATCH ARGS`, asserting success.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().unwrap();
        assert!(out.status.success(), "ip -n {} {args:?}: {}", self.name, String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Takes a lab down with `vnet down` when dropped (also when the test panics), in the
/// namespace its `vnet up` ran in.
pub struct DownGuard {
    pub lab: String,
    pub scratch: Option<String>,
}

impl DownGuard {
    pub fn new(lab: &str, scratch: Option<&Scratch>) -> DownGuard {
        DownGuard { lab: lab.to_string(), scratch: scratch.map(|s| s.name.clone()) }
    }
}

impl Drop for DownGuard {
    fn drop(&mut self) {
        let _ = vnet(self.scratch.as_deref(), &["down", &self.lab]);
    }
}

/// Names of devices in a namespace (None: the test's own) whose alias is `alias`.
pub fn devices_with_alias(netns: Option<&str>, alias: &str) -> Vec<String> {
    ip_json(netns, &["-d", "link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifalias"].as_str() == Some(alias))
        .map(|l| l["ifname"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts that nothing of a lab is left anywhere: namespaces, record, and devices carrying its
/// mark in `root` (a scratch namespace playing the root) and in the real root namespace.
pub fn assert_nothing_left(lab: &str, root: Option<&str>) {
    assert_gone(lab);
    let mark = format!("vnet:{lab}");
    if let Some(r) = root {
        let left = devices_with_alias(Some(r), &mark);
        assert!(left.is_empty(), "marked devices of {lab} left in {r}: {left:?}");
    }
    let left = devices_with_alias(None, &mark);
    assert!(left.is_empty(), "marked devices of {lab} left in the root namespace: {left:?}");
}

/// A star: node `hub` with a bridge and one port per leaf, leaves `n1..nN` each linked to it.
pub fn star_topology(lab: &str, hub: &str, leaves: usize, isolated: bool) -> String {
    let mut s = format!("name: {lab}\nisolated_host: {isolated}\nnodes:\n  {hub}:\n    interfaces:\n      br0: {{ kind: bridge }}\n");
    for i in 1..=leaves {
        s.push_str(&format!("      p{i}: {{ master: br0 }}\n"));
    }
    for i in 1..=leaves {
        s.push_str(&format!("  n{i}:\n    interfaces:\n      eth0: {{ addresses: [10.77.{}.{}/16] }}\n", i / 250, i % 250 + 1));
    }
    s.push_str("links:\n");
    for i in 1..=leaves {
        s.push_str(&format!("  - endpoints: [n{i}:eth0, {hub}:p{i}]\n"));
    }
    s
}
