//! veth: the peer travels inside the create message (VETH_INFO_PEER), already carrying its
//! final name and target namespace, so no device is ever moved between namespaces (a move
//! costs ~16 ms of RCU waits under the rtnl lock).

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkInfo, LinkMessage};

/// IFLA_LINKINFO for a veth whose peer is described by `peer`.
pub fn veth_info(peer: LinkMessage) -> Vec<LinkInfo> {
    vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer)))]
}
