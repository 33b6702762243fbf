//! Running a check: probes built from the model, run from inside the nodes, answers folded
//! into a report.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::matrix;
use super::report::{echo_words, CheckReport, ExpectResult, MatrixReport, PairResult, TableOverflow, TargetResult};
use super::CheckOptions;
use crate::error::{Error, Result};
use crate::inspect::RunningLab;
use crate::model::expect::{Expect, Expected, Proto};
use crate::probe::echo::{self, EchoOptions, EchoOutcome, EchoProbe};
use crate::probe::neigh::{self, Confirmation, Table, Watch};
use crate::probe::ns;
use crate::probe::port::{self, Listen, PortOutcome};
use crate::probe::route::{self, Lookup};

fn watches(v4: bool, v6: bool) -> Vec<Watch> {
    let mut w = Vec::new();
    if v4 {
        w.extend(Watch::start(Table::Arp));
    }
    if v6 {
        w.extend(Watch::start(Table::Ndisc));
    }
    w
}

/// Notes about the neighbour tables: too little room before, overflow after.
fn neighbour_notes(w: &[Watch], needed: u64, before: bool) -> Vec<String> {
    let mut notes = Vec::new();
    for x in w {
        if before {
            if needed > x.headroom() && x.limits.gc_thresh3 > 0 {
                notes.push(format!(
                    "these probes need about {needed} {} neighbour entries but the machine-wide table has room for {} (gc_thresh3={}, {} in use): expect overflows; raise {} in the root namespace",
                    if x.table == Some(Table::Arp) { "IPv4" } else { "IPv6" },
                    x.headroom(),
                    x.limits.gc_thresh3,
                    x.before.entries,
                    x.table.map(|t| t.key(3)).unwrap_or_default()
                ));
            }
        } else if let Some(e) = x.explain() {
            notes.push(e);
        }
    }
    notes
}

fn overflowed(w: &[Watch], a: &IpAddr) -> bool {
    w.iter().any(|x| x.overflows() > 0 && (x.table == Some(Table::Arp)) == a.is_ipv4())
}

/// Whether the neighbour table of `a`'s family overflowed, as `echo_seen` words it.
fn table_overflow(w: &[Watch], a: &IpAddr) -> TableOverflow {
    if overflowed(w, a) {
        TableOverflow::Yes
    } else if w.iter().any(|x| (x.table == Some(Table::Arp)) == a.is_ipv4()) {
        TableOverflow::No
    } else {
        TableOverflow::Unknown
    }
}

/// At most this many timeouts get a closer look.
const EXPLAIN_TIMEOUTS: usize = 64;

/// Why a matrix has no pair to probe, from the lab's declared addresses.
fn no_pairs_reason(lab: &crate::model::Lab) -> String {
    let n = lab.nodes.len();
    let with: Vec<(&String, bool, bool)> = lab
        .nodes
        .iter()
        .filter_map(|(name, node)| {
            let addrs: Vec<IpAddr> = node.interfaces.values().flat_map(|i| i.addresses.iter().map(|a| a.addr())).collect();
            (!addrs.is_empty()).then(|| (name, addrs.iter().any(IpAddr::is_ipv4), addrs.iter().any(IpAddr::is_ipv6)))
        })
        .collect();
    let plural = |k: usize, one: &str, many: &str| if k == 1 { one.to_string() } else { many.to_string() };
    match with.as_slice() {
        [] => format!("none of the lab's {n} {} declares an address", plural(n, "node", "nodes")),
        [(only, _, _)] if n == 1 => format!("the lab has a single node ({only}), and the matrix probes from one node to another"),
        [(only, _, _)] => format!(
            "only node {only} declares addresses ({}), and the matrix probes from one node to another",
            if n == 2 { "the other node declares none".to_string() } else { format!("the other {} nodes declare none", n - 1) }
        ),
        many => {
            let fam = |v4: bool, v6: bool| match (v4, v6) {
                (true, true) => "IPv4 and IPv6",
                (true, false) => "IPv4 only",
                _ => "IPv6 only",
            };
            let list: Vec<String> = many.iter().map(|(name, v4, v6)| format!("{name}: {}", fam(*v4, *v6))).collect();
            format!("the nodes with addresses share no address family ({}), so none can probe another", list.join(", "))
        }
    }
}

/// Why a matrix that probed nothing fails: a line of `failures()`.
fn nothing_probed(rl: &RunningLab) -> String {
    let mut why = format!("nothing was probed: {}, so the check proves nothing", no_pairs_reason(rl.model()));
    if let Some(f) = rl.state.file.as_ref().filter(|_| !rl.from_file) {
        why.push_str(&format!(" (the lab's record no longer matches {}: `vnet status {}` shows what the kernel has)", f.display(), rl.name()));
    }
    why.push_str("; declare what to check under `expect:` (a `route` expectation needs a single node)");
    why
}

