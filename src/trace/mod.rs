//! `trace`: the way a packet takes through a lab, hop by hop, with the kernel's own lookups: a
//! route lookup in the node (RTM_GETROUTE: output device, gateway, source), then what the device
//! leads to (`l2`), the next node's forwarding lookup, and so on until the packet is delivered,
//! dropped or leaves the lab. Then one real probe confirms (or contradicts) the lookups.

pub mod hop;
pub mod l2;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

pub use hop::{Confirm, Hop, TraceReport, Verdict};

use crate::check::report::echo_seen;
use crate::error::{Error, Result};
use crate::inspect::view::LabView;
use crate::inspect::RunningLab;
use crate::kernel::nl::KernelError;
use crate::probe::echo::{self, EchoOptions, EchoProbe};
use crate::probe::route::{self, Lookup};

/// Traces from `from` to `dst` (an address, or a node name: its first address).
pub fn trace(lab: &str, from: &str, dst: &str) -> Result<TraceReport> {
    let rl = RunningLab::open(lab)?;
    trace_running(&rl, from, dst)
}

/// Resolves a destination written as an address or a node name.
pub fn resolve(rl: &RunningLab, dst: &str) -> Result<IpAddr> {
    if let Ok(a) = dst.parse::<IpAddr>() {
        return Ok(a);
    }
    let node = rl.model().nodes.get(dst).ok_or_else(|| Error::NoSuchNode { lab: rl.name().into(), node: dst.into() })?;
    node.interfaces
        .values()
        .flat_map(|i| i.addresses.iter())
        .map(|a| a.addr())
        .next()
        .ok_or_else(|| Error::io(format!("trace to {dst}"), std::io::Error::other(format!("node {dst} has no address"))))
}

/// Traces in an opened lab.
pub fn trace_running(rl: &RunningLab, from: &str, dst: &str) -> Result<TraceReport> {
    rl.fd(from)?;
    let dst = resolve(rl, dst)?;
    // A destination declared on a node whose namespace is gone: nothing to follow there.
    if let Some(n) = rl.missing_holder(dst) {
        rl.fd(n)?;
    }
    let view = LabView::observe(rl)?;
    let (hops, verdict) = walk(rl, &view, from, dst, None)?;
    // The answer's way back: from the node that got it, to the source the sender used.
    let mut back = Vec::new();
    let mut back_verdict = None;
    if verdict == Verdict::Delivered {
        let at = hops.iter().rev().find_map(|h| match h {
            Hop::Deliver { node, .. } => Some(node.clone()),
            _ => None,
        });
        let src = hops.iter().find_map(|h| match h {
            Hop::Route { src, .. } => *src,
            _ => None,
        });
        if let (Some(at), Some(src)) = (at, src) {
            if at != from || src != dst {
                let (h, v) = walk(rl, &view, &at, src, Some(dst))?;
                back = h;
                back_verdict = Some(v);
            }
        }
    }
    let round_trip = verdict == Verdict::Delivered && back_verdict.is_none_or(|v| v == Verdict::Delivered);
    let confirm = confirm(rl, from, dst, round_trip)?;
    Ok(TraceReport { lab: rl.name().into(), from: from.into(), dst, hops, verdict, back, back_verdict, confirm: Some(confirm) })
}

fn ifindex_name(view: &LabView, node: &str, i: u32) -> String {
    view.link(node, i).map(|l| l.name.clone()).unwrap_or_else(|| format!("#{i}"))
}

