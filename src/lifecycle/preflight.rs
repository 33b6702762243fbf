//! Kernel preflight: before changing anything, find the device kinds the plan needs that the
//! running kernel lacks. Each kind is probed once in a scratch namespace that dies with its
//! thread: an RTM_NEWLINK carrying only the kind answers EOPNOTSUPP exactly when the kernel has
//! no driver for it (after trying to load its module), whatever else the request lacks.

use std::collections::BTreeMap;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::kernel::nl::{Netlink, Request};
use crate::model::Lab;
use crate::plan::{Op, Plan};

/// The kernel option that provides a device kind (IFLA_INFO_KIND).
pub fn config_option(kind: &str) -> &'static str {
    match kind {
        "veth" => "CONFIG_VETH",
        "bridge" => "CONFIG_BRIDGE",
        "macvlan" => "CONFIG_MACVLAN",
        "macvtap" => "CONFIG_MACVTAP",
        "ipvlan" => "CONFIG_IPVLAN",
        "ipvtap" => "CONFIG_IPVTAP",
        "vlan" => "CONFIG_VLAN_8021Q",
        "vxlan" => "CONFIG_VXLAN",
        "bond" => "CONFIG_BONDING",
        "team" => "CONFIG_NET_TEAM",
        "dummy" => "CONFIG_DUMMY",
        "ifb" => "CONFIG_IFB",
        "tun" => "CONFIG_TUN",
        "vrf" => "CONFIG_NET_VRF",
        "gre" | "gretap" => "CONFIG_NET_IPGRE",
        "wireguard" => "CONFIG_WIREGUARD",
        "openvswitch" => "CONFIG_OPENVSWITCH",
        _ => "the matching driver",
    }
}

/// Which of `kinds` the running kernel lacks (probed in a scratch namespace).
pub fn missing_kinds(kinds: &[String]) -> std::io::Result<Vec<String>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let kinds = kinds.to_vec();
    std::thread::spawn(move || -> std::io::Result<Vec<String>> {
        netns::unshare_thread()?;
        let mut nl = Netlink::open()?;
        let reqs: Vec<Request> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut m = LinkMessage::default();
                m.attributes.push(LinkAttribute::IfName(format!("vnetprobe{i}")));
                m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Other(k.clone()))]));
                Request::new(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            })
            .collect();
        let replies = nl.batch(reqs);
        Ok(kinds
            .into_iter()
            .zip(replies)
            .filter(|(_, r)| matches!(r, Err(e) if e.errno == libc::EOPNOTSUPP))
            .map(|(k, _)| k)
            .collect())
    })
    .join()
    .map_err(|_| std::io::Error::other("preflight thread panicked"))?
}

/// Fails with every missing piece named, and where the lab needs it.
pub fn check(_lab: &Lab, plan: &Plan) -> Result<()> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for op in plan.ops() {
        if let Op::CreateLink(c) = op {
            if let Some(k) = c.kind.kernel_kind() {
                users.entry(k.to_string()).or_default().push(format!("node {}, device {}", c.node, c.ifname));
            }
        }
    }
    let kinds: Vec<String> = users.keys().cloned().collect();
    let missing = missing_kinds(&kinds).map_err(|e| Error::io("kernel preflight", e))?;
    if missing.is_empty() {
        return Ok(());
    }
    let lines = missing
        .iter()
        .map(|k| format!("this kernel lacks {k} ({}); the lab needs it for {}", config_option(k), users[k].join("; ")))
        .collect();
    Err(Error::Unsupported(lines))
}
