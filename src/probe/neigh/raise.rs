//! Raising the machine's neighbour limits for a run, and putting them back — also after the
//! run is killed. Runs that raise take turns under one machine-wide lock; before it writes, a
//! run leaves a journal beside the lock naming each limit's value before and the value it sets.
//! Whoever takes the lock next (or `vnet gc`) and finds a journal knows its writer died
//! without restoring, and restores first: otherwise the next run would take the dead run's
//! values for the machine's own and put those "back".

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{limits, stats, write_limit, Table};

/// Limits raised for a run; dropping it puts back the previous values (only where nobody
/// changed them meanwhile), also when the run fails or panics.
pub struct Raised {
    saved: Vec<Change>,
    /// Held while raised: runs that raise the limits take turns, so that none restores values
    /// another one set.
    _lock: Option<std::fs::File>,
}

/// One limit a run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    /// The sysctl file.
    path: PathBuf,
    /// Its key, for messages.
    key: String,
    before: u64,
    set: u64,
}

/// What a run that raised the limits is about to change (or changed).
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    pid: u32,
    changes: Vec<Change>,
}

impl Raised {
    /// The (key, previous value) pairs.
    pub fn previous(&self) -> Vec<(String, String)> {
        self.saved.iter().map(|c| (c.key.clone(), c.before.to_string())).collect()
    }

    /// Restores now and reports what could not be restored.
    pub fn restore(mut self) -> Vec<String> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Vec<String> {
        let (_, problems) = put_back(std::mem::take(&mut self.saved), false);
        remove_journal(&journal_path());
        problems
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        for p in self.restore_inner() {
            eprintln!("vnet: {p}");
        }
    }
}

/// Where the lock and journal live: outside the labs' run directory, which must be empty
/// when no lab exists.
fn lock_dir() -> PathBuf {
    if Path::new("/run/lock").is_dir() {
        PathBuf::from("/run/lock")
    } else {
        std::env::temp_dir()
    }
}

fn journal_path() -> PathBuf {
    lock_dir().join("vnet-neigh-limits.json")
}

/// Takes the machine-wide lock of runs that raise the limits (`wait`: for the previous run;
/// else `None` while another run holds it).
fn lock(wait: bool) -> io::Result<Option<std::fs::File>> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(lock_dir().join("vnet-neigh-limits.lock"))?;
    let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
    loop {
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(Some(f));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Raises the limits of `t` so that `needed` more entries fit (never lowers them). First puts
/// back what a killed run left raised.
pub fn raise(t: Table, needed: u64) -> io::Result<Raised> {
    let lock = lock(true)?;
    let (_, problems) = recover_locked(&journal_path(), false);
    for p in problems {
        eprintln!("vnet: {p}");
    }
    let cur = limits(t)?;
    let st = stats(t)?;
    let target = st.entries + needed + needed / 4 + 1024;
    // Highest first, so that 1 <= 2 <= 3 holds at every step.
    let changes: Vec<(u8, Change)> = [(3u8, cur.gc_thresh3), (2, cur.gc_thresh2), (1, cur.gc_thresh1)]
        .into_iter()
        .map(|(n, before)| {
            let set = if n == 1 { before.max(target / 2) } else { before.max(target) };
            (n, Change { path: Path::new(t.sysctl_dir()).join(format!("gc_thresh{n}")), key: t.key(n), before, set })
        })
        .filter(|(_, c)| c.set != c.before)
        .collect();
    let mut r = Raised { saved: Vec::new(), _lock: lock };
    if changes.is_empty() {
        return Ok(r);
    }
    write_journal(&journal_path(), &Journal { pid: std::process::id(), changes: changes.iter().map(|(_, c)| c.clone()).collect() })?;
    for (n, c) in changes {
        r.saved.push(c.clone());
        write_limit(t, n, c.set)?;
    }
    Ok(r)
}

/// Puts back what a run killed while it had the limits raised left (found by its journal).
/// Does nothing while another run holds them raised (it restores them itself), or from a
/// namespace that cannot see them (not the machine's first). Returns what was (or, with
/// `dry_run`, would be) done, and problems.
pub fn recover(dry_run: bool) -> (Vec<String>, Vec<String>) {
    if !super::limits_visible() {
        return (Vec::new(), Vec::new());
    }
    match lock(false) {
        Ok(Some(_lock)) => recover_locked(&journal_path(), dry_run),
        Ok(None) => (Vec::new(), Vec::new()),
        Err(e) => (Vec::new(), vec![format!("take the neighbour limits' lock: {e}")]),
    }
}

fn recover_locked(journal: &Path, dry_run: bool) -> (Vec<String>, Vec<String>) {
    let j: Journal = match std::fs::read(journal) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(j) => j,
            Err(e) => {
                if !dry_run {
                    remove_journal(journal);
                }
                return (Vec::new(), vec![format!("{}: unreadable ({e}); removed", journal.display())]);
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(e) => return (Vec::new(), vec![format!("read {}: {e}", journal.display())]),
    };
    let (done, problems) = put_back(j.changes, dry_run);
    if !dry_run {
        remove_journal(journal);
    }
    let done = done.into_iter().map(|d| format!("neighbour limits raised by killed run (pid {}): {d}", j.pid)).collect();
    (done, problems)
}

/// Writes back each `before` where the value is still the one `set`. Lowest first, so that
/// 1 <= 2 <= 3 holds at every step.
fn put_back(mut changes: Vec<Change>, dry_run: bool) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    for c in changes {
        match std::fs::read_to_string(&c.path).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(cur) if cur == c.set && dry_run => done.push(format!("{} back to {}", c.key, c.before)),
            Some(cur) if cur == c.set => match std::fs::write(&c.path, c.before.to_string()) {
                Ok(()) => done.push(format!("{} back to {}", c.key, c.before)),
                Err(e) => problems.push(format!("restore {}: {e}", c.key)),
            },
            Some(cur) if cur == c.before => {}
            Some(cur) => problems.push(format!("{} is {cur}, not the {} the run set: someone changed it meanwhile; left as is", c.key, c.set)),
            None => problems.push(format!("cannot read {} to restore it", c.path.display())),
        }
    }
    (done, problems)
}

