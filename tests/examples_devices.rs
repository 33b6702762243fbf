//! The device examples this machine's kernel can build come up and carry traffic.

mod common;

use common::*;
use vnet::Lab;

#[test]
fn macvlan_examples_behave_as_their_comments_say() {
    require_root();
    for (mode, siblings) in [("bridge", true), ("vepa", true), ("private", false)] {
        let lab = Lab::from_file(repo(&format!("examples/macvlan-{mode}.yaml"))).unwrap();
        assert!(reach(&lab, "ns1", "192.168.50.1"), "{mode}: ns1 reaches the gateway");
        assert!(reach(&lab, "ns2", "192.168.50.1"), "{mode}: ns2 reaches the gateway");
        assert_eq!(reach(&lab, "ns1", "192.168.50.12"), siblings, "{mode}: siblings");
        let name = lab.name().to_string();
        lab.down().unwrap();
        assert_gone(&name);
    }
    for ex in ["passthru", "source"] {
        let lab = Lab::from_file(repo(&format!("examples/macvlan-{ex}.yaml"))).unwrap();
        assert!(reach(&lab, "ns1", "192.168.50.1"), "{ex}: ns1 reaches the gateway");
    }
}

#[test]
fn vxlan_and_tun_examples_come_up() {
    require_root();
    let lab = Lab::from_file(repo("examples/vxlan-overlay.yaml")).unwrap();
    assert!(reach(&lab, "work1", "10.42.0.2"));
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
    let lab = Lab::from_file(repo("examples/tun-route.yaml")).unwrap();
    let ns = lab.node("host").netns().unwrap().to_string();
    assert_eq!(ip_json(Some(&ns), &["route", "show", "10.1.1.0/24"])[0]["dev"], "tun0");
    assert!(lab.node("host").open_tap("tun0").is_ok());
}
