//! The lab's nftables table in each node that declares NAT or a firewall, against what vnet
//! wrote there: gone, holding another ruleset, or changed by hand inside it (rules deleted,
//! added or edited with `nft`). The planner finds it (`vnet plan` shows the rewrite); applying
//! the file again rewrites the table in one transaction.

use super::{Ctx, Severity};
use crate::model::source::Seg;
use crate::observed::netfeat::NftDrift;
use crate::plan::{FeatureOp, Op};

pub(super) fn check(ctx: &mut Ctx) {
    let model = ctx.rl.model();
    for (nname, node) in &model.nodes {
        // A node whose namespace is gone has its own finding.
        if node.features.nft.is_none() || ctx.rl.missing.contains_key(nname) {
            continue;
        }
        let Some(op) = ctx.drift.find(|op| matches!(op, Op::Feature { node: n, change: FeatureOp::SetNft { .. } } if n == nname)) else { continue };
        let Op::Feature { change: FeatureOp::SetNft { table, drift, .. }, .. } = op else { continue };
        let what = if model.topology.nodes.get(nname).is_some_and(|n| n.firewall.is_some()) { "firewall" } else { "nat" };
        let (code, message) = match drift {
            NftDrift::Edited { rules, written } => (
                "nft-changed",
                format!("the lab's nftables table inet {table} was changed outside vnet: it holds {rules} rules where vnet wrote {written}, so NAT and firewall in {nname} do not do what the file declares"),
            ),
            NftDrift::Other => ("nft-differs", format!("the lab's nftables table inet {table} holds another ruleset than the file declares for {nname}")),
            // Gone from a node where vnet put it (a node just added to the file is not drift).
            NftDrift::Absent if ctx.rl.state.netfeat.nft.contains(nname) => {
                ("nft-missing", format!("the lab's nftables table inet {table} is gone from {nname}: none of its declared NAT and firewall rules apply"))
            }
            NftDrift::Absent | NftDrift::Unrecorded => continue,
        };
        let mut path = node.path.clone();
        path.push(Seg::Key(what.into()));
        let f = ctx.finding(code, Severity::Error, nname, None, message, ctx.drift.fix(op), Some(&path));
        ctx.add(f);
    }
}
