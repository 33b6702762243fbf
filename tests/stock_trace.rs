//! Stock-kernel lane: `trace` through ipvlan, which this machine's kernel lacks. Two ipvlan slaves
//! of one lower device, moved into two nodes, reach each other inside the kernel (l2 and l3
//! modes); with the `private` flag they do not, and the trace says so. The devices are made by
//! hand: on Linux < 6.3 `up` cannot build devices yet (see tests/stock_doctor.rs).

mod common;

use std::process::Command;

use common::*;
use vnet::trace::{self, Hop, Verdict};
use vnet::Lab;

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn slaves(mode: &[&str]) -> Lab {
    let lab = Lab::builder("ipvl").node("h").node("s1").node("s2").node("sw").up().unwrap();
    let ns = |n: &str| lab.node(n).netns().unwrap().to_string();
    run(&["-n", &ns("h"), "link", "add", "up0", "type", "veth", "peer", "name", "p0", "netns", &ns("sw")]);
    run(&["-n", &ns("h"), "link", "set", "up0", "up"]);
    run(&["-n", &ns("sw"), "link", "set", "p0", "up"]);
    for (i, s) in ["s1", "s2"].iter().enumerate() {
        let name = format!("iv{}", i + 1);
        let mut args = vec!["-n", &ns("h")].into_iter().map(String::from).collect::<Vec<_>>();
        args.extend(["link", "add", "link", "up0", "name", &name, "type", "ipvlan", "mode"].map(String::from));
        args.extend(mode.iter().map(|m| m.to_string()));
        run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        run(&["-n", &ns("h"), "link", "set", &name, "netns", &ns(s)]);
        run(&["-n", &ns(s), "addr", "add", &format!("10.8.0.{}/24", 11 + i), "dev", &name]);
        run(&["-n", &ns(s), "link", "set", &name, "up"]);
    }
    lab
}

#[test]
fn ipvlan_slaves_meet_inside_the_kernel() {
    require_root();
    require(&["ipvlan"]);
    for mode in [&["l2"][..], &["l3"][..]] {
        let lab = slaves(mode);
        let t = trace::trace_running(&lab.running().unwrap(), "s1", "10.8.0.12").unwrap();
        let h: Vec<String> = t.hops.iter().map(Hop::text).collect();
        assert_eq!(h[1], format!("s1:iv1 -> s2:iv2 (ipvlan {}, slave on the same lower device)", mode[0]), "{h:?}");
        assert_eq!(t.verdict, Verdict::Delivered, "{h:?}");
        let c = t.confirm.unwrap();
        assert!(c.reply && c.agrees, "{c:?}");
    }
}

#[test]
fn ipvlan_private_slaves_do_not() {
    require_root();
    require(&["ipvlan"]);
    let lab = slaves(&["l2", "private"]);
    let t = trace::trace_running(&lab.running().unwrap(), "s1", "10.8.0.12").unwrap();
    assert_eq!(t.verdict, Verdict::Dropped);
    assert!(matches!(t.hops.last(), Some(Hop::Drop { cause, .. }) if cause == "ipvlan-private"), "{:?}", t.hops);
    assert!(t.confirm.unwrap().agrees);
}
