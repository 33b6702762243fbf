//! `check`: does the lab behave as declared? Runs the expectations of the topology file (or,
//! without any, the full reachability matrix) with in-process probes from inside the nodes,
//! and reports each failure with the pair and what was seen.

pub mod bench;
pub mod matrix;
pub mod report;
mod run;

use std::time::Duration;

pub use report::{CheckReport, ExpectResult, MatrixReport, PairResult, TargetResult};

use crate::error::Result;
use crate::inspect::RunningLab;

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// How long a probe waits for an answer.
    pub timeout: Duration,
    /// Probe the full matrix even when the file declares expectations.
    pub matrix: bool,
    /// Worker threads for ICMP probes.
    pub threads: usize,
    /// Most neighbour (ARP/NDP) entries the matrix may need at once; default: the room the
    /// machine-wide table has. A bigger matrix runs in waves, clearing the lab's neighbour
    /// entries between them, so it is not hurt by the table's limit.
    pub neighbour_budget: Option<u64>,
    /// Show a progress bar (only for big matrices, and only when stderr is a terminal).
    pub progress: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { timeout: Duration::from_millis(1500), matrix: false, threads: crate::kernel::handle::workers(), neighbour_budget: None, progress: false }
    }
}

/// Checks a running lab by name.
pub fn check(lab: &str, opts: &CheckOptions) -> Result<CheckReport> {
    let rl = RunningLab::open(lab)?;
    check_running(&rl, opts)
}

/// Checks an opened lab.
pub fn check_running(rl: &RunningLab, opts: &CheckOptions) -> Result<CheckReport> {
    if rl.model().expect.is_empty() || opts.matrix {
        run::matrix(rl, opts)
    } else {
        run::expectations(rl, opts)
    }
}
