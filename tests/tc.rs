//! Traffic control in the real kernel (this host has tbf but no netem): a declared rate limit
//! is installed, measured, changed on the running lab with `vnet impair`, cleared back to the
//! device's previous qdisc, and an unchanged lab plans nothing. netem is exercised in
//! tests/stock_netem.rs (stock-kernel lane).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vnet::lifecycle;
use vnet::model::netfeat::Impairment;
use vnet::Lab;

/// Root qdisc of a device as `tc -j` shows it.
fn root_qdisc(netns: &str, dev: &str) -> serde_json::Value {
    let out = Command::new("ip").args(["netns", "exec", netns, "tc", "-j", "qdisc", "show", "dev", dev, "root"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

/// Bits per second of a TCP stream from `from` to `to_addr:port` over `secs` (measured at the
/// receiver, after the first 0.5 s so the bucket's initial burst does not count).
fn throughput(lab: &Lab, from: &str, to: &str, to_addr: &str, port: u16, secs: f64) -> f64 {
    let addr = format!("{to_addr}:{port}");
    let listener = lab.node(to).run(|| TcpListener::bind(&addr).unwrap());
    let rx = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let start = Instant::now();
        let mut counted = 0u64;
        let mut t0 = None;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if start.elapsed().as_secs_f64() >= 0.5 {
                        t0.get_or_insert_with(Instant::now);
                        counted += n as u64;
                    }
                }
            }
        }
        let dt = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(1.0);
        counted as f64 * 8.0 / dt
    });
    let addr2 = addr.clone();
    lab.node(from).run(move || {
        let mut c = TcpStream::connect(&addr2).unwrap();
        let chunk = vec![0x5au8; 1 << 16];
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    rx.join().unwrap()
}

fn reloaded(lab: &Lab) -> vnet::model::Loaded {
    vnet::model::load_topology(&lab.model().topology).unwrap()
}

#[test]
fn rate_limit_is_installed_measured_changed_and_cleared() {
    require_root();
    let lab = Lab::builder("tbf")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.71.0.1/24")
        .address("b:eth0", "10.71.0.2/24")
        .with(|t| {
            t.nodes.get_mut("a").unwrap().tc.insert("eth0".into(), serde_json::from_value(serde_json::json!({"rate": "10mbit"})).unwrap());
        })
        .up()
        .unwrap();
    let name = lab.name().to_string();
    let a = lab.node("a").netns().unwrap().to_string();

    // Independently: tc shows vnet's tbf with the rate.
    let q = root_qdisc(&a, "eth0");
    assert_eq!(q["kind"], "tbf", "{q}");
    assert_eq!(q["handle"], "7654:", "{q}");
    assert_eq!(q["options"]["rate"], 1_250_000, "{q}");
    // vnet's observer agrees: nothing to do.
    assert!(lifecycle::plan(&reloaded(&lab)).unwrap().is_empty());

    // Measured: the stream is capped near 10 Mbit/s (and the far direction is not limited).
    let capped = throughput(&lab, "a", "b", "10.71.0.2", 5001, 2.5);
    println!("a->b with rate 10mbit: {:.2} Mbit/s", capped / 1e6);
    assert!((7e6..11e6).contains(&capped), "a->b is {:.2} Mbit/s, expected about 10", capped / 1e6);
    let free = throughput(&lab, "b", "a", "10.71.0.1", 5002, 1.5);
    println!("b->a unlimited: {:.2} Mbit/s", free / 1e6);
    assert!(free > 5.0 * capped, "the other direction is not limited: {:.1} Mbit/s", free / 1e6);

    // Changed on the running lab: only the qdisc is replaced.
    let imp = Impairment::from_words(&["rate".into(), "3mbit".into()]).unwrap();
    let r = lifecycle::impair::impair(&name, "a:eth0", Some(&imp)).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops, vec!["~ qdisc   a:eth0 tbf rate 3mbit".to_string()]);
    assert_eq!(root_qdisc(&a, "eth0")["options"]["rate"], 375_000);
    let slower = throughput(&lab, "a", "b", "10.71.0.2", 5003, 2.5);
    println!("a->b with rate 3mbit: {:.2} Mbit/s", slower / 1e6);
    assert!((2e6..3.4e6).contains(&slower), "a->b is {:.2} Mbit/s, expected about 3", slower / 1e6);

    // Cleared: the device's previous qdisc (veth's default, noqueue) is back.
    let r = lifecycle::impair::impair(&name, "a:eth0", None).unwrap();
    let ops: Vec<String> = r.plan.ops().map(|o| o.to_string()).collect();
    assert_eq!(ops, vec!["- qdisc   a:eth0 (back to the default)".to_string()]);
    assert_eq!(root_qdisc(&a, "eth0")["kind"], "noqueue");
    let after = throughput(&lab, "a", "b", "10.71.0.2", 5004, 1.5);
    println!("a->b cleared: {:.2} Mbit/s", after / 1e6);
    assert!(after > 5.0 * capped, "no limit after clearing: {:.1} Mbit/s", after / 1e6);
    let st = vnet::state::load(&name).unwrap().unwrap();
    assert!(st.netfeat.qdiscs.is_empty(), "nothing left to restore: {:?}", st.netfeat.qdiscs);

    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn impair_cli_sets_and_clears() {
    require_root();
    let lab = Lab::builder("impcli").link("a:eth0", "b:eth0").address("a:eth0", "10.72.0.1/24").address("b:eth0", "10.72.0.2/24").up().unwrap();
    let name = lab.name().to_string();
    let a = lab.node("a").netns().unwrap().to_string();
    let vnet = |args: &[&str]| Command::new(vnet_bin()).args(args).output().unwrap();

    let out = vnet(&["impair", &name, "a:eth0", "rate", "20mbit", "burst", "32kb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("~ qdisc   a:eth0 tbf rate 20mbit burst 32768b"));
    let q = root_qdisc(&a, "eth0");
    assert_eq!((q["kind"].as_str(), q["options"]["rate"].as_u64()), (Some("tbf"), Some(2_500_000)), "{q}");
    // The kernel keeps the bucket as time, so tc prints it back within a byte or two.
    assert!(q["options"]["burst"].as_u64().unwrap().abs_diff(32768) <= 2, "{q}");
    // The same again: nothing to do.
    let out = vnet(&["impair", &name, "a:eth0", "rate", "20mbit", "burst", "32kb"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stdout));

    let out = vnet(&["impair", &name, "a:eth0", "--clear"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(root_qdisc(&a, "eth0")["kind"], "noqueue");
    drop(lab);
    assert_gone(&name);
}

/// What a refused `vnet impair` must leave as it was: the lab's record (topology as applied,
/// qdiscs to restore), the root qdisc of each device, the lab's namespaces.
fn impair_snapshot(lab: &Lab) -> (serde_json::Value, Vec<serde_json::Value>, Vec<String>) {
    let st = vnet::state::load(lab.name()).unwrap().unwrap();
    let record = serde_json::json!({"phase": st.phase, "topology": st.topology, "netfeat": st.netfeat});
    let qdiscs = [("a", "eth0"), ("b", "eth0")].iter().map(|(n, d)| root_qdisc(lab.node(n).netns().unwrap(), d)).collect();
    let mut ns = namespaces_with_prefix(&format!("{}-", lab.name()));
    ns.sort();
    (record, qdiscs, ns)
}

#[test]
fn impair_failures_exit_with_the_clis_codes_and_change_nothing() {
    require_root();
    let lab = Lab::builder("impfail")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.74.0.1/24")
        .address("b:eth0", "10.74.0.2/24")
        .with(|t| {
            t.nodes.get_mut("a").unwrap().tc.insert("eth0".into(), serde_json::from_value(serde_json::json!({"rate": "10mbit"})).unwrap());
        })
        .up()
        .unwrap();
    let name = lab.name().to_string();
    let before = impair_snapshot(&lab);
    assert_eq!(before.1[0]["options"]["rate"], 1_250_000, "{:?}", before.1);
    let unknown_lab = format!("no-such-lab-{}", std::process::id());
    let no_netem = vnet::kernel::netfeat::tc::missing_qdiscs(&["netem"]).unwrap().contains(&"netem".to_string());
    let a_devices = format!("lab `{name}` has no device `nope` in node `a` (its devices: eth0)");
    // Lookups of what the command names fail as in `exec` and `trace` (1); the command's own
    // arguments and values are invalid input (2); a kernel without netem is refused (3).
    let mut cases: Vec<(Vec<&str>, i32, String)> = vec![
        (vec![&unknown_lab, "a:eth0", "rate", "1mbit"], 1, format!("no lab named `{unknown_lab}`")),
        (vec![&unknown_lab, "a:eth0", "--clear"], 1, format!("no lab named `{unknown_lab}`")),
        (vec![&name, "z:eth0", "rate", "1mbit"], 1, format!("lab `{name}` has no node `z`")),
        (vec![&name, "a:nope", "rate", "1mbit"], 1, a_devices.clone()),
        (vec![&name, "a:nope", "--clear"], 1, a_devices),
        (vec![&name, "aeth0", "rate", "1mbit"], 2, "`aeth0` is not NODE:IFACE".into()),
        (vec![&name, "a:lo", "rate", "1mbit"], 2, "traffic control on `lo` is not supported".into()),
        (vec![&name, "a:eth0", "delay", "20"], 2, "`20` has no unit".into()),
        (vec![&name, "a:eth0", "loss", "200%"], 2, "`200%` is out of range: a percentage is between 0% and 100%".into()),
        (vec![&name, "a:eth0", "rate"], 2, "`rate` needs a value".into()),
        (vec![&name, "a:eth0", "speed", "1"], 2, "unknown setting `speed`".into()),
        (vec![&name, "a:eth0", "jitter", "5ms"], 2, "needs `delay`".into()),
        (vec![&name, "a:eth0"], 2, "nothing to impair: give settings such as `delay 20ms loss 1% rate 10mbit`, or `--clear`".into()),
        (vec![&name, "b:eth0", "--clear"], 2, "`b:eth0` has no traffic control to clear".into()),
        (vec![&name, "a:eth0", "rate", "1mbit", "--clear"], 2, "cannot be used with".into()),
    ];
    if no_netem {
        cases.push((vec![&name, "a:eth0", "delay", "20ms"], 3, "this kernel lacks the netem qdisc (CONFIG_NET_SCH_NETEM); the lab needs it for a:eth0".into()));
    }
    for (args, code, msg) in &cases {
        let out = Command::new(vnet_bin()).arg("impair").args(args).env("NO_COLOR", "1").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "impair {args:?}: {err}");
        assert!(err.contains(msg.as_str()), "impair {args:?}: {err}");
        assert!(out.stdout.is_empty(), "impair {args:?} printed {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(impair_snapshot(&lab), before, "impair {args:?} changed the lab");
    }
    assert!(!std::path::Path::new("/run/vnet").join(&unknown_lab).exists(), "no record made for a lab that does not exist");
    // Another command holding the lab's lock: busy (4), as every command that changes a lab.
    let lock = vnet::state::lock(&name).unwrap();
    let out = Command::new(vnet_bin()).args(["impair", &name, "a:eth0", "rate", "1mbit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("lab `{name}` is busy")));
    drop(lock);
    assert_eq!(impair_snapshot(&lab), before);
    drop(lab);
    assert_gone(&name);
}

#[test]
fn netem_needs_a_kernel_with_netem() {
    require_root();
    let missing = vnet::kernel::netfeat::tc::missing_qdiscs(&["netem", "tbf"]).unwrap();
    assert!(!missing.contains(&"tbf".to_string()), "this host has tbf");
    let b = Lab::builder("netemhost").link("a:eth0", "b:eth0").address("a:eth0", "10.73.0.1/24").with(|t| {
        t.nodes.get_mut("a").unwrap().tc.insert("eth0".into(), serde_json::from_value(serde_json::json!({"delay": "20ms"})).unwrap());
    });
    let prefix = format!("netemhost-{}-", std::process::id());
    match b.up() {
        Ok(lab) => {
            // A kernel with netem: the delay is in place (measured in tests/stock_netem.rs).
            assert!(!missing.contains(&"netem".to_string()));
            let a = lab.node("a").netns().unwrap().to_string();
            assert_eq!(root_qdisc(&a, "eth0")["kind"], "netem");
        }
        Err(e) => {
            assert!(missing.contains(&"netem".to_string()), "failed although netem exists: {e}");
            assert_eq!(e.exit_code(), 3, "{e}");
            assert!(e.to_string().contains("lacks the netem qdisc (CONFIG_NET_SCH_NETEM)") && e.to_string().contains("a:eth0"), "{e}");
            assert!(namespaces_with_prefix(&prefix).is_empty(), "nothing was created");
            let records: Vec<String> = vnet::state::list().into_iter().filter(|l| l.starts_with(&prefix)).collect();
            assert!(records.is_empty(), "no record left: {records:?}");
        }
    }
}
