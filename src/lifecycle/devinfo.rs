//! Kind-specific facts `status` shows beside a device: a macvtap's character device, a VXLAN's
//! VNI and remote, a bond's mode and active port, a VLAN's id, a macvlan's or ipvlan's mode.

use std::collections::BTreeMap;

use crate::model::kind::KindSpec;
use crate::observed::{ObservedLink, ObservedNs};

/// Facts about `l` (names resolved within `ns`); `daemons` maps "ifname" to a teamd pid.
pub fn details(l: &ObservedLink, ns: &ObservedNs, teamd: Option<u32>) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    let name_of = |i: &str| i.parse::<u32>().ok().and_then(|i| ns.name_of(i)).map(str::to_string);
    let lower = || if l.link_netnsid.is_none() { l.link.and_then(|i| ns.name_of(i)).map(str::to_string) } else { None };
    match &l.spec {
        Some(KindSpec::Macvlan(s)) | Some(KindSpec::Macvtap(s)) => {
            d.insert("mode".into(), s.mode().name().into());
            if !s.macs.is_empty() {
                d.insert("macs".into(), s.macs.join(","));
            }
            if matches!(l.spec, Some(KindSpec::Macvtap(_))) {
                d.insert("char_device".into(), format!("/dev/tap{}", l.ifindex));
            }
        }
        Some(KindSpec::Ipvlan(s)) => {
            d.insert("mode".into(), format!("{:?}", s.mode.unwrap_or_default()).to_lowercase());
            d.insert("flag".into(), format!("{:?}", s.flag.unwrap_or_default()).to_lowercase());
        }
        Some(KindSpec::Vlan(s)) => {
            d.insert("id".into(), s.id.to_string());
            d.insert("protocol".into(), if matches!(s.protocol, Some(crate::model::kind::VlanProtocol::Dot1ad)) { "802.1ad" } else { "802.1Q" }.into());
        }
        Some(KindSpec::Vxlan(s)) => {
            d.insert("vni".into(), s.vni.to_string());
            if let Some(r) = &s.remote {
                d.insert("remote".into(), r.clone());
            }
            if let Some(g) = &s.group {
                d.insert("group".into(), g.clone());
            }
            if let Some(x) = &s.local {
                d.insert("local".into(), x.clone());
            }
            d.insert("dstport".into(), s.port().to_string());
            if let Some(u) = l.details.get("underlay_ifindex").and_then(|i| name_of(i)) {
                d.insert("dev".into(), u);
            }
        }
        Some(KindSpec::Bond(s)) => {
            d.insert("mode".into(), s.mode().name().into());
            d.insert("miimon".into(), s.miimon().to_string());
            if let Some(a) = l.details.get("active_port_ifindex").and_then(|i| name_of(i)) {
                d.insert("active_port".into(), a);
            }
        }
        Some(KindSpec::Tun(s)) | Some(KindSpec::Tap(s)) => {
            d.insert("type".into(), if matches!(l.spec, Some(KindSpec::Tap(_))) { "tap" } else { "tun" }.into());
            if s.multi_queue == Some(true) {
                d.insert("multi_queue".into(), "on".into());
            }
            if s.vnet_hdr == Some(true) {
                d.insert("vnet_hdr".into(), "on".into());
            }
            if let Some(o) = s.owner {
                d.insert("owner".into(), o.to_string());
            }
            if let Some(g) = s.group {
                d.insert("group".into(), g.to_string());
            }
        }
        Some(KindSpec::Bridge(b)) if b.vlan_filtering == Some(true) => {
            d.insert("vlan_filtering".into(), "on".into());
        }
        _ => {}
    }
    if let Some(pid) = teamd {
        d.insert("teamd_pid".into(), pid.to_string());
    }
    if matches!(l.spec, Some(KindSpec::Macvlan(_) | KindSpec::Macvtap(_) | KindSpec::Ipvlan(_) | KindSpec::Vlan(_))) {
        if let Some(n) = lower() {
            d.insert("link".into(), n);
        }
    }
    d
}

/// Renders details as ` key value` pairs for the text view.
pub fn render(d: &BTreeMap<String, String>) -> String {
    d.iter().map(|(k, v)| format!(" {k} {v}")).collect()
}
