//! `trace`: the way a packet takes through a lab, hop by hop, with the kernel's own lookups: a
//! route lookup in the node (RTM_GETROUTE: output device, gateway, source), then what the device
//! leads to (`l2`), the next node's forwarding lookup, and so on until the packet is delivered,
//! dropped or leaves the lab. Then one real probe confirms (or contradicts) the lookups: an ICMP
//! echo, or for a TCP or UDP trace a connect or a datagram to a listener the trace starts where
//! the packet is delivered.

pub mod foreign;
pub mod hop;
pub mod l2;
pub mod netfilter;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use hop::{Confirm, Hop, TraceReport, Verdict};
pub use netfilter::{Proto, Translation};

use crate::check::report::echo_seen;
use crate::error::{Error, Result};
use crate::inspect::view::LabView;
use crate::inspect::RunningLab;
use crate::kernel::nl::KernelError;
use crate::model::netfeat::spec::ChainKind;
use crate::probe::echo::{self, EchoOptions, EchoProbe};
use crate::probe::port::{self, Listen, PortOutcome};
use crate::probe::route::{self, Lookup};

/// Traces an ICMP echo from `from` to `dst` (an address, or a node name: its first address).
pub fn trace(lab: &str, from: &str, dst: &str) -> Result<TraceReport> {
    trace_flow(lab, from, dst, Proto::Icmp)
}

