//! The neighbour (ARP / NDP) tables. Their size limits (gc_thresh1/2/3) are global to the
//! machine and live only in the root namespace, shared by every namespace: 100 nodes on one
//! bridge that all talk to each other need ~9,900 entries, far above the default 1,024. When
//! the table is full the kernel drops packets at the sender ("No buffer space available",
//! counted as `table_fulls`), which a check must report as such, not as unreachability.

use std::io;
use std::path::Path;
use std::time::Duration;

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
    /// The entry's cache info (NDA_CACHEINFO), when the kernel sent it.
    pub cache: Option<CacheInfo>,
}

/// NDA_CACHEINFO: three ages, each counted back from the moment the kernel answered, and the
/// reference count. They are the kernel's raw timestamps: `confirmed` is not always a
/// confirmation (see [`CacheInfo::confirmation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Since the kernel last set the entry's `confirmed` time: a confirmation (an answer to an
    /// ARP/NDP request, or traffic that proves the way works), or, for an entry never confirmed,
    /// the moment it learned its link-layer address backdated by 2 × base_reachable_time.
    pub confirmed: Duration,
    /// Since a packet was last sent through it (moved up to `confirmed` when that is later).
    pub used: Duration,
    /// Since its state or link-layer address last changed.
    pub updated: Duration,
    /// References held on it besides the table's own.
    pub refcnt: u32,
}

/// When the neighbour last confirmed an entry, as far as its cache info (and the entry's
/// greatest possible age) can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// Confirmed this long ago.
    Ago(Duration),
    /// Never confirmed since its link-layer address was learned, this long ago (from the
    /// neighbour's own request or announcement, or set by hand: not an answer).
    Never { learned: Duration },
    /// The cache info fits both: learned `learned` ago and never confirmed, or confirmed
    /// `confirmed` ago at least 2 × base_reachable_time before its last change (possible only
    /// for an entry older than that), and nothing bounds the entry's age enough to tell.
    NeverOr { learned: Duration, confirmed: Duration },
}

/// Rounding allowed between the kernel's three ages: each is truncated to a clock tick
/// separately, and a new entry's backdated `confirmed` is taken a tick or two after its
/// `updated`.
const CACHEINFO_SLACK: Duration = Duration::from_millis(100);

impl CacheInfo {
    /// From the kernel's values, in clock ticks (USER_HZ).
    pub fn from_ticks(confirmed: u32, used: u32, updated: u32, refcnt: u32) -> CacheInfo {
        // SAFETY: sysconf has no preconditions.
        let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
            n if n > 0 => n as u64,
            _ => 100,
        };
        let d = |t: u32| Duration::from_micros(u64::from(t) * 1_000_000 / hz);
        CacheInfo { confirmed: d(confirmed), used: d(used), updated: d(updated), refcnt }
    }

    /// Whether and when the entry was confirmed. `base_reachable`: the device's
    /// base_reachable_time (`net.ipv{4,6}.neigh.DEV.base_reachable_time_ms`, 30 s by default);
    /// `max_age`: how old the entry can be at most (the age of its namespace), when known.
    ///
    /// The kernel never leaves `confirmed` unset: creating an entry (`___neigh_create`), and
    /// giving it a new link-layer address without an answer (`__neigh_update` to a state that is
    /// not NUD_CONNECTED), set `confirmed = now - 2 × base_reachable_time` and `updated = now`.
    /// Only a confirmation sets `confirmed` later, and `updated` only moves forward. So an entry
    /// never confirmed since it learned its address shows `confirmed ≥ updated + 2 ×
    /// base_reachable_time`, and was learned `confirmed - 2 × base_reachable_time` ago. An
    /// entry that shows less was confirmed, `confirmed` ago. One that shows that much may
    /// still have been confirmed, if a change came 2 × base_reachable_time or more after its
    /// confirmation (reachable, then stale for minutes, then used again: delay): the entry's
    /// greatest possible age decides: a confirmation cannot be older than the entry, nor an
    /// entry older than its namespace, so `confirmed` beyond the namespace's age is the
    /// backdate. Within it, both readings fit. `used` and `refcnt` cannot tell the two apart: a send
    /// moves `used` whether or not the entry was confirmed, and nothing about confirmation
    /// touches the reference count.
    pub fn confirmation(&self, base_reachable: Duration, max_age: Option<Duration>) -> Confirmation {
        let backdate = base_reachable * 2;
        if self.confirmed + CACHEINFO_SLACK < self.updated + backdate {
            return Confirmation::Ago(self.confirmed);
        }
        let learned = self.confirmed.saturating_sub(backdate);
        match max_age {
            // Confirmed before the entry could exist: it never was.
            Some(m) if self.confirmed > m + CACHEINFO_SLACK => Confirmation::Never { learned },
            _ => Confirmation::NeverOr { learned, confirmed: self.confirmed },
        }
    }
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
            let cache = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::CacheInfo(c) => Some(CacheInfo::from_ticks(c.confirmed, c.used, c.updated, c.refcnt)),
                _ => None,
            });
            Some(Entry { state, cache })
        }
        _ => None,
    })
}

