//! Traffic leaving the lab without masquerade: a node that forwards packets from private
//! subnets out of its default route (towards a gateway no lab node holds, or out of a device with
//! only public addresses) needs source NAT, or the answers have no way back.

use std::net::IpAddr;

use super::{Ctx, Severity};

/// Private, shared, link-local and loopback ranges (RFC 1918, 6598, 3927, 4193).
pub fn is_private(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            o[0] == 10
                || (o[0] == 172 && (16..32).contains(&o[1]))
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 169 && o[1] == 254)
                || o[0] == 127
        }
        IpAddr::V6(v) => (v.segments()[0] & 0xfe00) == 0xfc00 || (v.segments()[0] & 0xffc0) == 0xfe80 || v.is_loopback(),
    }
}

/// Whether the node's firewall does source NAT: `Some(true/false)`, `None` when no tool could tell.
fn has_snat(ctx: &Ctx, node: &str) -> Option<bool> {
    let ns = ctx.rl.model().netns_name(node);
    let run = |prog: &str, args: &[&str]| -> Option<String> {
        let mut c = crate::exec::command_in(ns.as_deref(), node, prog).ok()?;
        let out = c.args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    };
    let mut known = false;
    if let Some(t) = run("nft", &["list", "ruleset"]) {
        known = true;
        if t.contains("masquerade") || t.contains("snat ") {
            return Some(true);
        }
    }
    if let Some(t) = run("iptables-save", &["-t", "nat"]) {
        known = true;
        if t.contains("MASQUERADE") || t.contains("SNAT") {
            return Some(true);
        }
    }
    known.then_some(false)
}

pub(super) fn check(ctx: &mut Ctx) {
    let view = ctx.view;
    for (n, v) in &view.nodes {
        if view.sysctl(n, "net.ipv4.ip_forward") != Some("1") {
            continue;
        }
        for r in v.ns.routes.iter().filter(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() && r.table == 254) {
            let Some(oif) = r.oif else { continue };
            let dev = v.ns.name_of(oif).unwrap_or("?").to_string();
            let gw_outside = r.via.map(|g| view.holders(g).is_empty()).unwrap_or(true);
            let out_addrs: Vec<IpAddr> = v.ns.addrs_of(oif).map(|a| a.addr.addr()).filter(|a| a.is_ipv4()).collect();
            let public_side = !out_addrs.is_empty() && out_addrs.iter().all(|a| !is_private(*a));
            if !(gw_outside || public_side) {
                continue;
            }
            let private: Vec<String> =
                v.ns.addrs
                    .iter()
                    .filter(|a| a.ifindex != oif && a.addr.addr().is_ipv4() && is_private(a.addr.addr()) && !a.addr.addr().is_loopback())
                    .map(|a| format!("{} on {}", a.addr.trunc(), v.ns.name_of(a.ifindex).unwrap_or("?")))
                    .collect();
            if private.is_empty() {
                continue;
            }
            let why = if public_side {
                format!("{dev} has public addressing")
            } else {
                format!("its gateway {} is not in the lab", r.via.map(|g| g.to_string()).unwrap_or_default())
            };
            let path = ctx.sysctl_path(n, &["net.ipv4.ip_forward"]);
            match has_snat(ctx, n) {
                Some(true) => {}
                Some(false) => {
                    let f = ctx.finding(
                        "missing-masquerade",
                        Severity::Error,
                        n,
                        Some(&dev),
                        format!("{n} forwards traffic from private subnets ({}) out of {dev} ({why}) without masquerade: answers to private addresses have no way back", private.join(", ")),
                        format!("add source NAT on {n} for traffic leaving through {dev}: `nft add table ip nat; nft add chain ip nat post '{{ type nat hook postrouting priority 100; }}'; nft add rule ip nat post oifname {dev} masquerade`"),
                        path.as_deref(),
                    );
                    ctx.add(f);
                }
                None => {
                    let f = ctx.finding(
                        "missing-masquerade",
                        Severity::Warning,
                        n,
                        Some(&dev),
                        format!("{n} forwards traffic from private subnets ({}) out of {dev} ({why}); whether it masquerades could not be read (neither nft nor iptables-save is installed)", private.join(", ")),
                        "install nftables to let doctor read the NAT rules, and make sure the node masquerades traffic leaving the lab".into(),
                        path.as_deref(),
                    );
                    ctx.add(f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for a in ["10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1", "100.64.0.1", "fd00::1", "fe80::1"] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in ["203.0.113.1", "172.32.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }
}
