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
}

impl VethSpec {
    pub(crate) fn check(&self, _ctx: &mut Ctx, _node: &str, _ifname: &str) {
        // Peers are resolved lab-wide in `validate::resolve_veths`.
    }
}
