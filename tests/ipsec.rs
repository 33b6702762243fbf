//! IPsec on this host's kernel, which has xfrm but no ESP: vnet's xfrm messages go through the
//! real kernel for policies (created, dumped back, removed), and a lab with ESP states is
//! refused before anything is created. ESP traffic is tested in tests/stock_ipsec.rs.

mod common;

use std::process::Command;

use common::*;
use ipnet::IpNet;
use vnet::kernel::netfeat::rawnl::RawNl;
use vnet::kernel::netfeat::xfrm;
use vnet::observed::netfeat::{XfrmPolicy, XfrmTmpl, IPPROTO_ESP};
use vnet::Lab;

#[test]
fn policies_round_trip_through_the_kernel() {
    require_root();
    let name = format!("vnet-xfrm-{}", std::process::id());
    assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
    let fd = vnet::kernel::netns::open(&name).unwrap();
    let n = |s: &str| s.parse::<IpNet>().unwrap();
    let pols = vec![
        XfrmPolicy {
            src: n("10.1.0.0/24"),
            dst: n("10.2.0.0/24"),
            dir: 1,
            tmpl: Some(XfrmTmpl { src: "198.51.100.1".parse().unwrap(), dst: "203.0.113.2".parse().unwrap(), proto: IPPROTO_ESP, mode: 1, reqid: 7 }),
        },
        XfrmPolicy {
            src: n("fd00:2::/64"),
            dst: n("fd00:1::/64"),
            dir: 2,
            tmpl: Some(XfrmTmpl { src: "fd00::2".parse().unwrap(), dst: "fd00::1".parse().unwrap(), proto: IPPROTO_ESP, mode: 1, reqid: 8 }),
        },
    ];
    let p2 = pols.clone();
    let (dumped, after) = vnet::kernel::netns::run_in(Some(&fd), move || {
        let mut nl = RawNl::open(xfrm::NETLINK_XFRM).unwrap();
        for p in &p2 {
            xfrm::add_policy(&mut nl, p).unwrap();
        }
        let dumped = xfrm::dump_policies(&mut nl).unwrap();
        let text = String::from_utf8_lossy(&Command::new("ip").args(["xfrm", "policy"]).output().unwrap().stdout).to_string();
        for p in &p2 {
            xfrm::del_policy(&mut nl, p).unwrap();
        }
        // Deleting what is gone is not an error.
        xfrm::del_policy(&mut nl, &p2[0]).unwrap();
        (dumped, (xfrm::dump_policies(&mut nl).unwrap(), text))
    })
    .unwrap();
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    for p in &pols {
        assert!(dumped.contains(p), "{p:?} dumped back as created: {dumped:?}");
    }
    let (left, text) = after;
    assert!(text.contains("src 10.1.0.0/24 dst 10.2.0.0/24") && text.contains("proto esp reqid 7 mode tunnel"), "ip xfrm policy shows it: {text}");
    assert!(text.contains("dir fwd"), "{text}");
    assert!(left.is_empty(), "removed: {left:?}");
}

#[test]
fn an_ipsec_lab_needs_esp() {
    require_root();
    let prefix = format!("ipsec-{}-", std::process::id());
    match Lab::from_file(repo("examples/ipsec.yaml")) {
        Ok(lab) => {
            // A kernel with ESP (the stock-kernel lane measures traffic in stock_ipsec.rs).
            let gw1 = lab.node("gw1").netns().unwrap().to_string();
            let out = Command::new("ip").args(["netns", "exec", &gw1, "ip", "xfrm", "state"]).output().unwrap();
            assert!(String::from_utf8_lossy(&out.stdout).contains("proto esp spi 0x00001000"));
        }
        Err(e) => {
            assert_eq!(e.exit_code(), 3, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("refuses the ESP state 198.51.100.1 -> 203.0.113.2") && msg.contains("CONFIG_INET_ESP"), "{msg}");
            assert!(namespaces_with_prefix(&prefix).is_empty(), "nothing was created");
            let records: Vec<String> = vnet::state::list().into_iter().filter(|l| l.starts_with(&prefix)).collect();
            assert!(records.is_empty(), "no record left: {records:?}");
        }
    }
}
