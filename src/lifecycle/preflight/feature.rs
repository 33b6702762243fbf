//! What a lab can need from the kernel, named the same way everywhere: in preflight messages,
//! in `tests/common::require(&["ipvlan", "netem", "esp"])`, and in the docs.

use std::fmt;

/// A piece of the kernel that a lab (or a test) may need and a kernel may lack.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// A device kind, by its rtnetlink name (IFLA_INFO_KIND): `ipvlan`, `vlan`, `bond`, ...
    Kind(String),
    /// A queueing discipline, by its tc name (TCA_KIND): `netem`, `htb`, `tbf`, ...
    Qdisc(String),
    /// IPsec ESP for IPv4 through xfrm (states with `proto esp`).
    Esp,
    /// VLAN filtering on Linux bridges (`vlan_filtering 1`).
    BridgeVlanFiltering,
    /// The Open vSwitch kernel datapath (the openvswitch module), for `datapath: system`.
    Openvswitch,
}

/// Qdiscs known by their bare name; any other one is written `qdisc:NAME`.
const QDISCS: &[(&str, &str)] = &[
    ("netem", "CONFIG_NET_SCH_NETEM"),
    ("htb", "CONFIG_NET_SCH_HTB"),
    ("tbf", "CONFIG_NET_SCH_TBF"),
    ("prio", "CONFIG_NET_SCH_PRIO"),
    ("sfq", "CONFIG_NET_SCH_SFQ"),
    ("fq", "CONFIG_NET_SCH_FQ"),
    ("fq_codel", "CONFIG_NET_SCH_FQ_CODEL"),
    ("cake", "CONFIG_NET_SCH_CAKE"),
    ("red", "CONFIG_NET_SCH_RED"),
    ("hfsc", "CONFIG_NET_SCH_HFSC"),
    ("drr", "CONFIG_NET_SCH_DRR"),
    ("mqprio", "CONFIG_NET_SCH_MQPRIO"),
    ("ingress", "CONFIG_NET_SCH_INGRESS"),
    ("clsact", "CONFIG_NET_SCH_INGRESS"),
];

const ESP: &str = "esp";
const BRIDGE_VLAN_FILTERING: &str = "bridge-vlan-filtering";
const OPENVSWITCH: &str = "openvswitch";

impl Feature {
    /// Reads a feature name: `esp`, `bridge-vlan-filtering`, a known qdisc (`netem`) or
    /// `qdisc:NAME`, `kind:NAME`, or else a device kind (`ipvlan`).
    pub fn parse(name: &str) -> Feature {
        let name = name.trim();
        if let Some(q) = name.strip_prefix("qdisc:") {
            return Feature::Qdisc(q.to_string());
        }
        if let Some(k) = name.strip_prefix("kind:") {
            return Feature::Kind(k.to_string());
        }
        match name {
            ESP => Feature::Esp,
            BRIDGE_VLAN_FILTERING | "vlan_filtering" => Feature::BridgeVlanFiltering,
            OPENVSWITCH => Feature::Openvswitch,
            q if QDISCS.iter().any(|(n, _)| *n == q) => Feature::Qdisc(q.to_string()),
            k => Feature::Kind(k.to_string()),
        }
    }

    /// The name `parse` reads back.
    pub fn name(&self) -> String {
        match self {
            Feature::Kind(k) => k.clone(),
            Feature::Qdisc(q) if QDISCS.iter().any(|(n, _)| n == q) => q.clone(),
            Feature::Qdisc(q) => format!("qdisc:{q}"),
            Feature::Esp => ESP.into(),
            Feature::BridgeVlanFiltering => BRIDGE_VLAN_FILTERING.into(),
            Feature::Openvswitch => OPENVSWITCH.into(),
        }
    }

    /// The kernel build option that provides it.
    pub fn config_option(&self) -> String {
        match self {
            Feature::Kind(k) => kind_option(k).to_string(),
            Feature::Qdisc(q) => match QDISCS.iter().find(|(n, _)| n == q) {
                Some((_, opt)) => opt.to_string(),
                None => format!("CONFIG_NET_SCH_{}", q.to_ascii_uppercase()),
            },
            Feature::Esp => "CONFIG_INET_ESP".into(),
            Feature::BridgeVlanFiltering => "CONFIG_BRIDGE_VLAN_FILTERING".into(),
            Feature::Openvswitch => "CONFIG_OPENVSWITCH".into(),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The kernel option that provides a device kind (IFLA_INFO_KIND).
pub fn kind_option(kind: &str) -> &'static str {
    match kind {
        "veth" => "CONFIG_VETH",
        "bridge" => "CONFIG_BRIDGE",
        "macvlan" => "CONFIG_MACVLAN",
        "macvtap" => "CONFIG_MACVTAP",
        "ipvlan" => "CONFIG_IPVLAN",
        "ipvtap" => "CONFIG_IPVTAP",
        "vlan" => "CONFIG_VLAN_8021Q",
        "vxlan" => "CONFIG_VXLAN",
        "geneve" => "CONFIG_GENEVE",
        "bond" => "CONFIG_BONDING",
        "team" => "CONFIG_NET_TEAM",
        "dummy" => "CONFIG_DUMMY",
        "ifb" => "CONFIG_IFB",
        "tun" => "CONFIG_TUN",
        "vrf" => "CONFIG_NET_VRF",
        "gre" | "gretap" => "CONFIG_NET_IPGRE",
        "ip6gre" | "ip6gretap" => "CONFIG_IPV6_GRE",
        "ipip" => "CONFIG_NET_IPIP",
        "sit" => "CONFIG_IPV6_SIT",
        "wireguard" => "CONFIG_WIREGUARD",
        "openvswitch" => "CONFIG_OPENVSWITCH",
        "macsec" => "CONFIG_MACSEC",
        "xfrm" => "CONFIG_XFRM_INTERFACE",
        "netkit" => "CONFIG_NETKIT",
        _ => "the matching driver",
    }
}

/// One thing the lab needs, and what in the lab needs it (`node blue, device ipvl0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub what: Feature,
    pub needed_by: String,
}

impl Requirement {
    pub fn new(what: Feature, needed_by: impl Into<String>) -> Self {
        Requirement { what, needed_by: needed_by.into() }
    }

