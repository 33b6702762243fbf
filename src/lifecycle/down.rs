//! `down`: remove exactly what the lab owns, found through its record or, when the record is
//! gone, through its marks.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kernel::handle;
use crate::kernel::{msg, observe, sysctl};
use crate::model::lab::owner_mark;
use crate::state::{self, Phase};

use super::session::{delete_namespaces, find_marked};

/// What `down` removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownReport {
    pub lab: String,
    pub namespaces: Vec<String>,
    pub root_devices: Vec<String>,
    pub restored_sysctls: Vec<String>,
    /// Things that could not be removed.
    pub problems: Vec<String>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Removes a lab. A lab with neither a record nor marked objects is an error.
pub fn down(lab: &str) -> Result<DownReport> {
    let started = Instant::now();
    let _lock = super::up::lock(lab)?;
    let (mut report, had_record) = remove_locked(lab)?;
    report.elapsed = started.elapsed();
    let found_nothing = report.namespaces.is_empty() && report.root_devices.is_empty() && report.problems.is_empty();
    if !had_record && found_nothing {
        return Err(Error::NoSuchLab(lab.to_string()));
    }
    Ok(report)
}

/// Removes a lab whose lock the caller holds; also says whether the lab had a record.
pub(crate) fn remove_locked(lab: &str) -> Result<(DownReport, bool)> {
    let mut report = DownReport { lab: lab.to_string(), ..Default::default() };
    let st = state::load(lab).map_err(|e| Error::io("read lab state", e))?;
    let mark = owner_mark(lab);
    if let Some(mut s) = st.clone() {
        s.phase = Phase::Removing;
        s.pid = std::process::id();
        state::save(&s).map_err(|e| Error::io("write lab state", e))?;
    }
    let group = st.as_ref().map(|s| s.group).unwrap_or_else(|| state::group_for(lab));

    // Devices in the real root namespace: only those carrying the mark.
    let mut root = handle::open_root("host").map_err(|e| Error::io("open a netlink socket", e))?;
    let links = observe::links(&mut root.nl).map_err(|e| Error::kernel("list devices", e))?;
    for l in links.iter().filter(|l| l.alias.as_deref() == Some(mark.as_str())) {
        match root.nl.request(msg::del_link(l.ifindex), 0) {
            Ok(_) => report.root_devices.push(l.name.clone()),
            Err(e) if e.errno == libc::ENODEV => report.root_devices.push(l.name.clone()),
            Err(e) => report.problems.push(format!("delete device {}: {e}", l.name)),
        }
    }
    drop(root);

    // Namespaces: recorded ones that still carry the mark, plus marked ones not recorded.
    let marked = find_marked(lab);
    let mut names: Vec<String> = marked.clone();
    if let Some(s) = &st {
        for n in s.netns.values() {
            if names.contains(n) {
                continue;
            }
            if crate::kernel::netns::exists(n) && !crate::kernel::netns::is_mounted(n) {
                // A name reserved by an `up` killed before it mounted the namespace.
                let _ = crate::kernel::netns::unlink(n);
            } else if crate::kernel::netns::exists(n) {
                report.problems.push(format!("namespace {n} is recorded by the lab but does not carry its mark; left untouched"));
            }
        }
    }
    report.problems.extend(delete_namespaces(&names, group));
    names.sort();
    report.namespaces = names;

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
        for (k, v) in &s.host_restore {
            match sysctl::write(k, v) {
                Ok(()) => report.restored_sysctls.push(format!("{k}={v}")),
                Err(e) => report.problems.push(format!("restore {k}: {e}")),
            }
        }
    }
    state::remove(lab).map_err(|e| Error::io("remove lab state", e))?;
    Ok((report, st.is_some()))
}
