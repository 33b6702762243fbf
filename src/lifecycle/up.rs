//! `up`: lock, observe, plan, record, apply, record again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apply::{self, Context};
use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::model::{Diagnostics, Lab, Loaded};
use crate::observed::NsState;
use crate::plan::{self, Op, Plan};
use crate::state::{self, LabState, Phase};

use super::session::observe_lab;

/// Options of `up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// The file the lab came from (kept in its record).
    pub file: Option<PathBuf>,
    /// Owning process for labs that must not outlive it (the test library); `gc` removes the
    /// lab once that process is gone.
    pub owner_pid: Option<u32>,
    /// Show a progress bar (only used when stderr is a terminal and the lab is large).
    pub progress: bool,
}

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    pub lab: String,
    pub plan: Plan,
    pub warnings: Diagnostics,
    pub elapsed: Duration,
}

/// Plans `up` without changing anything (`vnet plan`).
pub fn plan(loaded: &Loaded) -> Result<Plan> {
    let lab = &loaded.lab;
    let prior = state::load(&lab.name).map_err(|e| Error::io("read lab state", e))?;
    let prior = super::netfeat::with_keys(lab, prior.as_ref()).map_err(|e| Error::io("generate IPsec keys", e))?;
    let session = observe_lab(lab, prior.as_ref())?;
    plan::plan(lab, &session.observed, prior.as_ref()).map_err(Error::Clash)
}

/// Builds the lab, or brings a running one in line with the file.
pub fn up(loaded: &Loaded, opts: &UpOptions) -> Result<UpReport> {
    let started = Instant::now();
    let lab = &loaded.lab;
    let _lock = lock(&lab.name)?;
    let prior = state::load(&lab.name).map_err(|e| Error::io("read lab state", e))?;
    if lab.nodes.keys().any(|n| lab.netns_name(n).is_some()) {
        netns::prepare_dir().map_err(|e| Error::io("prepare /run/netns", e))?;
    }
    // The record plus any IPsec keys generated for this lab (saved with the record below).
    let keyed = super::netfeat::with_keys(lab, prior.as_ref()).map_err(|e| Error::io("generate IPsec keys", e))?;
    let mut session = observe_lab(lab, keyed.as_ref())?;
    let plan = plan::plan(lab, &session.observed, keyed.as_ref()).map_err(Error::Clash)?;
    super::preflight::check(lab, &plan)?;
    if let Err(e) = super::netfeat::preflight(&plan) {
        // Refused before anything changed: a new lab leaves no record (not even its lock dir).
        if prior.is_none() {
            let _ = state::remove(&lab.name);
        }
        return Err(e);
    }

    let mut st = keyed.clone().unwrap_or_else(|| LabState::new(&lab.name, lab.isolated_host));
    if plan.is_empty() && prior.as_ref().map(|p| p.phase == Phase::Up).unwrap_or(false) {
        return Ok(UpReport { lab: lab.name.clone(), plan, warnings: loaded.warnings.clone(), elapsed: started.elapsed() });
    }

    // Record everything about to be created before creating it.
    st.phase = Phase::Building;
    st.pid = std::process::id();
    st.isolated_host = lab.isolated_host;
    if let Some(f) = &opts.file {
        st.file = Some(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
    }
    if opts.owner_pid.is_some() {
        st.owner_pid = opts.owner_pid;
    }
    for op in plan.ops() {
        match op {
            Op::CreateNetns { node, netns: name, .. } => {
                st.netns.insert(node.clone(), name.clone());
            }
            Op::CreateLink(c) if lab.netns_name(&c.node).is_none() => {
                if !st.root_devices.contains(&c.ifname) {
                    st.root_devices.push(c.ifname.clone());
                }
            }
            Op::SetSysctl { node, key, .. } => {
                if let Some(NsState::Owned(ns) | NsState::Root(ns)) = session.observed.nodes.get(node) {
                    if let Some(v) = ns.sysctls.get(key) {
                        st.sysctl_restore.entry(node.clone()).or_default().entry(key.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            _ => {}
        }
    }
    super::netfeat::record_before(&mut st, &plan, &session.observed);
    state::save(&st).map_err(|e| Error::io("write lab state", e))?;
    for name in &session.leftovers {
        let _ = netns::unlink(name);
    }

    let ctx = Context { lab, observed: &session.observed, group: st.group };
    let bar = progress_bar(lab, &plan, opts.progress);
    let report = |done: usize, total: usize| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    let result = apply::apply(&ctx, &plan, &mut session.handles, Some(&report));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Err(e) => {
            match &prior {
                Some(p) => state::save(p).map_err(|e| Error::io("write lab state", e))?,
                None => state::remove(&lab.name).map_err(|e| Error::io("remove lab state", e))?,
            }
            Err(Error::Apply(e))
        }
        Ok(()) => {
            super::netfeat::record_after(&mut st, lab, &plan, &session.handles).map_err(|e| Error::io("read attached BPF programs", std::io::Error::other(e)))?;
            finish_state(&mut st, lab, &plan);
            state::save(&st).map_err(|e| Error::io("write lab state", e))?;
            Ok(UpReport { lab: lab.name.clone(), plan, warnings: loaded.warnings.clone(), elapsed: started.elapsed() })
        }
    }
}

fn finish_state(st: &mut LabState, lab: &Lab, plan: &Plan) {
    st.phase = Phase::Up;
    for op in plan.ops() {
        if let Op::DeleteNetns { node, .. } = op {
            st.netns.remove(node);
        }
    }
    st.netns.retain(|node, name| lab.netns_name(node).as_deref() == Some(name.as_str()));
    st.root_devices = match lab.nodes.iter().find(|(n, _)| lab.netns_name(n).is_none()) {
        Some((_, node)) => node.interfaces.keys().filter(|n| *n != "lo").cloned().collect(),
        None => Vec::new(),
    };
    for (node, map) in st.sysctl_restore.iter_mut() {
        if let Some(n) = lab.nodes.get(node) {
            map.retain(|k, _| n.sysctls.contains_key(k));
        }
    }
    st.sysctl_restore.retain(|_, m| !m.is_empty());
    st.topology = Some(lab.topology.clone());
}

/// Takes the lab's lock or reports it busy.
pub(super) fn lock(lab: &str) -> Result<state::LabLock> {
    state::lock(lab).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Error::Busy(lab.to_string())
        } else {
            Error::io(format!("lock lab {lab}"), e)
        }
    })
}

fn progress_bar(lab: &Lab, plan: &Plan, wanted: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !wanted || lab.nodes.len() <= 50 || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(plan.len() as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} building {msg} [{bar:30}] {pos}/{len} operations")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_message(lab.name.clone());
    Some(b)
}
