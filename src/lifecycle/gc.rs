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

pub fn gc(dry_run: bool) -> Result<GcReport> {
    let mut report = GcReport { dry_run, ..Default::default() };
    let mut live_labs = Vec::new();
    for lab in state::list() {
        if state::is_locked(&lab) {
            live_labs.push(lab);
            continue; // someone is working on it right now
        }
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
        match abandoned(&st) {
            Some(_why) => {
                report.labs.push(lab.clone());
                if !dry_run {
                    let _lock = match super::up::lock(&lab) {
                        Ok(l) => l,
                        Err(_) => continue,
                    };
                    match super::down::remove_locked(&lab) {
                        Ok((r, _)) => report.problems.extend(r.problems),
                        Err(e) => report.problems.push(format!("lab {lab}: {e}")),
                    }
                }
            }
            None => live_labs.push(lab),
        }
    }

    // Marked namespaces that no live lab records.
    let recorded: Vec<String> = live_labs
        .iter()
        .filter_map(|l| state::load(l).ok().flatten())
        .flat_map(|s| s.netns.into_values())
        .collect();
    let mut orphans: Vec<(String, String)> = Vec::new();
    for (name, mark) in marked_namespaces() {
        let lab = mark.trim_start_matches("vnet:").to_string();
        if recorded.contains(&name) || (live_labs.contains(&lab) && state::is_locked(&lab)) {
            continue;
        }
        orphans.push((name, lab));
    }
    for (name, lab) in &orphans {
        report.namespaces.push(name.clone());
        if !dry_run {
            let one = std::slice::from_ref(name);
            report.problems.extend(delete_namespaces(one, one, state::group_for(lab)));
        }
    }

    // Open vSwitch: private instances and shared rows of labs that are not live.
    let (ovs, problems) = super::ovs::gc(&live_labs, dry_run);
    report.ovs = ovs;
    report.problems.extend(problems);

    // Marked devices in the root namespace whose lab is not live.
    let mut root = handle::open_root("host").map_err(|e| Error::io("open a netlink socket", e))?;
    let links = observe::links(&mut root.nl).map_err(|e| Error::kernel("list devices", e))?;
    for l in links {
        let Some(lab) = l.alias.as_deref().and_then(|a| a.strip_prefix("vnet:")) else { continue };
        if live_labs.iter().any(|x| x == lab) {
            continue;
        }
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
