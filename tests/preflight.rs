//! The kernel preflight on this machine's kernel: it agrees with iproute2 about what the
//! kernel has, changes nothing, and refuses labs needing what is missing (exit code 3).

mod common;
#[path = "common/preflight_oracle.rs"]
mod oracle;

use common::*;
use vnet::lifecycle::preflight;

#[test]
fn preflight_agrees_with_iproute2_on_this_kernel() {
    require_root();
    let names: Vec<&str> = oracle::FEATURES.iter().map(|(n, _)| *n).collect();
    let missing = preflight::missing_named(&names).unwrap();
    let verdicts = oracle::iproute2_verdicts();
    for (name, works) in &verdicts {
        assert_eq!(
            !missing.contains(name),
            *works,
            "preflight says {name} is {}, iproute2 {} use it",
            if missing.contains(name) { "missing" } else { "present" },
            if *works { "can" } else { "cannot" }
        );
    }
    eprintln!("this kernel lacks: {missing:?}");
    // The probes ran in a namespace of their own: nothing of theirs shows in ours.
    let links = ip_json(None, &["link", "show"]);
    assert!(!links.to_string().contains("vnetprobe"), "a probe device leaked into the test's namespace");
}

/// The lab's file under a name no other run uses.
fn unique_copy(rel: &str, base: &str) -> (std::path::PathBuf, String) {
    let lab = vnet::lab::unique_name(base);
    let text = std::fs::read_to_string(repo(rel)).unwrap();
    let text = text.lines().map(|l| if l.starts_with("name:") { format!("name: {lab}") } else { l.to_string() }).collect::<Vec<_>>().join("\n");
    (temp_topology(&lab, "yaml", &text), lab)
}

