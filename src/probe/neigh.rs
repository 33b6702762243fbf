//! The neighbour (ARP / NDP) tables. Their size limits (gc_thresh1/2/3) are global to the
//! machine and live only in the root namespace, shared by every namespace: 100 nodes on one
//! bridge that all talk to each other need ~9,900 entries, far above the default 1,024. When
//! the table is full the kernel drops packets at the sender ("No buffer space available",
//! counted as `table_fulls`), which a check must report as such, not as unreachability.

use std::io;
use std::path::Path;

use serde::Serialize;

mod raise;
pub use raise::{hold_for_lab, machine_limits, raise, recover, release_lab, Outcome, Raised};

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// IPv4 ARP.
    Arp,
    /// IPv6 neighbour discovery.
    Ndisc,
}

impl Table {
    pub(crate) fn sysctl_dir(self) -> &'static str {
        match self {
            Table::Arp => "/proc/sys/net/ipv4/neigh/default",
            Table::Ndisc => "/proc/sys/net/ipv6/neigh/default",
        }
    }
    fn stat_file(self) -> &'static str {
        match self {
            Table::Arp => "/proc/net/stat/arp_cache",
            Table::Ndisc => "/proc/net/stat/ndisc_cache",
        }
    }
    /// The sysctl key of a threshold (1..=3).
    pub fn key(self, n: u8) -> String {
        match self {
            Table::Arp => format!("net.ipv4.neigh.default.gc_thresh{n}"),
            Table::Ndisc => format!("net.ipv6.neigh.default.gc_thresh{n}"),
        }
    }
}

/// The three limits of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub gc_thresh1: u64,
    pub gc_thresh2: u64,
    pub gc_thresh3: u64,
}

/// Reads the limits. They exist only in the root namespace (the calling thread's must be it).
pub fn limits(t: Table) -> io::Result<Limits> {
    let r = |n: u8| -> io::Result<u64> {
        let p = format!("{}/gc_thresh{n}", t.sysctl_dir());
        let s = std::fs::read_to_string(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(e.kind(), format!("{p} is missing: the neighbour table limits exist only in the machine's root network namespace"))
            } else {
                e
            }
        })?;
        s.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{p}: not a number")))
    };
    Ok(Limits { gc_thresh1: r(1)?, gc_thresh2: r(2)?, gc_thresh3: r(3)? })
}

/// Limits under which `entries` fit with room to spare (thresh3 = 2 × entries, rounded up).
pub fn sized_for(entries: usize) -> Limits {
    let t3 = ((entries as u64) * 2).next_power_of_two().max(1024);
    Limits { gc_thresh1: t3 / 4, gc_thresh2: t3 / 2, gc_thresh3: t3 }
}

/// Table-wide counters (the same for every namespace: the table is global).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries in the table now.
    pub entries: u64,
    /// Times an entry could not be created because the table was full (since boot).
    pub table_fulls: u64,
}

/// Reads /proc/net/stat/{arp,ndisc}_cache (hex, one row per CPU; `entries` is global).
pub fn stats(t: Table) -> io::Result<Stats> {
    parse_stats(&std::fs::read_to_string(t.stat_file())?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{}: unexpected format", t.stat_file())))
}

/// Parses the stat file's text.
pub fn parse_stats(text: &str) -> Option<Stats> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let ie = head.iter().position(|h| *h == "entries")?;
    let it = head.iter().position(|h| *h == "table_fulls")?;
    let mut s = Stats::default();
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() <= ie.max(it) {
            continue;
        }
        s.entries = u64::from_str_radix(cols[ie], 16).ok()?;
        s.table_fulls += u64::from_str_radix(cols[it], 16).ok()?;
    }
    Some(s)
}

/// What the tables looked like around a run: whether it hit the limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Watch {
    pub table: Option<Table>,
    pub limits: Limits,
    pub before: Stats,
    pub after: Stats,
}

impl Watch {
    /// Starts watching a table (None when its counters cannot be read).
    pub fn start(t: Table) -> Option<Watch> {
        let before = stats(t).ok()?;
        let limits = limits(t).unwrap_or_default();
        Some(Watch { table: Some(t), limits, before, after: before })
    }
    pub fn finish(&mut self) {
        if let Some(t) = self.table {
            if let Ok(s) = stats(t) {
                self.after = s;
            }
        }
    }
    /// How many entries could not be created during the run.
    pub fn overflows(&self) -> u64 {
        self.after.table_fulls.saturating_sub(self.before.table_fulls)
    }
    /// A sentence for reports when the table overflowed.
    pub fn explain(&self) -> Option<String> {
        let t = self.table?;
        if self.overflows() == 0 {
            return None;
        }
        let name = match t {
            Table::Arp => "ARP",
            Table::Ndisc => "IPv6 neighbour",
        };
        Some(format!(
            "the machine's {name} table overflowed {} times during the check ({} entries, limit gc_thresh3={}; the limit is global to all namespaces): packets were dropped at the sender; raise {} (and gc_thresh2) in the root namespace",
            self.overflows(),
            self.after.entries.max(self.before.entries),
            self.limits.gc_thresh3,
            t.key(3)
        ))
    }
    /// Free entries before the run.
    pub fn headroom(&self) -> u64 {
        self.limits.gc_thresh3.saturating_sub(self.before.entries)
    }
}

