//! Network namespaces: created, named under /run/netns exactly as `ip netns add` does (so
//! `ip netns exec` works), entered, and deleted. setns()/unshare() act on the calling thread
//! only, so everything that switches namespaces runs on a thread of its own.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where named namespaces live (iproute2's NETNS_RUN_DIR).
pub const NETNS_DIR: &str = "/run/netns";

/// The file that names namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Makes /run/netns a shared mount point, as iproute2 does, so that namespace mounts made by
/// vnet are seen by `ip netns exec` in other mount namespaces and vice versa. When it holds no
/// namespace yet and is not a tmpfs, a tmpfs is mounted there first: on a disk filesystem
/// (a /run that is not tmpfs), every name file costs a directory scan that grows with every
/// namespace ever named there (ext4 directories never shrink) — 0.6 ms each on this machine.
pub fn prepare_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    let dir = Path::new(NETNS_DIR);
    let empty = std::fs::read_dir(dir)?.next().is_none();
    let is_tmpfs = nix::sys::statfs::statfs(dir).map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC).unwrap_or(false);
    if empty && !is_tmpfs {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        match mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0755")) {
            Ok(()) => {}
            Err(e) => tracing::debug!("no tmpfs on {NETNS_DIR} ({e}); using the directory as it is"),
        }
    }
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then make it shared.
            mount(Some(dir), dir, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(io::Error::from)?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>).map_err(io::Error::from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Whether a namespace file of that name exists.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Reserves the name: creates the empty file that will be the mount point. Fails with
/// `AlreadyExists` when someone else holds the name.
pub fn reserve(name: &str) -> io::Result<()> {
    OpenOptions::new().write(true).create_new(true).mode(0o444).open(netns_path(name)).map(drop)
}

/// Moves the calling thread into a brand-new network namespace. The thread stays there.
pub fn unshare_thread() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Names the calling thread's current namespace: bind-mounts it on the reserved file.
pub fn bind_current(name: &str) -> io::Result<()> {
    let target = netns_path(name);
    mount(Some("/proc/thread-self/ns/net"), &target, Some("none"), MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)
}

/// Opens the calling thread's current namespace.
pub fn open_current() -> io::Result<OwnedFd> {
    File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
}

/// Opens a named namespace.
pub fn open(name: &str) -> io::Result<OwnedFd> {
    File::open(netns_path(name)).map(OwnedFd::from)
}

/// Whether the named file is a namespace mount (not a leftover empty file).
pub fn is_mounted(name: &str) -> bool {
    // A namespace file reports the nsfs filesystem; an unmounted placeholder is on /run's fs.
    match nix::sys::statfs::statfs(&netns_path(name)) {
        Ok(s) => s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC,
        Err(_) => false,
    }
}

/// Moves the calling thread into the namespace behind `fd`.
pub fn enter<F: AsFd>(fd: F) -> io::Result<()> {
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Unmounts a namespace's name (lazily) without removing the file.
pub fn unmount(name: &str) -> io::Result<()> {
    match umount2(&netns_path(name), MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Removes the (unmounted) name file.
pub fn unlink(name: &str) -> io::Result<()> {
    match std::fs::remove_file(netns_path(name)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Deletes a named namespace, as `ip netns del` does. The kernel frees it (and its devices)
/// once nothing else holds it.
pub fn delete(name: &str) -> io::Result<()> {
    unmount(name)?;
    unlink(name)
}

/// Runs `f` on a new thread that has entered the namespace `fd` (or stays in the caller's
/// initial namespace when `fd` is None), and returns its value. A panic in `f` comes back as
/// an error ("namespace worker panicked"); see `run_in_unwinding` to have it go on unwinding.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(fd: Option<&OwnedFd>, f: F) -> io::Result<T> {
    spawn_in(fd, f).map_err(|_| io::Error::other("namespace worker panicked"))?
}

/// `run_in`, except that a panic in `f` goes on unwinding in the caller with its own payload
/// (`std::panic::resume_unwind`): the message an assertion in `f` gave is the one a test
/// harness (`#[should_panic(expected = ...)]`) or a `catch_unwind` sees. The error is only
/// that of entering the namespace.
pub fn run_in_unwinding<T: Send, F: FnOnce() -> T + Send>(fd: Option<&OwnedFd>, f: F) -> io::Result<T> {
    spawn_in(fd, f).unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

fn spawn_in<T: Send, F: FnOnce() -> T + Send>(fd: Option<&OwnedFd>, f: F) -> std::thread::Result<io::Result<T>> {
    let raw = fd.map(|f| f.as_raw_fd());
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(raw) = raw {
                // SAFETY: the fd outlives the scope.
                let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
                enter(b)?;
            }
            Ok(f())
        })
        .join()
    })
}

/// The namespace identity (device, inode) of an open namespace fd.
pub fn identity<F: AsFd>(fd: F) -> io::Result<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(io::Error::from)?;
    Ok((st.st_dev, st.st_ino))
}

/// Lists names under /run/netns.
pub fn list() -> Vec<String> {
    let mut out: Vec<String> = match std::fs::read_dir(NETNS_DIR) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Of the namespaces `ids` (from `identity`), those some thread of some process is in right
/// now (such a namespace outlives its name: its devices must be deleted explicitly).
pub fn in_use(ids: &std::collections::HashSet<(u64, u64)>) -> std::collections::HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.filter_map(|e| e.ok()) {
        if !p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else { continue };
        for t in tasks.filter_map(|e| e.ok()) {
            if let Ok(m) = std::fs::metadata(t.path().join("ns/net")) {
                let id = (m.dev(), m.ino());
                if ids.contains(&id) {
                    out.insert(id);
                }
            }
        }
    }
    out
}
