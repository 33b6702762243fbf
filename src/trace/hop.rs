//! The steps of a trace and their rendering. Pure.

use std::net::IpAddr;

use serde::Serialize;

/// One step of a packet's way through the lab.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Hop {
    /// The kernel's route lookup in a node (as `ip route get` asks it).
    Route {
        node: String,
        dst: IpAddr,
        #[serde(skip_serializing_if = "Option::is_none")]
        src: Option<IpAddr>,
        /// Input device, for a packet being forwarded.
        #[serde(skip_serializing_if = "Option::is_none")]
        iif: Option<String>,
        kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        dev: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        gateway: Option<IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        table: Option<u32>,
    },
    /// A frame passes from one device to another: a veth pair, a macvlan to its lower device.
    Link {
        from: String,
        to: String,
        via: String,
    },
    /// A bridge forwards the frame out of a port, found in its forwarding database or by flooding.
    Bridge {
        node: String,
        bridge: String,
        port: String,
        how: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    /// Encapsulated and sent over an underlay to a remote tunnel end.
    Tunnel {
        from: String,
        vni: u32,
        remote: IpAddr,
        to: String,
        /// Where the remote came from when it is not the device's own `remote` (an FDB entry,
        /// the all-zeros default entry, one of several for head-end replication).
        #[serde(skip_serializing_if = "Option::is_none")]
        how: Option<String>,
    },
    /// The lab's declared NAT rewrites an address (masquerade, SNAT, a port forward), or
    /// connection tracking undoes that for the answer.
    Nat {
        node: String,
        /// In words: `masquerade out of wan0`, `answer to a masqueraded connection`.
        what: String,
        /// `source` or `destination`.
        field: String,
        from: String,
        to: String,
    },
    /// The lab's declared firewall lets the packet through a chain (drops are `Drop` steps
    /// with cause `firewall`).
    Filter {
        node: String,
        chain: String,
        why: String,
    },
    /// The frame reached the node that holds the next hop's address.
    Arrive {
        node: String,
        dev: String,
        next_hop: IpAddr,
    },
    Deliver {
        node: String,
        dev: String,
    },
    Drop {
        node: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        dev: Option<String>,
        /// Stable name of the reason (`rp-filter`, `forwarding-off`, `no-route`, `hairpin-off`, ...).
        cause: String,
        why: String,
    },
    /// The path leaves the lab (a device leading outside, an address no node holds).
    Leave {
        node: String,
        dev: String,
        why: String,
    },
}

impl Hop {
    /// One line in words.
    pub fn text(&self) -> String {
        match self {
            Hop::Route { node, dst, src, iif, kind, dev, gateway, table } => {
                let mut s = format!("{node}: route lookup for {dst}");
                let from = src.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
                if let Some(i) = iif {
                    s.push_str(&format!(" (from {from}, arrived on {i})"));
                }
                s.push_str(&format!(": {kind}"));
                if let Some(g) = gateway {
                    s.push_str(&format!(" via {g}"));
                }
                if let Some(d) = dev {
                    s.push_str(&format!(" dev {d}"));
                }
                if iif.is_none() && kind != "error" {
                    if let Some(a) = src {
                        s.push_str(&format!(" src {a}"));
                    }
                }
                if let Some(t) = table {
                    if *t != 254 && *t != 255 {
                        s.push_str(&format!(" table {t}"));
                    }
                }
                s
            }
            Hop::Link { from, to, via } => format!("{from} -> {to} ({via})"),
            Hop::Bridge { node, bridge, port, how, mac } => {
                let m = mac.as_ref().map(|m| format!(" for {m}")).unwrap_or_default();
                format!("{node}: bridge {bridge} forwards{m} out of {port} ({how})")
            }
            Hop::Tunnel { from, vni, remote, to, how } => {
                let how = how.as_ref().map(|h| format!("; {h}")).unwrap_or_default();
                format!("{from} -> {to} (vxlan vni {vni}, encapsulated to {remote}{how})")
            }
            Hop::Nat { node, what, field, from, to } => format!("{node}: {what}: {field} {from} -> {to}"),
            Hop::Filter { node, chain, why } => format!("{node}: firewall accepts (chain {chain}, {why})"),
            Hop::Arrive { node, dev, next_hop } => format!("{node}: arrives on {dev} ({next_hop} is here)"),
            Hop::Deliver { node, dev } => format!("{node}: delivered locally (on {dev})"),
            Hop::Drop { node, dev, why, .. } => match dev {
                Some(d) => format!("{node}: DROPPED at {d}: {why}"),
                None => format!("{node}: DROPPED: {why}"),
            },
            Hop::Leave { node, dev, why } => format!("{node}: leaves the lab through {dev}: {why}"),
        }
    }
}

/// How the trace ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Delivered,
    Dropped,
    LeftLab,
    Loop,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Dropped => "dropped",
            Verdict::LeftLab => "leaves the lab",
            Verdict::Loop => "routing loop",
        }
    }
}