/// `vnet up --isolated-host` of a lab; (exit code, stderr).
fn vnet_up(file: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(vnet_bin()).args(["up", file.to_str().unwrap(), "--isolated-host"]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

fn verdict(name: &str) -> bool {
    oracle::iproute2_verdicts().into_iter().find(|(n, _)| n == name).map(|(_, ok)| ok).unwrap()
}

/// The lab of tests/stock_preflight.rs (dummy lower, ipvlan slaves in two namespaces). Where the
/// kernel lacks dummy or ipvlan (this project's CI host), `up` refuses it with exit code 3 and one
/// line per missing kind, and nothing is created; where it has both, the lab comes up.
#[test]
fn ipvlan_lab_is_refused_where_the_kernel_lacks_its_kinds() {
    require_root();
    let (has_dummy, has_ipvlan) = (verdict("dummy"), verdict("ipvlan"));
    let (file, lab) = unique_copy("tests/labs/ipvlan-l2.yaml", "ipvl");
    let (code, stderr) = vnet_up(&file);
    if has_dummy && has_ipvlan {
        eprintln!("this kernel has dummy and ipvlan: checking that the lab comes up instead");
        assert_eq!(code, 0, "vnet up: {stderr}");
        assert!(std::process::Command::new(vnet_bin()).args(["down", &lab]).status().unwrap().success());
        assert_gone(&lab);
        return;
    }
    assert_eq!(code, 3, "exit code 3 (kernel lacks a feature), got {code}: {stderr}");
    let mut want = Vec::new();
    if !has_dummy {
        want.push("error: this kernel lacks dummy (CONFIG_DUMMY); the lab needs it for node host, device lower0".to_string());
    }
    if !has_ipvlan {
        want.push(format!(
            "{}this kernel lacks ipvlan (CONFIG_IPVLAN); the lab needs it for node blue, device ipvl0; node red, device ipvl1",
            if want.is_empty() { "error: " } else { "" }
        ));
    }
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want);
    assert_gone(&lab);
    assert!(namespaces_with_prefix(&lab).is_empty(), "namespaces of {lab} were created");
    // `plan` says the same: a plan `up` would refuse is no plan.
    let out = std::process::Command::new(vnet_bin()).args(["plan", file.to_str().unwrap(), "--isolated-host"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "vnet plan: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().collect::<Vec<_>>(), want);
    assert_gone(&lab);
    assert!(!ip_json(None, &["link", "show"]).to_string().contains("ipvl"), "a device of the lab shows in the test's namespace");

    // The library says the same, with the same exit code.
    let err = vnet::Lab::from_file(&file).err().expect("the library refuses the lab too");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("lacks ipvlan (CONFIG_IPVLAN)") || has_ipvlan, "{err}");
}

/// A bridge with vlan_filtering needs more than the bridge kind.
#[test]
fn vlan_filtering_bridge_is_refused_where_the_kernel_lacks_it() {
    require_root();
    let lab = vnet::lab::unique_name("vlanf");
    let file = temp_topology(&lab, "yaml", &format!("name: {lab}\nnodes:\n  sw:\n    interfaces:\n      br0: {{ kind: bridge, vlan_filtering: true }}\n"));
    let (code, stderr) = vnet_up(&file);
    if verdict("bridge-vlan-filtering") {
        eprintln!("this kernel has bridge vlan_filtering: checking that the lab comes up instead");
        assert_eq!(code, 0, "vnet up: {stderr}");
        assert!(std::process::Command::new(vnet_bin()).args(["down", &lab]).status().unwrap().success());
    } else {
        assert_eq!(code, 3, "{stderr}");
        assert_eq!(
            stderr.trim_end(),
            "error: this kernel lacks bridge-vlan-filtering (CONFIG_BRIDGE_VLAN_FILTERING); the lab needs it for node sw, device br0"
        );
    }
    assert_gone(&lab);
}

/// Sysctls the kernel would refuse are found before anything is built, each at its line, with
/// exit code 2 (a mistake in the file): a misspelled name (with the kernel's closest name), a
/// machine-wide setting (absent or read-only in a new namespace), a table-wide neighbour
/// setting given per device, a value the kernel refuses. `plan` refuses the same way.
#[test]
fn sysctls_the_kernel_would_refuse_are_refused_before_anything_is_built() {
    require_root();
    let lab = vnet::lab::unique_name("sysck");
    let text = format!(
        "name: {lab}\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    sysctls:\n      net.ipv4.ip_forwrd: 1\n      net.ipv4.conf.eth0.rp_filtr: 1\n      net.ipv4.tcp_congestion_control: nosuch\n      net.core.rmem_max: 100000\n      net.ipv4.neigh.eth0.gc_thresh1: 4096\n      net.ipv4.ip_local_port_range: \"6000 5000\"\n      net.ipv4.conf.eth0.rp_filter: 2\n  b: {{}}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let f = file.display().to_string();
    for cmd in ["up", "plan"] {
        let out = std::process::Command::new(vnet_bin()).args([cmd, &f, "--isolated-host"]).env("NO_COLOR", "1").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        for (place, message) in [
            ("7:7", "this kernel has no sysctl `net.ipv4.ip_forwrd` (node `a`)"),
            ("8:7", "this kernel has no sysctl `net.ipv4.conf.eth0.rp_filtr` (node `a`)"),
            ("9:40", "the kernel refuses `nosuch` for sysctl `net.ipv4.tcp_congestion_control` of node `a`: no such value"),
            ("10:7", "sysctl `net.core.rmem_max` of node `a` is machine-wide: only the machine's root namespace can set it"),
            ("11:7", "sysctl `net.ipv4.neigh.eth0.gc_thresh1` of node `a`: the neighbour table's `gc_thresh1` is not per device"),
            ("12:37", "the kernel refuses `6000 5000` for sysctl `net.ipv4.ip_local_port_range` of node `a`: Invalid argument"),
        ] {
            assert!(stderr.contains(&format!("[{f}:{place}]")), "{cmd}: no finding at {place}:\n{stderr}");
            assert!(stderr.contains(message), "{cmd}: lacks `{message}`:\n{stderr}");
        }
        assert!(stderr.contains("help: did you mean `net.ipv4.ip_forward`?"), "{stderr}");
        assert!(stderr.contains("help: did you mean `net.ipv4.conf.eth0.rp_filter`?"), "{stderr}");
        assert_eq!(stderr.matches('×').count(), 6, "only the six refused ones:\n{stderr}");
        assert_gone(&lab);
    }
    // `validate` checks the file alone; `validate --kernel` asks the kernel as `plan` does.
    let out = std::process::Command::new(vnet_bin()).args(["validate", &f]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(vnet_bin()).args(["validate", "--kernel", &f]).env("NO_COLOR", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("[{f}:7:7]")) && stderr.contains("help: did you mean `net.ipv4.ip_forward`?"), "{stderr}");
    assert_eq!(stderr.matches('×').count(), 6, "{stderr}");
    assert_gone(&lab);
}

/// `validate --kernel`: what this kernel lacks (exit 3) and what it takes, with nothing built
/// and no running lab consulted; without root it says it needs root.
#[test]
fn validate_with_kernel_reports_what_this_kernel_refuses() {
    require_root();
    let (file, lab) = unique_copy("tests/labs/ipvlan-l2.yaml", "valk");
    let f = file.display().to_string();
    let out = std::process::Command::new(vnet_bin()).args(["validate", "--kernel", &f]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if verdict("dummy") && verdict("ipvlan") {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("this kernel lacks") && stderr.contains("the lab needs it for node"), "{stderr}");
    }
    assert_gone(&lab);
    assert!(namespaces_with_prefix(&lab).is_empty());
    let out = std::process::Command::new(vnet_bin()).args(["validate", "--kernel", repo("examples/routed.yaml").to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("lab routed is valid (4 nodes), and this kernel takes it\n"));
    // Without root (nobody): said, not an EPERM from deep inside.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(vnet_bin())
        .args(["validate", "--kernel", repo("examples/routed.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validate --kernel: needs root"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Good sysctls pass the preflight and are set: per-device keys (judged on `default` before the
/// device exists), a name the setting knows, a range.
#[test]
fn sysctls_the_kernel_takes_pass_the_preflight_and_are_set() {
    require_root();
    let lab = vnet::lab::unique_name("sysok");
    let text = format!(
        "name: {lab}\nnodes:\n  a:\n    interfaces:\n      eth0: {{ addresses: [10.0.0.1/24] }}\n    sysctls:\n      net.ipv4.conf.eth0.rp_filter: 2\n      net.ipv4.tcp_congestion_control: reno\n      net.ipv4.ip_local_port_range: \"20000 30000\"\n      net.ipv4.neigh.eth0.base_reachable_time_ms: 5000\n  b: {{}}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n"
    );
    let file = temp_topology(&lab, "yaml", &text);
    let (code, stderr) = vnet_up(&file);
    assert_eq!(code, 0, "{stderr}");
    let ns = format!("{lab}-a");
    let read = |k: &str| {
        let out = std::process::Command::new("ip").args(["netns", "exec", &ns, "cat", &format!("/proc/sys/{}", k.replace('.', "/"))]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let got = [
        read("net.ipv4.conf.eth0.rp_filter"),
        read("net.ipv4.tcp_congestion_control"),
        read("net.ipv4.ip_local_port_range"),
        read("net.ipv4.neigh.eth0.base_reachable_time_ms"),
    ];
    assert!(std::process::Command::new(vnet_bin()).args(["down", &lab]).status().unwrap().success());
    assert_eq!(got, ["2", "reno", "20000 30000", "5000"]);
    assert_gone(&lab);
}
