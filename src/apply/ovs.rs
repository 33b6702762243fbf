//! Executing `Op::Ovs`: per node, in plan order: start the private Open vSwitch, write the
//! bridges and ports of the stage in one OVSDB transaction (waiting for ovs-vswitchd to apply
//! it, then learning the indexes of the devices it made), install and remove flows in one
//! bundle, stop the private instance. Each change is journaled with what undoes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::journal::Done;
use super::{ApplyError, Executor};
use crate::kernel::handle::NsHandle;
use crate::observed::ovs::{OvsBridgeObs, OvsInstance};
use crate::ovs::{self as ovsrt, daemon, ofctl, vswitch, Target};
use crate::plan::ovs::{observed_row, OvsOp};
use crate::plan::{Op, Step};

/// What undoes one OVS change.
#[derive(Debug)]
pub enum OvsUndo {
    /// Stop the private instance started by this run, and remove its directory.
    Stop { dir: PathBuf },
    /// Operations putting the database back (remove what was added, restore what changed).
    Config { rundir: PathBuf, lab: String, ops: Vec<OvsOp> },
    /// Remove flows this run added.
    Flows { rundir: PathBuf, bridge: String, cookies: Vec<u64> },
}

/// Undoes one change (rollback).
pub fn undo(u: &OvsUndo) -> Result<(), String> {
    match u {
        OvsUndo::Stop { dir } => {
            daemon::stop(dir, &BTreeMap::new()).map_err(|e| format!("stop Open vSwitch in {}: {e}", dir.display()))?;
            std::fs::remove_dir_all(dir).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }).map_err(|e| e.to_string())
        }
        OvsUndo::Config { rundir, lab, ops } => {
            let mut c = Target::new(rundir).connect().map_err(|e| e.to_string())?;
            let refs: Vec<&OvsOp> = ops.iter().collect();
            vswitch::apply(&mut c, lab, &refs).map_err(|e| format!("undo OVS changes: {e}"))
        }
        OvsUndo::Flows { rundir, bridge, cookies } => ofctl::apply(&Target::new(rundir).mgmt(bridge), &[], cookies),
    }
}

