//! Opening a lab's namespaces and observing them: the first half of `up`, `plan` and `status`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::kernel::handle::{self, HandleError, NsHandle};
use crate::kernel::netns;
use crate::kernel::observe;
use crate::model::lab::{owner_mark, Lab};
use crate::observed::{NsState, Observed, ObservedNs};
use crate::plan::sysctl_keys;
use crate::state::LabState;
use netlink_packet_route::RouteNetlinkMessage;

/// Open handles on a lab's namespaces plus what they hold.
pub struct Session {
    pub handles: BTreeMap<String, NsHandle>,
    pub observed: Observed,
    /// Unmounted name files (left by a killed `up`) that the lab recorded: safe to remove.
    pub leftovers: Vec<String>,
}

/// The alias on a namespace's `lo`, which marks the namespace as a lab's.
pub fn lo_alias(h: &mut NsHandle) -> Option<String> {
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = 1;
    let reply = h.nl.request(RouteNetlinkMessage::GetLink(m), 0).ok()?;
    reply.into_iter().find_map(|r| match r {
        RouteNetlinkMessage::NewLink(l) => observe::decode_link(&l).alias,
        _ => None,
    })
}

/// Opens and observes every namespace of `lab` (and the namespaces its record owns that the
/// file no longer names). Missing namespaces are reported `Absent`; namespaces whose `lo`
/// lacks the lab's mark are `Foreign` and get no handle.
pub fn observe_lab(lab: &Lab, state: Option<&LabState>) -> Result<Session> {
    let mark = lab.mark();
    let mut named: Vec<(String, String)> = Vec::new();
    let mut root_node: Option<String> = None;
    for node in lab.nodes.keys() {
        match lab.netns_name(node) {
            Some(n) => named.push((node.clone(), n)),
            None => root_node = Some(node.clone()),
        }
    }
    if let Some(st) = state {
        for (node, n) in &st.netns {
            if !lab.nodes.contains_key(node) {
                named.push((node.clone(), n.clone()));
            }
        }
    }
    let mut session = observe_named(&mark, named, root_node, &sysctl_keys(lab, state), state)?;
    crate::kernel::netfeat::observe::observe(lab, state, &mut session.handles, &mut session.observed)
        .map_err(|e| Error::io("observe NAT tables, qdiscs, BPF and xfrm", std::io::Error::other(e)))?;
    session.observed.ovs = super::ovs::observe(lab, state)?;
    session.observed.vxlan = anchors_to_make(lab, &session.observed) && super::preflight::missing_kinds(&["vxlan".to_string()]).is_ok_and(|m| m.is_empty());
    Ok(session)
}

/// Whether a bridge that gets an anchor (`model::anchor`) is still to be made.
fn anchors_to_make(lab: &Lab, observed: &crate::observed::Observed) -> bool {
    lab.nodes.iter().any(|(n, node)| {
        let links = match observed.nodes.get(n) {
            Some(crate::observed::NsState::Owned(o)) | Some(crate::observed::NsState::Root(o)) => Some(o),
            _ => None,
        };
        node.anchors.values().any(|a| a.master.as_deref().is_some_and(|b| links.is_none_or(|o| o.link(b).is_none())))
    })
}

/// Opens and observes namespaces by name (plus the root namespace as `root_node`).
pub fn observe_named(
    mark: &str,
    named: Vec<(String, String)>,
    root_node: Option<String>,
    keys: &BTreeMap<String, Vec<String>>,
    state: Option<&LabState>,
) -> Result<Session> {
    handle::raise_fd_limit();
    let mut observed = Observed::default();
    let mut leftovers = Vec::new();
    let mut to_open = Vec::new();
    for (node, name) in named {
        if !netns::exists(&name) {
            observed.nodes.insert(node, NsState::Absent);
        } else if !netns::is_mounted(&name) {
            let recorded = state.map(|s| s.netns.get(&node) == Some(&name)).unwrap_or(false);
            if recorded {
                leftovers.push(name);
                observed.nodes.insert(node, NsState::Absent);
            } else {
                observed.nodes.insert(node, NsState::Foreign);
            }
        } else {
            to_open.push((node, name));
        }
    }
    let mut handles: BTreeMap<String, NsHandle> = BTreeMap::new();
    for ((node, name), r) in to_open.iter().zip(handle::open_many(&to_open)) {
        match r {
            Ok(h) => {
                handles.insert(node.clone(), h);
            }
            Err(HandleError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                observed.nodes.insert(node.clone(), NsState::Absent);
            }
            Err(e) => return Err(Error::io(format!("open namespace {name}"), std::io::Error::other(e.to_string()))),
        }
    }
    // Ownership: the mark on lo.
    let mut foreign = Vec::new();
    for (node, h) in handles.iter_mut() {
        if lo_alias(h).as_deref() != Some(mark) {
            foreign.push(node.clone());
        }
    }
    for node in foreign {
        handles.remove(&node);
        observed.nodes.insert(node, NsState::Foreign);
    }
    if let Some(node) = &root_node {
        let h = handle::open_root(node).map_err(|e| Error::io("open a netlink socket", e))?;
        handles.insert(node.clone(), h);
    }
    let empty = Vec::new();
    let mut hs: Vec<&mut NsHandle> = handles.values_mut().collect();
    let results = handle::par_each_in(&mut hs, |h| {
        let k = keys.get(&h.node).unwrap_or(&empty);
        (h.node.clone(), observe::observe_ns(&mut h.nl, k))
    });
    for (node, r) in results {
        let ns: ObservedNs = r.map_err(|e| Error::kernel(format!("observe node {node}"), e))?;
        let st = if Some(&node) == root_node.as_ref() { NsState::Root(ns) } else { NsState::Owned(ns) };
        observed.nodes.insert(node, st);
    }
    Ok(Session { handles, observed, leftovers })
}