/// The lookups, node after node.
/// `origin_src`: the source address the first node uses (an answer leaves from the address
/// that was asked); otherwise the kernel picks it.
pub fn walk(rl: &RunningLab, view: &LabView, from: &str, dst: IpAddr, origin_src: Option<IpAddr>) -> Result<(Vec<Hop>, Verdict)> {
    let mut hops = Vec::new();
    let mut node = from.to_string();
    let mut iif: Option<u32> = None;
    let mut src: Option<IpAddr> = origin_src;
    let mut seen: BTreeSet<(String, Option<u32>)> = BTreeSet::new();
    let underlay = |n: &str, remote: IpAddr| -> Option<(u32, Option<IpAddr>)> {
        match rl.route_lookup(n, Lookup::to(remote)) {
            Ok(Ok((a, _))) if a.kind == "unicast" => a.oif.map(|o| (o, a.gateway)),
            _ => None,
        }
    };
    for _ in 0..32 {
        if !seen.insert((node.clone(), iif)) {
            hops.push(Hop::Drop {
                node: node.clone(),
                dev: iif.map(|i| ifindex_name(view, &node, i)),
                cause: "loop".into(),
                why: "the packet comes back here: routing loop".into(),
            });
            return Ok((hops, Verdict::Loop));
        }
        let l = Lookup { dst: Some(dst), src, iif, oif: None };
        let iif_name = iif.map(|i| ifindex_name(view, &node, i));
        let ans = match rl.route_lookup(&node, l)? {
            Err(e) => {
                hops.push(Hop::Route { node: node.clone(), dst, src, iif: iif_name.clone(), kind: "error".into(), dev: None, gateway: None, table: None });
                // Since Linux 6.13 a failed input lookup answers EINVAL whatever the drop reason;
                // reverse-path filtering is then recognised by asking the route back to the source.
                let rp = iif.is_some() && matches!(e.errno, libc::EXDEV | libc::EINVAL) && rp_rejects(rl, view, &node, iif_name.as_deref().unwrap_or(""), src)?;
                let cause = match e.errno {
                    _ if rp => "rp-filter",
                    libc::EXDEV => "rp-filter",
                    libc::EINVAL if iif.is_some() => "martian",
                    libc::EHOSTUNREACH if iif.is_some() && view.sysctl(&node, "net.ipv4.ip_forward") == Some("0") && dst.is_ipv4() => "forwarding-off",
                    libc::EHOSTUNREACH if iif.is_some() && view.sysctl(&node, "net.ipv6.conf.all.forwarding") == Some("0") && dst.is_ipv6() => "forwarding-off",
                    libc::ENODEV => "device-down",
                    _ => "no-route",
                };
                let why = match cause {
                    "rp-filter" => route::error_text(&KernelError { errno: libc::EXDEV, text: None }, true),
                    "martian" => "dropped by the kernel's input checks (martian source or destination)".into(),
                    _ => route::error_text(&e, iif.is_some()),
                };
                hops.push(Hop::Drop { node: node.clone(), dev: iif_name, cause: cause.into(), why });
                return Ok((hops, Verdict::Dropped));
            }
            Ok((a, _)) => a,
        };
        if iif.is_none() && src.is_none() {
            src = ans.src;
        }
        let dev = ans.oif.map(|o| ifindex_name(view, &node, o));
        hops.push(Hop::Route {
            node: node.clone(),
            dst,
            src,
            iif: iif_name.clone(),
            kind: ans.kind.clone(),
            dev: dev.clone(),
            gateway: ans.gateway,
            table: ans.table,
        });
        match ans.kind.as_str() {
            "local" => {
                hops.push(Hop::Deliver { node: node.clone(), dev: iif_name.unwrap_or_else(|| "lo".into()) });
                return Ok((hops, Verdict::Delivered));
            }
            "unicast" => {}
            other => {
                hops.push(Hop::Drop { node: node.clone(), dev: None, cause: "no-route".into(), why: format!("the route is of type {other}") });
                return Ok((hops, Verdict::Dropped));
            }
        }
        let Some(oif) = ans.oif else {
            hops.push(Hop::Drop { node: node.clone(), dev: None, cause: "no-route".into(), why: "the route has no output device".into() });
            return Ok((hops, Verdict::Dropped));
        };
        let next_hop = ans.gateway.unwrap_or(dst);
        let mut w = l2::Walker::new(view, next_hop, &underlay);
        if view.holders(next_hop).is_empty() {
            // Nobody in the lab holds the next hop: follow the frame anyway; it can only leave.
            let end = w.egress(&node, oif);
            hops.append(&mut w.hops);
            if end != l2::End::LeftLab {
                if let Some(Hop::Drop { why, .. }) = hops.last_mut() {
                    *why = format!("{why}; {next_hop} is not an address of any node in the lab");
                }
            }
            return Ok((hops, if end == l2::End::LeftLab { Verdict::LeftLab } else { Verdict::Dropped }));
        }
        let end = w.egress(&node, oif);
        hops.append(&mut w.hops);
        match end {
            l2::End::Arrived(n2, dev2) => {
                node = n2;
                iif = Some(dev2);
            }
            l2::End::Dropped => return Ok((hops, Verdict::Dropped)),
            l2::End::LeftLab => return Ok((hops, Verdict::LeftLab)),
        }
    }
    hops.push(Hop::Drop { node, dev: None, cause: "loop".into(), why: "more than 32 routed hops".into() });
    Ok((hops, Verdict::Loop))
}

/// Whether `node`'s reverse-path filter rejects `src` arriving on `dev`: strict (1) when the
/// route back to `src` leaves by another device, loose (2) when there is no route back at all.
fn rp_rejects(rl: &RunningLab, view: &LabView, node: &str, dev: &str, src: Option<IpAddr>) -> Result<bool> {
    let Some(src) = src else { return Ok(false) };
    if !src.is_ipv4() {
        return Ok(false);
    }
    let mode = view.rp_filter(node, dev);
    if mode == 0 {
        return Ok(false);
    }
    Ok(match rl.route_lookup(node, Lookup::to(src))? {
        Err(_) => true,
        Ok((_, back)) => mode == 1 && back.as_deref() != Some(dev),
    })
}

fn confirm(rl: &RunningLab, from: &str, dst: IpAddr, round_trip: bool) -> Result<Confirm> {
    let fds = rl.borrowed(&[from.to_string()])?;
    let probe = [EchoProbe { src: 0, dst, size: None, df: false, phase: 0 }];
    let r = echo::run(&fds, &probe, &EchoOptions { timeout: Duration::from_millis(1500), threads: 1, window: 1, finished: None })
        .map_err(|e| Error::io("probe", e))?;
    let o = &r[0].outcome;
    let reply = o.is_reply();
    Ok(Confirm { seen: echo_seen(o, false), reply, agrees: reply == round_trip })
}
