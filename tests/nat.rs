//! NAT and firewall in the real kernel: the seed NAT tutorial end to end (masquerade seen on
//! the wire by a capture inside "the internet"), a port forward, isolation rules, updates that
//! replace only the table, and removal.

mod common;
mod netcap;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use netcap::Capture;
use vnet::lifecycle;
use vnet::Lab;

/// `nft -j list table inet T` inside a namespace (None when the table is absent).
fn nft_table(netns: &str, table: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "nft", "-j", "list", "table", "inet", table]).output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No such file or directory"), "nft list table in {netns}: {err}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn rules_text(v: &serde_json::Value) -> String {
    v["nftables"].as_array().unwrap().iter().filter(|o| o.get("rule").is_some()).map(|o| o["rule"]["expr"].to_string()).collect::<Vec<_>>().join("\n")
}

fn reloaded(lab: &Lab) -> vnet::model::Loaded {
    vnet::model::load_topology(&lab.model().topology).unwrap()
}

#[test]
fn nat_tutorial_masquerades_and_forwards_a_port() {
    require_root();
    let lab = Lab::from_file(repo("examples/nat.yaml")).unwrap();
    let name = lab.name().to_string();
    let host = lab.node("host").netns().unwrap().to_string();
    let table = format!("vnet_{name}");

    // Independently: the table, its rules, the forwarding sysctl.
    let t = nft_table(&host, &table).expect("the lab's table exists in host");
    let rules = rules_text(&t);
    assert!(rules.contains("masquerade"), "masquerade rule: {rules}");
    assert!(rules.contains("192.168.1.0") && rules.contains("wan0"), "{rules}");
    assert!(rules.contains("dnat") && rules.contains("8080") && rules.contains("192.168.1.11"), "{rules}");
    let fwd = std::process::Command::new("ip").args(["netns", "exec", &host, "cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");
    // Only the lab's own table exists in its namespace.
    let all = std::process::Command::new("ip").args(["netns", "exec", &host, "nft", "list", "tables"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&all.stdout).trim(), format!("table inet {table}"));

    // Traffic: the internet has no route back to 192.168.1.0/24, so replies prove translation.
    assert!(ping(&lab, "ns1", "203.0.113.8"), "ns1 reaches the internet through NAT");
    assert!(ping(&lab, "ns2", "203.0.113.8"), "ns2 reaches the internet through NAT");

    // A capture inside the internet shows the translated source on the wire.
    let cap = lab.node("internet").run(Capture::open);
    let server = lab.node("internet").run(|| UdpSocket::bind("203.0.113.8:9999").unwrap());
    server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    lab.node("ns1").run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"hello-nat", "203.0.113.8:9999").unwrap();
    });
    let mut buf = [0u8; 64];
    let (n, peer) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello-nat");
    assert_eq!(peer.ip().to_string(), "203.0.113.1", "the server sees the host's address");
    let seen = cap.collect(Duration::from_millis(300));
    let udp: Vec<_> = seen.iter().filter(|p| p.proto == 17 && p.dst.to_string() == "203.0.113.8" && p.payload.ends_with(b"hello-nat")).collect();
    assert!(!udp.is_empty(), "the capture saw the datagram: {seen:?}");
    assert!(udp.iter().all(|p| p.src.to_string() == "203.0.113.1"), "translated source on the wire: {udp:?}");
    assert!(!seen.iter().any(|p| p.src.to_string().starts_with("192.168.1.")), "no untranslated address reaches the internet");

    // Port forward: internet -> host:8080 -> ns1:80.
    let listener = lab.node("ns1").run(|| TcpListener::bind("192.168.1.11:80").unwrap());
    let srv = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"pong").unwrap();
        peer.ip().to_string()
    });
    let reply = lab.node("internet").run(|| {
        let mut c = TcpStream::connect_timeout(&"203.0.113.1:8080".parse().unwrap(), Duration::from_secs(3)).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        b
    });
    assert_eq!(&reply, b"pong");
    assert_eq!(srv.join().unwrap(), "203.0.113.8", "DNAT keeps the client's address");

    // Unchanged: a second `up` plans nothing.
    let loaded = reloaded(&lab);
    assert!(lifecycle::plan(&loaded).unwrap().is_empty(), "{}", lifecycle::plan(&loaded).unwrap());
    assert!(lifecycle::up(&loaded, &Default::default()).unwrap().plan.is_empty());

    lab.down().unwrap();
    assert_gone(&name);
}

/// Leaves, each on its own subnet 10.`net`.N.0/24 behind router `r` (forwarding), whose
/// firewall drops a -> b. Built and up.
fn router_with_firewall(name: &str, net: u8, leaves: &[&str]) -> Lab {
    let mut b = Lab::builder(name);
    for (i, n) in leaves.iter().enumerate() {
        let (end, port) = (format!("{n}:eth0"), format!("r:{n}0"));
        b = b.link(&end, &port).address(&end, &format!("10.{net}.{}.2/24", i + 1)).address(&port, &format!("10.{net}.{}.1/24", i + 1)).route(
            n,
            "default",
            Some(&format!("10.{net}.{}.1", i + 1)),
            None,
        );
    }
    b.sysctl("r", "net.ipv4.ip_forward", "1")
        .with(|t| {
            let fw: vnet::model::netfeat::spec::FirewallSpec =
                serde_json::from_value(serde_json::json!({"rules": [{"action": "drop", "from": "a", "to": "b"}]})).unwrap();
            t.nodes.get_mut("r").unwrap().firewall = Some(fw);
        })
        .up()
        .unwrap()
}

