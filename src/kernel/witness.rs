//! Knowing when the kernel has destroyed a namespace that was let go. Deleting a namespace
//! returns at once; its devices go later, in the kernel's cleanup worker, which takes every
//! namespace released meanwhile in one batch (one device-unregister pass for all: far cheaper
//! than deleting devices namespace by namespace, ~40 ms each). A witness is a veth pair with
//! one end in the watched namespace and the other in a private namespace of ours: when the
//! watched namespace is destroyed, its end is unregistered with the rest of its batch, the
//! peer goes with it, and we get the notification. Batches run one after the other, so the
//! namespace released last answers for all the earlier ones.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;

use super::kinds::veth_info;
use super::msg::{self, LinkBase};
use super::netns;
use super::nl::Netlink;

const RTNLGRP_LINK: u32 = 1;

pub struct Witness {
    nl: Netlink,
    ifindex: u32,
    /// Our private namespace, freed (holding only lo by then) when the witness is dropped.
    _own: OwnedFd,
}

impl Witness {
    /// Puts a witness into the namespace behind `target` (which must still be alive).
    pub fn attach(target: BorrowedFd<'_>) -> io::Result<Witness> {
        let raw = target.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || -> io::Result<Witness> {
                netns::unshare_thread()?;
                let own = netns::open_current()?;
                let mut nl = Netlink::open()?;
                nl.subscribe(RTNLGRP_LINK)?;
                // The name is ours in our namespace; in the target, one no lab device has.
                let name = format!("vnw{}", std::process::id() % 1_000_000_000);
                let peer = LinkBase { name: name.clone(), netns_fd: Some(raw), ..Default::default() };
                let base = LinkBase { name, ..Default::default() };
                let m = msg::new_link(&base, Some(veth_info(msg::link_with(&peer))));
                let reply = nl.request(m, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO).map_err(|e| io::Error::other(format!("create the teardown witness: {e}")))?;
                let ifindex = reply
                    .iter()
                    .find_map(|r| match r {
                        RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                        _ => None,
                    })
                    .ok_or_else(|| io::Error::other("the kernel did not echo the witness"))?;
                Ok(Witness { nl, ifindex, _own: own })
            })
            .join()
            .map_err(|_| io::Error::other("witness thread panicked"))?
        })
    }

    /// Waits until the watched namespace's devices are gone; false after `timeout` (something
    /// else still holds the namespace).
    pub fn wait(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.present() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Any notification (or none within a slice) is a cue to look again: a lost
            // notification (a full socket buffer) must not make us wait for nothing.
            let slice = (deadline - now).min(Duration::from_millis(250));
            let _ = self.nl.notifications(slice);
        }
    }

    /// Waits until the kernel has destroyed every namespace released before the call (a
    /// benchmark's phase must not pay for the previous phase's teardown); false after
    /// `timeout`.
    pub fn barrier(timeout: Duration) -> io::Result<bool> {
        let target = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<OwnedFd> {
                netns::unshare_thread()?;
                netns::open_current()
            })
            .join()
            .map_err(|_| io::Error::other("barrier thread panicked"))?
        })?;
        use std::os::fd::AsFd;
        let w = Witness::attach(target.as_fd())?;
        // The last reference: the namespace joins the kernel's cleanup queue behind the others.
        drop(target);
        Ok(w.wait(timeout))
    }

    fn present(&mut self) -> bool {
        let mut q = LinkMessage::default();
        q.header.index = self.ifindex;
        match self.nl.request(RouteNetlinkMessage::GetLink(q), 0) {
            Ok(r) => r.iter().any(|m| matches!(m, RouteNetlinkMessage::NewLink(l) if l.header.index == self.ifindex)),
            Err(e) => e.errno != libc::ENODEV,
        }
    }
}
