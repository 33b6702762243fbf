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
