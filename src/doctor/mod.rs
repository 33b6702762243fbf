//! `doctor`: the usual reasons a lab does not behave, found in what the kernel holds and said
//! with their fix: devices or peers down, no carrier, missing addresses and routes, no default
//! route, forwarding off on a router, reverse-path filtering against asymmetric routes, macvlan
//! siblings that cannot meet, MTU mismatches, traffic leaving the lab without masquerade,
//! duplicate addresses, ports not in their bridge, bridge ports in the wrong VLAN, a NAT/firewall
//! table changed or removed by hand, traffic control and BPF programs that differ from the
//! declared ones, and any other difference from the file `vnet plan` shows (`drift`). Each finding names the node and device and, when it comes from the topology
//! file, its line.
//!
//! Two kinds of checks: `links` / `addressing` / `macvlan` / `vlan` / `nat` / `nft` / `tc`
//! compare the model and the kernel's state directly; `paths` follows packets between every
//! pair of nodes with the kernel's own lookups (as `trace` does) and turns each drop into a
//! finding.

mod addressing;
mod drift;
mod links;
mod macvlan;
mod nat;
mod nft;
mod paths;
mod tc;
pub mod vlan;

use serde::Serialize;

use crate::error::Result;
use crate::inspect::view::LabView;
use crate::inspect::RunningLab;
use crate::model::source::{Path, Seg};
use crate::plan::Op;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with its fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable name of the check (`device-down`, `rp-filter`, ...).
    pub code: &'static str,
    pub severity: Severity,
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// `file:line:col` of the topology text it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Everything doctor found.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub lab: String,
    pub findings: Vec<Finding>,
    /// Node pairs whose paths were followed.
    pub pairs_traced: usize,
}

/// What every check gets.
pub(crate) struct Ctx<'a> {
    pub rl: &'a RunningLab,
    pub view: &'a LabView,
    pub out: Vec<Finding>,
    /// How the kernel differs from the lab as applied: what `vnet plan` would show.
    pub drift: Drift,
}

/// The operations `up` would perform on the running lab with its own topology (the same plan
/// `vnet plan` shows): where the kernel drifted from what the file declares, the fix is to apply
/// the file again, not to add to the file what it already says.
pub(crate) struct Drift {
    ops: Vec<Op>,
    /// How to apply the file again.
    up: String,
}

impl Drift {
    pub fn of(rl: &RunningLab) -> Drift {
        let ops = match crate::lifecycle::up::plan_against(rl.model(), Some(&rl.state)) {
            Ok(p) => p.ops().cloned().collect(),
            Err(e) => {
                tracing::debug!("doctor: no plan against the lab's record: {e}");
                Vec::new()
            }
        };
        // The command only for a lab that `vnet up FILE` made from the file as it is (a test
        // library's lab has a name of its own, not the file's).
        let up = match &rl.state.file {
            Some(f) if rl.from_file && rl.state.owner_pid.is_none() => {
                format!("`vnet up {}{}` puts it back", f.display(), if rl.state.isolated_host { " --isolated-host" } else { "" })
            }
            _ => "run `vnet up` with the lab's file again to put it back".into(),
        };
        Drift { ops, up }
    }

    /// Every planned operation.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// An operation as `vnet plan` writes it, on one line.
    pub fn shown(&self, op: &Op) -> String {
        op.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The first planned operation that `f` picks.
    pub fn find(&self, f: impl Fn(&Op) -> bool) -> Option<&Op> {
        self.ops.iter().find(|o| f(o))
    }

    /// The fix for a finding the kernel's drift explains.
    pub fn fix(&self, op: &Op) -> String {
        // What the file does not declare goes, rather than coming back.
        let up = match op {
            Op::DelRoute { .. } | Op::DelAddress { .. } | Op::DeleteLink { .. } => {
                self.up.replace("puts it back", "removes it").replace("to put it back", "to remove it")
            }
            _ => self.up.clone(),
        };
        format!("the kernel differs from the file (`vnet plan` shows `{}`): {up}", self.shown(op))
    }

    /// How to apply the file again, when the plan could not name the operation.
    pub fn again(&self) -> String {
        self.up.clone()
    }

    /// The fix for a namespace or device gone from the kernel.
    pub fn recreate(&self) -> String {
        self.up.replace("puts it back", "re-creates it").replace("to put it back", "to re-create it")
    }
}

impl Ctx<'_> {
    pub fn add(&mut self, f: Finding) {
        // One finding per cause and place: paths repeat what one broken setting does to many pairs.
        if !self.out.iter().any(|x| {
            x.code == f.code && x.node == f.node && x.device == f.device && (x.message == f.message || (x.location == f.location && x.location.is_some()))
        }) {
            self.out.push(f);
        }
    }

