//! Traffic control: each device's root qdisc against what the lab declares for it
//! (`nodes.X.tc`, as applied: a `vnet impair` included), and the BPF programs it declares on
//! the device's hooks. A declared qdisc or program gone, or a qdisc doing something else, is
//! drift that applying the file again puts back. A root qdisc nobody declared that vnet did not
//! put there is left alone by `up` (it is not the lab's), so its fix is to delete it by hand.

use super::{Ctx, Severity};
use crate::model::netfeat::spec::BpfHookSpec;
use crate::model::netfeat::Impairment;
use crate::model::source::Seg;
use crate::observed::netfeat::VNET_BPF_PRIO;
use crate::plan::{qdisc_drift, FeatureOp, Op, QdiscDrift};

pub(super) fn check(ctx: &mut Ctx) {
    let model = ctx.rl.model();
    for (nname, node) in &model.nodes {
        let Some(v) = ctx.view.nodes.get(nname) else { continue };
        for (ifname, iface) in &node.interfaces {
            // A device that is gone has its own finding.
            if v.ns.link(ifname).is_none() {
                continue;
            }
            let want = node.features.tc.get(ifname);
            let have = v.ns.features.qdiscs.get(ifname);
            let mut tc_path = node.path.clone();
            tc_path.extend([Seg::Key("tc".into()), Seg::Key(ifname.clone())]);
            let planned = ctx.drift.find(|op| {
                matches!(op, Op::Feature { node: n, change: FeatureOp::SetQdisc { ifname: d, .. } | FeatureOp::RestoreQdisc { ifname: d, .. } }
                    if n == nname && d == ifname)
            });
            let fix = match want {
                Some(imp) => put_back(ctx, nname, ifname, imp, planned),
                None => planned.map(|op| ctx.drift.fix(op)).unwrap_or_else(|| ctx.drift.again()),
            };
            let have_text = have.map(|q| q.describe()).unwrap_or_else(|| "none".into());
            let f = match (qdisc_drift(want, have), want, have) {
                (QdiscDrift::Missing, Some(imp), _) => ctx.finding(
                    "tc-missing",
                    Severity::Error,
                    nname,
                    Some(ifname),
                    format!("the traffic control declared on {ifname} ({imp}) is not in the kernel: the device has only its default qdisc ({have_text})"),
                    fix,
                    Some(&tc_path),
                ),
                (QdiscDrift::Differs, Some(imp), Some(q)) => {
                    let whose = if q.is_vnet() { "vnet's qdisc with other parameters" } else { "a qdisc vnet did not put there, in place of vnet's" };
                    ctx.finding(
                        "tc-differs",
                        Severity::Error,
                        nname,
                        Some(ifname),
                        format!("{ifname} has root qdisc {have_text} ({whose}), but the file declares {imp}"),
                        fix,
                        Some(&tc_path),
                    )
                }
                (QdiscDrift::Undeclared, None, Some(q)) if q.is_vnet() => ctx.finding(
                    "tc-undeclared",
                    Severity::Warning,
                    nname,
                    Some(ifname),
                    format!("{ifname} still has vnet's root qdisc {have_text}, which the file no longer declares: it shapes the device's traffic"),
                    fix,
                    Some(&iface.path),
                ),
                (QdiscDrift::Undeclared, None, Some(_)) => {
                    let ns = ctx.ns_name(nname);
                    ctx.finding(
                        "tc-undeclared",
                        Severity::Warning,
                        nname,
                        Some(ifname),
                        format!("{ifname} has root qdisc {have_text}, which the file does not declare and vnet did not put there: it shapes the device's traffic"),
                        format!(
                            "`vnet up` leaves qdiscs that are not the lab's alone: delete it with `tc {ns}qdisc del dev {ifname} root` (the kernel's default comes back), or declare the traffic control in nodes.{nname}.tc"
                        ),
                        Some(&iface.path),
                    )
                }
                _ => continue,
            };
            ctx.add(f);
        }
        for (i, a) in node.features.bpf.iter().enumerate() {
            if v.ns.link(&a.dev).is_none() {
                continue;
            }
            let attached = v.ns.features.bpf.iter().any(|b| b.ifname == a.dev && b.hook == a.hook && (a.hook == BpfHookSpec::Xdp || b.prio == VNET_BPF_PRIO));
            if attached {
                continue;
            }
            let mut path = node.path.clone();
            path.extend([Seg::Key("bpf".into()), Seg::Index(i)]);
            let planned = ctx.drift.find(|op| {
                matches!(op, Op::Feature { node: n, change: FeatureOp::AttachBpf { attach, .. } } if n == nname && attach.dev == a.dev && attach.hook == a.hook)
            });
            let fix = match planned {
                Some(op) => ctx.drift.fix(op),
                None => ctx.drift.again(),
            };
            let f = ctx.finding(
                "bpf-missing",
                Severity::Error,
                nname,
                Some(&a.dev),
                format!("the BPF program {} declared on {} {} is not attached: the device runs no program of the lab's there", a.program, a.dev, a.hook.name()),
                fix,
                Some(&path),
            );
            ctx.add(f);
        }
    }
}

/// The fix for declared traffic control the kernel lacks: applying the file again, or, when the
/// lab as applied is not the file as it is (a `vnet impair` since), the same impairment again:
/// `up` with the file would apply the file's instead.
fn put_back(ctx: &Ctx, node: &str, dev: &str, imp: &Impairment, planned: Option<&Op>) -> String {
    if !ctx.rl.from_file {
        let words = imp.to_string();
        let words = words.split_once(' ').map(|(_, w)| w).unwrap_or_default();
        return format!("`vnet impair {} {node}:{dev} {words}` puts back the traffic control last applied", ctx.rl.name());
    }
    planned.map(|op| ctx.drift.fix(op)).unwrap_or_else(|| ctx.drift.again())
}
