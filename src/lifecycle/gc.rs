//! `gc`: remove what labs left behind when their owner vanished: an `up` or `down` killed
//! midway, a test process that died with its lab, a lost record. Only objects carrying a
//! vnet mark are ever touched.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::{handle, observe};
use crate::observed::ObservedLink;
use crate::state::{self, Phase};

use super::root_teardown::root_deletes;
use super::session::marked_namespaces;
use super::teardown::delete_namespaces;

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Labs whose record says they were abandoned (and were removed with `down`).
    pub labs: Vec<String>,
    /// Marked namespaces no record accounts for.
    pub namespaces: Vec<String>,
    /// Marked root-namespace devices no record accounts for.
    pub root_devices: Vec<String>,
    /// Open vSwitch daemons and rows of labs that are not live.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ovs: Vec<String>,
    /// What killed benchmark runs left: their baseline namespaces and raised limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub benchmarks: Vec<String>,
    pub problems: Vec<String>,
}

/// Why a lab with a record counts as abandoned, if it does.
fn abandoned(st: &state::LabState) -> Option<String> {
    match st.phase {
        Phase::Building => return Some(format!("`up` (pid {}) stopped before finishing", st.pid)),
        Phase::Removing => return Some(format!("`down` (pid {}) stopped before finishing", st.pid)),
        Phase::Up => {}
    }
    // The owner's lock on the record directory's `owner` file, released by the kernel when the
    // owner dies (a pid alone cannot tell: pid 1 of a PID namespace, a reused pid).
    match state::owner::state(&state::lab_dir(&st.lab), Some(st), None) {
        state::owner::OwnerState::Gone { pid, elsewhere } => Some(format!("its owner ({}) is gone", state::owner::OwnerState::describe_pid(pid, elsewhere))),
        _ => None,
    }
}

/// Decides whether an object marked by `lab` is an orphan: no record of the lab claims it
/// (`claims`). Holding the lab's lock, nobody can be creating the object right now (`up`
/// records what it will create before creating it, under the same lock). A lab without a
/// directory has no `up` under way and no lock to take: gc never makes one (it would appear
/// again just after the lab's own `down` removed it). `None`: not an orphan, or busy.
fn orphan_lock(lab: &str, claims: impl Fn(&state::LabState) -> bool) -> Option<Orphan> {
    // A lab of the same name recorded in another run directory: that directory's gc judges it.
    if state::run_dirs::claimed_elsewhere(lab) {
        return None;
    }
    // Claimed objects of live labs are the common case: decided without taking their lock, so
    // gc never makes a concurrent `up` or `down` of a live lab report it busy.
    if let Ok(Some(st)) = state::load(lab) {
        if claims(&st) {
            return None;
        }
    }
    let lock = state::lock_existing(lab).ok()?;
    match state::load(lab) {
        Ok(Some(st)) if claims(&st) => return None,
        Err(_) => return None,
        // Under the lock, a directory without a record is nobody's (`up` killed before its
        // first write).
        Ok(None) if lock.is_some() => {
            let _ = state::remove(lab);
        }
        Ok(_) => {}
    }
    Some(Orphan { _lock: lock })
}

/// Held while an orphan is removed: the lab's lock, if the lab still had a directory.
struct Orphan {
    _lock: Option<state::LabLock>,
}

