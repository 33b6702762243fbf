//! Opening sockets inside nodes: a socket belongs for life to the network namespace of the
//! thread that created it, so worker threads enter each node's namespace, open what is needed
//! there and hand the descriptors back. Afterwards any thread may use them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::kernel::netns;

/// Runs `f(i)` for every `i in 0..fds.len()` on worker threads, each call made while the thread
/// is inside namespace `fds[i]` (`None`: the namespace the caller started in). Order is kept.
pub fn in_each<R: Send>(fds: &[Option<BorrowedFd<'_>>], f: impl Fn(usize) -> R + Sync) -> io::Result<Vec<R>> {
    let workers = crate::kernel::handle::workers().min(fds.len().max(1));
    let chunk = fds.len().div_ceil(workers).max(1);
    let home = netns::open_current()?;
    let idx: Vec<usize> = (0..fds.len()).collect();
    std::thread::scope(|s| {
        let joins: Vec<_> = idx
            .chunks(chunk)
            .map(|c| {
                let f = &f;
                let home = &home;
                s.spawn(move || -> io::Result<Vec<R>> {
                    let mut out = Vec::with_capacity(c.len());
                    for &i in c {
                        match fds[i] {
                            Some(fd) => netns::enter(fd)?,
                            None => netns::enter(home.as_fd())?,
                        }
                        out.push(f(i));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(fds.len());
        for j in joins {
            all.extend(j.join().map_err(|_| io::Error::other("namespace worker panicked"))??);
        }
        Ok(all)
    })
}

/// Runs `f` on a thread inside namespace `fd` (`None`: the caller's namespace).
pub fn in_one<R: Send>(fd: Option<&OwnedFd>, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    netns::run_in(fd, f)
}

/// How long a namespace has existed, from its nsfs inode: the kernel stamps the inode when the
/// namespace is first opened or named, and keeps it while a name (a bind mount) or a
/// descriptor holds it. vnet names every namespace it creates right after `unshare`, so for
/// those this is the namespace's age. For one something else created (the machine's first
/// namespace, a container's) the inode may be younger than the namespace.
pub fn age(fd: BorrowedFd<'_>) -> io::Result<std::time::Duration> {
    let st = rustix::fs::fstat(fd)?;
    let born = std::time::UNIX_EPOCH + std::time::Duration::new(st.st_ctime as u64, st.st_ctime_nsec as u32);
    // A clock set back since gives no age rather than a wrong one.
    std::time::SystemTime::now().duration_since(born).map_err(|_| io::Error::other("the namespace's time stamp is in the future"))
}
