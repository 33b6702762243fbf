//! Validation of device kinds: every bad value is refused with its place in the file.

use crate::model::kind::{IpvlanMode, KindSpec, MacvlanMode};
use crate::model::{load_str, Format, Loaded};

fn ok(yaml: &str) -> Loaded {
    match load_str("lab.yaml", yaml, Format::Yaml) {
        Ok(l) => l,
        Err(d) => panic!("expected valid, got: {:?}", d.iter().map(|x| x.message.clone()).collect::<Vec<_>>()),
    }
}

/// The errors as `line:col message`.
fn errors(yaml: &str) -> Vec<String> {
    match load_str("lab.yaml", yaml, Format::Yaml) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.errors().map(|e| format!("{} {}", d.location(e).trim_start_matches("lab.yaml:"), e.message)).collect(),
    }
}

fn has(errs: &[String], loc: &str, text: &str) {
    assert!(errs.iter().any(|e| e.starts_with(loc) && e.contains(text)), "no error at {loc} containing {text:?} in {errs:#?}");
}

#[test]
fn ipvlan_vlan_dummy_parse_with_defaults() {
    let l = ok(r#"
name: k
nodes:
  a:
    interfaces:
      eth0: {}
      d0: { kind: dummy, addresses: [10.9.9.9/32] }
      ipv0: { kind: ipvlan, link: eth0, mode: l2 }
      v10: { kind: vlan, link: eth0, id: 10, protocol: 802.1ad }
  b:
    interfaces:
      eth0: {}
      ipv1: { kind: ipvlan, link: "b:eth0" }
links: [{ endpoints: [a:eth0, b:eth0] }]
"#);
    let a = &l.lab.nodes["a"].interfaces;
    assert!(matches!(a["d0"].kind, KindSpec::Dummy(_)));
    match &a["ipv0"].kind {
        KindSpec::Ipvlan(s) => assert_eq!(s.mode, Some(IpvlanMode::L2)),
        k => panic!("{k:?}"),
    }
    match &l.lab.nodes["b"].interfaces["ipv1"].kind {
        KindSpec::Ipvlan(s) => assert_eq!(s.mode.unwrap_or_default(), IpvlanMode::L3),
        k => panic!("{k:?}"),
    }
    assert_eq!(a["v10"].kind.lower_endpoint("a").unwrap().to_string(), "a:eth0");
}

#[test]
fn bad_vlan_id_and_vni_are_located() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      v1: { kind: vlan, link: eth0, id: 4095 }
      vx: { kind: vxlan, vni: 16777216, remote: 10.0.0.2 }
      eth1: {}
links: [{ endpoints: [a:eth0, a:eth1] }]
",
    );
    has(&errs, "6:", "VLAN id 4095 is out of range");
    has(&errs, "7:", "VNI 16777216 is over the 24-bit maximum 16777215");
}

#[test]
fn unknown_mode_is_located_at_the_mode() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      mv: { kind: macvlan, link: eth0, mode: hairpin }
      eth1: {}
links: [{ endpoints: [a:eth0, a:eth1] }]
",
    );
    has(&errs, "6:", "`mode` must be one of `vepa`, `bridge`, `private`, `passthru`, `source`, not `hairpin`");
}

#[test]
fn bond_port_of_another_master_is_refused() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      br0: { kind: bridge }
      bond0: { kind: bond, mode: active-backup, ports: [eth0, eth1] }
      eth0: { master: br0 }
      eth1: {}
  b:
    interfaces:
      eth0: {}
      eth1: {}
links:
  - endpoints: [a:eth0, b:eth0]
  - endpoints: [a:eth1, b:eth1]
",
    );
    has(&errs, "6:", "`a:eth0` is listed as a port of bond `bond0` but is already a port of `br0`");
}

#[test]
fn ipvlan_and_macvlan_cannot_share_a_lower() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      ipv: { kind: ipvlan, link: eth0 }
      mv: { kind: macvlan, link: eth0, mode: bridge }
  b: { interfaces: { eth0: {} } }
links: [{ endpoints: [a:eth0, b:eth0] }]
",
    );
    has(&errs, "6:", "ipvlan `a:ipv` and macvlan `a:mv` share the lower device `a:eth0`");
}

/// A macvlan may not be larger than its lower device (declared, or a veth's 1500); one as
/// large is fine.
#[test]
fn a_macvlan_is_not_larger_than_its_lower_device() {
    let text = "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      eth1: { mtu: 9000 }
      mv: { kind: macvlan, link: eth0, mode: bridge, mtu: 1600 }
      mw: { kind: macvlan, link: eth1, mode: bridge, mtu: 9000 }
  b: { interfaces: { eth0: {}, eth1: {} } }
links: [{ endpoints: [a:eth0, b:eth0] }, { endpoints: [a:eth1, b:eth1] }]
";
    let errs = errors(text);
    has(&errs, "7:", "mtu 1600 of macvlan `a:mv` is above its lower device `a:eth0`'s 1500: the kernel refuses a macvlan larger than its lower device");
    assert_eq!(errs.len(), 1, "{errs:?}");
}