pub fn gc(dry_run: bool) -> Result<GcReport> {
    let mut report = GcReport { dry_run, ..Default::default() };
    for lab in state::list() {
        // Only labs whose record looks abandoned are locked (then looked at again under the
        // lock): a live lab's lock is never taken, so its own commands never find it busy.
        match state::load(&lab) {
            Ok(Some(st)) if abandoned(&st).is_none() => continue,
            _ => {}
        }
        // Its holder is an `up` still running (then it is not abandoned after all) or another
        // gc/down removing it: wait for it rather than report the lab as left alone.
        // Gone meanwhile (its own `down`, another gc): nothing to do.
        let Ok(Some(_lock)) = state::lock_wait(&lab, std::time::Duration::from_secs(10)) else { continue };
        let st = match state::load(&lab) {
            Ok(Some(s)) => s,
            Ok(None) => {
                // A directory without a record (killed before the first write): only a lock file.
                if !dry_run {
                    let _ = state::remove(&lab);
                }
                continue;
            }
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        if abandoned(&st).is_some() {
            report.labs.push(lab.clone());
            if !dry_run {
                match super::down::remove_locked(&lab, Some(st)) {
                    Ok((r, _)) => report.problems.extend(r.problems),
                    Err(e) => report.problems.push(format!("lab {lab}: {e}")),
                }
            }
        }
    }

    // Marked namespaces that no live lab records. Each record is read once (a 2000-node lab's
    // is a megabyte); a lab may start while we scan: the candidates of each lab are checked
    // again, under its lock, right before they are deleted (together: one teardown per lab).
    let mut claimed: HashSet<String> = HashSet::new();
    for lab in state::list() {
        if let Ok(Some(st)) = state::load(&lab) {
            claimed.extend(st.netns.into_values());
        }
    }
    let mut by_lab: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, mark) in marked_namespaces() {
        if !claimed.contains(&name) {
            by_lab.entry(mark.trim_start_matches("vnet:").to_string()).or_default().push(name);
        }
    }
    for (lab, names) in by_lab {
        // Claimed meanwhile (the lab's `up` recorded them after our first read): decided
        // without its lock, as for every live lab.
        let claims_all = |st: &state::LabState| names.iter().all(|n| st.netns.values().any(|x| x == n));
        let Some(_lock) = orphan_lock(&lab, claims_all) else { continue };
        let st = state::load(&lab).ok().flatten();
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !st.as_ref().is_some_and(|s| s.netns.values().any(|x| x == n)))
            // Not removed meanwhile by its lab's own `down`.
            .filter(|n| crate::kernel::netns::is_mounted(n))
            .collect();
        report.namespaces.extend(names.iter().cloned());
        if !dry_run && !names.is_empty() {
            report.problems.extend(delete_namespaces(&names, &names, state::group_for(&lab), &Default::default(), || ()).0);
        }
    }

    // Open vSwitch: private instances and shared rows of labs that are not live.
    // Live: every lab with a record, but those just found abandoned.
    // Asked when each object is looked at, not from a list taken earlier: a lab brought up
    // meanwhile records itself before it starts any daemon or adds any row.
    let abandoned = report.labs.clone();
    let live = |l: &str| (!abandoned.iter().any(|a| a == l) && matches!(state::load(l), Ok(Some(_)) | Err(_))) || state::run_dirs::claimed_elsewhere(l);
    let (ovs, problems) = super::ovs::gc(live, dry_run);
    report.ovs = ovs;
    report.problems.extend(problems);
    let (benchmarks, problems) = benchmarks(dry_run);
    report.benchmarks = benchmarks;
    report.problems.extend(problems);

    // Marked devices in the root namespace whose lab is not live.
    let mut root = handle::open_root("host").map_err(|e| Error::io("open a netlink socket", e))?;
    let links = observe::links(&mut root.nl).map_err(|e| Error::kernel("list devices", e))?;
    // By lab: one lock each, and one group delete where the lab's group holds only orphans.
    let mut by_lab: BTreeMap<&str, Vec<&ObservedLink>> = BTreeMap::new();
    for l in &links {
        if let Some(lab) = l.alias.as_deref().and_then(|a| a.strip_prefix("vnet:")) {
            by_lab.entry(lab).or_default().push(l);
        }
    }
    for (lab, marked) in by_lab {
        let Some(_lock) = orphan_lock(lab, |st| marked.iter().all(|l| st.root_devices.contains(&l.name))) else { continue };
        // Under the lock: what a record (if any) does not claim.
        let st = state::load(lab).ok().flatten();
        let orphans: Vec<&ObservedLink> = marked.into_iter().filter(|l| st.as_ref().is_none_or(|s| !s.root_devices.contains(&l.name))).collect();
        report.root_devices.extend(orphans.iter().map(|l| l.name.clone()));
        if !dry_run {
            let group = state::group_for(lab);
            let ifindexes: HashSet<u32> = orphans.iter().map(|o| o.ifindex).collect();
            let deletes = root_deletes(&links, group, |l| ifindexes.contains(&l.ifindex));
            report.problems.extend(super::root_teardown::delete(&mut root, group, deletes, &[]).problems);
        }
    }
    Ok(report)
}

