//! Handles on lab devices for tests: an open tun/tap queue or a macvtap character device, to
//! read and write packets (tun) or Ethernet frames (tap, macvtap) as a VPN or an emulator would.
//!
//! ```no_run
//! # let lab: vnet::Lab = unimplemented!();
//! let mut q = lab.node("a").open_tap("tun0").unwrap();
//! let mut buf = [0u8; 2048];
//! let n = q.read_timeout(&mut buf, std::time::Duration::from_secs(2)).unwrap();
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::kernel::tun::{self, TunFlags};
use crate::lab::NodeRef;
use crate::model::kind::KindSpec;

/// An open queue of a tun or tap device: each read returns one packet (tun) or frame (tap),
/// each write sends one.
#[derive(Debug)]
pub struct TapQueue {
    file: File,
    /// Whether frames (tap) or IP packets (tun) are carried.
    pub tap: bool,
    /// Whether each packet starts with a struct virtio_net_hdr.
    pub vnet_hdr: bool,
}

/// An open macvtap character device (/dev/tapIFINDEX of the node): reads and writes Ethernet
/// frames of the macvtap device.
#[derive(Debug)]
pub struct MacvtapHandle {
    file: File,
    /// The character device the handle was opened through, as `status` shows it.
    pub path: String,
}

/// Reads one packet, waiting at most `timeout`.
fn read_timeout(f: &mut File, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd { fd: f.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "nothing to read"));
    }
    f.read(buf)
}

impl TapQueue {
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        read_timeout(&mut self.file, buf, timeout)
    }
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Read for TapQueue {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for TapQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MacvtapHandle {
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        read_timeout(&mut self.file, buf, timeout)
    }
}

impl Read for MacvtapHandle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for MacvtapHandle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl NodeRef<'_> {
    /// Opens a queue of tun/tap device `ifname` of this node (with the flags its declaration
    /// implies: type, multi_queue, vnet_hdr). A multi-queue device accepts several queues.
    /// Returns once the kernel sends through the device (at most 3 s after the first queue
    /// brought its carrier), so a packet routed into it right away is not lost.
    pub fn open_tap(&self, ifname: &str) -> io::Result<TapQueue> {
        let kind = self.interface_kind(ifname)?;
        let (tap, s) = match &kind {
            KindSpec::Tun(s) => (false, s),
            KindSpec::Tap(s) => (true, s),
            k => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{ifname} is a {}, not a tun or tap", k.name()))),
        };
        let flags = TunFlags { tap, multi_queue: s.multi_queue.unwrap_or(false), vnet_hdr: s.vnet_hdr.unwrap_or(false) };
        let name = ifname.to_string();
        let file = self.run(move || tun::open_queue_ready(&name, flags, Duration::from_secs(3)))?;
        Ok(TapQueue { file, tap, vnet_hdr: flags.vnet_hdr })
    }

    /// Opens the character device of macvtap `ifname` of this node. The device number is read
    /// from the node's own sysfs and the node made in a private mount, so the handle is right
    /// even when another namespace has a macvtap of the same ifindex.
    pub fn open_macvtap(&self, ifname: &str) -> io::Result<MacvtapHandle> {
        let kind = self.interface_kind(ifname)?;
        if !matches!(kind, KindSpec::Macvtap(_)) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{ifname} is a {}, not a macvtap", kind.name())));
        }
        let name = ifname.to_string();
        self.run(move || open_macvtap_here(&name))
    }

    fn interface_kind(&self, ifname: &str) -> io::Result<KindSpec> {
        self.lab()
            .model()
            .node(self.name())
            .and_then(|n| n.interfaces.get(ifname))
            .map(|i| i.kind.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("node {} has no device {ifname}", self.name())))
    }
}

/// On a thread inside the device's network namespace: a private mount namespace, sysfs of this
/// network namespace to read the device number, a private tmpfs to hold the device node.
fn open_macvtap_here(ifname: &str) -> io::Result<MacvtapHandle> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(io::Error::from)?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).map_err(io::Error::from)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(io::Error::from)?;
    let dir = std::env::temp_dir().join(format!("vnet-macvtap-{}-{ifindex}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> io::Result<File> {
        mount(Some("sysfs"), &dir, Some("sysfs"), MsFlags::empty(), None::<&str>).map_err(io::Error::from)?;
        let dev = std::fs::read_to_string(dir.join(format!("class/net/{ifname}/macvtap/tap{ifindex}/dev")));
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        let dev = dev?;
        let (maj, min) = dev.trim().split_once(':').ok_or_else(|| io::Error::other(format!("bad device number {dev:?}")))?;
        let (maj, min): (u64, u64) = (maj.parse().map_err(io::Error::other)?, min.parse().map_err(io::Error::other)?);
        mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::empty(), Some("mode=700")).map_err(io::Error::from)?;
        let node = dir.join("tap");
        nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o600), nix::sys::stat::makedev(maj, min))
            .map_err(io::Error::from)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&node);
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        let file = file?;
        // macvtap queues start with IFF_VNET_HDR; plain frames are what a test reads and writes.
        tun::set_queue_flags(&file, TunFlags { tap: true, ..Default::default() })?;
        Ok(file)
    })();
    let _ = std::fs::remove_dir(&dir);
    let file = result?;
    let _ = file.as_raw_fd();
    Ok(MacvtapHandle { file, path: format!("/dev/tap{ifindex}") })
}