/// One neighbour entry as the kernel has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `reachable`, `stale`, `delay`, `probe`, `incomplete`, `failed`, `permanent`, `noarp`, ...
    pub state: String,
    /// How long ago the neighbour last confirmed it (an ARP/NDP answer, or traffic that proves
    /// the way works), from the entry's cache info.
    pub confirmed_ago: Option<std::time::Duration>,
}

/// The neighbour entry for `addr` on device `ifindex`, asked of the socket's namespace; `None`
/// when there is none.
pub fn entry(nl: &mut crate::kernel::nl::Netlink, ifindex: u32, addr: std::net::IpAddr) -> Option<Entry> {
    use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    let mut m = NeighbourMessage::default();
    m.header.family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.ifindex = ifindex;
    m.attributes.push(NeighbourAttribute::Destination(match addr {
        std::net::IpAddr::V4(a) => NeighbourAddress::Inet(a),
        std::net::IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    let reply = nl.request(RouteNetlinkMessage::GetNeighbour(m), 0).ok()?;
    reply.into_iter().find_map(|r| match r {
        RouteNetlinkMessage::NewNeighbour(n) => {
            let state = match n.header.state {
                NeighbourState::Incomplete => "incomplete".to_string(),
                NeighbourState::Reachable => "reachable".into(),
                NeighbourState::Stale => "stale".into(),
                NeighbourState::Delay => "delay".into(),
                NeighbourState::Probe => "probe".into(),
                NeighbourState::Failed => "failed".into(),
                NeighbourState::Noarp => "noarp".into(),
                NeighbourState::Permanent => "permanent".into(),
                other => format!("{other:?}").to_lowercase(),
            };
            // NDA_CACHEINFO counts in USER_HZ (100 per second).
            let confirmed_ago = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::CacheInfo(c) => Some(std::time::Duration::from_millis(u64::from(c.confirmed) * 10)),
                _ => None,
            });
            Some(Entry { state, confirmed_ago })
        }
        _ => None,
    })
}

/// The state of one neighbour entry (`reachable`, `stale`, `incomplete`, `failed`, ...), asked of
/// the socket's namespace; `None` when there is no entry.
pub fn entry_state(nl: &mut crate::kernel::nl::Netlink, ifindex: u32, addr: std::net::IpAddr) -> Option<String> {
    entry(nl, ifindex, addr).map(|e| e.state)
}

/// Whether the calling thread is in the namespace holding the limits.
pub fn limits_visible() -> bool {
    Path::new("/proc/sys/net/ipv4/neigh/default/gc_thresh3").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_sum_table_fulls_over_cpus() {
        let text =
            "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000400 00000012 00000010 00000000   0000006a 00000004 00000000   00000000         00000000         0000005e         00000000       00000000            00000003
00000400 00000018 00000018 00000000   0000020b 00000010 00000000   00000000         00000000         00000000         00000000       00000000            0000000a
";
        assert_eq!(parse_stats(text), Some(Stats { entries: 1024, table_fulls: 13 }));
        assert_eq!(parse_stats("garbage"), None);
    }

    #[test]
    fn overflow_is_explained_with_the_limit() {
        let w = Watch {
            table: Some(Table::Arp),
            limits: Limits { gc_thresh1: 128, gc_thresh2: 512, gc_thresh3: 1024 },
            before: Stats { entries: 10, table_fulls: 5 },
            after: Stats { entries: 1024, table_fulls: 105 },
        };
        assert_eq!(w.overflows(), 100);
        let e = w.explain().unwrap();
        assert!(e.contains("ARP table overflowed 100 times"), "{e}");
        assert!(e.contains("gc_thresh3=1024"), "{e}");
        assert!(e.contains("net.ipv4.neigh.default.gc_thresh3"), "{e}");
        assert_eq!(w.headroom(), 1014);
        let quiet = Watch { after: w.before, ..w };
        assert_eq!(quiet.explain(), None);
    }
}
