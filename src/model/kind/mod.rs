//! Device kinds: one enum variant per kind the kernel offers, each with its options in its own
//! file. Kind-specific validation lives beside the options; netlink encoding lives in
//! `kernel::kinds`, so this layer stays pure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod bond;
mod bridge;
mod dummy;
mod ipvlan;
pub mod links;
mod loopback;
mod macvlan;
pub mod ovs;
pub mod ovs_flow;
mod team;
mod tun;
mod veth;
mod vlan;
mod vxlan;

pub use bond::{BondMode, BondSpec, DEFAULT_MIIMON};
pub use bridge::{BridgeFdb, BridgeSpec, BridgeVlan, BridgeVlanFull};
pub use dummy::{DummySpec, IfbSpec};
pub use ipvlan::{IpvlanFlag, IpvlanMode, IpvlanSpec};
pub use loopback::LoopbackSpec;
pub use macvlan::{MacvlanMode, MacvlanSpec};
pub use ovs::{OvsBridgeSpec, OvsDatapath, OvsFailMode, OvsFlowParts, OvsFlowSpec, OvsInternalSpec, OvsPortSpec, OvsVlanMode};
pub use team::{TeamRunner, TeamSpec};
pub use tun::TunSpec;
pub use veth::VethSpec;
pub use vlan::{VlanProtocol, VlanSpec};
pub use vxlan::{VxlanFdb, VxlanSpec, VNI_MAX, VXLAN_OVERHEAD, VXLAN_PORT};

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
    /// A virtual device with its own MAC on a lower device (`link`).
    Macvlan(MacvlanSpec),
    /// A macvlan with a character device (/dev/tapIFINDEX) carrying its frames.
    Macvtap(MacvlanSpec),
    /// A virtual device sharing its lower device's MAC, told apart by IP address.
    Ipvlan(IpvlanSpec),
    /// An 802.1Q / 802.1ad VLAN sub-interface of a lower device.
    Vlan(VlanSpec),
    /// An Ethernet overlay over UDP.
    Vxlan(VxlanSpec),
    /// Link aggregation in the kernel; ports join with `master`.
    Bond(BondSpec),
    /// Link aggregation driven by teamd; ports join with `master`.
    Team(TeamSpec),
    /// A layer-3 device read and written through a file descriptor.
    Tun(TunSpec),
    /// A layer-2 device read and written through a file descriptor.
    Tap(TunSpec),
    /// A device that drops what it is sent.
    Dummy(DummySpec),
    /// An intermediate functional block device (tc redirect target).
    Ifb(IfbSpec),
    /// An Open vSwitch bridge, configured through OVSDB; ports join with `master`.
    OvsBridge(OvsBridgeSpec),
    /// A port OVS creates on an OVS bridge (`master`), seen by the node as a device.
    OvsInternal(OvsInternalSpec),
}

impl KindSpec {
    /// Transmit/receive queues a device of this kind is created with, where vnet chooses them
    /// (veth ends: one unless declared); `None`: the kernel's default.
    pub fn queues(&self) -> Option<u32> {
        match self {
            KindSpec::Veth(v) => Some(v.queues_or_default()),
            _ => None,
        }
    }

