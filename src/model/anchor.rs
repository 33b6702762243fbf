//! Teardown anchors: a busy bridge's first port is a VXLAN device vnet adds, kept down.
//!
//! When a port leaves a bridge, the kernel re-sizes the headroom of every remaining port if the
//! leaving port's headroom equals the bridge's (`del_nbp` → `update_headroom`). Veths report a
//! headroom of 0, so does a bridge of veths: deleting N veth ports costs N² headroom updates.
//! A port with a larger headroom (a VXLAN device: 50 bytes) lifts the bridge's, and while it is
//! still a port no veth's removal matches. The bridge removes its ports from the newest to the
//! oldest, so the anchor must be the bridge's oldest port: it is created right after the
//! bridge and before any other port. star-1000 `down`: 489–524 ms without, 437–475 ms with
//! (six alternating rounds each, docs/architecture.md).
//!
//! The anchor stays down: the bridge treats it as a disabled port (no frames, no UDP socket
//! opened, no effect on the bridge's carrier). Its MTU is the largest a VXLAN device without an
//! underlay allows, so it never lowers the bridge's automatic MTU (the smallest of the ports'),
//! and its MAC the largest unicast address, so it never becomes the bridge's address (the
//! kernel takes the smallest of the ports'). Bridges in the real root namespace get none.

use super::kind::{KindSpec, VxlanSpec, VNI_MAX};
use super::lab::{Interface, Node};

/// Interface names starting with this are vnet's own; validation refuses them in files.
pub const PREFIX: &str = "vnet~";

/// Below this many ports the quadratic cost is too small to be worth a device.
pub const MIN_PORTS: usize = 16;

/// The largest MTU of a VXLAN device without an underlay device (65535 minus 50 of headroom).
pub const MTU: u32 = 65485;

/// The largest locally administered unicast address.
pub const MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// Whether a device name is an anchor's.
pub fn is_anchor(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// The anchor's name for a bridge: the bridge's name after the prefix, or a hash of it when
/// that would exceed the kernel's 15 bytes.
pub fn name_for(bridge: &str) -> String {
    let plain = format!("{PREFIX}{bridge}");
    if plain.len() <= 15 {
        return plain;
    }
    // FNV-1a: stable across runs and builds.
    let h = bridge.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{PREFIX}{:010x}", h & 0xff_ffff_ffff)
}

/// The anchors a node's bridges get: Linux bridges with at least `MIN_PORTS` declared ports,
/// none of them above the anchor's MTU (validation keeps the file off the anchors' names). The kernel
/// refuses two VXLAN devices with one VNI on one UDP port in a namespace, down or not: anchors
/// take VNIs from the top of the range down, past any the node's own VXLAN devices use.
pub fn for_node(node: &Node) -> Vec<Interface> {
    let mut out = Vec::new();
    let taken: Vec<u32> = node
        .interfaces
        .values()
        .filter_map(|i| match &i.kind {
            KindSpec::Vxlan(v) => Some(v.vni),
            _ => None,
        })
        .collect();
    let mut vnis = (1..=VNI_MAX).rev().filter(|v| !taken.contains(v));
    for (name, b) in &node.interfaces {
        if !matches!(b.kind, KindSpec::Bridge(_)) {
            continue;
        }
        let ports: Vec<&Interface> = node.interfaces.values().filter(|p| p.master.as_deref() == Some(name)).collect();
        if ports.len() < MIN_PORTS || ports.iter().any(|p| p.mtu.is_some_and(|m| m > MTU)) {
            continue;
        }
        let Some(vni) = vnis.next() else { break };
        out.push(Interface {
            name: name_for(name),
            kind: KindSpec::Vxlan(VxlanSpec { vni, ..Default::default() }),
            up: false,
            mtu: Some(MTU),
            mac: Some(MAC),
            addresses: Vec::new(),
            master: Some(name.clone()),
            hairpin: None,
            peer: None,
            path: b.path.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_stay_the_same() {
        assert_eq!(name_for("br0"), "vnet~br0");
        assert_eq!(name_for("0123456789"), "vnet~0123456789");
        let long = name_for("a-long-bridge-x");
        assert_eq!(long.len(), 15);
        assert!(is_anchor(&long));
        assert_eq!(long, name_for("a-long-bridge-x"));
        assert_ne!(long, name_for("a-long-bridge-y"));
        assert!(!is_anchor("br0"));
    }
}
