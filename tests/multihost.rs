//! A lab across two "hosts". The hosts are namespaces of an underlay lab (built with
//! `vnet::Lab`: h1 and h2 on a switch), each running `vnet up FILE --host NAME` for its share,
//! entered with `nsenter --net=` so that the host's namespace is that vnet's root, each with a
//! record directory of its own (VNET_RUN_DIR). Links between hosts are VXLAN tunnels over the
//! underlay: reachable as declared, isolated per link, MTU accounted; `down` on each host
//! removes its share and nothing else; nothing is ever added to the hosts' own namespaces.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;
use vnet::model::hosts::vni_for;
use vnet::model::Endpoint;
use vnet::Lab;

const UNDERLAY: &str = r#"
name: ul
nodes:
  sw: { interfaces: { br0: { kind: bridge }, p1: { master: br0 }, p2: { master: br0 } } }
  h1: { interfaces: { eth0: { addresses: [192.168.200.1/24] } } }
  h2: { interfaces: { eth0: { addresses: [192.168.200.2/24] } } }
links:
  - endpoints: [h1:eth0, sw:p1]
  - endpoints: [h2:eth0, sw:p2]
"#;

/// examples/multihost.yaml under a unique name: a and b, one link across hosts; d and c,
/// another one, same subnet, another VNI; a and e, a link on h1; e reaches b through a.
fn multi(name: &str) -> String {
    let text = std::fs::read_to_string(repo("examples/multihost.yaml")).unwrap();
    assert!(text.contains("\nname: multihost\n"));
    text.replace("\nname: multihost\n", &format!("\nname: {name}\n"))
}

/// One host: its namespace (a node of the underlay lab) and its record directory.
struct Host {
    ns: String,
    run_dir: PathBuf,
}

impl Host {
    fn vnet(&self, args: &[&str]) -> std::process::Output {
        vnet_cmd(Some(&self.ns), args).env("VNET_RUN_DIR", &self.run_dir).output().expect("run vnet")
    }
    fn devices(&self) -> Vec<String> {
        ip_json(Some(&self.ns), &["link", "show"]).as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_string()).collect()
    }
}

/// Removes the hosts' record directories when dropped, after the shares' guards (declared
/// later, dropped earlier) ran `down`.
struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Takes a share down on its host when dropped (also when the test panics).
struct ShareGuard<'a>(&'a Host, String);

impl Drop for ShareGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.vnet(&["down", &self.1]);
    }
}

