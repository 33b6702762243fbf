//! BPF in the real kernel: a program compiled with clang that drops ICMP is attached to a tc
//! hook and to XDP from the topology file (loaded through aya), pings stop while TCP passes,
//! an unchanged lab plans nothing, a rebuilt object is re-attached, and detaching (lab update)
//! brings pings back.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use vnet::lifecycle;
use vnet::Lab;

/// Compiles examples/bpf/drop_icmp.c into `dir` (clang comes from scripts/setup).
fn compile(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("drop_icmp.o");
    let st = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .args(extra)
        .arg(repo("examples/bpf/drop_icmp.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang is installed (scripts/setup)");
    assert!(st.success(), "clang compiles the example program");
    out
}

fn tcp_works(lab: &Lab, from: &str, to: &str, addr: &str) -> bool {
    let a = addr.to_string();
    let listener = lab.node(to).run(move || TcpListener::bind(&a).unwrap());
    let srv = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"ok").unwrap();
    });
    let a = addr.to_string();
    let ok = lab.node(from).run(move || {
        let Ok(mut c) = TcpStream::connect_timeout(&a.parse().unwrap(), Duration::from_secs(3)) else { return false };
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut b = [0u8; 2];
        c.write_all(b"hi").is_ok() && c.read_exact(&mut b).is_ok() && &b == b"ok"
    });
    if ok {
        srv.join().unwrap();
    }
    ok
}

