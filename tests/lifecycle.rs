//! Labs brought up and down in the real kernel (isolated host), checked through vnet's own
//! observer, independently through `ip -j`, and with real traffic.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use common::*;
use vnet::lifecycle;
use vnet::Lab;

#[test]
fn bridge_tutorial_builds_as_declared_and_carries_traffic() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let name = lab.name().to_string();
    let host = lab.node("host").netns().unwrap().to_string();
    let ns1 = lab.node("ns1").netns().unwrap().to_string();

    // Independently, through iproute2.
    let br = ip_link(Some(&host), "br1").expect("br1 exists");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    let flags: Vec<&str> = br["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(flags.contains(&"UP") && flags.contains(&"LOWER_UP"), "br1 is up with carrier: {flags:?}");
    let veth1 = ip_link(Some(&host), "veth1").expect("veth1 exists");
    assert_eq!(veth1["master"], "br1");
    assert_eq!(veth1["linkinfo"]["info_kind"], "veth");
    assert_eq!(ip_addrs(Some(&host), "br1"), vec!["192.168.1.10/24"]);
    assert_eq!(ip_addrs(Some(&ns1), "eth0"), vec!["192.168.1.11/24"]);
    let routes = ip_json(Some(&ns1), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "192.168.1.10");
    assert_eq!(routes[0]["dev"], "eth0");
    let fwd = std::process::Command::new("ip").args(["netns", "exec", &host, "cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");

    // Through vnet's observer.
    let st = lab.status().unwrap();
    let n1 = st.nodes.iter().find(|n| n.node == "ns1").unwrap();
    let eth0 = n1.devices.iter().find(|d| d.name == "eth0").unwrap();
    assert!(eth0.up && eth0.carrier);
    assert_eq!(eth0.peer.as_deref(), Some("host:veth1"));
    assert_eq!(eth0.addresses, vec!["192.168.1.11/24"]);
    assert!(n1.routes.iter().any(|r| r.dst == "default" && r.via.as_deref() == Some("192.168.1.10")));

    // ICMP both ways and through the bridge's address.
    assert!(ping(&lab, "ns1", "192.168.1.12"));
    assert!(ping(&lab, "ns2", "192.168.1.11"));
    assert!(ping(&lab, "ns1", "192.168.1.10"));

    // TCP from ns1 to a listener in ns2.
    let listener = lab.node("ns2").run(|| TcpListener::bind("192.168.1.12:7000").unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"world").unwrap();
        (buf, peer.ip().to_string())
    });
    let reply = lab.node("ns1").run(|| {
        let mut c = TcpStream::connect("192.168.1.12:7000").unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let (got, peer) = server.join().unwrap();
    assert_eq!(&got, b"hello");
    assert_eq!(&reply, b"world");
    assert_eq!(peer, "192.168.1.11");

    let report = lab.down().unwrap();
    assert_eq!(report.namespaces.len(), 3);
    assert_gone(&name);
}

#[test]
fn second_up_changes_nothing_and_edits_apply_only_the_difference() {
    require_root();
    let mut lab = Lab::builder("incr").link("a:eth0", "b:eth0").address("a:eth0", "10.9.0.1/24").address("b:eth0", "10.9.0.2/24").node("c").up().unwrap();
    let name = lab.name().to_string();
    let loaded = vnet::model::load_topology(&{
        let mut t = lab.model().topology.clone();
        t.name = name.clone();
        t
    })
    .unwrap();
    assert!(lifecycle::plan(&loaded).unwrap().is_empty(), "a running, unchanged lab plans nothing");
    let again = lifecycle::up(&loaded, &Default::default()).unwrap();
    assert!(again.plan.is_empty());

    // Edit: new address on a (the lab's first IPv6: link-local addresses on), MTU change on b,
    // node c removed, new node d with a route.
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("a").unwrap().interfaces.get_mut("eth0").unwrap().addresses.push("fd09::1/64".into());
    t.nodes.get_mut("b").unwrap().interfaces.get_mut("eth0").unwrap().mtu = Some(1400);
    t.nodes.shift_remove("c");
    t.nodes.insert("d".into(), Default::default());
    let r = lab.update(t).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        ops,
        vec![
            format!("+ netns d ({name}-d)"),
            "~ link b:eth0 mtu 1400".to_string(),
            "~ link a:eth0 ipv6 link-local on".to_string(),
            "~ link b:eth0 ipv6 link-local on".to_string(),
            "+ addr a:eth0 fd09::1/64".to_string(),
            format!("- netns c ({name}-c)"),
        ],
        "only the difference is applied"
    );
    let b = lab.node("b").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&b), "eth0").unwrap()["mtu"], 1400);
    assert!(namespaces_with_prefix(&format!("{name}-c")).is_empty());
    assert!(ping(&lab, "a", "10.9.0.2"));
    drop(lab);
    assert_gone(&name);
}

/// Labs that declare no IPv6 get no IPv6 link-local addresses (quieter, faster at scale); labs
/// that do get them, so neighbour discovery works.
#[test]
fn ipv6_link_local_follows_the_lab() {
    require_root();
    let count_ll = |lab: &Lab| -> usize {
        lab.model()
            .nodes
            .keys()
            .map(|n| {
                let ns = lab.node(n).netns().unwrap().to_string();
                let v = ip_json(Some(&ns), &["-6", "addr", "show"]);
                v.as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
                    .filter(|a| a["local"].as_str().is_some_and(|x| x.starts_with("fe80")))
                    .count()
            })
            .sum()
    };
    let v4 = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    assert_eq!(count_ll(&v4), 0, "no IPv6 declared: no link-local addresses");
    drop(v4);
    let v6 = Lab::from_file(repo("examples/two-ns.yaml")).unwrap();
    // The kernel makes a link-local address when it sees the carrier, which its linkwatch work
    // reports after `up` returned (by up to a second on a busy machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count_ll(&v6) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(count_ll(&v6), 2, "IPv6 declared: each veth end has its link-local address");
    assert!(v6.node("a").command("ping").args(["-6", "-c1", "-W2", "fd00::2"]).status().unwrap().success());
    // One deleted by hand: the kernel would not make it again until the device goes down and
    // up; the next `up` does.
    let a_ns = v6.node("a").netns().unwrap().to_string();
    let link_local = || ip_addrs(Some(&a_ns), "eth0").into_iter().filter(|a| a.starts_with("fe80")).collect::<Vec<_>>();
    let ll = link_local();
    assert_eq!(ll.len(), 1, "{ll:?}");
    ip(&a_ns, &["addr", "del", &ll[0], "dev", "eth0"]);
    assert_eq!(count_ll(&v6), 1);
    let mut v6 = v6;
    let r = v6.update(v6.model().topology.clone()).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(ops, ["~ link a:eth0 ipv6 link-local on"]);
    assert_eq!(count_ll(&v6), 2, "the deleted link-local address is back");
    assert_eq!(link_local(), ll, "the same EUI-64 address");
    assert!(v6.update(v6.model().topology.clone()).unwrap().plan.is_empty(), "and nothing more to do");
}

/// A chain of `n` routers (every other node must lose its devices): text of the lab.
fn chain_lab(lab: &str, n: usize) -> String {
    let mut t = format!("name: {lab}\nnodes:\n");
    for i in 1..=n {
        t.push_str(&format!("  r{i}:\n    sysctls: {{ net.ipv4.ip_forward: 1 }}\n"));
    }
    t.push_str("links:\n");
    for i in 1..n {
        t.push_str(&format!("  - endpoints: [r{i}:e1, r{}:e0]\n", i + 1));
    }
    t
}

