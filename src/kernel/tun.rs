//! tun/tap devices through /dev/net/tun: TUNSETIFF creates (or attaches to) a device in the
//! calling thread's network namespace, TUNSETPERSIST keeps it once the descriptor closes,
//! TUNSETOWNER/TUNSETGROUP let a user open it. rtnetlink can neither create nor delete them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

use nix::{ioctl_write_int_bad, ioctl_write_ptr_bad, request_code_write};

const IFF_TUN: libc::c_short = 0x0001;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

ioctl_write_ptr_bad!(tunsetiff, request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()), libc::ifreq);
ioctl_write_int_bad!(tunsetpersist, request_code_write!(b'T', 203, std::mem::size_of::<libc::c_int>()));
ioctl_write_int_bad!(tunsetowner, request_code_write!(b'T', 204, std::mem::size_of::<libc::c_int>()));
ioctl_write_int_bad!(tunsetgroup, request_code_write!(b'T', 206, std::mem::size_of::<libc::c_int>()));

/// How a queue is opened: the flags must match the device's (type, multi-queue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunFlags {
    /// Ethernet frames (tap) rather than IP packets (tun).
    pub tap: bool,
    pub multi_queue: bool,
    pub vnet_hdr: bool,
}

impl TunFlags {
    fn bits(&self) -> libc::c_short {
        let mut f = if self.tap { IFF_TAP } else { IFF_TUN } | IFF_NO_PI;
        if self.multi_queue {
            f |= IFF_MULTI_QUEUE;
        }
        if self.vnet_hdr {
            f |= IFF_VNET_HDR;
        }
        f
    }
}

/// Opens a queue of device `name` in the calling thread's namespace, creating the device if
/// it does not exist. Reads and writes on the file are whole packets (or frames).
pub fn open_queue(name: &str, flags: TunFlags) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad device name `{name}`")));
    }
    let f = OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = flags.bits();
    // A queue just closed here can still be attached for an instant: a child process that
    // another thread is spawning holds a copy of every descriptor until its exec. Only a
    // holder that stays is an error.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        // SAFETY: fd is open; req lives across the call.
        match unsafe { tunsetiff(f.as_raw_fd(), &req) } {
            Ok(_) => return Ok(f),
            Err(nix::errno::Errno::EBUSY) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(nix::errno::Errno::EBUSY) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("{name} is held open by another program (a device without multi_queue takes one queue)"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens a queue as `open_queue` does, and returns once the kernel can send through the
/// device. Attaching the first queue turns the carrier on, but the kernel starts the device's
/// transmit queues later, in its link-watch work: until then a packet routed into the device is
/// dropped, and on a busy machine that work can wait. The wait ends on the kernel's notification
/// that the device is operational (sent after its queues started), at most `limit`; a device
/// that is down, or already has its carrier, is not waited for.
pub fn open_queue_ready(name: &str, flags: TunFlags, limit: std::time::Duration) -> io::Result<File> {
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::RouteNetlinkMessage;

    const RTNLGRP_LINK: u32 = 1;
    let index = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
    let mut nl = super::nl::Netlink::open()?;
    let link = |m: &RouteNetlinkMessage| match m {
        RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(super::observe::decode_link(l)),
        _ => None,
    };
    let mut q = LinkMessage::default();
    q.header.index = index;
    let now = nl.request(RouteNetlinkMessage::GetLink(q), 0).map_err(|e| io::Error::other(e.to_string()))?;
    let waits = now.iter().filter_map(link).any(|l| l.up && !l.carrier);
    if !waits {
        return open_queue(name, flags);
    }
    // Subscribed before the queue attaches: the notification cannot be missed.
    nl.subscribe(RTNLGRP_LINK)?;
    let f = open_queue(name, flags)?;
    let deadline = std::time::Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) {
        if nl.notifications(left)?.iter().filter_map(link).any(|l| l.carrier && l.oper == "up") {
            break;
        }
    }
    Ok(f)
}

/// Sets the flags of an open queue (a macvtap character device accepts IFF_VNET_HDR on/off).
pub fn set_queue_flags(f: &File, flags: TunFlags) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_ifru.ifru_flags = flags.bits();
    // SAFETY: fd is open; req lives across the call.
    unsafe { tunsetiff(f.as_raw_fd(), &req) }.map_err(io::Error::from)?;
    Ok(())
}

/// Creates a persistent device; returns its ifindex.
pub fn create(name: &str, flags: TunFlags, owner: Option<u32>, group: Option<u32>) -> io::Result<u32> {
    let f = open_queue(name, flags)?;
    let fd = f.as_raw_fd();
    let undo = |e: nix::Error| {
        // SAFETY: fd is open.
        let _ = unsafe { tunsetpersist(fd, 0) };
        io::Error::from(e)
    };
    // SAFETY: fd is a tun queue; the arguments are plain integers.
    unsafe {
        tunsetpersist(fd, 1).map_err(io::Error::from)?;
        if let Some(u) = owner {
            tunsetowner(fd, u as libc::c_int).map_err(undo)?;
        }
        if let Some(g) = group {
            tunsetgroup(fd, g as libc::c_int).map_err(undo)?;
        }
    }
    let idx = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
    Ok(idx)
}

/// Deletes a persistent device: attach, clear persistence, close.
pub fn delete(name: &str, flags: TunFlags) -> io::Result<()> {
    let f = open_queue(name, flags)?;
    // SAFETY: fd is a tun queue.
    unsafe { tunsetpersist(f.as_raw_fd(), 0) }.map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_the_kernel_headers() {
        assert_eq!(TunFlags { tap: false, ..Default::default() }.bits(), 0x1001);
        assert_eq!(TunFlags { tap: true, multi_queue: true, vnet_hdr: true }.bits(), 0x5102);
        // TUNSETIFF is _IOW('T', 202, int).
        assert_eq!(request_code_write!(b'T', 202, 4), 0x400454ca);
        assert_eq!(request_code_write!(b'T', 203, 4), 0x400454cb);
    }
}
