//! A lab's record on disk (/run/vnet/LAB): which namespaces and root-namespace devices it owns,
//! the sysctl values to restore, the topology last applied, and a lock so that two commands on
//! one lab never interleave. Written before anything is created, so that `down` and `gc` find
//! everything even after `up` was killed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Topology;

pub mod bench;
pub mod netfeat;
pub mod owner;
pub mod run_dirs;

/// Default root of lab records; `VNET_RUN_DIR` overrides it (tests of state handling).
pub const RUN_DIR: &str = "/run/vnet";

pub fn run_dir() -> PathBuf {
    std::env::var_os("VNET_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(RUN_DIR))
}

pub fn lab_dir(lab: &str) -> PathBuf {
    run_dir().join(lab)
}

/// A lab's record directory, for a name that is a lab name. Anything else (empty, `.`, `..`,
/// `a/../b`) would name the run directory itself or another lab's record: `down ""` would
/// remove every lab's record.
fn checked_dir(lab: &str) -> io::Result<PathBuf> {
    match crate::model::validate::lab_name_problem(lab) {
        Some(why) => Err(io::Error::new(io::ErrorKind::InvalidInput, why)),
        None => Ok(lab_dir(lab)),
    }
}

/// Where a lab is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `up` is (or was, if its process is gone) working on the lab.
    Building,
    /// The lab is up as its topology says.
    Up,
    /// `down` is (or was) removing the lab.
    Removing,
}

/// The record of one lab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub lab: String,
    pub phase: Phase,
    /// The topology file last applied (absolute path), if the lab came from a file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    pub isolated_host: bool,
    /// node -> namespace name, for every namespace the lab owns (written before creating them).
    #[serde(default)]
    pub netns: BTreeMap<String, String>,
    /// Devices created in the real root namespace (also marked with the lab's alias).
    #[serde(default)]
    pub root_devices: Vec<String>,
    /// node -> sysctl -> the value it had before the lab changed it.
    #[serde(default)]
    pub sysctl_restore: BTreeMap<String, BTreeMap<String, String>>,
    /// Root-namespace limits raised for the lab by a vnet before the machine-wide record of
    /// raised limits (`probe::neigh::raise`): restored at `down` as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_restore: BTreeMap<String, String>,
    /// The values that vnet set there: restored only if nobody changed them since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_set: BTreeMap<String, String>,
    /// The neighbour table limits (gc_thresh1/2/3) the lab holds raised in the machine-wide
    /// record (`probe::neigh::raise`); released at `down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neigh_held: Option<[u64; 3]>,
    /// The topology as last applied successfully.
    #[serde(default)]
    pub topology: Option<Topology>,
    /// Process that last wrote the record.
    pub pid: u32,
    /// For labs of the Rust test library: the owning process's pid, for people (as that
    /// process saw it, in its PID namespace `owner_pidns`); `gc` removes the lab once the owner
    /// is gone.
    #[serde(default)]
    pub owner_pid: Option<u32>,
    /// The inode of the owner's PID namespace (its pid means another process in another one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_pidns: Option<u64>,
    /// Whether the owner holds the lock on the record directory's `owner` file while it lives
    /// (see `state::owner`); records of older vnet versions only name the pid.
    #[serde(default)]
    pub owner_lock: bool,
    /// Interface group carried by every device the lab creates in its own namespaces.
    #[serde(default)]
    pub group: u32,
    /// Namespace name -> inode of the namespace the lab created under it: proves ownership at
    /// `down` without entering the namespace.
    #[serde(default)]
    pub netns_ids: BTreeMap<String, u64>,
    /// Nodes whose devices must be deleted explicitly at `down` (one RTM_DELLINK by group
    /// each); every other lab device is a veth end that dies with its peer. `None` in records
    /// written before vnet knew (every namespace is then deleted explicitly).
    #[serde(default)]
    pub delete_in: Option<Vec<String>>,
    /// Daemons the lab runs (teamd per team device): "node:ifname" -> pid. Stopped by `down`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub daemons: BTreeMap<String, u32>,
    /// NAT tables, qdiscs, BPF attachments, IPsec keys (issue 6).
    #[serde(default, skip_serializing_if = "netfeat::Record::is_empty")]
    pub netfeat: netfeat::Record,
    /// Private Open vSwitch instances the lab runs, by node (run directory and daemon pids).
    /// Stopped by `down` before namespaces go.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ovs: BTreeMap<String, OvsRecord>,
}

/// A private Open vSwitch (ovsdb-server + ovs-vswitchd) the lab started in a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OvsRecord {
    /// Its run directory (database, sockets, logs, pid files).
    pub dir: PathBuf,
    /// Program name -> pid.
    pub pids: BTreeMap<String, u32>,
}

