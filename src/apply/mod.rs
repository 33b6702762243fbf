//! The executor: runs a plan stage by stage. Within a stage, each namespace's operations go out
//! as one pipelined netlink batch on that namespace's socket; namespaces and sysctls are worked
//! on worker threads. Every change is journaled; the first failure undoes the journal in
//! reverse and is reported with the operation, node, device and the kernel's own words.

mod devices;
pub mod journal;
pub mod netfeat;
pub mod ovs;
pub mod team;

use std::collections::BTreeMap;
use std::fmt;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;

use crate::kernel::handle::{self, HandleError, NewNs, NsHandle};
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkBase, LinkSet, RouteWire};
use crate::kernel::nl::{KernelError, Request};
use crate::kernel::observe::decode_link;
use crate::kernel::{netns, sysctl};
use crate::model::kind::KindSpec;
use crate::model::lab::Lab;
use crate::observed::{Observed, ObservedNs, RTPROT_VNET};
use crate::plan::{Op, Plan, RouteOp, Step};
use journal::{Done, Journal};

/// A failed `up`: what failed, where, why, and how the rollback went. Boxed: a failure is
/// rare and its text is long, while every `Result` of the executor carries its size.
#[derive(Debug)]
pub struct ApplyError(Box<Failure>);

impl std::ops::Deref for ApplyError {
    type Target = Failure;
    fn deref(&self) -> &Failure {
        &self.0
    }
}

/// What an `ApplyError` says.
#[derive(Debug)]
pub struct Failure {
    /// The operation, as `vnet plan` prints it.
    pub op: String,
    pub node: String,
    pub device: Option<String>,
    /// The kernel's (or the system's) error.
    pub cause: String,
    pub errno: Option<i32>,
    /// Things the rollback could not undo (empty when it undid everything).
    pub rollback_problems: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.op.trim_start_matches(['+', '-', '~', ' ']).split_whitespace().collect::<Vec<_>>().join(" ");
        write!(f, "`{op}` failed")?;
        if !self.node.is_empty() {
            write!(f, " in node {}", self.node)?;
        }
        if let Some(d) = &self.device {
            write!(f, ", device {d}")?;
        }
        write!(f, ": {}", self.cause)?;
        if self.rollback_problems.is_empty() {
            write!(f, "\neverything this run created was removed again")
        } else {
            write!(f, "\nrollback could not undo:")?;
            for p in &self.rollback_problems {
                write!(f, "\n  {p}")?;
            }
            Ok(())
        }
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ApplyError {}

impl ApplyError {
    /// Adds what a rollback could not undo.
    pub fn add_rollback_problems(&mut self, problems: Vec<String>) {
        self.0.rollback_problems.extend(problems);
    }
}

/// Settings that shape every message.
pub struct Context<'a> {
    pub lab: &'a Lab,
    pub observed: &'a Observed,
    /// Interface group stamped on every device the lab creates.
    pub group: u32,
}

/// Called with (done, total) as steps complete.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Runs a plan. On success the handles stay open so the caller can verify or observe without
/// reopening; on failure everything is rolled back.
pub fn apply(ctx: &Context, plan: &Plan, handles: &mut BTreeMap<String, NsHandle>, progress: Option<Progress>) -> Result<(), ApplyError> {
    let mut journal = Journal::default();
    run(ctx, plan, handles, progress, &mut journal).map_err(|mut e| {
        e.add_rollback_problems(journal.rollback(handles));
        e
    })
}

/// Runs a plan, adding every change to `journal` (which may hold earlier passes' changes). On
/// failure nothing is undone: the caller rolls the journal back (`Journal::rollback`).
pub fn run(ctx: &Context, plan: &Plan, handles: &mut BTreeMap<String, NsHandle>, progress: Option<Progress>, journal: &mut Journal) -> Result<(), ApplyError> {
    let mut ex = Executor { ctx, journal: std::mem::take(journal), mark: ctx.lab.mark(), chosen: Default::default(), ll_default: ll_default(ctx.lab, plan) };
    let r = ex.run(plan, handles, progress);
    *journal = ex.journal;
    r
}

