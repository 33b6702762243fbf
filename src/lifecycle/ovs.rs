//! Open vSwitch in a lab's life: which instance serves each node and what it holds (before
//! planning), which private instances the record names (after `up`), and removing everything
//! of the lab at `down` and `gc` (private instances stopped, the lab's rows taken out of a
//! shared Open vSwitch, nobody else's touched).
//!
//! A node in the real root namespace uses the machine's Open vSwitch when one answers at
//! `$OVS_RUNDIR` (default /run/openvswitch); every other node (and a root without one) gets a
//! private instance in the lab's run directory, started inside the node's namespace.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::lifecycle::preflight::{missing, Feature};
use crate::model::kind::KindSpec;
use crate::model::Lab;
use crate::observed::ovs::{ObservedOvs, OvsInstance};
use crate::ovs::{self as ovsrt, daemon, ofctl, vswitch, Target};
use crate::plan::ovs::lab_cookie_tag;
use crate::state::{self, LabState, OvsRecord};

fn has_ovs_bridges(lab: &Lab, node: &str) -> bool {
    lab.node(node).is_some_and(|n| n.interfaces.values().any(|i| matches!(i.kind, KindSpec::OvsBridge(_))))
}

/// What each node's Open vSwitch holds, for the nodes that have (or had) OVS bridges.
pub fn observe(lab: &Lab, prior: Option<&LabState>) -> Result<BTreeMap<String, ObservedOvs>> {
    let mut nodes: Vec<String> = lab.nodes.keys().filter(|n| has_ovs_bridges(lab, n)).cloned().collect();
    if let Some(st) = prior {
        nodes.extend(st.ovs.keys().cloned());
        // A root node may hold the lab's rows in the machine's OVS from an earlier file.
        if st.topology.as_ref().is_some_and(|t| !t.isolated_host) {
            nodes.extend(lab.nodes.keys().filter(|n| lab.netns_name(n).is_none()).cloned());
        }
    }
    nodes.sort();
    nodes.dedup();
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return Ok(out);
    }
    let needs_auto = lab.nodes.values().flat_map(|n| n.interfaces.values()).any(|i| matches!(&i.kind, KindSpec::OvsBridge(s) if s.datapath.is_none()));
    let kernel_datapath =
        if needs_auto { missing(&[Feature::Openvswitch]).map_err(|e| Error::io("probe the openvswitch module", e))?.is_empty() } else { false };
    let tag = lab_cookie_tag(&lab.name);
    for node in nodes {
        let root = lab.nodes.contains_key(&node) && lab.netns_name(&node).is_none();
        let system = ovsrt::system_rundir();
        let dir = ovsrt::private_dir(&lab.name, &node);
        let instance = if root && ovsrt::answers(&system) {
            OvsInstance::System { rundir: system.display().to_string() }
        } else if daemon::running(&dir).len() == 2 && ovsrt::answers(&dir) {
            OvsInstance::Private { dir: dir.display().to_string() }
        } else {
            OvsInstance::None
        };
        if instance == OvsInstance::None && has_ovs_bridges(lab, &node) {
            if let Some(why) = daemon::missing_software() {
                return Err(Error::Unsupported(vec![format!("{why} (node {node})")]));
            }
        }
        let mut obs = ObservedOvs { instance, kernel_datapath, bridges: Vec::new() };
        if let Some(rundir) = obs.instance.rundir().map(str::to_string) {
            let target = Target::new(&rundir);
            let ctx = |e: ovsrt::DbError| {
                Error::io(format!("read Open vSwitch of node {node} ({})", target.db_sock().display()), std::io::Error::other(e.to_string()))
            };
            let mut c = target.connect().map_err(ctx)?;
            obs.bridges = vswitch::snapshot(&mut c).map_err(ctx)?;
            for b in obs.bridges.iter_mut().filter(|b| b.lab.as_deref() == Some(lab.name.as_str())) {
                let cookies = ofctl::cookies(&target.mgmt(&b.name), tag)
                    .map_err(|e| Error::io(format!("read the flows of OVS bridge {} in node {node}", b.name), std::io::Error::other(e)))?;
                b.flow_cookies = Some(cookies);
            }
        }
        out.insert(node, obs);
    }
    Ok(out)
}

