//! What `check` found, for people (`render`) and machines (serde). Pure.

use std::net::IpAddr;

use serde::Serialize;

use super::matrix::{self, Grid};
use crate::probe::echo::{local_error_text, EchoOutcome};
use crate::probe::neigh::Watch;

/// The result of one destination address of an expectation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetResult {
    pub addr: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub ok: bool,
    /// What was seen, in words (`reply`, `timeout`, `refused`, `host unreachable from ...`).
    pub seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
}

/// The result of one expectation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectResult {
    /// The expectation in words (`reach a -> b`).
    pub expect: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub ok: bool,
    /// `file:line:col` where it is declared, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub targets: Vec<TargetResult>,
}

/// One probed pair of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairResult {
    pub from: String,
    pub to: String,
    pub addr: IpAddr,
    pub ok: bool,
    pub seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
}

/// The full reachability matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatrixReport {
    /// Pairs of the matrix: one probe each, except those `not_probed`.
    pub probes: usize,
    pub reached: usize,
    /// Pairs not probed (a node's namespace is gone); they count as failed.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_probed: usize,
    /// Wall time of probing (sockets opened, every probe answered or timed out).
    pub matrix_s: f64,
    pub grid: Grid,
    pub pairs: Vec<PairResult>,
}

/// Everything `check` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    pub lab: String,
    /// `expectations` or `matrix`.
    pub mode: String,
    /// True when every expectation held (matrix: every pair answered).
    pub ok: bool,
    pub expectations: Vec<ExpectResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixReport>,
    /// Why the check failed where no expectation or pair did (nothing could be probed); each
    /// is also a line of `failures()`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Neighbour tables around the probes (the limits are machine-wide).
    pub neighbour: Vec<Watch>,
    /// Warnings and explanations (e.g. a neighbour table overflow).
    pub notes: Vec<String>,
    pub elapsed_s: f64,
}

impl CheckReport {
    /// Why the check failed, one line each: the check's own errors (nothing to probe), then the
    /// failed expectations (or matrix pairs), naming the pair and what was seen. Never empty
    /// when `ok` is false, so `assert!(r.ok, "{:?}", r.failures())` always says why.
    pub fn failures(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        out.extend(self.pair_failures());
        if !self.ok && out.is_empty() {
            // Not reached by the check itself (every failure above has a line); a report
            // assembled by hand still says something.
            let notes = if self.notes.is_empty() { String::new() } else { format!(": {}", self.notes.join("; ")) };
            out.push(format!("the check failed, but no expectation or pair did{notes}"));
        }
        out
    }

    /// The failed expectations and matrix pairs, one line each.
    fn pair_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.expectations.iter().filter(|e| !e.ok) {
            let at = e.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
            let before = out.len();
            for t in e.targets.iter().filter(|t| !t.ok) {
                out.push(format!("{}: {} -> {}: {}{at}", e.expect, e.from, t.addr, t.seen));
            }
            if out.len() == before {
                let why = if e.targets.is_empty() { "no address to probe" } else { "failed, though each address passed" };
                out.push(format!("{}: {why}{at}", e.expect));
            }
        }
        if let Some(m) = &self.matrix {
            for p in m.pairs.iter().filter(|p| !p.ok) {
                out.push(format!("{} -> {} ({}): {}", p.from, p.to, p.addr, p.seen));
            }
        }
        out
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Whether the machine-wide neighbour table of a probe's family overflowed while the probes
/// ran (its `table_fulls` counter grew).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableOverflow {
    Yes,
    No,
    /// The counters could not be read.
    Unknown,
}

/// Words for what an echo probe saw. `overflowed`: the neighbour table was full meanwhile;
/// `false` when that is not known (a "no buffer space" is then not blamed on the table).
pub fn echo_seen(o: &EchoOutcome, overflowed: bool) -> String {
    echo_words(o, if overflowed { TableOverflow::Yes } else { TableOverflow::Unknown })
}