/// Undoes what benchmark runs whose process is gone left behind: the baseline namespaces
/// their record names (exact names; they carry no mark) and the neighbour limits a killed run
/// left raised (only where the value is still the one it set). Returns what was (or would
/// be) done, and problems.
pub fn benchmarks(dry_run: bool) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for r in state::bench::list().into_iter().filter(|r| !state::pid_alive(r.pid)) {
        use crate::kernel::netns;
        if let Some(g) = r.baseline_pgid {
            if !dry_run {
                stop_baseline(g);
            }
        }
        let names: Vec<String> = r.namespaces.iter().filter(|n| netns::is_mounted(n)).cloned().collect();
        // `ip netns add` killed between creating the name and mounting the namespace on it.
        let placeholders: Vec<&String> = r.namespaces.iter().filter(|n| netns::exists(n) && !netns::is_mounted(n)).collect();
        if !names.is_empty() || !placeholders.is_empty() {
            done.push(format!("benchmark (pid {}): {} baseline namespaces", r.pid, names.len() + placeholders.len()));
            if !dry_run {
                problems.extend(delete_namespaces(&names, &[], 0, &Default::default(), || ()).0);
                for n in placeholders {
                    if let Err(e) = netns::unlink(n) {
                        problems.push(format!("remove {n}: {e}"));
                    }
                }
            }
        }
        // Its generated files, only where the record names a benchmark directory.
        if let Some(dir) = r.scratch.as_ref().filter(|d| is_bench_scratch(d) && d.exists()) {
            done.push(format!("benchmark (pid {}): files in {}", r.pid, dir.display()));
            if !dry_run {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    problems.push(format!("remove {}: {e}", dir.display()));
                }
            }
        }
        if !dry_run {
            if let Err(e) = state::bench::remove(r.pid) {
                problems.push(format!("remove the record of benchmark {}: {e}", r.pid));
            }
        }
    }
    let (restored, trouble) = crate::probe::neigh::recover(dry_run);
    done.extend(restored);
    problems.extend(trouble);
    (done, problems)
}

/// A directory `vnet bench` makes: `vnet-bench-*` directly under the temporary directory.
fn is_bench_scratch(dir: &std::path::Path) -> bool {
    dir.parent() == Some(std::env::temp_dir().as_path()) && dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vnet-bench-"))
}

/// Stops a killed benchmark's iproute2 build (still adding namespaces), when the group's
/// leader is still the benchmark's shell (its command line names the benchmark directory).
fn stop_baseline(pgid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("vnet-bench-") {
        return;
    }
    let g = -(pgid as libc::pid_t);
    unsafe { libc::kill(g, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while unsafe { libc::kill(g, 0) } == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::is_bench_scratch;

    #[test]
    fn only_benchmark_directories_under_the_temporary_directory_are_removed() {
        let tmp = std::env::temp_dir();
        assert!(is_bench_scratch(&tmp.join("vnet-bench-star60-123")));
        assert!(!is_bench_scratch(&tmp.join("other")));
        assert!(!is_bench_scratch(&tmp.join("x").join("vnet-bench-star60-123")));
        assert!(!is_bench_scratch(std::path::Path::new("/etc/vnet-bench-x")));
    }
}
