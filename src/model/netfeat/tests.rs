//! Validation of the feature sections: every bad input gets its message, located in the file.

use crate::model::{load_str, Format};

fn errors(yaml: &str) -> String {
    match load_str("t.yaml", yaml, Format::Yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(d) => d.compact(),
    }
}

fn ok(yaml: &str) -> crate::model::Loaded {
    load_str("t.yaml", yaml, Format::Yaml).unwrap_or_else(|d| panic!("{}", d.compact()))
}

const BASE: &str = "name: t
nodes:
  r:
    interfaces:
      lan0: { addresses: [192.168.1.1/24] }
      wan0: { addresses: [203.0.113.1/24] }
  ns1:
    interfaces:
      eth0: { addresses: [192.168.1.11/24] }
  inet:
    interfaces:
      eth0: { addresses: [203.0.113.8/24] }
links:
  - endpoints: [ns1:eth0, r:lan0]
  - endpoints: [inet:eth0, r:wan0]
";

/// BASE with extra lines under node `r`.
fn with_r(extra: &str) -> String {
    BASE.replacen("      wan0: { addresses: [203.0.113.1/24] }\n", &format!("      wan0: {{ addresses: [203.0.113.1/24] }}\n{extra}"), 1)
}

#[test]
fn nat_is_resolved_and_turns_on_forwarding() {
    let l = ok(&with_r("    nat:\n      masquerade: [{ source: 192.168.1.0/24, out: wan0 }]\n      port_forwards: [{ port: 8080, to: \"ns1:80\" }]\n"));
    let r = &l.lab.nodes["r"];
    let nft = r.features.nft.as_ref().unwrap();
    assert_eq!(nft.snat[0].out, "wan0");
    assert_eq!(nft.dnat[0].to_addr.to_string(), "192.168.1.11");
    assert_eq!(nft.dnat[0].to_port, 80);
    assert_eq!(r.sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
    assert_eq!(nft.fingerprint(), nft.clone().fingerprint(), "stable");
}

#[test]
fn nat_errors_are_located() {
    let e = errors(&with_r("    nat:\n      masquerade: [{ source: 192.168.1.0/24, out: wan1 }]\n"));
    assert!(e.contains("t.yaml:8:") && e.contains("unknown device `wan1` in node `r`") && e.contains("[wan1]"), "{e}");
    let e = errors(&with_r("    nat:\n      masquerade: [{ source: ns9, out: wan0 }]\n"));
    assert!(e.contains("`ns9` is neither a node, a prefix nor an address"), "{e}");
    let e = errors(&with_r("    nat:\n      masquerade: [{ source: 192.168.1.1/24, out: wan0 }]\n"));
    assert!(e.contains("host bits set; did you mean `192.168.1.0/24`?"), "{e}");
    let e = errors(&with_r("    nat:\n      snat: [{ source: 192.168.1.0/24, out: wan0, to: banana }]\n"));
    assert!(e.contains("SNAT target `banana` is not an IPv4 address"), "{e}");
    let e = errors(&with_r("    nat:\n      port_forwards: [{ port: 80, to: \"ns1\" }]\n"));
    assert!(e.contains("`ns1` is not `node:port` or `address:port`"), "{e}");
    let e = errors(&with_r("    nat:\n      port_forwards: [{ port: 80, to: \"ns1:80\" }, { port: 80, to: \"ns1:81\" }]\n"));
    assert!(e.contains("tcp port 80 is forwarded twice"), "{e}");
    let e = errors(&with_r("    nat:\n      port_forwards: [{ port: 80, to: \"ns1:80\", proto: icmp }]\n"));
    assert!(e.contains("ICMP has no ports"), "{e}");
    let e = errors(&with_r("    nat:\n      masquerade: [{ source: 192.168.1.0/24, out: wan0, typo: 1 }]\n"));
    assert!(e.contains("unknown field `typo`") && e.contains("t.yaml:8:"), "{e}");
}

#[test]
fn forwarding_off_with_nat_is_a_warning() {
    let l = ok(&with_r("    sysctls: { net.ipv4.ip_forward: 0 }\n    nat:\n      masquerade: [{ source: 192.168.1.0/24, out: wan0 }]\n"));
    let w = l.warnings.compact();
    assert!(w.contains("does NAT but sets net.ipv4.ip_forward = 0"), "{w}");
}

#[test]
fn firewall_errors_are_located() {
    let e = errors(&with_r("    firewall:\n      rules: [{ action: drop, from: ns1, port: 22 }]\n"));
    assert!(e.contains("a rule with `port` needs `proto: tcp` or `proto: udp`"), "{e}");
    let e = errors(&with_r("    firewall:\n      rules: [{ action: reject, from: ns1 }]\n"));
    assert!(e.contains("`action` must be one of `accept`, `drop`, not `reject`"), "{e}");
    let e = errors(&with_r("    firewall:\n      rules: [{ action: drop, from: 10.0.0.0/8, to: \"fd00::/64\" }]\n"));
    assert!(e.contains("share no IP family"), "{e}");
    let e = errors(&with_r("    firewall:\n      rules: [{ action: drop, from: ns2 }]\n"));
    assert!(e.contains("did you mean `ns1`?") || e.contains("neither a node"), "{e}");
    let l = ok(&with_r("    firewall:\n      policy: drop\n      rules: [{ action: accept, from: ns1, to: inet, proto: tcp, port: 443 }]\n"));
    let nft = l.lab.nodes["r"].features.nft.as_ref().unwrap();
    assert_eq!(nft.rules[0].from[0].to_string(), "192.168.1.11/32");
    assert!(!nft.needs_forwarding());
}

#[test]
fn tc_errors_are_located() {
    let e = errors(&with_r("    tc:\n      wan0: { delay: 20 }\n"));
    assert!(e.contains("t.yaml:8:22") && e.contains("traffic control of `r:wan0`: `20` has no unit"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: { jitter: 5ms }\n"));
    assert!(e.contains("`jitter` varies the delay: it needs `delay`"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: { delay: 5ms, jitter: 10ms }\n"));
    assert!(e.contains("larger than the delay"), "{e}");
    let e = errors(&with_r("    tc:\n      wan9: { rate: 1mbit }\n"));
    assert!(e.contains("unknown device `wan9` in node `r`") && e.contains("[wan9]"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: {}\n"));
    assert!(e.contains("empty traffic control"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: { loss: 150% }\n"));
    assert!(e.contains("between 0% and 100%"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: { delay: 10ms, burst: 10kb, rate: 1mbit }\n"));
    assert!(e.contains("`burst` is the bucket of a plain rate limit"), "{e}");
    let e = errors(&with_r("    tc:\n      wan0: { rate: 10 }\n"));
    assert!(e.contains("has no unit"), "{e}");
    let l = ok(&with_r("    tc:\n      wan0: { delay: 20ms, jitter: 5ms, loss: 1%, rate: 10mbit }\n"));
    let i = &l.lab.nodes["r"].features.tc["wan0"];
    assert_eq!((i.delay_ns, i.jitter_ns, i.rate, i.qdisc_kind()), (Some(20_000_000), Some(5_000_000), Some(1_250_000), "netem"));
    let l = ok(&with_r("    tc:\n      wan0: { rate: 10mbit }\n"));
    assert_eq!(l.lab.nodes["r"].features.tc["wan0"].qdisc_kind(), "tbf");
}

#[test]
fn bpf_errors_are_located() {
    let e = errors(&with_r("    bpf:\n      - { dev: wan0, hook: tc-ingress, object: x.o, program: p, mode: native }\n"));
    assert!(e.contains("hook `tc-ingress` has no mode"), "{e}");
    let e = errors(&with_r("    bpf:\n      - { dev: wan0, hook: tc-sideways, object: x.o, program: p }\n"));
    assert!(e.contains("`hook` must be one of `tc-ingress`, `tc-egress`, `xdp`, not `tc-sideways`"), "{e}");
    let e = errors(&with_r("    bpf:\n      - { dev: wan0, hook: xdp, object: x.o, program: p }\n      - { dev: wan0, hook: xdp, object: y.o, program: q }\n"));
    assert!(e.contains("has two programs on hook `xdp`"), "{e}");
    let e = errors(&with_r("    bpf:\n      - { dev: eth7, hook: xdp, object: x.o, program: p }\n"));
    assert!(e.contains("unknown device `eth7`"), "{e}");
    let l = ok(&with_r("    bpf:\n      - { dev: wan0, hook: xdp, object: progs/x.o, program: p }\n"));
    let b = &l.lab.nodes["r"].features.bpf[0];
    assert!(b.object.is_absolute() && b.object.ends_with("progs/x.o"), "{:?}", b.object);
    assert_eq!(b.mode, Some(crate::model::netfeat::spec::XdpMode::Generic));
}

const IPSEC: &str = "ipsec:
  - name: s
    ends:
      - { node: r, address: 203.0.113.1, subnet: 192.168.1.0/24 }
      - { node: inet, address: 203.0.113.8 }
";

#[test]
fn ipsec_is_checked() {
    let l = ok(&format!("{BASE}{IPSEC}"));
    let t = &l.lab.ipsec[0];
    assert_eq!(t.spi, [0x1000, 0x1001]);
    assert_eq!(t.reqid, 1);
    assert!(
        matches!(&t.crypto, crate::model::netfeat::Crypto::Aead { algo, key: crate::model::netfeat::KeySource::Generated { bytes: 36, .. }, icv_bits: 128 } if algo == "rfc4106(gcm(aes))")
    );
    let e = errors(&format!("{BASE}{}", IPSEC.replace("node: inet", "node: nowhere")));
    assert!(e.contains("unknown node `nowhere` in IPsec connection `s`"), "{e}");
    let e = errors(&format!("{BASE}{}", IPSEC.replace("203.0.113.8 }", "203.0.113.9 }")));
    assert!(e.contains("203.0.113.9 is not an address of node `inet`"), "{e}");
    let e = errors(&format!("{BASE}{}    mode: transport\n", IPSEC));
    assert!(e.contains("transport mode protects the ends' own traffic"), "{e}");
    let e = errors(&format!("{BASE}{}    key: \"0x0102\"\n", IPSEC));
    assert!(e.contains("a rfc4106(gcm(aes)) key has 36, 28, 20 bytes; this one has 2"), "{e}");
    let e = errors(&format!("{BASE}{}    key: 0x0102\n", IPSEC));
    assert!(e.contains("a key is a quoted hex string"), "{e}");
    let e = errors(&format!("{BASE}{}    key: nothex\n", IPSEC));
    assert!(e.contains("even number of hex digits"), "{e}");
    let e = errors(&format!("{BASE}{}    spi: [10, 0x2000]\n", IPSEC));
    assert!(e.contains("SPI 10 is reserved"), "{e}");
    let e = errors(&format!("{BASE}{}    spi: [\"0x2000\", \"0x2000\"]\n", IPSEC));
    assert!(e.contains("the two directions need different SPIs"), "{e}");
    let e = errors(&format!("{BASE}{}    enc: cbc(aes)\n", IPSEC));
    assert!(e.contains("needs both `enc`"), "{e}");
    let e = errors(&format!("{BASE}{}    enc: cbc(aes)\n    auth: hmac(sha256)\n    aead: rfc4106(gcm(aes))\n", IPSEC));
    assert!(e.contains("give either `aead`"), "{e}");
    let e = errors(&format!("{BASE}{}    enc: cbc(aes)\n    auth: hmac(whirlpool)\n", IPSEC));
    assert!(e.contains("cannot generate a key for `hmac(whirlpool)`"), "{e}");
    let e = errors(&format!("{BASE}{}    icv: 100\n", IPSEC));
    assert!(e.contains("ICV length 100"), "{e}");
    let e = errors(&format!("{BASE}{IPSEC}{}", IPSEC.replace("ipsec:\n", "")));
    assert!(e.contains("two IPsec connections are named `s`"), "{e}");
    let e = errors(&format!("{BASE}ipsec:\n  - ends: [{{ node: r, address: 203.0.113.1 }}]\n"));
    assert!(e.contains("exactly two ends, got 1"), "{e}");
    let e = errors(&format!("{BASE}ipsec:\n  - ends: [{{ node: r, address: 203.0.113.1 }}, {{ node: r, address: 192.168.1.1 }}]\n"));
    assert!(e.contains("both ends of IPsec connection `ipsec0` are node `r`"), "{e}");
    let e = errors(&format!("{BASE}ipsec: 5\n"));
    assert!(e.contains("`ipsec` is a list"), "{e}");
    // A root-namespace host cannot hold the lab's xfrm objects.
    let e = errors(&format!(
        "{}{}",
        BASE.replace("  r:\n", "  host:\n").replace("r:lan0", "host:lan0").replace("r:wan0", "host:wan0"),
        IPSEC.replace("node: r,", "node: host,")
    ));
    assert!(e.contains("IPsec ends must be nodes with their own namespace"), "{e}");
}

#[test]
fn one_bad_section_does_not_hide_the_others() {
    let e = errors(&with_r("    tc:\n      wan0: { delay: 20 }\n    bpf: [{ dev: wan0 }]\n    nat: 7\n"));
    assert!(e.contains("has no unit"), "{e}");
    assert!(e.contains("`hook` is required in `nodes.r.bpf.0`"), "{e}");
    assert!(e.contains("`nat` must be a mapping, not 7"), "{e}");
    assert_eq!(e.lines().count(), 3, "{e}");
}
