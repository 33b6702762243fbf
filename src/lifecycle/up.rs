//! `up`: lock, observe, plan, record, apply, record again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apply::journal::Journal;
use crate::apply::{self, ApplyError, Context};
use crate::error::{Error, Result};
use crate::kernel::handle::NsHandle;
use crate::kernel::netns;
use crate::model::{Diagnostics, Lab, Loaded};
use crate::observed::{NsState, Observed};
use crate::plan::{self, Op, Plan};
use crate::state::{self, LabState, Phase};

use super::session::observe_lab;

/// Options of `up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// The file the lab came from (kept in its record).
    pub file: Option<PathBuf>,
    /// Whom the lab belongs to: the command line (it lives until `vnet down`), this process
    /// (the test library: `gc` removes the lab once the process is gone), or whoever owns it
    /// now. Another running process's lab is refused (`Error::Owned`) but with `Keep`.
    pub owner: Ownership,
    /// Show a progress bar (only used when stderr is a terminal and the lab is large).
    pub progress: bool,
    /// Raise the machine's neighbour table limits if the lab can exceed them (restored at down).
    pub raise_neigh_limits: bool,
}

/// Whom a lab belongs to after `up` (see `state::owner`).
#[derive(Clone, Debug, Default)]
pub enum Ownership {
    /// A lab of the command line, living until `vnet down`. A lab whose owner is gone becomes
    /// one.
    #[default]
    Command,
    /// This process, through the handle (claimed at the first `up`; the test library keeps it
    /// in its `Lab`).
    Process(state::owner::Owner),
    /// Whoever owns it now (`vnet impair`: a change asked for by name on a running lab).
    Keep,
}

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    pub lab: String,
    pub plan: Plan,
    /// Warnings raised while building (validation's own are in `Loaded::warnings`).
    pub warnings: Diagnostics,
    pub elapsed: Duration,
}

/// Plans `up` without changing anything (`vnet plan`).
pub fn plan(loaded: &Loaded) -> Result<Plan> {
    let lab = &loaded.lab;
    crate::model::hosts::require_share(lab).map_err(|d| Error::Invalid(Diagnostics::from(vec![d]).with_source(loaded.document.source.clone())))?;
    let prior = state::load(&lab.name).map_err(|e| Error::io("read lab state", e))?;
    super::continuity::check(lab, prior.as_ref())?;
    let plan = plan_against(lab, prior.as_ref())?;
    // What `up` would refuse for lack of a kernel feature, `plan` refuses too (exit 3), and
    // sysctls the kernel would refuse (exit 2).
    super::preflight::sysctls(lab, &loaded.document.source)?;
    super::preflight::check(lab, &plan)?;
    super::netfeat::preflight(&plan)?;
    Ok(plan)
}

/// What `validate --kernel` adds to validation: what `up` of the file as a new lab would be
/// refused for by this kernel, found without building anything and without looking at running
/// labs (sysctls written in a scratch namespace: exit 2; kinds, qdiscs and features the kernel
/// lacks: exit 3). Needs root for the scratch namespace.
pub fn check_against_kernel(loaded: &Loaded) -> Result<()> {
    let lab = &loaded.lab;
    if !nix::unistd::geteuid().is_root() {
        let why = "needs root: the kernel is asked in a scratch namespace (without --kernel, the file alone is checked)";
        return Err(Error::io("validate --kernel", std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)));
    }
    super::preflight::sysctls(lab, &loaded.document.source)?;
    // The plan of a lab built from nothing: every device, qdisc and feature it declares.
    let plan = plan::plan(lab, &crate::observed::Observed::default(), None).map_err(Error::Clash)?;
    super::preflight::check(lab, &plan)?;
    super::netfeat::preflight(&plan)?;
    Ok(())
}

/// What `up` would change to bring the kernel in line with `lab`, given the lab's record:
/// against a running lab and its own topology, how the kernel drifted from what was applied
/// (`doctor` words its fixes with it). Changes nothing.
pub fn plan_against(lab: &Lab, prior: Option<&LabState>) -> Result<Plan> {
    let prior = super::netfeat::with_keys(lab, prior).map_err(|e| Error::io("generate IPsec keys", e))?;
    let session = observe_lab(lab, prior.as_ref())?;
    plan::plan(lab, &session.observed, prior.as_ref()).map_err(Error::Clash)
}