/// The operations undoing `op`, given the bridges before it ran. Removals are not undone.
fn inverse(op: &OvsOp, before: &[OvsBridgeObs]) -> Vec<OvsOp> {
    match op {
        OvsOp::AddBridge { bridge } => vec![OvsOp::DelBridge { bridge: bridge.name.clone() }],
        OvsOp::AddPort { bridge, port } => vec![OvsOp::DelPort { bridge: bridge.clone(), port: port.name.clone() }],
        OvsOp::SetPort { bridge, port } => before
            .iter()
            .find(|b| &b.name == bridge)
            .and_then(|b| b.port(&port.name))
            .map(|p| vec![OvsOp::SetPort { bridge: bridge.clone(), port: observed_row(p) }])
            .unwrap_or_default(),
        OvsOp::SetBridge { bridge, datapath, fail_mode, controller } => before
            .iter()
            .find(|b| &b.name == bridge)
            .map(|b| {
                vec![OvsOp::SetBridge {
                    bridge: bridge.clone(),
                    datapath: datapath.as_ref().map(|_| b.datapath_type.clone()),
                    fail_mode: fail_mode.as_ref().map(|_| b.fail_mode.clone()),
                    controller: controller.as_ref().map(|_| b.controllers.first().cloned()),
                }]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl Executor<'_> {
    /// The Open vSwitch serving `node`: the one observed, or the lab's private one.
    fn ovs_target(&self, node: &str) -> Target {
        match self.ctx.observed.ovs.get(node).map(|o| &o.instance) {
            Some(OvsInstance::System { rundir }) => Target::new(rundir),
            Some(OvsInstance::Private { dir }) => Target::new(dir),
            _ => Target::new(ovsrt::private_dir(&self.ctx.lab.name, node)),
        }
    }

    /// Runs the stage's OVS operations, node by node.
    pub(super) fn ovs(&mut self, steps: &[Step], idxs: &[usize], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &k in idxs {
            by_node.entry(steps[k].op.node().to_string()).or_default().push(k);
        }
        for (node, ks) in by_node {
            let ops: Vec<(usize, &OvsOp)> = ks
                .iter()
                .filter_map(|&k| match &steps[k].op {
                    Op::Ovs { ovs_op, .. } => Some((k, ovs_op)),
                    _ => None,
                })
                .collect();
            self.ovs_node(&node, steps, &ops, handles)?;
        }
        Ok(())
    }

    fn ovs_node(&mut self, node: &str, steps: &[Step], ops: &[(usize, &OvsOp)], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), ApplyError> {
        let lab = self.ctx.lab.name.clone();
        let target = self.ovs_target(node);
        for (k, _) in ops.iter().filter(|(_, o)| matches!(o, OvsOp::Start)) {
            let netns = self.ctx.lab.netns_name(node);
            let dir = ovsrt::private_dir(&lab, node);
            daemon::start(&dir, netns.as_deref(), node).map_err(|e| self.fail(&steps[*k], format!("start Open vSwitch: {e}"), e.raw_os_error()))?;
            self.journal.push(Done::Ovs { node: node.to_string(), undo: OvsUndo::Stop { dir } });
        }
        let config: Vec<(usize, &OvsOp)> = ops.iter().filter(|(_, o)| !matches!(o, OvsOp::Start | OvsOp::Stop | OvsOp::Flows { .. })).copied().collect();
        if let Some((first, _)) = config.first() {
            let step = &steps[*first];
            let mut c = target.connect().map_err(|e| self.fail(step, format!("connect to OVSDB at {}: {e}", target.db_sock().display()), None))?;
            let before = vswitch::snapshot(&mut c).map_err(|e| self.fail(step, format!("read OVSDB: {e}"), None))?;
            let list: Vec<&OvsOp> = config.iter().map(|(_, o)| *o).collect();
            let undo: Vec<OvsOp> = list.iter().flat_map(|o| inverse(o, &before)).collect();
            let result = vswitch::apply(&mut c, &lab, &list);
            if !undo.is_empty() {
                // Journaled even on failure: a transaction that committed but whose ports
                // ovs-vswitchd refused must be taken back too.
                let committed = vswitch::snapshot(&mut c).map(|now| now != before).unwrap_or(true);
                if committed {
                    self.journal
                        .push(Done::Ovs { node: node.to_string(), undo: OvsUndo::Config { rundir: target.rundir.clone(), lab: lab.clone(), ops: undo } });
                }
            }
            if let Err(e) = result {
                let at = config.iter().find(|(_, o)| e.to_string().contains(&op_subject(o))).map(|(k, _)| *k).unwrap_or(*first);
                return Err(self.fail(&steps[at], e.to_string(), None));
            }
            self.learn_ovs_devices(node, &list, handles).map_err(|why| self.fail(step, why, Some(libc::ENODEV)))?;
        }
        for (k, op) in ops {
            let OvsOp::Flows { bridge, add, del } = op else {
                continue;
            };
            ofctl::apply(&target.mgmt(bridge), add, del).map_err(|e| self.fail(&steps[*k], format!("ovs-ofctl: {e}"), None))?;
            if !add.is_empty() {
                let cookies = add.iter().map(|f| f.cookie).collect();
                self.journal
                    .push(Done::Ovs { node: node.to_string(), undo: OvsUndo::Flows { rundir: target.rundir.clone(), bridge: bridge.clone(), cookies } });
            }
        }
        for (k, _) in ops.iter().filter(|(_, o)| matches!(o, OvsOp::Stop)) {
            let dir = ovsrt::private_dir(&lab, node);
            daemon::stop(&dir, &BTreeMap::new()).map_err(|e| self.fail(&steps[*k], format!("stop Open vSwitch: {e}"), e.raw_os_error()))?;
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    }

    /// Indexes of the devices ovs-vswitchd made (bridge interfaces, internal ports), so that
    /// later stages can bring them up and address them.
    fn learn_ovs_devices(&mut self, node: &str, ops: &[&OvsOp], handles: &mut BTreeMap<String, NsHandle>) -> Result<(), String> {
        let mut names: Vec<String> = Vec::new();
        for op in ops {
            match op {
                OvsOp::AddBridge { bridge } => names.extend(std::iter::once(&bridge.local).chain(&bridge.ports).filter(|p| p.internal).map(|p| p.name.clone())),
                OvsOp::AddPort { port, .. } if port.internal => names.push(port.name.clone()),
                _ => {}
            }
        }
        let Some(h) = handles.get_mut(node) else {
            return Ok(());
        };
        for name in names {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(l) = super::devices::lookup(h, &name) {
                    h.ifindex.insert(name.clone(), l.ifindex);
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("Open vSwitch did not create the device `{name}` in node {node}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }
}

/// The name an OVS error message would mention for an operation.
fn op_subject(op: &OvsOp) -> String {
    match op {
        OvsOp::AddBridge { bridge } => bridge.name.clone(),
        OvsOp::SetBridge { bridge, .. } | OvsOp::DelBridge { bridge } | OvsOp::Flows { bridge, .. } => bridge.clone(),
        OvsOp::AddPort { port, .. } | OvsOp::SetPort { port, .. } => format!("`{}`", port.name),
        OvsOp::DelPort { port, .. } => port.clone(),
        OvsOp::Start | OvsOp::Stop => String::new(),
    }
}