/// A veth pair between a lab namespace and a namespace of the test: its end in the test's
/// namespace disappears exactly when the kernel has destroyed the lab namespace's devices.
fn tether(scratch: &Scratch, netns: &str, name: &str) {
    scratch.ip(&["link", "add", name, "type", "veth", "peer", "name", name, "netns", netns]);
}

#[test]
fn down_of_a_long_chain_returns_when_the_kernel_has_destroyed_every_device() {
    require_root();
    let lab = vnet::lab::unique_name("chain");
    let file = temp_topology(&lab, "yaml", &chain_lab(&lab, 200));
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", "--isolated-host", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Tethers to the first, a middle and the last router.
    let scratch = Scratch::new("tether");
    for (i, r) in [1, 100, 200].iter().enumerate() {
        tether(&scratch, &format!("{lab}-r{r}"), &format!("t{i}"));
    }
    assert!(ip_link(Some(&scratch.name), "t2").is_some());
    let out = vnet(None, &["down", &lab]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for t in ["t0", "t1", "t2"] {
        assert!(ip_link(Some(&scratch.name), t).is_none(), "{t}: the lab's namespace was still alive when `down` returned");
    }
    assert_nothing_left(&lab, None);
}

#[test]
fn down_deletes_the_devices_of_a_namespace_a_process_still_uses() {
    require_root();
    let lab = vnet::lab::unique_name("chainbusy");
    // r6 also holds a bridge: a device that dies with no peer.
    let text = chain_lab(&lab, 12).replace("  r6:\n", "  r6:\n    interfaces:\n      br6: { kind: bridge }\n");
    let file = temp_topology(&lab, "yaml", &text);
    let _guard = DownGuard::new(&lab, None);
    let out = vnet(None, &["up", "--isolated-host", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A process sits in r6 (as a forgotten `vnet exec` shell would): the namespace outlives
    // `down`, but the lab's devices in it must not.
    let mut sleeper = std::process::Command::new("ip").args(["netns", "exec", &format!("{lab}-r6"), "sleep", "30"]).spawn().unwrap();
    let ns = format!("/proc/{}/ns/net", sleeper.id());
    let t = std::time::Instant::now();
    while std::fs::read_link(&ns).ok() == std::fs::read_link("/proc/self/ns/net").ok() {
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    let out = vnet(None, &["down", &lab]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left = std::process::Command::new("nsenter").args([format!("--net={ns}"), "ip".into(), "-br".into(), "link".into()]).output().unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let left = String::from_utf8_lossy(&left.stdout).to_string();
    assert_eq!(
        left.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect::<Vec<_>>(),
        ["lo"],
        "only lo is left in the namespace still in use:\n{left}"
    );
    assert!(took < std::time::Duration::from_secs(10), "down took {took:?}");
    assert_nothing_left(&lab, None);
}

/// Queues of a device as the kernel reports them (`ip -d -j link`).
fn queues(netns: &str, dev: &str) -> (u64, u64) {
    let l = ip_link(Some(netns), dev).unwrap_or_else(|| panic!("{netns}: no {dev}"));
    (l["num_tx_queues"].as_u64().unwrap(), l["num_rx_queues"].as_u64().unwrap())
}

/// veth ends get one transmit and one receive queue unless the file says otherwise (the
/// kernel's default is one per CPU); declaring `queues` on a running lab re-creates the pair
/// with each end's own count, and the pair carries traffic.
#[test]
fn veth_queues_are_one_unless_declared_and_a_change_recreates_the_pair() {
    use vnet::model::kind::{KindSpec, VethSpec};
    require_root();
    let mut lab = Lab::from_file(repo("examples/two-ns.yaml")).unwrap();
    let name = lab.name().to_string();
    let (a, b) = (lab.node("a").netns().unwrap().to_string(), lab.node("b").netns().unwrap().to_string());
    assert_eq!(queues(&a, "eth0"), (1, 1));
    assert_eq!(queues(&b, "eth0"), (1, 1));
    let first = ip_link(Some(&b), "eth0").unwrap()["ifindex"].clone();

    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("b").unwrap().interfaces.get_mut("eth0").unwrap().kind = KindSpec::Veth(VethSpec { queues: Some(4), ..Default::default() });
    let r = lab.update(t.clone()).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string()).collect();
    assert!(ops.iter().any(|o| o.starts_with("- link") && o.contains("eth0")), "{ops:?}");
    assert_eq!(queues(&a, "eth0"), (1, 1));
    assert_eq!(queues(&b, "eth0"), (4, 4));
    assert_ne!(ip_link(Some(&b), "eth0").unwrap()["ifindex"], first, "b:eth0 was made again");
    assert!(ping(&lab, "a", "10.0.0.2"));
    assert!(lab.update(t).unwrap().plan.is_empty(), "as declared: nothing to do");
    drop(lab);
    assert_gone(&name);
}

// ---------------------------------------------------------------------------------------------
// One `up` reaches the declared state even where the kernel changes more than it was asked
// ---------------------------------------------------------------------------------------------

/// `vnet up FILE` of `text` (written to a file named after `lab`), asserting success; then
/// `vnet plan FILE` must have nothing left to do.
fn up_until_nothing_to_do(lab: &str, text: &str) -> String {
    let file = temp_topology(lab, "yaml", text);
    let out = vnet(None, &["up", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "up: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let plan = vnet(None, &["plan", file.to_str().unwrap()]);
    let left = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(plan.status.success() && left.contains("nothing to do"), "one up left work for the next:\n{left}");
    stdout
}

/// The gateway of a namespace's default route (None: no default route).
fn default_gateway(netns: &str) -> Option<String> {
    ip_json(Some(netns), &["route", "show", "default"]).as_array()?.first()?["gateway"].as_str().map(str::to_string)
}

/// The MTU of a device.
fn mtu(netns: &str, dev: &str) -> u64 {
    ip_link(Some(netns), dev).unwrap_or_else(|| panic!("{netns}: no {dev}"))["mtu"].as_u64().unwrap()
}

const ROUTED: &str = "name: LAB
isolated_host: true
nodes:
  a:
    interfaces: { eth0: { addresses: [10.0.0.1/24] } }
    routes: [ { to: default, via: 10.0.0.2 } ]
  b:
    interfaces: { eth0: { addresses: [10.0.0.2/24] } }
links:
  - endpoints: [a:eth0, b:eth0]
";

/// The kernel flushes the routes through an address when the address goes: a changed address
/// or prefix re-adds the default route in the same `up`.
#[test]
fn an_address_change_keeps_the_routes_the_kernel_flushed_with_the_old_one() {
    require_root();
    let lab = vnet::lab::unique_name("addrflush");
    let _guard = DownGuard::new(&lab, None);
    let text = ROUTED.replace("LAB", &lab);
    up_until_nothing_to_do(&lab, &text);
    let a = format!("{lab}-a");
    assert_eq!(default_gateway(&a).as_deref(), Some("10.0.0.2"));
    for addr in ["10.0.0.5/24", "10.0.0.5/16"] {
        up_until_nothing_to_do(&lab, &text.replace("10.0.0.1/24", addr));
        assert_eq!(ip_addrs(Some(&a), "eth0"), [addr]);
        assert_eq!(default_gateway(&a).as_deref(), Some("10.0.0.2"), "after the address became {addr}");
    }
}

/// Deleting a primary IPv4 address makes the kernel delete the secondaries of its subnet: an
/// edit that drops the primary and one secondary but keeps another ends with exactly the
/// declared addresses, the default route back, and traffic to the kept one, in one `up`.
#[test]
fn dropping_a_primary_address_keeps_the_declared_secondaries() {
    require_root();
    let lab = vnet::lab::unique_name("secaddr");
    let _guard = DownGuard::new(&lab, None);
    let text = ROUTED.replace("LAB", &lab);
    up_until_nothing_to_do(&lab, &text.replace("[10.0.0.1/24]", "[10.0.0.1/24, 10.0.0.3/24, 10.0.0.4/24]"));
    let (a, b) = (format!("{lab}-a"), format!("{lab}-b"));
    assert_eq!(ip_addrs(Some(&a), "eth0"), ["10.0.0.1/24", "10.0.0.3/24", "10.0.0.4/24"]);
    up_until_nothing_to_do(&lab, &text.replace("[10.0.0.1/24]", "[10.0.0.4/24]"));
    assert_eq!(ip_addrs(Some(&a), "eth0"), ["10.0.0.4/24"]);
    assert_eq!(default_gateway(&a).as_deref(), Some("10.0.0.2"));
    assert!(reach_from(&b, "10.0.0.4"), "b reaches the address that stayed");
    // All of them going at once (secondaries first, none already gone).
    up_until_nothing_to_do(&lab, &text.replace("[10.0.0.1/24]", "[10.0.0.1/24, 10.0.0.3/24]"));
    up_until_nothing_to_do(&lab, &text.replace("[10.0.0.1/24]", "[10.9.0.1/24]").replace("via: 10.0.0.2", "via: 10.9.0.2"));
    assert_eq!(ip_addrs(Some(&a), "eth0"), ["10.9.0.1/24"]);
}

/// Renaming both ends of a link deletes the old pair (and the routes through it) after the
/// routes were planned: the same `up` puts ns1's default route back on the new device.
#[test]
fn a_renamed_link_keeps_the_routes_through_it() {
    require_root();
    let lab = vnet::lab::unique_name("rename");
    let _guard = DownGuard::new(&lab, None);
    let text = format!(
        "name: {lab}
isolated_host: true
nodes:
  host:
    interfaces:
      br0: {{ kind: bridge, stp: false, addresses: [10.1.0.1/24] }}
      veth1: {{ master: br0 }}
  ns1:
    interfaces: {{ eth0: {{ addresses: [10.1.0.11/24] }} }}
    routes: [ {{ to: default, via: 10.1.0.1 }} ]
links:
  - endpoints: [ns1:eth0, host:veth1]
"
    );
    up_until_nothing_to_do(&lab, &text);
    up_until_nothing_to_do(&lab, &text.replace("eth0", "eth1").replace("veth1", "veth9"));
    let ns1 = format!("{lab}-ns1");
    assert!(ip_link(Some(&ns1), "eth0").is_none());
    let routes = ip_json(Some(&ns1), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.1.0.1");
    assert_eq!(routes[0]["dev"], "eth1");
    assert_eq!(ip_link(Some(&format!("{lab}-host")), "veth9").unwrap()["master"], "br0");
}

/// The kernel sizes a bridge to its smallest port when a port joins or leaves, unless the MTU
/// was changed after creation: a bridge's declared MTU holds after its build, after its only
/// port leaves, and after a port with a bigger MTU joins.
#[test]
fn a_bridge_keeps_its_declared_mtu_as_ports_come_and_go() {
    require_root();
    let lab = vnet::lab::unique_name("brmtu");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let text = format!(
        "name: {lab}
isolated_host: true
nodes:
  host:
    interfaces:
      br0: {{ kind: bridge, stp: false, mtu: 1400, addresses: [10.2.0.1/24] }}
      v1: {{ master: br0, mtu: 1400 }}
  a:
    interfaces: {{ eth0: {{ addresses: [10.2.0.2/24], mtu: 1400 }} }}
links:
  - endpoints: [a:eth0, host:v1]
"
    );
    up_until_nothing_to_do(&lab, &text);
    assert_eq!(mtu(&host, "br0"), 1400);
    // The only port leaves.
    let alone = text.replace("v1: { master: br0, mtu: 1400 }", "v1: { mtu: 1400 }");
    up_until_nothing_to_do(&lab, &alone);
    assert_eq!(mtu(&host, "br0"), 1400);
    assert!(ip_link(Some(&host), "v1").unwrap().get("master").is_none());
    // A port of MTU 1500 joins.
    let bigger = alone.replace("      v1: { mtu: 1400 }\n", "      v1: { mtu: 1400 }\n      v2: { master: br0 }\n") + "  - endpoints: [b:eth0, host:v2]\n";
    let bigger = bigger.replace("links:\n", "  b:\n    interfaces: { eth0: { addresses: [10.2.0.3/24] } }\nlinks:\n");
    up_until_nothing_to_do(&lab, &bigger);
    assert_eq!(mtu(&host, "br0"), 1400);
    assert_eq!(mtu(&host, "v2"), 1500);

    // Built from nothing with a port of MTU 1500.
    let fresh = vnet::lab::unique_name("brmtu1");
    let _guard = DownGuard::new(&fresh, None);
    up_until_nothing_to_do(
        &fresh,
        &text.replace(&lab, &fresh).replace("v1: { master: br0, mtu: 1400 }", "v1: { master: br0 }").replace(", mtu: 1400 } }\n", " } }\n"),
    );
    assert_eq!(mtu(&format!("{fresh}-host"), "br0"), 1400);
    assert_eq!(mtu(&format!("{fresh}-host"), "v1"), 1500);
}

/// A lab's text: bridge `br0` in an isolated host (with `opts` and 10.`net`.0.1/24), one port
/// `vN` per leaf node, each leaf's `eth0` at 10.`net`.0.(N+1)/24.
fn bridge_with_leaves(lab: &str, opts: &str, leaves: &[&str], net: u8) -> String {
    let mut t =
        format!("name: {lab}\nisolated_host: true\nnodes:\n  host:\n    interfaces:\n      br0: {{ kind: bridge, {opts}addresses: [10.{net}.0.1/24] }}\n");
    for i in 1..=leaves.len() {
        t += &format!("      v{i}: {{ master: br0 }}\n");
    }
    for (i, n) in leaves.iter().enumerate() {
        t += &format!("  {n}: {{ interfaces: {{ eth0: {{ addresses: [10.{net}.0.{}/24] }} }} }}\n", i + 2);
    }
    t += "links:\n";
    for (i, n) in leaves.iter().enumerate() {
        t += &format!("  - endpoints: [{n}:eth0, host:v{}]\n", i + 1);
    }
    t
}

/// A fresh `up` of a bridge with a declared MTU and three ports of MTU 1500 is right in one
/// pass: the bridge's MTU is set after its creation, so the kernel keeps it as ports join
/// (and as a port of a bigger MTU joins later, by hand), and no observe-and-apply pass follows.
#[test]
fn a_fresh_bridge_keeps_its_declared_mtu_in_one_pass() {
    require_root();
    let lab = vnet::lab::unique_name("brmtu1p");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let text = bridge_with_leaves(&lab, "stp: false, mtu: 1400, ", &["a", "b", "c"], 4);
    let file = temp_topology(&lab, "yaml", &text);
    let out = vnet_cmd(None, &["up", file.to_str().unwrap()]).env("VNET_LOG", "vnet::timing=debug").output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "up: {}{log}", String::from_utf8_lossy(&out.stdout));
    assert!(log.contains("apply "), "the timing log is on: {log}");
    assert!(!log.contains("converge") && !log.contains("pass 2"), "a fresh build took more than one pass:\n{log}");
    assert_eq!(mtu(&host, "br0"), 1400);
    for v in ["v1", "v2", "v3"] {
        assert_eq!(mtu(&host, v), 1500);
    }
    let plan = vnet(None, &["plan", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("nothing to do"), "{}", String::from_utf8_lossy(&plan.stdout));
    // The kernel holds it as set by the user: a port joining by hand leaves it too.
    ip(&host, &["link", "add", "name", "x9", "mtu", "9000", "type", "veth", "peer", "name", "y9", "mtu", "9000"]);
    ip(&host, &["link", "set", "x9", "master", "br0"]);
    assert_eq!(mtu(&host, "br0"), 1400);
    ip(&host, &["link", "del", "x9"]);
    assert!(reach_from(&format!("{lab}-a"), "10.4.0.4"), "the bridge carries traffic");
}

/// Whether a namespace reaches `addr` (three echoes, one answer is enough).
fn reach_from(netns: &str, addr: &str) -> bool {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "ping", "-c", "3", "-i", "0.3", "-W", "1", addr]).output().unwrap();
    out.status.success()
}

/// The `linkinfo` options of a bridge as `ip -d -j link` reports them (times in centiseconds).
fn bridge_options(netns: &str, dev: &str) -> serde_json::Value {
    let l = ip_link(Some(netns), dev).unwrap_or_else(|| panic!("{netns}: no {dev}"));
    let d = &l["linkinfo"]["info_data"];
    serde_json::json!({
        "stp_state": d["stp_state"], "ageing_time": d["ageing_time"], "forward_delay": d["forward_delay"],
        "mcast_snooping": d["mcast_snooping"], "vlan_filtering": d["vlan_filtering"],
    })
}

/// Options and MTUs a running lab's file stops declaring go back to what the kernel gives a
/// fresh device (a bridge made by hand beside it is the reference), in the next `up`; what the
/// file never declared is left as it is.
#[test]
fn dropped_bridge_options_and_mtus_go_back_to_the_kernel_defaults() {
    require_root();
    let lab = vnet::lab::unique_name("reset");
    let _guard = DownGuard::new(&lab, None);
    let (host, a) = (format!("{lab}-host"), format!("{lab}-a"));
    let text = format!(
        "name: {lab}
isolated_host: true
nodes:
  host:
    interfaces:
      br0: {{ kind: bridge, stp: true, ageing_time: 100, forward_delay: 2, multicast_snooping: false, addresses: [10.5.0.1/24] }}
      v1: {{ master: br0, mtu: 1400 }}
  a:
    interfaces: {{ eth0: {{ addresses: [10.5.0.2/24], mtu: 1400 }} }}
links:
  - endpoints: [a:eth0, host:v1]
"
    );
    up_until_nothing_to_do(&lab, &text);
    assert_eq!(
        bridge_options(&host, "br0"),
        serde_json::json!({"stp_state": 1, "ageing_time": 10000, "forward_delay": 200, "mcast_snooping": 0, "vlan_filtering": 0})
    );
    // As a lab that ran for a while: STP has brought the port to forwarding (a port still
    // listening or learning when STP goes off is put to forwarding too, see
    // `turning_stp_off_lets_the_ports_forward_at_once`).
    let forwarding = || ip_json(Some(&host), &["-d", "link", "show", "v1"])[0]["linkinfo"]["info_slave_data"]["state"] == "forwarding";
    let t = std::time::Instant::now();
    while !forwarding() && t.elapsed() < std::time::Duration::from_secs(15) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(forwarding(), "STP never brought the port to forwarding");
    // The kernel sized the bridge, whose MTU the file never declared, to its port.
    assert_eq!((mtu(&host, "br0"), mtu(&host, "v1"), mtu(&a, "eth0")), (1400, 1400, 1400));

    let dropped = text.replace(", stp: true, ageing_time: 100, forward_delay: 2, multicast_snooping: false", "").replace(", mtu: 1400", "");
    assert!(!dropped.contains("mtu") && !dropped.contains("stp"), "{dropped}");
    let file = temp_topology(&lab, "yaml", &dropped);
    let plan = String::from_utf8_lossy(&vnet(None, &["plan", file.to_str().unwrap()]).stdout).to_string();
    let plan: Vec<String> = plan.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        plan,
        [
            "~ bridge host:br0 {\"kind\":\"bridge\",\"stp\":false,\"ageing_time\":300,\"forward_delay\":15,\"multicast_snooping\":true}",
            "~ link host:v1 mtu 1500",
            "~ link a:eth0 mtu 1500",
            "3 operations"
        ],
        "the plan puts back what the file dropped"
    );
    up_until_nothing_to_do(&lab, &dropped);
    let fresh = Scratch::new("resetref");
    fresh.ip(&["link", "add", "name", "br0", "type", "bridge"]);
    let reference = bridge_options(&fresh.name, "br0");
    assert_eq!(reference, serde_json::json!({"stp_state": 0, "ageing_time": 30000, "forward_delay": 1500, "mcast_snooping": 1, "vlan_filtering": 0}));
    assert_eq!(bridge_options(&host, "br0"), reference);
    assert_eq!((mtu(&host, "v1"), mtu(&a, "eth0")), (1500, 1500));
    // The bridge follows its port back up (its MTU was never the file's).
    assert_eq!(mtu(&host, "br0"), 1500);
    drop(fresh);
    assert!(reach_from(&a, "10.5.0.1"));
}

// ---------------------------------------------------------------------------------------------
// Sysctls the lab no longer declares (or implies) go back to their value before the lab
// ---------------------------------------------------------------------------------------------

/// A sysctl inside a namespace.
fn sysctl_in(netns: &str, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "cat", &path]).output().unwrap();
    assert!(out.status.success(), "read {key} in {netns}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a new namespace starts with (its own default, or init_net's, as the kernel decides).
fn fresh_namespace_value(key: &str) -> String {
    let s = Scratch::new("sysctl-default");
    sysctl_in(&s.name, key)
}

#[test]
fn a_sysctl_no_longer_declared_goes_back_to_its_value_before_the_lab_first_set_it() {
    require_root();
    const KEY: &str = "net.ipv4.ip_forward";
    let before = fresh_namespace_value(KEY);
    let other = if before == "0" { "1" } else { "0" };
    let lab = vnet::lab::unique_name("sysrestore");
    let _guard = DownGuard::new(&lab, None);
    let a = format!("{lab}-a");
    let text = |v: Option<&str>| {
        let t = ROUTED.replace("LAB", &lab);
        match v {
            Some(v) => t.replace("    routes:", &format!("    sysctls: {{ {KEY}: {v} }}\n    routes:")),
            None => t,
        }
    };
    // The lab sets it, sets it back to the original, then to its own value again, then drops it.
    for v in [other, before.as_str(), other] {
        up_until_nothing_to_do(&lab, &text(Some(v)));
        assert_eq!(sysctl_in(&a, KEY), v);
    }
    up_until_nothing_to_do(&lab, &text(None));
    assert_eq!(sysctl_in(&a, KEY), before, "back to the value before the lab first changed it");
}

/// NAT turns ip_forward on without the file saying so; the node stops doing NAT: it goes back.
#[test]
fn forwarding_implied_by_nat_goes_back_when_nat_goes() {
    require_root();
    const KEY: &str = "net.ipv4.ip_forward";
    let before = fresh_namespace_value(KEY);
    let lab = vnet::lab::unique_name("natfwd");
    let _guard = DownGuard::new(&lab, None);
    let text = format!(
        "name: {lab}
isolated_host: true
nodes:
  gw:
    interfaces:
      lan0: {{ addresses: [10.1.0.1/24] }}
      wan0: {{ addresses: [198.51.100.1/24] }}
    nat:
      masquerade: [{{ source: 10.1.0.0/24, out: wan0 }}]
  h:
    interfaces: {{ eth0: {{ addresses: [10.1.0.2/24] }} }}
    routes: [ {{ to: default, via: 10.1.0.1 }} ]
  i:
    interfaces: {{ eth0: {{ addresses: [198.51.100.2/24] }} }}
links:
  - endpoints: [h:eth0, gw:lan0]
  - endpoints: [i:eth0, gw:wan0]
"
    );
    let gw = format!("{lab}-gw");
    up_until_nothing_to_do(&lab, &text);
    assert_eq!(sysctl_in(&gw, KEY), "1");
    up_until_nothing_to_do(&lab, &text.replace("    nat:\n      masquerade: [{ source: 10.1.0.0/24, out: wan0 }]\n", ""));
    assert_eq!(sysctl_in(&gw, KEY), before, "NAT gone: forwarding as it was before the lab");
}

#[test]
fn status_exits_1_when_the_lab_is_not_as_recorded() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let status = |json: bool| {
        let mut args = vec!["status", lab.name()];
        if json {
            args.push("--json");
        }
        let out = std::process::Command::new(vnet_bin()).args(&args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, healthy) = status(false);
    assert_eq!(code, Some(0), "{healthy}");
    assert!(!healthy.contains("MISSING"), "{healthy}");
    assert!(!status(true).1.contains("missing_devices"), "the JSON of a lab as recorded is unchanged");
    // A device deleted by hand (with its veth peer in ns2).
    ip(lab.node("host").netns().unwrap(), &["link", "del", "veth2"]);
    let (code, text) = status(false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("    veth2           MISSING (declared, not in the kernel)\n"), "{text}");
    assert!(text.contains("    eth0            MISSING (declared, not in the kernel)\n"), "{text}");
    let (code, json) = status(true);
    assert_eq!(code, Some(1));
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j[0]["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "host").unwrap()["missing_devices"], serde_json::json!(["veth2"]));
    // A namespace deleted by hand.
    let ns1 = lab.node("ns1").netns().unwrap().to_string();
    assert!(std::process::Command::new("ip").args(["netns", "del", &ns1]).status().unwrap().success());
    let (code, text) = status(false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("  ns1 ({ns1}) MISSING\n")), "{text}");
}

/// Everything `up` would change counts, not only what is missing: a device down, an address
/// or route deleted or added by hand, a sysctl changed. Each is shown where it is, as the
/// operation that puts it back, and `vnet up` does.
#[test]
fn status_shows_each_difference_from_the_record_and_exits_1() {
    require_root();
    let mut lab = Lab::from_file(repo("examples/routed.yaml")).unwrap();
    let name = lab.name().to_string();
    let status = || {
        let out = std::process::Command::new(vnet_bin()).args(["status", &name]).output().unwrap();
        let json = std::process::Command::new(vnet_bin()).args(["status", &name, "--json"]).output().unwrap();
        assert_eq!(out.status.code(), json.status.code());
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), serde_json::from_slice::<serde_json::Value>(&json.stdout).unwrap())
    };
    let (code, text, json) = status();
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("DIFFERS") && !json.to_string().contains("drift"), "{text}\n{json}");
    let ns = |n: &str| lab.node(n).netns().unwrap().to_string();
    ip(&ns("a"), &["route", "del", "default"]);
    ip(&ns("c"), &["route", "add", "10.99.0.0/16", "via", "10.2.0.1"]);
    ip(&ns("r"), &["link", "set", "eth2", "down"]);
    ip(&ns("d"), &["addr", "del", "10.3.0.2/24", "dev", "eth0"]);
    assert!(lab.node("r").command("sysctl").args(["-qw", "net.ipv4.ip_forward=0"]).status().unwrap().success());
    let (code, text, json) = status();
    assert_eq!(code, Some(1), "{text}");
    let squeezed: Vec<String> = text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for line in [
        "DIFFERS, up would: + route a: default via 10.1.0.1",
        "DIFFERS, up would: - route c: 10.99.0.0/16 via 10.2.0.1 dev eth0 proto boot",
        "DIFFERS, up would: ~ link r:eth2 up",
        "DIFFERS, up would: + addr d:eth0 10.3.0.2/24",
        "DIFFERS, up would: ~ sysctl r: net.ipv4.ip_forward = 1",
        "DIFFERS from the record: 5 operations to put it back (`vnet up` with the lab's file, if the file is unchanged)",
    ] {
        assert!(squeezed.iter().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // Under the device concerned (indented below it), or the node for routes and sysctls.
    let after = |dev_line: &str| squeezed.iter().skip_while(|l| !l.starts_with(dev_line)).nth(1).cloned().unwrap_or_default();
    assert_eq!(after("eth2 veth DOWN"), "DIFFERS, up would: ~ link r:eth2 up", "{text}");
    let node = |n: &str| json[0]["nodes"].as_array().unwrap().iter().find(|x| x["node"] == n).unwrap().clone();
    let dev = |n: &str, d: &str| node(n)["devices"].as_array().unwrap().iter().find(|x| x["name"] == d).unwrap().clone();
    assert_eq!(node("a")["drift"], serde_json::json!(["+ route a: default via 10.1.0.1"]));
    assert_eq!(node("r")["drift"], serde_json::json!(["~ sysctl r: net.ipv4.ip_forward = 1"]));
    assert_eq!(dev("r", "eth2")["drift"], serde_json::json!(["~ link r:eth2 up"]));
    assert_eq!(dev("d", "eth0")["drift"], serde_json::json!(["+ addr d:eth0 10.3.0.2/24"]));
    // `up` does exactly that, and the lab is as recorded again.
    let r = lab.update(lab.model().topology.clone()).unwrap();
    assert_eq!(r.plan.len(), 5, "{}", r.plan);
    let (code, text, _) = status();
    assert_eq!(code, Some(0), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Bridge port options follow the file: hairpin
// ---------------------------------------------------------------------------------------------

/// A bridge port's `hairpin` as `ip -d -j link` reports it.
fn hairpin(netns: &str, dev: &str) -> bool {
    ip_link(Some(netns), dev).unwrap_or_else(|| panic!("{netns}: no {dev}"))["linkinfo"]["info_slave_data"]["hairpin"] == true
}

/// `vnet plan FILE` of `text`: its lines, whitespace squeezed.
fn plan_lines(lab: &str, text: &str) -> Vec<String> {
    let file = temp_topology(lab, "yaml", text);
    let out = vnet(None, &["plan", file.to_str().unwrap()]);
    assert!(out.status.success(), "plan: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// Hairpin is set only where the file declares it: turned on by hand on a port whose hairpin
/// the file never declared, it stays on through `up`; declared and then deleted from the file,
/// it goes back to off (the kernel's default).
#[test]
fn hairpin_is_left_alone_unless_declared() {
    require_root();
    let lab = vnet::lab::unique_name("hairpin");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let text = bridge_with_leaves(&lab, "", &["a", "b"], 8);
    up_until_nothing_to_do(&lab, &text);
    assert!(!hairpin(&host, "v1") && !hairpin(&host, "v2"));
    ip(&host, &["link", "set", "v1", "type", "bridge_slave", "hairpin", "on"]);
    up_until_nothing_to_do(&lab, &text);
    assert!(hairpin(&host, "v1"), "hairpin turned on by hand, never declared: left on");

    let declared = text.replace("v2: { master: br0 }", "v2: { master: br0, hairpin: true }");
    assert_eq!(plan_lines(&lab, &declared), ["~ port host:v2 hairpin on", "1 operations"]);
    up_until_nothing_to_do(&lab, &declared);
    assert!(hairpin(&host, "v2"));
    assert_eq!(plan_lines(&lab, &text), ["~ port host:v2 hairpin off", "1 operations"], "deleted from the file: back to off");
    up_until_nothing_to_do(&lab, &text);
    assert!(!hairpin(&host, "v2") && hairpin(&host, "v1"));
}

// ---------------------------------------------------------------------------------------------
// Routes: the lab's own namespaces are vnet's; the root namespace only where vnet added them
// ---------------------------------------------------------------------------------------------

/// Routes of a namespace (`ip -j route show table all`) as (dst, protocol as ip names it).
fn routes(netns: &str) -> Vec<(String, String)> {
    let v = ip_json(Some(netns), &["route", "show", "table", "all"]);
    let mut out: Vec<(String, String)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["dst"].as_str().unwrap_or_default().to_string(), r["protocol"].as_str().map(str::to_string).unwrap_or_else(|| "boot".into())))
        .collect();
    out.sort();
    out
}

/// Routes added by hand in a lab's namespace go at the next `up` whatever their protocol
/// (`boot`, which `ip route add` gives, or `static`, which an older vnet gave its own); the
/// kernel's connected and local routes stay; vnet's own routes carry its protocol (118).
#[test]
fn routes_added_by_hand_in_a_lab_namespace_go_whatever_their_protocol() {
    require_root();
    let lab = vnet::lab::unique_name("handroute");
    let _guard = DownGuard::new(&lab, None);
    let text = ROUTED.replace("LAB", &lab);
    up_until_nothing_to_do(&lab, &text);
    let a = format!("{lab}-a");
    let before = routes(&a);
    assert!(before.contains(&("default".into(), "118".into())), "vnet's route carries its protocol: {before:?}");
    assert!(before.contains(&("10.0.0.0/24".into(), "kernel".into())), "{before:?}");
    ip(&a, &["route", "add", "10.9.1.0/24", "via", "10.0.0.2"]);
    ip(&a, &["route", "add", "10.9.2.0/24", "via", "10.0.0.2", "proto", "static"]);
    ip(&a, &["route", "add", "10.9.3.0/24", "dev", "eth0", "proto", "boot"]);
    assert!(routes(&a).contains(&("10.9.1.0/24".into(), "boot".into())), "`ip route add` says boot: {:?}", routes(&a));
    assert_eq!(
        plan_lines(&lab, &text),
        [
            "- route a: 10.9.1.0/24 via 10.0.0.2 dev eth0 proto boot",
            "- route a: 10.9.2.0/24 via 10.0.0.2 dev eth0 proto static",
            "- route a: 10.9.3.0/24 dev eth0 proto boot",
            "3 operations"
        ]
    );
    up_until_nothing_to_do(&lab, &text);
    assert_eq!(routes(&a), before, "the hand-made routes are gone, the kernel's and vnet's stay");
}

/// In the real root namespace (a scratch namespace plays it) vnet deletes only routes it added
/// (its protocol) through the lab's devices: a route added by hand through a lab device, and
/// any route through the machine's own devices, stay.
#[test]
fn root_namespace_routes_vnet_did_not_add_stay() {
    require_root();
    let root = Scratch::new("rootroute");
    let lab = vnet::lab::unique_name("rootroute");
    let _guard = DownGuard::new(&lab, Some(&root));
    root.ip(&["link", "add", "mine0", "type", "veth", "peer", "name", "mine1"]);
    root.ip(&["addr", "add", "192.0.2.1/24", "dev", "mine0"]);
    root.ip(&["link", "set", "mine0", "up"]);
    root.ip(&["link", "set", "mine1", "up"]);
    let text = format!(
        "name: {lab}
nodes:
  host:
    interfaces: {{ veth1: {{ addresses: [10.0.0.1/24] }} }}
    routes: [ {{ to: 10.5.0.0/16, via: 10.0.0.2 }} ]
  a:
    interfaces: {{ eth0: {{ addresses: [10.0.0.2/24] }} }}
links:
  - endpoints: [a:eth0, host:veth1]
"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let up = |f: &std::path::Path| {
        let out = vnet(Some(&root.name), &["up", f.to_str().unwrap()]);
        assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
        let plan = vnet(Some(&root.name), &["plan", f.to_str().unwrap()]);
        String::from_utf8_lossy(&plan.stdout).to_string()
    };
    assert!(up(&file).contains("nothing to do"));
    root.ip(&["route", "add", "10.9.1.0/24", "via", "10.0.0.2", "proto", "static"]);
    root.ip(&["route", "add", "10.9.2.0/24", "via", "10.0.0.2"]);
    root.ip(&["route", "add", "10.9.3.0/24", "via", "192.0.2.2", "proto", "118"]);
    let before: Vec<(String, String)> = routes(&root.name).into_iter().filter(|(d, _)| d != "10.5.0.0/16").collect();
    // The file drops its route: vnet's goes, the others stay.
    let dropped = temp_topology(&lab, "yaml", &text.replace("    routes: [ { to: 10.5.0.0/16, via: 10.0.0.2 } ]\n", ""));
    let plan = vnet(Some(&root.name), &["plan", dropped.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&plan.stdout).lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" "),
        "- route host: 10.5.0.0/16 via 10.0.0.2 dev veth1"
    );
    assert!(up(&dropped).contains("nothing to do"));
    assert_eq!(routes(&root.name), before);
}

// ---------------------------------------------------------------------------------------------
// STP turned off: the ports forward at once
// ---------------------------------------------------------------------------------------------

/// Bridge port states in a namespace as `bridge -j link show` reports them: (port, state).
fn port_states(netns: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "bridge", "-j", "link", "show"]).output().unwrap();
    assert!(out.status.success(), "bridge link show: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut s: Vec<(String, String)> =
        v.as_array().into_iter().flatten().map(|l| (l["ifname"].as_str().unwrap_or_default().into(), l["state"].as_str().unwrap_or_default().into())).collect();
    s.sort();
    s
}

/// Bridge ports as vnet's AF_BRIDGE dump (`observe::bridge_ports`) sees them: name, forwarding.
fn observed_forwarding(netns: &str) -> Vec<(String, bool)> {
    let fd = vnet::kernel::netns::open(netns).unwrap();
    let ports = vnet::kernel::netns::run_in(Some(&fd), || {
        let mut nl = vnet::kernel::nl::Netlink::open().unwrap();
        vnet::kernel::observe::bridge_ports(&mut nl).unwrap()
    })
    .unwrap();
    let mut v: Vec<(String, bool)> = ports.into_iter().map(|p| (p.name, p.forwarding.expect("a port's state"))).collect();
    v.sort();
    v
}

/// A bridge whose STP the file turns off: its ports, still listening (STP makes them wait a
/// forward delay, here 15 s, in listening and then in learning), forward as soon as `up`
/// returns, and the next plan has nothing to do.
#[test]
fn turning_stp_off_lets_the_ports_forward_at_once() {
    require_root();
    let lab = vnet::lab::unique_name("stpoff");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let text = bridge_with_leaves(&lab, "stp: true, forward_delay: 15, ", &["a", "b"], 7);
    up_until_nothing_to_do(&lab, &text);
    let t = std::time::Instant::now();
    let listening = port_states(&host);
    assert!(listening.iter().all(|(_, s)| s == "listening" || s == "blocking"), "STP holds the ports back: {listening:?}");
    assert_eq!(observed_forwarding(&host), [("v1".to_string(), false), ("v2".to_string(), false)], "vnet's AF_BRIDGE dump agrees");
    let off = text.replace("stp: true, forward_delay: 15", "stp: false, forward_delay: 15");
    assert_eq!(
        plan_lines(&lab, &off),
        [
            "~ bridge host:br0 {\"kind\":\"bridge\",\"stp\":false,\"forward_delay\":15}",
            "~ port host:v1 forwarding",
            "~ port host:v2 forwarding",
            "3 operations"
        ]
    );
    up_until_nothing_to_do(&lab, &off);
    assert!(t.elapsed() < std::time::Duration::from_secs(15), "still within the first forward delay");
    assert_eq!(port_states(&host), [("v1".to_string(), "forwarding".to_string()), ("v2".to_string(), "forwarding".to_string())]);
    assert_eq!(observed_forwarding(&host), [("v1".to_string(), true), ("v2".to_string(), true)]);
    assert!(reach_from(&format!("{lab}-a"), "10.7.0.3"), "traffic crosses the bridge");
}

// ---------------------------------------------------------------------------------------------
// IPv6 link-local addresses follow `ipv6` on a running lab
// ---------------------------------------------------------------------------------------------

/// Devices of a namespace that are up with carrier (but `lo`), and whether each holds an IPv6
/// link-local address (the kernel makes one only on such a device).
fn link_locals(netns: &str) -> Vec<(String, bool)> {
    let v = ip_json(Some(netns), &["addr", "show"]);
    let mut out: Vec<(String, bool)> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo" && l["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "LOWER_UP")))
        .map(|l| {
            let ll = l["addr_info"].as_array().into_iter().flatten().any(|a| a["local"].as_str().is_some_and(|x| x.starts_with("fe80:")));
            (l["ifname"].as_str().unwrap_or_default().to_string(), ll)
        })
        .collect();
    out.sort();
    out
}