/// Why a probe may have timed out, from the kernel's state in the source node: the next hop's
/// neighbour entry tells whether the link layer answered at all. An entry only shows an answer
/// when it was confirmed since `since` (the probes' start): an older one (reachable a moment
/// ago, stale, delay) is what the cache remembers, not proof that anything holds the address now.
fn why_timeout(rl: &RunningLab, from: &str, dst: IpAddr, since: Instant, before: &Before) -> Option<String> {
    let (a, dev) = rl.route_lookup(from, Lookup::to(dst)).ok()?.ok()?;
    let hop = a.gateway.unwrap_or(dst);
    let dev = dev?;
    let oif = a.oif?;
    let proto = if hop.is_ipv4() { "ARP" } else { "neighbour discovery" };
    // A device without carrier, or without a link layer, has no neighbour entry to speak of.
    if let Ok(Some((link, resolves))) = rl.device(from, oif) {
        if let Some(why) = explain_device(&link, resolves, proto) {
            return Some(why);
        }
    }
    let entry = rl.neighbour_entry(from, oif, hop).ok()?;
    // The entry's ages are counted back from now: so is the window.
    let window = since.elapsed();
    let seen = entry.as_ref().map(|e| {
        let table = if hop.is_ipv4() { Table::Arp } else { Table::Ndisc };
        // No confirmation is older than the entry: made during the check, or at most as old as
        // its namespace.
        let max_age = match (before.max_age(from, oif, hop), namespace_age(rl, from)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (e.state.as_str(), e.cache.map(|c| c.confirmation(base_reachable(rl, from, table, &dev), max_age)))
    });
    Some(explain_neighbour(seen, hop, &dev, proto, window))
}

/// Why a probe sent out of `link` timed out, when the device itself says: it has no carrier
/// (what is sent through it is dropped), or no link layer (IFF_NOARP: a tun, a point-to-point
/// tunnel; no ARP/NDP entry ever shows, and the packet left without one). `None`: the
/// neighbour entry tells more.
fn explain_device(link: &crate::observed::ObservedLink, resolves: bool, proto: &str) -> Option<String> {
    let dev = &link.name;
    let kind = link.kind.as_deref();
    if !link.carrier {
        let cause = match kind {
            Some(k @ ("tun" | "tap")) => format!(" (a {k} device no program has open)"),
            Some("veth") => " (its veth peer is down)".into(),
            _ => String::new(),
        };
        return Some(format!("{dev} has no carrier{cause}: what is sent through it is dropped"));
    }
    if resolves {
        return None;
    }
    Some(match kind {
        Some("tun") => format!("{dev} is a tun device (no link layer, no {proto}): the packet went to the program that has it open, and no answer came back"),
        Some(k) => format!("{dev} has no link layer (a {k} device, no {proto}): the packet was sent through it, and no answer came back"),
        None => format!("{dev} has no link layer (no {proto}): the packet was sent through it, and no answer came back"),
    })
}

/// The neighbour entries the probing nodes had before the probes. An entry not among them was
/// made during the check, so it is no older than this snapshot: a bound on its age that tells
/// an entry never confirmed (whose `confirmed` the kernel backdates by 2 ×
/// base_reachable_time) from one confirmed long ago, whatever the lab's age.
struct Before {
    at: Instant,
    /// node -> (device, address) of its entries; nodes that could not be read are left out.
    keys: BTreeMap<String, std::collections::HashSet<(u32, IpAddr)>>,
}

impl Before {
    /// Taken for at most `EXPLAIN_TIMEOUTS` nodes (a netlink socket each, as the explanations
    /// use); beyond that, no node is bounded this way.
    fn take(rl: &RunningLab, nodes: &[String]) -> Before {
        let at = Instant::now();
        let keys = if nodes.len() > EXPLAIN_TIMEOUTS {
            BTreeMap::new()
        } else {
            nodes.iter().filter(|n| !rl.is_missing(n)).filter_map(|n| Some((n.clone(), rl.neighbour_keys(n).ok()?))).collect()
        };
        Before { at, keys }
    }

    /// How old `node`'s entry for `addr` on `ifindex` can be at most: since the snapshot, when
    /// the entry was not in it.
    fn max_age(&self, node: &str, ifindex: u32, addr: IpAddr) -> Option<std::time::Duration> {
        self.keys.get(node).filter(|k| !k.contains(&(ifindex, addr))).map(|_| self.at.elapsed())
    }
}

/// The base_reachable_time of a node's device (the kernel's default when it cannot be read).
fn base_reachable(rl: &RunningLab, node: &str, table: Table, dev: &str) -> std::time::Duration {
    rl.fd(node)
        .ok()
        .and_then(|fd| ns::in_one(Some(fd), || neigh::base_reachable_time(table, dev)).ok())
        .and_then(|r| r.ok())
        .unwrap_or(neigh::DEFAULT_BASE_REACHABLE)
}

/// How long a node's namespace has existed, for a namespace vnet created (named after the
/// lab): no neighbour entry in it can be older. `None` for the machine's own namespace.
fn namespace_age(rl: &RunningLab, node: &str) -> Option<std::time::Duration> {
    use std::os::fd::AsFd;
    rl.model().netns_name(node)?;
    ns::age(rl.fd(node).ok()?.as_fd()).ok()
}

/// "a" or "an" before a word.
fn article(word: &str) -> &'static str {
    if word.starts_with(['A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The words for a neighbour entry seen after a timeout: its state and what its cache info
/// says about its last confirmation; `window`: how long the probes had been running when the
/// entry was read.
fn explain_neighbour(entry: Option<(&str, Option<Confirmation>)>, hop: IpAddr, dev: &str, proto: &str, window: std::time::Duration) -> String {
    let Some((state, conf)) = entry else { return format!("no {proto} entry for {hop} on {dev}") };
    let secs = |d: std::time::Duration| format!("{:.1} s", d.as_secs_f64());
    let a = article(proto);
    match (state, conf) {
        ("incomplete" | "failed", _) => format!("no {proto} answer from {hop} on {dev}"),
        ("permanent" | "noarp", _) => format!("{hop} has a {state} neighbour entry on {dev}: the packet or its answer is lost further on"),
        (s, Some(Confirmation::Ago(c))) if c <= window => {
            format!("{hop} answers {proto} on {dev} ({s}, confirmed during the check): the packet or its answer is lost further on")
        }
        (s, Some(Confirmation::Ago(c))) => format!(
            "a cached {proto} entry for {hop} on {dev} exists (state {s}, last confirmed {} ago), but nothing confirmed it during the check: {hop} may be gone",
            secs(c)
        ),
        // The address came with the neighbour's own request or announcement, not an answer.
        (s, Some(Confirmation::Never { learned })) if learned <= window => format!(
            "{proto} from {hop} reached {dev} during the check (its link-layer address was learned {} ago, state {s}), but no answer from {hop} ever confirmed it: what is sent to {hop}, or its answers, are lost",
            secs(learned)
        ),
        // Learned before the check, never answered since: the way to it, or back, is broken
        // (or it left since it last spoke).
        (s, Some(Confirmation::Never { learned })) => format!(
            "a cached {proto} entry for {hop} on {dev} (state {s}) was learned {} ago, before the check, from {hop}'s own {proto}, and never confirmed by an answer, nor during the check: what is sent to {hop}, or its answers, are lost, or {hop} is gone",
            secs(learned)
        ),
        (s, Some(Confirmation::NeverOr { learned, confirmed })) => format!(
            "{a} {proto} entry for {hop} on {dev} exists (state {s}: learned {} ago and never confirmed, or last confirmed {} ago), but nothing confirmed it during the check",
            secs(learned),
            secs(confirmed)
        ),
        (s, None) => format!("{a} {proto} entry for {hop} on {dev} exists (state {s}), but nothing confirmed it during the check"),
    }
}

fn echo_opts(opts: &CheckOptions) -> EchoOptions {
    EchoOptions { timeout: opts.timeout, threads: opts.threads, ..Default::default() }
}

/// Matrices above this many probes show progress (a 50-node lab's matrix is 2,450).
const PROGRESS_PROBES: usize = 2_500;

/// A progress bar fed by the probes' counter from a thread of its own (the probe workers only
/// count); nothing when not wanted or stderr is not a terminal.
struct Progress {
    finished: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    bar: Option<indicatif::ProgressBar>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    lab: String,
    waves: usize,
}

impl Progress {
    fn start(wanted: bool, lab: &str, total: usize, waves: usize) -> Progress {
        use std::io::IsTerminal;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let finished = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut p = Progress { finished, bar: None, stop, ticker: None, lab: lab.to_string(), waves };
        if !wanted || !std::io::stderr().is_terminal() {
            return p;
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} checking {msg} [{bar:30}] {pos}/{len} probes, {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(lab.to_string());
        let (b, f, s) = (bar.clone(), p.finished.clone(), p.stop.clone());
        p.ticker = Some(std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                b.set_position(f.load(Ordering::Relaxed) as u64);
                // Woken early by the drop: the check does not wait out a tick.
                std::thread::park_timeout(std::time::Duration::from_millis(100));
            }
        }));
        p.bar = Some(bar);
        p
    }

    fn wave(&self, k: usize) {
        if let (Some(b), true) = (&self.bar, self.waves > 1) {
            b.set_message(format!("{}, wave {}/{}", self.lab, k + 1, self.waves));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The full matrix among all declared addresses.
pub(super) fn matrix(rl: &RunningLab, opts: &CheckOptions) -> Result<CheckReport> {
    let started = Instant::now();
    let lab = rl.model();
    let all_pairs = matrix::pairs(lab);
    // Pairs with a node whose namespace is gone are not probed: they fail with that reason.
    let gone = |p: &matrix::Pair| rl.missing_reason(&p.from).or_else(|| rl.missing_reason(&p.to));
    let skipped: Vec<Option<String>> = all_pairs.iter().map(gone).collect();
    let pairs: Vec<matrix::Pair> = all_pairs.iter().zip(&skipped).filter(|(_, s)| s.is_none()).map(|(p, _)| p.clone()).collect();
    let order: BTreeMap<&str, usize> = lab.nodes.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut sources: Vec<String> = Vec::new();
    let mut src_idx: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &pairs {
        if !src_idx.contains_key(p.from.as_str()) {
            src_idx.insert(&p.from, sources.len());
            sources.push(p.from.clone());
        }
    }
    // First contact between two nodes costs a broadcast neighbour solicitation; the answering
    // node learns the asker on the way. Probing a->b for a before b first, then b->a, lets the
    // second half ride on entries the first half created.
    let probes: Vec<EchoProbe> = pairs
        .iter()
        .map(|p| EchoProbe {
            src: src_idx[p.from.as_str()],
            dst: p.addr,
            size: None,
            df: false,
            phase: u8::from(order[p.from.as_str()] > order[p.to.as_str()]),
        })
        .collect();
    let v4 = pairs.iter().filter(|p| p.addr.is_ipv4()).count() as u64;
    let v6 = pairs.len() as u64 - v4;
    let mut w = watches(v4 > 0, v6 > 0);
    let mut notes = Vec::new();
    // The machine-wide neighbour table bounds how many pairs can talk at once: beyond its room,
    // probe in waves and clear the lab's entries between them.
    let room = w.iter().map(|x| x.headroom() * 4 / 5).min().unwrap_or(u64::MAX);
    let budget = opts.neighbour_budget.unwrap_or(room).max(2);
    let mut per_source = vec![0usize; sources.len()];
    for p in &probes {
        per_source[p.src] += 1;
    }
    // All at once, every node ends up with an entry for every node it probes or is probed by:
    // one entry per probe. Waves need up to two (source and destination side).
    let waves = if probes.len() as u64 > budget { matrix::waves(&per_source, budget) } else { vec![(0..sources.len()).collect()] };
    if waves.len() > 1 {
        notes.push(format!(
            "the matrix needs about {} neighbour entries but {budget} are available (the ARP/NDP table is machine-wide): probed in {} waves, clearing the lab's neighbour entries between them (raise net.ipv4.neigh.default.gc_thresh3 in the root namespace to probe in one go)",
            probes.len(),
            waves.len()
        ));
    }
    let before = Before::take(rl, &sources);
    let t0 = Instant::now();
    let fds = rl.borrowed(&sources)?;
    let mut results = vec![None; probes.len()];
    let progress = Progress::start(opts.progress && probes.len() > PROGRESS_PROBES, rl.name(), probes.len(), waves.len());
    let mut eopts = echo_opts(opts);
    eopts.finished = Some(progress.finished.clone());
    for (k, wave) in waves.iter().enumerate() {
        let in_wave: std::collections::HashSet<usize> = wave.iter().copied().collect();
        let idx: Vec<usize> = (0..probes.len()).filter(|&g| in_wave.contains(&probes[g].src)).collect();
        let subset: Vec<EchoProbe> = idx.iter().map(|&g| probes[g].clone()).collect();
        progress.wave(k);
        let got = echo::run(&fds, &subset, &eopts).map_err(|e| Error::io("probe", e))?;
        for (g, r) in idx.into_iter().zip(got) {
            results[g] = Some(r);
        }
        if k + 1 < waves.len() {
            for n in lab.nodes.keys().filter(|n| !rl.is_missing(n)) {
                rl.flush_neighbours(n)?;
            }
        }
    }
    drop(progress);
    let results: Vec<echo::EchoResult> = results.into_iter().map(|r| r.expect("every probe ran in a wave")).collect();
    let matrix_s = t0.elapsed().as_secs_f64();
    for x in w.iter_mut() {
        x.finish();
    }
    if waves.len() == 1 {
        for x in &w {
            let needed = if x.table == Some(Table::Arp) { v4 } else { v6 };
            notes.extend(neighbour_notes(std::slice::from_ref(x), needed, true));
        }
    }
    notes.extend(neighbour_notes(&w, 0, false));
    let mut explained = 0;
    let mut probed = pairs.iter().zip(&results).map(|(p, r)| {
        let over = overflowed(&w, &p.addr);
        let mut seen = echo_words(&r.outcome, table_overflow(&w, &p.addr));
        if r.outcome == EchoOutcome::Timeout && !over && explained < EXPLAIN_TIMEOUTS {
            explained += 1;
            if let Some(why) = why_timeout(rl, &p.from, p.addr, t0, &before) {
                seen = format!("timeout ({why})");
            }
        }
        PairResult { from: p.from.clone(), to: p.to.clone(), addr: p.addr, ok: r.outcome.is_reply(), seen, rtt_us: r.rtt_us }
    });
    let pr: Vec<PairResult> = all_pairs
        .iter()
        .zip(skipped)
        .map(|(p, skip)| match skip {
            Some(why) => PairResult { from: p.from.clone(), to: p.to.clone(), addr: p.addr, ok: false, seen: format!("not probed: {why}"), rtt_us: None },
            None => probed.next().expect("one result per probed pair"),
        })
        .collect();
    let reached = pr.iter().filter(|p| p.ok).count();
    let nodes: Vec<String> = lab.nodes.iter().filter(|(_, n)| n.interfaces.values().any(|i| !i.addresses.is_empty())).map(|(k, _)| k.clone()).collect();
    let ok_flags: Vec<bool> = pr.iter().map(|p| p.ok).collect();
    let grid = matrix::grid(&nodes, &all_pairs, &ok_flags);
    // A check that probed nothing proves nothing: it must not pass, and says why.
    let errors = if pr.is_empty() { vec![nothing_probed(rl)] } else { Vec::new() };
    let not_probed = pr.len() - pairs.len();
    Ok(CheckReport {
        lab: rl.name().to_string(),
        mode: "matrix".into(),
        ok: !pr.is_empty() && reached == pr.len(),
        expectations: Vec::new(),
        matrix: Some(MatrixReport { probes: pr.len(), reached, not_probed, matrix_s, grid, pairs: pr }),
        errors,
        neighbour: w,
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The expectations of the topology file.
pub(super) fn expectations(rl: &RunningLab, opts: &CheckOptions) -> Result<CheckReport> {
    let started = Instant::now();
    let lab = rl.model();
    let exps = &lab.expect;
    let mut sources: Vec<String> = Vec::new();
    for e in exps {
        if !sources.contains(&e.from) && !rl.is_missing(&e.from) {
            sources.push(e.from.clone());
        }
    }
    let src_of = |n: &str| sources.iter().position(|s| s == n).expect("source listed");
    // Targets not probed because a node's namespace is gone: they fail with that reason.
    let gone = |e: &Expect, t: &crate::model::expect::TargetAddr| rl.missing_reason(&e.from).or_else(|| t.node.as_deref().and_then(|n| rl.missing_reason(n)));
    let mut by_target: BTreeMap<(usize, usize), TargetResult> = BTreeMap::new();
    for (ei, e) in exps.iter().enumerate() {
        for (ti, t) in e.targets.iter().enumerate() {
            if let Some(why) = gone(e, t) {
                by_target.insert((ei, ti), TargetResult { addr: t.addr, node: t.node.clone(), ok: false, seen: format!("not probed: {why}"), rtt_us: None });
            }
        }
    }

    // ICMP: reach, no-reach, pmtu.
    let mut probes = Vec::new();
    let mut probe_of: Vec<(usize, usize)> = Vec::new();
    for (ei, e) in exps.iter().enumerate() {
        let (size, df) = match e.expected {
            Expected::Reach { .. } => (None, false),
            Expected::Pmtu { size, .. } => (Some(size as usize), true),
            _ => continue,
        };
        for (ti, t) in e.targets.iter().enumerate() {
            if by_target.contains_key(&(ei, ti)) {
                continue;
            }
            probes.push(EchoProbe { src: src_of(&e.from), dst: t.addr, size, df, phase: 0 });
            probe_of.push((ei, ti));
        }
    }
    let v4 = probes.iter().any(|p| p.dst.is_ipv4());
    let v6 = probes.iter().any(|p| p.dst.is_ipv6());
    let mut w = watches(v4, v6);
    let before = Before::take(rl, &sources);
    let probe_start = Instant::now();
    let echo_results =
        if probes.is_empty() { Vec::new() } else { echo::run(&rl.borrowed(&sources)?, &probes, &echo_opts(opts)).map_err(|e| Error::io("probe", e))? };
    for x in w.iter_mut() {
        x.finish();
    }
    for ((ei, ti), r) in probe_of.iter().zip(&echo_results) {
        let e = &exps[*ei];
        let t = &e.targets[*ti];
        let over = overflowed(&w, &t.addr);
        let inconclusive = over && matches!(r.outcome, EchoOutcome::Timeout | EchoOutcome::Local { errno: libc::ENOBUFS, .. });
        let ok = match e.expected {
            Expected::Reach { reach } => r.outcome.is_reply() == reach && !inconclusive,
            Expected::Pmtu { pass, .. } => r.outcome.is_reply() == pass && !inconclusive,
            _ => false,
        };
        let mut seen = match (&e.expected, &r.outcome) {
            (Expected::Pmtu { size, .. }, EchoOutcome::Reply { .. }) => format!("{size}-byte DF probe answered"),
            (Expected::Pmtu { size, .. }, o) => format!("{size}-byte DF probe: {}", echo_words(o, table_overflow(&w, &t.addr))),
            (_, o) => echo_words(o, table_overflow(&w, &t.addr)),
        };
        if r.outcome == EchoOutcome::Timeout && !over {
            if let Some(why) = why_timeout(rl, &e.from, t.addr, probe_start, &before) {
                seen = format!("{seen} ({why})");
            }
        }
        by_target.insert((*ei, *ti), TargetResult { addr: t.addr, node: t.node.clone(), ok, seen, rtt_us: r.rtt_us });
    }

    // TCP / UDP: listeners first (kept until the probes are done), then all probes at once.
    let mut listeners = Vec::new();
    let mut cannot_listen: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut port_jobs: Vec<(usize, usize, Proto, SocketAddr, bool, Option<String>)> = Vec::new();
    for (ei, e) in exps.iter().enumerate() {
        let Expected::Port { proto, port, listen, .. } = e.expected else { continue };
        for (ti, t) in e.targets.iter().enumerate() {
            if by_target.contains_key(&(ei, ti)) {
                continue;
            }
            let sa = SocketAddr::new(t.addr, port);
            // A declared port forward sends the connection on to its target: listen there.
            let fwd = forwarded(rl, &e.from, t.node.as_deref(), proto, sa);
            if let Some((_, _, Some(why))) = &fwd {
                by_target.insert((ei, ti), TargetResult { addr: t.addr, node: t.node.clone(), ok: false, seen: format!("not probed: {why}"), rtt_us: None });
                continue;
            }
            let (listen_node, listen_sa) = match &fwd {
                Some((n, fsa, _)) => (Some(n.clone()), *fsa),
                None => (t.node.clone(), sa),
            };
            let mut ours = false;
            if listen {
                if let Some(node) = &listen_node {
                    match port::listen(Some(rl.fd(node)?), proto, listen_sa) {
                        Ok(Listen::Started(l)) => {
                            listeners.push(l);
                            ours = true;
                        }
                        Ok(Listen::InUse) => {}
                        Err(err) => {
                            cannot_listen.insert((ei, ti), format!("could not listen on {listen_sa} in node {node}: {err}"));
                            continue;
                        }
                    }
                }
            }
            let via = fwd.map(|(n, fsa, _)| format!("forwarded to {n}:{}", fsa.port()));
            port_jobs.push((ei, ti, proto, sa, ours, via));
        }
    }
    let timeout = opts.timeout;
    let port_start = Instant::now();
    let port_results: Vec<PortOutcome> = std::thread::scope(|s| {
        let joins: Vec<_> = port_jobs
            .iter()
            .map(|(ei, _, proto, sa, _, _)| {
                let fd = rl.fd(&exps[*ei].from);
                let (proto, sa) = (*proto, *sa);
                s.spawn(move || match fd {
                    Ok(fd) => ns::in_one(Some(fd), move || port::probe_here(proto, sa, timeout)).unwrap_or_else(|e| PortOutcome::Error { why: e.to_string() }),
                    Err(e) => PortOutcome::Error { why: e.to_string() },
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap_or(PortOutcome::Error { why: "probe thread panicked".into() })).collect()
    });
    drop(listeners);
    for ((ei, ti, proto, _, ours, via), out) in port_jobs.iter().zip(port_results) {
        let e = &exps[*ei];
        let t = &e.targets[*ti];
        let Expected::Port { open, .. } = e.expected else { continue };
        // A UDP port without our listener that neither answers nor refuses may be open or filtered.
        let out = if *proto == Proto::Udp && !ours && out == PortOutcome::Timeout { PortOutcome::NoAnswer } else { out };
        let ok = matches!((&out, open), (PortOutcome::Open, true) | (PortOutcome::Refused | PortOutcome::Unreachable { .. } | PortOutcome::Timeout, false));
        let who = match (via, *ours) {
            (Some(v), true) => format!(" ({v}, listener started by the check)"),
            (Some(v), false) => format!(" ({v})"),
            (None, true) => " (listener started by the check)".into(),
            (None, false) => String::new(),
        };
        let mut seen = format!("{}{who}", out.text());
        // A port that should have answered and timed out: what the way to it shows, as for echoes.
        if out == PortOutcome::Timeout && !ok {
            if let Some(why) = why_timeout(rl, &e.from, t.addr, port_start, &before) {
                seen = format!("{seen} ({why})");
            }
        }
        by_target.insert((*ei, *ti), TargetResult { addr: t.addr, node: t.node.clone(), ok, seen, rtt_us: None });
    }
    for ((ei, ti), why) in cannot_listen {
        let t = &exps[ei].targets[ti];
        by_target.insert((ei, ti), TargetResult { addr: t.addr, node: t.node.clone(), ok: false, seen: why, rtt_us: None });
    }

    // Routes: the kernel's own lookup in the source node.
    for (ei, e) in exps.iter().enumerate() {
        if let Expected::Route { .. } = e.expected {
            if by_target.contains_key(&(ei, 0)) {
                continue;
            }
            let r = route_result(rl, e)?;
            by_target.insert((ei, 0), r);
        }
    }

    let mut results = Vec::new();
    for (ei, e) in exps.iter().enumerate() {
        let targets: Vec<TargetResult> = (0..e.targets.len()).filter_map(|ti| by_target.remove(&(ei, ti))).collect();
        let ok = !targets.is_empty() && targets.iter().all(|t| t.ok);
        results.push(ExpectResult {
            expect: e.to_string(),
            kind: kind_name(e).into(),
            from: e.from.clone(),
            to: e.to.clone(),
            ok,
            location: rl.location(&e.path),
            targets,
        });
    }
    let notes = neighbour_notes(&w, 0, false);
    Ok(CheckReport {
        lab: rl.name().to_string(),
        mode: "expectations".into(),
        ok: results.iter().all(|r| r.ok),
        expectations: results,
        matrix: None,
        errors: Vec::new(),
        neighbour: w,
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The port forward a connection from `from` to `sa` (held by `node`) meets, as the node and
/// socket address it is forwarded to; with a reason when that node's namespace is gone.
/// Forwards are DNAT in the holder's prerouting: connections it makes itself are not forwarded.
fn forwarded(rl: &RunningLab, from: &str, node: Option<&str>, proto: Proto, sa: SocketAddr) -> Option<(String, SocketAddr, Option<String>)> {
    let node = node?;
    if node == from {
        return None;
    }
    let lab = rl.model();
    let holder = lab.nodes.get(node)?;
    let dev = holder.interfaces.values().find(|i| i.addresses.iter().any(|a| a.addr() == sa.ip())).map(|i| i.name.as_str());
    let want = match proto {
        Proto::Tcp => crate::model::netfeat::spec::L4Proto::Tcp,
        Proto::Udp => crate::model::netfeat::spec::L4Proto::Udp,
    };
    let d = holder
        .features
        .nft
        .as_ref()?
        .dnat
        .iter()
        .find(|d| d.proto == want && d.port == sa.port() && d.to_addr.is_ipv4() == sa.is_ipv4() && d.in_dev.as_deref().is_none_or(|i| Some(i) == dev))?;
    let to = SocketAddr::new(d.to_addr, d.to_port);
    let target = lab.nodes.iter().find(|(_, n)| n.interfaces.values().any(|i| i.addresses.iter().any(|a| a.addr() == d.to_addr))).map(|(k, _)| k.clone())?;
    let why = rl.missing_reason(&target);
    Some((target, to, why))
}

fn kind_name(e: &Expect) -> &'static str {
    match &e.expected {
        Expected::Reach { reach: true } => "reach",
        Expected::Reach { reach: false } => "no-reach",
        Expected::Port { proto: Proto::Tcp, open: true, .. } => "tcp-open",
        Expected::Port { proto: Proto::Tcp, open: false, .. } => "tcp-closed",
        Expected::Port { proto: Proto::Udp, open: true, .. } => "udp-open",
        Expected::Port { proto: Proto::Udp, open: false, .. } => "udp-closed",
        Expected::Pmtu { .. } => "pmtu",
        Expected::Route { .. } => "route",
    }
}

fn route_result(rl: &RunningLab, e: &Expect) -> Result<TargetResult> {
    let Expected::Route { via, dev, src } = &e.expected else { unreachable!("route expectation") };
    let t = &e.targets[0];
    let r = rl.route_lookup(&e.from, Lookup::to(t.addr))?;
    let (ok, seen) = match r {
        Err(err) => (false, route::error_text(&err, false)),
        Ok((a, d)) => {
            let mut seen = format!("{} route", a.kind);
            if let Some(g) = a.gateway {
                seen.push_str(&format!(" via {g}"));
            }
            if let Some(d) = &d {
                seen.push_str(&format!(" dev {d}"));
            }
            if let Some(s) = a.src {
                seen.push_str(&format!(" src {s}"));
            }
            let ok = via.is_none_or(|v| a.gateway == Some(v))
                && dev.as_ref().is_none_or(|x| d.as_deref() == Some(x.as_str()))
                && src.is_none_or(|s| a.src == Some(s));
            (ok, seen)
        }
    };
    Ok(TargetResult { addr: t.addr, node: t.node.clone(), ok, seen, rtt_us: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::neigh::CacheInfo;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const W: Duration = Duration::from_millis(1500);

    fn say(state: &str, c: Option<Confirmation>) -> String {
        explain_neighbour(Some((state, c)), "10.0.0.2".parse().unwrap(), "eth0", "ARP", W)
    }

    #[test]
    fn only_an_entry_confirmed_during_the_check_counts_as_an_answer() {
        assert_eq!(
            say("reachable", Some(Confirmation::Ago(ms(200)))),
            "10.0.0.2 answers ARP on eth0 (reachable, confirmed during the check): the packet or its answer is lost further on"
        );
        assert_eq!(
            say("reachable", Some(Confirmation::Ago(ms(9000)))),
            "a cached ARP entry for 10.0.0.2 on eth0 exists (state reachable, last confirmed 9.0 s ago), but nothing confirmed it during the check: 10.0.0.2 may be gone"
        );
        // A confirmation during the check counts whatever state the entry went on to.
        assert!(say("delay", Some(Confirmation::Ago(ms(100)))).starts_with("10.0.0.2 answers ARP on eth0 (delay, confirmed during the check)"));
        assert_eq!(say("failed", Some(Confirmation::Ago(ms(100)))), "no ARP answer from 10.0.0.2 on eth0");
        assert_eq!(explain_neighbour(None, "10.0.0.2".parse().unwrap(), "eth0", "ARP", W), "no ARP entry for 10.0.0.2 on eth0");
    }

    #[test]
    fn an_entry_never_confirmed_is_not_said_to_have_been_confirmed() {
        // examples/ovs.yaml: b's ARP request reached a during the check, a's answers are dropped;
        // the kernel backdates the entry's `confirmed` by 2 × base_reachable_time (60 s).
        let ovs = CacheInfo { confirmed: ms(60_800), used: ms(0), updated: ms(0), refcnt: 1 };
        let c = ovs.confirmation(Duration::from_secs(30), Some(ms(3_000)));
        assert_eq!(c, Confirmation::Never { learned: ms(800) });
        let text = say("delay", Some(c));
        assert_eq!(
            text,
            "ARP from 10.0.0.2 reached eth0 during the check (its link-layer address was learned 0.8 s ago, state delay), but no answer from 10.0.0.2 ever confirmed it: what is sent to 10.0.0.2, or its answers, are lost"
        );
        assert!(!text.contains("last confirmed") && !text.contains("60."), "{text}");
        // Learned before the check, never confirmed.
        let old = CacheInfo { confirmed: ms(75_000), used: ms(0), updated: ms(0), refcnt: 1 };
        let text = say("delay", Some(old.confirmation(Duration::from_secs(30), Some(ms(20_000)))));
        assert_eq!(
            text,
            "a cached ARP entry for 10.0.0.2 on eth0 (state delay) was learned 15.0 s ago, before the check, from 10.0.0.2's own ARP, and never confirmed by an answer, nor during the check: what is sent to 10.0.0.2, or its answers, are lost, or 10.0.0.2 is gone"
        );
        // An old namespace leaves both readings open: both are said.
        let text = say("delay", Some(old.confirmation(Duration::from_secs(30), Some(ms(600_000)))));
        assert_eq!(
            text,
            "an ARP entry for 10.0.0.2 on eth0 exists (state delay: learned 15.0 s ago and never confirmed, or last confirmed 75.0 s ago), but nothing confirmed it during the check"
        );
        let v6 = explain_neighbour(Some(("stale", None)), "fd00::2".parse().unwrap(), "eth0", "neighbour discovery", W);
        assert_eq!(v6, "a neighbour discovery entry for fd00::2 on eth0 exists (state stale), but nothing confirmed it during the check");
    }

    #[test]
    fn a_device_without_carrier_or_link_layer_is_the_reason() {
        let link = |kind: Option<&str>, carrier: bool| crate::observed::ObservedLink {
            name: "tun0".into(),
            kind: kind.map(String::from),
            up: true,
            carrier,
            ..Default::default()
        };
        // A tun device nothing has open: the kernel drops what is routed into it.
        assert_eq!(
            explain_device(&link(Some("tun"), false), false, "ARP").as_deref(),
            Some("tun0 has no carrier (a tun device no program has open): what is sent through it is dropped")
        );
        assert_eq!(
            explain_device(&link(Some("veth"), false), true, "ARP").as_deref(),
            Some("tun0 has no carrier (its veth peer is down): what is sent through it is dropped")
        );
        // Open: the packet went to the program; there is no neighbour entry to read.
        assert_eq!(
            explain_device(&link(Some("tun"), true), false, "neighbour discovery").as_deref(),
            Some("tun0 is a tun device (no link layer, no neighbour discovery): the packet went to the program that has it open, and no answer came back")
        );
        assert_eq!(
            explain_device(&link(Some("wireguard"), true), false, "ARP").as_deref(),
            Some("tun0 has no link layer (a wireguard device, no ARP): the packet was sent through it, and no answer came back")
        );
        // A device that resolves neighbours: the entry says more.
        assert_eq!(explain_device(&link(Some("veth"), true), true, "ARP"), None);
    }

    #[test]
    fn an_entry_missing_before_the_probes_is_no_older_than_them() {
        let hop: IpAddr = "10.0.0.2".parse().unwrap();
        let before = Before { at: Instant::now(), keys: BTreeMap::from([("a".to_string(), std::collections::HashSet::from([(2, hop)]))]) };
        // Already there: the snapshot bounds nothing.
        assert_eq!(before.max_age("a", 2, hop), None);
        // Made since (another device, another address): at most as old as the snapshot.
        assert!(before.max_age("a", 3, hop).is_some_and(|d| d < Duration::from_secs(5)));
        assert!(before.max_age("a", 2, "10.0.0.3".parse().unwrap()).is_some());
        // A node that was not read.
        assert_eq!(before.max_age("b", 2, hop), None);
    }

    fn lab(yaml: &str) -> crate::model::Lab {
        crate::model::load_str("t.yaml", yaml, crate::model::Format::Yaml).unwrap_or_else(|d| panic!("{d}")).lab
    }

    #[test]
    fn no_pairs_say_why() {
        let one = lab("name: t\nnodes:\n  host:\n    interfaces:\n      tun0: { kind: tun, addresses: [10.1.0.1/32] }\n");
        assert_eq!(no_pairs_reason(&one), "the lab has a single node (host), and the matrix probes from one node to another");
        let bare = lab("name: t\nnodes:\n  a: {}\n  b: {}\n");
        assert_eq!(no_pairs_reason(&bare), "none of the lab's 2 nodes declares an address");
        let lone = lab("name: t\nnodes:\n  a: { interfaces: { eth0: { addresses: [10.0.0.1/24] } } }\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n");
        assert_eq!(no_pairs_reason(&lone), "only node a declares addresses (the other node declares none), and the matrix probes from one node to another");
        let apart = lab(
            "name: t\nnodes:\n  a: { interfaces: { eth0: { addresses: [10.0.0.1/24] } } }\n  b: { interfaces: { eth0: { addresses: [fd00::2/64] } } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n",
        );
        assert_eq!(no_pairs_reason(&apart), "the nodes with addresses share no address family (a: IPv4 only, b: IPv6 only), so none can probe another");
        assert!(matrix::pairs(&apart).is_empty() && matrix::pairs(&lone).is_empty() && matrix::pairs(&one).is_empty());
    }
}
