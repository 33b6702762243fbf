//! `vnet check` on real labs (isolated host): expectations that hold, expectations that fail
//! (each failure names the pair and what was seen), the matrix without expectations, and the
//! benchmark restoring the machine's neighbour-table limits. Results are cross-checked with
//! iproute2 and iputils where they can be.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;
use vnet::check::CheckOptions;
use vnet::Lab;

fn fast() -> CheckOptions {
    CheckOptions { timeout: Duration::from_millis(800), ..Default::default() }
}

fn vnet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(vnet_bin()).args(args).output().expect("run vnet");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn routed_example_expectations_all_hold() {
    require_root();
    let lab = Lab::from_file(repo("examples/routed.yaml")).unwrap();
    let r = lab.check_with(&fast()).unwrap();
    assert!(r.ok, "every expectation holds: {:#?}", r.failures());
    assert_eq!(r.mode, "expectations");
    assert_eq!(r.expectations.len(), 14);
    let seen = |i: usize, t: usize| r.expectations[i].targets[t].seen.clone();
    // Located in the file.
    assert!(r.expectations[0].location.as_deref().unwrap().ends_with("routed.yaml:34:5"), "{:?}", r.expectations[0].location);
    // reach a -> c: both families answered by c itself.
    assert_eq!(seen(0, 0), "reply from 10.2.0.2");
    assert_eq!(seen(0, 1), "reply from fd02::2");
    // no-reach: d cannot answer (timeout); the router has no route (it says so).
    // The first hop answered ARP: the loss is further on (d cannot answer), and the check says so.
    assert!(seen(2, 0).starts_with("timeout (10.1.0.1 answers ARP on eth0 ("), "{}", seen(2, 0));
    assert!(seen(2, 0).ends_with("): the packet or its answer is lost further on)"), "{}", seen(2, 0));
    assert_eq!(seen(3, 0), "network unreachable from 10.1.0.1");
    // Ports: listeners started by the check, refusals from the kernel.
    assert_eq!(seen(4, 0), "open (listener started by the check)");
    assert_eq!(r.expectations[4].targets.len(), 2, "a node target covers its IPv4 and IPv6 addresses");
    assert_eq!(seen(6, 0), "refused");
    assert_eq!(seen(7, 0), "open (listener started by the check)");
    assert_eq!(seen(8, 0), "refused");
    // Path MTU: the router's 1400-byte link.
    assert_eq!(seen(10, 0), "1500-byte DF probe: fragmentation needed (mtu 1400) from 10.1.0.1");
    assert_eq!(seen(11, 0), "1500-byte DF probe: fragmentation needed (mtu 1400) from fd01::1");
    assert_eq!(seen(12, 0), "unicast route via 10.1.0.1 dev eth0 src 10.1.0.2");

    // Independently: iputils agrees on the path MTU, iproute2 on the route.
    let a = lab.node("a");
    let ok = |args: &[&str]| a.command("ping").args(args).output().unwrap().status.success();
    assert!(ok(&["-c1", "-W1", "-M", "do", "-s", "1372", "10.2.0.2"]), "1400-byte DF ping passes");
    assert!(!ok(&["-c1", "-W1", "-M", "do", "-s", "1472", "10.2.0.2"]), "1500-byte DF ping fails");
    let route = ip_json(a.netns(), &["route", "get", "10.2.0.2"]);
    assert_eq!(route[0]["gateway"], "10.1.0.1");
    assert_eq!(route[0]["dev"], "eth0");
    // The listeners are gone after the check.
    let ss = lab.node("c").command("ss").args(["-Htlnu"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ss.stdout).contains("8080"), "listener closed: {}", String::from_utf8_lossy(&ss.stdout));
}

const BROKEN_EXPECT: &str = "
expect:
  - reach: { from: a, to: d }
  - reach: { from: a, to: 10.9.9.9 }
  - no-reach: { from: a, to: c, family: ipv4 }
  - tcp-open: { from: a, to: 10.2.0.2, port: 23, listen: false }
  - udp-open: { from: a, to: 10.2.0.2, port: 24, listen: false }
  - tcp-closed: { from: a, to: 10.2.0.2, port: 8080 }
  - pmtu: { from: a, to: 10.2.0.2, size: 1500 }
  - route: { from: a, to: 10.2.0.2, via: 10.1.0.9 }