impl Executor<'_> {
    fn run(&mut self, plan: &Plan, handles: &mut BTreeMap<String, NsHandle>, progress: Option<Progress>) -> Result<(), ApplyError> {
        let ctx = self.ctx;
        // Seed index caches from what was observed.
        for (node, h) in handles.iter_mut() {
            if let Some(ns) = ctx.observed.nodes.get(node).and_then(|s| s.ns()) {
                for l in &ns.links {
                    h.ifindex.insert(l.name.clone(), l.ifindex);
                }
            }
        }
        let total = plan.steps.len();
        let mut done = 0;
        let mut i = 0;
        while i < plan.steps.len() {
            let st = plan.steps[i].stage;
            let mut j = i;
            while j < plan.steps.len() && plan.steps[j].stage == st {
                j += 1;
            }
            let stage = &plan.steps[i..j];
            let t = std::time::Instant::now();
            self.stage(stage, handles)?;
            tracing::debug!(target: "vnet::timing", "stage {st}: {} ops in {:?}", stage.len(), t.elapsed());
            done += stage.len();
            if let Some(p) = progress {
                p(done, total);
            }
            i = j;
        }
        Ok(())
    }
}

struct Executor<'a> {
    ctx: &'a Context<'a>,
    journal: Journal,
    mark: String,
    /// Interface indexes chosen for devices created in the real root namespace.
    chosen: std::collections::HashSet<u32>,
    /// New namespaces whose default addr_gen_mode is set to none at birth (see `ll_default`).
    ll_default: std::collections::HashSet<String>,
}

/// Where a lab without IPv6 turns link-local generation off through the namespace default
/// (one /proc write at birth) rather than per device (messages before each device comes up):
/// new namespaces that receive many new devices.
fn ll_default(lab: &Lab, plan: &Plan) -> std::collections::HashSet<String> {
    if lab.ipv6_link_local {
        return Default::default();
    }
    let mut born: std::collections::HashMap<&str, usize> = Default::default();
    for op in plan.ops() {
        if let Op::CreateLink(c) = op {
            *born.entry(c.node.as_str()).or_default() += 1;
            if let Some(p) = &c.peer {
                *born.entry(p.node.as_str()).or_default() += 1;
            }
        }
    }
    plan.ops()
        .filter_map(|op| match op {
            Op::CreateNetns { node, .. } if born.get(node.as_str()).copied().unwrap_or(0) >= 8 => Some(node.clone()),
            _ => None,
        })
        .collect()
}

/// What to do with the reply to one request.
enum Then {
    /// A device was created: learn its index (and its veth peer's) from the echo, or by name
    /// where the kernel sends none.
    Created {
        name: String,
        peer: Option<(String, String)>,
    },
    /// A device created from another namespace's socket: learn its index by name.
    Lookup {
        node: String,
        name: String,
    },
    /// A device whose index is already known (tun/tap).
    Index {
        name: String,
        ifindex: u32,
    },
    Journal(Done),
    Forget(String),
    Nothing,
}

struct Pending {
    step: usize,
    req: Request,
    then: Then,
    /// Treat "no such device" as success (deleting a veth whose twin already went).
    enodev_ok: bool,
    /// A refinement whose failure is not the lab's failure (turning off IPv6 link-local on a
    /// machine without IPv6).
    optional: bool,
}

/// Whether `errno` from deleting what `op` deletes means it was gone already.
fn already_gone(op: &Op, errno: i32) -> bool {
    matches!((op, errno), (Op::DelAddress { .. }, libc::EADDRNOTAVAIL) | (Op::DelRoute { .. }, libc::ESRCH))
}

/// The error of a failed step: its operation, node, device and cause.
pub(crate) fn fail(step: &Step, cause: String, errno: Option<i32>) -> ApplyError {
    ApplyError(Box::new(Failure {
        op: step.op.to_string(),
        node: step.op.node().to_string(),
        device: step.op.device().map(str::to_string),
        cause,
        errno,
        rollback_problems: Vec::new(),
    }))
}

/// The error of a run that failed as a whole rather than in one operation (`up` of `lab`).
pub fn fail_lab(lab: &str, cause: String) -> ApplyError {
    ApplyError(Box::new(Failure { op: format!("up {lab}"), node: String::new(), device: None, cause, errno: None, rollback_problems: Vec::new() }))
}

impl<'a> Executor<'a> {
    fn fail(&self, step: &Step, cause: String, errno: Option<i32>) -> ApplyError {
        fail(step, cause, errno)
    }

