//! The loopback device. Every namespace has one (`lo`); vnet brings it up unless told not to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::validate::Ctx;

/// Options of the loopback device (none beyond the common ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopbackSpec {}

impl LoopbackSpec {
    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        if ifname != "lo" {
            ctx.error_at_key(&ctx.iface_path(node, ifname), format!("a loopback device must be named `lo`, not `{ifname}`"), "loopback is only `lo`");
        }
    }
}