    /// A finding about `node` (and `device`), located at `path` in the file when known.
    #[allow(clippy::too_many_arguments)] // one argument per field of the finding, named at each call
    pub fn finding(
        &self,
        code: &'static str,
        severity: Severity,
        node: &str,
        device: Option<&str>,
        message: String,
        fix: String,
        path: Option<&[Seg]>,
    ) -> Finding {
        Finding { code, severity, node: node.into(), device: device.map(str::to_string), message, fix, location: path.and_then(|p| self.rl.location(p)) }
    }

    /// The path of a declared interface, if the model has it.
    pub fn iface_path(&self, node: &str, dev: &str) -> Option<Path> {
        self.rl.model().nodes.get(node)?.interfaces.get(dev).map(|i| i.path.clone())
    }

    /// The path of a node's sysctl, or the node itself when the sysctl is not declared.
    pub fn sysctl_path(&self, node: &str, keys: &[&str]) -> Option<Path> {
        let n = self.rl.model().nodes.get(node)?;
        for k in keys {
            if n.sysctls.contains_key(*k) {
                let mut p = n.path.clone();
                p.push(Seg::Key("sysctls".into()));
                p.push(Seg::Key((*k).to_string()));
                return Some(p);
            }
        }
        Some(n.path.clone())
    }

    pub fn ns_name(&self, node: &str) -> String {
        self.rl.model().netns_name(node).map(|n| format!("-n {n} ")).unwrap_or_default()
    }
}

/// Examines a running lab by name.
pub fn doctor(lab: &str) -> Result<DoctorReport> {
    let rl = RunningLab::open(lab)?;
    doctor_running(&rl)
}

/// Examines an opened lab.
pub fn doctor_running(rl: &RunningLab) -> Result<DoctorReport> {
    let view = LabView::observe(rl)?;
    let mut ctx = Ctx { rl, view: &view, out: Vec::new(), drift: Drift::of(rl) };
    missing_namespaces(&mut ctx);
    links::check(&mut ctx);
    addressing::check(&mut ctx);
    macvlan::check(&mut ctx);
    vlan::check(&mut ctx);
    nat::check(&mut ctx);
    nft::check(&mut ctx);
    tc::check(&mut ctx);
    let pairs_traced = paths::check(&mut ctx)?;
    // Last: what the plan still holds that no check above explained.
    drift::check(&mut ctx);
    let mut findings = ctx.out;
    findings.sort_by(|a, b| (a.severity, &a.node, &a.device, a.code).cmp(&(b.severity, &b.node, &b.device, b.code)));
    Ok(DoctorReport { lab: rl.name().into(), findings, pairs_traced })
}

/// Nodes whose namespace is gone (deleted outside vnet): nothing of them can be read.
fn missing_namespaces(ctx: &mut Ctx) {
    for (node, netns) in &ctx.rl.missing {
        let path = ctx.rl.model().nodes.get(node).map(|n| n.path.clone());
        let f = ctx.finding(
            "missing-namespace",
            Severity::Error,
            node,
            None,
            format!("the namespace of node {node} is missing ({netns} does not exist): nothing of {node} is in the kernel"),
            ctx.drift.recreate(),
            path.as_deref(),
        );
        ctx.add(f);
    }
}

/// Readable report.
pub fn render(r: &DoctorReport) -> String {
    let mut s = String::new();
    if r.findings.is_empty() {
        s.push_str(&format!("lab {}: no problems found ({} node pairs traced)\n", r.lab, r.pairs_traced));
        return s;
    }
    s.push_str(&format!("lab {}: {} findings ({} node pairs traced)\n", r.lab, r.findings.len(), r.pairs_traced));
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let at = match &f.device {
            Some(d) => format!("{}:{d}", f.node),
            None => f.node.clone(),
        };
        s.push_str(&format!("{sev} [{}] {at}: {}\n", f.code, f.message));
        s.push_str(&format!("    fix: {}\n", f.fix));
        if let Some(l) = &f.location {
            s.push_str(&format!("    at: {l}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_names_node_device_fix_and_line() {
        let r = DoctorReport {
            lab: "l".into(),
            findings: vec![Finding {
                code: "ip-forward-off",
                severity: Severity::Error,
                node: "r".into(),
                device: None,
                message: "r routes between 10.1.0.0/24 and 10.2.0.0/24 but forwarding is off".into(),
                fix: "set net.ipv4.ip_forward: 1 in nodes.r.sysctls".into(),
                location: Some("lab.yaml:12:7".into()),
            }],
            pairs_traced: 6,
        };
        assert_eq!(
            render(&r),
            "lab l: 1 findings (6 node pairs traced)\nerror [ip-forward-off] r: r routes between 10.1.0.0/24 and 10.2.0.0/24 but forwarding is off\n    fix: set net.ipv4.ip_forward: 1 in nodes.r.sysctls\n    at: lab.yaml:12:7\n"
        );
    }
}
