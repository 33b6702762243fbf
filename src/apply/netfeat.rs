//! Executing NAT/firewall, qdisc, BPF and xfrm operations. Each node's operations run in plan
//! order on a thread inside the node's namespace (so `nft` and the sockets opened there act on
//! it); each change is journaled with the operation that undoes it.

use std::collections::{BTreeMap, HashMap};

use crate::kernel::handle::NsHandle;
use crate::kernel::netfeat::rawnl::RawNl;
use crate::kernel::netfeat::{bpf, nft, tc, xfrm};
use crate::kernel::netns;
use crate::model::netfeat::spec::BpfHookSpec;
use crate::observed::{NsState, Observed};
use crate::plan::{FeatureOp, Op, Step};

use super::journal::{Done, Journal};
use super::ApplyError;

/// Runs the feature steps `idxs` of a stage.
pub(super) fn run(
    observed: &Observed,
    steps: &[Step],
    idxs: &[usize],
    handles: &mut BTreeMap<String, NsHandle>,
    journal: &mut Journal,
) -> Result<(), ApplyError> {
    let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &k in idxs {
        by_node.entry(steps[k].op.node().to_string()).or_default().push(k);
    }
    for (node, list) in by_node {
        let Some(h) = handles.get(&node) else {
            return Err(super::fail(&steps[list[0]], format!("no namespace handle for node {node}"), None));
        };
        let ifindex = h.ifindex.clone();
        let had_table = match observed.nodes.get(&node) {
            Some(NsState::Owned(o) | NsState::Root(o)) => o.features.nft.is_some(),
            _ => false,
        };
        let qdiscs = match observed.nodes.get(&node) {
            Some(NsState::Owned(o) | NsState::Root(o)) => o.features.qdiscs.clone(),
            _ => Default::default(),
        };
        let results = netns::run_in(Some(&h.fd), || {
            let mut ex = NodeExec::new(&ifindex);
            let mut done = Vec::new();
            for &k in &list {
                let Op::Feature { change, .. } = &steps[k].op else { continue };
                match ex.exec(change) {
                    Ok(()) => done.push(undo_of(change, had_table, &qdiscs)),
                    Err((cause, errno)) => return (done, Some((k, cause, errno))),
                }
            }
            (done, None)
        })
        .map_err(|e| super::fail(&steps[list[0]], format!("enter namespace of node {node}: {e}"), None))?;
        let (done, err) = results;
        for undo in done.into_iter().flatten() {
            journal.push(Done::Feature { node: node.clone(), undo });
        }
        if let Some((k, cause, errno)) = err {
            return Err(super::fail(&steps[k], cause, errno));
        }
    }
    Ok(())
}

/// What puts the kernel back after `op` succeeded (`None`: nothing to undo).
fn undo_of(op: &FeatureOp, had_table: bool, qdiscs: &BTreeMap<String, crate::observed::netfeat::ObservedQdisc>) -> Option<FeatureOp> {
    Some(match op {
        FeatureOp::SetNft { table, .. } if !had_table => FeatureOp::DeleteNft { table: table.clone() },
        FeatureOp::SetQdisc { ifname, .. } => {
            let prev = qdiscs.get(ifname).filter(|q| q.handle != crate::observed::netfeat::VNET_QDISC_HANDLE && q.handle != 0).cloned();
            FeatureOp::RestoreQdisc { ifname: ifname.clone(), previous: prev }
        }
        FeatureOp::AttachBpf { attach, .. } => FeatureOp::DetachBpf { ifname: attach.dev.clone(), hook: attach.hook, mode: attach.mode },
        FeatureOp::AddXfrmState { state } => FeatureOp::DelXfrmState { state: state.clone() },
        FeatureOp::DelXfrmState { state } => FeatureOp::AddXfrmState { state: state.clone() },
        FeatureOp::AddXfrmPolicy { policy } => FeatureOp::DelXfrmPolicy { policy: policy.clone() },
        FeatureOp::DelXfrmPolicy { policy } => FeatureOp::AddXfrmPolicy { policy: policy.clone() },
        _ => return None,
    })
}

/// Undoes one journaled feature change (rollback).
pub(super) fn undo(handles: &BTreeMap<String, NsHandle>, node: &str, op: &FeatureOp) -> Result<(), String> {
    let h = handles.get(node).ok_or_else(|| format!("no handle for node {node}"))?;
    let ifindex = h.ifindex.clone();
    netns::run_in(Some(&h.fd), || NodeExec::new(&ifindex).exec(op).map_err(|(c, _)| c)).map_err(|e| e.to_string())?
}

/// Sockets of one node, opened on first use (on the node's thread).
struct NodeExec<'a> {
    ifindex: &'a HashMap<String, u32>,
    route: Option<RawNl>,
    xfrm: Option<RawNl>,
}

type ExecError = (String, Option<i32>);

impl<'a> NodeExec<'a> {
    fn new(ifindex: &'a HashMap<String, u32>) -> Self {
        NodeExec { ifindex, route: None, xfrm: None }
    }