/// Words for what an echo probe saw, knowing whether the neighbour table overflowed.
pub fn echo_words(o: &EchoOutcome, table: TableOverflow) -> String {
    match o {
        EchoOutcome::Reply { from } => format!("reply from {from}"),
        EchoOutcome::Error { kind, from, mtu: Some(m) } => format!("{} (mtu {m}) from {from}", kind.text()),
        EchoOutcome::Error { kind, from, mtu: None } => format!("{} from {from}", kind.text()),
        // ENOBUFS also comes from a queue that drops (a qdisc over its limit): only the table's
        // own counter says it was the neighbour table.
        EchoOutcome::Local { errno, .. } if *errno == libc::ENOBUFS => match table {
            TableOverflow::Yes => "neighbour table overflow: dropped at the sender (no buffer space; the machine-wide ARP/NDP table was full)".into(),
            TableOverflow::No => {
                "not sent: no buffer space (dropped on the way out, e.g. by a full queue of the outgoing device; the neighbour table did not overflow)".into()
            }
            TableOverflow::Unknown => "not sent: no buffer space (a full queue of the outgoing device, or a full neighbour table)".into(),
        },
        EchoOutcome::Local { errno, mtu: Some(m) } if *errno == libc::EMSGSIZE => format!("too big for the outgoing device (mtu {m}), not sent"),
        EchoOutcome::Local { errno, .. } => format!("not sent: {}", local_error_text(*errno)),
        EchoOutcome::Timeout if table == TableOverflow::Yes => {
            "timeout, while the neighbour table overflowed (the machine-wide ARP/NDP table was full; see notes)".into()
        }
        EchoOutcome::Timeout => "timeout".into(),
    }
}

