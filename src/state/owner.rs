//! Who owns a lab. A lab of the Rust test library belongs to the process that built it: that
//! process holds an exclusive `flock` on the file `owner` in the lab's record directory for as
//! long as the lab lives. The kernel drops the lock when the process dies however it dies, so
//! a lock attempt tells a live owner from a dead one across PID namespaces and after PID reuse
//! (a pid alone cannot: pid 1 of a PID namespace is "alive" from the outside, and a reused pid
//! belongs to somebody else). The record keeps the owner's pid for people to read.
//!
//! A lab of the command line (`vnet up FILE`) has no owner: it lives until `vnet down`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::LabState;

/// The owner lock's file name in a lab's record directory.
pub const FILE: &str = "owner";

/// How a process that owns a lab lets a `vnet` it runs act as the lab's owner (`vnet bench`
/// running `vnet up` and `vnet down` on the lab it holds): the number of a descriptor the
/// child inherits, of the very open file that holds the owner lock (see `Owner::lend_to`).
pub const LEND_ENV: &str = "VNET_OWNER_FD";

/// This process's hold on a lab it owns: shared by the `Lab` value and the `up`s it runs
/// (`Ownership::Process`). Empty until `up` claims the lab; dropped (the lock released) with
/// the last clone.
#[derive(Clone, Debug, Default)]
pub struct Owner(Arc<Mutex<Option<Held>>>);

#[derive(Debug)]
struct Held {
    file: File,
    dev: u64,
    ino: u64,
    /// Lent by the parent process (`LEND_ENV`): the lock is the parent's, only closed here.
    borrowed: bool,
}

impl Drop for Held {
    /// Unlocks before closing: a child forked by another thread holds a copy of the
    /// descriptor until its exec (see `state::LabLock`). A borrowed lock stays the lender's.
    fn drop(&mut self) {
        if !self.borrowed {
            unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

impl Owner {
    pub fn new() -> Owner {
        Owner::default()
    }

    /// Whether this handle holds an owner lock (of whichever lab).
    pub fn has_claim(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Whether this handle holds the owner lock of the lab whose directory is `dir`.
    pub fn holds(&self, dir: &Path) -> bool {
        let Ok(m) = std::fs::metadata(dir.join(FILE)) else { return false };
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref().is_some_and(|h| h.dev == m.dev() && h.ino == m.ino())
    }

    /// Takes the owner lock of the lab whose record directory is `dir` (which exists: the
    /// caller holds the lab's lock in it). Fails with `WouldBlock` while another live process
    /// holds it. A lock already held by this handle on another lab is released.
    pub fn claim(&self, dir: &Path) -> io::Result<()> {
        if self.holds(dir) {
            return Ok(());
        }
        let path = dir.join(FILE);
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
        // Someone testing whether the owner lives holds a shared lock for an instant: a live
        // owner holds it for good.
        let deadline = Instant::now() + Duration::from_millis(250);
        loop {
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                _ => return Err(e),
            }
        }
        // For people (and for the message of a refused `up`): who holds it.
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        let m = file.metadata()?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held { file, dev: m.dev(), ino: m.ino(), borrowed: false });
        Ok(())
    }

    /// Lets `cmd`, a `vnet` this process runs on the lab it owns, act as the lab's owner (its
    /// `up` is then not refused as another process's, its `down` removes the lab as the
    /// owner's): the child inherits the descriptor of the open file that holds the lock, and
    /// finds its number in `LEND_ENV`. Nothing when this handle holds no lock.
    pub fn lend_to(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = held.as_ref() else { return };
        let fd = h.file.as_raw_fd();
        cmd.env(LEND_ENV, fd.to_string());
        // SAFETY: between fork and exec only fcntl, which is async-signal-safe; it clears
        // close-on-exec in the child's own descriptor table, not in this process's.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// The claim a parent process lent this one (`lend_to`) on the lab whose record directory
    /// is `dir`, if it lent one: the inherited descriptor must be the open file of that lab's
    /// owner lock, and hold the lock. The variable is removed (the children of this process
    /// inherit nothing), and the descriptor closed if it is not one.
    pub fn borrowed(dir: &Path) -> Option<Owner> {
        let fd: RawFd = std::env::var(LEND_ENV).ok()?.trim().parse().ok()?;
        std::env::remove_var(LEND_ENV);
        // A descriptor this process has at all.
        if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return None;
        }
        // SAFETY: an open descriptor nothing else in this process uses (inherited for this).
        let file = unsafe { File::from_raw_fd(fd) };
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let m = file.metadata().ok()?;
        let on_disk = std::fs::metadata(dir.join(FILE)).ok()?;
        if (m.dev(), m.ino()) != (on_disk.dev(), on_disk.ino()) {
            return None;
        }
        // The lender's open file holds the lock: taking it again through it succeeds.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return None;
        }
        Some(Owner(Arc::new(Mutex::new(Some(Held { file, dev: m.dev(), ino: m.ino(), borrowed: true })))))
    }
}

/// Who owns a lab, as far as this process can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// A lab of the command line: nobody (it lives until `vnet down`).
    None,
    /// The `Owner` handle passed in.
    This,
    /// Another process that is still running (its pid as recorded; `elsewhere`: in another
    /// PID namespace than ours, where that number means another process).
    Alive { pid: u32, elsewhere: bool },
    /// The owning process is gone: `vnet gc` removes the lab.
    Gone { pid: u32, elsewhere: bool },
}

impl OwnerState {
    /// "pid N" or "pid N (in another PID namespace)".
    pub fn describe_pid(pid: u32, elsewhere: bool) -> String {
        if elsewhere {
            format!("pid {pid} (in another PID namespace)")
        } else {
            format!("pid {pid}")
        }
    }
}

