//! After `up`: wait until the bridges' ports forward. A bridge enables a port when the kernel's
//! link watcher has seen the port's carrier, asynchronously; on a busy machine that can come
//! after `up` returns, and a first packet through the bridge is lost. The wait is driven by the
//! kernel's link notifications and bounded; it costs one dump when all is already in place.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;

use crate::kernel::handle::NsHandle;
use crate::kernel::netns;
use crate::kernel::nl::Netlink;
use crate::kernel::observe;
use crate::model::kind::KindSpec;
use crate::model::Lab;
use crate::observed::ObservedLink;

const RTNLGRP_LINK: u32 = 1;
/// Longest wait for ports to forward (STP-less bridges forward as soon as carrier is seen).
const LIMIT: Duration = Duration::from_secs(5);

/// Waits for the ports of every up, STP-less bridge of the lab; returns warnings for ports
/// that did not forward in time.
pub fn bridges(lab: &Lab, handles: &mut BTreeMap<String, NsHandle>) -> Vec<String> {
    let mut warnings = Vec::new();
    for (node, n) in &lab.nodes {
        let waiting: Vec<&str> =
            n.interfaces.values().filter(|i| i.up && matches!(&i.kind, KindSpec::Bridge(b) if b.stp != Some(true))).map(|i| i.name.as_str()).collect();
        if waiting.is_empty() {
            continue;
        }
        let Some(h) = handles.get_mut(node) else { continue };
        match wait_node(h, &waiting) {
            Ok(late) if late.is_empty() => {}
            Ok(late) => warnings.push(format!("node {node}: bridge ports not forwarding after {}s: {}", LIMIT.as_secs(), late.join(", "))),
            Err(e) => warnings.push(format!("node {node}: cannot watch bridge ports: {e}")),
        }
    }
    warnings
}

/// Ports of `bridges` that are up with carrier but not forwarding, by ifindex.
fn pending(links: &[ObservedLink], bridges: &[&str]) -> BTreeMap<u32, String> {
    let index: BTreeMap<u32, &str> = links.iter().map(|l| (l.ifindex, l.name.as_str())).collect();
    links
        .iter()
        .filter(|l| l.up && l.carrier && l.forwarding == Some(false))
        .filter(|l| l.master.and_then(|m| index.get(&m)).is_some_and(|m| bridges.contains(m)))
        .map(|l| (l.ifindex, l.name.clone()))
        .collect()
}

/// `pending` over an AF_BRIDGE dump (ports only), with the bridges' indexes.
fn pending_ports(ports: &[ObservedLink], bridges: &[u32]) -> BTreeMap<u32, String> {
    ports
        .iter()
        .filter(|l| l.up && l.carrier && l.forwarding == Some(false))
        .filter(|l| l.master.is_some_and(|m| bridges.contains(&m)))
        .map(|l| (l.ifindex, l.name.clone()))
        .collect()
}

fn wait_node(h: &mut NsHandle, bridges: &[&str]) -> std::io::Result<Vec<String>> {
    // Subscribe before looking, so that no change between the look and the wait is missed.
    let mut watch = netns::run_in(Some(&h.fd), || -> std::io::Result<Netlink> {
        let nl = Netlink::open()?;
        nl.subscribe(RTNLGRP_LINK)?;
        Ok(nl)
    })??;
    // Ports only, their bridges known by index (from `up`): a full link dump costs the kernel a
    // walk of the namespace id table per veth end (see `msg::dump_bridge_ports`).
    let known: Option<Vec<u32>> = bridges.iter().map(|b| h.index(b)).collect();
    let mut left = match known {
        Some(ids) => {
            let ports = observe::bridge_ports(&mut h.nl).map_err(|e| std::io::Error::other(e.to_string()))?;
            pending_ports(&ports, &ids)
        }
        None => {
            let links = observe::links(&mut h.nl).map_err(|e| std::io::Error::other(e.to_string()))?;
            pending(&links, bridges)
        }
    };
    let deadline = Instant::now() + LIMIT;
    while !left.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let events = watch.notifications(deadline - now)?;
        let touched: Vec<u32> = events
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .filter(|i| left.contains_key(i))
            .collect();
        for idx in touched {
            // Ask for the port itself: notifications come in several shapes (AF_BRIDGE or not).
            let mut q = LinkMessage::default();
            q.header.index = idx;
            if let Ok(reply) = h.nl.request(RouteNetlinkMessage::GetLink(q), 0) {
                let now_ok = reply.iter().any(|r| match r {
                    RouteNetlinkMessage::NewLink(l) => {
                        let o = observe::decode_link(l);
                        o.forwarding != Some(false) || !o.carrier || !o.up
                    }
                    _ => false,
                });
                if now_ok {
                    left.remove(&idx);
                }
            }
        }
    }
    Ok(left.into_values().collect())
}