fn ingress_filters(netns: &str, dev: &str) -> serde_json::Value {
    let out = Command::new("ip").args(["netns", "exec", netns, "tc", "-j", "filter", "show", "dev", dev, "ingress"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(vec![]))
}

fn xdp_of(netns: &str, dev: &str) -> serde_json::Value {
    ip_link(Some(netns), dev).unwrap()["xdp"].clone()
}

fn reloaded(lab: &Lab) -> vnet::model::Loaded {
    vnet::model::load_topology(&lab.model().topology).unwrap()
}

#[test]
fn icmp_drop_program_on_tc_and_xdp() {
    require_root();
    let dir = std::env::temp_dir().join(format!("vnet-bpf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = compile(&dir, &[]);
    std::fs::copy(repo("examples/bpf/bpf-drop.yaml"), dir.join("bpf-drop.yaml")).unwrap();

    // From the example file: the object path is relative to it.
    let mut lab = Lab::from_file(dir.join("bpf-drop.yaml")).unwrap();
    let name = lab.name().to_string();
    let b = lab.node("b").netns().unwrap().to_string();
    let f = ingress_filters(&b, "eth0");
    let bpf = f.as_array().unwrap().iter().find(|x| x["kind"] == "bpf" && x["options"]["bpf_name"].is_string()).unwrap_or_else(|| panic!("a bpf filter: {f}"));
    assert_eq!(bpf["options"]["bpf_name"], "vnet:drop_icmp", "{bpf}");
    assert_eq!(bpf["options"]["direct-action"], true, "{bpf}");
    assert!(!ping(&lab, "a", "10.80.0.2"), "ICMP is dropped");
    assert!(tcp_works(&lab, "a", "b", "10.80.0.2:7001"), "TCP still passes");
    // Unchanged (same object, same program attached): nothing to do.
    let mut t = lab.model().topology.clone();
    t.nodes.get_mut("b").unwrap().bpf[0].object = obj.display().to_string();
    let r = lab.update(t.clone()).unwrap();
    assert!(r.plan.is_empty(), "same program already attached: {}", r.plan);

    // A rebuilt object is attached again.
    compile(&dir, &["-DREBUILT=1", "-O1"]);
    let r = lab.update(t.clone()).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(ops[0].starts_with("+ bpf     b:eth0 tc-ingress drop_icmp"), "{ops:?}");
    assert!(!ping(&lab, "a", "10.80.0.2"));
    assert!(lifecycle::plan(&reloaded(&lab)).unwrap().is_empty());

    // Status shows the program on its hook; removed by hand, status says MISSING and the
    // doctor names it with the fix, which puts it back.
    let bpf_of = |lab: &Lab| {
        let st = lab.status().unwrap();
        let eth0 = st.nodes.iter().find(|n| n.node == "b").unwrap().devices.iter().find(|d| d.name == "eth0").unwrap().clone();
        (st.as_recorded(), serde_json::to_value(&eth0.tc.unwrap().bpf).unwrap(), lifecycle::status::render(&[st]))
    };
    let (ok, bpf, text) = bpf_of(&lab);
    assert!(ok, "{text}");
    assert_eq!(
        (bpf[0]["hook"].as_str(), bpf[0]["program"].as_str(), bpf[0]["attached"].as_bool()),
        (Some("tc-ingress"), Some("drop_icmp"), Some(true)),
        "{bpf}"
    );
    assert!(text.contains(&format!("\n      bpf tc-ingress drop_icmp (attached, id {})\n", bpf[0]["prog_id"])), "{text}");
    let st = Command::new("tc").args(["-n", &b, "filter", "del", "dev", "eth0", "ingress"]).status().unwrap();
    assert!(st.success());
    let (ok, bpf, text) = bpf_of(&lab);
    assert!(!ok && bpf[0]["attached"] == false, "{bpf}");
    assert!(text.contains("\n      bpf tc-ingress drop_icmp MISSING (declared, not attached)\n"), "{text}");
    let f = vnet::doctor::doctor_running(&lab.running().unwrap()).unwrap().findings;
    let m = f.iter().find(|x| x.code == "bpf-missing").unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!((m.node.as_str(), m.device.as_deref(), m.severity), ("b", Some("eth0"), vnet::doctor::Severity::Error));
    assert!(m.message.starts_with("the BPF program drop_icmp declared on eth0 tc-ingress is not attached"), "{m:?}");
    assert!(m.fix.starts_with("the kernel differs from the file (`vnet plan` shows `+ bpf b:eth0 tc-ingress drop_icmp from "), "{}", m.fix);
    lab.update(t.clone()).unwrap();
    assert!(bpf_of(&lab).0);
    assert!(!ping(&lab, "a", "10.80.0.2"));

    // Detached by removing it from the file: pings come back.
    t.nodes.get_mut("b").unwrap().bpf.clear();
    let r = lab.update(t.clone()).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops, vec!["- bpf     b:eth0 tc-ingress".to_string()]);
    assert!(!ingress_filters(&b, "eth0").as_array().unwrap().iter().any(|x| x["kind"] == "bpf"), "filter removed");
    assert!(ping(&lab, "a", "10.80.0.2"), "pings pass again");

    // XDP (generic mode) on the same device.
    t.nodes.get_mut("b").unwrap().bpf = vec![serde_json::from_value(serde_json::json!({
        "dev": "eth0", "hook": "xdp", "mode": "generic", "object": obj.display().to_string(), "program": "xdp_drop_icmp"
    }))
    .unwrap()];
    lab.update(t.clone()).unwrap();
    let x = xdp_of(&b, "eth0");
    assert_eq!(x["mode"], 2, "generic XDP: {x}");
    assert!(x["prog"]["id"].as_u64().unwrap_or(0) > 0, "{x}");
    assert!(!ping(&lab, "a", "10.80.0.2"), "ICMP dropped by XDP");
    assert!(tcp_works(&lab, "a", "b", "10.80.0.2:7002"), "TCP passes XDP");
    assert!(lifecycle::plan(&reloaded(&lab)).unwrap().is_empty());
    t.nodes.get_mut("b").unwrap().bpf.clear();
    lab.update(t).unwrap();
    assert!(xdp_of(&b, "eth0").is_null(), "XDP program detached");
    assert!(ping(&lab, "a", "10.80.0.2"));

    lab.down().unwrap();
    assert_gone(&name);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_program_fails_cleanly() {
    require_root();
    let dir = std::env::temp_dir().join(format!("vnet-bpf2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = compile(&dir, &[]);
    let b = Lab::builder("bpfbad").link("a:eth0", "b:eth0").with(|t| {
        t.nodes.get_mut("b").unwrap().bpf = vec![serde_json::from_value(serde_json::json!({
            "dev": "eth0", "hook": "tc-egress", "object": obj.display().to_string(), "program": "nope"
        }))
        .unwrap()];
    });
    let prefix = format!("bpfbad-{}-", std::process::id());
    let e = b.up().err().expect("a program that is not in the object fails");
    let msg = e.to_string();
    assert!(msg.contains("has no program `nope`") && msg.contains("drop_icmp") && msg.contains("xdp_drop_icmp"), "{msg}");
    assert!(msg.contains("everything this run created was removed again"), "{msg}");
    assert!(namespaces_with_prefix(&prefix).is_empty(), "nothing left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_update_undoes_the_features_it_changed() {
    require_root();
    let dir = std::env::temp_dir().join(format!("vnet-bpf3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = compile(&dir, &[]);
    let mut lab = Lab::builder("bpfundo").link("a:eth0", "b:eth0").address("a:eth0", "10.81.0.1/24").address("b:eth0", "10.81.0.2/24").up().unwrap();
    let name = lab.name().to_string();
    let b = lab.node("b").netns().unwrap().to_string();
    let before = vnet::state::load(&name).unwrap().unwrap();
    // In one update: a firewall table and a qdisc (both fine), then a program that is not there.
    let mut t = lab.model().topology.clone();
    let nb = t.nodes.get_mut("b").unwrap();
    nb.firewall = Some(serde_json::from_value(serde_json::json!({"rules": [{"action": "drop", "proto": "udp", "port": 53, "chain": "input"}]})).unwrap());
    nb.tc.insert("eth0".into(), serde_json::from_value(serde_json::json!({"rate": "5mbit"})).unwrap());
    nb.bpf =
        vec![serde_json::from_value(serde_json::json!({"dev": "eth0", "hook": "tc-ingress", "object": obj.display().to_string(), "program": "missing"}))
            .unwrap()];
    let e = lab.update(t).expect_err("the update fails");
    assert!(e.to_string().contains("has no program `missing`"), "{e}");
    // Undone: no table, the default qdisc, the previous record.
    let tables = Command::new("ip").args(["netns", "exec", &b, "nft", "list", "tables"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "", "the table made by the failed update is gone");
    let q = Command::new("ip").args(["netns", "exec", &b, "tc", "-j", "qdisc", "show", "dev", "eth0", "root"]).output().unwrap();
    let q: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    assert_eq!(q[0]["kind"], "noqueue", "{q}");
    let after = vnet::state::load(&name).unwrap().unwrap();
    assert_eq!(after.netfeat, before.netfeat);
    assert!(ping(&lab, "a", "10.81.0.2"));
    assert!(lifecycle::plan(&reloaded(&lab)).unwrap().is_empty(), "the lab is as it was");
    drop(lab);
    assert_gone(&name);
    let _ = std::fs::remove_dir_all(&dir);
}