/// Observes a lab again through the handles an `up` already holds (after applying a plan): the
/// namespaces of `lab`'s nodes and of those its record still names. Nodes without a handle are
/// `Absent`. Each handle's index cache is emptied, since the kernel may have removed devices on
/// its own; the executor refills it from the new observation.
pub fn reobserve(lab: &Lab, state: Option<&LabState>, handles: &mut BTreeMap<String, NsHandle>) -> Result<Observed> {
    let mut wanted: std::collections::BTreeSet<String> = lab.nodes.keys().cloned().collect();
    if let Some(st) = state {
        wanted.extend(st.netns.keys().cloned());
    }
    let keys = sysctl_keys(lab, state);
    let mut observed = Observed::default();
    for node in &wanted {
        if !handles.contains_key(node) {
            observed.nodes.insert(node.clone(), NsState::Absent);
        }
    }
    let empty = Vec::new();
    let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| wanted.contains(&h.node)).collect();
    let results = handle::par_each_in(&mut hs, |h| {
        h.ifindex.clear();
        let k = keys.get(&h.node).unwrap_or(&empty);
        (h.node.clone(), observe::observe_ns(&mut h.nl, k))
    });
    for (node, r) in results {
        let ns: ObservedNs = r.map_err(|e| Error::kernel(format!("observe node {node}"), e))?;
        let root = lab.nodes.contains_key(&node) && lab.netns_name(&node).is_none();
        observed.nodes.insert(node, if root { NsState::Root(ns) } else { NsState::Owned(ns) });
    }
    crate::kernel::netfeat::observe::observe(lab, state, handles, &mut observed)
        .map_err(|e| Error::io("observe NAT tables, qdiscs, BPF and xfrm", std::io::Error::other(e)))?;
    observed.ovs = super::ovs::observe(lab, state)?;
    Ok(observed)
}

/// Opens the namespace vnet runs in for creating a multi-host share's tunnel ends, when no
/// node of the share already has it open (their UDP sockets belong on the host's underlay).
pub fn open_underlay(lab: &Lab, session: &mut Session) -> Result<()> {
    let key = lab.underlay_node();
    if lab.share.is_none() || lab.tunnels.is_empty() || session.handles.contains_key(&key) {
        return Ok(());
    }
    let h = handle::open_root(&key).map_err(|e| Error::io("open a netlink socket", e))?;
    session.handles.insert(key, h);
    Ok(())
}

/// Namespaces under /run/netns carrying the mark of `lab` (for `down` without a record).
pub fn find_marked(lab: &str) -> Vec<String> {
    let mark = owner_mark(lab);
    marked_namespaces().into_iter().filter(|(_, m)| *m == mark).map(|(n, _)| n).collect()
}

/// Every mounted namespace under /run/netns whose `lo` carries a vnet mark: (name, mark).
pub fn marked_namespaces() -> Vec<(String, String)> {
    let names: Vec<(String, String)> = netns::list().into_iter().filter(|n| netns::is_mounted(n)).map(|n| (n.clone(), n)).collect();
    let mut out = Vec::new();
    for ((_, name), r) in names.iter().zip(handle::open_many(&names)) {
        if let Ok(mut h) = r {
            if let Some(a) = lo_alias(&mut h) {
                if a.starts_with("vnet:") {
                    out.push((name.clone(), a));
                }
            }
        }
    }
    out
}
