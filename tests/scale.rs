//! Correctness at scale: a 1000-node star built by vnet is what `status` and `ip` say, carries
//! traffic end to end, and leaves nothing behind. (Speed is measured by `vnet bench`, not here.)

mod common;

use common::*;
use vnet::bench::{generate, Shape};
use vnet::lab::LabOptions;
use vnet::Lab;

/// A generated star of `nodes` nodes, up, with its lab name.
fn star(nodes: usize, name: &str) -> (vnet::bench::Generated, Lab, String) {
    let g = generate(Shape::Star, nodes);
    let lab = Lab::from_topology(g.topology(name), LabOptions::default()).unwrap();
    let name = lab.name().to_string();
    (g, lab, name)
}

#[test]
fn star_1000_is_complete_and_reachable_end_to_end() {
    require_root();
    let (g, lab, name) = star(1000, "scale-star");

    let st = lab.status().unwrap();
    assert_eq!(st.nodes.len(), 1001);
    assert!(st.as_recorded() && st.drift_count() == 0, "{}", vnet::lifecycle::status::render(std::slice::from_ref(&st)));
    let mut devices = 0;
    for n in &st.nodes {
        assert!(n.present, "node {} missing", n.node);
        for d in &n.devices {
            assert!(d.up, "{}:{} is down", n.node, d.name);
            devices += 1;
        }
        if n.node != "host" {
            let eth0 = n.devices.iter().find(|d| d.name == "eth0").expect("eth0");
            assert!(eth0.carrier, "{}: eth0 has no carrier", n.node);
            assert_eq!(eth0.addresses.len(), 1, "{}: {:?}", n.node, eth0.addresses);
            assert!(n.routes.iter().any(|r| r.dst == "default"), "{}: no default route", n.node);
        }
    }
    // host: lo, br0, 1000 veth ends; each node: lo, eth0.
    assert_eq!(devices, 2 + 1000 + 2 * 1000);
    // Independently: the host namespace holds 1000 bridge ports, and the bridge's teardown
    // anchor (`model::anchor`, which `status` leaves out), down.
    let host = lab.node("host").netns().unwrap().to_string();
    let ports = ip_json(Some(&host), &["link", "show", "master", "br0"]);
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 1001);
    let anchors: Vec<&serde_json::Value> = ports.iter().filter(|p| p["ifname"] == "vnet~br0").collect();
    assert!(anchors.len() == 1 && anchors[0]["operstate"] == "DOWN", "{anchors:?}");

    // Node 1 reaches node 1000 across the bridge.
    let n1000 = g.addresses.iter().find(|(n, _, _)| n == "n1000").unwrap().2.split('/').next().unwrap().to_string();
    assert!(ping(&lab, "n1", &n1000), "n1 cannot reach n1000 ({n1000})");
    // Reading the whole lab back (doctor, trace) finds it healthy and the path across it.
    let out = std::process::Command::new(vnet_bin()).args(["doctor", &name]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("no problems found"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(vnet_bin()).args(["trace", &name, "n1", "n1000"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("n1:eth0 -> host:v1 (veth)") && text.contains("host:v1000 -> n1000:eth0 (veth)"), "{text}");

    let report = lab.down().unwrap();
    assert_eq!(report.namespaces.len(), 1001);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_gone(&name);
}

#[test]
fn chain_and_tree_carry_traffic() {
    require_root();
    for shape in [Shape::Chain, Shape::Tree] {
        let g = generate(shape, 40);
        let lab = Lab::from_topology(g.topology(&format!("scale-{}", shape.name())), LabOptions::default()).unwrap();
        for (node, dst) in g.probes.iter().step_by(7) {
            assert!(ping(&lab, node, &dst.to_string()), "{shape:?}: {node} cannot reach {dst}");
        }
        let name = lab.name().to_string();
        drop(lab);
        assert_gone(&name);
    }
}

/// Procfs instances mounted anywhere this process can see.
fn proc_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(" - proc ")).count()
}

/// vnet opens sysctls through private procfs instances, each replaced after 64 opens
/// (src/kernel/sysctl.rs). Across more nodes than two instances serve, every value lands in its
/// own node's namespace as the machine's /proc shows it, reads back as set (a second `up` finds
/// nothing to do), and no procfs mount is left where anyone can see it.
#[test]
fn sysctls_of_many_nodes_land_each_in_its_own_namespace() {
    require_root();
    let before = proc_mounts();
    let ttl = |i: usize| (100 + i).to_string();
    let mut b = Lab::builder("sysctls");
    for i in 1..=150 {
        let node = format!("n{i}");
        b = b.node(&node).sysctl(&node, "net.ipv4.ip_default_ttl", &ttl(i));
    }
    let mut lab = b.up().unwrap();
    let name = lab.name().to_string();
    for i in 1..=150 {
        let seen = lab.node(&format!("n{i}")).run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap());
        assert_eq!(seen.trim(), ttl(i), "n{i}");
    }
    assert_eq!(proc_mounts(), before, "a procfs mount of vnet's is visible");
    let again = lab.update(lab.model().topology.clone()).unwrap();
    assert!(again.plan.is_empty(), "every sysctl reads back as set: {}", again.plan);
    drop(lab);
    assert_gone(&name);
}