/// The real probe sent after the lookups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Confirm {
    pub seen: String,
    pub reply: bool,
    /// Whether the probe agrees with the lookups (reply exactly when delivered).
    pub agrees: bool,
}

/// A whole trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceReport {
    pub lab: String,
    pub from: String,
    pub dst: IpAddr,
    /// What was traced: `{"proto": "icmp"}`, `{"proto": "tcp", "port": 80}`.
    #[serde(flatten)]
    pub proto: super::netfilter::Proto,
    pub hops: Vec<Hop>,
    pub verdict: Verdict,
    /// The answer's way back (when the packet was delivered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub back: Vec<Hop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
    /// What may explain a probe that disagrees (netfilter rules the file does not declare).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Readable list of hops.
pub fn render(t: &TraceReport) -> String {
    let what = match t.proto {
        super::netfilter::Proto::Icmp => String::new(),
        super::netfilter::Proto::Tcp(p) => format!(" tcp port {p}"),
        super::netfilter::Proto::Udp(p) => format!(" udp port {p}"),
    };
    let mut s = format!("trace {} -> {}{what} in lab {}\n", t.from, t.dst, t.lab);
    for (i, h) in t.hops.iter().enumerate() {
        s.push_str(&format!("{:>3}. {}\n", i + 1, h.text()));
    }
    s.push_str(&format!("verdict: {}\n", t.verdict.text()));
    if !t.back.is_empty() {
        s.push_str("the answer's way back:\n");
        for (i, h) in t.back.iter().enumerate() {
            s.push_str(&format!("{:>3}. {}\n", i + 1, h.text()));
        }
        if let Some(v) = t.back_verdict {
            s.push_str(&format!("verdict back: {}\n", v.text()));
        }
    }
    if let Some(c) = &t.confirm {
        let agree = if c.agrees { "agrees" } else { "DISAGREES with the lookups" };
        s.push_str(&format!("probe: {} ({agree})\n", c.seen));
    }
    for n in &t.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_in_words() {
        let r = Hop::Route {
            node: "a".into(),
            dst: "10.2.0.2".parse().unwrap(),
            src: Some("10.1.0.2".parse().unwrap()),
            iif: None,
            kind: "unicast".into(),
            dev: Some("eth0".into()),
            gateway: Some("10.1.0.1".parse().unwrap()),
            table: Some(254),
        };
        assert_eq!(r.text(), "a: route lookup for 10.2.0.2: unicast via 10.1.0.1 dev eth0 src 10.1.0.2");
        let f = Hop::Route {
            node: "r".into(),
            dst: "10.2.0.2".parse().unwrap(),
            src: Some("10.1.0.2".parse().unwrap()),
            iif: Some("eth0".into()),
            kind: "unicast".into(),
            dev: Some("eth1".into()),
            gateway: None,
            table: Some(254),
        };
        assert_eq!(f.text(), "r: route lookup for 10.2.0.2 (from 10.1.0.2, arrived on eth0): unicast dev eth1");
        let b = Hop::Bridge { node: "host".into(), bridge: "br0".into(), port: "p2".into(), how: "fdb".into(), mac: Some("02:00:00:00:00:02".into()) };
        assert_eq!(b.text(), "host: bridge br0 forwards for 02:00:00:00:00:02 out of p2 (fdb)");
        let report = TraceReport {
            lab: "l".into(),
            from: "a".into(),
            dst: "10.2.0.2".parse().unwrap(),
            proto: Default::default(),
            hops: vec![r, Hop::Deliver { node: "c".into(), dev: "eth0".into() }],
            verdict: Verdict::Delivered,
            back: vec![],
            back_verdict: None,
            confirm: Some(Confirm { seen: "reply from 10.2.0.2".into(), reply: true, agrees: true }),
            notes: vec![],
        };
        assert_eq!(
            render(&report),
            "trace a -> 10.2.0.2 in lab l\n  1. a: route lookup for 10.2.0.2: unicast via 10.1.0.1 dev eth0 src 10.1.0.2\n  2. c: delivered locally (on eth0)\nverdict: delivered\nprobe: reply from 10.2.0.2 (agrees)\n"
        );
        let j = serde_json::to_value(&report).unwrap();
        assert_eq!(j["hops"][0]["step"], "route");
        assert_eq!(j["verdict"], "delivered");
        assert_eq!((j["proto"].as_str(), j.get("port")), (Some("icmp"), None));
        let tcp = TraceReport { proto: super::super::netfilter::Proto::Tcp(80), ..report };
        assert!(render(&tcp).starts_with("trace a -> 10.2.0.2 tcp port 80 in lab l\n"));
        let j = serde_json::to_value(&tcp).unwrap();
        assert_eq!((j["proto"].as_str(), j["port"].as_u64()), (Some("tcp"), Some(80)));
    }
}
