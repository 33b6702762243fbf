//! What an `up` changed, in order, so that a failure can undo it in reverse.

use std::collections::HashSet;

use crate::kernel::handle::NsHandle;
use crate::kernel::msg::{self, LinkSet, RouteWire};
use crate::kernel::{netns, sysctl};
use ipnet::IpNet;
use std::collections::BTreeMap;

/// One change made to the kernel.
#[derive(Debug)]
pub enum Done {
    Netns {
        node: String,
        netns: String,
    },
    Link {
        node: String,
        ifindex: u32,
    },
    Addr {
        node: String,
        ifindex: u32,
        addr: IpNet,
    },
    Route {
        node: String,
        route: RouteWire,
    },
    Sysctl {
        node: String,
        key: String,
        previous: String,
    },
    /// A pre-existing device changed; `previous` puts it back.
    Changed {
        node: String,
        ifindex: u32,
        previous: LinkSet,
    },
    AddrRemoved {
        node: String,
        ifindex: u32,
        addr: IpNet,
    },
    RouteRemoved {
        node: String,
        route: RouteWire,
    },
    /// A tun/tap device (rtnetlink cannot delete those).
    Tun {
        node: String,
        ifname: String,
        flags: crate::kernel::tun::TunFlags,
    },
    /// A daemon started for the lab (teamd); stopped even inside new namespaces, which it
    /// would otherwise keep alive.
    Process {
        node: String,
        pid: u32,
    },
    /// A NAT table, qdisc, BPF or xfrm change; `undo` reverts it.
    Feature {
        node: String,
        undo: crate::plan::FeatureOp,
    },
    /// A change to the node's Open vSwitch (see `apply::ovs`).
    Ovs {
        node: String,
        undo: super::ovs::OvsUndo,
    },
}

#[derive(Debug, Default)]
pub struct Journal {
    pub entries: Vec<Done>,
}

impl Journal {
    pub fn push(&mut self, d: Done) {
        self.entries.push(d);
    }

    /// The sysctls written so far, with the value each had before: (node, key, previous).
    pub fn sysctls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.entries.iter().filter_map(|d| match d {
            Done::Sysctl { node, key, previous } => Some((node.as_str(), key.as_str(), previous.as_str())),
            _ => None,
        })
    }

    /// Undoes everything in reverse. Changes inside namespaces created by this run are not
    /// undone one by one: deleting the namespace removes them. Returns what could not be undone.
    pub fn rollback(&mut self, handles: &mut BTreeMap<String, NsHandle>) -> Vec<String> {
        let mut problems = Vec::new();
        let new_ns: HashSet<String> = self
            .entries
            .iter()
            .filter_map(|d| match d {
                Done::Netns { node, .. } => Some(node.clone()),
                _ => None,
            })
            .collect();
        let created_links: HashSet<(String, u32)> = self
            .entries
            .iter()
            .filter_map(|d| match d {
                Done::Link { node, ifindex } => Some((node.clone(), *ifindex)),
                _ => None,
            })
            .collect();
        let entries = std::mem::take(&mut self.entries);
        for d in entries.iter().rev() {
            let node = match d {
                Done::Netns { node, .. }
                | Done::Link { node, .. }
                | Done::Addr { node, .. }
                | Done::Route { node, .. }
                | Done::Sysctl { node, .. }
                | Done::Changed { node, .. }
                | Done::AddrRemoved { node, .. }
                | Done::RouteRemoved { node, .. }
                | Done::Tun { node, .. }
                | Done::Process { node, .. }
                | Done::Feature { node, .. }
                | Done::Ovs { node, .. } => node,
            };
            // A daemon keeps its namespace alive: stopped even inside a namespace this run made.
            let daemon = matches!(d, Done::Process { .. } | Done::Ovs { undo: super::ovs::OvsUndo::Stop { .. }, .. });
            if new_ns.contains(node) && !matches!(d, Done::Netns { .. }) && !daemon {
                continue;
            }
            let on_new_link = |ifindex: &u32| created_links.contains(&(node.clone(), *ifindex));
            let result: Result<(), String> = match d {
                Done::Netns { netns: name, node } => {
                    // Close our handle first so nothing keeps the namespace alive.
                    handles.remove(node);
                    netns::delete(name).map_err(|e| format!("delete namespace {name}: {e}"))
                }
                Done::Link { ifindex, .. } => {
                    with(handles, node, |h| h.nl.request(msg::del_link(*ifindex), 0)).or_else(|e| if e.contains("No such device") { Ok(()) } else { Err(e) })
                }
                Done::Addr { ifindex, addr, .. } if !on_new_link(ifindex) => with(handles, node, |h| h.nl.request(msg::del_addr(*ifindex, addr), 0)),
                Done::Route { route, .. } if !route.oif.map(|o| on_new_link(&o)).unwrap_or(false) => {
                    with(handles, node, |h| h.nl.request(msg::del_route(route), 0))
                }
                Done::Sysctl { key, previous, .. } => match handles.get(node) {
                    Some(h) => crate::kernel::netns::run_in(Some(&h.fd), || sysctl::write(key, previous))
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string())),
                    None => Err(format!("no handle for node {node}")),
                },
                Done::Changed { ifindex, previous, .. } => with(handles, node, |h| h.nl.request(msg::set_link(*ifindex, None, previous), 0)),
                Done::AddrRemoved { ifindex, addr, .. } => with(handles, node, |h| h.nl.request(msg::new_addr(*ifindex, addr), 0x400)),
                Done::RouteRemoved { route, .. } => with(handles, node, |h| h.nl.request(msg::new_route(route), 0x400)),
                Done::Tun { ifname, flags, .. } => match handles.get(node) {
                    Some(h) => netns::run_in(Some(&h.fd), || crate::kernel::tun::delete(ifname, *flags))
                        .and_then(|r| r)
                        .map_err(|e| format!("delete tun/tap {ifname}: {e}")),
                    None => Err(format!("no handle for node {node}")),
                },
                Done::Process { pid, .. } => super::team::stop(*pid).map_err(|e| e.to_string()),
                Done::Feature { undo, .. } => super::netfeat::undo(handles, node, undo),
                Done::Ovs { undo, .. } => super::ovs::undo(undo),
                _ => Ok(()),
            };
            if let Err(e) = result {
                problems.push(format!("node {node}: {e}"));
            }
        }
        problems
    }
}

fn with<T>(
    handles: &mut BTreeMap<String, NsHandle>,
    node: &str,
    f: impl FnOnce(&mut NsHandle) -> Result<T, crate::kernel::nl::KernelError>,
) -> Result<(), String> {
    match handles.get_mut(node) {
        Some(h) => f(h).map(|_| ()).map_err(|e| e.to_string()),
        None => Err(format!("no handle for node {node}")),
    }
}
