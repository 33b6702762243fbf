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
    pub probes: usize,
    pub reached: usize,
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
    /// Neighbour tables around the probes (the limits are machine-wide).
    pub neighbour: Vec<Watch>,
    /// Warnings and explanations (e.g. a neighbour table overflow).
    pub notes: Vec<String>,
    pub elapsed_s: f64,
}

impl CheckReport {
    /// The failed expectations (or matrix pairs), one line each, naming the pair and what was seen.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.expectations.iter().filter(|e| !e.ok) {
            for t in e.targets.iter().filter(|t| !t.ok) {
                let at = e.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
                out.push(format!("{}: {} -> {}: {}{at}", e.expect, e.from, t.addr, t.seen));
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

/// Words for what an echo probe saw. `overflowed`: the neighbour table was full meanwhile.
pub fn echo_seen(o: &EchoOutcome, overflowed: bool) -> String {
    match o {
        EchoOutcome::Reply { from } => format!("reply from {from}"),
        EchoOutcome::Error { kind, from, mtu: Some(m) } => format!("{} (mtu {m}) from {from}", kind.text()),
        EchoOutcome::Error { kind, from, mtu: None } => format!("{} from {from}", kind.text()),
        EchoOutcome::Local { errno, .. } if *errno == libc::ENOBUFS => {
            "neighbour table overflow: dropped at the sender (no buffer space; the machine-wide ARP/NDP table is full)".into()
        }
        EchoOutcome::Local { errno, mtu: Some(m) } if *errno == libc::EMSGSIZE => format!("too big for the outgoing device (mtu {m}), not sent"),
        EchoOutcome::Local { errno, .. } => format!("not sent: {}", local_error_text(*errno)),
        EchoOutcome::Timeout if overflowed => "timeout, while the neighbour table overflowed (the machine-wide ARP/NDP table was full; see notes)".into(),
        EchoOutcome::Timeout => "timeout".into(),
    }
}

/// Human-readable report.
pub fn render(r: &CheckReport) -> String {
    let mut s = String::new();
    if r.mode == "matrix" {
        if let Some(m) = &r.matrix {
            s.push_str(&format!("lab {}: reachability matrix ({} probes, {} answered, {:.3} s)\n", r.lab, m.probes, m.reached, m.matrix_s));
            s.push_str(&matrix::render(&m.grid));
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
    if !r.ok {
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
        assert_eq!(echo_seen(&EchoOutcome::Reply { from }, false), "reply from 10.0.0.1");
        assert_eq!(echo_seen(&EchoOutcome::Error { kind: ErrorKind::HostUnreachable, from, mtu: None }, false), "host unreachable from 10.0.0.1");
        assert_eq!(
            echo_seen(&EchoOutcome::Error { kind: ErrorKind::FragNeeded, from, mtu: Some(1400) }, false),
            "fragmentation needed (mtu 1400) from 10.0.0.1"
        );
        assert!(echo_seen(&EchoOutcome::Local { errno: libc::ENOBUFS, mtu: None }, false).starts_with("neighbour table overflow"));
        assert_eq!(echo_seen(&EchoOutcome::Local { errno: libc::ENETUNREACH, mtu: None }, false), "not sent: no route (network unreachable)");
        assert_eq!(echo_seen(&EchoOutcome::Local { errno: libc::EMSGSIZE, mtu: Some(1400) }, false), "too big for the outgoing device (mtu 1400), not sent");
        assert_eq!(echo_seen(&EchoOutcome::Timeout, false), "timeout");
        assert!(echo_seen(&EchoOutcome::Timeout, true).contains("neighbour table overflowed"));
    }

    #[test]
    fn failures_name_the_pair_and_what_was_seen() {
        let r = CheckReport {
            lab: "l".into(),
            mode: "expectations".into(),
            ok: false,
            expectations: vec![ExpectResult {
                expect: "reach a -> b".into(),
                kind: "reach".into(),
                from: "a".into(),
                to: "b".into(),
                ok: false,
                location: Some("lab.yaml:12:5".into()),
                targets: vec![
                    TargetResult { addr: "10.0.0.2".parse().unwrap(), node: Some("b".into()), ok: true, seen: "reply from 10.0.0.2".into(), rtt_us: Some(50) },
                    TargetResult { addr: "fd00::2".parse().unwrap(), node: Some("b".into()), ok: false, seen: "timeout".into(), rtt_us: None },
                ],
            }],
            matrix: None,
            neighbour: vec![],
            notes: vec![],
            elapsed_s: 0.1,
        };
        assert_eq!(r.failures(), ["reach a -> b: a -> fd00::2: timeout (lab.yaml:12:5)"]);
        let text = render(&r);
        assert!(text.contains("FAIL reach a -> b  [lab.yaml:12:5]"), "{text}");
        assert!(text.ends_with("check FAILED\n"));
    }
}
