//! `gc`: remove what labs left behind when their owner vanished: an `up` or `down` killed
//! midway, a test process that died with its lab, a lost record. Only objects carrying a
//! vnet mark are ever touched.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::{handle, msg, observe};
use crate::state::{self, Phase};

use super::session::{delete_namespaces, marked_namespaces};

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
    pub problems: Vec<String>,
}

/// Why a lab with a record counts as abandoned, if it does.
fn abandoned(st: &state::LabState) -> Option<String> {
    match st.phase {
        Phase::Building => return Some(format!("`up` (pid {}) stopped before finishing", st.pid)),
        Phase::Removing => return Some(format!("`down` (pid {}) stopped before finishing", st.pid)),
        Phase::Up => {}
    }
    match st.owner_pid {
        Some(pid) if !state::pid_alive(pid) => Some(format!("its owner (pid {pid}) is gone")),
        _ => None,
    }
}

/// The lab's lock, when no record of the lab claims the object (`claims`). Holding the lock,
/// nobody can be creating the object right now (`up` records what it will create before
/// creating it, under the same lock), so an unclaimed marked object is an orphan.
fn orphan_lock(lab: &str, claims: impl Fn(&state::LabState) -> bool) -> Option<state::LabLock> {
    // Claimed objects of live labs are the common case: decided without taking their lock, so
    // gc never makes a concurrent `up` or `down` of a live lab report it busy.
    if let Ok(Some(st)) = state::load(lab) {
        if claims(&st) {
            return None;
        }
    }
    let lock = state::lock(lab).ok()?;
    match state::load(lab) {
        Ok(Some(st)) if claims(&st) => return None,
        Err(_) => return None,
        // Under the lock, a directory without a record is nobody's: the lab's own `down` may
        // have removed it just before we created it again by locking.
        Ok(None) => {
            let _ = state::remove(lab);
        }
        Ok(Some(_)) => {}
    }
    Some(lock)
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
        let Ok(_lock) = state::lock_wait(&lab, std::time::Duration::from_secs(10)) else { continue };
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
                match super::down::remove_locked(&lab) {
                    Ok((r, _)) => report.problems.extend(r.problems),
                    Err(e) => report.problems.push(format!("lab {lab}: {e}")),
                }
            }
        }
    }

    // Marked namespaces that no live lab records. A lab may start while we scan: each
    // candidate is checked again, under the lab's lock, right before it is deleted.
    for (name, mark) in marked_namespaces() {
        let lab = mark.trim_start_matches("vnet:").to_string();
        let Some(_lock) = orphan_lock(&lab, |st| st.netns.values().any(|n| n == &name)) else { continue };
        if !crate::kernel::netns::is_mounted(&name) {
            continue; // removed meanwhile by its lab's own `down`
        }
        report.namespaces.push(name.clone());
        if !dry_run {
            let one = std::slice::from_ref(&name);
            report.problems.extend(delete_namespaces(one, one, state::group_for(&lab)));
        }
    }

    // Open vSwitch: private instances and shared rows of labs that are not live.
    // Live: every lab with a record, but those just found abandoned.
    let live_labs: Vec<String> = state::list().into_iter().filter(|l| !report.labs.contains(l)).collect();
    let (ovs, problems) = super::ovs::gc(&live_labs, dry_run);
    report.ovs = ovs;
    report.problems.extend(problems);

    // Marked devices in the root namespace whose lab is not live.
    let mut root = handle::open_root("host").map_err(|e| Error::io("open a netlink socket", e))?;
    let links = observe::links(&mut root.nl).map_err(|e| Error::kernel("list devices", e))?;
    for l in links {
        let Some(lab) = l.alias.as_deref().and_then(|a| a.strip_prefix("vnet:")) else { continue };
        let Some(_lock) = orphan_lock(lab, |st| st.root_devices.contains(&l.name)) else { continue };
        report.root_devices.push(l.name.clone());
        if !dry_run {
            if let Err(e) = root.nl.request(msg::del_link(l.ifindex), 0) {
                if e.errno != libc::ENODEV {
                    report.problems.push(format!("delete device {}: {e}", l.name));
                }
            }
        }
    }
    Ok(report)
}