impl LabState {
    pub fn new(lab: &str, isolated_host: bool) -> Self {
        LabState {
            lab: lab.to_string(),
            phase: Phase::Building,
            file: None,
            isolated_host,
            netns: BTreeMap::new(),
            root_devices: Vec::new(),
            sysctl_restore: BTreeMap::new(),
            host_restore: BTreeMap::new(),
            host_set: BTreeMap::new(),
            neigh_held: None,
            topology: None,
            pid: std::process::id(),
            owner_pid: None,
            owner_pidns: None,
            owner_lock: false,
            group: group_for(lab),
            netns_ids: BTreeMap::new(),
            delete_in: None,
            daemons: BTreeMap::new(),
            netfeat: Default::default(),
            ovs: BTreeMap::new(),
        }
    }
}

impl LabState {
    /// Notes the value a sysctl of `node` had before the lab first changed it. The first note
    /// stays: a later change (the file editing the value) must not take the lab's own value
    /// for the original, which is what comes back once the file no longer declares or implies
    /// the setting.
    pub fn note_sysctl(&mut self, node: &str, key: &str, previous: &str) {
        self.sysctl_restore.entry(node.to_string()).or_default().entry(key.to_string()).or_insert_with(|| previous.to_string());
    }

    /// What the record keeps of the lab just applied: its topology, the root namespace's
    /// devices it declares (they prove a device in the real root is the lab's), and only the
    /// sysctl originals of settings the file still declares (the others were restored).
    pub fn take_applied(&mut self, lab: &crate::model::Lab) {
        self.root_devices = match lab.nodes.iter().find(|(n, _)| lab.netns_name(n).is_none()) {
            Some((_, node)) => node.interfaces.keys().filter(|n| *n != "lo").cloned().collect(),
            None => Vec::new(),
        };
        for (node, map) in self.sysctl_restore.iter_mut() {
            if let Some(n) = lab.nodes.get(node) {
                map.retain(|k, _| n.sysctls.contains_key(k));
            }
        }
        self.sysctl_restore.retain(|_, m| !m.is_empty());
        self.topology = Some(lab.topology.clone());
    }
}

/// The interface group of a lab: a stable hash of its name, away from the small numbers
/// people use by hand.
pub fn group_for(lab: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in lab.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    0x1000_0000 | (h & 0x0fff_ffff)
}