/// A VLAN may not be larger than its lower device either (the kernel refuses it: EINVAL at
/// creation, ERANGE after); an ipvlan may (the kernel takes it), so it is not checked.
#[test]
fn a_vlan_is_not_larger_than_its_lower_device_an_ipvlan_may_be() {
    let text = "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      eth1: { mtu: 1400 }
      d0: { kind: dummy, mtu: 1400 }
      v1: { kind: vlan, link: eth0, id: 10, mtu: 1501 }
      v2: { kind: vlan, link: eth1, id: 20, protocol: 802.1ad, mtu: 1500 }
      v3: { kind: vlan, link: d0, id: 30, mtu: 1400 }
      v4: { kind: vlan, link: eth1, id: 40 }
      iv: { kind: ipvlan, link: d0, mode: l3, mtu: 9000 }
  b: { interfaces: { eth0: {}, eth1: {} } }
links: [{ endpoints: [a:eth0, b:eth0] }, { endpoints: [a:eth1, b:eth1] }]
";
    let errs = errors(text);
    has(&errs, "8:", "mtu 1501 of vlan `a:v1` is above its lower device `a:eth0`'s 1500: the kernel refuses a vlan larger than its lower device");
    has(&errs, "9:", "mtu 1500 of vlan `a:v2` is above its lower device `a:eth1`'s 1400: the kernel refuses a vlan larger than its lower device");
    assert_eq!(errs.len(), 2, "{errs:?}");
    ok(&text.replace("mtu: 1501", "mtu: 1500").replace("protocol: 802.1ad, mtu: 1500", "protocol: 802.1ad, mtu: 1400"));
}

#[test]
fn passthru_forbids_siblings() {
    let errs = errors(
        "name: k
nodes:
  host:
    interfaces:
      eth0: {}
  a:
    interfaces:
      mv: { kind: macvlan, link: host:eth0, mode: passthru }
  b:
    interfaces:
      mv: { kind: macvtap, link: host:eth0, mode: bridge }
  c: { interfaces: { eth0: {} } }
links: [{ endpoints: [host:eth0, c:eth0] }]
",
    );
    has(&errs, "8:", "macvlan `a:mv` is in passthru mode: it takes over its lower device `host:eth0`, which therefore cannot carry `b:mv` too");
}

#[test]
fn lower_must_exist_and_underlay_must_be_local() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      v1: { kind: vlan, link: eth9, id: 5 }
      vx: { kind: vxlan, vni: 1, remote: 10.0.0.1, dev: b:eth0 }
  b: { interfaces: { eth0: {} } }
  c: { interfaces: { eth0: {} } }
links: [{ endpoints: [b:eth0, c:eth0] }]
",
    );
    has(&errs, "5:", "unknown device `a:eth9`");
    has(&errs, "6:", "the underlay device of vxlan `a:vx` must be in node `a`, not `b`");
}

#[test]
fn lower_cycles_are_refused() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      v1: { kind: vlan, link: v2, id: 5 }
      v2: { kind: vlan, link: v1, id: 6 }
",
    );
    has(&errs, "5:", "loop back to itself");
}

#[test]
fn source_mode_needs_macs_and_vxlan_mtu_defaults_to_underlay_minus_50() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      eth0: {}
      mv: { kind: macvlan, link: eth0, mode: source }
      eth1: {}
links: [{ endpoints: [a:eth0, a:eth1] }]
",
    );
    has(&errs, "6:", "source mode but lists no `macs`");
    let l = ok(r#"
name: k
nodes:
  a:
    interfaces:
      eth0: { mtu: 9000 }
      vx: { kind: vxlan, vni: 42, remote: 10.0.0.2, dev: eth0 }
      vy: { kind: vxlan, vni: 43, remote: 10.0.0.2 }
      mv: { kind: macvlan, link: eth0, mode: source, macs: ["02:00:00:00:00:01"] }
  b: { interfaces: { eth0: {} } }
links: [{ endpoints: [a:eth0, b:eth0] }]
"#);
    let a = &l.lab.nodes["a"].interfaces;
    assert_eq!(a["vx"].mtu, Some(8950));
    assert_eq!(a["vy"].mtu, Some(1450));
    match &a["mv"].kind {
        KindSpec::Macvlan(m) => assert_eq!(m.mode(), MacvlanMode::Source),
        k => panic!("{k:?}"),
    }
}

#[test]
fn bridge_vlans_need_filtering_and_ports() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      br0:
        kind: bridge
        vlans:
          eth0: [{ vid: 10, pvid: true, untagged: true }]
          eth9: [4095]
      eth0: { master: br0 }
  b: { interfaces: { eth0: {} } }
links: [{ endpoints: [a:eth0, b:eth0] }]
",
    );
    has(&errs, "8:", "per-port `vlans` of bridge `a:br0` need `vlan_filtering: true`");
    has(&errs, "9:", "`eth9` in the vlans of bridge `a:br0` is not one of its ports");
    has(&errs, "9:", "VLAN id 4095 is out of range");
}

#[test]
fn non_persistent_tun_is_refused() {
    let errs = errors(
        "name: k
nodes:
  a:
    interfaces:
      tun0: { kind: tun, persistent: false }
",
    );
    has(&errs, "5:", "cannot be non-persistent");
}

#[test]
fn every_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "toml" | "json")) {
            continue;
        }
        if let Err(d) = crate::model::load_file(&p) {
            panic!("{} does not validate: {:?}", p.display(), d.iter().map(|x| x.message.clone()).collect::<Vec<_>>());
        }
        n += 1;
    }
    assert!(n >= 12, "examples found: {n}");
}