/// Traces a packet of `proto` (ICMP echo, or a TCP connection / UDP datagram to a port): the
/// firewall rules and port forwards that match on protocol and port decide its way, and the
/// confirming probe is of the same protocol.
pub fn trace_flow(lab: &str, from: &str, dst: &str, proto: Proto) -> Result<TraceReport> {
    let rl = RunningLab::open(lab)?;
    trace_running_flow(&rl, from, dst, proto)
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

/// Traces an ICMP echo in an opened lab.
pub fn trace_running(rl: &RunningLab, from: &str, dst: &str) -> Result<TraceReport> {
    trace_running_flow(rl, from, dst, Proto::Icmp)
}

/// Traces a packet of `proto` in an opened lab.
pub fn trace_running_flow(rl: &RunningLab, from: &str, dst: &str, proto: Proto) -> Result<TraceReport> {
    rl.fd(from)?;
    let dst = resolve(rl, dst)?;
    // A destination declared on a node whose namespace is gone: nothing to follow there.
    if let Some(n) = rl.missing_holder(dst) {
        rl.fd(n)?;
    }
    let view = LabView::observe(rl)?;
    let (there, back) = there_and_back(rl, &view, from, dst, proto)?;
    let verdict = there.verdict;
    let back_verdict = back.as_ref().map(|b| b.verdict);
    let round_trip = verdict == Verdict::Delivered && back_verdict.is_none_or(|v| v == Verdict::Delivered);
    let confirm = match proto {
        Proto::Icmp => confirm(rl, from, dst, round_trip)?,
        Proto::Tcp(_) | Proto::Udp(_) => confirm_port(rl, &view, from, dst, proto, &there, round_trip)?,
    };
    let back = back.map(|b| b.hops).unwrap_or_default();
    // The lookups say it gets through, the probe does not: rules the file does not declare
    // (iptables, nft by hand) in a node on the way may be why.
    let mut notes = Vec::new();
    if !confirm.agrees && !confirm.reply {
        let mut nodes: Vec<&str> = Vec::new();
        for h in there.hops.iter().chain(back.iter()) {
            if let Hop::Route { node, .. } = h {
                if !nodes.contains(&node.as_str()) {
                    nodes.push(node);
                }
            }
        }
        for n in nodes {
            let rules = foreign::foreign_rules(rl, n);
            if !rules.is_empty() {
                notes.push(foreign_note(n, &rules));
            }
        }
    }
    Ok(TraceReport { lab: rl.name().into(), from: from.into(), dst, proto, hops: there.hops, verdict, back, back_verdict, confirm: Some(confirm), notes })
}

/// `node c has firewall rules not declared in the file (...): they may drop this packet`.
pub fn foreign_note(node: &str, rules: &[String]) -> String {
    let mut list = rules.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if rules.len() > 3 {
        list.push_str(&format!("; and {} more", rules.len() - 3));
    }
    format!("node {node} has firewall rules not declared in the file ({list}): they may drop this packet")
}

/// One direction of a trace: its steps, how it ended, and what the packet looked like at the
/// end (addresses after the lab's NAT), with what the answer needs to come back the same way.
#[derive(Clone, Debug)]
pub struct Walked {
    pub hops: Vec<Hop>,
    pub verdict: Verdict,
    /// The node the packet was delivered to (when it was).
    pub at: Option<String>,
    /// The source and destination as they arrived.
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
    /// Translations made on the way (undone for the answer at the same node).
    pub nat: Vec<Translation>,
    /// Nodes whose forward chain let the packet through (their answers are `established`).
    pub forwarded: Vec<String>,
    /// The protocol and port as it arrived (a port forward changes the port).
    pub proto: Proto,
}

/// The way there and, when the packet is delivered, the answer's way back: from the node that
/// got it, to the source it saw (after NAT), from the address it was sent to.
pub fn there_and_back(rl: &RunningLab, view: &LabView, from: &str, dst: IpAddr, proto: Proto) -> Result<(Walked, Option<Walked>)> {
    let there = walk_flow(rl, view, from, dst, None, proto, None)?;
    let mut back = None;
    if there.verdict == Verdict::Delivered {
        if let (Some(at), Some(src)) = (there.at.clone(), there.src) {
            if at != from || src != there.dst {
                let answer = match proto {
                    Proto::Icmp => Proto::Icmp,
                    // The answer goes to the client's port, which no declared rule names.
                    Proto::Tcp(_) => Proto::Tcp(0),
                    Proto::Udp(_) => Proto::Udp(0),
                };
                back = Some(walk_flow(rl, view, &at, src, Some(there.dst), answer, Some(&there))?);
            }
        }
    }
    Ok((there, back))
}

fn ifindex_name(view: &LabView, node: &str, i: u32) -> String {
    view.link(node, i).map(|l| l.name.clone()).unwrap_or_else(|| format!("#{i}"))
}

/// The lookups, node after node.
/// `origin_src`: the source address the first node uses (an answer leaves from the address
/// that was asked); otherwise the kernel picks it.
pub fn walk(rl: &RunningLab, view: &LabView, from: &str, dst: IpAddr, origin_src: Option<IpAddr>) -> Result<(Vec<Hop>, Verdict)> {
    let w = walk_flow(rl, view, from, dst, origin_src, Proto::Icmp, None)?;
    Ok((w.hops, w.verdict))
}

/// The lookups for a packet of `proto`, with the lab's declared NAT and firewall applied at
/// each node; `reply_to`: the walk this one answers (its translations are undone, its
/// forwarded connections are established).
pub fn walk_flow(
    rl: &RunningLab,
    view: &LabView,
    from: &str,
    dst: IpAddr,
    origin_src: Option<IpAddr>,
    proto: Proto,
    reply_to: Option<&Walked>,
) -> Result<Walked> {
    let mut w = Walked { hops: Vec::new(), verdict: Verdict::Dropped, at: None, src: origin_src, dst, nat: Vec::new(), forwarded: Vec::new(), proto };
    w.verdict = walk_into(rl, view, from, proto, reply_to, &mut w)?;
    Ok(w)
}

fn walk_into(rl: &RunningLab, view: &LabView, from: &str, proto: Proto, reply_to: Option<&Walked>, w: &mut Walked) -> Result<Verdict> {
    let mut proto = proto;
    let mut node = from.to_string();
    let mut iif: Option<u32> = None;
    let mut seen: BTreeSet<(String, Option<u32>)> = BTreeSet::new();
    let underlay = |n: &str, remote: IpAddr| -> Option<(u32, Option<IpAddr>)> {
        match rl.route_lookup(n, Lookup::to(remote)) {
            Ok(Ok((a, _))) if a.kind == "unicast" => a.oif.map(|o| (o, a.gateway)),
            _ => None,
        }
    };
    for _ in 0..32 {
        if !seen.insert((node.clone(), iif)) {
            w.hops.push(Hop::Drop {
                node: node.clone(),
                dev: iif.map(|i| ifindex_name(view, &node, i)),
                cause: "loop".into(),
                why: "the packet comes back here: routing loop".into(),
            });
            return Ok(Verdict::Loop);
        }
        let iif_name = iif.map(|i| ifindex_name(view, &node, i));
        let nft = rl.model().nodes.get(&node).and_then(|n| n.features.nft.as_ref());
        // Prerouting: the answer's destination is translated back where the way there was
        // masqueraded; a port forward rewrites the destination of a packet coming in.
        if let Some(iname) = iif_name.as_deref() {
            match reply_to {
                Some(req) => {
                    if let Some(t) = req.nat.iter().find(|t| t.node == node && t.source && t.to == w.dst) {
                        w.hops.push(Hop::Nat {
                            node: node.clone(),
                            what: "answer to a translated connection (connection tracking)".into(),
                            field: "destination".into(),
                            from: w.dst.to_string(),
                            to: t.from.to_string(),
                        });
                        w.dst = t.from;
                    }
                }
                None => {
                    if let Some((to, port, what)) = nft.and_then(|n| netfilter::dnat(n, iname, w.dst, proto)) {
                        let (old_port, old) = (proto.port().unwrap_or(0), w.dst);
                        w.hops.push(Hop::Nat {
                            node: node.clone(),
                            what: format!("{what} (nodes.{node}.nat)"),
                            field: "destination".into(),
                            from: format!("{old}:{old_port}"),
                            to: format!("{to}:{port}"),
                        });
                        w.nat.push(Translation { node: node.clone(), source: false, from: old, to });
                        w.dst = to;
                        proto = proto.with_port(port);
                        w.proto = proto;
                    }
                }
            }
        }
        let (dst, src) = (w.dst, w.src);
        let l = Lookup { dst: Some(dst), src, iif, oif: None };
        let ans = match rl.route_lookup(&node, l)? {
            Err(e) => {
                w.hops.push(Hop::Route { node: node.clone(), dst, src, iif: iif_name.clone(), kind: "error".into(), dev: None, gateway: None, table: None });
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
                w.hops.push(Hop::Drop { node: node.clone(), dev: iif_name, cause: cause.into(), why });
                return Ok(Verdict::Dropped);
            }
            Ok((a, _)) => a,
        };
        if iif.is_none() && w.src.is_none() {
            w.src = ans.src;
        }
        let src = w.src;
        let dev = ans.oif.map(|o| ifindex_name(view, &node, o));
        w.hops.push(Hop::Route {
            node: node.clone(),
            dst,
            src,
            iif: iif_name.clone(),
            kind: ans.kind.clone(),
            dev: dev.clone(),
            gateway: ans.gateway,
            table: ans.table,
        });
        // The filter chains of the lab's table: output for what the node sends, input for what
        // it receives, forward for what it routes on.
        let mut chains = Vec::new();
        if iif.is_none() {
            chains.push(ChainKind::Output);
        }
        match ans.kind.as_str() {
            "local" => chains.push(ChainKind::Input),
            "unicast" if iif.is_some() => chains.push(ChainKind::Forward),
            _ => {}
        }
        if let Some(spec) = nft {
            for c in chains {
                let established = c == ChainKind::Forward && reply_to.is_some_and(|r| r.forwarded.contains(&node));
                let Some(d) = netfilter::filter(spec, c, src, dst, proto, established) else { continue };
                let chain = netfilter::chain_name(c).to_string();
                if !d.accept {
                    w.hops.push(Hop::Drop {
                        node: node.clone(),
                        dev: None,
                        cause: "firewall".into(),
                        why: format!("by firewall ({}, chain {chain}) declared in nodes.{node}.firewall", d.why),
                    });
                    return Ok(Verdict::Dropped);
                }
                w.hops.push(Hop::Filter { node: node.clone(), chain, why: d.why });
                if c == ChainKind::Forward {
                    w.forwarded.push(node.clone());
                }
            }
        }
        match ans.kind.as_str() {
            "local" => {
                w.hops.push(Hop::Deliver { node: node.clone(), dev: iif_name.unwrap_or_else(|| "lo".into()) });
                w.at = Some(node);
                return Ok(Verdict::Delivered);
            }
            "unicast" => {}
            other => {
                w.hops.push(Hop::Drop { node: node.clone(), dev: None, cause: "no-route".into(), why: format!("the route is of type {other}") });
                return Ok(Verdict::Dropped);
            }
        }
        let Some(oif) = ans.oif else {
            w.hops.push(Hop::Drop { node: node.clone(), dev: None, cause: "no-route".into(), why: "the route has no output device".into() });
            return Ok(Verdict::Dropped);
        };
        let next_hop = ans.gateway.unwrap_or(dst);
        // Postrouting: masquerade / SNAT on the way there; for the answer, the source a port
        // forward rewrote on the way there is put back.
        match reply_to {
            Some(req) => {
                if let Some(t) = src.and_then(|s| req.nat.iter().find(|t| t.node == node && !t.source && t.to == s)) {
                    w.hops.push(Hop::Nat {
                        node: node.clone(),
                        what: "answer to a port-forwarded connection (connection tracking)".into(),
                        field: "source".into(),
                        from: t.to.to_string(),
                        to: t.from.to_string(),
                    });
                    w.src = Some(t.from);
                }
            }
            None => {
                let out = dev.clone().unwrap_or_default();
                let out_addrs: Vec<ipnet::IpNet> =
                    view.nodes.get(&node).map(|v| v.ns.addrs.iter().filter(|a| a.ifindex == oif).map(|a| a.addr).collect()).unwrap_or_default();
                if let (Some(spec), Some(s)) = (nft, src) {
                    match netfilter::snat(spec, s, &out, &out_addrs, next_hop) {
                        Some(Some((to, what))) => {
                            w.hops.push(Hop::Nat {
                                node: node.clone(),
                                what: format!("{what} (nodes.{node}.nat)"),
                                field: "source".into(),
                                from: s.to_string(),
                                to: to.to_string(),
                            });
                            w.nat.push(Translation { node: node.clone(), source: true, from: s, to });
                            w.src = Some(to);
                        }
                        Some(None) => {
                            w.hops.push(Hop::Drop {
                                node: node.clone(),
                                dev: dev.clone(),
                                cause: "nat".into(),
                                why: format!("masquerade out of {out}, which has no IPv4 address to take"),
                            });
                            return Ok(Verdict::Dropped);
                        }
                        None => {}
                    }
                }
            }
        }
        let mut lw = l2::Walker::new(view, next_hop, &underlay);
        if view.holders(next_hop).is_empty() {
            // Nobody in the lab holds the next hop: follow the frame anyway; it can only leave.
            let end = lw.egress(&node, oif);
            w.hops.append(&mut lw.hops);
            if end != l2::End::LeftLab {
                if let Some(Hop::Drop { why, .. }) = w.hops.last_mut() {
                    *why = format!("{why}; {next_hop} is not an address of any node in the lab");
                }
            }
            return Ok(if end == l2::End::LeftLab { Verdict::LeftLab } else { Verdict::Dropped });
        }
        let end = lw.egress(&node, oif);
        w.hops.append(&mut lw.hops);
        match end {
            l2::End::Arrived(n2, dev2) => {
                node = n2;
                iif = Some(dev2);
            }
            l2::End::Dropped => return Ok(Verdict::Dropped),
            l2::End::LeftLab => return Ok(Verdict::LeftLab),
        }
    }
    w.hops.push(Hop::Drop { node, dev: None, cause: "loop".into(), why: "more than 32 routed hops".into() });
    Ok(Verdict::Loop)
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

/// The probe of a TCP or UDP trace: a listener where the lookups deliver the packet (a port
/// forward's target), or, when they drop it, on the node holding its destination, so that a
/// probe that does get through is answered; then a TCP connect (a UDP datagram, which the
/// listener echoes) from `from`, in the style of `check`'s port expectations.
fn confirm_port(rl: &RunningLab, view: &LabView, from: &str, dst: IpAddr, proto: Proto, there: &Walked, round_trip: bool) -> Result<Confirm> {
    let (kind, port) = match proto {
        Proto::Tcp(p) => (crate::model::expect::Proto::Tcp, p),
        Proto::Udp(p) => (crate::model::expect::Proto::Udp, p),
        Proto::Icmp => unreachable!("an ICMP trace is confirmed by an echo"),
    };
    let at_port = there.proto.port().unwrap_or(port);
    let listen_at = there.at.clone().or_else(|| view.holders(there.dst).first().map(|(n, _)| n.to_string())).map(|n| (n, SocketAddr::new(there.dst, at_port)));
    let mut listener = None;
    let mut note = None;
    if let Some((node, sa)) = &listen_at {
        let there_too = if *sa == SocketAddr::new(dst, port) { format!("in {node}") } else { format!("in {node} on {sa}") };
        note = Some(match port::listen(Some(rl.fd(node)?), kind, *sa) {
            Ok(Listen::Started(l)) => {
                listener = Some(l);
                format!("listener started by the trace {there_too}")
            }
            Ok(Listen::InUse) => format!("something already listens {there_too}"),
            Err(e) => format!("could not listen {there_too}: {e}"),
        });
    }
    let sa = SocketAddr::new(dst, port);
    let out =
        crate::probe::ns::in_one(Some(rl.fd(from)?), move || port::probe_here(kind, sa, Duration::from_millis(1500))).map_err(|e| Error::io("probe", e))?;
    drop(listener);
    // A UDP port that neither answers nor refuses, without our listener, may be open or filtered.
    let ours = note.as_deref().is_some_and(|n| n.starts_with("listener started"));
    let out = if kind == crate::model::expect::Proto::Udp && !ours && out == PortOutcome::Timeout { PortOutcome::NoAnswer } else { out };
    let reply = out == PortOutcome::Open;
    // Refused (a reset, ICMP port unreachable) means the packet got somewhere that answered.
    let answered = matches!(out, PortOutcome::Open | PortOutcome::Refused);
    let agrees = if round_trip { reply } else { !answered };
    let mut seen = format!("{kind} {sa} {}", out.text());
    if let Some(n) = note {
        seen.push_str(&format!("; {n}"));
    }
    Ok(Confirm { seen, reply, agrees })
}