/// Reads a lab's record, if there is one.
pub fn load(lab: &str) -> io::Result<Option<LabState>> {
    let p = checked_dir(lab)?.join("state.json");
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a lab's record atomically (write + rename).
pub fn save(state: &LabState) -> io::Result<()> {
    let dir = checked_dir(&state.lab)?;
    std::fs::create_dir_all(&dir)?;
    // Best effort: without it only a `gc` of another run directory misjudges the lab.
    if let Err(e) = run_dirs::register() {
        tracing::debug!("record the run directory in the machine-wide list: {e}");
    }
    let tmp = dir.join(format!("state.json.{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(state).map_err(io::Error::other)?)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join("state.json"))
}

/// Removes a lab's record (after `down`).
pub fn remove(lab: &str) -> io::Result<()> {
    remove_dir(&checked_dir(lab)?)
}

fn remove_dir(dir: &std::path::Path) -> io::Result<()> {
    // Another command waiting for the lab's lock (`gc` taking over a lab whose `down` it saw
    // under way) makes the lock file again in the directory being removed; it finds the lab
    // gone once it has the lock. Removing again takes its file too.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && tries < 100 => tries += 1,
            r => return r,
        }
    }
}

/// Names of labs that have a record.
pub fn list() -> Vec<String> {
    let mut out: Vec<String> = match std::fs::read_dir(run_dir()) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists() || e.path().join("lock").exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            // Not a lab name: not a record vnet made, and not one to open.
            .filter(|n| crate::model::validate::lab_name_problem(n).is_none())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// An exclusive lock on a lab, held while a command works on it (flock: released by the
/// kernel if the process dies).
pub struct LabLock {
    _file: File,
    pub path: PathBuf,
}

impl Drop for LabLock {
    /// Unlocks before closing: a process forked by another thread (to exec a command) holds a
    /// copy of the descriptor until its exec, and the lock would live on with that copy; the
    /// next `up` of the lab from this process would then find it busy.
    fn drop(&mut self) {
        unsafe { libc::flock(self._file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Takes the lab's lock; fails at once with `WouldBlock` when another process holds it.
pub fn lock(lab: &str) -> io::Result<LabLock> {
    lock_in(&checked_dir(lab)?)
}

fn lock_in(dir: &std::path::Path) -> io::Result<LabLock> {
    loop {
        std::fs::create_dir_all(dir)?;
        // None: removed (by its holder, `down`) while we waited: make it again.
        if let Some(l) = lock_existing_in(dir)? {
            return Ok(l);
        }
    }
}

/// Takes the lock of a lab that has a directory, never making one: `None` once the lab is
/// gone. For `gc`, which must not make a removed lab's directory appear again.
pub fn lock_existing(lab: &str) -> io::Result<Option<LabLock>> {
    lock_existing_in(&checked_dir(lab)?)
}

fn lock_existing_in(dir: &std::path::Path) -> io::Result<Option<LabLock>> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join("lock");
    loop {
        // Creates the lock file only inside an existing directory.
        let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            r => r?,
        };
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // The holder before us may have removed the lab's directory (down, gc) after we opened
        // the file: a lock on an unlinked file guards nothing, so take the one now at `path`.
        let held = file.metadata()?;
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => return Ok(Some(LabLock { _file: file, path })),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Takes the lock of a lab that has a directory, waiting up to `timeout` for its holder to
/// finish; `None` once the lab is gone.
pub fn lock_wait(lab: &str, timeout: std::time::Duration) -> io::Result<Option<LabLock>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match lock_existing(lab) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Whether some process holds the lab's lock right now.
pub fn is_locked(lab: &str) -> bool {
    let Ok(dir) = checked_dir(lab) else { return false };
    let path = dir.join("lock");
    let Ok(file) = OpenOptions::new().write(true).open(&path) else { return false };
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        false
    } else {
        true
    }
}

/// Four random bytes from the kernel (names and ids that must not collide with another
/// process's, whatever its pid).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 4 {
        // No getrandom (very old kernels): the clock's nanoseconds and the pid.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.subsec_nanos() ^ std::process::id().rotate_left(16);
    }
    u32::from_ne_bytes(b)
}

/// Whether a process is alive (a zombie, dead but not yet reaped, is not).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')' (comm may hold anything).
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_is_removed_while_another_command_makes_its_lock_file_again() {
        let dir = std::env::temp_dir().join(format!("vnet-remove-race-{}", std::process::id()));
        for round in 0..200 {
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["state.json", "lock", "owner"] {
                std::fs::write(dir.join(f), "x").unwrap();
            }
            let lock = dir.join("lock");
            // As `lock_existing`: creates the lock file only inside an existing directory.
            let maker = std::thread::spawn(move || {
                let mut made = 0;
                while std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).is_ok() {
                    made += 1;
                }
                made
            });
            super::remove_dir(&dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(!dir.exists());
            maker.join().unwrap();
        }
    }

    use super::*;

    /// A child forked by another thread holds a copy of the lock's descriptor until it execs;
    /// dropping the lock must release it all the same.
    #[test]
    fn a_dropped_lock_is_free_while_a_forked_child_still_holds_its_descriptor() {
        use std::os::unix::process::CommandExt;
        let dir = std::env::temp_dir().join(format!("vnet-lock-fork-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let held = lock_in(&dir).unwrap();
        // Another thread starts a command; its child sleeps between fork and exec, holding a
        // copy of every descriptor of this process, the lock's included.
        let spawner = std::thread::spawn(|| {
            let mut cmd = std::process::Command::new("true");
            unsafe {
                cmd.pre_exec(|| {
                    std::thread::sleep(std::time::Duration::from_millis(800));
                    Ok(())
                })
            };
            cmd.status().unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
        let again = lock_in(&dir);
        assert!(spawner.join().unwrap().success());
        assert!(again.is_ok(), "the lock lived on in the child: {:?}", again.err());
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Names that would resolve to the run directory itself or to another lab's record never
    /// reach the file system: `remove("")` would otherwise delete every lab's record.
    #[test]
    fn record_paths_need_a_lab_name() {
        for bad in ["", ".", "..", "a/../b", "../etc", "a/", "/abs", "a b"] {
            let e = checked_dir(bad).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().starts_with("lab name"), "{bad}: {e}");
        }
        assert_eq!(checked_dir("lab-1_x").unwrap(), lab_dir("lab-1_x"));
    }

    /// gc takes labs' locks this way: never making a directory, and seeing a lab removed
    /// while it waited as gone (not as a lock on a file nobody else can find).
    #[test]
    fn locking_an_existing_lab_never_makes_its_directory() {
        let dir = std::env::temp_dir().join(format!("vnet-lock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(lock_existing_in(&dir).unwrap().is_none(), "no directory: no lab");
        assert!(!dir.exists(), "and none made");

        let held = lock_in(&dir).unwrap();
        let busy = lock_existing_in(&dir).err().expect("held by another");
        assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);
        // The holder removes the lab (as `down` does) while holding the lock.
        std::fs::remove_dir_all(&dir).unwrap();
        drop(held);
        assert!(lock_existing_in(&dir).unwrap().is_none(), "removed: gone");
        assert!(!dir.exists());

        // `lock` (up, down) makes it again.
        let again = lock_in(&dir).unwrap();
        assert!(dir.join("lock").exists());
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn groups_are_stable_and_high() {
        assert_eq!(group_for("a"), group_for("a"));
        assert_ne!(group_for("a"), group_for("b"));
        assert!(group_for("x") >= 0x1000_0000);
    }
}