    fn observed_ns(&self, node: &str) -> Option<&'a ObservedNs> {
        self.ctx.observed.nodes.get(node).and_then(|s| s.ns())
    }

    fn stage(&mut self, steps: &[Step], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        // Namespaces first (their own stage), then sysctls, then netlink batches.
        let creates: Vec<(usize, NewNs)> = steps
            .iter()
            .enumerate()
            .filter_map(|(k, s)| match &s.op {
                Op::CreateNetns { node, netns, lo_up } => Some((
                    k,
                    NewNs { node: node.clone(), netns: netns.clone(), mark: self.mark.clone(), lo_up: *lo_up, default_no_ll: self.ll_default.contains(node) },
                )),
                _ => None,
            })
            .collect();
        if !creates.is_empty() {
            let list: Vec<NewNs> = creates.iter().map(|(_, n)| n.clone()).collect();
            let results = handle::create_many(&list);
            let mut first_err = None;
            for ((k, n), r) in creates.iter().zip(results) {
                match r {
                    Ok(h) => {
                        self.journal.push(Done::Netns { node: n.node.clone(), netns: n.netns.clone() });
                        handles.insert(n.node.clone(), h);
                    }
                    Err(e) => {
                        if first_err.is_none() {
                            let cause = match &e {
                                HandleError::Exists(name) => format!("namespace `{name}` already exists and is not this lab's; it was left untouched"),
                                other => other.to_string(),
                            };
                            first_err = Some(self.fail(&steps[*k], cause, None));
                        }
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }

        let sysctls: Vec<usize> =
            steps.iter().enumerate().filter(|(_, s)| matches!(s.op, Op::SetSysctl { .. } | Op::RestoreSysctl { .. })).map(|(k, _)| k).collect();
        if !sysctls.is_empty() {
            self.sysctls(steps, &sysctls, handles)?;
        }

        let link_local: Vec<usize> = steps.iter().enumerate().filter(|(_, s)| matches!(s.op, Op::LinkLocal { .. })).map(|(k, _)| k).collect();
        if !link_local.is_empty() {
            self.link_local(steps, &link_local, handles)?;
        }

        // NAT/firewall, qdiscs, BPF, xfrm: on threads inside their namespaces.
        let features: Vec<usize> = steps.iter().enumerate().filter(|(_, s)| matches!(s.op, Op::Feature { .. })).map(|(k, _)| k).collect();
        if !features.is_empty() {
            netfeat::run(self.ctx.observed, steps, &features, handles, &mut self.journal)?;
        }
        // Open vSwitch (its daemons, OVSDB, flows): synchronous, per node.
        let ovs: Vec<usize> = steps.iter().enumerate().filter(|(_, s)| matches!(s.op, Op::Ovs { .. })).map(|(k, _)| k).collect();
        if !ovs.is_empty() {
            self.ovs(steps, &ovs, handles)?;
        }

        // Netlink operations, grouped per namespace in plan order.
        let mut per_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (k, s) in steps.iter().enumerate() {
            match &s.op {
                Op::CreateNetns { .. }
                | Op::SetSysctl { .. }
                | Op::RestoreSysctl { .. }
                | Op::LinkLocal { .. }
                | Op::DeleteNetns { .. }
                | Op::Feature { .. }
                | Op::Ovs { .. } => {}
                op => per_node.entry(devices::send_node(self.ctx.lab, op)).or_default().push(k),
            }
        }
        let mut first_err: Option<ApplyError> = None;
        for (node, idxs) in per_node {
            let mut pending = Vec::with_capacity(idxs.len() * 2);
            for k in idxs {
                if let Err(e) = self.requests(k, &steps[k], handles, &mut pending) {
                    first_err.get_or_insert(e);
                    break;
                }
            }
            let Some(h) = handles.get_mut(&node) else {
                if let Some(p) = pending.first() {
                    first_err.get_or_insert(self.fail(&steps[p.step], format!("no namespace handle for node {node}"), None));
                }
                continue;
            };
            let reqs: Vec<Request> = pending.iter().map(|p| p.req.clone()).collect();
            let replies = h.nl.batch(reqs);
            for (p, reply) in pending.into_iter().zip(replies) {
                match reply {
                    Ok(msgs) => self.after(p.then, &node, msgs, handles),
                    Err(e) if p.optional => tracing::debug!("optional request failed in node {node}: {e}"),
                    // An address or route deleted meanwhile (by hand, or by the kernel with
                    // an address deleted before it in this batch): done.
                    Err(e) if already_gone(&steps[p.step].op, e.errno) => {}
                    Err(e) if p.enodev_ok && e.errno == libc::ENODEV => {
                        if let Then::Forget(name) = p.then {
                            if let Some(h) = handles.get_mut(&node) {
                                h.ifindex.remove(&name);
                            }
                        }
                    }
                    Err(e) => {
                        if first_err.is_none() {
                            first_err = Some(self.fail(&steps[p.step], explain(&steps[p.step].op, &e), Some(e.errno)));
                        }
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.ports_without_ipv6(steps, handles)?;

        for s in steps {
            if let Op::DeleteNetns { node, netns: name } = &s.op {
                if let Some(mut h) = handles.remove(node) {
                    let _ = h.nl.request(msg::del_group(self.ctx.group), 0);
                }
                netns::delete(name).map_err(|e| self.fail(s, e.to_string(), e.raw_os_error()))?;
            }
        }
        Ok(())
    }

    fn sysctls(&mut self, steps: &[Step], idxs: &[usize], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        let mut by_node: BTreeMap<String, Vec<(usize, String, String)>> = BTreeMap::new();
        for &k in idxs {
            match &steps[k].op {
                Op::SetSysctl { node, key, value } | Op::RestoreSysctl { node, key, value } => {
                    by_node.entry(node.clone()).or_default().push((k, key.clone(), value.clone()))
                }
                _ => {}
            }
        }
        let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| by_node.contains_key(&h.node)).collect();
        if hs.len() != by_node.len() {
            let missing = by_node.keys().find(|n| !hs.iter().any(|h| &h.node == *n)).cloned().unwrap_or_default();
            let k = by_node[&missing][0].0;
            return Err(self.fail(&steps[k], format!("no namespace handle for node {missing}"), None));
        }
        let results = handle::par_each_in(&mut hs, |h| {
            let mut out = Vec::new();
            for (k, key, value) in &by_node[&h.node] {
                let (prev, r) = match sysctl::swap(key, value) {
                    Ok(prev) => (prev, Ok(())),
                    Err(e) => (None, Err(e)),
                };
                out.push((*k, key.clone(), prev, r));
            }
            (h.node.clone(), out)
        });
        let mut first_err = None;
        for (node, list) in results {
            for (k, key, prev, r) in list {
                match r {
                    Ok(()) => {
                        if let Some(previous) = prev {
                            self.journal.push(Done::Sysctl { node: node.clone(), key, previous });
                        }
                    }
                    Err(e) => {
                        if first_err.is_none() {
                            let cause =
                                if e.kind() == std::io::ErrorKind::NotFound { format!("this kernel has no sysctl `{key}` ({e})") } else { e.to_string() };
                            first_err = Some(self.fail(&steps[k], cause, e.raw_os_error()));
                        }
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// IPv6 link-local generation of existing devices, through each device's `addr_gen_mode`
    /// sysctl: the kernel makes the link-local address when that sysctl changes from none to
    /// another mode (so turning it on goes through none) (the same through netlink only records the mode, for the next time the
    /// device comes up), and stops making one (keeping the one it made) when it goes to none.
    /// Turning it on in a lab's own namespace also sets the namespace default back to eui64:
    /// a namespace born without link-local addresses (`ll_default`) would give them to no new
    /// device. Not journaled as sysctls: the lab's `ipv6` decides these, not a value to restore.
    fn link_local(&mut self, steps: &[Step], idxs: &[usize], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        use crate::model::validate::sysctl_key;
        let mut by_node: BTreeMap<String, Vec<(usize, String, &'static str)>> = BTreeMap::new();
        for &k in idxs {
            let Op::LinkLocal { node, ifname, on, revive } = &steps[k].op else { continue };
            let list = by_node.entry(node.clone()).or_default();
            let mode = if *on { "0" } else { "1" };
            if *on && self.ctx.lab.netns_name(node).is_some() && !list.iter().any(|(_, key, _)| key.starts_with("net.ipv6.conf.default.")) {
                list.push((k, "net.ipv6.conf.default.addr_gen_mode".into(), "0"));
            }
            if *revive {
                // A bridge port whose IPv6 was turned off (`CreateLink::no_ipv6`) gets it back
                // first.
                list.push((k, sysctl_key(&["net", "ipv6", "conf", ifname, "disable_ipv6"].map(str::to_string)), "0"));
            }
            let key = sysctl_key(&["net", "ipv6", "conf", ifname, "addr_gen_mode"].map(str::to_string));
            // Through none first: only a change of mode makes the kernel generate the address
            // (a device still in eui64 mode whose address was deleted by hand).
            if *on {
                list.push((k, key.clone(), "1"));
            }
            list.push((k, key, mode));
        }
        let mut hs: Vec<&mut NsHandle> = handles.values_mut().filter(|h| by_node.contains_key(&h.node)).collect();
        if hs.len() != by_node.len() {
            let missing = by_node.keys().find(|n| !hs.iter().any(|h| &h.node == *n)).cloned().unwrap_or_default();
            return Err(self.fail(&steps[by_node[&missing][0].0], format!("no namespace handle for node {missing}"), None));
        }
        let results = handle::par_each_in(&mut hs, |h| {
            let failed = by_node[&h.node].iter().find_map(|(k, key, value)| sysctl::write(key, value).err().map(|e| (*k, key.clone(), e)));
            (h.node.clone(), failed)
        });
        for (_, failed) in results {
            if let Some((k, key, e)) = failed {
                return Err(self.fail(&steps[k], format!("write {key}: {e}"), e.raw_os_error()));
            }
        }
        Ok(())
    }

    fn index(&self, handles: &BTreeMap<String, NsHandle>, step: &Step, node: &str, ifname: &str) -> Result<u32, ApplyError> {
        handles
            .get(node)
            .and_then(|h| h.index(ifname))
            .ok_or_else(|| self.fail(step, format!("device `{ifname}` is not known in node {node} (it should exist by now)"), Some(libc::ENODEV)))
    }

    /// Translates one operation into requests on its node's socket.
    fn requests(&mut self, k: usize, step: &Step, handles: &BTreeMap<String, NsHandle>, out: &mut Vec<Pending>) -> Result<(), ApplyError> {
        let lab = self.ctx.lab;
        let no_ll = !lab.ipv6_link_local;
        let group = self.ctx.group;
        let push = |out: &mut Vec<Pending>, req: Request, then: Then| out.push(Pending { step: k, req, then, enodev_ok: false, optional: false });
        match &step.op {
            Op::CreateLink(c) if devices::tun_flags(&c.kind).is_some() => self.create_tun(k, step, c, handles, out)?,
            Op::CreateLink(c) => {
                let master = match &c.master {
                    Some(m) => Some(self.index(handles, step, &c.node, m)?),
                    None => None,
                };
                // Labs without IPv6 turn link-local generation off per device, over netlink,
                // before the device comes up (a create message cannot carry it, and writing
                // /proc/sys/.../default/addr_gen_mode costs a lookup that grows with the number
                // of namespaces). A device born in another namespace comes up as it is born.
                let root = lab.netns_name(&c.node).is_none();
                let lower = self.lower(handles, step, c)?;
                let per_device = no_ll && !self.ll_default.contains(&c.node) && lower.target_fd.is_none();
                let up_now = c.up && !per_device;
                // A bridge keeps its MTU as ports join only when the MTU was changed after its
                // creation (the kernel then marks it set by the user; an MTU in the create
                // message is not a change): born one byte off, it is set right after.
                let pinned_mtu = c.mtu.filter(|_| matches!(c.kind, KindSpec::Bridge(_)));
                let mtu = match pinned_mtu {
                    Some(m) => Some(if m < 65535 { m + 1 } else { m - 1 }),
                    None => c.mtu,
                };
                let base = LinkBase { name: c.ifname.clone(), mtu, mac: c.mac, master, up: up_now, group, netns_fd: lower.target_fd, queues: c.kind.queues() };
                // A device born in the real root namespace gets an index chosen here, so that
                // the messages marking it in the same batch can name it by index: by name they
                // would land on a foreign device holding that name (or altname) when the
                // creation fails. The kernel honours a veth peer's index only when the creator
                // asks for one too.
                // (The planner makes the root end the creator, so a peer in the root namespace
                // means both ends are there.)
                let peer_root = root && c.peer.as_ref().is_some_and(|p| lab.netns_name(&p.node).is_none());
                let index = if root { self.fresh_root_index(handles, &c.node) } else { 0 };
                let peer_index = if peer_root { self.fresh_root_index(handles, &c.node) } else { 0 };
                let info = match (&c.kind, &c.peer) {
                    (KindSpec::Veth(_), Some(p)) => {
                        let peer_h = handles.get(&p.node).ok_or_else(|| self.fail(step, format!("no namespace handle for node {}", p.node), None))?;
                        let pb = LinkBase {
                            name: p.ifname.clone(),
                            mtu: p.mtu,
                            mac: p.mac,
                            group,
                            netns_fd: Some(peer_h.raw_fd()),
                            queues: Some(p.queues),
                            ..Default::default()
                        };
                        let mut pm = msg::link_with(&pb);
                        pm.header.index = peer_index;
                        Some(kinds::veth_info(pm))
                    }
                    (kind, _) => kinds::link_info_with(kind, lower.info_index),
                };
                let mut m = devices::with_link(msg::new_link(&base, info), lower.link);
                if let RouteNetlinkMessage::NewLink(l) = &mut m {
                    l.header.index = index;
                }
                if lower.target_fd.is_some() {
                    // Born in another namespace: its echo would go to that namespace.
                    push(out, Request::new(m, NLM_F_CREATE | NLM_F_EXCL), Then::Lookup { node: c.node.clone(), name: c.ifname.clone() });
                    return Ok(());
                }
                let req = Request::new(m, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO).stop_on_error();
                push(out, req, Then::Created { name: c.ifname.clone(), peer: c.peer.as_ref().map(|p| (p.node.clone(), p.ifname.clone())) });
                if let Some(m) = pinned_mtu {
                    // By index in the real root namespace (see `index`), by name in the lab's own.
                    let set = LinkSet { mtu: Some(m), ..Default::default() };
                    let msg = if root { msg::set_link(index, None, &set) } else { msg::set_link(0, Some(&c.ifname), &set) };
                    push(out, Request::new(msg, 0).glued(), Then::Nothing);
                }
                if root {
                    // Marked in the same batch as its creation: found by `gc` even after a kill.
                    let set = LinkSet { alias: Some(self.mark.clone()), no_ipv6_ll: no_ll, ..Default::default() };
                    push(out, Request::new(msg::set_link(index, None, &set), 0).glued(), Then::Nothing);
                    if up_now != c.up {
                        let set = LinkSet { up: Some(true), ..Default::default() };
                        push(out, Request::new(msg::set_link(index, None, &set), 0).glued(), Then::Nothing);
                    }
                }
                if peer_root {
                    let set = LinkSet { alias: Some(self.mark.clone()), no_ipv6_ll: no_ll, ..Default::default() };
                    push(out, Request::new(msg::set_link(peer_index, None, &set), 0).glued(), Then::Nothing);
                }
                if !root && per_device {
                    // In the lab's own namespace nobody else names devices: by name is safe.
                    let set = LinkSet { no_ipv6_ll: true, ..Default::default() };
                    out.push(Pending {
                        step: k,
                        req: Request::new(msg::set_link(0, Some(&c.ifname), &set), 0).glued(),
                        then: Then::Nothing,
                        enodev_ok: false,
                        optional: true,
                    });
                    if c.up {
                        let set = LinkSet { up: Some(true), ..Default::default() };
                        push(out, Request::new(msg::set_link(0, Some(&c.ifname), &set), 0).glued(), Then::Nothing);
                    }
                }
            }
            Op::ChangeLink { node, ifname, change } => {
                let idx = self.index(handles, step, node, ifname)?;
                let master = match &change.master {
                    Some(Some(m)) => Some(self.index(handles, step, node, m)?),
                    Some(None) => Some(0),
                    None => None,
                };
                let set = LinkSet {
                    mtu: change.mtu,
                    mac: change.mac,
                    up: change.up,
                    master,
                    alias: if change.mark { Some(self.mark.clone()) } else { None },
                    info: None,
                    no_ipv6_ll: change.mark && no_ll,
                    operstate_up: change.up == Some(true) && lab.node(node).and_then(|n| n.interfaces.get(ifname)).map(|i| i.kind.is_master()).unwrap_or(false),
                };
                let then = match self.observed_ns(node).and_then(|o| o.link(ifname)) {
                    Some(prev) if prev.ifindex == idx => {
                        let previous = LinkSet {
                            mtu: change.mtu.map(|_| prev.mtu),
                            mac: change.mac.and(prev.mac),
                            up: change.up.map(|_| prev.up),
                            master: change.master.as_ref().map(|_| prev.master.unwrap_or(0)),
                            ..Default::default()
                        };
                        Then::Journal(Done::Changed { node: node.clone(), ifindex: idx, previous })
                    }
                    _ => Then::Nothing,
                };
                let fresh = self.observed_ns(node).and_then(|o| o.link(ifname)).is_none();
                if no_ll && fresh && change.up == Some(true) && ifname != "lo" && !self.ll_default.contains(node) {
                    // A device created by this run (a veth peer...) comes up here for the first time.
                    let off = LinkSet { no_ipv6_ll: true, ..Default::default() };
                    out.push(Pending { step: k, req: Request::new(msg::set_link(idx, None, &off), 0), then: Then::Nothing, enodev_ok: false, optional: true });
                }
                push(out, Request::new(msg::set_link(idx, None, &set), 0), then);
            }
            Op::SetKindOptions { node, ifname, kind } => {
                let idx = self.index(handles, step, node, ifname)?;
                let set = LinkSet { info: kinds::change_info(kind), ..Default::default() };
                let then = match self.observed_ns(node).and_then(|o| o.link(ifname)).and_then(|l| l.spec.as_ref()) {
                    Some(prev) => Then::Journal(Done::Changed {
                        node: node.clone(),
                        ifindex: idx,
                        previous: LinkSet { info: kinds::link_info(prev), ..Default::default() },
                    }),
                    None => Then::Nothing,
                };
                push(out, Request::new(msg::set_link(idx, None, &set), 0), then);
            }
            Op::SetPort { node, ifname, hairpin } => {
                let idx = self.index(handles, step, node, ifname)?;
                let set = LinkSet { info: Some(kinds::bridge_port_info(*hairpin)), ..Default::default() };
                push(out, Request::new(msg::set_link(idx, None, &set), 0), Then::Nothing);
            }
            Op::ForwardPort { node, ifname } => {
                let idx = self.index(handles, step, node, ifname)?;
                let set = LinkSet { info: Some(kinds::bridge_port_forwarding_info()), ..Default::default() };
                // A port that lost its carrier since it was observed is refused (ENETDOWN) and
                // forwards at once when the carrier comes back, STP being off: nothing is lost.
                out.push(Pending { step: k, req: Request::new(msg::set_link(idx, None, &set), 0), then: Then::Nothing, enodev_ok: false, optional: true });
            }
            Op::AddAddress { node, ifname, addr } => {
                let idx = self.index(handles, step, node, ifname)?;
                let then = Then::Journal(Done::Addr { node: node.clone(), ifindex: idx, addr: *addr });
                push(out, Request::new(msg::new_addr(idx, addr), NLM_F_CREATE | NLM_F_EXCL), then);
            }
            Op::DelAddress { node, ifname, addr } => {
                let idx = self.index(handles, step, node, ifname)?;
                let then = Then::Journal(Done::AddrRemoved { node: node.clone(), ifindex: idx, addr: *addr });
                push(out, Request::new(msg::del_addr(idx, addr), 0), then);
            }
            Op::AddRoute { node, route } => {
                let wire = self.route_wire(handles, step, node, route)?;
                let then = Then::Journal(Done::Route { node: node.clone(), route: wire.clone() });
                push(out, Request::new(msg::new_route(&wire), NLM_F_CREATE | NLM_F_EXCL), then);
            }
            Op::DelRoute { node, route } => {
                let wire = self.route_wire(handles, step, node, route)?;
                let then = Then::Journal(Done::RouteRemoved { node: node.clone(), route: wire.clone() });
                out.push(Pending { step: k, req: Request::new(msg::del_route(&wire), 0), then, enodev_ok: true, optional: false });
            }
            Op::DeleteLink { node, ifname } if self.delete_tun(step, node, ifname, handles)? => {}
            Op::Device { node, ifname, device_op } => self.device_requests(k, step, node, ifname, device_op, handles, out)?,
            Op::DeleteLink { node, ifname } => {
                // No index: already gone (its veth twin was deleted earlier).
                if let Some(idx) = handles.get(node).and_then(|h| h.index(ifname)) {
                    out.push(Pending {
                        step: k,
                        req: Request::new(msg::del_link(idx), 0),
                        then: Then::Forget(ifname.clone()),
                        enodev_ok: true,
                        optional: false,
                    });
                }
            }
            Op::CreateNetns { .. }
            | Op::DeleteNetns { .. }
            | Op::SetSysctl { .. }
            | Op::RestoreSysctl { .. }
            | Op::LinkLocal { .. }
            | Op::Feature { .. }
            | Op::Ovs { .. } => {}
        }
        Ok(())
    }

    /// An interface index for a new device in the root namespace: far above the kernel's own
    /// allocations (which count up from 1), random, and unused as far as vnet knows.
    fn fresh_root_index(&mut self, handles: &BTreeMap<String, NsHandle>, node: &str) -> u32 {
        use std::hash::{BuildHasher, Hasher};
        let observed = self.observed_ns(node);
        let used = |i: u32| observed.is_some_and(|o| o.link_by_index(i).is_some()) || handles.get(node).is_some_and(|h| h.ifindex.values().any(|x| *x == i));
        loop {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.write_usize(self.chosen.len());
            let i = 0x1000_0000 + (h.finish() as u32 % 0x5000_0000);
            if !used(i) && self.chosen.insert(i) {
                return i;
            }
        }
    }

    fn route_wire(&self, handles: &BTreeMap<String, NsHandle>, step: &Step, node: &str, r: &RouteOp) -> Result<RouteWire, ApplyError> {
        let oif = match &r.dev {
            Some(d) => Some(self.index(handles, step, node, d)?),
            None => None,
        };
        Ok(RouteWire { dst: r.dst, via: r.via, oif, metric: r.metric, table: r.table, src: r.src, protocol: r.proto.unwrap_or(RTPROT_VNET) })
    }

    fn after(&mut self, then: Then, node: &str, msgs: Vec<RouteNetlinkMessage>, handles: &mut BTreeMap<String, NsHandle>) {
        match then {
            Then::Created { name, peer } if !msgs.iter().any(|m| matches!(m, RouteNetlinkMessage::NewLink(_))) => self.learn(node, &name, peer, handles),
            Then::Lookup { node: target, name } => self.learn(&target, &name, None, handles),
            Then::Index { name, ifindex } => {
                if let Some(h) = handles.get_mut(node) {
                    h.ifindex.insert(name, ifindex);
                }
            }
            Then::Created { peer, .. } => {
                for m in msgs {
                    if let RouteNetlinkMessage::NewLink(l) = m {
                        let o = decode_link(&l);
                        if let Some(h) = handles.get_mut(node) {
                            h.ifindex.insert(o.name.clone(), o.ifindex);
                        }
                        self.journal.push(Done::Link { node: node.to_string(), ifindex: o.ifindex });
                        if let (Some((pn, pi)), Some(link)) = (&peer, o.link) {
                            if let Some(ph) = handles.get_mut(pn) {
                                ph.ifindex.insert(pi.clone(), link);
                            }
                        }
                    }
                }
            }
            Then::Journal(d) => self.journal.push(d),
            Then::Forget(name) => {
                if let Some(h) = handles.get_mut(node) {
                    h.ifindex.remove(&name);
                }
            }
            Then::Nothing => {}
        }
    }
}

/// The kernel's error, with a word on the usual cause where errno alone is cryptic.
fn explain(op: &Op, e: &KernelError) -> String {
    let hint = match (op, e.errno) {
        (Op::CreateLink(c), libc::EEXIST) if matches!(c.kind, KindSpec::Vxlan(_)) && e.text.as_deref().is_some_and(|t| t.contains("VNI")) => {
            Some("another VXLAN device on the same UDP port (another lab's tunnel, or the host's own) already uses this VNI".to_string())
        }
        (Op::CreateLink(c), libc::EEXIST) => {
            Some(format!("a device named `{}` (or with that altname) already exists there; it is not the lab's and was left untouched", c.ifname))
        }
        (Op::AddAddress { addr, .. }, libc::EINVAL) if addr.addr().is_ipv6() => {
            Some("the device has no IPv6 (an MTU below 1280 or disable_ipv6 turns it off)".into())
        }
        (Op::CreateLink(c), libc::EOPNOTSUPP) | (Op::CreateLink(c), libc::ENOENT) if e.text.is_none() => {
            Some(format!("this kernel may lack the `{}` device kind", c.kind.name()))
        }
        (Op::CreateLink(c), libc::EXFULL) if c.master.is_some() => {
            Some(format!("bridge `{}` is full: a Linux bridge holds at most 1023 ports", c.master.as_deref().unwrap_or("")))
        }
        (Op::AddRoute { .. }, libc::ENETUNREACH) => Some("the gateway is not on any connected network of the node".into()),
        (Op::AddAddress { .. }, libc::EEXIST) => Some("the address is already assigned".into()),
        _ => None,
    };
    match hint {
        Some(h) => format!("{e}: {h}"),
        None => e.to_string(),
    }
}
