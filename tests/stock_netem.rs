//! netem in a kernel that has it (stock-kernel lane: this repository's host kernel lacks
//! netem): delay, jitter, loss and rate measured with real traffic, changed with `impair`,
//! cleared back to the default qdisc.

mod common;

use std::process::Command;

use common::*;
use vnet::lifecycle;
use vnet::model::netfeat::Impairment;
use vnet::Lab;

fn require_netem() {
    require(&["veth", "netem"]);
    // vnet's own probe agrees (it is what `up` uses before changing anything).
    let missing = vnet::kernel::netfeat::tc::missing_qdiscs(&["netem"]).unwrap();
    assert!(missing.is_empty(), "this test needs the netem qdisc, which the running kernel lacks; it belongs to the stock-kernel lane");
}

/// (sent, received, median RTT in ms) of `n` pings from a node. The median, not ping's mean:
/// under software emulation one stalled reply can add hundreds of ms to a mean of twenty.
fn pings(lab: &Lab, node: &str, addr: &str, n: u32, interval: &str) -> (u32, u32, f64) {
    let out = lab.node(node).command("ping").args(["-n", "-c", &n.to_string(), "-i", interval, "-W", "2", addr]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let stats = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("ping output: {text}"));
    let nums: Vec<u32> = stats.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).take(2).map(|s| s.parse().unwrap()).collect();
    let mut rtts: Vec<f64> = text.lines().filter_map(|l| l.split("time=").nth(1)).filter_map(|t| t.split_whitespace().next()?.parse().ok()).collect();
    rtts.sort_by(f64::total_cmp);
    let median = match rtts.len() {
        0 => f64::NAN,
        k if k % 2 == 1 => rtts[k / 2],
        k => (rtts[k / 2 - 1] + rtts[k / 2]) / 2.0,
    };
    (nums[0], nums[1], median)
}

fn root_kind(netns: &str, dev: &str) -> String {
    let out = Command::new("ip").args(["netns", "exec", netns, "tc", "-j", "qdisc", "show", "dev", dev, "root"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["kind"].as_str().unwrap_or("").to_string()
}

#[test]
fn wan_example_delays_and_is_stable() {
    require_root();
    require_netem();
    let lab = Lab::from_file(repo("examples/wan.yaml")).unwrap();
    let name = lab.name().to_string();
    let r1 = lab.node("r1").netns().unwrap().to_string();
    let out = Command::new("ip").args(["netns", "exec", &r1, "tc", "-j", "qdisc", "show", "dev", "wan0", "root"]).output().unwrap();
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q[0]["kind"], "netem", "{q}");
    assert_eq!(q[0]["handle"], "7654:", "{q}");
    let (sent, got, avg) = pings(&lab, "site1", "10.2.0.10", 20, "0.2");
    println!("site1 -> site2: {got}/{sent} replies, median RTT {avg:.1} ms");
    assert!(got >= 14, "1% loss each way lets most pings through: {got}/{sent}");
    assert!((78.0..130.0).contains(&avg), "two 40 ms hops each way: RTT {avg:.1} ms");
    assert!(lifecycle::plan(&vnet::model::load_topology(&lab.model().topology).unwrap()).unwrap().is_empty(), "unchanged lab plans nothing");
    // Status shows the netem qdisc as declared; changed by hand, status and doctor say it differs.
    let st = lab.status().unwrap();
    let text = lifecycle::status::render(std::slice::from_ref(&st));
    assert!(st.as_recorded(), "{text}");
    assert!(text.contains("\n      tc netem 7654: delay 40ms jitter 5ms loss 1% rate 10mbit (as declared)\n"), "{text}");
    for args in ["qdisc del dev wan0 root", "qdisc add dev wan0 root handle 7654: netem delay 5ms"] {
        let out = Command::new("tc").args(["-n", &r1]).args(args.split(' ')).output().unwrap();
        assert!(out.status.success(), "tc {args}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let st = lab.status().unwrap();
    let text = lifecycle::status::render(std::slice::from_ref(&st));
    assert!(!st.as_recorded(), "{text}");
    assert!(text.contains("\n      tc DIFFERS: declared netem delay 40ms jitter 5ms loss 1% rate 10mbit; the kernel has netem 7654: delay 5ms\n"), "{text}");
    let f = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    let d = f.iter().find(|x| x.code == "tc-differs" && x.node == "r1").unwrap_or_else(|| panic!("{f:#?}"));
    assert!(d.message.starts_with("wan0 has root qdisc netem 7654: delay 5ms (vnet's qdisc with other parameters)"), "{d:?}");
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn delay_loss_and_clear_are_measured() {
    require_root();
    require_netem();
    let lab = Lab::builder("netem").link("a:eth0", "b:eth0").address("a:eth0", "10.74.0.1/24").address("b:eth0", "10.74.0.2/24").up().unwrap();
    let name = lab.name().to_string();
    let a = lab.node("a").netns().unwrap().to_string();
    let (_, _, base) = pings(&lab, "a", "10.74.0.2", 10, "0.2");
    println!("baseline RTT {base:.2} ms");

    let imp = Impairment::from_words(&["delay".into(), "60ms".into()]).unwrap();
    let r = lifecycle::impair::impair(&name, "a:eth0", Some(&imp)).unwrap();
    assert_eq!(r.plan.len(), 1);
    assert_eq!(root_kind(&a, "eth0"), "netem");
    let (_, got, avg) = pings(&lab, "a", "10.74.0.2", 10, "0.2");
    println!("delay 60ms: RTT {avg:.2} ms ({got}/10)");
    assert_eq!(got, 10);
    assert!(avg >= 60.0 && avg < 60.0 + base + 25.0, "RTT {avg:.1} ms for a 60 ms delay (baseline {base:.1})");

    let imp = Impairment::from_words(&["loss".into(), "40%".into()]).unwrap();
    lifecycle::impair::impair(&name, "a:eth0", Some(&imp)).unwrap();
    let (sent, got, _) = pings(&lab, "a", "10.74.0.2", 100, "0.02");
    let lost = 100.0 * f64::from(sent - got) / f64::from(sent);
    println!("loss 40%: {got}/{sent} replies ({lost:.0}% lost)");
    assert!((20.0..60.0).contains(&lost), "40% loss one way shows as {lost:.0}% in ping statistics");

    let imp = Impairment::from_words(&["delay".into(), "30ms".into(), "jitter".into(), "10ms".into(), "rate".into(), "2mbit".into()]).unwrap();
    lifecycle::impair::impair(&name, "a:eth0", Some(&imp)).unwrap();
    let (_, got, avg) = pings(&lab, "a", "10.74.0.2", 20, "0.1");
    println!("delay 30ms jitter 10ms: RTT {avg:.2} ms ({got}/20)");
    assert!((18.0..55.0).contains(&avg), "RTT {avg:.1} ms for 30±10 ms");

    lifecycle::impair::impair(&name, "a:eth0", None).unwrap();
    assert_eq!(root_kind(&a, "eth0"), "noqueue", "the previous qdisc is back");
    let (_, got, avg) = pings(&lab, "a", "10.74.0.2", 10, "0.2");
    println!("cleared: RTT {avg:.2} ms ({got}/10)");
    assert!(avg < base + 20.0 && got == 10);
    lab.down().unwrap();
    assert_gone(&name);
}
