//! Stock-kernel lane (runs only in the VM, see scripts/test-vm): on Debian's stock kernel the
//! preflight finds everything the lab features need, and agrees with iproute2 about it.

mod common;
#[path = "common/preflight_oracle.rs"]
mod oracle;

use common::*;
use vnet::lifecycle::preflight;

#[test]
fn stock_kernel_lacks_nothing_the_preflight_probes() {
    require_root();
    let names: Vec<&str> = oracle::FEATURES.iter().map(|(n, _)| *n).collect();
    require(&names);
    assert_eq!(preflight::missing_named(&names).unwrap(), Vec::<String>::new());
    // Kinds the foundation does not model yet, probed by name.
    assert_eq!(preflight::missing_named(&["team", "gre", "wireguard", "macvtap", "ifb", "fq_codel"]).unwrap(), Vec::<String>::new());
}

#[test]
fn preflight_agrees_with_iproute2_on_the_stock_kernel() {
    require_root();
    let names: Vec<&str> = oracle::FEATURES.iter().map(|(n, _)| *n).collect();
    let missing = preflight::missing_named(&names).unwrap();
    for (name, works) in oracle::iproute2_verdicts() {
        assert!(works, "iproute2 cannot use {name} on the stock kernel");
        assert!(!missing.contains(&name), "preflight says the stock kernel lacks {name}");
    }
}

#[test]
fn a_feature_no_kernel_has_is_reported_missing() {
    require_root();
    // The probes can say "missing" in the guest too (not only "present").
    assert_eq!(
        preflight::missing_named(&["kind:vnet-no-such-kind", "qdisc:vnetnosuch", "ipvlan"]).unwrap(),
        vec!["vnet-no-such-kind".to_string(), "qdisc:vnetnosuch".to_string()]
    );
}
