//! veth: a pair of virtual Ethernet devices joined like a cable, the usual way to connect
//! namespaces. Declared either as a link (`links: [{endpoints: [a:eth0, b:eth0]}]`) or with
//! `peer: b:eth0` on one end.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::validate::Ctx;

/// Options of a veth end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VethSpec {
    /// The other end, `node:ifname`. Not needed when a link names this end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Transmit and receive queues of this end (1..=4096, default 1). The kernel would
    /// otherwise allocate one per CPU and still use one; making and dropping the rest costs an
    /// RCU wait and sysfs work per device, about a third of a veth's creation. Changing it
    /// re-creates the pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
}

/// Queues the kernel accepts for one device (IFLA_NUM_TX_QUEUES / IFLA_NUM_RX_QUEUES).
pub const QUEUES: std::ops::RangeInclusive<u32> = 1..=4096;

impl VethSpec {
    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        // Peers are resolved lab-wide in `validate::resolve_veths`.
        if let Some(q) = self.queues.filter(|q| !QUEUES.contains(q)) {
            let p = ctx.sub(&ctx.iface_path(node, ifname), "queues");
            ctx.error_at(&p, format!("queues {q} of `{node}:{ifname}` is out of range ({}..={})", QUEUES.start(), QUEUES.end()), "out of range");
        }
    }

    /// Queues each end is created with.
    pub fn queues_or_default(&self) -> u32 {
        self.queues.unwrap_or(1)
    }
}
