//! The record of a running `vnet bench`: the namespaces its iproute2 baselines create (which
//! carry no vnet mark). Written before they exist, so that
//! `gc` (or the next benchmark) can undo exactly them if the benchmark is killed.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    pub pid: u32,
    /// Exact names of the baseline namespaces that exist or are about to.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Process group of the iproute2 build running now (its leader's command line names the
    /// benchmark's directory, `vnet-bench-`): stopped by `gc` before the names are removed.
    #[serde(default)]
    pub baseline_pgid: Option<u32>,
    /// The run's directory of generated files (`vnet-bench-*` under the temporary directory).
    #[serde(default)]
    pub scratch: Option<PathBuf>,
}

/// Beside the lab records, in a directory no lab name can take (names start with a letter).
pub fn dir() -> PathBuf {
    super::run_dir().join(".bench")
}

/// Writes the record atomically.
pub fn save(r: &BenchRecord) -> io::Result<()> {
    save_in(&dir(), r)
}

/// Removes the record of `pid` (and the directory once empty).
pub fn remove(pid: u32) -> io::Result<()> {
    remove_in(&dir(), pid)
}

/// Every record on disk (unreadable ones are skipped).
pub fn list() -> Vec<BenchRecord> {
    list_in(&dir())
}

fn save_in(dir: &Path, r: &BenchRecord) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{}.tmp", r.pid));
    std::fs::write(&tmp, serde_json::to_vec_pretty(r).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, dir.join(format!("{}.json", r.pid)))
}

fn remove_in(dir: &Path, pid: u32) -> io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{pid}.json"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn list_in(dir: &Path) -> Vec<BenchRecord> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<BenchRecord> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by_key(|r| r.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_leave_no_directory() {
        let tmp = std::env::temp_dir().join(format!("vnet-bench-record-{}", std::process::id()));
        let dir = tmp.join(".bench");
        let r = BenchRecord { pid: 4242, namespaces: vec!["ib-star10-4242-n1".into()], ..Default::default() };
        save_in(&dir, &r).unwrap();
        assert_eq!(list_in(&dir), vec![r]);
        remove_in(&dir, 4242).unwrap();
        assert!(list_in(&dir).is_empty());
        assert!(!dir.exists());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
