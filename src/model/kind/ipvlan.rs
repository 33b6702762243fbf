//! ipvlan: virtual devices sharing their lower device's MAC address, told apart by IP address.
//! l2 switches by MAC inside the lower, l3 routes (no broadcast, no ARP between slaves), l3s is l3
//! with netfilter on the way in.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::validate::Ctx;

/// IPVLAN_MODE_*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    L2,
    /// The kernel's default.
    #[default]
    L3,
    L3s,
}

/// IPVLAN_F_*: how slaves of one lower reach each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanFlag {
    /// Slaves talk to each other inside the lower (kernel default).
    #[default]
    Bridge,
    /// Slaves cannot talk to each other.
    Private,
    /// Traffic between slaves goes out to the external switch.
    Vepa,
}

/// Options of an ipvlan device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpvlanSpec {
    /// The lower device: `ifname` in this node or `node:ifname` in another one.
    pub link: String,
    /// l2, l3 (default) or l3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IpvlanMode>,
    /// bridge (default), private or vepa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<IpvlanFlag>,
}

impl IpvlanSpec {
    pub const FIELDS: &'static [&'static str] = &["link", "mode", "flag"];

    pub fn drift(&self, have: &IpvlanSpec) -> Drift {
        if self.mode.unwrap_or_default() != have.mode.unwrap_or_default() || self.flag.unwrap_or_default() != have.flag.unwrap_or_default() {
            Drift::Recreate
        } else {
            Drift::Same
        }
    }

    pub(crate) fn check(&self, _ctx: &mut Ctx, _node: &str, _ifname: &str) {
        // The lower device is resolved lab-wide in `kind::links`.
    }
}