fn write_journal(path: &Path, j: &Journal) -> io::Result<()> {
    let tmp = path.with_extension(format!("json.{}", j.pid));
    std::fs::write(&tmp, serde_json::to_vec_pretty(j).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

fn remove_journal(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => eprintln!("vnet: remove {}: {e}", path.display()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(dir: &Path, n: u8, before: u64, set: u64) -> Change {
        Change { path: dir.join(format!("gc_thresh{n}")), key: format!("k{n}"), before, set }
    }

    /// The journal of a killed run is replayed on files standing in for the sysctls: values
    /// still as the run set them go back; values someone changed since stay.
    #[test]
    fn a_killed_runs_journal_puts_back_only_what_still_holds_its_values() {
        let dir = std::env::temp_dir().join(format!("vnet-neigh-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gc_thresh1"), "662\n").unwrap();
        std::fs::write(dir.join("gc_thresh2"), "4096\n").unwrap();
        std::fs::write(dir.join("gc_thresh3"), "1324\n").unwrap();
        let journal = dir.join("journal.json");
        let j = Journal { pid: 4242, changes: vec![change(&dir, 3, 1024, 1324), change(&dir, 2, 512, 1324), change(&dir, 1, 128, 662)] };
        write_journal(&journal, &j).unwrap();
        // A dry run says what it would do and changes nothing.
        let (would, _) = recover_locked(&journal, true);
        assert_eq!(would.len(), 2, "{would:?}");
        assert_eq!(std::fs::read_to_string(dir.join("gc_thresh1")).unwrap(), "662\n");
        assert!(journal.exists());
        let (done, problems) = recover_locked(&journal, false);
        assert_eq!(std::fs::read_to_string(dir.join("gc_thresh1")).unwrap(), "128");
        assert_eq!(std::fs::read_to_string(dir.join("gc_thresh3")).unwrap(), "1024");
        assert_eq!(std::fs::read_to_string(dir.join("gc_thresh2")).unwrap().trim(), "4096", "changed by someone else: left");
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(done[0].contains("pid 4242") && done[0].contains("k1 back to 128"), "{done:?}");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("k2 is 4096, not the 1324 the run set"), "{problems:?}");
        assert!(!journal.exists(), "the journal is consumed");
        // Nothing to do without a journal.
        assert_eq!(recover_locked(&journal, false), (Vec::new(), Vec::new()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
