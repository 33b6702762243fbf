//! Validation unit tests: message wording, locations in all three formats, warnings versus
//! errors, "did you mean" hints, and the typed lab validation produces. (The corpus of whole bad
//! files lives in tests/corpus.)

use super::*;
use crate::model::validate::{ifname_problem, lab_name_problem, parse_cidr, sysctl_components, sysctl_key};

fn yaml(text: &str) -> Result<Loaded, Diagnostics> {
    load_str("t.yaml", text, Format::Yaml)
}

/// The compact findings of an invalid YAML text.
fn errors(text: &str) -> String {
    match yaml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.compact(),
    }
}

/// The helps of the findings, in order.
fn helps(text: &str) -> Vec<String> {
    yaml(text).unwrap_err().iter().filter_map(|d| d.help.clone()).collect()
}

const PAIR: &str = "links:\n  - endpoints: [a:eth0, b:eth0]\n";

#[test]
fn a_valid_file_gives_a_typed_lab() {
    let text = format!(
        "name: ok\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24, fd00::1/64], mtu: 1400, mac: '02:00:00:00:00:01' }}\n    routes:\n      - {{ to: default, via: 10.0.0.2 }}\n      - {{ to: default, via: 'fd00::2' }}\n    sysctls: {{ net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: true }}\n  b: {{}}\n{PAIR}"
    );
    let l = yaml(&text).unwrap();
    assert!(l.warnings.is_empty(), "{}", l.warnings);
    let a = l.lab.node("a").unwrap();
    // lo is always there, first, as the kernel lists it.
    assert_eq!(a.interfaces.keys().collect::<Vec<_>>(), ["lo", "eth0"]);
    let eth0 = &a.interfaces["eth0"];
    assert_eq!(eth0.peer, Some(Endpoint::new("b", "eth0")));
    assert_eq!(eth0.mtu, Some(1400));
    assert_eq!(eth0.mac, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(eth0.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["10.0.0.1/24", "fd00::1/64"]);
    // `default` follows the gateway's family.
    assert_eq!(a.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["default via 10.0.0.2", "default6 via fd00::2"]);
    assert_eq!(a.sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
    assert_eq!(a.sysctls.get("net.ipv6.conf.all.forwarding").map(String::as_str), Some("1"));
    // The undeclared end of the link is a plain veth.
    let b = &l.lab.node("b").unwrap().interfaces["eth0"];
    assert!(matches!(b.kind, kind::KindSpec::Veth(_)) && b.up && b.addresses.is_empty());
    assert_eq!(l.lab.netns_name("a").as_deref(), Some("ok-a"));
    assert!(l.lab.ipv6_link_local, "IPv6 addresses turn link-local addresses on (auto)");
}

#[test]
fn the_three_formats_locate_the_same_error() {
    let y = "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/40] }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    let t = "name = \"f\"\n[nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.1/40\"]\n[nodes.b]\n[[links]]\nendpoints = [\"a:eth0\", \"b:eth0\"]\n";
    let j = "{\"name\": \"f\",\n \"nodes\": {\"a\": {\"interfaces\": {\"eth0\": {\"addresses\": [\"10.0.0.1/40\"]}}}, \"b\": {}},\n \"links\": [{\"endpoints\": [\"a:eth0\", \"b:eth0\"]}]}\n";
    let msg = "error: bad address `10.0.0.1/40`: prefix length 40 is over 32";
    assert_eq!(load_str("f.yaml", y, Format::Yaml).unwrap_err().compact(), format!("f.yaml:5:27: {msg} [10.0.0.1/40]\n"));
    assert_eq!(load_str("f.toml", t, Format::Toml).unwrap_err().compact(), format!("f.toml:3:14: {msg} [\"10.0.0.1/40\"]\n"));
    assert_eq!(load_str("f.json", j, Format::Json).unwrap_err().compact(), format!("f.json:2:56: {msg} [\"10.0.0.1/40\"]\n"));
}

#[test]
fn toml_and_json_locate_keys_and_types() {
    let t = "name = \"f\"\n[nodes.a]\nroutez = []\n[nodes.a.interfaces.br0]\nkind = \"bridge\"\nstp = \"on\"\n";
    assert_eq!(
        load_str("f.toml", t, Format::Toml).unwrap_err().compact(),
        "f.toml:3:1: error: unknown field `routez` in node `a` [routez]\n\
         f.toml:6:7: error: `stp` must be `true` or `false`, not the string \"on\" [\"on\"]\n"
    );
    let j = "{\"name\": \"f\", \"nodes\": {\"a\": {\"interfaces\": {\"br0\": {\"kind\": \"bridge\", \"ageing_time\": -1}}}}}";
    assert_eq!(
        load_str("f.json", j, Format::Json).unwrap_err().compact(),
        "f.json:1:87: error: `ageing_time` must be a whole number from 0 to 4294967295, not -1 [-1]\n"
    );
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let text = "name: many\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: 9, mac: 'zz' }\n      br0: { kind: bridge }\n      eth1: { master: br1, peer: 'b:eth1' }\n    sysctls: { vm.x: 1 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, c:eth0]\n";
    let d = yaml(text).unwrap_err();
    let lines: Vec<String> = d.compact().lines().map(|l| l.split(": error: ").nth(1).unwrap().to_string()).collect();
    assert_eq!(
        lines,
        [
            "mtu 9 of `a:eth0` is out of range (68..=65535) [9]",
            "bad MAC address `zz`: a MAC address has six hex bytes separated by `:` ['zz']",
            "unknown device `br1`: `master` of `a:eth1` must be a bridge, bond or team in node `a` [br1]",
            "sysctl `vm.x` is not a network sysctl; only `net.*` sysctls are per namespace [vm.x]",
            "unknown node `c` in link endpoint `c:eth0` [c:eth0]",
        ]
    );
    // Located at line:col, in file order.
    let locs: Vec<(usize, usize)> = d
        .compact()
        .lines()
        .map(|l| {
            let mut p = l.split(':').skip(1);
            (p.next().unwrap().parse().unwrap(), p.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(locs, [(5, 20), (5, 28), (7, 23), (8, 16), (11, 25)]);
}

#[test]
fn warnings_do_not_make_a_file_invalid() {
    let text = format!("name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    routes:\n      - {{ to: 10.8.0.0/16, via: 10.0.0.1 }}\n  b: {{}}\n{PAIR}");
    let l = yaml(&text).unwrap();
    assert_eq!(
        l.warnings.compact(),
        "t.yaml:7:33: warning: gateway 10.0.0.1 is node `a`'s own address (on `eth0`): a gateway is the next router's address [10.0.0.1]\n"
    );
    assert!(!l.warnings.has_errors());
    // The route is kept: IPv4 takes it.
    assert_eq!(l.lab.node("a").unwrap().routes.len(), 1);
}

#[test]
fn a_gateway_on_a_connected_prefix_or_a_direct_route_is_reachable() {
    let text = format!(
        "name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    routes:\n      - {{ to: 10.9.0.0/16, dev: eth0 }}\n      - {{ to: default, via: 10.9.0.1 }}\n      - {{ to: 10.8.0.0/16, via: 10.0.0.254 }}\n      - {{ to: 'fd01::/64', via: 'fe80::1', dev: eth0 }}\n  b: {{}}\n{PAIR}"
    );
    let l = yaml(&text).unwrap();
    assert!(l.warnings.is_empty(), "{}", l.warnings);
}

#[test]
fn warnings_and_errors_come_together_unless_decoding_failed() {
    // Validation errors: the warning is still reported (sorted by place).
    let text = format!("name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24], mtu: 10 }}\n    routes:\n      - {{ to: 10.8.0.0/16, via: 10.0.0.1 }}\n  b: {{}}\n{PAIR}");
    let c = errors(&text);
    assert!(c.contains("error: mtu 10 of `a:eth0`") && c.contains("warning: gateway 10.0.0.1"), "{c}");
    // A value that failed to decode: the addresses are left out, and the gateway "unreachable"
    // warning that would follow is not shown.
    let text = format!("name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: 10.0.0.1/24 }}\n    routes:\n      - {{ to: 10.8.0.0/16, via: 10.0.0.2 }}\n  b: {{}}\n{PAIR}");
    assert_eq!(errors(&text), "t.yaml:5:26: error: `addresses` must be a list, not the string \"10.0.0.1/24\" [10.0.0.1/24]\n");
}

#[test]
fn did_you_mean_for_nodes_devices_fields_and_kinds() {
    let text = "name: h\nnodes:\n  router:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/24] }\n    routes:\n      - { to: 10.8.0.0/16, dev: etho }\n  b: {}\nlinks:\n  - endpoints: [router:eth0, b:eth0]\n  - endpoints: [routr:eth1, b:eth1]\n";
    assert_eq!(helps(text), ["did you mean `eth0`?", "did you mean `router`?"]);
    let text = "name: h\nnodes:\n  a:\n    interfaces:\n      br0: { kind: brige, stpp: true }\n      eth0: { adresses: [], peer: 'a:eth1' }\n";
    let h = helps(text);
    assert_eq!(h[0], "did you mean `bridge`? kinds: loopback, veth, bridge, macvlan, macvtap, ipvlan, vlan, vxlan, bond, team, tun, tap, dummy, ifb, ovs-bridge, ovs-internal");
    assert_eq!(h[1], "did you mean `addresses`? a veth interface accepts kind, up, mtu, mac, addresses, master, hairpin, peer, queues (an interface without `kind` is a veth end)");
    let text = "name: h\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, stpp: true }\n";
    assert_eq!(helps(text), ["did you mean `stp`? a bridge interface accepts kind, up, mtu, mac, addresses, master, hairpin, stp, ageing_time, forward_delay, multicast_snooping, vlan_filtering, vlans, fdb"]);
    // Far from everything: no guess.
    let text = "name: h\nnodes:\n  a:\n    sysctl: {}\n";
    assert_eq!(helps(text), ["did you mean `sysctls`? node `a` accepts interfaces, routes, sysctls, nat, firewall, tc, bpf, host"]);
    let text = "name: h\nnodes:\n  a:\n    colour: blue\n";
    assert_eq!(helps(text), ["node `a` accepts interfaces, routes, sysctls, nat, firewall, tc, bpf, host"]);
}

#[test]
fn closest_guesses_only_likely_typos() {
    use super::decode::closest;
    let names = ["eth0", "eth1", "br0", "isolated_host", "addresses"];
    assert_eq!(closest("eht0", names.iter().copied()), Some("eth0"));
    assert_eq!(closest("isolated", names.iter().copied()), Some("isolated_host"));
    assert_eq!(closest("address", names.iter().copied()), Some("addresses"));
    assert_eq!(closest("wlan0", names.iter().copied()), None);
    assert_eq!(closest("x", names.iter().copied()), None);
    // An exact name is not a suggestion.
    assert_eq!(closest("br0", ["br0"].iter().copied()), None);
}

#[test]
fn a_bad_field_does_not_hide_the_others_nor_drop_the_interface() {
    // mtu, up and addresses are all wrong: three errors; the interface stays (so the link and
    // the master reference do not produce follow-on errors).
    let text = "name: x\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, stp: 1, ageing_time: x }\n      eth0: { mtu: big, up: 'no', addresses: 1, master: br0 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    assert_eq!(
        errors(text),
        "t.yaml:5:33: error: `stp` must be `true` or `false`, not 1 [1]\n\
         t.yaml:5:49: error: `ageing_time` must be a whole number from 0 to 4294967295, not the string \"x\" [x]\n\
         t.yaml:6:20: error: `mtu` must be a whole number from 0 to 4294967295, not the string \"big\" [big]\n\
         t.yaml:6:29: error: `up` must be `true` or `false`, not the string \"no\" ['no']\n\
         t.yaml:6:46: error: `addresses` must be a list, not 1 [1]\n"
    );
}

#[test]
fn a_missing_or_bad_name_is_reported_once_and_the_rest_still_checked() {
    assert_eq!(
        errors("nodes:\n  a:\n    interfaces: { eth0: { mtu: 1 } }\n"),
        "t.yaml:1:1: error: the lab has no `name`\n\
         t.yaml:3:19: error: veth `a:eth0` has no peer [eth0]\n\
         t.yaml:3:32: error: mtu 1 of `a:eth0` is out of range (68..=65535) [1]\n"
    );
    assert_eq!(errors("name: 5\nnodes: { a: {} }\n"), "t.yaml:1:7: error: `name` must be a string, not a number [5]\n");
    assert_eq!(errors("name: -lab\nnodes: { a: {} }\n"), "t.yaml:1:7: error: lab name `-lab` must start with a letter, digit or `_` [-lab]\n");
}

#[test]
fn missing_required_fields_are_located_at_their_container() {
    assert_eq!(
        errors("name: r\nnodes:\n  a:\n    routes:\n      - { via: 10.0.0.1 }\n"),
        "t.yaml:5:9: error: `to` is required in route 1 of node `a` [{ via: 10.0.0.1 }]\n"
    );
    assert_eq!(errors("name: r\nnodes: { a: {} }\nlinks:\n  - { mtu: 1400 }\n"), "t.yaml:4:5: error: `endpoints` is required in link 1 [{ mtu: 1400 }]\n");
    // A required field that was bad is reported once (as bad), not again as missing.
    assert_eq!(
        errors("name: r\nnodes: { a: {} }\nlinks:\n  - { endpoints: 'a:eth0 b:eth0' }\n"),
        "t.yaml:4:18: error: `endpoints` must be a list, not the string \"a:eth0 b:eth0\" ['a:eth0 b:eth0']\n"
    );
}

#[test]
fn veth_pairing_rules() {
    // A link plus a consistent `peer:` on either end is one pair.
    let ok = "name: v\nnodes:\n  a:\n    interfaces:\n      eth0: { peer: 'b:eth0' }\n  b:\n    interfaces:\n      eth0: { peer: 'a:eth0' }\nlinks:\n  - endpoints: [b:eth0, a:eth0]\n";
    let l = yaml(ok).unwrap();
    assert_eq!(l.lab.node("b").unwrap().interfaces["eth0"].peer, Some(Endpoint::new("a", "eth0")));
    // A peer that is not declared becomes a plain veth end.
    let l = yaml("name: v\nnodes:\n  a:\n    interfaces:\n      e1: { peer: 'b:x1' }\n  b: {}\n").unwrap();
    assert!(l.lab.node("b").unwrap().interfaces.contains_key("x1"));
    // A peer that is a bridge.
    assert_eq!(
        errors("name: v\nnodes:\n  a:\n    interfaces:\n      e1: { peer: 'a:br0' }\n      br0: { kind: bridge }\n"),
        "t.yaml:5:19: error: peer `a:br0` is a bridge; a veth's peer must be a veth ['a:br0']\n"
    );
    // Its own peer.
    assert_eq!(
        errors("name: v\nnodes:\n  a:\n    interfaces:\n      e1: { peer: 'a:e1' }\n"),
        "t.yaml:5:19: error: veth `a:e1` cannot be its own peer ['a:e1']\n"
    );
    // A link end declared with another kind.
    assert_eq!(
        errors("name: v\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n  b: {}\nlinks:\n  - endpoints: [a:br0, b:eth0]\n"),
        "t.yaml:8:17: error: link endpoint `a:br0` is a bridge; a link end must be a veth [a:br0]\n"
    );
    // b:eth0 is paired twice; the error names both pairings and nothing else follows from it.
    let d = yaml("name: v\nnodes: { a: {}, b: {}, c: {} }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n  - endpoints: [c:eth0, b:eth0]\n").unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    let e = d.iter().next().unwrap();
    assert_eq!(e.message, "veth end `b:eth0` is declared twice: paired with `a:eth0` and with `c:eth0`");
    assert_eq!(e.labels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["second pairing", "first pairing"]);
}

#[test]
fn link_mtu_applies_to_both_ends_unless_an_end_sets_its_own() {
    let l =
        yaml("name: m\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: 1300 }\n  b: {}\nlinks:\n  - { endpoints: [a:eth0, b:eth0], mtu: 9000 }\n").unwrap();
    assert_eq!(l.lab.node("a").unwrap().interfaces["eth0"].mtu, Some(1300));
    assert_eq!(l.lab.node("b").unwrap().interfaces["eth0"].mtu, Some(9000));
}

#[test]
fn masters_must_be_bridges_of_the_same_node_without_cycles() {
    assert_eq!(
        errors("name: m\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, master: br0 }\n"),
        "t.yaml:5:36: error: `a:br0` cannot be its own master [br0]\n"
    );
    assert_eq!(
        errors("name: m\nnodes:\n  a:\n    interfaces:\n      lo: { master: br0 }\n      br0: { kind: bridge }\n"),
        "t.yaml:5:21: error: the loopback device cannot be a bridge port [br0]\n"
    );
    let l =
        yaml("name: m\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge }\n      p1: { master: br0, hairpin: true, peer: 'b:p1' }\n  b: {}\n").unwrap();
    let p1 = &l.lab.node("a").unwrap().interfaces["p1"];
    assert_eq!((p1.master.as_deref(), p1.hairpin), (Some("br0"), Some(true)));
}

#[test]
fn the_root_namespace_lo_is_not_the_labs() {
    assert_eq!(
        errors("name: r\nnodes:\n  host:\n    interfaces:\n      lo: { mtu: 1500 }\n"),
        "t.yaml:5:7: error: the root namespace's `lo` does not belong to the lab; set `isolated_host: true` to configure the host's loopback [lo]\n"
    );
    assert!(yaml("name: r\nisolated_host: true\nnodes:\n  host:\n    interfaces:\n      lo: { mtu: 1500 }\n").is_ok());
}

#[test]
fn interface_names() {
    assert_eq!(ifname_problem("eth0"), None);
    assert_eq!(ifname_problem("fifteen-bytes-x"), None);
    assert_eq!(ifname_problem("sixteen-bytes-xx").unwrap(), "interface name `sixteen-bytes-xx` is 16 bytes; the kernel allows at most 15");
    // Bytes, not characters.
    assert!(ifname_problem("ééééééééé").unwrap().contains("is 18 bytes"));
    assert_eq!(ifname_problem("a/b").unwrap(), "interface name `a/b` contains `/`, which the kernel does not allow");
    assert_eq!(ifname_problem("a:b").unwrap(), "interface name `a:b` contains `:`, which the kernel does not allow");
    assert_eq!(ifname_problem("a\tb").unwrap(), "interface name `a\tb` contains whitespace, which the kernel does not allow");
    assert_eq!(ifname_problem("").unwrap(), "an interface name cannot be empty");
    assert_eq!(ifname_problem("..").unwrap(), "`..` is not a valid interface name");
    assert_eq!(ifname_problem("e%d").unwrap(), "interface name `e%d` contains `%`, which the kernel takes as a name template (`eth%d` becomes `eth0`)");
}

#[test]
fn lab_names() {
    assert_eq!(lab_name_problem("lab_1-x"), None);
    assert_eq!(lab_name_problem("a.b").unwrap(), "lab name `a.b` contains `.`; use only letters, digits, `-` and `_`");
    assert_eq!(lab_name_problem("my lab").unwrap(), "lab name `my lab` contains a space; use only letters, digits, `-` and `_`");
    assert_eq!(lab_name_problem(&"x".repeat(41)).unwrap(), format!("lab name `{}` is 41 bytes; at most 40 are allowed", "x".repeat(41)));
    assert_eq!(lab_name_problem("").unwrap(), "lab name cannot be empty");
}

#[test]
fn addresses_and_macs() {
    assert_eq!(parse_cidr("10.0.0.1/24").unwrap().to_string(), "10.0.0.1/24");
    assert_eq!(parse_cidr(" fd00::1/64 ").unwrap().to_string(), "fd00::1/64");
    assert_eq!(parse_cidr("10.0.0.1").unwrap_err(), "missing prefix length (e.g. `/24` or `/64`)");
    assert_eq!(parse_cidr("host/24").unwrap_err(), "`host` is not an IP address");
    assert_eq!(parse_cidr("10.0.0.1/x").unwrap_err(), "`x` is not a prefix length");
    assert_eq!(parse_cidr("0.0.0.0/8").unwrap_err(), "the unspecified address cannot be assigned");
    assert_eq!(parse_cidr("ff02::1/64").unwrap_err(), "a multicast address cannot be assigned to an interface");
    assert_eq!(lab::parse_mac("02-00-00-00-00-0A").unwrap(), [2, 0, 0, 0, 0, 10]);
    assert_eq!(lab::parse_mac("2:0:0:0:0:1").unwrap_err(), "`2` is not a two-digit hex byte");
    assert_eq!(
        errors("name: m\nnodes:\n  a:\n    interfaces:\n      lo: { mac: '02:00:00:00:00:01' }\n"),
        "t.yaml:5:18: error: the loopback device has no MAC address ['02:00:00:00:00:01']\n"
    );
}

#[test]
fn routes() {
    let base = "name: r\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/24, 'fd00::1/64'] }\n    routes:\n";
    let tail = format!("  b: {{}}\n{PAIR}");
    let l = yaml(&format!("{base}      - {{ to: default6, via: 'fd00::2' }}\n      - {{ to: 10.1.1.1, dev: eth0, table: 100, metric: 5 }}\n      - {{ to: 10.2.0.0/16, via: 10.0.0.2, table: main, src: 10.0.0.1 }}\n{tail}")).unwrap();
    let r: Vec<String> = l.lab.node("a").unwrap().routes.iter().map(|r| r.to_string()).collect();
    assert_eq!(r, ["default6 via fd00::2", "10.1.1.1/32 dev eth0 metric 5 table 100", "10.2.0.0/16 via 10.0.0.2 src 10.0.0.1"]);
    assert_eq!(
        errors(&format!("{base}      - {{ to: 10.2.0.0/16, via: 10.0.0.2, table: mine }}\n{tail}")),
        "t.yaml:7:50: error: unknown table `mine`: use a number, `main` or `local` [mine]\n"
    );
    assert_eq!(
        errors(&format!("{base}      - {{ to: 10.2.0.0/16, via: 10.0.0.2, src: me }}\n{tail}")),
        "t.yaml:7:48: error: source `me` is not an IP address [me]\n"
    );
    // Same destination with different metrics: two routes.
    assert!(yaml(&format!("{base}      - {{ to: default, via: 10.0.0.2 }}\n      - {{ to: default, via: 10.0.0.3, metric: 10 }}\n{tail}")).is_ok());
}

#[test]
fn sysctl_keys_are_canonical() {
    assert_eq!(sysctl_components("net.ipv4.ip_forward"), ["net", "ipv4", "ip_forward"]);
    assert_eq!(sysctl_components("net/ipv4/conf/eth0.10/forwarding"), ["net", "ipv4", "conf", "eth0.10", "forwarding"]);
    assert_eq!(sysctl_key(&sysctl_components("net/ipv4/ip_forward")), "net.ipv4.ip_forward");
    assert_eq!(sysctl_key(&sysctl_components("net/ipv4/conf/eth0.10/forwarding")), "net/ipv4/conf/eth0.10/forwarding");
    let l =
        yaml("name: s\nnodes:\n  a:\n    sysctls:\n      net/ipv4/ip_forward: 1\n      net.core.somaxconn: ' 512 '\n      net.ipv4.conf.lo.rp_filter: false\n")
            .unwrap();
    let s = &l.lab.node("a").unwrap().sysctls;
    assert_eq!(
        s.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        ["net.ipv4.ip_forward=1", "net.core.somaxconn=512", "net.ipv4.conf.lo.rp_filter=0"]
    );
    assert_eq!(
        errors("name: s\nnodes:\n  a:\n    sysctls:\n      net.ipv4: 1\n"),
        "t.yaml:5:7: error: sysctl `net.ipv4` is not a valid sysctl name [net.ipv4]\n"
    );
}

#[test]
fn ipv6_link_local_mode() {
    let v4 = "name: i\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/24] }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    assert!(!yaml(v4).unwrap().lab.ipv6_link_local, "auto without IPv6: off");
    assert!(yaml(&v4.replace("name: i\n", "name: i\nipv6: on\n")).unwrap().lab.ipv6_link_local);
    let l = yaml(&v4.replace("10.0.0.1/24", "'fd00::1/64'").replace("name: i\n", "name: i\nipv6: off\n")).unwrap();
    assert!(!l.lab.ipv6_link_local);
    assert_eq!(l.warnings.warnings().count(), 1);
}

/// The kernel turns IPv6 off on a device under 1280 and refuses its IPv6 addresses: `up`
/// would fail, so validation does, pointing at the MTU where it is written (here, the link's).
#[test]
fn ipv6_under_1280_is_an_error_at_the_mtu() {
    let text = "name: i\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: ['fd00::1/64', 'fd00::2/64'], mtu: 1200 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    assert_eq!(errors(text), "t.yaml:5:61: error: `a:eth0` has IPv6 address fd00::1 but mtu 1200: IPv6 needs an MTU of at least 1280 [1200]\n");
    let text =
        "name: i\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: ['fd00::1/64'] }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n    mtu: 1000\n";
    assert_eq!(errors(text), "t.yaml:9:10: error: `a:eth0` has IPv6 address fd00::1 but mtu 1000: IPv6 needs an MTU of at least 1280 [1000]\n");
}

/// A link's `mtu` is checked once, where it is written, not at each end.
#[test]
fn a_link_mtu_error_points_at_the_link() {
    let text = "name: i\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n    mtu: 70000\n";
    assert_eq!(errors(text), "t.yaml:7:10: error: mtu 70000 of the link `a:eth0` — `b:eth0` is out of range (68..=65535) [70000]\n");
}

#[test]
fn topologies_built_in_code_are_validated_without_locations() {
    let mut t = Topology { name: "code".into(), ..Default::default() };
    t.nodes.insert("a".into(), Default::default());
    t.links.push(file::LinkSpec { endpoints: vec!["a:eth0".into(), "z:eth0".into()], mtu: None });
    let d = load_topology(&t).unwrap_err();
    assert_eq!(d.compact(), "<lab code>: error: unknown node `z` in link endpoint `z:eth0`\n");
}

#[test]
fn yaml_details() {
    // A second document, anchors and aliases, quoted numbers as strings.
    assert!(errors("name: a\nnodes: {a: {}}\n---\nname: b\n").contains("a topology file holds one YAML document; found a second"));
    let l = yaml("name: y\nx-common: &c { mtu: 1400 }\nnodes: {}\n");
    assert!(l.is_err(), "unknown top-level keys are refused even when used as anchors");
    // Tabs in indentation are YAML syntax errors, located.
    let c = errors("name: t\nnodes:\n\ta: {}\n");
    assert!(c.starts_with("t.yaml:3:") && c.contains("syntax error"), "{c}");
}

#[test]
fn rendering_underlines_the_offending_text() {
    let d = yaml(
        "name: r\nnodes:\n  a:\n    interfaces:\n      eth0: { master: bro }\n      br0: { kind: bridge }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n",
    )
    .unwrap_err();
    insta::assert_snapshot!(d.render(false));
}

#[test]
fn a_bridge_over_the_kernel_port_limit_is_refused_at_the_bridge() {
    let mut text = String::from("name: big\nnodes:\n  host:\n    interfaces:\n      br0: { kind: bridge }\n");
    for i in 0..1024 {
        text.push_str(&format!("      v{i}: {{ master: br0 }}\n"));
    }
    for i in 0..1024 {
        text.push_str(&format!("  n{i}: {{ interfaces: {{ eth0: {{ peer: 'host:v{i}' }} }} }}\n"));
    }
    let d = crate::model::load_str("big.yaml", &text, crate::model::Format::Yaml).unwrap_err();
    let c = d.compact();
    assert!(c.contains("big.yaml:5:7: error: bridge `host:br0` has 1024 ports; a Linux bridge holds at most 1023 [br0]"), "{c}");
    assert_eq!(d.errors().count(), 1, "{c}");
}

/// Two sites behind NAT reuse one private range: their addresses never meet, so they are no
/// duplicates. Devices stacked on one lower device (macvlans) share its segment, so there they are.
#[test]
fn addresses_repeat_only_where_they_cannot_meet() {
    let sites = "name: s\nnodes:\n  gw1:\n    interfaces: { lan: { addresses: [192.168.1.1/24] }, wan: { addresses: [203.0.113.1/24] } }\n  gw2:\n    interfaces: { lan: { addresses: [192.168.1.1/24] }, wan: { addresses: [203.0.113.2/24] } }\n  pc1: { interfaces: { eth0: { addresses: [192.168.1.10/24] } } }\n  pc2: { interfaces: { eth0: { addresses: [192.168.1.10/24] } } }\nlinks:\n  - endpoints: [pc1:eth0, gw1:lan]\n  - endpoints: [pc2:eth0, gw2:lan]\n  - endpoints: [gw1:wan, gw2:wan]\n";
    let l = yaml(sites).unwrap();
    assert!(l.warnings.is_empty(), "{}", l.warnings);

    let stacked = "name: m\nnodes:\n  host:\n    interfaces:\n      br0: { kind: bridge }\n      up0: { master: br0 }\n  a:\n    interfaces: { m0: { kind: macvlan, link: 'host:br0', addresses: [10.0.0.5/24] } }\n  b:\n    interfaces: { m0: { kind: macvlan, link: 'host:br0', addresses: [10.0.0.5/24] } }\n  c: { interfaces: { eth0: {} } }\nlinks:\n  - endpoints: [host:up0, c:eth0]\n";
    assert_eq!(errors(stacked), "t.yaml:10:70: error: address 10.0.0.5 is declared twice (also on `a:m0`, on the same layer-2 segment) [10.0.0.5/24]\n");
}

#[test]
fn type_errors_say_what_is_accepted_and_show_the_value() {
    // A float where a whole number is wanted, a negative table, a number past u32: the value
    // and the range, not "not a number".
    let text = "name: t\nnodes:\n  a:\n    interfaces: { lo: { mtu: 99999999999 } }\n    sysctls: { net.ipv4.ip_forward: 1.5 }\n    routes:\n      - { to: 10.0.0.0/8, dev: lo, table: -3 }\n";
    assert_eq!(
        errors(text),
        "t.yaml:4:30: error: `mtu` must be a whole number from 0 to 4294967295, not 99999999999 [99999999999]\n\
         t.yaml:5:37: error: `net.ipv4.ip_forward` must be a whole number, `true` / `false` or a string, not 1.5 [1.5]\n\
         t.yaml:7:43: error: `table` must be a table number (0 to 4294967295) or `main` / `local`, not -3 [-3]\n"
    );
}

#[test]
fn a_mapping_form_reports_its_own_error() {
    // `neighbour_limits` is `auto` or a mapping: the mapping's missing field is named.
    assert_eq!(
        errors("name: t\nneighbour_limits: { gc_thresh1: 10 }\nnodes: { a: {} }\n"),
        "t.yaml:2:1: error: `gc_thresh2` is required in `neighbour_limits` [neighbour_limits]\n"
    );
    assert_eq!(
        errors("name: t\nneighbour_limits: sometimes\nnodes: { a: {} }\n"),
        "t.yaml:2:19: error: `neighbour_limits` must be `auto` or a mapping { gc_thresh1, gc_thresh2, gc_thresh3 }, not the string \"sometimes\" [sometimes]\n"
    );
    // A bridge port's VLAN is an id or a mapping: a misspelt flag is found inside the kind's
    // options, at its key, with the likely name.
    let vlans = |v: &str| {
        format!("name: t\nnodes:\n  a:\n    interfaces:\n      br0: {{ kind: bridge, vlan_filtering: true, vlans: {{ p1: {v} }} }}\n      p1: {{ master: br0, peer: 'b:p1' }}\n  b: {{}}\n")
    };
    let text = vlans("[10, {vid: 20, pvdi: true}]");
    assert_eq!(errors(&text), "t.yaml:5:78: error: unknown field `pvdi` in `vlans.p1[1]` of interface `a:br0` [pvdi]\n");
    assert_eq!(helps(&text), ["did you mean `pvid`? `vlans.p1[1]` of interface `a:br0` accepts vid, pvid, untagged"]);
    assert_eq!(
        errors(&vlans("[x]")),
        "t.yaml:5:64: error: every entry of `p1` must be a VLAN id or a mapping { vid, pvid, untagged }, not the string \"x\" [x]\n"
    );
    assert!(yaml(&vlans("[10, {vid: 20, pvid: true}]")).is_ok());
}

#[test]
fn every_kind_decodes_its_options_with_their_paths() {
    for name in kind::KindSpec::NAMES {
        assert!(kind::KindSpec::decode_options_located(name, &serde_json::json!({})).is_some(), "{name}");
    }
    assert!(kind::KindSpec::decode_options_located("brige", &serde_json::json!({})).is_none());
}

#[test]
fn a_key_with_nothing_after_it_is_an_empty_list_or_mapping() {
    let text = "name: e\nnodes:\n  a:\n    sysctls:\n    routes:\n    interfaces:\n      lo:\n        addresses:\n      br0:\n        kind: bridge\n        vlan_filtering: true\n        vlans:\n          p1:\n        fdb:\n      p1: { master: br0, peer: 'b:p1' }\n  b:\n";
    let l = yaml(text).unwrap_or_else(|d| panic!("{d}"));
    let a = l.lab.node("a").unwrap();
    assert!(a.sysctls.is_empty() && a.routes.is_empty() && a.interfaces["lo"].addresses.is_empty());
    // Nothing where a scalar is required is still an error.
    let c = errors("name: e\nnodes:\n  a:\n    routes:\n      - { to: }\n");
    assert!(c.contains("error: `to` must be a string, not nothing"), "{c}");
}

#[test]
fn no_nodes_is_not_claimed_when_nodes_failed_to_decode() {
    assert_eq!(errors("name: n\nnodes: [a, b]\n"), "t.yaml:2:8: error: `nodes` is a mapping from node name to node, not a list [[a, b]]\n");
    assert_eq!(errors("name: n\nnodes: { a: 5 }\n"), "t.yaml:2:13: error: a node is a mapping (interfaces, routes, sysctls), not a number [5]\n");
    // A misspelt `nodes`: its did-you-mean says it all.
    assert_eq!(errors("name: n\nnode:\n  a: {}\n"), "t.yaml:2:1: error: unknown field `node` in the lab [node]\n");
    assert_eq!(
        helps("name: n\nNodes:\n  a: {}\n")[0],
        "did you mean `nodes`? the lab accepts name, isolated_host, netns_prefix, ipv6, neighbour_limits, nodes, links, expect, ipsec, hosts"
    );
    // An empty `nodes` is pointed at; a missing one is to be added after what the file has,
    // so the cause of other errors comes first.
    assert_eq!(errors("name: n\nnodes:\n"), "t.yaml:2:1: error: the lab has no nodes [nodes]\n");
    let d = yaml("name:\n").unwrap_err();
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, ["`name` must be a string, not nothing", "the lab has no nodes"]);
    assert_eq!(errors("name: n\nipv6: on\n"), "t.yaml:2:9: error: the lab has no nodes\n");
}

#[test]
fn yaml_merge_keys_share_settings_and_errors_point_at_their_source() {
    let text = |mtu: u32| {
        format!(
            "name: m\nnodes:\n  a:\n    interfaces:\n      eth0: &e {{ mtu: {mtu}, addresses: [10.0.0.1/24] }}\n  b:\n    interfaces:\n      eth0: {{ <<: *e, addresses: [10.0.0.2/24] }}\n{PAIR}"
        )
    };
    let l = yaml(&text(1400)).unwrap();
    let b = &l.lab.node("b").unwrap().interfaces["eth0"];
    assert_eq!((b.mtu, b.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>()), (Some(1400), vec!["10.0.0.2/24".to_string()]));
    assert_eq!(
        errors(&text(10)),
        "t.yaml:5:23: error: mtu 10 of `a:eth0` is out of range (68..=65535) [10]\n\
         t.yaml:5:23: error: mtu 10 of `b:eth0` is out of range (68..=65535) [10]\n"
    );
}

/// A gateway that is the node's own address, or on another device than the route's `dev`, is
/// said to be that, not "not reachable". IPv4 takes its own address as a gateway (a warning);
/// the other cases the kernel refuses (errors).
#[test]
fn gateway_findings_say_what_the_gateway_is() {
    let text = format!(
        "name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n      eth1: {{ addresses: [10.1.0.1/24] }}\n    routes:\n      - {{ to: 10.5.0.0/16, via: 10.0.0.1 }}\n      - {{ to: 10.6.0.0/16, via: 10.0.0.2, dev: eth1 }}\n  b: {{}}\n  c: {{}}\n{PAIR}  - endpoints: [a:eth1, c:eth0]\n"
    );
    assert_eq!(
        errors(&text),
        "t.yaml:8:33: warning: gateway 10.0.0.1 is node `a`'s own address (on `eth0`): a gateway is the next router's address [10.0.0.1]\n\
         t.yaml:9:33: error: gateway 10.0.0.2 is not on a subnet of `eth1`: it is on `eth0` (10.0.0.0/24) [10.0.0.2]\n"
    );
}

/// What the kernel is certain to refuse when the route is added is an error at validation:
/// an unreachable gateway, a link-local gateway without `dev`, a device declared down, a source
/// that is not the node's, an IPv6 gateway that is the node's own address. In the machine's
/// root namespace undeclared devices may make them work: warnings there.
#[test]
fn routes_the_kernel_refuses_are_errors() {
    let text = format!(
        "name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24, 'fd00::1/64'] }}\n      eth1: {{ up: false, addresses: [10.1.0.1/24] }}\n    routes:\n      - {{ to: 10.5.0.0/16, via: 10.9.9.9 }}\n      - {{ to: 10.6.0.0/16, via: 10.1.0.2 }}\n      - {{ to: 10.7.0.0/16, dev: eth1 }}\n      - {{ to: 'fd05::/64', via: 'fe80::1' }}\n      - {{ to: 10.8.0.0/16, via: 10.0.0.2, src: 10.0.0.9 }}\n      - {{ to: 'fd06::/64', via: 'fd00::1' }}\n  b: {{}}\n  c: {{}}\n{PAIR}  - endpoints: [a:eth1, c:eth0]\n"
    );
    assert_eq!(
        errors(&text),
        "t.yaml:8:33: error: gateway 10.9.9.9 is not reachable through any address of node `a` [10.9.9.9]\n\
         t.yaml:9:33: error: gateway 10.1.0.2 is on 10.1.0.0/24 of `eth1`, which is declared `up: false` [10.1.0.2]\n\
         t.yaml:10:33: error: route to 10.7.0.0/16 of node `a` goes through `eth1`, which is declared `up: false` [eth1]\n\
         t.yaml:11:33: error: gateway fe80::1 is a link-local address: the route needs `dev` to say on which link ['fe80::1']\n\
         t.yaml:12:48: error: source 10.0.0.9 of the route to 10.8.0.0/16 is not an address of node `a` [10.0.0.9]\n\
         t.yaml:13:33: error: gateway fd00::1 is node `a`'s own address (on `eth0`): a gateway is the next router's address ['fd00::1']\n"
    );
    // Addresses no router holds.
    let text = format!("name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    routes:\n      - {{ to: 10.5.0.0/16, via: 10.0.0.255 }}\n      - {{ to: 10.6.0.0/16, via: 224.0.0.1 }}\n      - {{ to: 10.7.0.0/16, via: 10.0.0.0 }}\n  b: {{}}\n{PAIR}");
    assert_eq!(
        errors(&text),
        "t.yaml:7:33: error: gateway 10.0.0.255 is the broadcast address of 10.0.0.0/24 [10.0.0.255]\n\
         t.yaml:8:33: error: gateway 224.0.0.1 is a multicast address [224.0.0.1]\n"
    );
    // The machine's root namespace has devices the file does not declare.
    let root = "name: w\nnodes:\n  host:\n    interfaces:\n      veth1: { addresses: [10.0.0.1/24] }\n    routes:\n      - { to: 10.5.0.0/16, via: 192.168.1.1 }\n      - { to: 10.6.0.0/16, via: 10.0.0.2, src: 192.168.1.10 }\n  a: {}\nlinks:\n  - endpoints: [host:veth1, a:eth0]\n";
    let l = yaml(root).unwrap();
    assert_eq!(l.warnings.warnings().count(), 2, "{}", l.warnings);
    assert!(errors(&root.replace("name: w\n", "name: w\nisolated_host: true\n")).matches("error:").count() == 2);
    // A gateway reached through a device route declared after it: the plan adds device routes first.
    let later = format!("name: w\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    routes:\n      - {{ to: default, via: 10.9.0.1 }}\n      - {{ to: 10.9.0.0/16, dev: eth0, table: 7 }}\n      - {{ to: 10.9.0.0/16, dev: eth0 }}\n  b: {{}}\n{PAIR}");
    assert!(yaml(&later).unwrap().warnings.is_empty());
    // A device route in another table than the gateway's route does not count.
    assert!(errors(&later.replace("      - { to: 10.9.0.0/16, dev: eth0 }\n", "")).contains("error: gateway 10.9.0.1 is not reachable"));
}

/// An address on a bridge port does not answer (the bridge takes the port's traffic).
#[test]
fn an_address_on_a_bridge_port_is_a_warning_pointing_at_the_bridge() {
    let text = "name: w\nnodes:\n  host:\n    interfaces:\n      br1: { kind: bridge }\n      veth1: { master: br1, addresses: [192.168.1.20/24] }\n  a: {}\nlinks:\n  - endpoints: [host:veth1, a:eth0]\n";
    let l = yaml(text).unwrap();
    assert_eq!(
        l.warnings.compact(),
        "t.yaml:6:40: warning: `host:veth1` is a port of bridge `br1`: the bridge takes all its traffic, so addresses on the port do not answer [[192.168.1.20/24]]\n"
    );
    assert_eq!(l.warnings.iter().next().unwrap().help.as_deref(), Some("put the address on the bridge `br1` instead"));
}

/// An error that only follows from another one already reported is not reported.
#[test]
fn errors_that_follow_from_another_are_not_reported() {
    // A link end with a bad interface name: no "has no peer" for either end, and the name's
    // error once, at the declared interface.
    let text = "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: {}\n  b:\n    interfaces:\n      this-name-is-too-long: {}\nlinks:\n  - endpoints: [a:eth0, b:this-name-is-too-long]\n";
    assert_eq!(errors(text), "t.yaml:8:7: error: interface name `this-name-is-too-long` is 21 bytes; the kernel allows at most 15 [this-name-is-too-long]\n");
    // Not declared: the error is at the link.
    let text = "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:this-name-is-too-long]\n";
    assert_eq!(
        errors(text),
        "t.yaml:8:25: error: interface name `this-name-is-too-long` is 21 bytes; the kernel allows at most 15 [b:this-name-is-too-long]\n"
    );
    // The same through `peer`.
    let text =
        "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: { peer: 'b:this-name-is-too-long' }\n  b:\n    interfaces:\n      this-name-is-too-long: {}\n";
    assert_eq!(errors(text), "t.yaml:8:7: error: interface name `this-name-is-too-long` is 21 bytes; the kernel allows at most 15 [this-name-is-too-long]\n");
    // An interface of an unknown kind: its port, route, sysctl, tc and NAT raise nothing more.
    let text = format!(
        "name: f\nnodes:\n  a:\n    interfaces:\n      br0: {{ kind: brdige }}\n      eth0: {{ master: br0 }}\n      eth1: {{ addresses: [10.0.0.1/24] }}\n    routes:\n      - {{ to: 10.9.0.0/16, dev: br0 }}\n    sysctls:\n      net.ipv4.conf.br0.forwarding: 1\n    tc:\n      br0: {{ delay: 10ms }}\n    nat:\n      masquerade: [{{ source: 10.0.0.0/24, out: br0 }}]\n  b: {{}}\n{PAIR}  - endpoints: [a:eth1, b:eth1]\n"
    );
    assert_eq!(errors(&text), "t.yaml:5:20: error: unknown device kind `brdige` [brdige]\n");
    // A node that is not a mapping, or `nodes` that is not one: no "unknown node" in links.
    assert_eq!(
        errors("name: f\nnodes:\n  a: { interfaces: { eth0: {} } }\n  b: 5\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n"),
        "t.yaml:4:6: error: a node is a mapping (interfaces, routes, sysctls), not a number [5]\n"
    );
    // Nor in firewall rules, port forwards and expectations naming it.
    assert_eq!(
        errors("name: f\nnodes:\n  a:\n    interfaces: { eth0: { addresses: [10.0.0.1/24] } }\n    firewall: { rules: [{ action: drop, from: b }] }\n    nat: { port_forwards: [{ port: 80, to: 'b:80' }] }\n  b: 5\nlinks:\n  - endpoints: [a:eth0, b:eth0]\nexpect:\n  - reach: { from: a, to: b }\n  - reach: { from: b, to: a }\n"),
        "t.yaml:7:6: error: a node is a mapping (interfaces, routes, sysctls), not a number [5]\n"
    );
    assert_eq!(
        errors("name: f\nnodes: [a, b]\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n"),
        "t.yaml:2:8: error: `nodes` is a mapping from node name to node, not a list [[a, b]]\n"
    );
    // A link that failed to decode: its declared ends raise no "has no peer".
    let text = "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, 5]\n";
    assert_eq!(errors(text), "t.yaml:8:25: error: every entry of `endpoints` must be a string, not 5 [5]\n");
}

/// One bad node does not hide the errors of another: every piece is decoded on its own.
#[test]
fn a_bad_value_in_one_node_does_not_hide_errors_in_another() {
    let text = "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: big }\n  b:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/33] }\n    routes:\n      - { to: 10.9.0.0/16 }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n    mtu: 20\n";
    assert_eq!(
        errors(text),
        "t.yaml:5:20: error: `mtu` must be a whole number from 0 to 4294967295, not the string \"big\" [big]\n\
         t.yaml:8:27: error: bad address `10.0.0.1/33`: prefix length 33 is over 32 [10.0.0.1/33]\n\
         t.yaml:10:9: error: a route needs `via` (a gateway), `dev` (a device), or both [{ to: 10.9.0.0/16 }]\n\
         t.yaml:13:10: error: mtu 20 of the link `a:eth0` — `b:eth0` is out of range (68..=65535) [20]\n"
    );
}

/// nothing more.
#[test]
fn an_option_of_another_kind_names_that_kind() {
    let text = format!(
        "name: k\nnodes:\n  a:\n    interfaces:\n      eth0: {{ stp: true }}\n      p0: {{ master: eth0 }}\n  b: {{}}\n{PAIR}  - endpoints: [a:p0, b:p0]\n"
    );
    let d = yaml(&text).unwrap_err();
    assert_eq!(d.compact(), "t.yaml:5:15: error: `stp` is an option of kind `bridge`; `a:eth0` is a veth [stp]\n");
    assert_eq!(
        d.iter().next().unwrap().help.as_deref(),
        Some("an interface without `kind` is a veth end; add `kind: bridge` to make `eth0` that kind, or remove `stp`")
    );
    // Its `peer` raises no "has no peer" either.
    let text = "name: k\nnodes:\n  a:\n    interfaces:\n      eth0: { peer: 'b:eth0', stp: true }\n  b:\n    interfaces:\n      eth0: {}\n";
    assert_eq!(errors(text), "t.yaml:5:31: error: `stp` is an option of kind `bridge`; `a:eth0` is a veth [stp]\n");
    // `link` on a dummy: the kinds that take it.
    let text = "name: k\nnodes:\n  a:\n    interfaces:\n      eth0: { kind: dummy }\n      d0: { kind: dummy, link: eth0 }\n";
    assert_eq!(errors(text), "t.yaml:6:26: error: `link` is an option of kinds `macvlan`, `macvtap`, `ipvlan` and `vlan`; `a:d0` is a dummy [link]\n");
    assert_eq!(
        helps(text),
        ["`d0` is declared `kind: dummy`; make it one of `kind: macvlan`, `kind: macvtap`, `kind: ipvlan`, `kind: vlan`, or remove `link` (`link` names the lower device those kinds sit on)"]
    );
    // Without `kind` and options of several kinds: the interface is left out, so no "has no
    // peer" follows; `link` on a veth end says how veths connect.
    let text = "name: k\nnodes:\n  a:\n    interfaces:\n      eth0: { kind: dummy }\n      mv0: { link: eth0 }\n";
    assert_eq!(errors(text), "t.yaml:6:14: error: `link` is an option of kinds `macvlan`, `macvtap`, `ipvlan` and `vlan`; `a:mv0` is a veth [link]\n");
    assert!(helps(text)[0].ends_with("a veth end is connected with `peer: <node>:<ifname>` or a `links` entry"), "{:?}", helps(text));
    // A port's VLANs belong on its bridge; `lo` is no veth.
    let text = format!("name: k\nnodes:\n  a:\n    interfaces:\n      eth0: {{ vlans: [10] }}\n      lo: {{ stp: true }}\n  b: {{}}\n{PAIR}");
    assert_eq!(
        helps(&text),
        [
            "an interface without `kind` is a veth end; add `kind: bridge` to make `eth0` that kind, or remove `vlans`; a port's VLANs are listed on its bridge: `vlans: { eth0: [10, 20] }`",
            "`lo` is the node's loopback device; remove `stp`, or declare a device of another name with `kind: bridge`"
        ]
    );
    assert!(errors(&text).contains("error: `stp` is an option of kind `bridge`; `a:lo` is a loopback [stp]"), "{}", errors(&text));
    // A typo is still a typo.
    let text = "name: k\nnodes:\n  a:\n    interfaces:\n      br0: { kind: bridge, stpp: true }\n";
    assert_eq!(errors(text), "t.yaml:5:28: error: unknown field `stpp` in interface `a:br0` [stpp]\n");
    assert!(helps(text)[0].starts_with("did you mean `stp`?"), "{:?}", helps(text));
}

/// not an unknown node.
#[test]
fn a_bad_prefix_is_not_an_unknown_node() {
    use crate::model::validate::address_like_problem;
    let p = |s: &str| address_like_problem(s).map(|(m, l)| format!("{m} / {l}"));
    assert_eq!(p("10.0.0.0/33").as_deref(), Some("bad prefix `10.0.0.0/33`: prefix length 33 is over 32 / bad prefix"));
    assert_eq!(p("fd00::/200").as_deref(), Some("bad prefix `fd00::/200`: prefix length 200 is over 128 / bad prefix"));
    assert_eq!(p("10.0.0.0/x").as_deref(), None, "a letter other than a hex digit: not address-like");
    assert_eq!(p("10.0.0.0/").as_deref(), Some("bad prefix `10.0.0.0/`: `` is not a prefix length (0 to 32) / bad prefix"));
    assert_eq!(p("10.0.0.300").as_deref(), Some("bad address `10.0.0.300`: `300` in `10.0.0.300` is over 255 / bad address"));
    assert_eq!(p("10.0.1").as_deref(), Some("bad address `10.0.1`: an IPv4 address has four numbers, `10.0.1` has 3 / bad address"));
    assert_eq!(p("fd00:::1").as_deref(), Some("bad address `fd00:::1`: `fd00:::1` is not an IP address / bad address"));
    for fine in ["10.0.0.0/24", "10.0.0.1", "fd00::1", "ns1", "r1.lab", "cafe", "a-b"] {
        assert_eq!(p(fine), None, "{fine}");
    }
    let text = format!(
        "name: f\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    firewall:\n      rules:\n        - {{ action: drop, to: 10.0.0.0/33 }}\n        - {{ action: drop, from: ns9 }}\n  b: {{}}\n{PAIR}"
    );
    assert_eq!(
        errors(&text),
        "t.yaml:8:31: error: bad prefix `10.0.0.0/33`: prefix length 33 is over 32 [10.0.0.0/33]\n\
         t.yaml:9:33: error: `ns9` is neither a node, a prefix nor an address [ns9]\n"
    );
}

/// `endpoints: [a: eth1]` is a mapping in YAML: said so, and the endpoint meant is used.
#[test]
fn an_endpoint_with_a_space_after_the_colon_is_said_to_be_a_mapping() {
    let text = "name: s\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a: eth1, b:eth1]\n";
    assert_eq!(errors(text), "t.yaml:6:17: error: endpoint `a: eth1` is a mapping, not `node:ifname` [a: eth1]\n");
    assert_eq!(helps(text), ["write `a:eth1` without a space after the colon (YAML reads `a: eth1` as a mapping)"]);
    // Block style too; a mapping of several entries is left to the type error.
    assert_eq!(
        errors("name: s\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints:\n      - a: eth1\n      - b:eth1\n"),
        "t.yaml:7:9: error: endpoint `a: eth1` is a mapping, not `node:ifname` [a: eth1]\n"
    );
    assert!(errors("name: s\nnodes:\n  a: {}\nlinks:\n  - endpoints: [{a: x, b: y}, a:eth0]\n").contains("must be a string, not a mapping"));
}

/// The command line's report: every finding rendered up to a cap, then a count.
#[test]
fn the_report_ends_with_a_count_and_caps_what_it_renders() {
    use crate::model::diag::RENDERED_MAX;
    let one = yaml("name: r\nnodes:\n  a:\n    interfaces:\n      eth0: {}\n").unwrap_err();
    assert_eq!(one.summary(1), None, "one finding needs no count");
    assert!(!one.report(false).contains("1 error"));
    let d = Diagnostics::from(vec![Diag::error("e1"), Diag::warning("w1"), Diag::error("e2"), Diag::error("e3")]);
    assert_eq!(d.summary(4).as_deref(), Some("3 errors, 1 warning"));
    assert!(d.report(false).ends_with("3 errors, 1 warning\n"), "{}", d.report(false));
    assert_eq!(Diagnostics::from(vec![Diag::warning("a"), Diag::warning("b")]).summary(2).as_deref(), Some("2 warnings"));
    // Many errors: the first ones rendered, the count says how many are shown.
    let mut text = String::from("name: big\nnodes:\n  a:\n    interfaces:\n");
    for i in 0..120 {
        text.push_str(&format!("      e{i}: {{ kind: dummy, mtu: 1 }}\n"));
    }
    let d = yaml(&text).unwrap_err();
    assert_eq!(d.len(), 120);
    let r = d.report(false);
    assert_eq!(r.matches("×").count(), RENDERED_MAX, "{r}");
    assert!(r.contains("mtu 1 of `a:e0` is out of range") && !r.contains("mtu 1 of `a:e119`"));
    assert!(r.ends_with(&format!("120 errors (showing the first {RENDERED_MAX})\n")), "{}", &r[r.len() - 200..]);
    // With warnings among them, the errors are rendered first.
    let mut items: Vec<Diag> = (0..60).map(|i| Diag::warning(format!("w{i}"))).collect();
    items.extend((0..55).map(|i| Diag::error(format!("e{i}"))));
    let r = Diagnostics::from(items).report(false);
    assert!(!r.contains("w0") && r.contains("e49") && !r.contains("e50"), "{r}");
    assert!(r.ends_with("55 errors, 60 warnings (showing the first 50 errors)\n"), "{r}");
}

/// it by design.
#[test]
fn the_same_mac_on_one_segment_is_a_warning() {
    let text = format!(
        "name: m\nnodes:\n  a:\n    interfaces:\n      eth0: {{ mac: '02:00:00:00:00:01' }}\n      v10: {{ kind: vlan, link: eth0, id: 10, mac: '02:00:00:00:00:01' }}\n  b:\n    interfaces:\n      eth0: {{ mac: '02:00:00:00:00:01' }}\n{PAIR}"
    );
    let l = yaml(&text).unwrap();
    assert_eq!(
        l.warnings.compact(),
        "t.yaml:9:20: warning: MAC 02:00:00:00:00:01 of `b:eth0` is also the MAC of `a:eth0`, on the same layer-2 segment: neighbours and bridges cannot tell them apart, so frames for one reach the other ['02:00:00:00:00:01']\n"
    );
    assert_eq!(l.warnings.iter().next().unwrap().labels.len(), 2, "both places are shown");
    // Another segment, or a bridge and its port: fine.
    let fine = format!(
        "name: m\nnodes:\n  a:\n    interfaces:\n      eth0: {{ mac: '02:00:00:00:00:01' }}\n      br0: {{ kind: bridge, mac: '02:00:00:00:00:02' }}\n      eth1: {{ master: br0, mac: '02:00:00:00:00:02' }}\n  b:\n    interfaces:\n      eth1: {{ mac: '02:00:00:00:00:01' }}\n{PAIR}  - endpoints: [a:eth1, b:eth1]\n"
    );
    assert!(yaml(&fine).unwrap().warnings.is_empty(), "{}", yaml(&fine).unwrap().warnings);
}

/// Both ends of a veth pair declared with different MTUs: a warning showing both.
#[test]
fn veth_ends_with_different_mtus_are_a_warning() {
    let text = "name: m\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: 1400 }\n  b:\n    interfaces:\n      eth0: { mtu: 9000 }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    let l = yaml(text).unwrap();
    assert_eq!(
        l.warnings.compact(),
        "t.yaml:5:20: warning: the ends of veth pair `a:eth0` — `b:eth0` have different MTUs (1400 and 9000): frames over 1400 bytes from the larger end are dropped without an error [1400]\n"
    );
    let w = l.warnings.iter().next().unwrap();
    assert_eq!(w.labels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["mtu of `a:eth0`", "mtu of `b:eth0`"]);
    assert_eq!(w.help.as_deref(), Some("give both ends the same MTU (`mtu: 1400` on the link, or on both interfaces)"));
    // An end overriding its link's MTU: the link's `mtu` is shown for the other end.
    let text = "name: m\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: 1300 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n    mtu: 1400\n";
    let l = yaml(text).unwrap();
    assert!(l.warnings.compact().starts_with("t.yaml:5:20: warning: the ends of veth pair `a:eth0` — `b:eth0` have different MTUs (1300 and 1400)"));
    assert_eq!(l.warnings.location(&Diag { labels: vec![l.warnings.iter().next().unwrap().labels[1].clone()], ..Diag::error("") }), "t.yaml:9:10");
    // The same MTU, or one end without one: nothing.
    assert!(yaml(&text.replace("1300", "1400")).unwrap().warnings.is_empty());
    assert!(yaml("name: m\nnodes:\n  a:\n    interfaces:\n      eth0: { mtu: 1400 }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n")
        .unwrap()
        .warnings
        .is_empty());
}

/// bridge, not its port.
#[test]
fn masquerade_out_of_a_device_without_ipv4_is_a_warning() {
    let text = "name: n\nnodes:\n  r:\n    interfaces:\n      lan0: { addresses: [192.168.1.1/24] }\n      wan0: { addresses: ['2001:db8::1/64'] }\n      br0: { kind: bridge, addresses: [203.0.113.1/24] }\n      up0: { master: br0 }\n    nat:\n      masquerade:\n        - { source: 192.168.1.0/24, out: wan0 }\n        - { source: 192.168.1.0/24, out: up0 }\n        - { source: 192.168.1.0/24, out: br0 }\n  x: {}\n  y: {}\n  z: {}\nlinks:\n  - endpoints: [x:eth0, r:lan0]\n  - endpoints: [y:eth0, r:wan0]\n  - endpoints: [z:eth0, r:up0]\n";
    let l = yaml(text).unwrap();
    assert_eq!(
        l.warnings.compact(),
        "t.yaml:11:42: warning: masquerade out of `r:wan0`, which has no IPv4 address: masquerade takes the new source from it, so the packets are dropped [wan0]\n\
         t.yaml:12:42: warning: masquerade out of `r:up0`, a port of `br0`: routed packets leave through `br0`, so the rule never matches [up0]\n"
    );
    assert_eq!(l.warnings.iter().nth(1).unwrap().help.as_deref(), Some("write `out: br0`"));
}

/// A key written twice hides nothing: it is an error among the others (the first is kept), in
/// every format, and the rendered report shows both places.
#[test]
fn a_key_written_twice_is_reported_with_every_other_error() {
    let y = "name: dup\nnodes:\n  a:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/24] }\n  a:\n    interfaces:\n      eth0: { addresses: [10.0.0.2/24] }\n  b:\n    interfaces:\n      eth0: { addresses: [10.0.0.300/24] }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n";
    let j = "{\"name\": \"dup\", \"nodes\": {\n \"a\": {\"interfaces\": {\"eth0\": {\"addresses\": [\"10.0.0.1/24\"]}}},\n \"a\": {\"interfaces\": {\"eth0\": {\"addresses\": [\"10.0.0.2/24\"]}}},\n \"b\": {\"interfaces\": {\"eth0\": {\"addresses\": [\"10.0.0.300/24\"]}}}},\n \"links\": [{\"endpoints\": [\"a:eth0\", \"b:eth0\"]}]}\n";
    let t = "name = \"dup\"\nnodes.a.interfaces.eth0.addresses = [\"10.0.0.1/24\"]\nnodes.a.interfaces.eth0.addresses = [\"10.0.0.2/24\"]\nnodes.b.interfaces.eth0.addresses = [\"10.0.0.300/24\"]\n[[links]]\nendpoints = [\"a:eth0\", \"b:eth0\"]\n";
    let bad = "error: bad address `10.0.0.300/24`: `10.0.0.300` is not an IP address";
    assert_eq!(
        load_str("f.yaml", y, Format::Yaml).unwrap_err().compact(),
        format!("f.yaml:6:3: error: duplicate key `a` (first on line 3) [a]\nf.yaml:11:27: {bad} [10.0.0.300/24]\n")
    );
    assert_eq!(
        load_str("f.json", j, Format::Json).unwrap_err().compact(),
        format!("f.json:3:2: error: duplicate key `a` (first on line 2) [\"a\"]\nf.json:4:46: {bad} [\"10.0.0.300/24\"]\n")
    );
    assert_eq!(
        load_str("f.toml", t, Format::Toml).unwrap_err().compact(),
        format!("f.toml:3:25: error: duplicate key `addresses` (first on line 2) [addresses]\nf.toml:4:38: {bad} [\"10.0.0.300/24\"]\n")
    );
    // The first `a` is the one validated: its address is not reported as clashing with the
    // second's, which is ignored.
    let d = load_str("f.yaml", &y.replace("10.0.0.2/24", "10.0.0.300/24"), Format::Yaml).unwrap_err();
    assert_eq!(d.errors().count(), 2, "{d}");
    let r = d.render(false);
    assert!(r.contains("written again, ignored") && r.contains("first `a`, kept"), "{r}");
    assert!(r.contains("the first `a` is kept and this one is ignored"), "{r}");
    // Warnings come with them, as with any other error.
    let w = y.replace("10.0.0.300/24] }", "10.0.0.3/24], mtu: 1400 }").replace("10.0.0.1/24] }", "10.0.0.1/24], mtu: 9000 }");
    let d = load_str("f.yaml", &w, Format::Yaml).unwrap_err();
    let c = d.compact();
    assert!(c.starts_with("f.yaml:5:46: warning: the ends of veth pair `a:eth0` — `b:eth0` have different MTUs (9000 and 1400)"), "{c}");
    assert!(c.ends_with("\nf.yaml:6:3: error: duplicate key `a` (first on line 3) [a]\n"), "{c}");
    assert_eq!(d.len(), 2, "{c}");
}

/// Names of vnet's own devices (`model::anchor`) are refused in a file, at the name.
#[test]
fn interface_names_of_vnets_own_devices_are_refused() {
    let e = errors("name: r\nnodes:\n  a:\n    interfaces:\n      'vnet~br0': { kind: bridge }\n");
    assert_eq!(
        e,
        "t.yaml:5:7: error: interface names starting with `vnet~` are vnet's own (a busy bridge's teardown anchor); choose another name ['vnet~br0']\n"
    );
    let e = errors("name: r\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: ['a:vnet~x', b:eth0]\n");
    assert!(e.starts_with("t.yaml:6:") && e.contains("are vnet's own"), "{e}");
}
