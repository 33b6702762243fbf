//! vlan: an 802.1Q (or 802.1ad, "QinQ" outer tag) sub-interface of a lower device, bridges
//! included: frames leave tagged with `id`, and only frames with that tag arrive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::validate::Ctx;

/// The tag protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VlanProtocol {
    /// Customer tag, ethertype 0x8100 (default).
    #[default]
    #[serde(rename = "802.1Q", alias = "802.1q")]
    Dot1q,
    /// Service tag, ethertype 0x88a8.
    #[serde(rename = "802.1ad")]
    Dot1ad,
}

/// Options of a VLAN device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VlanSpec {
    /// The lower device (trunk): `ifname` in this node or `node:ifname` in another one.
    pub link: String,
    /// VLAN id, 1..=4094 (0 and 4095 are reserved by 802.1Q).
    pub id: u16,
    /// `802.1Q` (default) or `802.1ad`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<VlanProtocol>,
}

impl VlanSpec {
    pub const FIELDS: &'static [&'static str] = &["link", "id", "protocol"];

    pub fn drift(&self, have: &VlanSpec) -> Drift {
        if self.id != have.id || self.protocol.unwrap_or_default() != have.protocol.unwrap_or_default() {
            Drift::Recreate
        } else {
            Drift::Same
        }
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        if !(1..=4094).contains(&self.id) {
            let p = ctx.sub(&ctx.iface_path(node, ifname), "id");
            ctx.error_at(&p, format!("VLAN id {} is out of range: use 1..=4094 (0 and 4095 are reserved)", self.id), "not a usable VLAN id");
        }
    }
}