#[test]
fn firewall_isolates_nodes_and_updates_replace_only_the_table() {
    require_root();
    let mut lab = router_with_firewall("fw", 61, &["a", "b", "c"]);
    let name = lab.name().to_string();
    let r = lab.node("r").netns().unwrap().to_string();
    let table = format!("vnet_{name}");
    let rules = rules_text(&nft_table(&r, &table).unwrap());
    assert!(rules.contains("drop") && rules.contains("10.61.1.2") && rules.contains("10.61.2.2"), "{rules}");
    assert!(!ping(&lab, "a", "10.61.2.2"), "a cannot reach b");
    assert!(ping(&lab, "a", "10.61.3.2"), "a reaches c");
    assert!(ping(&lab, "b", "10.61.3.2"), "b reaches c");

    // Default drop, only a -> c allowed (replies pass through conntrack).
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("r").unwrap().firewall =
        Some(serde_json::from_value(serde_json::json!({"policy": "drop", "rules": [{"action": "accept", "from": "a", "to": "c"}]})).unwrap());
    let rep = lab.update(t).unwrap();
    let ops: Vec<String> = rep.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops.len(), 1, "only the table is replaced: {ops:?}");
    assert!(ops[0].contains("nft") && ops[0].contains(&table), "{ops:?}");
    assert!(ping(&lab, "a", "10.61.3.2"), "a -> c allowed");
    assert!(!ping(&lab, "c", "10.61.1.2"), "c -> a not allowed");
    assert!(!ping(&lab, "b", "10.61.3.2"), "b -> c dropped by the policy");
    let t = nft_table(&r, &table).unwrap();
    let policy = t["nftables"].as_array().unwrap().iter().filter_map(|o| o.get("chain")).find(|c| c["name"] == "forward").unwrap()["policy"].clone();
    assert_eq!(policy, "drop");
    assert!(lifecycle::plan(&reloaded(&lab)).unwrap().is_empty(), "the update is stable");

    // Without a firewall the table goes, and only it.
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("r").unwrap().firewall = None;
    let rep = lab.update(t).unwrap();
    let ops: Vec<String> = rep.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops, vec![format!("- nft     r: table inet {table}")]);
    assert!(nft_table(&r, &table).is_none());
    assert!(ping(&lab, "a", "10.61.2.2"), "isolation lifted");
    drop(lab);
    assert_gone(&name);
}

