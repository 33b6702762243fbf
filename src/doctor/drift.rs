//! What `vnet plan` would still change that no other check explained: every difference between
//! the kernel and the file is a finding, said in its own words (a route or address added by
//! hand, a link-local address deleted, a port's hairpin, a sysctl, a device option), with the
//! operation that puts it back.

use super::{Ctx, Finding, Severity};
use crate::model::source::{Path, Seg};
use crate::plan::Op;

pub(super) fn check(ctx: &mut Ctx) {
    let ops: Vec<Op> = ctx.drift.ops().to_vec();
    for op in &ops {
        if covered(&ctx.out, op, &ctx.drift.shown(op)) {
            continue;
        }
        let Some((code, severity, message)) = describe(op) else { continue };
        let path = place(ctx, op);
        let f = ctx.finding(code, severity, op.node(), op.device(), message, ctx.drift.fix(op), path.as_deref());
        ctx.add(f);
    }
}

/// Whether a finding already says this: its fix names the operation, or it is the device's
/// (or node's) absence, or the device being down that the operation brings up.
fn covered(found: &[Finding], op: &Op, shown: &str) -> bool {
    found.iter().any(|f| {
        let here = f.node == op.node();
        let on_device = here && f.device.as_deref() == op.device() && op.device().is_some();
        f.fix.contains(&format!("`{shown}`"))
            || (here && f.code == "missing-namespace")
            || (on_device && f.code == "missing-device")
            || (on_device && f.code == "device-down" && matches!(op, Op::ChangeLink { change, .. } if change.up == Some(true)))
            || (on_device && f.code == "not-in-bridge" && matches!(op, Op::ChangeLink { change, .. } if change.master.is_some()))
            || (f.code.starts_with("tc-") || f.code == "bpf-missing") && here && matches!(op, Op::Feature { .. }) && op.device() == f.device.as_deref()
    })
}

/// The finding's code, how bad it is and what it says; `None` for operations that are the
/// lab's own bookkeeping rather than a difference a user made.
fn describe(op: &Op) -> Option<(&'static str, Severity, String)> {
    let (code, severity, message) = match op {
        Op::DelRoute { .. } => ("undeclared-route", Severity::Warning, format!("the kernel has a route the file does not declare: {}", route_text(op))),
        Op::AddRoute { .. } => ("missing-route", Severity::Error, format!("route {} is declared but the kernel does not have it", route_text(op))),
        Op::DelAddress { ifname, addr, .. } => ("undeclared-address", Severity::Warning, format!("{ifname} has {addr}, which the file does not declare")),
        Op::AddAddress { ifname, addr, .. } => ("missing-address", Severity::Error, format!("{addr} is declared on {ifname} but the device does not have it")),
        Op::LinkLocal { ifname, on, revive: true, .. } => (
            "ipv6-off",
            if *on { Severity::Error } else { Severity::Warning },
            format!("{ifname} has IPv6 turned off, as vnet does only to the bridge ports of a lab without link-local addresses"),
        ),
        Op::LinkLocal { ifname, on: true, .. } => {
            ("link-local-missing", Severity::Error, format!("{ifname} has no IPv6 link-local address, which the lab's `ipv6` gives every device"))
        }
        Op::LinkLocal { ifname, on: false, .. } => {
            ("link-local-undeclared", Severity::Warning, format!("{ifname} makes an IPv6 link-local address, which the lab's `ipv6` turns off"))
        }
        Op::SetPort { ifname, hairpin, .. } => {
            ("hairpin-differs", Severity::Error, format!("bridge port {ifname} has hairpin {}, declared {}", onoff(!hairpin), onoff(*hairpin)))
        }
        Op::ForwardPort { ifname, .. } => {
            ("port-not-forwarding", Severity::Error, format!("bridge port {ifname} does not forward, and the bridge's STP is off"))
        }
        Op::SetSysctl { key, value, .. } => ("sysctl-differs", Severity::Error, format!("{key} is not {value} as declared")),
        Op::RestoreSysctl { key, .. } => {
            ("sysctl-undeclared", Severity::Warning, format!("{key} is still as the lab set it, though the file no longer declares it"))
        }
        Op::ChangeLink { ifname, .. } | Op::SetKindOptions { ifname, .. } => (
            "device-differs",
            Severity::Error,
            format!("{ifname} differs from its declaration: {}", shown(op).split_whitespace().skip(3).collect::<Vec<_>>().join(" ")),
        ),
        Op::CreateLink(c) => ("missing-device", Severity::Error, format!("{} is declared but the kernel has no such device in {}", c.ifname, c.node)),
        Op::DeleteLink { ifname, .. } => ("undeclared-device", Severity::Warning, format!("{ifname} is the lab's but the file no longer declares it")),
        Op::Device { .. } | Op::Feature { .. } | Op::Ovs { .. } => {
            ("drift", Severity::Error, format!("the kernel differs from the file: `{}` is left to do", shown(op)))
        }
        Op::CreateNetns { .. } | Op::DeleteNetns { .. } => return None,
    };
    Some((code, severity, message))
}

fn onoff(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The route as `vnet plan` writes it, without the sign, node and kind.
fn route_text(op: &Op) -> String {
    shown(op).split_whitespace().skip(3).collect::<Vec<_>>().join(" ")
}

fn shown(op: &Op) -> String {
    op.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where in the file: the device's declaration, the node's routes or sysctl, or the node.
fn place(ctx: &Ctx, op: &Op) -> Option<Path> {
    let node = ctx.rl.model().nodes.get(op.node())?;
    match op {
        Op::SetSysctl { key, .. } | Op::RestoreSysctl { key, .. } => ctx.sysctl_path(op.node(), &[key.as_str()]),
        Op::AddRoute { .. } | Op::DelRoute { .. } => {
            let mut p = node.path.clone();
            if !node.routes.is_empty() {
                p.push(Seg::Key("routes".into()));
            }
            Some(p)
        }
        _ => op.device().and_then(|d| ctx.iface_path(op.node(), d)).or_else(|| Some(node.path.clone())),
    }
}
