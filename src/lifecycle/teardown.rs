//! Deleting a lab's namespaces so that `down` returns when their devices are really gone.
//!
//! Two ways, chosen by how many namespaces hold devices that must go explicitly:
//! - few (a star: its host namespace): one RTM_DELLINK by interface group in each, which
//!   returns once the devices are unregistered (~0.5 s for 1000 veths in one request);
//! - many (a chain, a tree: every other namespace): a group delete costs ~40 ms of RCU waits
//!   each, so instead every name is dropped and the kernel's cleanup worker destroys all the
//!   namespaces in one batch; a witness (`kernel::witness`) in the namespace released last
//!   tells when that is done. Namespaces some process is still in would not die: their devices
//!   are deleted explicitly in both ways.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::kernel::handle;
use crate::kernel::witness::Witness;
use crate::kernel::{msg, netns};

/// Above this many group deletes, letting the kernel destroy the namespaces in a batch wins.
const GROUP_DELETES_MAX: usize = 4;

/// How long the batch may take before `down` reports the namespaces as held elsewhere.
const BATCH_LIMIT: Duration = Duration::from_secs(30);

/// Below this many ports a bridge's deletion gains nothing from snooping turned off first.
const BUSY_BRIDGE_PORTS: usize = 16;

/// Node -> the lab's bridges there with many ports, from the record's topology: quietened
/// (`msg::bridge_snooping_off`) before their devices are deleted.
pub(super) fn busy_bridges(s: &crate::state::LabState) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(topo) = &s.topology else { return out };
    for (node, spec) in &topo.nodes {
        for (name, i) in &spec.interfaces {
            let bridge = matches!(i.kind, crate::model::kind::KindSpec::Bridge(_));
            if bridge && spec.interfaces.values().filter(|p| p.master.as_deref() == Some(name)).count() >= BUSY_BRIDGE_PORTS {
                out.entry(node.clone()).or_default().push(name.clone());
            }
        }
    }
    out
}