fn ping(ns: &str, args: &[&str]) -> bool {
    Command::new("ip").args(["netns", "exec", ns, "ping", "-c", "2", "-i", "0.3", "-W", "1"]).args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn two_hosts_build_their_shares_joined_by_vxlan_tunnels() {
    require_root();
    let ul = Lab::from_file(temp_topology("mh-ul", "yaml", UNDERLAY)).unwrap();
    let tmp = std::env::temp_dir().join(format!("vnet-mh-{}", std::process::id()));
    let _tmp = TmpDir(tmp.clone());
    let hosts: Vec<Host> = ["h1", "h2"].iter().map(|h| Host { ns: ul.node(h).netns().unwrap().to_string(), run_dir: tmp.join(h) }).collect();
    let before: Vec<Vec<String>> = hosts.iter().map(Host::devices).collect();
    let name = vnet::lab::unique_name("mh");
    let file = temp_topology(&name, "yaml", &multi(&name));
    let f = file.to_str().unwrap();

    // Without --host, or with a host the lab lacks: refused, nothing made.
    let o = hosts[0].vnet(&["up", f]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("spans hosts (h1, h2): each host builds its share with `vnet up FILE --host NAME`"), "{}", text(&o));
    let o = hosts[0].vnet(&["up", f, "--host", "h3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("has no host `h3` (its hosts: h1, h2)"), "{}", text(&o));
    assert!(namespaces_with_prefix(&format!("{name}-")).is_empty());

    // Each host builds its share.
    let plan = hosts[0].vnet(&["plan", f, "--host", "h1"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("vxlan"), "the plan creates tunnel ends: {}", text(&plan));
    let _g1 = ShareGuard(&hosts[0], name.clone());
    let _g2 = ShareGuard(&hosts[1], name.clone());
    for (h, host) in ["h1", "h2"].iter().zip(&hosts) {
        let o = host.vnet(&["up", f, "--host", h]);
        assert!(o.status.success(), "up --host {h}: {}", text(&o));
    }
    let ns = |n: &str| format!("{name}-{n}");
    let mut mine = namespaces_with_prefix(&format!("{name}-"));
    mine.sort();
    assert_eq!(mine, ["a", "b", "c", "d", "e"].map(ns).to_vec());
    for (host, h) in hosts.iter().zip(["h1", "h2"]) {
        let st: Value = serde_json::from_slice(&host.vnet(&["status", &name, "--json"]).stdout).unwrap();
        let nodes: Vec<&str> = st[0]["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
        let want: &[&str] = if h == "h1" { &["a", "d", "e"] } else { &["b", "c"] };
        let mut got = nodes.clone();
        got.sort();
        assert_eq!(got, want, "status on {h} shows its share");
    }

    // Tunnel ends: VXLAN devices in the nodes, one VNI per link, the underlay's addresses, the
    // MTU the underlay leaves (1500 - 50) unless the link sets one; same-host links stay veths.
    let a0 = ip_link(Some(&ns("a")), "eth0").unwrap();
    let d = &a0["linkinfo"]["info_data"];
    assert_eq!(a0["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(d["id"], vni_for(&name, &Endpoint::new("a", "eth0"), &Endpoint::new("b", "eth0")));
    assert_eq!(d["remote"], "192.168.200.2");
    assert_eq!(d["local"], "192.168.200.1");
    assert_eq!(d["port"], 4789);
    assert_eq!(a0["mtu"], 1450);
    assert!(a0.get("link_netnsid").is_some(), "its socket is in the host's namespace");
    let b0 = ip_link(Some(&ns("b")), "eth0").unwrap();
    assert_eq!(b0["linkinfo"]["info_data"]["id"], d["id"]);
    assert_eq!(b0["linkinfo"]["info_data"]["remote"], "192.168.200.1");
    let d0 = ip_link(Some(&ns("d")), "eth0").unwrap();
    assert_ne!(d0["linkinfo"]["info_data"]["id"], d["id"]);
    assert_eq!(d0["mtu"], 1400);
    assert_eq!(ip_link(Some(&ns("a")), "eth1").unwrap()["linkinfo"]["info_kind"], "veth");
    for (host, b) in hosts.iter().zip(&before) {
        assert_eq!(&host.devices(), b, "nothing was added to the host's own namespace");
    }

    // Reachability as declared, isolation per link (same subnet, other VNI), routing through a.
    assert!(ping(&ns("a"), &["10.50.0.2"]), "a reaches b through its tunnel");
    assert!(ping(&ns("c"), &["10.50.0.4"]), "c reaches d through its tunnel");
    assert!(!ping(&ns("a"), &["10.50.0.3"]), "a must not reach c: another link, another VNI");
    assert!(!ping(&ns("d"), &["10.50.0.2"]), "d must not reach b");
    assert!(ping(&ns("e"), &["10.50.0.2"]), "e reaches b on the other host, routed by a");
    // The whole overlay MTU crosses without fragmentation; one byte more does not fit.
    assert!(ping(&ns("a"), &["-M", "do", "-s", "1422", "10.50.0.2"]), "a 1450-byte packet crosses the tunnel");
    assert!(!ping(&ns("a"), &["-M", "do", "-s", "1423", "10.50.0.2"]));
    assert!(ping(&ns("d"), &["-M", "do", "-s", "1372", "10.50.0.3"]));

    // Up again on a host: nothing to do.
    let o = hosts[1].vnet(&["up", f, "--host", "h2"]);
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));

    // down on h1 removes h1's share only.
    let o = hosts[0].vnet(&["down", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let mut left = namespaces_with_prefix(&format!("{name}-"));
    left.sort();
    assert_eq!(left, vec![ns("b"), ns("c")]);
    assert!(!ping(&ns("b"), &["10.50.0.1"]), "a is gone");
    assert!(!hosts[0].run_dir.join(&name).exists());
    assert!(hosts[1].run_dir.join(&name).join("state.json").exists());
    let o = hosts[1].vnet(&["down", &name]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(namespaces_with_prefix(&format!("{name}-")).is_empty());
    for (host, b) in hosts.iter().zip(&before) {
        assert_eq!(&host.devices(), b);
        assert!(!host.run_dir.join(&name).exists());
    }
}