    /// A device of the lab needs the feature.
    pub fn device(what: Feature, node: &str, ifname: &str) -> Self {
        Requirement::new(what, format!("node {node}, device {ifname}"))
    }
}

/// One line per missing feature, naming its kernel option and every part of the lab that needs
/// it, in the order the lab first needs them:
/// `this kernel lacks ipvlan (CONFIG_IPVLAN); the lab needs it for node blue, device ipvl0`.
pub fn messages(reqs: &[Requirement], missing: &[Feature]) -> Vec<String> {
    let mut order: Vec<&Feature> = Vec::new();
    for r in reqs {
        if missing.contains(&r.what) && !order.contains(&&r.what) {
            order.push(&r.what);
        }
    }
    order
        .into_iter()
        .map(|f| {
            let mut users: Vec<&str> = Vec::new();
            for r in reqs.iter().filter(|r| &r.what == f) {
                if !users.contains(&r.needed_by.as_str()) {
                    users.push(&r.needed_by);
                }
            }
            format!("this kernel lacks {} ({}); the lab needs it for {}", f, f.config_option(), users.join("; "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for n in ["ipvlan", "vlan", "dummy", "netem", "htb", "clsact", "qdisc:pie", "esp", "bridge-vlan-filtering", "openvswitch"] {
            assert_eq!(Feature::parse(n).name(), n);
        }
        assert_eq!(Feature::parse("netem"), Feature::Qdisc("netem".into()));
        assert_eq!(Feature::parse("ipvlan"), Feature::Kind("ipvlan".into()));
        assert_eq!(Feature::parse("kind:netem"), Feature::Kind("netem".into()));
        assert_eq!(Feature::parse("vlan_filtering"), Feature::BridgeVlanFiltering);
    }

    #[test]
    fn config_options() {
        assert_eq!(Feature::parse("ipvlan").config_option(), "CONFIG_IPVLAN");
        assert_eq!(Feature::parse("vlan").config_option(), "CONFIG_VLAN_8021Q");
        assert_eq!(Feature::parse("netem").config_option(), "CONFIG_NET_SCH_NETEM");
        assert_eq!(Feature::parse("qdisc:pie").config_option(), "CONFIG_NET_SCH_PIE");
        assert_eq!(Feature::Esp.config_option(), "CONFIG_INET_ESP");
        assert_eq!(Feature::BridgeVlanFiltering.config_option(), "CONFIG_BRIDGE_VLAN_FILTERING");
    }

    #[test]
    fn message_names_feature_option_and_every_user() {
        let reqs = vec![
            Requirement::device(Feature::parse("veth"), "blue", "eth0"),
            Requirement::device(Feature::parse("ipvlan"), "blue", "ipvl0"),
            Requirement::device(Feature::parse("ipvlan"), "red", "ipvl1"),
            Requirement::device(Feature::parse("ipvlan"), "red", "ipvl1"),
            Requirement::new(Feature::parse("netem"), "node red, qdisc on eth0"),
            Requirement::device(Feature::BridgeVlanFiltering, "sw", "br0"),
        ];
        let missing = vec![Feature::BridgeVlanFiltering, Feature::parse("netem"), Feature::parse("ipvlan")];
        assert_eq!(
            messages(&reqs, &missing),
            vec![
                "this kernel lacks ipvlan (CONFIG_IPVLAN); the lab needs it for node blue, device ipvl0; node red, device ipvl1",
                "this kernel lacks netem (CONFIG_NET_SCH_NETEM); the lab needs it for node red, qdisc on eth0",
                "this kernel lacks bridge-vlan-filtering (CONFIG_BRIDGE_VLAN_FILTERING); the lab needs it for node sw, device br0",
            ]
        );
    }

    #[test]
    fn nothing_missing_no_message() {
        let reqs = vec![Requirement::device(Feature::parse("ipvlan"), "blue", "ipvl0")];
        assert!(messages(&reqs, &[]).is_empty());
        assert!(messages(&[], &[Feature::Esp]).is_empty(), "a missing feature nobody needs is not reported");
    }
}