/// `ipv6: off` then `on` on a running lab: every lab device gets its link-local address in the
/// same `up` (a namespace with 8 devices or more was born with link-local generation off by
/// default: a device added to it later gets one too); then `off` again: every one goes. Each
/// `up` leaves nothing to do, a lab with a veth end declared down included.
#[test]
fn ipv6_link_local_follows_ipv6_on_a_running_lab() {
    require_root();
    let lab = vnet::lab::unique_name("ll6");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let nodes = 8;
    let mut text =
        format!("name: {lab}\nisolated_host: true\nipv6: off\nnodes:\n  host:\n    interfaces:\n      br0: {{ kind: bridge, addresses: [10.8.0.1/24] }}\n");
    for i in 1..=nodes {
        text.push_str(&format!("      p{i}: {{ master: br0 }}\n"));
    }
    for i in 1..=nodes {
        text.push_str(&format!("  n{i}:\n    interfaces: {{ eth0: {{ addresses: [10.8.0.{}/24] }} }}\n", 10 + i));
    }
    text.push_str("links:\n");
    for i in 1..=nodes {
        text.push_str(&format!("  - endpoints: [n{i}:eth0, host:p{i}]\n"));
    }
    // An end declared down, born in a namespace of the default (fewer than 8 devices).
    text = text.replace("links:\n", "  z:\n    interfaces: { eth0: { up: false } }\nlinks:\n  - endpoints: [z:eth0, host:pz]\n");
    text = text.replace("      p1: { master: br0 }\n", "      p1: { master: br0 }\n      pz: { master: br0 }\n");
    let all = |want: bool| {
        let mut seen = link_locals(&host);
        for i in 1..=nodes {
            seen.extend(link_locals(&format!("{lab}-n{i}")).into_iter().map(|(d, ll)| (format!("n{i}:{d}"), ll)));
        }
        let wrong: Vec<&(String, bool)> = seen.iter().filter(|(_, ll)| *ll != want).collect();
        assert!(wrong.is_empty(), "link-local {}: {wrong:?} of {seen:?}", if want { "missing" } else { "left" });
        seen.len()
    };
    up_until_nothing_to_do(&lab, &text);
    assert_eq!(all(false), 2 * nodes + 1);

    let on = text.replace("ipv6: off", "ipv6: on");
    let planned = plan_lines(&lab, &on);
    // Every device, the ones without carrier included: br0, p1..p8, pz, n1..n8:eth0, z:eth0.
    assert_eq!(planned.len(), 2 * nodes + 3 + 1, "{planned:#?}");
    assert!(planned.iter().take(2 * nodes + 3).all(|l| l.ends_with("link-local on")), "{planned:#?}");
    // The bridge's ports, made without IPv6 in a lab without link-local addresses, get it back.
    assert_eq!(planned.iter().filter(|l| l.starts_with("~ link host:p") && l.ends_with("ipv6 on, link-local on")).count(), nodes + 1, "{planned:#?}");
    up_until_nothing_to_do(&lab, &on);
    assert_eq!(all(true), 2 * nodes + 1);
    // A device added now to the namespace born with generation off by default.
    let more = on.replace("      p1: { master: br0 }\n", "      p1: { master: br0 }\n      p9: { master: br0 }\n") + "  - endpoints: [n9:eth0, host:p9]\n";
    let more = more.replace("links:\n", "  n9:\n    interfaces: { eth0: { addresses: [10.8.0.19/24] } }\nlinks:\n");
    up_until_nothing_to_do(&lab, &more);
    assert!(link_locals(&host).contains(&("p9".to_string(), true)), "{:?}", link_locals(&host));

    let off = more.replace("ipv6: on", "ipv6: off");
    up_until_nothing_to_do(&lab, &off);
    assert!(link_locals(&host).iter().all(|(_, ll)| !ll), "{:?}", link_locals(&host));
    assert_eq!(all(false), 2 * nodes + 2);
    assert!(reach_from(&format!("{lab}-n1"), "10.8.0.12"));
}