/// Where the socket's namespace has neighbour entries: (device, address) of each, ARP and NDP.
pub fn keys(nl: &mut crate::kernel::nl::Netlink) -> Result<std::collections::HashSet<(u32, std::net::IpAddr)>, crate::kernel::nl::KernelError> {
    use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
    use netlink_packet_route::RouteNetlinkMessage;
    let mut out = std::collections::HashSet::new();
    nl.dump_each(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()), |m| {
        if let RouteNetlinkMessage::NewNeighbour(n) = m {
            let addr = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(std::net::IpAddr::V4(*a)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(std::net::IpAddr::V6(*a)),
                _ => None,
            });
            if let Some(a) = addr {
                out.insert((n.header.ifindex, a));
            }
        }
    })?;
    Ok(out)
}

/// The base_reachable_time of a device's neighbour parameters, read in the calling thread's
/// namespace.
pub fn base_reachable_time(t: Table, dev: &str) -> io::Result<Duration> {
    let family = match t {
        Table::Arp => "ipv4",
        Table::Ndisc => "ipv6",
    };
    let text = crate::kernel::sysctl::read(&format!("net/{family}/neigh/{dev}/base_reachable_time_ms"))?;
    text.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("base_reachable_time_ms of {dev}: not a number")))
}

/// The kernel's default base_reachable_time (ARP and NDP alike).
pub const DEFAULT_BASE_REACHABLE: Duration = Duration::from_secs(30);

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

    fn ci(confirmed: u64, used: u64, updated: u64) -> CacheInfo {
        let ms = Duration::from_millis;
        CacheInfo { confirmed: ms(confirmed), used: ms(used), updated: ms(updated), refcnt: 1 }
    }

    const BRT: Duration = Duration::from_secs(30);

    #[test]
    fn cache_info_is_read_in_clock_ticks() {
        // `ip -s neigh` showed this entry as "used 0/60/0 ... DELAY": ticks of 1/100 s.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        assert_eq!(hz, 100, "USER_HZ");
        assert_eq!(CacheInfo::from_ticks(6080, 3, 12, 2), ci(60_800, 30, 120).with_refcnt(2));
    }

    impl CacheInfo {
        fn with_refcnt(mut self, r: u32) -> CacheInfo {
            self.refcnt = r;
            self
        }
    }

    #[test]
    fn a_new_entry_backdated_by_the_kernel_was_never_confirmed() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // Learned from the neighbour's own ARP request 0.8 s ago, then used (stale -> delay):
        // confirmed = learned - 60 s, in a namespace 3 s old.
        assert_eq!(ci(60_800, 0, 0).confirmation(BRT, Some(s(3))), Confirmation::Never { learned: ms(800) });
        // Just created: `confirmed` is taken a tick after `updated` (and each age is truncated).
        assert_eq!(ci(59_990, 10, 0).confirmation(BRT, Some(s(1))), Confirmation::Never { learned: Duration::ZERO });
        // Still stale, not used since it was learned 5 s ago.
        assert_eq!(ci(65_000, 5_000, 5_000).confirmation(BRT, Some(s(8))), Confirmation::Never { learned: s(5) });
        // The device's own base_reachable_time counts: 10 s gives a 20 s backdate.
        assert_eq!(ci(21_000, 0, 500).confirmation(s(10), Some(s(4))), Confirmation::Never { learned: s(1) });
    }

    #[test]
    fn a_confirmed_entry_keeps_its_real_age() {
        let s = Duration::from_secs;
        // Answered 2 s ago (reachable): confirmed and updated together.
        assert_eq!(ci(2_000, 100, 2_000).confirmation(BRT, Some(s(10))), Confirmation::Ago(s(2)));
        // Confirmed 40 s ago, went stale 15 s later, used just now (delay): less than 60 s apart.
        assert_eq!(ci(40_000, 0, 0).confirmation(BRT, Some(s(100))), Confirmation::Ago(s(40)));
        // Without an age bound the same holds: the cache info alone proves the confirmation.
        assert_eq!(ci(40_000, 0, 0).confirmation(BRT, None), Confirmation::Ago(s(40)));
        // Confirmed 59 s before its last change (delay, now): still within the backdate's slack.
        assert_eq!(ci(59_800, 0, 0).confirmation(BRT, Some(s(600))), Confirmation::Ago(Duration::from_millis(59_800)));
    }

    #[test]
    fn what_the_cache_info_cannot_tell_stays_open() {
        let s = Duration::from_secs;
        // Confirmed 5 min ago, stale since, used now (delay): in a namespace 10 min old this
        // fits a backdate as well as a confirmation.
        assert_eq!(ci(300_000, 0, 0).confirmation(BRT, Some(s(600))), Confirmation::NeverOr { learned: s(240), confirmed: s(300) });
        // The machine's own namespace: no age bound.
        assert_eq!(
            ci(60_800, 0, 0).confirmation(BRT, None),
            Confirmation::NeverOr { learned: Duration::from_millis(800), confirmed: Duration::from_millis(60_800) }
        );
    }
}