";

#[test]
fn failing_expectations_name_the_pair_and_what_was_seen() {
    require_root();
    let text = std::fs::read_to_string(repo("examples/routed.yaml")).unwrap();
    let text = text.split("\nexpect:").next().unwrap().to_string() + BROKEN_EXPECT;
    let path = temp_topology("routed-broken", "yaml", &text.replace("name: routed", "name: broken"));
    let lab = Lab::from_file(&path).unwrap();
    let (code, out, err) = vnet(&["check", lab.name(), "--timeout-ms", "800"]);
    assert_eq!(code, 1, "failed expectations exit 1: {out}{err}");
    let failures: Vec<&str> = out.lines().skip_while(|l| !l.ends_with("failed:")).skip(1).take_while(|l| l.starts_with("  ")).collect();
    assert_eq!(failures.len(), 8, "{out}");
    let line =
        |prefix: &str| failures.iter().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_else(|| panic!("no failure `{prefix}` in {out}")).to_string();
    assert!(line("reach a -> d: a -> 10.3.0.2: timeout (10.1.0.1 answers ARP on eth0").contains("routed-broken.yaml:"), "{out}");
    assert!(line("reach a -> 10.9.9.9: a -> 10.9.9.9:").contains("network unreachable from 10.1.0.1"), "{out}");
    assert!(line("no-reach a -> c: a -> 10.2.0.2:").contains("reply from 10.2.0.2"), "{out}");
    assert!(line("tcp a -> 10.2.0.2 port 23 open:").contains(": refused"), "{out}");
    assert!(line("udp a -> 10.2.0.2 port 24 open:").contains(": refused"), "{out}");
    assert!(line("tcp a -> 10.2.0.2 port 8080 closed:").contains("open (listener started by the check)"), "{out}");
    assert!(line("pmtu a -> 10.2.0.2 size 1500 passes:").contains("fragmentation needed (mtu 1400)"), "{out}");
    assert!(line("route a -> 10.2.0.2 via 10.1.0.9:").contains("unicast route via 10.1.0.1 dev eth0"), "{out}");
    assert!(out.ends_with("check FAILED\n"));

    let (code, out, _) = vnet(&["check", lab.name(), "--timeout-ms", "800", "--json"]);
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["mode"], "expectations");
    let exps = j["expectations"].as_array().unwrap();
    assert!(exps.iter().all(|e| e["ok"] == false), "every broken expectation fails");
    assert!(exps[0]["targets"][0]["seen"].as_str().unwrap().starts_with("timeout"));
    assert_eq!(exps[0]["from"], "a");
    assert_eq!(exps[0]["targets"][0]["addr"], "10.3.0.2");
    assert_eq!(exps[0]["targets"][0]["node"], "d");
}

