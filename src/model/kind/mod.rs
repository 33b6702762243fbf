//! Device kinds: one enum variant per kind the kernel offers, each with its options in its own
//! file. Kind-specific validation lives beside the options; netlink encoding lives in
//! `kernel::kinds`, so this layer stays pure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod bridge;
mod loopback;
mod veth;

pub use bridge::BridgeSpec;
pub use loopback::LoopbackSpec;
pub use veth::VethSpec;

use super::validate::Ctx;

/// How an existing device differs from its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Nothing to do.
    Same,
    /// Options can be changed in place.
    Update,
    /// Only deleting and re-creating the device gives what the file says.
    Recreate,
}

/// What an interface is. Written as `kind: <name>` beside the interface's common settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KindSpec {
    /// The node's loopback device `lo` (always present; up by default).
    Loopback(LoopbackSpec),
    /// One end of a veth pair; the other end (`peer`) may be in any node.
    Veth(VethSpec),
    /// A Linux bridge; ports join it with `master: <bridge>`.
    Bridge(BridgeSpec),
}

impl KindSpec {
    /// The kind's name as written in files and shown by `status`.
    pub fn name(&self) -> &'static str {
        match self {
            KindSpec::Loopback(_) => "loopback",
            KindSpec::Veth(_) => "veth",
            KindSpec::Bridge(_) => "bridge",
        }
    }

    /// Every kind name, for messages and the preflight.
    pub const NAMES: &'static [&'static str] = &["loopback", "veth", "bridge"];

    /// The kernel's rtnetlink kind string (IFLA_INFO_KIND), where the kind has one.
    pub fn kernel_kind(&self) -> Option<&'static str> {
        match self {
            KindSpec::Loopback(_) => None,
            KindSpec::Veth(_) => Some("veth"),
            KindSpec::Bridge(_) => Some("bridge"),
        }
    }

    /// Whether other interfaces may name this one as `master`.
    pub fn is_master(&self) -> bool {
        matches!(self, KindSpec::Bridge(_))
    }

    /// Kind-specific checks; `ctx` locates findings in the file.
    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        match self {
            KindSpec::Loopback(s) => s.check(ctx, node, ifname),
            KindSpec::Veth(s) => s.check(ctx, node, ifname),
            KindSpec::Bridge(s) => s.check(ctx, node, ifname),
        }
    }

    /// How a device of this kind that the kernel already has differs from this spec.
    pub fn drift(&self, observed: Option<&KindSpec>) -> Drift {
        match (self, observed) {
            (KindSpec::Bridge(want), Some(KindSpec::Bridge(have))) => want.drift(have),
            (a, Some(b)) if a.name() != b.name() => Drift::Recreate,
            _ => Drift::Same,
        }
    }

    /// Field names this kind accepts (beside the common ones), for help texts.
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            KindSpec::Loopback(_) => &[],
            KindSpec::Veth(_) => &["peer"],
            KindSpec::Bridge(_) => BridgeSpec::FIELDS,
        }
    }
}