    fn index(&self, dev: &str) -> Result<u32, ExecError> {
        self.ifindex.get(dev).copied().ok_or_else(|| (format!("device `{dev}` is not known (it should exist by now)"), Some(libc::ENODEV)))
    }

    fn route(&mut self) -> Result<&mut RawNl, ExecError> {
        if self.route.is_none() {
            self.route = Some(RawNl::open(netlink_sys::protocols::NETLINK_ROUTE).map_err(|e| (format!("open a netlink socket: {e}"), e.raw_os_error()))?);
        }
        Ok(self.route.as_mut().unwrap())
    }

    fn xfrm(&mut self) -> Result<&mut RawNl, ExecError> {
        if self.xfrm.is_none() {
            self.xfrm = Some(RawNl::open(xfrm::NETLINK_XFRM).map_err(|e| (format!("open an xfrm netlink socket: {e}"), e.raw_os_error()))?);
        }
        Ok(self.xfrm.as_mut().unwrap())
    }

    fn exec(&mut self, op: &FeatureOp) -> Result<(), ExecError> {
        let k = |e: crate::kernel::nl::KernelError| (e.to_string(), Some(e.errno));
        match op {
            FeatureOp::SetNft { table, spec, .. } => nft::apply(&nft::ruleset(table, spec)).and_then(|()| nft::seal(table)).map_err(|e| (e, None)),
            FeatureOp::DeleteNft { table } => nft::apply(&nft::delete_ruleset(table)).map_err(|e| (e, None)),
            FeatureOp::SetQdisc { ifname, imp } => {
                let i = self.index(ifname)?;
                tc::set_root(self.route()?, i, imp).map_err(|e| {
                    let hint = if e.errno == libc::ENOENT || e.errno == libc::EOPNOTSUPP {
                        format!(": this kernel may lack the `{}` qdisc (CONFIG_NET_SCH_{})", imp.qdisc_kind(), imp.qdisc_kind().to_ascii_uppercase())
                    } else {
                        String::new()
                    };
                    (format!("{e}{hint}"), Some(e.errno))
                })
            }
            FeatureOp::RestoreQdisc { ifname, previous } => {
                let i = self.index(ifname)?;
                tc::restore_root(self.route()?, i, previous.as_ref()).map_err(k)
            }
            FeatureOp::AttachBpf { attach, .. } => {
                let i = self.index(&attach.dev)?;
                let prog = bpf::load(&attach.object, &attach.program, attach.hook).map_err(|e| (e, None))?;
                bpf::attach(self.route()?, i, attach.hook, attach.mode, &prog).map_err(|e| {
                    let hint = if attach.hook == BpfHookSpec::Xdp && e.errno == libc::EOPNOTSUPP {
                        " (native XDP needs driver support; try `mode: generic`)"
                    } else {
                        ""
                    };
                    (format!("{e}{hint}"), Some(e.errno))
                })
            }
            FeatureOp::DetachBpf { ifname, hook, mode } => {
                let i = self.index(ifname)?;
                bpf::detach(self.route()?, i, *hook, *mode).map_err(k)
            }
            FeatureOp::AddXfrmState { state } => xfrm::add_state(self.xfrm()?, state).map_err(|e| {
                let hint = if e.errno == libc::EPROTONOSUPPORT || e.errno == libc::ENOENT {
                    ": this kernel may lack ESP (CONFIG_INET_ESP) or the algorithm"
                } else {
                    ""
                };
                (format!("{e}{hint}"), Some(e.errno))
            }),
            FeatureOp::DelXfrmState { state } => xfrm::del_state(self.xfrm()?, state).map_err(k),
            FeatureOp::AddXfrmPolicy { policy } => xfrm::add_policy(self.xfrm()?, policy).map_err(k),
            FeatureOp::DelXfrmPolicy { policy } => xfrm::del_policy(self.xfrm()?, policy).map_err(k),
        }
    }
}

/// Attached program ids after an `up`, for the lab record: (dev, hook) -> prog id.
pub fn attached_ids(h: &NsHandle, devices: &[String]) -> Result<Vec<(String, BpfHookSpec, u32)>, String> {
    let list: Vec<(String, u32)> = devices.iter().filter_map(|d| h.ifindex.get(d).map(|i| (d.clone(), *i))).collect();
    netns::run_in(Some(&h.fd), || -> Result<Vec<(String, BpfHookSpec, u32)>, String> {
        let mut nl = RawNl::open(netlink_sys::protocols::NETLINK_ROUTE).map_err(|e| e.to_string())?;
        let obs = bpf::observe(&mut nl, &list).map_err(|e| e.to_string())?;
        Ok(obs.into_iter().filter(|b| b.hook == BpfHookSpec::Xdp || b.prio == bpf::VNET_PRIO).map(|b| (b.ifname, b.hook, b.prog_id)).collect())
    })
    .map_err(|e| e.to_string())?
}