#[test]
fn matrix_without_expectations_shows_every_pair() {
    require_root();
    let lab = Lab::builder("matrix")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.20.0.1/24")
        .address("b:eth0", "10.20.0.2/24")
        .address("a:eth0", "fd20::1/64")
        .address("b:eth0", "fd20::2/64")
        .link("c:eth0", "d:eth0")
        .address("c:eth0", "10.21.0.1/24")
        .address("d:eth0", "10.21.0.2/24")
        .up()
        .unwrap();
    let (code, out, err) = vnet(&["check", lab.name(), "--timeout-ms", "500"]);
    assert_eq!(code, 1, "unreachable pairs fail the matrix: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("reachability matrix (14 probes, 6 answered"), "{out}");
    assert_eq!(lines[1], "  a b c d");
    assert_eq!(lines[2], "a \\ + x x");
    assert_eq!(lines[3], "b + \\ x x");
    assert_eq!(lines[4], "c x x \\ +", "{out}");
    assert!(out.contains("a -> c (10.21.0.1): not sent: no route (network unreachable)"), "{out}");

    let (_, out, _) = vnet(&["check", lab.name(), "--timeout-ms", "500", "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["matrix"]["probes"], 14, "c and d have no IPv6: a's and b's IPv6 addresses are not probed from them");
    assert_eq!(j["matrix"]["reached"], 6);
    assert!(j["matrix"]["matrix_s"].as_f64().unwrap() > 0.0);
    let pairs = j["matrix"]["pairs"].as_array().unwrap();
    assert!(pairs.iter().any(|p| p["from"] == "a" && p["addr"] == "fd20::2" && p["ok"] == true));

    // The library gives the same matrix; a fully connected lab passes.
    let r = lab.check_with(&CheckOptions { timeout: Duration::from_millis(500), ..Default::default() }).unwrap();
    assert_eq!(r.matrix.as_ref().unwrap().reached, 6);
    let pair = Lab::builder("pair").link("a:eth0", "b:eth0").address("a:eth0", "10.22.0.1/24").address("b:eth0", "10.22.0.2/24").up().unwrap();
    let r = pair.check().unwrap();
    assert!(r.ok && r.matrix.unwrap().probes == 2);
    let (code, _, _) = vnet(&["check", pair.name()]);
    assert_eq!(code, 0);
}

#[test]
fn check_of_a_missing_lab_is_an_error() {
    require_root();
    let (code, _, err) = vnet(&["check", "no-such-lab-xyz"]);
    assert_eq!(code, 1);
    assert!(err.contains("no lab named `no-such-lab-xyz`"), "{err}");
}

fn thresholds() -> Vec<String> {
    (1..=3).map(|i| std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{i}")).unwrap().trim().to_string()).collect()
}

#[test]
fn bench_check_reports_and_restores_the_neighbour_limits() {
    require_root();
    let (code, out, err) = vnet(&["bench", "check", "--nodes", "8", "--json", "--baseline-sample", "10"]);
    assert_eq!(code, 0, "{out}{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["nodes"], 8);
    assert_eq!(j["probes"], 56);
    assert_eq!(j["reached"], 56);
    assert!(j["matrix_s"].as_f64().unwrap() > 0.0);
    assert_eq!(j["baseline"]["sample"], 10);
    assert_eq!(j["baseline"]["sample_reached"], 10, "the baseline's pings reach too");
    assert!(j["ratio"].as_f64().unwrap() > 1.0, "in-process probes beat one process per ping: {out}");
    let l = &j["neighbour_limits"];
    assert_eq!(l["restored"], true);
    assert!(l["during"]["gc_thresh3"].as_u64().unwrap() > l["before"]["gc_thresh3"].as_u64().unwrap() || l["before"]["gc_thresh3"].as_u64().unwrap() > 2000);
    let now = thresholds();
    assert_eq!(now[2], l["before"]["gc_thresh3"].as_u64().unwrap().to_string(), "gc_thresh3 is back");
    assert_eq!(now[1], l["before"]["gc_thresh2"].as_u64().unwrap().to_string(), "gc_thresh2 is back");
}

#[test]
fn a_timeout_says_whether_the_link_layer_answered() {
    require_root();
    // b holds 10.23.0.2 on a link that a has no cable to: a's ARP requests go unanswered.
    let lab = Lab::builder("arpless")
        .link("a:eth0", "x:eth0")
        .address("a:eth0", "10.23.0.1/24")
        .node("b")
        .address("b:lo", "10.23.0.2/32")
        .expect(vnet::model::expect::ExpectSpec::reach("a", "10.23.0.2"))
        .up()
        .unwrap();
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok);
    assert_eq!(r.failures(), ["reach a -> 10.23.0.2: a -> 10.23.0.2: timeout (no ARP answer from 10.23.0.2 on eth0)"]);
}

#[test]
fn a_matrix_bigger_than_the_neighbour_budget_runs_in_waves() {
    require_root();
    // A star of 6 on one bridge: 30 probes need about 30 entries at once; allow 20.
    let mut b = Lab::builder("waves").bridge("host:br0");
    for i in 1..=6 {
        b = b
            .link(&format!("n{i}:eth0"), &format!("host:p{i}"))
            .master(&format!("host:p{i}"), "br0")
            .address(&format!("n{i}:eth0"), &format!("10.24.0.{i}/24"));
    }
    let lab = b.up().unwrap();
    let r = lab.check_with(&CheckOptions { neighbour_budget: Some(20), ..fast() }).unwrap();
    let m = r.matrix.as_ref().unwrap();
    assert_eq!((m.probes, m.reached), (30, 30), "{:#?}", r.failures());
    assert!(r.ok);
    assert!(r.notes.iter().any(|n| n.contains("probed in 3 waves, clearing the lab's neighbour entries between them")), "{:?}", r.notes);
    // Between waves the entries went: after the last wave only its own remain in n1 (whose wave was first).
    let n1 = ip_json(lab.node("n1").netns(), &["neigh", "show"]);
    assert!(n1.as_array().unwrap().len() <= 2, "n1 keeps only entries of the last wave's probes to it: {n1}");
}

/// Three nodes on the host's bridge (no file).
const STAR3: &str = "name: star3
nodes:
  host:
    interfaces:
      br0: { kind: bridge, stp: false }
      p1: { master: br0 }
      p2: { master: br0 }
      p3: { master: br0 }
  a: { interfaces: { eth0: { addresses: [10.30.0.1/24] } } }
  b: { interfaces: { eth0: { addresses: [10.30.0.2/24] } } }
  c: { interfaces: { eth0: { addresses: [10.30.0.3/24] } } }
links:
  - endpoints: [a:eth0, host:p1]
  - endpoints: [b:eth0, host:p2]
  - endpoints: [c:eth0, host:p3]
";

fn lab_from(yaml: &str) -> Lab {
    Lab::from_topology(vnet::model::load_str("t.yaml", yaml, vnet::model::Format::Yaml).unwrap().lab.topology, Default::default()).unwrap()
}

#[test]
fn a_missing_namespace_fails_its_pairs_and_the_rest_is_probed() {
    require_root();
    let lab = lab_from(STAR3);
    let c = lab.node("c").netns().unwrap().to_string();
    assert!(Command::new("ip").args(["netns", "del", &c]).status().unwrap().success());
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok);
    let m = r.matrix.as_ref().unwrap();
    assert_eq!(m.probes, 6);
    assert_eq!((m.not_probed, m.reached), (4, 2), "4 pairs involve c: not probed, not counted as probes");
    for p in &m.pairs {
        if p.from == "c" || p.to == "c" {
            assert!(!p.ok);
            assert_eq!(p.seen, format!("not probed: the namespace of node c ({c}) is missing: run `vnet up` again"), "{p:?}");
        } else {
            assert!(p.ok, "{p:?}");
        }
    }
    let (code, out, err) = vnet(&["check", lab.name()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("a -> c (10.30.0.3): not probed: the namespace of node c ({c}) is missing")), "{out}");
    assert!(out.contains("reachability matrix (6 pairs: 2 probed, 2 answered, 4 not probed, "), "{out}");
    assert!(out.contains("check FAILED"), "{out}");
}

#[test]
fn a_check_that_probes_nothing_fails() {
    require_root();
    // Nodes, but no addresses: nothing can be probed, so nothing is shown to work.
    let lab = Lab::builder("noaddr").link("a:eth0", "b:eth0").up().unwrap();
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok);
    assert_eq!(r.matrix.as_ref().unwrap().probes, 0);
    let f = r.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("nothing was probed: none of the lab's 2 nodes declares an address, so the check proves nothing"), "{f:?}");
    assert!(r.notes.is_empty(), "the reason is a failure, not a note: {:?}", r.notes);
    let (code, out, _) = vnet(&["check", lab.name()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 failed:\n  nothing was probed: none of the lab's 2 nodes") && out.ends_with("check FAILED\n"), "{out}");
}

#[test]
fn a_single_node_lab_says_there_is_no_pair_to_probe() {
    require_root();
    // examples/tun-route.yaml: one node, which declares tun0 10.1.0.1/32.
    let lab = Lab::from_file(repo("examples/tun-route.yaml")).unwrap();
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok, "a check that proves nothing does not pass");
    let f = r.failures();
    assert_eq!(
        f,
        [
            "nothing was probed: the lab has a single node (host), and the matrix probes from one node to another, so the check proves nothing; declare what to check under `expect:` (a `route` expectation needs a single node)"
        ],
        "the README's `assert!(r.ok, \"{{:?}}\", r.failures())` says why"
    );
    assert!(!f[0].contains("declares an address"), "host declares 10.1.0.1/32: {f:?}");
    let (code, out, _) = vnet(&["check", lab.name()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("lab {}: reachability matrix (0 probes, 0 answered, ", lab.name())), "{out}");
    assert!(out.contains("1 failed:\n  nothing was probed: the lab has a single node (host)"), "{out}");
    assert!(!out.contains("hint: `vnet doctor"), "no pair failed, doctor has nothing to explain: {out}");
    let (_, out, _) = vnet(&["check", lab.name(), "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], false);
    assert!(j["errors"][0].as_str().unwrap().starts_with("nothing was probed: the lab has a single node (host)"), "{j}");
}

/// `ip -s -j link` counter of packets tun0 dropped on the way out.
fn tx_dropped(lab: &Lab) -> u64 {
    let l = ip_json(lab.node("host").netns(), &["-s", "link", "show", "tun0"]);
    l[0]["stats64"]["tx"]["dropped"].as_u64().unwrap_or_else(|| panic!("tx dropped of tun0 in {l}"))
}

#[test]
fn a_probe_into_a_tun_device_says_what_the_device_did() {
    require_root();
    // examples/tun-route.yaml, with expectations: one node, so a `route` expectation is what
    // can pass; packets for 10.1.1.0/24 go into tun0, which has no link layer (no ARP).
    let text = std::fs::read_to_string(repo("examples/tun-route.yaml")).unwrap()
        + "expect:
  - route: { from: host, to: 10.1.1.5, dev: tun0 }
  - reach: { from: host, to: 10.1.1.5 }
  - tcp-open: { from: host, to: 10.1.1.5, port: 80, listen: false }
";
    let lab = Lab::from_file(temp_topology("tun-route-expect", "yaml", &text)).unwrap();
    let dropped = tx_dropped(&lab);
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok);
    assert!(r.expectations[0].ok, "{:?}", r.expectations[0]);
    assert_eq!(r.expectations[0].targets[0].seen, "unicast route dev tun0 src 10.1.0.1");
    // Nothing has tun0 open: no carrier, and the kernel drops what is routed into it.
    let f = r.failures();
    let dropped_line = "timeout (tun0 has no carrier (a tun device no program has open): what is sent through it is dropped)";
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f[0].starts_with(&format!("reach host -> 10.1.1.5: host -> 10.1.1.5: {dropped_line} (")), "{f:?}");
    assert!(f[1].starts_with(&format!("tcp host -> 10.1.1.5 port 80 open: host -> 10.1.1.5: {dropped_line} (")), "{f:?}");
    assert!(!f.join("\n").contains("ARP"), "a tun device has no ARP entry to blame: {f:?}");
    // iproute2 agrees: no carrier, and the probes counted as dropped.
    let l = ip_link(lab.node("host").netns(), "tun0").unwrap();
    assert!(l["flags"].as_array().unwrap().iter().any(|f| f == "NO-CARRIER"), "{l}");
    assert!(tx_dropped(&lab) > dropped, "the probes were dropped at tun0");

    // A program has it open (carrier): the probe reaches the program, which does not answer.
    let mut q = lab.node("host").open_tap("tun0").unwrap();
    let r = lab.check_with(&fast()).unwrap();
    let f = r.failures();
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f[0].starts_with(
            "reach host -> 10.1.1.5: host -> 10.1.1.5: timeout (tun0 is a tun device (no link layer, no ARP): the packet went to the program that has it open, and no answer came back) ("
        ),
        "{f:?}"
    );
    // The echo request did reach the reader.
    let mut buf = [0u8; 2048];
    let mut echo = false;
    while let Ok(n) = q.read_timeout(&mut buf, Duration::from_millis(500)) {
        let p = &buf[..n];
        if n >= 28 && p[0] >> 4 == 4 && p[9] == 1 && p[16..20] == [10, 1, 1, 5] && p[20] == 8 {
            echo = true;
            break;
        }
    }
    assert!(echo, "the check's echo request to 10.1.1.5 was read from tun0");
}

#[test]
fn a_port_rejected_with_an_icmp_error_is_not_called_a_missing_route() {
    require_root();
    let lab = Lab::builder("reject")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.26.0.1/24")
        .address("b:eth0", "10.26.0.2/24")
        .expect(vnet::model::expect::ExpectSpec::tcp("a", "10.26.0.2", 23, true))
        .up()
        .unwrap();
    // b's firewall answers port 23 with ICMP host unreachable: a has a route, and b answers.
    let nft = "add table inet t
add chain inet t input { type filter hook input priority 0; }
add rule inet t input tcp dport 23 reject with icmp type host-unreachable
";
    let mut child = lab.node("b").command("nft").arg("-f").arg("-").stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), nft.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let r = lab.check_with(&fast()).unwrap();
    let f = r.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("tcp a -> 10.26.0.2 port 23 open: a -> 10.26.0.2: unreachable (host unreachable: an ICMP error on the way"), "{f:?}");
    assert!(!f[0].contains("no route"), "a has a route to 10.26.0.2: {f:?}");
}

