//! Network sysctls through procfs, which shows the calling thread's namespace: call these
//! from a thread that has entered the node's namespace.
//!
//! They go through a procfs of the thread's own, not the machine's /proc. Every namespace that
//! looks `/proc/sys/net` up leaves its own `net` dentry on one hash chain of that procfs, and
//! every later lookup there (anyone's, from any namespace) walks the whole chain, taking the
//! kernel's global sysctl spinlock for each entry. In 2000 namespaces, opening `ip_forward`
//! once each took 0.30–0.52 s through /proc and 0.05–0.06 s through private instances
//! (docs/architecture.md). A private instance is made with the new mount API and never attached
//! to any directory, so nobody else sees it; it is replaced after `MOUNT_USES` (64) opens, which
//! bounds its chain, and dropping it drops its dentries, so a big lab does not leave the
//! machine's /proc slower either. Where the mount API is refused (an old kernel, a seccomp
//! filter, no CAP_SYS_ADMIN), /proc serves.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags};

use crate::model::validate::sysctl_components;

/// Opens through one private procfs before it is replaced: the chain a lookup walks is at
/// most this long, and a new instance costs about as much as a few dozen opens.
const MOUNT_USES: u32 = 64;

struct PrivateProc {
    root: OwnedFd,
    uses: u32,
}

thread_local! {
    static PROC: RefCell<Option<PrivateProc>> = const { RefCell::new(None) };
}

/// Set once the kernel has refused a private procfs: the process then uses /proc.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// /proc/sys path of a sysctl key (`net.ipv4.ip_forward` or `net/ipv4/conf/eth0.10/forwarding`),
/// as messages show it.
pub fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc").join(relative(key))
}

/// The key's path below a procfs root (`sys/net/ipv4/ip_forward`).
fn relative(key: &str) -> PathBuf {
    let mut p = PathBuf::from("sys");
    for c in sysctl_components(key) {
        p.push(c);
    }
    p
}

fn private_proc() -> io::Result<OwnedFd> {
    let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_create(&fs)?;
    let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    Ok(fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
}

/// Opens a sysctl's file in the calling thread's namespace.
fn open(key: &str, flags: OFlags) -> io::Result<File> {
    let rel = relative(key);
    let flags = flags | OFlags::CLOEXEC;
    let fd = PROC.with_borrow_mut(|slot| {
        if !REFUSED.load(Ordering::Relaxed) && slot.as_ref().is_none_or(|p| p.uses >= MOUNT_USES) {
            *slot = None;
            match private_proc() {
                Ok(root) => *slot = Some(PrivateProc { root, uses: 0 }),
                Err(e) => {
                    tracing::debug!("no private procfs ({e}); sysctls go through /proc");
                    REFUSED.store(true, Ordering::Relaxed);
                }
            }
        }
        match slot {
            Some(p) => {
                p.uses += 1;
                rustix::fs::openat(&p.root, &rel, flags, Mode::empty())
            }
            None => rustix::fs::open(PathBuf::from("/proc").join(&rel), flags, Mode::empty()),
        }
    });
    fd.map(File::from).map_err(io::Error::from)
}

fn with_path(key: &str) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path(key).display()))
}

/// The entries of a sysctl directory (`net.ipv4` -> `ip_forward`, `conf`, ...), for "did you
/// mean" hints.
pub fn list(dir_key: &str) -> io::Result<Vec<String>> {
    let dir = open(dir_key, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Whether the calling thread's namespace lets the key be written (the root namespace may
/// show a setting read-write that other namespaces see read-only). NotFound when it has no
/// such key.
pub fn writable(key: &str) -> io::Result<bool> {
    let f = open(key, OFlags::PATH)?;
    Ok(rustix::fs::fstat(&f)?.st_mode & 0o200 != 0)
}

pub fn read(key: &str) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    open(key, OFlags::RDONLY)?.read_to_string(&mut s)?;
    Ok(s.trim_end_matches('\n').to_string())
}

pub fn write(key: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    let ctx = with_path(key);
    open(key, OFlags::WRONLY).map_err(&ctx)?.write_all(value.as_bytes()).map_err(ctx)
}

/// Sets a sysctl and returns the value it had (`None` for a write-only one), opening it once
/// (each open is a lookup). Writes only when the value differs.
pub fn swap(key: &str, value: &str) -> io::Result<Option<String>> {
    use std::io::{Read, Seek, Write};
    let ctx = with_path(key);
    let mut f = match open(key, OFlags::RDWR) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return write(key, value).map(|()| None),
        Err(e) => return Err(ctx(e)),
    };
    let mut previous = String::new();
    f.read_to_string(&mut previous).map_err(&ctx)?;
    let previous = previous.trim_end_matches('\n').to_string();
    if same_value(&previous, value) {
        return Ok(Some(previous));
    }
    f.rewind().map_err(&ctx)?;
    f.write_all(value.as_bytes()).map_err(ctx)?;
    Ok(Some(previous))
}

/// Whether two sysctl values are the same (the kernel prints vectors tab-separated).
fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

#[cfg(test)]
mod tests {
    use super::{path, same_value};

    /// A value equal but for whitespace (the kernel prints vectors tab-separated) is not
    /// written again.
    #[test]
    fn equal_values_compare_by_words() {
        assert!(same_value("4096\t87380\t6291456", "4096 87380 6291456"));
        assert!(same_value("1\n", "1"));
        assert!(!same_value("1", "0"));
        assert!(!same_value("4096 87380", "4096 87380 6291456"));
    }

    /// Messages name the file as users know it, whichever procfs served it.
    #[test]
    fn paths_are_shown_under_proc_sys() {
        assert_eq!(path("net.ipv4.ip_forward").to_str(), Some("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(path("net/ipv4/conf/eth0.10/forwarding").to_str(), Some("/proc/sys/net/ipv4/conf/eth0.10/forwarding"));
    }
}
