//! Attachment records: one small JSON file per (network, container, interface) under the state
//! directory, written when ADD succeeds and removed by DEL. GC compares them with the runtime's
//! list of valid attachments; DEL after a reboot finds what ADD made (and which IPAM to
//! release) even when the namespace is gone. A per-network lock serializes ADD, DEL and GC.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What ADD made for one attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub kind: String,
    /// The host end of a veth pair (bridge kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
    /// The configuration ADD received (replayed for IPAM DEL by GC).
    pub config: String,
    /// The result ADD returned.
    pub result: serde_json::Value,
}

fn network_dir(state_dir: &Path, network: &str) -> PathBuf {
    state_dir.join(network)
}

fn file(state_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    // Neither a container ID nor an interface name may contain `:`.
    network_dir(state_dir, network).join(format!("{container_id}:{ifname}.json"))
}

/// An exclusive lock on a network's records, released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}

/// Waits for the network's lock.
pub fn lock(state_dir: &Path, network: &str) -> io::Result<Lock> {
    let dir = network_dir(state_dir, network);
    std::fs::create_dir_all(&dir)?;
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
    loop {
        // SAFETY: the fd is open for the call.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Lock { _file: f });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes a record atomically.
pub fn save(state_dir: &Path, r: &Record) -> io::Result<()> {
    let p = file(state_dir, &r.network, &r.container_id, &r.ifname);
    std::fs::create_dir_all(p.parent().expect("record has a directory"))?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(r).map_err(io::Error::other)?)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, &p)
}

pub fn load(state_dir: &Path, network: &str, container_id: &str, ifname: &str) -> io::Result<Option<Record>> {
    match std::fs::read(file(state_dir, network, container_id, ifname)) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn remove(state_dir: &Path, network: &str, container_id: &str, ifname: &str) -> io::Result<()> {
    match std::fs::remove_file(file(state_dir, network, container_id, ifname)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Every record of a network (unreadable files are reported, not skipped silently).
pub fn list(state_dir: &Path, network: &str) -> (Vec<Record>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let Ok(rd) = std::fs::read_dir(network_dir(state_dir, network)) else {
        return (out, problems);
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string())) {
            Ok(r) => out.push(r),
            Err(why) => problems.push(format!("{}: {why}", p.display())),
        }
    }
    out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = std::env::temp_dir().join(format!("vnet-cni-store-{}", std::process::id()));
        let r = Record {
            network: "n1".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            kind: "bridge".into(),
            host_ifname: Some("veth0123abcd".into()),
            config: "{}".into(),
            result: serde_json::json!({"cniVersion": "1.1.0"}),
        };
        let _l = lock(&dir, "n1").unwrap();
        save(&dir, &r).unwrap();
        assert_eq!(load(&dir, "n1", "c1", "eth0").unwrap(), Some(r.clone()));
        assert_eq!(list(&dir, "n1").0, vec![r]);
        remove(&dir, "n1", "c1", "eth0").unwrap();
        remove(&dir, "n1", "c1", "eth0").unwrap();
        assert!(load(&dir, "n1", "c1", "eth0").unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