/// Every "N s ago" a report says (last confirmed, learned), in seconds.
fn ages(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(" s ago") {
        let num: String = text[..i].chars().rev().take_while(|c| c.is_ascii_digit() || *c == '.').collect::<Vec<_>>().into_iter().rev().collect();
        out.push(num.parse().unwrap_or_else(|_| panic!("a number before ` s ago` in {text}")));
    }
    out
}

#[test]
fn a_fresh_labs_failed_probe_claims_no_confirmation_older_than_the_lab() {
    require_root();
    // examples/ovs.yaml drops what a sends (OpenFlow port 1): b's ARP request reaches a, a's
    // answers and probes never arrive. a's entry for b is new and never confirmed, though the
    // kernel's cache info backdates it by 2 × base_reachable_time (60 s).
    let born = std::time::Instant::now();
    let lab = Lab::from_file(repo("examples/ovs.yaml")).unwrap();
    for round in 0..2 {
        let r = lab.check_with(&fast()).unwrap();
        let age = born.elapsed().as_secs_f64();
        assert!(!r.ok);
        let pairs = &r.matrix.as_ref().unwrap().pairs;
        let seen = |from: &str| pairs.iter().find(|p| p.from == from).unwrap().seen.clone();
        let ab = seen("a");
        assert!(!ab.contains("last confirmed"), "round {round}: {ab}");
        for n in ages(&r.failures().join("\n")) {
            assert!(n <= age, "round {round}: {n} s ago, in a lab {age:.1} s old: {:?}", r.failures());
        }
        if round == 0 {
            assert!(ab.starts_with("timeout (ARP from 10.0.0.2 reached eth0 during the check (its link-layer address was learned "), "{ab}");
            assert!(ab.ends_with("but no answer from 10.0.0.2 ever confirmed it: what is sent to 10.0.0.2, or its answers, are lost)"), "{ab}");
        } else {
            // Learned in the first round: cached now, and still never confirmed.
            assert!(ab.contains("never confirmed"), "{ab}");
        }
        assert_eq!(seen("b"), "timeout (no ARP answer from 10.0.0.1 on eth0)");
    }
}

