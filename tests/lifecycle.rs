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

    // Edit: new address on a, MTU change on b, node c removed, new node d with a route.
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("a").unwrap().interfaces.get_mut("eth0").unwrap().addresses.push("fd09::1/64".into());
    t.nodes.get_mut("b").unwrap().interfaces.get_mut("eth0").unwrap().mtu = Some(1400);
    t.nodes.shift_remove("c");
    t.nodes.insert("d".into(), Default::default());
    let r = lab.update(t).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        ops,
        vec![format!("+ netns d ({name}-d)"), "~ link b:eth0 mtu 1400".to_string(), "+ addr a:eth0 fd09::1/64".to_string(), format!("- netns c ({name}-c)"),],
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
    assert_eq!(count_ll(&v6), 2, "IPv6 declared: each veth end has its link-local address");
    assert!(v6.node("a").command("ping").args(["-6", "-c1", "-W2", "fd00::2"]).status().unwrap().success());
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
