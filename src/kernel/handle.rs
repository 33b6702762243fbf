//! A handle on one namespace: its fd, a netlink socket opened inside it once, and a cache of
//! interface indexes (filled from dumps and from the kernel's echo of each creation, never by
//! re-dumping per operation). Handles for many namespaces are opened or created in parallel.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::netns;
use super::nl::{KernelError, Netlink};

/// One namespace, ready for requests.
pub struct NsHandle {
    pub node: String,
    /// Name under /run/netns; `None` for the namespace vnet runs in (the real root).
    pub netns: Option<String>,
    pub fd: OwnedFd,
    pub nl: Netlink,
    /// ifname -> ifindex.
    pub ifindex: HashMap<String, u32>,
}

impl NsHandle {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn index(&self, ifname: &str) -> Option<u32> {
        self.ifindex.get(ifname).copied()
    }
}

/// Why a namespace could not be opened or created.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("namespace `{0}` already exists")]
    Exists(String),
    #[error("namespace `{netns}`: {source}")]
    Io { netns: String, source: io::Error },
    #[error("namespace `{netns}`: {source}")]
    Kernel { netns: String, source: KernelError },
}

/// How many worker threads to use for per-namespace work.
pub fn workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4)
}

/// The namespace vnet itself runs in (the "root" for a non-isolated host).
pub fn open_root(node: &str) -> io::Result<NsHandle> {
    let fd = netns::open_current()?;
    let nl = Netlink::open()?;
    Ok(NsHandle { node: node.to_string(), netns: None, fd, nl, ifindex: HashMap::new() })
}

/// Opens existing named namespaces, in parallel. Results keep the input order.
pub fn open_many(list: &[(String, String)]) -> Vec<Result<NsHandle, HandleError>> {
    par_map(list, |(node, name)| {
        let io_err = |source| HandleError::Io { netns: name.clone(), source };
        let fd = netns::open(name).map_err(io_err)?;
        netns::enter(fd.as_fd()).map_err(io_err)?;
        let nl = Netlink::open().map_err(io_err)?;
        Ok(NsHandle { node: node.clone(), netns: Some(name.clone()), fd, nl, ifindex: HashMap::new() })
    })
}

/// What a new namespace starts with.
#[derive(Clone, Debug)]
pub struct NewNs {
    pub node: String,
    pub netns: String,
    /// Alias put on the namespace's `lo`: the proof that the namespace is the lab's.
    pub mark: String,
    pub lo_up: bool,
    /// Set the namespace's default addr_gen_mode to none before any device exists, so devices
    /// born in it get no IPv6 link-local address. One /proc write (whose cost grows with the
    /// number of namespaces): worth it only where many devices will be born.
    pub default_no_ll: bool,
}

/// Creates namespaces in parallel. Each is born on a worker thread (unshare), gets its socket
/// and its marked `lo` while still unnamed, and only then is named under /run/netns, so a named
/// namespace of a lab always carries the lab's mark.
pub fn create_many(list: &[NewNs]) -> Vec<Result<NsHandle, HandleError>> {
    par_map(list, |n| {
        let name = &n.netns;
        match netns::reserve(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(HandleError::Exists(name.clone())),
            Err(source) => return Err(HandleError::Io { netns: name.clone(), source }),
        }
        let result = (|| {
            let io_err = |source| HandleError::Io { netns: name.clone(), source };
            netns::unshare_thread().map_err(io_err)?;
            if n.default_no_ll {
                // Absent when IPv6 is disabled on the machine: then there is nothing to turn off.
                let _ = super::sysctl::write("net.ipv6.conf.default.addr_gen_mode", "1");
            }
            let mut nl = Netlink::open().map_err(io_err)?;
            let mut lo = LinkMessage::default();
            lo.header.index = 1;
            lo.attributes.push(LinkAttribute::IfAlias(n.mark.clone()));
            if n.lo_up {
                lo.header.flags = LinkFlags::Up;
                lo.header.change_mask = LinkFlags::Up;
            }
            nl.request(RouteNetlinkMessage::SetLink(lo), 0).map_err(|source| HandleError::Kernel { netns: name.clone(), source })?;
            netns::bind_current(name).map_err(io_err)?;
            let fd = netns::open_current().map_err(io_err)?;
            let mut ifindex = HashMap::new();
            ifindex.insert("lo".to_string(), 1);
            Ok(NsHandle { node: n.node.clone(), netns: Some(name.clone()), fd, nl, ifindex })
        })();
        if result.is_err() {
            let _ = netns::unlink(name);
        }
        result
    })
}

/// Runs `f` for every item on worker threads (at most `workers()`), keeping input order.
/// Work is dealt in contiguous slices, so each thread touches its own part only.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n = workers().min(items.len().max(1));
    if items.len() <= 8 || n == 1 {
        // Still on a worker thread: namespace switches must not touch the caller's thread.
        return std::thread::scope(|s| s.spawn(|| items.iter().map(&f).collect()).join().expect("worker panicked"));
    }
    let chunk = items.len().div_ceil(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker panicked")).collect()
    })
}

/// Runs `f` on each handle from a worker thread that has entered the handle's namespace.
pub fn par_each_in<R: Send>(handles: &mut [&mut NsHandle], f: impl Fn(&mut NsHandle) -> R + Sync) -> Vec<R> {
    let n = workers().min(handles.len().max(1));
    let chunk = handles.len().div_ceil(n).max(1);
    std::thread::scope(|s| {
        let joins: Vec<_> = handles
            .chunks_mut(chunk)
            .map(|c| {
                let f = &f;
                s.spawn(move || {
                    c.iter_mut()
                        .map(|h| {
                            if let Err(e) = netns::enter(h.fd.as_fd()) {
                                tracing::warn!("cannot enter namespace of {}: {e}", h.node);
                            }
                            f(h)
                        })
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        joins.into_iter().flat_map(|j| j.join().expect("worker panicked")).collect()
    })
}

/// Raises the soft open-file limit to the hard one: a big lab holds a namespace fd and a
/// socket per node.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