    /// The kind's name as written in files and shown by `status`.
    pub fn name(&self) -> &'static str {
        match self {
            KindSpec::Loopback(_) => "loopback",
            KindSpec::Veth(_) => "veth",
            KindSpec::Bridge(_) => "bridge",
            KindSpec::Macvlan(_) => "macvlan",
            KindSpec::Macvtap(_) => "macvtap",
            KindSpec::Ipvlan(_) => "ipvlan",
            KindSpec::Vlan(_) => "vlan",
            KindSpec::Vxlan(_) => "vxlan",
            KindSpec::Bond(_) => "bond",
            KindSpec::Team(_) => "team",
            KindSpec::Tun(_) => "tun",
            KindSpec::Tap(_) => "tap",
            KindSpec::Dummy(_) => "dummy",
            KindSpec::Ifb(_) => "ifb",
            KindSpec::OvsBridge(_) => "ovs-bridge",
            KindSpec::OvsInternal(_) => "ovs-internal",
        }
    }

    /// Every kind name, for messages and the preflight.
    pub const NAMES: &'static [&'static str] = &[
        "loopback",
        "veth",
        "bridge",
        "macvlan",
        "macvtap",
        "ipvlan",
        "vlan",
        "vxlan",
        "bond",
        "team",
        "tun",
        "tap",
        "dummy",
        "ifb",
        "ovs-bridge",
        "ovs-internal",
    ];

    /// Decodes the options of the kind `name` (without `kind`) as that kind's own settings, so
    /// that an error keeps its path inside the options: decoding `KindSpec` itself (an
    /// internally tagged enum) buffers the options and loses it. `None` for an unknown kind.
    pub fn decode_options_located(name: &str, options: &serde_json::Value) -> Option<Result<(), serde_path_to_error::Error<serde_json::Error>>> {
        fn de<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
            serde_path_to_error::deserialize::<_, T>(v).map(|_| ())
        }
        Some(match name {
            "loopback" => de::<LoopbackSpec>(options),
            "veth" => de::<VethSpec>(options),
            "bridge" => de::<BridgeSpec>(options),
            "macvlan" | "macvtap" => de::<MacvlanSpec>(options),
            "ipvlan" => de::<IpvlanSpec>(options),
            "vlan" => de::<VlanSpec>(options),
            "vxlan" => de::<VxlanSpec>(options),
            "bond" => de::<BondSpec>(options),
            "team" => de::<TeamSpec>(options),
            "tun" | "tap" => de::<TunSpec>(options),
            "dummy" => de::<DummySpec>(options),
            "ifb" => de::<IfbSpec>(options),
            "ovs-bridge" => de::<OvsBridgeSpec>(options),
            "ovs-internal" => de::<OvsInternalSpec>(options),
            _ => return None,
        })
    }

    /// The kernel's rtnetlink kind string (IFLA_INFO_KIND), where the kind has one.
    pub fn kernel_kind(&self) -> Option<&'static str> {
        match self {
            KindSpec::Loopback(_) => None,
            KindSpec::Veth(_) => Some("veth"),
            KindSpec::Bridge(_) => Some("bridge"),
            KindSpec::Macvlan(_) => Some("macvlan"),
            KindSpec::Macvtap(_) => Some("macvtap"),
            KindSpec::Ipvlan(_) => Some("ipvlan"),
            KindSpec::Vlan(_) => Some("vlan"),
            KindSpec::Vxlan(_) => Some("vxlan"),
            KindSpec::Bond(_) => Some("bond"),
            KindSpec::Team(_) => Some("team"),
            // Made with the TUNSETIFF ioctl: rtnetlink refuses to create them.
            KindSpec::Tun(_) | KindSpec::Tap(_) => None,
            KindSpec::Dummy(_) => Some("dummy"),
            KindSpec::Ifb(_) => Some("ifb"),
            // Made by ovs-vswitchd, not over rtnetlink.
            KindSpec::OvsBridge(_) | KindSpec::OvsInternal(_) => None,
        }
    }

    /// The IFLA_INFO_KIND a device of this kind reports (tun and tap both say `tun`).
    pub fn observed_kind(&self) -> Option<&'static str> {
        match self {
            KindSpec::Tun(_) | KindSpec::Tap(_) => Some("tun"),
            other => other.kernel_kind(),
        }
    }

    /// Whether other interfaces may name this one as `master`.
    pub fn is_master(&self) -> bool {
        matches!(self, KindSpec::Bridge(_) | KindSpec::Bond(_) | KindSpec::Team(_) | KindSpec::OvsBridge(_))
    }

    /// Whether the device is made and configured by Open vSwitch (not over rtnetlink).
    pub fn is_ovs(&self) -> bool {
        matches!(self, KindSpec::OvsBridge(_) | KindSpec::OvsInternal(_))
    }

    /// Whether a port must be down when it joins this master (bond and team refuse ports that
    /// are up, and bring them up themselves).
    pub fn ports_join_down(&self) -> bool {
        matches!(self, KindSpec::Bond(_) | KindSpec::Team(_))
    }

    /// Whether the device can only come up once its lower device is up (a VLAN answers
    /// ENETDOWN otherwise); the planner brings it up in a later stage.
    pub fn up_after_lower(&self) -> bool {
        matches!(self, KindSpec::Vlan(_))
    }

    /// The lower device as written (`ifname` or `node:ifname`), for kinds stacked on another.
    pub fn lower(&self) -> Option<&str> {
        match self {
            KindSpec::Macvlan(s) | KindSpec::Macvtap(s) => Some(&s.link),
            KindSpec::Ipvlan(s) => Some(&s.link),
            KindSpec::Vlan(s) => Some(&s.link),
            KindSpec::Vxlan(s) => s.dev.as_deref(),
            _ => None,
        }
    }

    /// The lower device resolved against the node the device is declared in.
    pub fn lower_endpoint(&self, node: &str) -> Option<super::lab::Endpoint> {
        let raw = self.lower()?;
        Some(match super::lab::Endpoint::parse(raw) {
            Some(ep) => ep,
            None => super::lab::Endpoint::new(node, raw.trim()),
        })
    }

    /// Whether the kernel lets the lower device live in another namespace than the device.
    pub fn lower_may_be_elsewhere(&self) -> bool {
        matches!(self, KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Ipvlan(_) | KindSpec::Vlan(_))
    }

    /// Ports listed on a master (`ports: [...]`), beside those naming it as `master`.
    pub fn listed_ports(&self) -> &[String] {
        match self {
            KindSpec::Bond(s) => &s.ports,
            KindSpec::Team(s) => &s.ports,
            _ => &[],
        }
    }

    /// Kind-specific checks; `ctx` locates findings in the file.
    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        match self {
            KindSpec::Loopback(s) => s.check(ctx, node, ifname),
            KindSpec::Veth(s) => s.check(ctx, node, ifname),
            KindSpec::Bridge(s) => s.check(ctx, node, ifname),
            KindSpec::Macvlan(s) | KindSpec::Macvtap(s) => s.check(ctx, node, ifname),
            KindSpec::Ipvlan(s) => s.check(ctx, node, ifname),
            KindSpec::Vlan(s) => s.check(ctx, node, ifname),
            KindSpec::Vxlan(s) => s.check(ctx, node, ifname),
            KindSpec::Bond(s) => s.check(ctx, node, ifname),
            KindSpec::Team(s) => s.check(ctx, node, ifname),
            KindSpec::Tun(s) | KindSpec::Tap(s) => s.check(ctx, node, ifname),
            KindSpec::Dummy(_) | KindSpec::Ifb(_) | KindSpec::OvsInternal(_) => {}
            KindSpec::OvsBridge(s) => s.check(ctx, node, ifname),
        }
    }

    /// How a device of this kind that the kernel already has differs from this spec.
    pub fn drift(&self, observed: Option<&KindSpec>) -> Drift {
        match (self, observed) {
            (KindSpec::Bridge(want), Some(KindSpec::Bridge(have))) => want.drift(have),
            (KindSpec::Macvlan(want), Some(KindSpec::Macvlan(have))) | (KindSpec::Macvtap(want), Some(KindSpec::Macvtap(have))) => want.drift(have),
            (KindSpec::Ipvlan(want), Some(KindSpec::Ipvlan(have))) => want.drift(have),
            (KindSpec::Vlan(want), Some(KindSpec::Vlan(have))) => want.drift(have),
            (KindSpec::Vxlan(want), Some(KindSpec::Vxlan(have))) => want.drift(have),
            (KindSpec::Bond(want), Some(KindSpec::Bond(have))) => want.drift(have),
            (KindSpec::Team(want), Some(KindSpec::Team(have))) => want.drift(have),
            (KindSpec::Tun(want), Some(KindSpec::Tun(have))) | (KindSpec::Tap(want), Some(KindSpec::Tap(have))) => want.drift(have),
            (a, Some(b)) if a.name() != b.name() => Drift::Recreate,
            _ => Drift::Same,
        }
    }

    /// This spec plus the kernel's default for each option that `before` (the same device as
    /// last applied) declared and this spec no longer does, for the kinds whose options change
    /// in place (bridge). `None` when no such option was dropped.
    pub fn with_dropped_reset(&self, before: &KindSpec) -> Option<KindSpec> {
        match (self, before) {
            (KindSpec::Bridge(now), KindSpec::Bridge(b)) => now.with_dropped_reset(b).map(KindSpec::Bridge),
            _ => None,
        }
    }

    /// Field names this kind accepts (beside the common ones), for help texts.
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            KindSpec::Loopback(_) => &[],
            KindSpec::Veth(_) => &["peer", "queues"],
            KindSpec::Bridge(_) => BridgeSpec::FIELDS,
            KindSpec::Macvlan(_) | KindSpec::Macvtap(_) => MacvlanSpec::FIELDS,
            KindSpec::Ipvlan(_) => IpvlanSpec::FIELDS,
            KindSpec::Vlan(_) => VlanSpec::FIELDS,
            KindSpec::Vxlan(_) => VxlanSpec::FIELDS,
            KindSpec::Bond(_) => BondSpec::FIELDS,
            KindSpec::Team(_) => TeamSpec::FIELDS,
            KindSpec::Tun(_) | KindSpec::Tap(_) => TunSpec::FIELDS,
            KindSpec::Dummy(_) | KindSpec::Ifb(_) | KindSpec::OvsInternal(_) => &[],
            KindSpec::OvsBridge(_) => OvsBridgeSpec::FIELDS,
        }
    }
}

#[cfg(test)]
mod tests;
