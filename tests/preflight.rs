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
