//! An independent check of vnet's kernel preflight: for each feature, whether iproute2 can use
//! it in a scratch namespace the test creates (and deletes). Shared by the host test
//! (tests/preflight.rs) and the stock-kernel test (tests/stock_preflight.rs) through `#[path]`.
#![allow(dead_code)]

use std::process::Command;

/// Features checked, with the iproute2 commands that succeed exactly when the kernel has it.
/// `p0`/`p1` (a veth pair) and `lo` exist when they run.
pub const FEATURES: &[(&str, &[&str])] = &[
    ("veth", &["ip link add q0 type veth peer name q1"]),
    ("bridge", &["ip link add b0 type bridge"]),
    ("dummy", &["ip link add d0 type dummy"]),
    ("macvlan", &["ip link add m0 link p0 type macvlan"]),
    ("ipvlan", &["ip link add i0 link p1 type ipvlan"]),
    ("vlan", &["ip link add v0 link p0 type vlan id 10"]),
    ("vxlan", &["ip link add x0 type vxlan id 42 dstport 4789"]),
    ("bond", &["ip link add bo0 type bond"]),
    ("vrf", &["ip link add vr0 type vrf table 10"]),
    ("bridge-vlan-filtering", &["ip link add b1 type bridge vlan_filtering 1"]),
    ("htb", &["tc qdisc add dev p0 root handle 1: htb"]),
    ("tbf", &["tc qdisc add dev p1 root tbf rate 1mbit burst 32k latency 50ms"]),
    ("netem", &["tc qdisc add dev lo root netem delay 1ms"]),
    ("clsact", &["tc qdisc add dev lo clsact"]),
    // The Open vSwitch kernel datapath's generic netlink family (loads the module on demand).
    ("openvswitch", &["genl ctrl get name ovs_datapath"]),
    (
        "esp",
        &["ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel \
           enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f \
           auth 'hmac(sha256)' 0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"],
    ),
];

/// Every feature's verdict, computed once per test process.
pub fn iproute2_verdicts() -> Vec<(String, bool)> {
    static V: std::sync::OnceLock<Vec<(String, bool)>> = std::sync::OnceLock::new();
    V.get_or_init(run_iproute2).clone()
}

/// Runs every feature's commands in a fresh namespace; returns (name, works) per feature.
fn run_iproute2() -> Vec<(String, bool)> {
    let ns = format!("vnet-oracle-{}", std::process::id());
    let sh = |cmd: &str| Command::new("ip").args(["netns", "exec", &ns, "sh", "-c", cmd]).output().expect("run ip netns exec");
    assert!(Command::new("ip").args(["netns", "add", &ns]).status().unwrap().success(), "ip netns add {ns}");
    let setup = sh("ip link add p0 type veth peer name p1");
    let out = FEATURES
        .iter()
        .map(|(name, cmds)| {
            let ok = cmds.iter().all(|c| sh(c).status.success());
            (name.to_string(), ok)
        })
        .collect();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(setup.status.success(), "the oracle needs veth: {}", String::from_utf8_lossy(&setup.stderr));
    out
}
