//! Running programs inside a node, with `ip netns exec` semantics: the node's network
//! namespace, a private mount namespace with /sys remounted for that network namespace, and
//! the files of `/etc/netns/<name>/` bound over /etc.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::state;

/// Where a node's programs run.
pub struct NodeTarget {
    pub lab: String,
    pub node: String,
    /// `None`: the namespace vnet runs in (a non-isolated `host`).
    pub netns: Option<String>,
}

/// Finds a node of a running lab.
pub fn target(lab: &str, node: &str) -> Result<NodeTarget> {
    let st = state::load(lab).map_err(|e| Error::io("read lab state", e))?.ok_or_else(|| Error::NoSuchLab(lab.to_string()))?;
    if let Some(ns) = st.netns.get(node) {
        return Ok(NodeTarget { lab: lab.into(), node: node.into(), netns: Some(ns.clone()) });
    }
    let in_topology = st.topology.as_ref().map(|t| t.nodes.contains_key(node)).unwrap_or(false);
    if in_topology && node == crate::model::HOST && !st.isolated_host {
        return Ok(NodeTarget { lab: lab.into(), node: node.into(), netns: None });
    }
    Err(Error::NoSuchNode { lab: lab.into(), node: node.into() })
}

/// A `Command` that runs `program` inside the namespace `netns` (as `ip netns exec` would).
/// Files under `/etc/netns/<netns>/` (or, failing that, `/etc/netns/<node>/`) are bound over /etc.
pub fn command_in(netns_name: Option<&str>, node: &str, program: &str) -> Result<Command> {
    let mut cmd = Command::new(program);
    let Some(name) = netns_name else { return Ok(cmd) };
    let fd: OwnedFd = netns::open(name).map_err(|e| Error::io(format!("open namespace {name}"), e))?;
    // Everything the child needs is prepared before fork: no allocation after it.
    let etc_dir = [format!("/etc/netns/{name}"), format!("/etc/netns/{node}")].into_iter().find(|d| std::path::Path::new(d).is_dir()).unwrap_or_default();
    let binds: Vec<(CString, CString)> = match std::fs::read_dir(if etc_dir.is_empty() { "/nonexistent" } else { &etc_dir }) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let f = e.file_name();
                let src = CString::new(format!("{etc_dir}/{}", f.to_string_lossy())).ok()?;
                let dst = CString::new(format!("/etc/{}", f.to_string_lossy())).ok()?;
                Some((src, dst))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let raw = fd.as_raw_fd();
    let sys = CString::new("/sys").unwrap();
    let sysfs = CString::new("sysfs").unwrap();
    let root = CString::new("/").unwrap();
    let none = CString::new("none").unwrap();
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Keep our mounts to ourselves.
            if libc::mount(none.as_ptr(), root.as_ptr(), std::ptr::null(), libc::MS_SLAVE | libc::MS_REC, std::ptr::null()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // /sys shows the network namespace of whoever mounted it.
            libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
            if libc::mount(sysfs.as_ptr(), sys.as_ptr(), sysfs.as_ptr(), 0, std::ptr::null()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (src, dst) in &binds {
                libc::mount(src.as_ptr(), dst.as_ptr(), none.as_ptr(), libc::MS_BIND, std::ptr::null());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// A `Command` running `program` in a node of a running lab.
pub fn command(lab: &str, node: &str, program: &str) -> Result<Command> {
    let t = target(lab, node)?;
    command_in(t.netns.as_deref(), &t.node, program)
}
