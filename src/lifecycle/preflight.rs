//! Kernel preflight: before changing anything, find what the plan needs that the running kernel
//! lacks (device kinds, qdiscs, ESP, bridge VLAN filtering), by asking the kernel in a scratch
//! namespace, and refuse with one line per missing piece:
//! `this kernel lacks ipvlan (CONFIG_IPVLAN); the lab needs it for node blue, device ipvl0`.
//!
//! - `feature.rs`: the names (shared with `tests/common::require`), kernel options, messages.
//! - `needs.rs`: what each operation of a plan needs; other features register there.
//! - `probe.rs`, `xfrm.rs`, `genl.rs`: the probes.
//! - `sysctl.rs`: sysctl names and values the kernel would refuse (a mistake in the file, exit 2).

mod feature;
mod genl;
mod needs;
mod probe;
mod sysctl;
mod xfrm;

pub use feature::{kind_option as config_option, messages, Feature, Requirement};
pub use needs::requirements;
pub use probe::missing;
pub use sysctl::check as sysctls;

use crate::error::{Error, Result};
use crate::model::Lab;
use crate::plan::Plan;

/// Which of `kinds` (device kind names) the running kernel lacks.
pub fn missing_kinds(kinds: &[String]) -> std::io::Result<Vec<String>> {
    let features: Vec<Feature> = kinds.iter().map(|k| Feature::Kind(k.clone())).collect();
    Ok(missing(&features)?.into_iter().map(|f| f.name()).collect())
}

/// Which of the named features (`ipvlan`, `netem`, `esp`, ...; see `Feature::parse`) the
/// running kernel lacks, by name.
pub fn missing_named(names: &[&str]) -> std::io::Result<Vec<String>> {
    let features: Vec<Feature> = names.iter().map(|n| Feature::parse(n)).collect();
    Ok(missing(&features)?.into_iter().map(|f| f.name()).collect())
}

/// Fails (exit code 3) with every missing piece named, and where the lab needs it.
pub fn check(_lab: &Lab, plan: &Plan) -> Result<()> {
    let reqs = requirements(plan);
    let mut wanted: Vec<Feature> = Vec::new();
    for r in &reqs {
        if !wanted.contains(&r.what) {
            wanted.push(r.what.clone());
        }
    }
    let lacking = missing(&wanted).map_err(|e| Error::io("kernel preflight", e))?;
    if lacking.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported(messages(&reqs, &lacking)))
}