/// Deletes namespaces the lab owns (`names`); `delete_in` are those whose devices do not all
/// die with a peer; `group` is the lab's interface group (0: none, devices are never deleted
/// explicitly); `bridges`: namespace -> bridges with many ports, quietened before a group
/// delete (`msg::bridge_snooping_off`). `beside` runs on the deleting thread first, while every
/// namespace is still held (the root namespace's devices, whose peers are in them). Returns
/// problems and what `beside` returned (`None` if it panicked).
pub fn delete_namespaces<T: Send>(
    names: &[String],
    delete_in: &[String],
    group: u32,
    bridges: &BTreeMap<String, Vec<String>>,
    beside: impl FnOnce() -> T + Send,
) -> (Vec<String>, Option<T>) {
    let t = std::time::Instant::now();
    // Every namespace stays open until the devices are deleted, so that unnaming them (no rtnl
    // lock needed) can run beside the deletes (which hold it) without a namespace dying early.
    let held: Vec<(String, OwnedFd)> = names.iter().filter_map(|n| netns::open(n).ok().map(|fd| (n.clone(), fd))).collect();
    let ids: Vec<(u64, u64)> = held.iter().map(|(_, fd)| netns::identity(fd.as_fd()).unwrap_or_default()).collect();
    let busy_ids = netns::in_use(&ids.iter().copied().collect());
    let busy: HashSet<&str> = held.iter().zip(&ids).filter(|(_, id)| busy_ids.contains(id)).map(|((n, _), _)| n.as_str()).collect();

    tracing::debug!(target: "vnet::timing", "down: {} namespaces opened, {} in use {:?}", held.len(), busy.len(), t.elapsed());
    let batched = delete_in.len() > GROUP_DELETES_MAX;
    let explicit: Vec<(String, String)> = names
        .iter()
        // Group 0 is every device's default: without a group of its own nothing is deleted.
        .filter(|_| group != 0)
        .filter(|n| if batched { busy.contains(n.as_str()) } else { delete_in.contains(n) || busy.contains(n.as_str()) })
        .filter(|n| netns::is_mounted(n))
        .map(|n| (n.clone(), n.clone()))
        .collect();
    // The witness goes into a namespace that will die: the one released last.
    let mut problems = Vec::new();
    let witness = if batched {
        held.iter().rev().find(|(n, _)| !busy.contains(n.as_str())).and_then(|(n, fd)| match Witness::attach(fd.as_fd()) {
            Ok(w) => Some((n.clone(), w)),
            Err(e) => {
                problems.push(format!("namespace {n}: {e}"));
                None
            }
        })
    } else {
        None
    };
    // Sockets into the namespaces whose devices go: opened while they still have their names.
    let opened = handle::open_many(&explicit);
    tracing::debug!(target: "vnet::timing", "down: sockets for group deletes {:?}", t.elapsed());
    let (deleted, unnamed) = std::thread::scope(|sc| {
        let deletes = sc.spawn(|| {
            let first = beside();
            let mut problems = Vec::new();
            for ((_, name), r) in explicit.iter().zip(opened) {
                match r {
                    Ok(mut h) => {
                        for b in bridges.get(name).into_iter().flatten() {
                            // Only a speed-up: a bridge already gone or refusing changes nothing.
                            if let Err(e) = h.nl.request(msg::bridge_snooping_off(b), 0) {
                                tracing::debug!("multicast snooping off on {name}:{b}: {e}");
                            }
                        }
                        if let Err(e) = h.nl.request(msg::del_group(group), 0) {
                            if e.errno != libc::ENODEV {
                                problems.push(format!("delete devices of namespace {name}: {e}"));
                            }
                        }
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
            tracing::debug!(target: "vnet::timing", "down: {} group deletes {:?}", explicit.len(), t.elapsed());
            (problems, first)
        });
        let mut problems = Vec::new();
        for n in names {
            if let Err(e) = netns::unmount(n) {
                problems.push(format!("unmount {n}: {e}"));
            }
        }
        for n in names {
            if let Err(e) = netns::unlink(n) {
                problems.push(format!("remove {n}: {e}"));
            }
        }
        tracing::debug!(target: "vnet::timing", "down: unmount and unlink {:?}", t.elapsed());
        (deletes.join(), problems)
    });
    let (deleted, first) = match deleted {
        Ok((d, f)) => (d, Some(f)),
        Err(_) => (vec!["device deletion panicked".to_string()], None),
    };
    // Released in order: the witness's namespace last.
    let last = witness.as_ref().map(|(n, _)| n.clone());
    let (kept, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|(n, _)| Some(n) == last.as_ref());
    drop(rest);
    drop(kept);
    if let Some((n, w)) = witness {
        if !w.wait(BATCH_LIMIT) {
            problems.push(format!(
                "namespace {n} (or another of the lab's) is still held open by a process after {}s: the kernel removes its devices when that process lets go",
                BATCH_LIMIT.as_secs()
            ));
        }
        tracing::debug!(target: "vnet::timing", "down: namespaces destroyed {:?}", t.elapsed());
    }
    problems.extend(deleted);
    problems.extend(unnamed);
    (problems, first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Format, Topology};
    use crate::state::LabState;

    #[test]
    fn only_bridges_with_many_ports_are_quietened_before_their_delete() {
        let mut text = String::from("name: q\nnodes:\n  host:\n    interfaces:\n      big: { kind: bridge }\n      small: { kind: bridge }\n");
        for i in 0..BUSY_BRIDGE_PORTS {
            text.push_str(&format!("      b{i}: {{ kind: veth, master: big }}\n"));
        }
        text.push_str("      s0: { kind: veth, master: small }\n  sw:\n    interfaces:\n      br0: { kind: bridge }\n");
        let mut st = LabState::new("q", true);
        st.topology = Some(Topology::parse(&text, Format::Yaml).unwrap());
        let busy = busy_bridges(&st);
        assert_eq!(busy.into_iter().collect::<Vec<_>>(), [("host".to_string(), vec!["big".to_string()])]);
        // Without the topology (an old or partial record): nothing, the delete is only slower.
        assert!(busy_bridges(&LabState::new("q", true)).is_empty());
    }
}
