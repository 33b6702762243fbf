//! Linux bridge: a learning switch inside a namespace; ports join with `master`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::validate::Ctx;

/// Options of a bridge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    /// Spanning tree protocol on/off (kernel default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<bool>,
    /// Seconds a learned MAC address stays in the forwarding database (kernel default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ageing_time: Option<u32>,
    /// STP forward delay in seconds (2..=30 when stp is on; kernel default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_delay: Option<u32>,
    /// IGMP/MLD snooping (kernel default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_snooping: Option<bool>,
}

impl BridgeSpec {
    pub const FIELDS: &'static [&'static str] = &["stp", "ageing_time", "forward_delay", "multicast_snooping"];

    /// Differences that matter: only options the file sets are compared.
    pub fn drift(&self, have: &BridgeSpec) -> super::Drift {
        let differs = |w: Option<u32>, h: Option<u32>| w.is_some() && w != h;
        let differs_b = |w: Option<bool>, h: Option<bool>| w.is_some() && w != h;
        if differs_b(self.stp, have.stp)
            || differs(self.ageing_time, have.ageing_time)
            || differs(self.forward_delay, have.forward_delay)
            || differs_b(self.multicast_snooping, have.multicast_snooping)
        {
            super::Drift::Update
        } else {
            super::Drift::Same
        }
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        let base = ctx.iface_path(node, ifname);
        if let Some(t) = self.ageing_time {
            // The kernel stores ageing time in centiseconds in a u32 (clock_t): cap well below overflow.
            if t > 1_000_000 {
                ctx.error_at(&ctx.sub(&base, "ageing_time"), format!("ageing_time {t} s is too large (at most 1000000)"), "too large");
            }
        }
        if let Some(d) = self.forward_delay {
            if !(2..=30).contains(&d) {
                ctx.error_at(&ctx.sub(&base, "forward_delay"), format!("forward_delay must be between 2 and 30 seconds, got {d}"), "out of range");
            }
        }
    }
}
