//! tun and tap: devices whose other side is a file descriptor, read and written by a program (a
//! VPN, an emulator, a test). tun carries IP packets, tap Ethernet frames. Created with the
//! TUNSETIFF ioctl on /dev/net/tun, not over netlink.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::validate::Ctx;

/// Options of a tun or tap device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TunSpec {
    /// Keep the device when no program has it open (default true: vnet creates it and exits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    /// User id allowed to open the device without CAP_NET_ADMIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
    /// Group id allowed to open the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// Several queues (file descriptors), one per reader thread (IFF_MULTI_QUEUE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_queue: Option<bool>,
    /// Each packet is preceded by a struct virtio_net_hdr (IFF_VNET_HDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnet_hdr: Option<bool>,
}

impl TunSpec {
    pub const FIELDS: &'static [&'static str] = &["persistent", "owner", "group", "multi_queue", "vnet_hdr"];

    pub fn drift(&self, have: &TunSpec) -> Drift {
        let b = |o: Option<bool>| o.unwrap_or(false);
        if self.owner != have.owner || self.group != have.group || b(self.multi_queue) != b(have.multi_queue) || b(self.vnet_hdr) != b(have.vnet_hdr) {
            Drift::Recreate
        } else {
            Drift::Same
        }
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        if self.persistent == Some(false) {
            let p = ctx.sub(&ctx.iface_path(node, ifname), "persistent");
            ctx.error_at(
                &p,
                format!("`{node}:{ifname}` cannot be non-persistent: vnet creates the device and exits, so it would vanish at once; a program opens queues on the persistent device instead (vnet's library: `lab.node(..).open_tap(..)`)"),
                "must be persistent",
            );
        }
    }
}
