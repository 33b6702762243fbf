//! Sysctl keys: how they map to /proc/sys, and which a node may set.

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::Ctx;
use crate::model::lab::{Node, SysctlPlace};

/// Splits a sysctl key into /proc/sys path components. Dotted keys split on `.`; keys written
/// with `/` split on `/` (so interface names with dots can be named).
pub fn sysctl_components(key: &str) -> Vec<String> {
    if key.contains('/') {
        key.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
    } else {
        key.split('.').map(str::to_string).collect()
    }
}

/// The canonical key of a sysctl: dotted, or `/`-separated when a component has a dot.
pub fn sysctl_key(parts: &[String]) -> String {
    if parts.iter().any(|p| p.contains('.')) {
        parts.join("/")
    } else {
        parts.join(".")
    }
}

/// The node's sysctls by canonical key, and where each is written.
pub(super) fn check_sysctls(
    ctx: &mut Ctx,
    nname: &str,
    spec: &crate::model::file::NodeSpec,
    node: Option<&Node>,
) -> (IndexMap<String, String>, IndexMap<String, SysctlPlace>) {
    let mut out = IndexMap::new();
    let mut places = IndexMap::new();
    let base = ctx.sub(&ctx.node_path(nname), "sysctls");
    let mut canonical: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (key, value) in &spec.sysctls {
        let kp = ctx.sub(&base, key);
        let parts = sysctl_components(key);
        if parts.first().map(String::as_str) != Some("net") {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is not a network sysctl; only `net.*` sysctls are per namespace"), "not under net.");
            continue;
        }
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty() || p == ".." || p == "." || p.chars().any(|c| c.is_whitespace() || c.is_control())) {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is not a valid sysctl name"), "invalid name");
            continue;
        }
        // Per-device keys name a device of this node.
        if matches!((parts.get(1).map(String::as_str), parts.get(2).map(String::as_str)), (Some("ipv4" | "ipv6"), Some("conf" | "neigh"))) {
            if let (Some(dev), Some(node)) = (parts.get(3), node) {
                if dev != "all" && dev != "default" && !node.interfaces.contains_key(dev) {
                    if ctx.failed_iface(nname, dev) {
                        continue;
                    }
                    ctx.error_at_key(
                        &kp,
                        format!("unknown device `{dev}` in sysctl `{key}` of node `{nname}`"),
                        format!("no device `{dev}` in node `{nname}`"),
                    );
                    continue;
                }
            }
        }
        let v = value.to_kernel_string();
        if v.is_empty() {
            ctx.error_at(&kp, format!("sysctl `{key}` has an empty value"), "no value");
            continue;
        }
        if v.contains('\n') {
            ctx.error_at(&kp, format!("sysctl `{key}` needs a one-line value"), "several lines");
            continue;
        }
        if let Some(prev) = canonical.insert(parts.clone(), key.clone()) {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is the same setting as `{prev}`"), "declared twice");
            continue;
        }
        places.insert(sysctl_key(&parts), SysctlPlace { key: ctx.key_span(&kp), value: ctx.span(&kp) });
        out.insert(sysctl_key(&parts), v);
    }
    (out, places)
}