fn neigh_limits() -> Vec<String> {
    (1..=3).map(|i| std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{i}")).unwrap()).collect()
}

/// Benchmark runs raise the machine's neighbour table limits for their time: one at a time
/// here, so that a test sees the limits it started with come back after its own run.
static BENCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `vnet ARGS` (a `bench ... --json`), asserting success: its pid (which names what the
/// run makes) and its JSON.
fn bench_json(args: &[&str]) -> (u32, serde_json::Value) {
    let child = std::process::Command::new(vnet_bin()).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (pid, serde_json::from_slice(&out.stdout).unwrap())
}

/// `vnet bench` is a contract (issue 7): every way is built, verified by a probe per node and
/// timed; JSON keys as documented; every teardown is also timed until the kernel has destroyed
/// all it released; nothing of the run remains.
#[test]
fn bench_builds_verifies_and_times_every_way_then_leaves_nothing() {
    require_root();
    let _one = BENCH.lock().unwrap_or_else(|e| e.into_inner());
    let before = neigh_limits();
    let (pid, j) = bench_json(&["bench", "star", "--nodes", "20", "--json"]);
    for k in [
        "vnet_up_s",
        "vnet_down_s",
        "vnet_gone_s",
        "vnet_reup_s",
        "ip_batch_up_s",
        "ip_batch_down_s",
        "ip_batch_gone_s",
        "ip_script_up_s",
        "ip_script_down_s",
        "ip_script_gone_s",
        "peak_rss_mb",
    ] {
        let v = j[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {j}"));
        assert!(v > 0.0 && v < 60.0, "{k} = {v}");
    }
    for k in ["vnet_verified", "ip_batch_verified", "ip_script_verified"] {
        assert_eq!(j[k], "20/20", "{k}: {j}");
    }
    let f = |k: &str| j[k].as_f64().unwrap();
    // Returning from `ip netns del` precedes the devices' end, and the ratios are what they say.
    assert!(f("ip_batch_gone_s") >= f("ip_batch_down_s"), "{j}");
    assert!(f("ip_script_gone_s") >= f("ip_script_down_s"), "{j}");
    assert!(f("vnet_gone_s") >= f("vnet_down_s"), "{j}");
    assert!((f("ratio_vnet_ip_batch") - f("vnet_up_s") / f("ip_batch_up_s")).abs() < 1e-9);
    assert!((f("ratio_vnet_down_ip_batch_gone") - f("vnet_down_s") / f("ip_batch_gone_s")).abs() < 1e-9);
    assert!((f("ratio_vnet_gone_ip_batch_gone") - f("vnet_gone_s") / f("ip_batch_gone_s")).abs() < 1e-9);
    assert!(f("peak_rss_mb") < 50.0, "{j}");
    assert_eq!((j["topology"].as_str(), j["nodes"].as_u64()), (Some("star"), Some(20)));
    assert_eq!((j["rounds"].as_u64(), j["vnet_up_runs_s"].as_array().map(Vec::len)), (Some(1), Some(1)), "one round by default: {j}");
    assert!(j["machine"].as_str().is_some_and(|m| m.contains(" cores, ") && m.contains("Linux")), "{j}");

    for prefix in ["vb-", "ib-", "is-"] {
        let left = namespaces_with_prefix(&format!("{prefix}star20-{pid}-"));
        assert!(left.is_empty(), "{prefix}: {left:?}");
    }
    assert_gone(&format!("vb-star20-{pid}"));
    assert!(!std::env::temp_dir().join(format!("vnet-bench-star20-{pid}")).exists(), "the run's files remain");
    assert!(!std::path::Path::new(&format!("/run/vnet/.bench/{pid}.json")).exists(), "the run's record remains");
    assert_eq!(neigh_limits(), before, "the neighbour limits are back");

    // The table names the machine and the columns, for chain and tree too.
    for shape in ["chain", "tree"] {
        let out = std::process::Command::new(vnet_bin()).args(["bench", shape, "--nodes", "8", "--skip-script"]).output().unwrap();
        assert!(out.status.success(), "{shape}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(&format!("{shape}-8 on ")), "{text}");
        assert!(text.contains("all gone") && text.contains("8/8"), "{text}");
        assert!(text.contains("vnet down / ip -batch until all is gone: ") && text.contains("both until all is gone: "), "{text}");
    }
}

/// `--root-host`: vnet's lab keeps its `host` in the namespace vnet runs in (a scratch one
/// standing in for the machine's), as a user's lab without `isolated_host`: built, verified,
/// timed, and nothing of it (the scratch root included) remains.
#[test]
fn bench_of_a_root_host_lab_builds_in_a_stand_in_root_and_leaves_nothing() {
    require_root();
    let _one = BENCH.lock().unwrap_or_else(|e| e.into_inner());
    let (pid, j) = bench_json(&["bench", "star", "--nodes", "30", "--skip-script", "--root-host", "--rounds", "3", "--json"]);
    assert_eq!(j["vnet_host"], "root", "{j}");
    // Three alternating rounds, each verified; the times are their medians.
    assert_eq!(j["rounds"], 3, "{j}");
    for (runs, median) in [("vnet_up_runs_s", "vnet_up_s"), ("vnet_down_runs_s", "vnet_down_s"), ("ip_batch_up_runs_s", "ip_batch_up_s")] {
        let mut v: Vec<f64> = j[runs].as_array().unwrap_or_else(|| panic!("{runs}: {j}")).iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(v.len(), 3, "{runs}: {j}");
        v.sort_by(f64::total_cmp);
        assert_eq!(j[median].as_f64(), Some(v[1]), "{median} is the median of {runs}: {j}");
    }
    assert_eq!(j["vnet_verified"], "30/30", "{j}");
    for k in ["vnet_up_s", "vnet_down_s", "vnet_gone_s", "vnet_reup_s"] {
        assert!(j[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {j}");
    }
    for prefix in ["vb-", "vr-", "ib-"] {
        let left = namespaces_with_prefix(&format!("{prefix}star30-{pid}"));
        assert!(left.is_empty(), "{prefix}: {left:?}");
    }
    assert_gone(&format!("vb-star30-{pid}"));
    // The real root namespace got none of the lab's devices.
    assert!(devices_with_alias(None, &format!("vnet:vb-star30-{pid}")).is_empty());
}

/// Runs `vnet ARGS` with stderr on a terminal (a pseudo-terminal) or a pipe; returns stderr.
fn stderr_of(args: &[&std::ffi::OsStr], terminal: bool) -> String {
    use std::io::Read;
    let mut cmd = std::process::Command::new(vnet_bin());
    cmd.args(args).stdout(std::process::Stdio::null());
    if !terminal {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        return String::from_utf8_lossy(&out.stderr).into_owned();
    }
    let size = nix::pty::Winsize { ws_row: 24, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let status = cmd.stderr(std::process::Stdio::from(pty.slave)).status().unwrap();
    assert!(status.success());
    // The command holds our copy of the terminal's other end: without it and the child's, a
    // read returns what was written and then fails (no writer left).
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Issue 7: labs over 50 nodes show a progress bar when stderr is a terminal; silent otherwise.
#[test]
fn up_shows_progress_only_on_a_terminal_and_only_for_labs_over_50_nodes() {
    require_root();
    // A star of N has N + 1 nodes (its host): 49 makes 50, not over 50.
    for (nodes, terminal, bar) in [(60, true, true), (60, false, false), (49, true, false)] {
        let name = format!("pbar{nodes}{}", if terminal { "t" } else { "p" });
        let g = generate(Shape::Star, nodes);
        let file = temp_topology(&name, "json", &serde_json::to_string(&g.topology(&name)).unwrap());
        let err = stderr_of(&["up".as_ref(), file.as_os_str()], terminal);
        let shown = err.contains(&format!("building {name}")) && err.contains(" operations");
        assert_eq!(shown, bar, "{nodes} nodes, terminal {terminal}: {err:?}");
        if !terminal {
            // Warnings (the neighbour limits) may come, but nothing drawn for a terminal.
            assert!(!err.contains('\r') && !err.contains('\x1b'), "a pipe gets no drawing: {err:?}");
        }
        let out = std::process::Command::new(vnet_bin()).args(["down", &name]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_gone(&name);
    }
}

/// A big matrix check shows its progress (probes, waves) on a terminal, nothing on a pipe.
#[test]
fn check_shows_progress_of_a_big_matrix_only_on_a_terminal() {
    require_root();
    let (_, lab, name) = star(60, "pbarcheck");
    let name = name.as_str();
    // 61 nodes: 3,660 probes, more than the machine's 1,024 neighbour entries: waves.
    let err = stderr_of(&["check".as_ref(), name.as_ref()], true);
    assert!(err.contains(&format!("checking {name}, wave 1/")) && err.contains(" probes"), "{err:?}");
    let err = stderr_of(&["check".as_ref(), name.as_ref()], false);
    assert!(!err.contains("checking") && !err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    drop(lab);
    assert_gone(name);
}
