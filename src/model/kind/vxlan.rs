//! vxlan: an Ethernet overlay carried in UDP between "hosts" over an underlay network. Frames
//! for unknown destinations go to `remote` (point to point), to a multicast `group` on an
//! underlay device, or to every static remote listed in `fdb`.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::lab::parse_mac;
use crate::model::validate::Ctx;

/// The IANA VXLAN port, used when `dstport` is not given (the kernel's own default is 8472).
pub const VXLAN_PORT: u16 = 4789;
/// Bytes of outer headers over IPv4: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
pub const VXLAN_OVERHEAD: u32 = 50;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// A static forwarding entry: frames for `mac` (all zeros: every unknown or broadcast
/// destination) are sent to the remote VTEP `dst`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VxlanFdb {
    /// Destination MAC; default 00:00:00:00:00:00 (flooding list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The remote VTEP's underlay address.
    pub dst: String,
}

/// Options of a VXLAN device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VxlanSpec {
    /// VXLAN network identifier, 0..=16777215.
    pub vni: u32,
    /// Unicast remote VTEP (point to point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Multicast group for flooding (needs `dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Underlay device in this node; the MTU default is its MTU minus 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Local underlay address (source of the outer packets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// UDP destination port; default 4789.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dstport: Option<u16>,
    /// TTL of the outer packets (kernel default: inherit 0 = system default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Learn remote MACs from received packets (kernel default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    /// Static remote forwarding entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fdb: Vec<VxlanFdb>,
}

impl VxlanSpec {
    pub const FIELDS: &'static [&'static str] = &["vni", "remote", "group", "dev", "local", "dstport", "ttl", "learning", "fdb"];

    fn ip(s: &Option<String>) -> Option<IpAddr> {
        s.as_deref().and_then(|s| s.trim().parse().ok())
    }
    pub fn remote_ip(&self) -> Option<IpAddr> {
        Self::ip(&self.remote)
    }
    pub fn group_ip(&self) -> Option<IpAddr> {
        Self::ip(&self.group)
    }
    pub fn local_ip(&self) -> Option<IpAddr> {
        Self::ip(&self.local)
    }
    pub fn port(&self) -> u16 {
        self.dstport.unwrap_or(VXLAN_PORT)
    }
    /// The fdb entries, parsed: (mac, remote).
    pub fn fdb_entries(&self) -> Vec<([u8; 6], IpAddr)> {
        self.fdb
            .iter()
            .filter_map(|e| {
                let mac = match &e.mac {
                    Some(m) => parse_mac(m).ok()?,
                    None => [0; 6],
                };
                Some((mac, e.dst.trim().parse().ok()?))
            })
            .collect()
    }

    /// Options the kernel reports back are compared; fdb entries are planned separately.
    pub fn drift(&self, have: &VxlanSpec) -> Drift {
        let differs = self.vni != have.vni
            || self.remote_ip() != have.remote_ip()
            || self.group_ip() != have.group_ip()
            || (self.local_ip().is_some() && self.local_ip() != have.local_ip())
            || self.port() != have.port()
            || (self.ttl.is_some() && self.ttl != have.ttl)
            || (self.learning.is_some() && self.learning != have.learning);
        if differs {
            Drift::Recreate
        } else {
            Drift::Same
        }
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        let base = ctx.iface_path(node, ifname);
        if self.vni > VNI_MAX {
            ctx.error_at(&ctx.sub(&base, "vni"), format!("VNI {} is over the 24-bit maximum {VNI_MAX}", self.vni), "VNI too large");
        }
        let mut addr = |key: &str, v: &Option<String>, want_mc: Option<bool>| -> Option<IpAddr> {
            let raw = v.as_ref()?;
            let p = ctx.sub(&base, key);
            match raw.trim().parse::<IpAddr>() {
                Err(_) => {
                    ctx.error_at(&p, format!("`{key}` `{raw}` is not an IP address"), "bad address");
                    None
                }
                Ok(a) if want_mc == Some(true) && !a.is_multicast() => {
                    ctx.error_at(&p, format!("group {a} is not a multicast address"), "not multicast");
                    None
                }
                Ok(a) if want_mc == Some(false) && a.is_multicast() => {
                    ctx.error_at(&p, format!("`{key}` {a} is a multicast address; use `group` for multicast flooding"), "multicast");
                    None
                }
                Ok(a) => Some(a),
            }
        };
        let remote = addr("remote", &self.remote, Some(false));
        let group = addr("group", &self.group, Some(true));
        let local = addr("local", &self.local, Some(false));
        if self.remote.is_some() && self.group.is_some() {
            ctx.error_at(
                &ctx.sub(&base, "group"),
                format!("`{node}:{ifname}` sets both `remote` and `group`; a VXLAN floods to one or the other"),
                "remote and group",
            );
        }
        if self.group.is_some() && self.dev.is_none() {
            ctx.error_at(
                &ctx.sub(&base, "group"),
                format!("multicast group of `{node}:{ifname}` needs `dev`, the underlay device to join it on"),
                "needs `dev`",
            );
        }
        let fams: Vec<bool> = [remote, group, local].iter().flatten().map(|a| a.is_ipv4()).collect();
        if fams.windows(2).any(|w| w[0] != w[1]) {
            ctx.error_at(&base, format!("`{node}:{ifname}` mixes IPv4 and IPv6 underlay addresses"), "mixed families");
        }
        if self.dstport == Some(0) {
            ctx.error_at(&ctx.sub(&base, "dstport"), "dstport 0 is not a UDP port", "bad port");
        }
        let fp = ctx.sub(&base, "fdb");
        for (i, e) in self.fdb.iter().enumerate() {
            let ep = ctx.idx(&fp, i);
            if let Some(m) = &e.mac {
                if let Err(why) = parse_mac(m) {
                    ctx.error_at(&ctx.sub(&ep, "mac"), format!("bad MAC address `{m}`: {why}"), "bad MAC");
                }
            }
            match e.dst.trim().parse::<IpAddr>() {
                Err(_) => ctx.error_at(&ctx.sub(&ep, "dst"), format!("fdb destination `{}` is not an IP address", e.dst), "bad address"),
                Ok(a) if fams.first().is_some_and(|v4| *v4 != a.is_ipv4()) => {
                    ctx.error_at(&ctx.sub(&ep, "dst"), format!("fdb destination {a} is of another IP family than the VXLAN's underlay"), "family mismatch")
                }
                Ok(_) => {}
            }
        }
    }
}