/// Human-readable report.
pub fn render(r: &CheckReport) -> String {
    let mut s = String::new();
    if r.mode == "matrix" {
        if let Some(m) = &r.matrix {
            let counts = if m.not_probed == 0 {
                format!("{} probes, {} answered", m.probes, m.reached)
            } else {
                format!("{} pairs: {} probed, {} answered, {} not probed", m.probes, m.probes - m.not_probed, m.reached, m.not_probed)
            };
            s.push_str(&format!("lab {}: reachability matrix ({counts}, {:.3} s)\n", r.lab, m.matrix_s));
            // No pair at all: the grid would show nothing (the failure says why).
            if m.probes > 0 {
                s.push_str(&matrix::render(&m.grid));
            }
        }
    } else {
        s.push_str(&format!("lab {}: {} expectations\n", r.lab, r.expectations.len()));
        for e in &r.expectations {
            let mark = if e.ok { "ok  " } else { "FAIL" };
            let at = e.location.as_ref().map(|l| format!("  [{l}]")).unwrap_or_default();
            s.push_str(&format!("{mark} {}{at}\n", e.expect));
            for t in &e.targets {
                let who = t.node.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                s.push_str(&format!("       {}{who}: {}\n", t.addr, t.seen));
            }
        }
    }
    let f = r.failures();
    if !f.is_empty() {
        s.push_str(&format!("{} failed:\n", f.len()));
        let shown = 50;
        for line in f.iter().take(shown) {
            s.push_str(&format!("  {line}\n"));
        }
        if f.len() > shown {
            s.push_str(&format!("  ... and {} more (--json lists all)\n", f.len() - shown));
        }
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    // The hint helps with pairs that failed; a check that had nothing to probe says what to do.
    if !r.ok && !r.pair_failures().is_empty() {
        s.push_str(&format!("hint: `vnet doctor {}` looks for the usual causes; `vnet trace {} NODE DEST` follows one pair\n", r.lab, r.lab));
    }
    s.push_str(if r.ok { "check passed\n" } else { "check FAILED\n" });
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::packet::ErrorKind;

    #[test]
    fn echo_outcomes_in_words() {
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        let no = TableOverflow::No;
        assert_eq!(echo_words(&EchoOutcome::Reply { from }, no), "reply from 10.0.0.1");
        assert_eq!(echo_words(&EchoOutcome::Error { kind: ErrorKind::HostUnreachable, from, mtu: None }, no), "host unreachable from 10.0.0.1");
        assert_eq!(echo_words(&EchoOutcome::Error { kind: ErrorKind::FragNeeded, from, mtu: Some(1400) }, no), "fragmentation needed (mtu 1400) from 10.0.0.1");
        assert_eq!(echo_words(&EchoOutcome::Local { errno: libc::ENETUNREACH, mtu: None }, no), "not sent: no route (network unreachable)");
        assert_eq!(echo_words(&EchoOutcome::Local { errno: libc::EMSGSIZE, mtu: Some(1400) }, no), "too big for the outgoing device (mtu 1400), not sent");
        assert_eq!(echo_words(&EchoOutcome::Timeout, no), "timeout");
        assert!(echo_words(&EchoOutcome::Timeout, TableOverflow::Yes).contains("neighbour table overflowed"));
    }

    #[test]
    fn no_buffer_space_is_a_table_overflow_only_when_the_table_overflowed() {
        let nobufs = EchoOutcome::Local { errno: libc::ENOBUFS, mtu: None };
        assert!(echo_words(&nobufs, TableOverflow::Yes).starts_with("neighbour table overflow: dropped at the sender"));
        // A qdisc over its limit gives the same errno.
        let queue = echo_words(&nobufs, TableOverflow::No);
        assert_eq!(
            queue,
            "not sent: no buffer space (dropped on the way out, e.g. by a full queue of the outgoing device; the neighbour table did not overflow)"
        );
        assert!(!echo_words(&nobufs, TableOverflow::Unknown).contains("overflow"));
        // `trace` does not watch the table: it says what it knows.
        assert_eq!(echo_seen(&nobufs, false), echo_words(&nobufs, TableOverflow::Unknown));
        assert_eq!(echo_seen(&nobufs, true), echo_words(&nobufs, TableOverflow::Yes));
    }

    fn report(ok: bool) -> CheckReport {
        CheckReport {
            lab: "l".into(),
            mode: "expectations".into(),
            ok,
            expectations: Vec::new(),
            matrix: None,
            errors: Vec::new(),
            neighbour: vec![],
            notes: vec![],
            elapsed_s: 0.1,
        }
    }

    /// A failed `reach a -> b` expectation.
    fn failed_reach(location: Option<&str>, targets: Vec<TargetResult>) -> ExpectResult {
        ExpectResult {
            expect: "reach a -> b".into(),
            kind: "reach".into(),
            from: "a".into(),
            to: "b".into(),
            ok: false,
            location: location.map(String::from),
            targets,
        }
    }

    #[test]
    fn failures_name_the_pair_and_what_was_seen() {
        let mut r = report(false);
        r.expectations = vec![failed_reach(
            Some("lab.yaml:12:5"),
            vec![
                TargetResult { addr: "10.0.0.2".parse().unwrap(), node: Some("b".into()), ok: true, seen: "reply from 10.0.0.2".into(), rtt_us: Some(50) },
                TargetResult { addr: "fd00::2".parse().unwrap(), node: Some("b".into()), ok: false, seen: "timeout".into(), rtt_us: None },
            ],
        )];
        assert_eq!(r.failures(), ["reach a -> b: a -> fd00::2: timeout (lab.yaml:12:5)"]);
        let text = render(&r);
        assert!(text.contains("FAIL reach a -> b  [lab.yaml:12:5]"), "{text}");
        assert!(text.contains("hint: `vnet doctor l`"), "{text}");
        assert!(text.ends_with("check FAILED\n"));
    }

    #[test]
    fn a_failed_check_always_has_failures() {
        // Nothing to probe: the reason is the failure, and no doctor hint (no pair failed).
        let mut r = report(false);
        r.mode = "matrix".into();
        r.matrix =
            Some(MatrixReport { probes: 0, reached: 0, not_probed: 0, matrix_s: 0.0, grid: matrix::grid(&["host".to_string()], &[], &[]), pairs: Vec::new() });
        r.errors = vec!["nothing was probed: the lab has a single node (host)".into()];
        assert_eq!(r.failures(), ["nothing was probed: the lab has a single node (host)"]);
        let text = render(&r);
        assert!(text.contains("1 failed:\n  nothing was probed: the lab has a single node (host)\n"), "{text}");
        assert!(!text.contains("hint:") && !text.contains("host \\"), "{text}");
        // An expectation that failed without a failed address still has its line.
        let mut r = report(false);
        r.expectations = vec![failed_reach(None, Vec::new())];
        assert_eq!(r.failures(), ["reach a -> b: no address to probe"]);
        // Whatever else: a failed report never has an empty list.
        let mut r = report(false);
        r.notes = vec!["something".into()];
        assert_eq!(r.failures(), ["the check failed, but no expectation or pair did: something"]);
        assert!(report(true).failures().is_empty());
    }

    #[test]
    fn pairs_not_probed_are_not_counted_as_probes() {
        let mut r = report(false);
        r.mode = "matrix".into();
        let pair = |to: &str, ok: bool, seen: &str| PairResult {
            from: "a".into(),
            to: to.into(),
            addr: "10.0.0.2".parse().unwrap(),
            ok,
            seen: seen.into(),
            rtt_us: None,
        };
        r.matrix = Some(MatrixReport {
            probes: 2,
            reached: 1,
            not_probed: 1,
            matrix_s: 0.01,
            grid: matrix::grid(&["a".to_string(), "b".to_string(), "c".to_string()], &[], &[]),
            pairs: vec![pair("b", true, "reply from 10.0.0.2"), pair("c", false, "not probed: the namespace of node c (l-c) is missing")],
        });
        let text = render(&r);
        assert!(text.starts_with("lab l: reachability matrix (2 pairs: 1 probed, 1 answered, 1 not probed, 0.010 s)\n"), "{text}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["matrix"]["not_probed"], 1);
        assert!(j.get("errors").is_none(), "{j}");
    }
}