/// Builds the lab, or brings a running one in line with the file.
pub fn up(loaded: &Loaded, opts: &UpOptions) -> Result<UpReport> {
    let started = Instant::now();
    let lab = &loaded.lab;
    let _lock = lock(&lab.name)?;
    let prior = state::load(&lab.name).map_err(|e| Error::io("read lab state", e))?;
    // Another running process's lab is not this run's to change: refused before anything.
    let owner = owner_state(&lab.name, prior.as_ref(), &opts.owner)?;
    // Refused before anything was recorded (a clash, a missing kernel feature): a new lab
    // leaves no directory behind, only its lock was there.
    let refuse = |e: Error| {
        if prior.is_none() {
            let _ = state::remove(&lab.name);
        }
        e
    };
    crate::model::hosts::require_share(lab).map_err(|d| refuse(Error::Invalid(Diagnostics::from(vec![d]).with_source(loaded.document.source.clone()))))?;
    super::continuity::check(lab, prior.as_ref())?;
    // The record plus any IPsec keys generated for this lab (saved with the record below).
    let keyed = super::netfeat::with_keys(lab, prior.as_ref()).map_err(|e| refuse(Error::io("generate IPsec keys", e)))?;
    let t = Instant::now();
    let mut session = observe_lab(lab, keyed.as_ref()).map_err(refuse)?;
    super::session::open_underlay(lab, &mut session).map_err(refuse)?;
    tracing::debug!(target: "vnet::timing", "observe {:?}", t.elapsed());
    let t = Instant::now();
    let plan = plan::plan(lab, &session.observed, keyed.as_ref()).map_err(|c| refuse(Error::Clash(c)))?;
    tracing::debug!(target: "vnet::timing", "plan {:?}", t.elapsed());
    // Before anything changes, /run/netns's mount included.
    super::preflight::sysctls(lab, &loaded.document.source).map_err(refuse)?;
    tracing::debug!(target: "vnet::timing", "preflight: sysctls {:?}", t.elapsed());
    super::preflight::check(lab, &plan).map_err(refuse)?;
    tracing::debug!(target: "vnet::timing", "preflight: kernel features {:?}", t.elapsed());
    super::netfeat::preflight(&plan).map_err(refuse)?;
    tracing::debug!(target: "vnet::timing", "plan and preflight {:?}", t.elapsed());
    if lab.nodes.keys().any(|n| lab.netns_name(n).is_some()) {
        netns::prepare_dir().map_err(|e| refuse(Error::io("prepare /run/netns", e)))?;
    }

    let mut st = keyed.clone().unwrap_or_else(|| LabState::new(&lab.name, lab.isolated_host));
    let mut warnings = Diagnostics::default();
    let owned = take_owner(&lab.name, &mut st, &opts.owner, owner, &mut warnings)?;
    let neigh = neighbour_limits(lab, opts, &mut st, &mut warnings);
    let adopted = super::continuity::adopt(lab, &session.observed, &session.handles, &mut st);
    if plan.is_empty() && prior.as_ref().map(|p| p.phase == Phase::Up).unwrap_or(false) {
        // The kernel is as the file says: the file is now what was last applied (what a
        // setting it dropped is compared with, `plan::resets`).
        let edited = st.topology.as_ref() != Some(&lab.topology);
        if edited {
            st.topology = Some(lab.topology.clone());
        }
        if owned || neigh || adopted || edited {
            state::save(&st).map_err(|e| Error::io("write lab state", e))?;
        }
        return Ok(UpReport { lab: lab.name.clone(), plan, warnings, elapsed: started.elapsed() });
    }

    // Record everything about to be created before creating it.
    st.phase = Phase::Building;
    st.pid = std::process::id();
    st.isolated_host = lab.isolated_host;
    if let Some(f) = &opts.file {
        st.file = Some(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
    }
    record_plan(&mut st, lab, &plan, &session.observed);
    state::save(&st).map_err(|e| Error::io("write lab state", e))?;
    for name in &session.leftovers {
        let _ = netns::unlink(name);
    }

    let ctx = Context { lab, observed: &session.observed, group: st.group };
    let bar = progress_bar(lab, &plan, opts.progress);
    let report = |done: usize, total: usize| {
        if let Some(b) = &bar {
            // Each call may draw: the length only when it changes.
            if b.length() != Some(total as u64) {
                b.set_length(total as u64);
            }
            b.set_position(done as u64);
        }
    };
    let t = Instant::now();
    let mut journal = Journal::default();
    let mut result = apply::run(&ctx, &plan, &mut session.handles, Some(&report), &mut journal);
    tracing::debug!(target: "vnet::timing", "apply {:?}", t.elapsed());

    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Every pass's operations, for the report.
    let mut plan = plan;
    if result.is_ok() {
        note_sysctls(&mut st, &journal);
        if plan::disturbs(lab, &plan, &session.observed) {
            let t = Instant::now();
            result = converge(lab, &mut st, &mut session.handles, &mut journal, &mut plan);
            tracing::debug!(target: "vnet::timing", "converge {:?}", t.elapsed());
        }
    }
    match result {
        Err(mut e) => {
            e.add_rollback_problems(journal.rollback(&mut session.handles));
            // Undoing the journal does not bring back what the kernel removed by itself (the
            // routes an address took with it, a bridge's MTU): the lab as last built is planned
            // against the kernel once more and put back.
            if let Some(p) = prior.as_ref().filter(|p| p.phase == Phase::Up) {
                e.add_rollback_problems(restore(lab, p, &mut session.handles));
            }
            // The neighbour limits as the lab held them before.
            if st.neigh_held != prior.as_ref().and_then(|p| p.neigh_held) {
                let dir = state::lab_dir(&lab.name);
                use crate::probe::neigh::{self, Limits, Table};
                let out = match prior.as_ref().and_then(|p| p.neigh_held) {
                    Some([a, b, c]) => neigh::hold_for_lab(&lab.name, &dir, Table::Arp, Limits { gc_thresh1: a, gc_thresh2: b, gc_thresh3: c }),
                    None => neigh::release_lab(&dir),
                };
                e.add_rollback_problems(out.problems);
            }
            match &prior {
                Some(p) => state::save(p).map_err(|e| Error::io("write lab state", e))?,
                None => state::remove(&lab.name).map_err(|e| Error::io("remove lab state", e))?,
            }
            Err(Error::Apply(e))
        }
        Ok(()) => {
            finish_record(&mut st, lab, &plan, &session.handles)?;
            state::save(&st).map_err(|e| Error::io("write lab state", e))?;
            // The lab is built; return once its bridges forward, so that it carries traffic.
            let t = Instant::now();
            for w in super::settle::bridges(lab, &mut session.handles) {
                warnings.push(crate::model::Diag::warning(w));
            }
            tracing::debug!(target: "vnet::timing", "settle {:?}", t.elapsed());
            Ok(UpReport { lab: lab.name.clone(), plan, warnings, elapsed: started.elapsed() })
        }
    }
}

/// Passes after the first that `up` may make when the kernel changed other state as a side
/// effect of the plan (see `converge`).
const EXTRA_PASSES: usize = 2;

/// After a plan that can make the kernel change other state by itself (`plan::disturbs`: an
/// address removed takes the routes through it, a port leaving a bridge resets the bridge's
/// MTU, ...): observes again and applies what is left, until nothing is, or fails naming what
/// keeps drifting. Each pass's operations are appended to `applied`, its changes to `journal`.
fn converge(lab: &Lab, st: &mut LabState, handles: &mut BTreeMap<String, NsHandle>, journal: &mut Journal, applied: &mut Plan) -> Result<(), ApplyError> {
    for pass in 1..=EXTRA_PASSES + 1 {
        // The record as it will be once the lab is up (namespaces deleted, sysctls restored).
        let mut interim = st.clone();
        finish_state(&mut interim, lab, applied);
        let fail = |what: String| apply::fail_lab(&lab.name, what);
        let observed = super::session::reobserve(lab, Some(&interim), handles).map_err(|e| fail(format!("observing the lab again failed: {e}")))?;
        let next = plan::plan(lab, &observed, Some(&interim)).map_err(|c| fail(format!("planning again found clashes: {}", list(&c))))?;
        if next.is_empty() {
            return Ok(());
        }
        if pass > EXTRA_PASSES {
            let ops: Vec<String> = next.ops().map(|o| o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
            return Err(fail(format!(
                "the kernel does not keep the declared state: after {pass} passes these operations are still needed (the kernel undid them as a side effect of others): {}",
                ops.join("; ")
            )));
        }
        tracing::debug!(target: "vnet::timing", "pass {}: {} more operations after the kernel's side effects", pass + 1, next.len());
        record_plan(st, lab, &next, &observed);
        state::save(st).map_err(|e| fail(format!("write lab state: {e}")))?;
        let ctx = Context { lab, observed: &observed, group: st.group };
        apply::run(&ctx, &next, handles, None, journal)?;
        note_sysctls(st, journal);
        let disturbing = plan::disturbs(lab, &next, &observed);
        applied.steps.extend(next.steps);
        if !disturbing {
            return Ok(());
        }
    }
    Ok(())
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; ")
}

/// Puts the lab as its record says it was last built back after a failed update whose journal
/// was undone: the kernel removed some things by itself (routes with an address, a bridge's MTU
/// with its last port, devices re-created) that the journal cannot bring back. Returns what it
/// could not put back. A multi-host share is not rebuilt from its record (the record holds only
/// the share's nodes, which do not validate alone): its journal's undo is all.
fn restore(lab: &Lab, prior: &LabState, handles: &mut BTreeMap<String, NsHandle>) -> Vec<String> {
    let Some(topo) = prior.topology.as_ref().filter(|_| lab.share.is_none()) else { return Vec::new() };
    let before = match crate::model::load_topology(topo) {
        Ok(l) => l.lab,
        Err(d) => return vec![format!("the lab as last built could not be read back from its record to put it back: {}", d.compact())],
    };
    for pass in 1..=EXTRA_PASSES + 1 {
        let observed = match super::session::reobserve(&before, Some(prior), handles) {
            Ok(o) => o,
            Err(e) => return vec![format!("observing the lab to put it back failed: {e}")],
        };
        let p = match plan::plan(&before, &observed, Some(prior)) {
            Ok(p) => p,
            Err(c) => return vec![format!("putting the lab back found clashes: {}", list(&c))],
        };
        if p.is_empty() {
            return Vec::new();
        }
        if pass > EXTRA_PASSES {
            return p
                .ops()
                .map(|o| format!("still differs from the lab as last built: {}", o.to_string().split_whitespace().collect::<Vec<_>>().join(" ")))
                .collect();
        }
        tracing::debug!("putting lab {} back as last built: {} operations", before.name, p.len());
        let ctx = Context { lab: &before, observed: &observed, group: prior.group };
        if let Err(e) = apply::apply(&ctx, &p, handles, None) {
            let mut out = vec![format!("putting the lab back as last built failed: {}", e.to_string().lines().next().unwrap_or_default())];
            out.extend(e.rollback_problems.iter().cloned());
            return out;
        }
        if !plan::disturbs(&before, &p, &observed) {
            return Vec::new();
        }
    }
    Vec::new()
}

/// Before applying a plan: records everything it is about to create (namespaces, root
/// devices, OVS instances, features) and the value of each sysctl it changes in a namespace
/// that exists already (new namespaces: from the executor's journal, `note_sysctls`).
fn record_plan(st: &mut LabState, lab: &Lab, plan: &Plan, observed: &Observed) {
    for op in plan.ops() {
        match op {
            Op::CreateNetns { node, netns: name, .. } => {
                st.netns.insert(node.clone(), name.clone());
            }
            Op::CreateLink(c) if lab.netns_name(&c.node).is_none() && !st.root_devices.contains(&c.ifname) => {
                st.root_devices.push(c.ifname.clone());
            }
            Op::Ovs { node, ovs_op: plan::ovs::OvsOp::Start } => {
                let dir = crate::ovs::private_dir(&lab.name, node);
                st.ovs.entry(node.clone()).or_insert_with(|| state::OvsRecord { dir, pids: Default::default() });
            }
            Op::SetSysctl { node, key, .. } => {
                if let Some(NsState::Owned(ns) | NsState::Root(ns)) = observed.nodes.get(node) {
                    if let Some(v) = ns.sysctls.get(key) {
                        st.note_sysctl(node, key, v);
                    }
                }
            }
            _ => {}
        }
    }
    super::netfeat::record_before(st, plan, observed);
}

/// The value each sysctl the executor set had before (the only source for namespaces this run
/// created, which nobody observed before), unless an earlier change is already noted.
fn note_sysctls(st: &mut LabState, journal: &Journal) {
    for (node, key, previous) in journal.sysctls() {
        st.note_sysctl(node, key, previous);
    }
}

/// The record of a lab that is up after `plan` was applied.
fn finish_record(st: &mut LabState, lab: &Lab, plan: &Plan, handles: &BTreeMap<String, NsHandle>) -> Result<()> {
    super::netfeat::record_after(st, lab, plan, handles).map_err(|e| Error::io("read attached BPF programs", std::io::Error::other(e)))?;
    finish_state(st, lab, plan);
    st.netns_ids = handles.values().filter_map(|h| Some((h.netns.clone()?, netns::identity(&h.fd).ok()?.1))).collect();
    Ok(())
}

/// Who owns the lab now, as `up` with `wanted` ownership must know it; refuses a lab that
/// another running process owns (unless `Keep`), changing nothing.
fn owner_state(lab: &str, prior: Option<&LabState>, wanted: &Ownership) -> Result<state::owner::OwnerState> {
    use state::owner::OwnerState;
    let me = match wanted {
        Ownership::Process(o) => Some(o),
        _ => None,
    };
    let now = state::owner::state(&state::lab_dir(lab), prior, me);
    // This very process (through a `Lab` it holds): a plain `up` leaves the lab its `Lab`'s,
    // as `Keep` does; only a second `Lab` of the name is refused (flock locks belong to open
    // files, so the owner lock tells it from the first).
    let this_process = |pid: u32, elsewhere: bool| !elsewhere && pid == std::process::id() && matches!(wanted, Ownership::Command);
    match now {
        OwnerState::Alive { pid, elsewhere } if this_process(pid, elsewhere) => Ok(now),
        OwnerState::Alive { pid, elsewhere } if !matches!(wanted, Ownership::Keep) => Err(Error::Owned { lab: lab.to_string(), pid, elsewhere }),
        // A `Lab`'s update of a lab that is not its own any more (removed by name, brought up
        // again by the command line): left alone, as its `down` would.
        OwnerState::None | OwnerState::Gone { .. } if prior.is_some() && me.is_some_and(|o| o.has_claim()) => Err(super::down::not_this_process(lab)),
        s => Ok(s),
    }
}

/// Makes the record say whom the lab belongs to (see `Ownership`); returns whether it changed.
fn take_owner(lab: &str, st: &mut LabState, wanted: &Ownership, now: state::owner::OwnerState, warnings: &mut Diagnostics) -> Result<bool> {
    use state::owner::OwnerState;
    let dir = state::lab_dir(lab);
    match (wanted, now) {
        (Ownership::Keep, _) | (Ownership::Process(_), OwnerState::This) | (Ownership::Command, OwnerState::None) => Ok(false),
        (Ownership::Process(o), _) => {
            o.claim(&dir).map_err(|e| match e.kind() {
                // Claimed by another process since we looked (it holds no record yet).
                std::io::ErrorKind::WouldBlock => match state::owner::state(&dir, None, None) {
                    OwnerState::Alive { pid, elsewhere } => Error::Owned { lab: lab.to_string(), pid, elsewhere },
                    _ => Error::Busy(lab.to_string()),
                },
                _ => Error::io(format!("take the owner lock of lab {lab}"), e),
            })?;
            st.owner_pid = Some(std::process::id());
            st.owner_pidns = state::owner::pid_namespace();
            st.owner_lock = true;
            Ok(true)
        }
        (Ownership::Command, OwnerState::Gone { pid, elsewhere }) => {
            warnings.push(crate::model::Diag::warning(format!(
                "lab {lab} belonged to {}, which is gone: it is now a lab of the command line (removed by `vnet down {lab}`, not by `vnet gc`)",
                OwnerState::describe_pid(pid, elsewhere)
            )));
            st.owner_pid = None;
            st.owner_pidns = None;
            st.owner_lock = false;
            let _ = std::fs::remove_file(dir.join(state::owner::FILE));
            Ok(true)
        }
        // A running owner: this process's own (kept), or another's (refused by `owner_state`
        // already).
        (Ownership::Command, OwnerState::Alive { .. } | OwnerState::This) => Ok(false),
    }
}

/// Warns when the lab can need more neighbour entries than the machine allows, or holds the
/// limits raised for it when asked, in the machine-wide record that every lab and run raising
/// them shares (`probe::neigh::raise`): the last holder to go puts the machine's values back.
/// Returns whether what the lab holds changed.
fn neighbour_limits(lab: &Lab, opts: &UpOptions, st: &mut LabState, warnings: &mut Diagnostics) -> bool {
    use crate::probe::neigh::{self, Limits, Table};
    // The machine's own limits (what they were before any lab raised them).
    let Ok(machine) = neigh::machine_limits(Table::Arp) else { return false };
    let need = crate::model::segments::potential_neighbours(lab);
    let too_small = need as u64 > machine.gc_thresh3;
    let want = match lab.neighbour_limits {
        Some(Some([a, b, c])) => Some(Limits { gc_thresh1: a, gc_thresh2: b, gc_thresh3: c }),
        Some(None) => too_small.then(|| neigh::sized_for(need)),
        None if opts.raise_neigh_limits => too_small.then(|| neigh::sized_for(need)),
        None => None,
    };
    let dir = state::lab_dir(&lab.name);
    let held = want.map(|l| [l.gc_thresh1, l.gc_thresh2, l.gc_thresh3]);
    let changed = held != st.neigh_held;
    if !changed {
        // Held as wanted (the record's holder entry is refreshed all the same: a lost one comes
        // back).
        if let Some(l) = want {
            let out = neigh::hold_for_lab(&lab.name, &dir, Table::Arp, l);
            warn_limits(warnings, &out.problems);
        }
    } else {
        let out = match want {
            Some(l) => neigh::hold_for_lab(&lab.name, &dir, Table::Arp, l),
            None => neigh::release_lab(&dir),
        };
        warn_limits(warnings, &out.problems);
        st.neigh_held = held;
    }
    if want.is_none() && too_small {
        warnings.push(
            crate::model::Diag::warning(format!(
                "lab {} can need up to {need} neighbour (ARP/NDP) entries when its nodes talk to each other, over the machine's limit net.ipv4.neigh.default.gc_thresh3 = {} (one table for all namespaces); traffic will then fail in ways that look like unreachability",
                lab.name, machine.gc_thresh3
            ))
            .help("run `vnet up --raise-neigh-limits` or set `neighbour_limits: auto` in the file (restored at `down`)"),
        );
    }
    changed
}

fn warn_limits(warnings: &mut Diagnostics, problems: &[String]) {
    for p in problems {
        warnings.push(crate::model::Diag::warning(format!("neighbour table limits: {p}")));
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
    st.take_applied(lab);
    st.delete_in = Some(deleters(lab));
    st.daemons = crate::apply::team::running(&lab.name);
    st.ovs = super::ovs::record(&lab.name);
}

/// The fewest nodes whose devices must be deleted explicitly so that every lab device goes:
/// a veth end dies with its peer, so a node whose every device is the peer of a device in an
/// already chosen node needs nothing. Largest nodes first (a star: only the host).
fn deleters(lab: &Lab) -> Vec<String> {
    use std::collections::HashSet;
    let mut nodes: Vec<&crate::model::Node> = lab.nodes.values().collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(n.interfaces.len()));
    let mut covered: HashSet<crate::model::Endpoint> = HashSet::new();
    let mut out = Vec::new();
    // Root-namespace devices are deleted one by one anyway: their peers are covered.
    for n in nodes.iter().filter(|n| lab.netns_name(&n.name).is_none()) {
        covered.extend(n.interfaces.values().filter_map(|i| i.peer.clone()));
    }
    for n in nodes.iter().filter(|n| lab.netns_name(&n.name).is_some()) {
        let uncovered = n.interfaces.values().any(|i| i.name != "lo" && !covered.contains(&crate::model::Endpoint::new(&n.name, &i.name)));
        if uncovered {
            out.push(n.name.clone());
            covered.extend(n.interfaces.values().filter_map(|i| i.peer.clone()));
        }
    }
    out.sort();
    out
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
