//! macvlan siblings (macvlans on one lower device) that should talk but cannot: in private mode
//! never; in vepa mode only when the switch port outside sends frames back (hairpin).

use std::collections::BTreeMap;

use super::{Ctx, Severity};
use crate::inspect::view::KindDetails;
use crate::model::source::Seg;
use crate::plan::Op;

/// Whether two devices share a subnet (so they presumably should reach each other).
fn share_subnet(ctx: &Ctx, a: (&str, u32), b: (&str, u32)) -> bool {
    let addrs = |(n, i): (&str, u32)| ctx.view.nodes.get(n).map(|v| v.ns.addrs_of(i).map(|x| x.addr).collect::<Vec<_>>()).unwrap_or_default();
    let (aa, bb) = (addrs(a), addrs(b));
    aa.iter().any(|x| bb.iter().any(|y| x.trunc() == y.trunc() && x.addr() != y.addr()))
}

/// A macvlan: (node, ifindex, name, mode).
type Sibling = (String, u32, String, String);

pub(super) fn check(ctx: &mut Ctx) {
    let view = ctx.view;
    // lower (node, ifindex) -> its macvlans
    let mut by_lower: BTreeMap<(String, u32), Vec<Sibling>> = BTreeMap::new();
    for (n, v) in &view.nodes {
        for l in &v.ns.links {
            if let KindDetails::Macvlan { mode } = view.details(n, l.ifindex) {
                if let Some((ln, li)) = view.linked(n, l) {
                    by_lower.entry((ln.to_string(), li)).or_default().push((n.clone(), l.ifindex, l.name.clone(), mode.clone()));
                }
            }
        }
    }
    for ((ln, li), sibs) in by_lower {
        let lower = view.link(&ln, li).map(|l| l.name.clone()).unwrap_or_default();
        for (i, a) in sibs.iter().enumerate() {
            for b in sibs.iter().skip(i + 1) {
                if !share_subnet(ctx, (&a.0, a.1), (&b.0, b.1)) {
                    continue;
                }
                let pair = format!("{}:{} and {}:{}", a.0, a.2, b.0, b.2);
                if a.3 == "private" || b.3 == "private" {
                    let f = ctx.finding(
                        "macvlan-private",
                        Severity::Error,
                        &ln,
                        Some(&lower),
                        format!(
                            "macvlans {pair} on {lower} share a subnet but one is in private mode: they never reach each other, even through a hairpin switch"
                        ),
                        "use bridge mode for macvlans that talk to each other (or vepa with a hairpin switch port)".into(),
                        None,
                    );
                    ctx.add(f);
                } else if a.3 == "vepa" || b.3 == "vepa" {
                    // VEPA sends everything out of the lower device; the switch port must reflect it.
                    let Some(l) = view.link(&ln, li) else { continue };
                    let port = view.linked(&ln, l).and_then(|(pn, pi)| view.link(pn, pi).map(|p| (pn.to_string(), p.clone())));
                    let (msg, fix, path) = match port {
                        Some((pn, p)) if p.master.is_some() => {
                            if p.hairpin == Some(true) {
                                continue;
                            }
                            let mut path = ctx.iface_path(&pn, &p.name);
                            if let Some(pp) = path.as_mut() {
                                if ctx.rl.model().nodes.get(&pn).and_then(|n| n.interfaces.get(&p.name)).and_then(|i| i.hairpin).is_some() {
                                    pp.push(Seg::Key("hairpin".into()));
                                }
                            }
                            (
                                format!("macvlans {pair} on {lower} are in vepa mode: their frames to each other go out to the switch port {pn}:{}, which has hairpin off and so never sends them back", p.name),
                                // Declared in the file, turned off in the kernel: the file is right.
                                match ctx.drift.find(|o| matches!(o, Op::SetPort { node, ifname, hairpin: true } if *node == pn && *ifname == p.name)) {
                                    Some(o) => ctx.drift.fix(o),
                                    None => format!("set `hairpin: true` on {pn}:{} (`ip -n ... link set {} type bridge_slave hairpin on`), or use bridge mode", p.name, p.name),
                                },
                                path,
                            )
                        }
                        _ => (
                            format!("macvlans {pair} on {lower} are in vepa mode but {lower} leads to no bridge port that could reflect their frames"),
                            "use bridge mode, or connect the lower device to a bridge port with `hairpin: true`".into(),
                            None,
                        ),
                    };
                    let f = ctx.finding("macvlan-hairpin", Severity::Error, &ln, Some(&lower), msg, fix, path.as_deref());
                    ctx.add(f);
                }
            }
        }
    }
}
