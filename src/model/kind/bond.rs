//! bond: several ports acting as one link (failover or load sharing). Ports join with
//! `master: <bond>` or are listed in `ports`; a port must be down while it is enslaved, which the
//! planner takes care of.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::validate::Ctx;

/// The seven bonding modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BondMode {
    /// Kernel default: round robin.
    #[default]
    BalanceRr,
    ActiveBackup,
    BalanceXor,
    Broadcast,
    #[serde(rename = "802.3ad")]
    Lacp,
    BalanceTlb,
    BalanceAlb,
}

impl BondMode {
    pub fn name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }
}

/// Options of a bond.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BondSpec {
    /// balance-rr (default), active-backup, balance-xor, broadcast, 802.3ad, balance-tlb,
    /// balance-alb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<BondMode>,
    /// Link monitoring interval in milliseconds (0: off). Default 100 here, so that a port going
    /// down is noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miimon: Option<u32>,
    /// The preferred active port (active-backup, balance-tlb, balance-alb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Ports in this node (alternative to `master:` on each port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// miimon when the file does not say: without link monitoring a bond never fails over.
pub const DEFAULT_MIIMON: u32 = 100;

impl BondSpec {
    pub const FIELDS: &'static [&'static str] = &["mode", "miimon", "primary", "ports"];

    pub fn mode(&self) -> BondMode {
        self.mode.unwrap_or_default()
    }
    pub fn miimon(&self) -> u32 {
        self.miimon.unwrap_or(DEFAULT_MIIMON)
    }

    /// The mode can only change while the bond has no ports: re-create on a mode change.
    pub fn drift(&self, have: &BondSpec) -> Drift {
        if self.mode() != have.mode() {
            Drift::Recreate
        } else if self.miimon() != have.miimon() {
            Drift::Update
        } else {
            Drift::Same
        }
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        let base = ctx.iface_path(node, ifname);
        if let Some(p) = &self.primary {
            if !matches!(self.mode(), BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb) {
                ctx.error_at(
                    &ctx.sub(&base, "primary"),
                    format!("`primary` needs mode active-backup, balance-tlb or balance-alb; bond `{node}:{ifname}` is {}", self.mode().name()),
                    "not used in this mode",
                );
            }
            if p == ifname {
                ctx.error_at(&ctx.sub(&base, "primary"), "a bond cannot be its own primary port", "same device");
            }
        }
    }
}