#[test]
fn an_entry_made_during_the_check_reads_as_never_confirmed_in_a_lab_older_than_the_backdate() {
    require_root();
    // examples/ovs.yaml again, with a's base_reachable_time at 0.5 s: the kernel backdates a
    // new entry's `confirmed` by 1 s, and the lab is older than that when the check runs, so
    // only the check's own snapshot (no entry before the probes) proves the entry new.
    let lab = Lab::from_file(repo("examples/ovs.yaml")).unwrap();
    let a = lab.node("a");
    let set = a.command("sysctl").args(["-qw", "net.ipv4.neigh.eth0.base_reachable_time_ms=500"]).output().unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    std::thread::sleep(Duration::from_secs(2));
    assert!(ip_json(a.netns(), &["neigh", "show", "10.0.0.2"]).as_array().unwrap().is_empty(), "no entry before the check");
    let r = lab.check_with(&fast()).unwrap();
    let ab = r.matrix.as_ref().unwrap().pairs.iter().find(|p| p.from == "a").unwrap().seen.clone();
    assert!(ab.starts_with("timeout (ARP from 10.0.0.2 reached eth0 during the check (its link-layer address was learned "), "{ab}");
    assert!(!ab.contains("last confirmed"), "{ab}");
    for n in ages(&ab) {
        assert!(n < 1.5, "learned during the check, not {n} s ago: {ab}");
    }
    // iproute2 shows the kernel's backdate: `used USED/CONFIRMED/UPDATED` (seconds), the
    // entry "confirmed" a second before it existed.
    let out = a.command("ip").args(["-s", "neigh", "show", "10.0.0.2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let used = text.split("used ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or_else(|| panic!("{text}"));
    let v: Vec<u64> = used.trim_end_matches("probes").split('/').map(|x| x.parse().unwrap()).collect();
    assert!(v[1] > v[2], "confirmed ({} s) older than the entry's last change ({} s): {text}", v[1], v[2]);
}

#[test]
fn no_buffer_space_from_a_queue_is_not_called_a_neighbour_table_overflow() {
    require_root();
    let lab = Lab::builder("nobufs")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.25.0.1/24")
        .address("b:eth0", "10.25.0.2/24")
        .expect(vnet::model::expect::ExpectSpec::reach("a", "10.25.0.2"))
        .up()
        .unwrap();
    let a = lab.node("a");
    assert!(a.command("ping").args(["-c1", "-W1", "10.25.0.2"]).output().unwrap().status.success(), "b's MAC is known");
    // A queue that holds nothing: every packet a sends is dropped at once, and sendto says ENOBUFS.
    let tc = a.command("tc").args(["qdisc", "replace", "dev", "eth0", "root", "pfifo", "limit", "0"]).output().unwrap();
    assert!(tc.status.success(), "{}", String::from_utf8_lossy(&tc.stderr));
    let r = lab.check_with(&fast()).unwrap();
    assert!(!r.ok);
    assert_eq!(
        r.failures(),
        [
            "reach a -> 10.25.0.2: a -> 10.25.0.2: not sent: no buffer space (dropped on the way out, e.g. by a full queue of the outgoing device; the neighbour table did not overflow)"
        ]
    );
}

#[test]
fn a_stale_neighbour_entry_is_not_an_answer() {
    require_root();
    let lab = lab_from(STAR3);
    assert!(lab.check_with(&fast()).unwrap().ok, "healthy first: a learns b's MAC");
    // Long enough that an entry confirmed then cannot pass for one confirmed during the next check.
    std::thread::sleep(Duration::from_millis(300));
    // b's cable is cut at the bridge: nothing holds 10.30.0.2 any more, but a's cache remembers it.
    ip(lab.node("host").netns().unwrap(), &["link", "del", "p2"]);
    let r = lab.check_with(&fast()).unwrap();
    let p = r.matrix.as_ref().unwrap().pairs.iter().find(|p| p.from == "a" && p.to == "b").unwrap().clone();
    assert!(!p.ok);
    assert!(p.seen.starts_with("timeout (a cached ARP entry for 10.30.0.2 on eth0 exists (state "), "{}", p.seen);
    assert!(p.seen.ends_with("but nothing confirmed it during the check: 10.30.0.2 may be gone)"), "{}", p.seen);
    assert!(!p.seen.contains("answers ARP"), "{}", p.seen);
}

#[test]
fn tcp_open_on_a_port_forward_listens_at_its_target() {
    require_root();
    let text = std::fs::read_to_string(repo("examples/nat.yaml")).unwrap() + "expect:\n  - tcp-open: { from: internet, to: 203.0.113.1, port: 8080 }\n";
    let path = temp_topology("check-fwd", "yaml", &text);
    let lab = Lab::from_file(&path).unwrap();
    let r = lab.check_with(&fast()).unwrap();
    assert!(r.ok, "{:#?}", r.failures());
    let t = &r.expectations[0].targets[0];
    assert_eq!(t.node.as_deref(), Some("host"));
    assert_eq!(t.seen, "open (forwarded to ns1:80, listener started by the check)");
}
