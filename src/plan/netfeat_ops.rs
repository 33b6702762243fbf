//! Operations for NAT/firewall tables, qdiscs, BPF attachments and xfrm objects. One `Op`
//! variant (`Op::Feature`) carries them, so the shared operation list grows by one entry.

use std::fmt;

use serde::Serialize;

use crate::model::netfeat::spec::{BpfHookSpec, XdpMode};
use crate::model::netfeat::{BpfAttach, Impairment, NftSpec};
use crate::observed::netfeat::{dir_name, NftDrift, ObservedQdisc, XfrmPolicy, XfrmState};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "feature", rename_all = "snake_case")]
pub enum FeatureOp {
    /// Create or atomically replace the lab's nftables table.
    SetNft {
        table: String,
        spec: NftSpec,
        /// What the kernel has instead.
        drift: NftDrift,
    },
    /// Remove the lab's table (only it).
    DeleteNft {
        table: String,
    },
    /// Install vnet's root qdisc (replacing what is there).
    SetQdisc {
        ifname: String,
        imp: Impairment,
    },
    /// Put back the qdisc that was there before vnet (`None`: the kernel default).
    RestoreQdisc {
        ifname: String,
        previous: Option<ObservedQdisc>,
    },
    /// Load a program and attach it (replacing vnet's program on that hook).
    AttachBpf {
        attach: BpfAttach,
        hash: String,
    },
    DetachBpf {
        ifname: String,
        hook: BpfHookSpec,
        mode: Option<XdpMode>,
    },
    AddXfrmState {
        state: XfrmState,
    },
    DelXfrmState {
        state: XfrmState,
    },
    AddXfrmPolicy {
        policy: XfrmPolicy,
    },
    DelXfrmPolicy {
        policy: XfrmPolicy,
    },
}

impl FeatureOp {
    pub fn device(&self) -> Option<&str> {
        match self {
            FeatureOp::SetQdisc { ifname, .. } | FeatureOp::RestoreQdisc { ifname, .. } | FeatureOp::DetachBpf { ifname, .. } => Some(ifname),
            FeatureOp::AttachBpf { attach, .. } => Some(&attach.dev),
            _ => None,
        }
    }

    /// Whether this operation removes something (planned before additions in its stage).
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            FeatureOp::DeleteNft { .. }
                | FeatureOp::RestoreQdisc { .. }
                | FeatureOp::DetachBpf { .. }
                | FeatureOp::DelXfrmState { .. }
                | FeatureOp::DelXfrmPolicy { .. }
        )
    }

    /// As `vnet plan` prints it, after the node name.
    pub fn display(&self, node: &str) -> String {
        match self {
            FeatureOp::SetNft { table, spec, drift } => {
                let why = match drift {
                    NftDrift::Absent | NftDrift::Other => String::new(),
                    NftDrift::Edited { rules, written } => format!(" rewritten: changed outside vnet ({rules} rules where vnet wrote {written})"),
                    NftDrift::Unrecorded => " rewritten: written by an older vnet, which kept no record of its rules".into(),
                };
                format!("~ nft     {node}: table inet {table} ({}){why}", spec.describe())
            }
            FeatureOp::DeleteNft { table } => format!("- nft     {node}: table inet {table}"),
            FeatureOp::SetQdisc { ifname, imp } => format!("~ qdisc   {node}:{ifname} {imp}"),
            FeatureOp::RestoreQdisc { ifname, previous } => match previous {
                Some(q) => format!("~ qdisc   {node}:{ifname} restore {}", q.kind),
                None => format!("- qdisc   {node}:{ifname} (back to the default)"),
            },
            FeatureOp::AttachBpf { attach, .. } => {
                format!("+ bpf     {node}:{} {} {} from {}", attach.dev, attach.hook.name(), attach.program, attach.object.display())
            }
            FeatureOp::DetachBpf { ifname, hook, .. } => format!("- bpf     {node}:{ifname} {}", hook.name()),
            FeatureOp::AddXfrmState { state } => format!("+ xfrm    {node}: state {} -> {} spi {:#x} reqid {}", state.src, state.dst, state.spi, state.reqid),
            FeatureOp::DelXfrmState { state } => format!("- xfrm    {node}: state {} -> {} spi {:#x}", state.src, state.dst, state.spi),
            FeatureOp::AddXfrmPolicy { policy } => format!("+ xfrm    {node}: policy {} -> {} dir {}", policy.src, policy.dst, dir_name(policy.dir)),
            FeatureOp::DelXfrmPolicy { policy } => format!("- xfrm    {node}: policy {} -> {} dir {}", policy.src, policy.dst, dir_name(policy.dir)),
        }
    }
}

impl fmt::Display for FeatureOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display("?"))
    }
}