#[test]
fn foreign_tables_are_left_alone() {
    require_root();
    let mut lab = Lab::builder("fwforeign")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.62.0.1/24")
        .address("b:eth0", "10.62.0.2/24")
        .with(|t| {
            t.nodes.get_mut("a").unwrap().firewall = Some(
                serde_json::from_value(serde_json::json!({"rules": [{"action": "drop", "to": "b", "proto": "tcp", "port": 22, "chain": "output"}]})).unwrap(),
            );
        })
        .up()
        .unwrap();
    let a = lab.node("a").netns().unwrap().to_string();
    // Someone else's table in the same namespace.
    let st = std::process::Command::new("ip").args(["netns", "exec", &a, "nft", "add table inet mine; add chain inet mine c"]).status().unwrap();
    assert!(st.success());
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("a").unwrap().firewall = None;
    lab.update(t).unwrap();
    let out = std::process::Command::new("ip").args(["netns", "exec", &a, "nft", "list", "tables"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "table inet mine", "vnet removed only its own table");
}

#[test]
fn nat_in_a_root_host_is_removed_at_down() {
    require_root();
    // A scratch namespace plays the machine's root namespace: vnet runs inside it (network
    // namespace only), with `host` not isolated, so the table goes into "the root".
    let root = format!("vnet-nfroot-{}", std::process::id());
    assert!(std::process::Command::new("ip").args(["netns", "add", &root]).status().unwrap().success());
    let lab = format!("nfroot-{}", std::process::id());
    let file = temp_topology(&lab, "yaml", &format!(
        "name: {lab}\nnodes:\n  host:\n    interfaces:\n      lan0: {{ addresses: [192.168.9.1/24] }}\n      wan0: {{ addresses: [203.0.113.1/24] }}\n    nat:\n      masquerade: [{{ source: 192.168.9.0/24, out: wan0 }}]\n  ns1:\n    interfaces:\n      eth0: {{ addresses: [192.168.9.2/24] }}\n  inet:\n    interfaces:\n      eth0: {{ addresses: [203.0.113.8/24] }}\nlinks:\n  - endpoints: [ns1:eth0, host:lan0]\n  - endpoints: [inet:eth0, host:wan0]\n"
    ));
    let in_root = |args: &[&str]| std::process::Command::new("nsenter").arg(format!("--net=/run/netns/{root}")).args(args).output().unwrap();
    let out = in_root(&[vnet_bin().to_str().unwrap(), "up", file.to_str().unwrap()]);
    let ok = out.status.success();
    let tables = in_root(&["nft", "list", "tables"]);
    let fwd = in_root(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let down = in_root(&[vnet_bin().to_str().unwrap(), "down", &lab]);
    let tables_after = in_root(&["nft", "list", "tables"]);
    let fwd_after = in_root(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let _ = std::process::Command::new("ip").args(["netns", "del", &root]).status();
    assert!(ok, "up: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), format!("table inet vnet_{lab}"));
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");
    assert!(down.status.success(), "down: {}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(String::from_utf8_lossy(&tables_after.stdout).trim(), "", "the lab's table left the root namespace");
    assert_eq!(String::from_utf8_lossy(&fwd_after.stdout).trim(), "0", "forwarding restored");
    assert_gone(&lab);
}

/// Handles of the rules in one chain of the lab's table (`nft -a`).
fn rule_handles(netns: &str, table: &str, chain: &str) -> Vec<u64> {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "nft", "-a", "-j", "list", "chain", "inet", table, chain]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"].as_array().unwrap().iter().filter_map(|o| o.get("rule")).map(|r| r["handle"].as_u64().unwrap()).collect()
}

/// `nft ARGS` inside a namespace, asserting success.
fn nft_in(netns: &str, args: &str) {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "nft", args]).output().unwrap();
    assert!(out.status.success(), "nft {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Rules deleted, added or changed by hand inside the lab's own table are noticed: `vnet plan`
/// rewrites the table (saying it was changed outside vnet), doctor reports it with that fix,
/// `up` puts the declared rules back in one transaction, and then nothing is left to do.
#[test]
fn hand_edits_inside_the_labs_table_are_put_back() {
    require_root();
    let lab = router_with_firewall("fwedit", 63, &["a", "b"]);
    let name = lab.name().to_string();
    let r = lab.node("r").netns().unwrap().to_string();
    let table = format!("vnet_{name}");
    let loaded = reloaded(&lab);
    assert!(lifecycle::plan(&loaded).unwrap().is_empty(), "{}", lifecycle::plan(&loaded).unwrap());
    assert!(!ping(&lab, "a", "10.63.2.2"), "a cannot reach b");
    let written = rules_text(&nft_table(&r, &table).unwrap());

    let plan_lines =
        || -> Vec<String> { lifecycle::plan(&loaded).unwrap().ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect() };
    let rewrite = |rules: usize| vec![format!("~ nft r: table inet {table} (1 rules) rewritten: changed outside vnet ({rules} rules where vnet wrote 1)")];
    let handles = rule_handles(&r, &table, "forward");
    assert_eq!(handles.len(), 1);
    let edits = [
        (format!("delete rule inet {table} forward handle {}", handles[0]), 0),
        (format!("add rule inet {table} forward ip saddr 10.63.9.9 accept"), 2),
        (format!("replace rule inet {table} forward handle {} ip saddr 10.63.1.2 ip daddr 10.63.2.2 accept", handles[0]), 1),
        (format!("add chain inet {table} mine"), 1),
    ];
    for (edit, rules) in edits {
        // Each edit starts from the table vnet wrote (`up` rewrote it with new handles).
        let edit = edit.replace(&format!("handle {}", handles[0]), &format!("handle {}", rule_handles(&r, &table, "forward")[0]));
        nft_in(&r, &edit);
        assert_eq!(plan_lines(), rewrite(rules), "after `nft {edit}`");
        let f = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
        let changed =
            f.iter().find(|x| x.code == "nft-changed" && x.node == "r").unwrap_or_else(|| panic!("no nft-changed finding after `nft {edit}`: {f:#?}"));
        assert!(changed.message.contains(&format!("{rules} rules where vnet wrote 1")), "{changed:?}");
        assert!(changed.fix.contains("rewritten: changed outside vnet"), "{changed:?}");
        let applied = lifecycle::up(&loaded, &Default::default()).unwrap().plan;
        assert_eq!(applied.len(), 1, "{applied}");
        assert!(plan_lines().is_empty(), "after up, nothing to do: {:?}", plan_lines());
        assert_eq!(rules_text(&nft_table(&r, &table).unwrap()), written, "the declared rules are back");
        assert!(!ping(&lab, "a", "10.63.2.2"), "the drop rule works again after `nft {edit}`");
    }

    // The table deleted by hand: doctor says it is gone.
    nft_in(&r, &format!("delete table inet {table}"));
    assert_eq!(plan_lines(), [format!("~ nft r: table inet {table} (1 rules)")]);
    let f = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    assert!(f.iter().any(|x| x.code == "nft-missing" && x.node == "r"), "{f:#?}");
    lifecycle::up(&loaded, &Default::default()).unwrap();
    assert!(plan_lines().is_empty());
    let f = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    assert!(!f.iter().any(|x| x.code.starts_with("nft-")), "{f:#?}");
    drop(lab);
    assert_gone(&name);
}
