//! macvlan and macvtap: virtual devices with their own MAC addresses on one lower device. The
//! mode decides whether siblings on the same lower reach each other: bridge (directly),
//! vepa (only through an external switch that hairpins), private (never), passthru (one device
//! takes over the lower), source (only frames from listed source MACs). A macvtap is a macvlan
//! with a character device (/dev/tapIFINDEX) that reads and writes its frames.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::lab::parse_mac;
use crate::model::validate::Ctx;

/// MACVLAN_MODE_*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Kernel default: siblings reach each other only through the external switch.
    #[default]
    Vepa,
    Bridge,
    Private,
    Passthru,
    Source,
}

impl MacvlanMode {
    pub fn name(self) -> &'static str {
        match self {
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }
}

/// Options of a macvlan or macvtap device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MacvlanSpec {
    /// The lower device: `ifname` in this node or `node:ifname` in another one.
    pub link: String,
    /// vepa (default), bridge, private, passthru or source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MacvlanMode>,
    /// Source mode: the source MAC addresses whose frames this device receives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<String>,
}

impl MacvlanSpec {
    pub const FIELDS: &'static [&'static str] = &["link", "mode", "macs"];

    pub fn mode(&self) -> MacvlanMode {
        self.mode.unwrap_or_default()
    }

    /// The source-mode MAC list, parsed (validation has refused bad ones).
    pub fn mac_list(&self) -> Vec<[u8; 6]> {
        self.macs.iter().filter_map(|m| parse_mac(m).ok()).collect()
    }

    pub fn drift(&self, have: &MacvlanSpec) -> Drift {
        if self.mode() != have.mode() {
            return Drift::Recreate;
        }
        if self.mode() == MacvlanMode::Source {
            let (mut a, mut b) = (self.mac_list(), have.mac_list());
            a.sort();
            b.sort();
            if a != b {
                return Drift::Recreate;
            }
        }
        Drift::Same
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        let base = ctx.iface_path(node, ifname);
        if !self.macs.is_empty() && self.mode() != MacvlanMode::Source {
            ctx.error_at(
                &ctx.sub(&base, "macs"),
                format!("`macs` lists source MACs for `mode: source`; `{node}:{ifname}` is in {} mode", self.mode().name()),
                "only for source mode",
            );
        }
        if self.mode() == MacvlanMode::Source && self.macs.is_empty() {
            ctx.error_at(&ctx.sub(&base, "mode"), format!("`{node}:{ifname}` is in source mode but lists no `macs`; it would receive nothing"), "needs `macs`");
        }
        let mp = ctx.sub(&base, "macs");
        for (i, m) in self.macs.iter().enumerate() {
            if let Err(why) = parse_mac(m) {
                ctx.error_at(&ctx.idx(&mp, i), format!("bad MAC address `{m}`: {why}"), "bad MAC");
            }
        }
    }
}