/// The private instances of a lab that are running, by node (for its record).
pub fn record(lab: &str) -> BTreeMap<String, OvsRecord> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(state::lab_dir(lab).join("ovs")) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let dir = e.path();
        let pids = daemon::running(&dir);
        if !pids.is_empty() {
            out.insert(e.file_name().to_string_lossy().to_string(), OvsRecord { dir, pids });
        }
    }
    out
}

/// Removes a lab's Open vSwitch state: its private instances (recorded or found in its run
/// directory) are stopped; where the lab used the machine's Open vSwitch, the rows carrying
/// its mark are deleted. Returns problems.
pub fn remove_lab(lab: &str, st: Option<&LabState>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut dirs: BTreeMap<std::path::PathBuf, BTreeMap<String, u32>> = BTreeMap::new();
    if let Some(s) = st {
        for r in s.ovs.values() {
            dirs.insert(r.dir.clone(), r.pids.clone());
        }
    }
    if let Ok(rd) = std::fs::read_dir(state::lab_dir(lab).join("ovs")) {
        for e in rd.filter_map(|e| e.ok()) {
            dirs.entry(e.path()).or_default();
        }
    }
    for (dir, pids) in &dirs {
        if let Err(e) = daemon::stop(dir, pids) {
            problems.push(format!("Open vSwitch in {}: {e}", dir.display()));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    let used_root = st.map(|s| !s.isolated_host).unwrap_or(true);
    let system = ovsrt::system_rundir();
    if used_root && ovsrt::answers(&system) {
        match Target::new(&system).connect().and_then(|mut c| vswitch::remove_lab(&mut c, lab)) {
            Ok(_) => {}
            Err(e) => problems.push(format!("remove the lab's rows from Open vSwitch at {}: {e}", system.display())),
        }
    }
    problems
}

/// `gc`: private instances whose lab has no live record, and rows of the machine's Open
/// vSwitch marked by labs that are not live. Returns what was (or would be) removed, and
/// problems.
pub fn gc(live: impl Fn(&str) -> bool, dry_run: bool) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    let mut dirs: BTreeMap<std::path::PathBuf, BTreeMap<String, u32>> = BTreeMap::new();
    for (pid, program, dir) in daemon::all_under(&state::run_dir()) {
        let lab = dir.parent().and_then(|p| p.parent()).and_then(|p| p.file_name()).map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        if live(&lab) {
            continue;
        }
        removed.push(format!("{program} (pid {pid}) of lab {lab} in {}", dir.display()));
        dirs.entry(dir).or_default().insert(program, pid);
    }
    if !dry_run {
        for (dir, pids) in &dirs {
            if let Err(e) = daemon::stop(dir, pids) {
                problems.push(format!("Open vSwitch in {}: {e}", dir.display()));
            }
        }
    }
    let system = ovsrt::system_rundir();
    if ovsrt::answers(&system) {
        let labs = Target::new(&system).connect().and_then(|mut c| vswitch::snapshot(&mut c)).map(|b| vswitch::labs(&b)).unwrap_or_default();
        for lab in labs.into_iter().filter(|l| !live(l)) {
            removed.push(format!("Open vSwitch rows of lab {lab} at {}", system.display()));
            if !dry_run {
                if let Err(e) = Target::new(&system).connect().and_then(|mut c| vswitch::remove_lab(&mut c, &lab)) {
                    problems.push(format!("remove the rows of lab {lab} from Open vSwitch: {e}"));
                }
            }
        }
    }
    (removed, problems)
}
