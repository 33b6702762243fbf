//! Asking the running kernel, never guessing from its version: every feature is probed once, in a
//! scratch network namespace that dies with its thread, so nothing outside it changes. The kernel
//! loads a missing driver's module on demand during these requests, as it would during `up`.
//!
//! - device kind: RTM_NEWLINK carrying only the kind. EOPNOTSUPP exactly when no driver
//!   registered that kind, whatever else the request lacks.
//! - qdisc: RTM_NEWQDISC of that kind at the root of `lo` (deleted again at once). ENOENT
//!   ("Specified qdisc kind is unknown") exactly when no such qdisc is registered; a missing
//!   option is EINVAL, which means the qdisc exists.
//! - bridge vlan_filtering: RTM_NEWLINK of a bridge with IFLA_BR_VLAN_FILTERING 1, EOPNOTSUPP
//!   when the kernel was built without it.
//! - ESP: an xfrm state with `proto esp` (see `xfrm.rs`).
//! - the Open vSwitch kernel datapath: its generic netlink family (`genl.rs`).

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoBridge, InfoData, InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::kernel::netns;
use crate::kernel::nl::{Netlink, Reply, Request};

use super::feature::Feature;
use super::xfrm;

/// `lo` is the one device every fresh namespace has.
const LO: i32 = 1;

/// Which of `features` the running kernel lacks, in the order given.
pub fn missing(features: &[Feature]) -> std::io::Result<Vec<Feature>> {
    if features.is_empty() {
        return Ok(Vec::new());
    }
    let features = features.to_vec();
    std::thread::spawn(move || -> std::io::Result<Vec<Feature>> {
        netns::unshare_thread()?;
        let mut nl = Netlink::open()?;
        // One pipelined batch for everything rtnetlink answers; `judge` maps each feature to
        // the index of its reply and the errno that means "missing".
        let mut reqs = Vec::new();
        let mut judge: Vec<Option<(usize, i32)>> = Vec::new();
        for (i, f) in features.iter().enumerate() {
            match f {
                Feature::Kind(k) => {
                    judge.push(Some((reqs.len(), libc::EOPNOTSUPP)));
                    reqs.push(new_link(format!("vnetprobe{i}"), InfoKind::Other(k.clone()), None));
                }
                Feature::BridgeVlanFiltering => {
                    judge.push(Some((reqs.len(), libc::EOPNOTSUPP)));
                    reqs.push(new_link(format!("vnetprobe{i}"), InfoKind::Bridge, Some(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)]))));
                }
                Feature::Qdisc(q) => {
                    judge.push(Some((reqs.len(), libc::ENOENT)));
                    let (parent, handle) = match q.as_str() {
                        "ingress" | "clsact" => (TcHandle::INGRESS, TcHandle { major: 0xffff, minor: 0 }),
                        _ => (TcHandle::ROOT, TcHandle::UNSPEC),
                    };
                    reqs.push(Request::new(RouteNetlinkMessage::NewQueueDiscipline(qdisc(parent, handle, Some(q))), NLM_F_CREATE | NLM_F_EXCL));
                    // Whatever got created goes again, so the next qdisc probe finds `lo` bare.
                    reqs.push(Request::new(RouteNetlinkMessage::DelQueueDiscipline(qdisc(parent, handle, None)), 0));
                }
                Feature::Esp | Feature::Openvswitch => judge.push(None),
            }
        }
        let replies = nl.batch(reqs);
        let lacks = |r: &Reply, errno: i32| matches!(r, Err(e) if e.errno == errno);
        let mut out = Vec::new();
        for (f, j) in features.iter().zip(judge) {
            let missing = match j {
                Some((at, errno)) => lacks(&replies[at], errno),
                None if *f == Feature::Openvswitch => !super::genl::has_family(super::genl::OVS_DATAPATH_FAMILY)?,
                None => !xfrm::has_esp()?,
            };
            if missing {
                out.push(f.clone());
            }
        }
        Ok(out)
    })
    .join()
    .map_err(|_| std::io::Error::other("preflight thread panicked"))?
}

fn new_link(name: String, kind: InfoKind, data: Option<InfoData>) -> Request {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name));
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    m.attributes.push(LinkAttribute::LinkInfo(info));
    Request::new(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

fn qdisc(parent: TcHandle, handle: TcHandle, kind: Option<&str>) -> TcMessage {
    let mut m = TcMessage::default();
    m.header.index = LO;
    m.header.parent = parent;
    m.header.handle = handle;
    if let Some(k) = kind {
        m.attributes.push(TcAttribute::Kind(k.to_string()));
    }
    m
}