// ---------------------------------------------------------------------------------------------
// Bridge ports without IPv6 of their own
// ---------------------------------------------------------------------------------------------

fn disable_ipv6(netns: &str, dev: &str) -> String {
    let out = std::process::Command::new("ip").args(["netns", "exec", netns, "cat", &format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// In a lab without link-local addresses (`ipv6: off`) the bridge's ports have IPv6 off, so
/// the kernel keeps no IPv6 route per port (its multicast route, the table walk at each
/// carrier change); the bridge keeps its own IPv6 and still forwards IPv6 between the nodes
/// (static addresses, neighbour discovery through the ports). A port that leaves the bridge
/// gets IPv6 back; a `disable_ipv6` the file sets for a port is the file's.
#[test]
fn bridge_ports_carry_no_ipv6_but_forward_it() {
    require_root();
    let lab = vnet::lab::unique_name("p6");
    let _guard = DownGuard::new(&lab, None);
    let host = format!("{lab}-host");
    let text = bridge_with_leaves(&lab, "stp: false, ", &["a", "b", "c"], 9)
        .replace(&format!("name: {lab}\n"), &format!("name: {lab}\nipv6: off\n"))
        .replace("addresses: [10.9.0.2/24]", "addresses: [10.9.0.2/24, 'fd09::2/64']")
        .replace("addresses: [10.9.0.3/24]", "addresses: [10.9.0.3/24, 'fd09::3/64']");
    let planned = plan_lines(&lab, &text);
    assert!(planned.iter().filter(|l| l.starts_with("+ link host:v")).all(|l| l.ends_with(" up no-ipv6")), "{planned:#?}");
    up_until_nothing_to_do(&lab, &text);
    for v in ["v1", "v2", "v3"] {
        assert_eq!(disable_ipv6(&host, v), "1", "{v}");
    }
    assert_eq!(disable_ipv6(&host, "br0"), "0");
    assert_eq!(disable_ipv6(&format!("{lab}-a"), "eth0"), "0");
    let routes = ip_json(Some(&host), &["-6", "route", "show", "table", "all"]);
    let port_routes: Vec<&serde_json::Value> =
        routes.as_array().into_iter().flatten().filter(|r| r["dev"].as_str().is_some_and(|d| d.starts_with('v'))).collect();
    assert!(port_routes.is_empty(), "IPv6 routes of ports: {port_routes:?}");
    assert!(reach_from(&format!("{lab}-a"), "fd09::3"), "IPv6 crosses the bridge");
    assert!(reach_from(&format!("{lab}-a"), "10.9.0.4"), "IPv4 too");

    // v3 leaves the bridge: a plain device again, with IPv6 (and still no link-local address).
    let left = text.replace("      v3: { master: br0 }\n", "      v3: {}\n");
    assert_eq!(plan_lines(&lab, &left), ["~ link host:v3 nomaster", "~ link host:v3 ipv6 on, link-local off", "2 operations"]);
    up_until_nothing_to_do(&lab, &left);
    assert_eq!(disable_ipv6(&host, "v3"), "0");
    assert!(!ip_addrs(Some(&host), "v3").iter().any(|a| a.starts_with("fe80")));
    // The file's own word for a port: v2's IPv6 on, v3 joins again and keeps it on.
    let own = text.replace("  a: {", "    sysctls: { net.ipv6.conf.v2.disable_ipv6: 0, net.ipv6.conf.v3.disable_ipv6: 0 }\n  a: {");
    up_until_nothing_to_do(&lab, &own);
    assert_eq!((disable_ipv6(&host, "v2"), disable_ipv6(&host, "v3")), ("0".to_string(), "0".to_string()));
    assert_eq!(disable_ipv6(&host, "v1"), "1");
    assert!(reach_from(&format!("{lab}-b"), "fd09::2"));
}

/// A bridge of 16 ports or more gets a teardown anchor (`model::anchor`): a VXLAN port, down,
/// created before the others so that it is the bridge's oldest (port 1), whose headroom spares
/// `down` a quadratic reset of the ports' headroom. It changes nothing else: the bridge keeps
/// MTU 1500 and the smallest of its veth ports' MACs, forwards between the nodes, `status`
/// lists only the lab's devices (all up, as recorded), an unchanged lab has nothing to do, and
/// `down` leaves nothing.
#[test]
fn a_busy_bridge_has_a_down_anchor_as_its_oldest_port_and_is_otherwise_unchanged() {
    require_root();
    let leaves: Vec<String> = (1..=20).map(|i| format!("l{i}")).collect();
    let refs: Vec<&str> = leaves.iter().map(String::as_str).collect();
    let text = bridge_with_leaves("anchor", "stp: false, ", &refs, 12);
    let mut lab = Lab::from_str(&text, vnet::model::Format::Yaml).unwrap();
    let name = lab.name().to_string();
    let host = lab.node("host").netns().unwrap().to_string();

    let a = ip_json(Some(&host), &["-d", "link", "show", "vnet~br0"])[0].clone();
    assert_eq!((a["linkinfo"]["info_kind"].as_str(), a["master"].as_str()), (Some("vxlan"), Some("br0")), "{a}");
    assert!(!a["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{a}");
    assert_eq!((a["mtu"].as_u64(), a["address"].as_str()), (Some(65485), Some("fe:ff:ff:ff:ff:ff")), "{a}");
    let slave = &a["linkinfo"]["info_slave_data"];
    assert_eq!((slave["no"].as_str(), slave["state"].as_str()), (Some("0x1"), Some("disabled")), "{a}");

    let ports = ip_json(Some(&host), &["link", "show", "master", "br0"]);
    let veth_macs: Vec<&str> = ports.as_array().unwrap().iter().filter(|p| p["ifname"] != "vnet~br0").map(|p| p["address"].as_str().unwrap()).collect();
    assert_eq!(veth_macs.len(), 20);
    let br0 = ip_link(Some(&host), "br0").unwrap();
    assert_eq!(br0["mtu"].as_u64(), Some(1500));
    assert_eq!(br0["address"].as_str(), veth_macs.iter().min().copied(), "the bridge took another address than its smallest port's");

    let st = lab.status().unwrap();
    assert!(st.as_recorded() && st.drift_count() == 0, "{}", vnet::lifecycle::status::render(std::slice::from_ref(&st)));
    let hs = st.nodes.iter().find(|n| n.node == "host").unwrap();
    let mut shown: Vec<&str> = hs.devices.iter().map(|d| d.name.as_str()).collect();
    shown.sort();
    let mut want: Vec<String> = ["lo", "br0"].iter().map(|s| s.to_string()).chain((1..=20).map(|i| format!("v{i}"))).collect();
    want.sort();
    assert_eq!(shown, want);
    assert!(hs.devices.iter().all(|d| d.up));

    assert!(ping(&lab, "l1", "10.12.0.21"), "l1 cannot reach l20 across the bridge");
    let again = lab.update_from_str(&text, vnet::model::Format::Yaml).unwrap();
    assert!(again.plan.is_empty(), "an unchanged lab plans:\n{}", again.plan);

    let report = lab.down().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_nothing_left(&name, None);
}

/// Two busy bridges in one node, beside a VXLAN device of the file's at the top VNI: the
/// kernel refuses two VXLAN devices with one VNI on one port in a namespace, down or not, so
/// each anchor takes its own VNI, past the file's. (Tap ports: no namespace per port.)
#[test]
fn anchors_of_two_bridges_in_one_node_take_vnis_of_their_own() {
    require_root();
    let mut text = String::from("name: anchors2\nisolated_host: true\nnodes:\n  s:\n    interfaces:\n      vx: { kind: vxlan, vni: 16777215 }\n");
    for b in ["a", "b"] {
        text += &format!("      br{b}: {{ kind: bridge, stp: false }}\n");
        for i in 1..=16 {
            text += &format!("      {b}{i}: {{ kind: tap, master: br{b} }}\n");
        }
    }
    let lab = Lab::from_str(&text, vnet::model::Format::Yaml).unwrap();
    let name = lab.name().to_string();
    let s = lab.node("s").netns().unwrap().to_string();
    let vni = |dev: &str| ip_json(Some(&s), &["-d", "link", "show", dev])[0]["linkinfo"]["info_data"]["id"].as_u64();
    assert_eq!((vni("vx"), vni("vnet~bra"), vni("vnet~brb")), (Some(16777215), Some(16777214), Some(16777213)));
    let st = lab.status().unwrap();
    assert!(st.as_recorded() && st.drift_count() == 0, "{}", vnet::lifecycle::status::render(std::slice::from_ref(&st)));
    let report = lab.down().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_nothing_left(&name, None);
}
