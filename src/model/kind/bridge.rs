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
    /// 802.1Q VLAN filtering: ports only carry the VLANs listed for them in `vlans`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_filtering: Option<bool>,
    /// VLANs per port (and for the bridge itself, under its own name), with vlan_filtering on:
    /// `veth1: [10, {vid: 20, pvid: true, untagged: true}]`. A port with a list leaves the
    /// default VLAN 1 unless the list names it.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub vlans: indexmap::IndexMap<String, Vec<BridgeVlan>>,
    /// Static forwarding entries: frames for `mac` (in `vlan`) leave through `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fdb: Vec<BridgeFdb>,
}

/// One VLAN of a bridge port: a bare id (tagged) or the id with flags.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BridgeVlan {
    Id(u16),
    Full(BridgeVlanFull),
}

impl<'de> Deserialize<'de> for BridgeVlan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match crate::model::forms::scalar_or_map(d, "a VLAN id or a mapping { vid, pvid, untagged }")? {
            crate::model::forms::Form::Scalar(id) => BridgeVlan::Id(id),
            crate::model::forms::Form::Map(full) => BridgeVlan::Full(full),
        })
    }
}

/// A VLAN of a bridge port with its flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeVlanFull {
    pub vid: u16,
    /// Untagged frames arriving on the port belong to this VLAN.
    #[serde(default)]
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    #[serde(default)]
    pub untagged: bool,
}

impl BridgeVlan {
    /// (vid, pvid, untagged)
    pub fn parts(&self) -> (u16, bool, bool) {
        match self {
            BridgeVlan::Id(v) => (*v, false, false),
            BridgeVlan::Full(f) => (f.vid, f.pvid, f.untagged),
        }
    }
}

/// A static bridge forwarding entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeFdb {
    pub mac: String,
    /// The port (a device whose master is this bridge).
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

impl BridgeSpec {
    pub const FIELDS: &'static [&'static str] = &["stp", "ageing_time", "forward_delay", "multicast_snooping", "vlan_filtering", "vlans", "fdb"];

    /// The kernel's ageing time of a new bridge, in seconds (30000 centiseconds over netlink).
    pub const DEFAULT_AGEING_TIME: u32 = 300;
    /// The kernel's STP forward delay of a new bridge, in seconds (1500 centiseconds).
    pub const DEFAULT_FORWARD_DELAY: u32 = 15;

    /// These options, plus the kernel's default (STP off, ageing 300 s, forward delay 15 s,
    /// multicast snooping on, VLAN filtering off) for each option `before` declared and this
    /// spec no longer does: the options a fresh bridge of this spec would have. `None` when no
    /// option was dropped.
    pub fn with_dropped_reset(&self, before: &BridgeSpec) -> Option<BridgeSpec> {
        fn reset<T: Copy>(now: &mut Option<T>, before: Option<T>, default: Option<T>) -> bool {
            let dropped = now.is_none() && before.is_some();
            if dropped {
                *now = default;
            }
            dropped
        }
        let mut out = self.clone();
        // Not short-circuited: every dropped option is reset.
        let dropped = [
            reset(&mut out.stp, before.stp, Some(false)),
            reset(&mut out.ageing_time, before.ageing_time, Some(Self::DEFAULT_AGEING_TIME)),
            reset(&mut out.forward_delay, before.forward_delay, Some(Self::DEFAULT_FORWARD_DELAY)),
            reset(&mut out.multicast_snooping, before.multicast_snooping, Some(true)),
            reset(&mut out.vlan_filtering, before.vlan_filtering, Some(false)),
        ];
        dropped.contains(&true).then_some(out)
    }

    /// Differences that matter: only options the file sets are compared.
    pub fn drift(&self, have: &BridgeSpec) -> super::Drift {
        let differs = |w: Option<u32>, h: Option<u32>| w.is_some() && w != h;
        let differs_b = |w: Option<bool>, h: Option<bool>| w.is_some() && w != h;
        if differs_b(self.stp, have.stp)
            || differs(self.ageing_time, have.ageing_time)
            || differs(self.forward_delay, have.forward_delay)
            || differs_b(self.multicast_snooping, have.multicast_snooping)
            || differs_b(self.vlan_filtering, have.vlan_filtering)
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
        let vp = ctx.sub(&base, "vlans");
        if !self.vlans.is_empty() && self.vlan_filtering != Some(true) {
            ctx.error_at(&vp, format!("per-port `vlans` of bridge `{node}:{ifname}` need `vlan_filtering: true`"), "vlan_filtering is off");
        }
        for (port, list) in &self.vlans {
            let pp = ctx.sub(&vp, port);
            let mut pvids = 0;
            for (i, v) in list.iter().enumerate() {
                let (vid, pvid, _) = v.parts();
                if !(1..=4094).contains(&vid) {
                    ctx.error_at(&ctx.idx(&pp, i), format!("VLAN id {vid} is out of range: use 1..=4094 (0 and 4095 are reserved)"), "not a usable VLAN id");
                }
                pvids += usize::from(pvid);
            }
            if pvids > 1 {
                ctx.error_at(&pp, format!("port `{port}` of bridge `{node}:{ifname}` has {pvids} VLANs marked pvid; at most one"), "several pvids");
            }
        }
        let fp = ctx.sub(&base, "fdb");
        for (i, e) in self.fdb.iter().enumerate() {
            let ep = ctx.idx(&fp, i);
            match crate::model::lab::parse_mac(&e.mac) {
                Err(why) => ctx.error_at(&ctx.sub(&ep, "mac"), format!("bad MAC address `{}`: {why}", e.mac), "bad MAC"),
                Ok(m) if m[0] & 1 == 1 => {
                    ctx.error_at(&ctx.sub(&ep, "mac"), format!("fdb MAC `{}` is multicast; static entries are for unicast addresses", e.mac), "multicast MAC")
                }
                Ok(_) => {}
            }
            if let Some(v) = e.vlan {
                if !(1..=4094).contains(&v) {
                    ctx.error_at(&ctx.sub(&ep, "vlan"), format!("VLAN id {v} is out of range: use 1..=4094"), "not a usable VLAN id");
                }
            }
        }
    }
}