/// This process's PID namespace (its inode), recorded beside an owner's pid.
pub fn pid_namespace() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Who owns the lab whose record directory is `dir` (`st`: its record, if there is one).
/// `me`: this process's handle on labs it owns, if any.
pub fn state(dir: &Path, st: Option<&LabState>, me: Option<&Owner>) -> OwnerState {
    let path = dir.join(FILE);
    let recorded = st.and_then(|s| s.owner_pid);
    let elsewhere = st.and_then(|s| s.owner_pidns).is_some_and(|ns| Some(ns) != pid_namespace());
    // A record of a vnet that knew no owner lock: the pid alone.
    if let Some(pid) = recorded.filter(|_| st.is_some_and(|s| !s.owner_lock)) {
        return if super::pid_alive(pid) { OwnerState::Alive { pid, elsewhere } } else { OwnerState::Gone { pid, elsewhere } };
    }
    if me.is_some_and(|o| o.holds(dir)) {
        return if recorded.is_some() || st.is_none() { OwnerState::This } else { OwnerState::None };
    }
    match held_by_another(&path) {
        // Held without a record naming it (the record was lost, or is being written): whoever
        // the file names.
        Some(true) => {
            let pid = recorded.or_else(|| std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok())).unwrap_or(0);
            OwnerState::Alive { pid, elsewhere }
        }
        _ => match recorded {
            Some(pid) => OwnerState::Gone { pid, elsewhere },
            None => OwnerState::None,
        },
    }
}

/// Whether some process holds the lock on `path` exclusively (`None`: no such file).
fn held_by_another(path: &Path) -> Option<bool> {
    let file = File::open(path).ok()?;
    loop {
        // A shared lock: two processes testing at once do not see each other as owners.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return Some(false);
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Some(true),
            _ => return Some(false),
        }
    }
}

/// Makes this process the owner of a lab that exists (as `vnet bench` does with the lab its
/// `vnet up` built): takes the lab's lock, claims the owner lock, records the pid. The lab is
/// this process's until the returned handle is dropped; then `vnet gc` removes it.
pub fn adopt(lab: &str) -> io::Result<Owner> {
    let missing = || io::Error::new(io::ErrorKind::NotFound, format!("no lab named {lab}"));
    // Never makes a directory for a lab that is not there.
    let _lock = super::lock_existing(lab)?.ok_or_else(missing)?;
    let mut st = super::load(lab)?.ok_or_else(missing)?;
    let owner = Owner::new();
    owner.claim(&super::lab_dir(lab))?;
    st.owner_pid = Some(std::process::id());
    st.owner_pidns = pid_namespace();
    st.owner_lock = true;
    super::save(&st)?;
    Ok(owner)
}

/// The owner file of a lab's record directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: Option<u32>) -> LabState {
        let mut st = LabState::new("o", true);
        st.owner_pid = pid;
        st.owner_lock = pid.is_some();
        st.owner_pidns = pid_namespace();
        st
    }

    /// The lock tells who owns a lab: this handle, another holder (here another handle of this
    /// process: flock locks belong to open files, not to processes), or nobody any more.
    #[test]
    fn the_owner_lock_tells_this_another_and_gone_apart() {
        let dir = std::env::temp_dir().join(format!("vnet-owner-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = record(Some(4242));
        assert_eq!(state(&dir, Some(&st), None), OwnerState::Gone { pid: 4242, elsewhere: false }, "no file: gone");
        assert_eq!(state(&dir, Some(&record(None)), None), OwnerState::None);

        let a = Owner::new();
        a.claim(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(path(&dir)).unwrap().trim(), std::process::id().to_string());
        assert_eq!(state(&dir, Some(&st), Some(&a)), OwnerState::This);
        assert_eq!(state(&dir, Some(&st), None), OwnerState::Alive { pid: 4242, elsewhere: false });
        assert_eq!(state(&dir, None, None), OwnerState::Alive { pid: std::process::id(), elsewhere: false }, "no record: the file's pid");
        // Testing does not disturb the owner, and a second claimant is refused.
        let b = Owner::new();
        let e = b.claim(&dir).expect_err("held by a");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(state(&dir, Some(&st), Some(&b)), OwnerState::Alive { pid: 4242, elsewhere: false });
        a.claim(&dir).unwrap();

        let clone = a.clone();
        drop(a);
        assert_eq!(state(&dir, Some(&st), None), OwnerState::Alive { pid: 4242, elsewhere: false }, "a clone keeps it");
        drop(clone);
        assert_eq!(state(&dir, Some(&st), None), OwnerState::Gone { pid: 4242, elsewhere: false });
        b.claim(&dir).unwrap();
        assert_eq!(state(&dir, Some(&st), Some(&b)), OwnerState::This);
        drop(b);

        // An owner recorded in another PID namespace says so.
        let mut other = record(Some(1));
        other.owner_pidns = Some(1);
        assert_eq!(state(&dir, Some(&other), None), OwnerState::Gone { pid: 1, elsewhere: true });
        assert_eq!(OwnerState::describe_pid(1, true), "pid 1 (in another PID namespace)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Records written before the owner lock existed: the pid decides.
    #[test]
    fn records_without_the_owner_lock_go_by_the_pid() {
        let dir = std::env::temp_dir().join(format!("vnet-owner-legacy-{}", std::process::id()));
        let mut st = record(Some(std::process::id()));
        st.owner_lock = false;
        assert!(matches!(state(&dir, Some(&st), None), OwnerState::Alive { .. }));
        st.owner_pid = Some(u32::MAX - 1);
        assert!(matches!(state(&dir, Some(&st), None), OwnerState::Gone { .. }));
    }
}
