//! `down`: remove exactly what the lab owns, found through its record or, when the record is
//! gone, through its marks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kernel::handle;
use crate::kernel::{netns, sysctl};
use crate::model::lab::owner_mark;
use crate::state::{self, LabState, Phase};

use super::root_teardown::RootTeardown;
use super::session::{find_marked, lo_alias};
use super::teardown::{busy_bridges, delete_namespaces};

/// What `down` removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownReport {
    pub lab: String,
    pub namespaces: Vec<String>,
    pub root_devices: Vec<String>,
    pub restored_sysctls: Vec<String>,
    /// Things that could not be removed.
    pub problems: Vec<String>,
    /// The lab belonged to a process that was still running (a test's lab, removed by name
    /// with `vnet down`): its pid, as that process sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_still_running: Option<u32>,
    /// That pid is one of another PID namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub owner_elsewhere: bool,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Removes a lab. A lab with neither a record nor marked objects is an error. A lab that
/// another running process owns (a test's) is removed all the same (it was asked for by name);
/// the report names that process (`owner_still_running`).
pub fn down(lab: &str) -> Result<DownReport> {
    down_as(lab, None)
}

/// Removes a lab this process owns through `owner` (the test library's `Lab`): nothing is
/// removed when it is not its own any more (removed by someone else, then brought up again by
/// another process: `Error::Owned`; gone: `Error::NoSuchLab`).
pub fn down_owned(lab: &str, owner: &state::owner::Owner) -> Result<DownReport> {
    down_as(lab, Some(owner))
}

/// A lab of this process's that someone else removed and brought up again since (the command
/// line, or another process whose owner is gone): its `Lab` leaves it alone.
pub(crate) fn not_this_process(lab: &str) -> Error {
    let why = "removed by someone else and brought up again since: not this process's lab any more; left alone";
    Error::io(format!("lab {lab}"), std::io::Error::other(why))
}

fn down_as(lab: &str, owner: Option<&state::owner::Owner>) -> Result<DownReport> {
    use state::owner::OwnerState;
    let started = Instant::now();
    let _lock = super::up::lock(lab)?;
    // Read once, under the lock: a large lab's record takes milliseconds to parse.
    let st = state::load(lab).map_err(|e| Error::io("read lab state", e))?;
    let still_running = if let Some(me) = owner {
        match state::owner::state(&state::lab_dir(lab), st.as_ref(), Some(me)) {
            OwnerState::This => None,
            OwnerState::Alive { pid, elsewhere } => return Err(Error::Owned { lab: lab.to_string(), pid, elsewhere }),
            _ if st.is_none() => {
                // Removed by someone else (`vnet down` by name); taking the lock made its
                // directory again, which nobody's record is in.
                state::remove(lab).map_err(|e| Error::io("remove lab state", e))?;
                return Err(Error::NoSuchLab(lab.to_string()));
            }
            // Removed by someone else, then brought up again by the command line: not ours.
            _ => return Err(not_this_process(lab)),
        }
    } else {
        match st.as_ref().map(|st| state::owner::state(&state::lab_dir(lab), Some(st), None)) {
            Some(OwnerState::Alive { pid, elsewhere }) => Some((pid, elsewhere)),
            _ => None,
        }
    };
    let (mut report, had_record) = remove_locked(lab, st)?;
    if let Some((pid, elsewhere)) = still_running {
        report.owner_still_running = Some(pid);
        report.owner_elsewhere = elsewhere;
    }
    report.elapsed = started.elapsed();
    let found_nothing = report.namespaces.is_empty() && report.root_devices.is_empty() && report.problems.is_empty();
    if !had_record && found_nothing {
        return Err(Error::NoSuchLab(lab.to_string()));
    }
    Ok(report)
}

