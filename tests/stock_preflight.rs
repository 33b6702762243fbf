//! Stock-kernel lane (runs only in the VM, see scripts/test-vm): on Debian's stock kernel the
//! preflight finds everything the lab features need, and agrees with iproute2 about it; and a lab
//! of kinds this project's CI host lacks (the one tests/preflight.rs sees refused there) comes up
//! end to end with traffic.

mod common;
#[path = "common/preflight_oracle.rs"]
mod oracle;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use common::*;
use vnet::lifecycle::preflight;
use vnet::Lab;

#[test]
fn stock_kernel_lacks_nothing_the_preflight_probes() {
    require_root();
    let names: Vec<&str> = oracle::FEATURES.iter().map(|(n, _)| *n).collect();
    require(&names);
    assert_eq!(preflight::missing_named(&names).unwrap(), Vec::<String>::new());
    // Kinds the foundation does not model yet, probed by name.
    assert_eq!(preflight::missing_named(&["team", "gre", "wireguard", "macvtap", "ifb", "fq_codel"]).unwrap(), Vec::<String>::new());
}

#[test]
fn preflight_agrees_with_iproute2_on_the_stock_kernel() {
    require_root();
    let names: Vec<&str> = oracle::FEATURES.iter().map(|(n, _)| *n).collect();
    let missing = preflight::missing_named(&names).unwrap();
    for (name, works) in oracle::iproute2_verdicts() {
        assert!(works, "iproute2 cannot use {name} on the stock kernel");
        assert!(!missing.contains(&name), "preflight says the stock kernel lacks {name}");
    }
}

#[test]
fn a_feature_no_kernel_has_is_reported_missing() {
    require_root();
    // The probes can say "missing" in the guest too (not only "present").
    assert_eq!(
        preflight::missing_named(&["kind:vnet-no-such-kind", "qdisc:vnetnosuch", "ipvlan"]).unwrap(),
        vec!["vnet-no-such-kind".to_string(), "qdisc:vnetnosuch".to_string()]
    );
}

#[test]
fn ipvlan_lab_comes_up_with_traffic_on_the_stock_kernel() {
    require_root();
    require(&["dummy", "ipvlan"]);
    let lab = Lab::from_file(repo("tests/labs/ipvlan-l2.yaml")).expect("the ipvlan lab comes up");
    let name = lab.name().to_string();
    let ns = |node: &str| lab.node(node).netns().unwrap().to_string();
    let (host, blue, red) = (ns("host"), ns("blue"), ns("red"));
    let (host, blue, red) = (host.as_str(), blue.as_str(), red.as_str());

    // Independently, through iproute2.
    let lower = ip_link(Some(host), "lower0").expect("lower0 exists");
    assert_eq!(lower["linkinfo"]["info_kind"], "dummy");
    for (ns, dev, addr) in [(blue, "ipvl0", "10.20.0.1/24"), (red, "ipvl1", "10.20.0.2/24")] {
        let l = ip_link(Some(ns), dev).unwrap_or_else(|| panic!("{dev} exists in {ns}"));
        assert_eq!(l["linkinfo"]["info_kind"], "ipvlan", "{l}");
        assert_eq!(l["linkinfo"]["info_data"]["mode"], "l2", "{l}");
        assert_eq!(l["address"], lower["address"], "an ipvlan slave shares its lower's MAC");
        assert!(ip_addrs(Some(ns), dev).contains(&addr.to_string()));
    }

    // Through vnet's observer.
    let st = lab.status().unwrap();
    let kind_of =
        |node: &str, dev: &str| st.nodes.iter().find(|n| n.node == node).unwrap().devices.iter().find(|d| d.name == dev).map(|d| (d.kind.clone(), d.up));
    assert_eq!(kind_of("blue", "ipvl0"), Some(("ipvlan".to_string(), true)));
    assert_eq!(kind_of("red", "ipvl1"), Some(("ipvlan".to_string(), true)));
    assert_eq!(kind_of("host", "lower0"), Some(("dummy".to_string(), true)));

    // Traffic between the two namespaces, both ways, IPv4 and IPv6, ICMP and TCP.
    assert!(ping(&lab, "blue", "10.20.0.2"), "blue reaches red over ipvlan");
    assert!(ping(&lab, "red", "10.20.0.1"), "red reaches blue over ipvlan");
    assert!(ping(&lab, "blue", "fd20::2"), "blue reaches red over IPv6");
    let listener = lab.node("red").run(|| TcpListener::bind("10.20.0.2:7100").unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"pong").unwrap();
        (buf, peer.ip().to_string())
    });
    let reply = lab.node("blue").run(|| {
        let mut c = TcpStream::connect("10.20.0.2:7100").unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let (got, peer) = server.join().unwrap();
    assert_eq!((&got, &reply, peer.as_str()), (b"ping", b"pong", "10.20.0.1"));

    let report = lab.down().unwrap();
    assert_eq!(report.namespaces.len(), 3);
    assert_gone(&name);
}