/// Removes a lab whose lock the caller holds, with its record (`st`) as read under that lock;
/// also says whether the lab had a record.
pub(crate) fn remove_locked(lab: &str, mut st: Option<LabState>) -> Result<(DownReport, bool)> {
    let mut report = DownReport { lab: lab.to_string(), ..Default::default() };
    if let Some(s) = st.as_mut() {
        s.phase = Phase::Removing;
        s.pid = std::process::id();
        state::save(s).map_err(|e| Error::io("write lab state", e))?;
    }
    let group = st.as_ref().map(|s| s.group).unwrap_or_else(|| state::group_for(lab));

    // The root namespace's devices are found now and deleted beside the namespaces.
    let uses_root = st.as_ref().map(|s| !s.root_devices.is_empty() || !s.isolated_host).unwrap_or(true);
    let root = if uses_root { Some(RootTeardown::find(lab, st.as_ref(), group)?) } else { None };

    // Daemons (teamd) first: a process inside a namespace keeps it alive.
    let recorded = st.as_ref().map(|s| s.daemons.clone()).unwrap_or_default();
    report.problems.extend(crate::apply::team::stop_lab(lab, &recorded));
    report.problems.extend(super::ovs::remove_lab(lab, st.as_ref()));

    let t = Instant::now();
    let (names, delete_in) = match &st {
        Some(s) => owned_namespaces(s, &mut report),
        None => {
            let names = find_marked(lab);
            (names.clone(), names)
        }
    };
    tracing::debug!(target: "vnet::timing", "down: ownership of {} namespaces {:?}", names.len(), t.elapsed());
    let t = Instant::now();
    // Bridges by namespace name (the root's were quietened with the root's devices).
    let bridges: BTreeMap<String, Vec<String>> =
        st.as_ref().map(|s| busy_bridges(s).into_iter().filter_map(|(node, b)| Some((s.netns.get(&node)?.clone(), b))).collect()).unwrap_or_default();
    let (problems, root) = delete_namespaces(&names, &delete_in, group, &bridges, || root.map(RootTeardown::delete));
    if let Some(root) = root.flatten() {
        report.root_devices = root.removed;
        report.problems.extend(root.problems);
    }
    report.problems.extend(problems);
    tracing::debug!(target: "vnet::timing", "down: delete namespaces {:?}", t.elapsed());
    report.namespaces = names;
    report.namespaces.sort();

    // The lab's nftables table in the real root namespace (issue 6).
    if let Some(s) = &st {
        super::netfeat::down_root(s, &mut report.problems);
    }

    // Settings of the real root namespace go back to what they were.
    if let Some(s) = &st {
        if !s.isolated_host {
            if let Some(map) = s.sysctl_restore.get(crate::model::HOST) {
                for (k, v) in map {
                    match sysctl::write(k, v) {
                        Ok(()) => report.restored_sysctls.push(format!("{k}={v}")),
                        Err(e) => report.problems.push(format!("restore sysctl {k}: {e}")),
                    }
                }
            }
        }
        // Raised by an older vnet, with the values in the lab's record.
        for (k, v) in &s.host_restore {
            // Another lab (or a person) may have changed the limit since: leave theirs.
            let current = sysctl::read(k).ok();
            if current.as_deref().map(str::trim) != s.host_set.get(k).map(|x| x.trim()) {
                report.problems.push(format!("{k} was changed since the lab set it; left at {}", current.unwrap_or_default()));
                continue;
            }
            match sysctl::write(k, v) {
                Ok(()) => report.restored_sysctls.push(format!("{k}={v}")),
                Err(e) => report.problems.push(format!("restore {k}: {e}")),
            }
        }
    }
    // The neighbour limits the lab held raised go down to what other labs and runs still hold,
    // or back to the machine's own values.
    let out = crate::probe::neigh::release_lab(&state::lab_dir(lab));
    report.restored_sysctls.extend(out.written_values());
    report.problems.extend(out.problems);
    state::remove(lab).map_err(|e| Error::io("remove lab state", e))?;
    Ok((report, st.is_some()))
}

/// The recorded namespaces that are provably the lab's (same namespace inode as recorded, or
/// the lab's mark on `lo`), and those of them whose devices need explicit deletion.
fn owned_namespaces(s: &LabState, report: &mut DownReport) -> (Vec<String>, Vec<String>) {
    let mut owned = Vec::new();
    let mut verify = Vec::new();
    for (node, name) in &s.netns {
        if !netns::exists(name) {
            continue;
        }
        if !netns::is_mounted(name) {
            // A name reserved by an `up` killed before it mounted the namespace.
            let _ = netns::unlink(name);
            continue;
        }
        let same = s
            .netns_ids
            .get(name)
            .is_some_and(|ino| std::fs::metadata(netns::netns_path(name)).map(|m| std::os::unix::fs::MetadataExt::ino(&m) == *ino).unwrap_or(false));
        if same {
            owned.push((node.clone(), name.clone()));
        } else {
            verify.push((node.clone(), name.clone()));
        }
    }
    let mark = owner_mark(&s.lab);
    for ((node, name), r) in verify.iter().zip(handle::open_many(&verify)) {
        match r.ok().and_then(|mut h| lo_alias(&mut h)) {
            Some(a) if a == mark => owned.push((node.clone(), name.clone())),
            _ => report.problems.push(format!("namespace {name} is recorded by the lab but does not carry its mark; left untouched")),
        }
    }
    // Without the knowledge of which nodes hold devices (old records), delete everywhere.
    let none = Vec::new();
    let precise: Option<&Vec<String>> = match &s.delete_in {
        Some(d) => Some(d),
        None if s.topology.as_ref().is_some_and(|t| t.nodes.is_empty()) => Some(&none),
        None => None,
    };
    let delete_in = owned
        .iter()
        .filter(|(node, _)| precise.is_none_or(|d| d.contains(node)) || !s.netns_ids.contains_key(&s.netns[node]))
        .map(|(_, n)| n.clone())
        .collect();
    (owned.into_iter().map(|(_, n)| n).collect(), delete_in)
}
