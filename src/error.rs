//! The library's error type; each variant maps to a distinct CLI exit code.
//!
//! `Error` is a `miette::Diagnostic`: with `miette::Result` and `?`, an invalid topology is
//! reported with the file's text and each finding underlined. Its `Debug` is readable text, as
//! `Display` (for `Invalid`, the findings rendered without colour), so that a test or `main`
//! returning `Result<(), Box<dyn std::error::Error>>` or calling `unwrap()` prints the message
//! rather than a dump of the value.

use std::fmt;
use std::io;

use crate::apply::ApplyError;
use crate::kernel::nl::KernelError;
use crate::model::Diagnostics;
use crate::plan::Clash;

#[derive(thiserror::Error)]
pub enum Error {
    /// The topology file is invalid; nothing was changed.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The running kernel lacks what the lab needs; nothing was changed.
    #[error("{}", .0.join("\n"))]
    Unsupported(Vec<String>),
    /// Names the lab wants are held by objects that are not the lab's; nothing was changed.
    #[error("{}", clashes(.0))]
    Clash(Vec<Clash>),
    /// Building failed midway; everything this run created was removed again.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Another vnet command holds the lab's lock.
    #[error("lab `{0}` is busy: another vnet command is working on it (lock held on /run/vnet/{0}/lock)")]
    Busy(String),
    /// The lab belongs to another process that is still running (a lab of the Rust test
    /// library, owned by the process that built it): nothing was changed.
    #[error(
        "lab `{lab}` belongs to {}, which is still running: nothing was changed (the lab goes when its owner is done with it; `vnet down {lab}` removes it now)",
        crate::state::owner::OwnerState::describe_pid(*.pid, *.elsewhere)
    )]
    Owned { lab: String, pid: u32, elsewhere: bool },
    /// No lab of that name is up.
    #[error("no lab named `{0}` (see `vnet status`)")]
    NoSuchLab(String),
    /// A node named that the lab does not have.
    #[error("lab `{lab}` has no node `{node}`")]
    NoSuchNode { lab: String, node: String },
    /// A device named on the command line that the running lab does not declare.
    #[error("lab `{lab}` has no device `{device}` in node `{node}`{}", known_devices(.known))]
    NoSuchDevice { lab: String, node: String, device: String, known: Vec<String> },
    /// A node's namespace is gone (deleted outside vnet): the lab is not as recorded.
    #[error("the namespace {netns} of node {node} is missing (lab `{lab}` is not as recorded): run `vnet up` with its file again to re-create it")]
    MissingNamespace { lab: String, node: String, netns: String },
    /// A system call or file operation failed; `context` says what vnet was doing.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The kernel refused a netlink request; `context` says what vnet was doing.
    #[error("{context}: {source}")]
    Kernel { context: String, source: KernelError },
}

fn known_devices(k: &[String]) -> String {
    if k.is_empty() {
        String::new()
    } else {
        format!(" (its devices: {})", k.join(", "))
    }
}

fn clashes(c: &[Clash]) -> String {
    let mut s = String::from("the lab clashes with objects that are not its own (nothing was changed):");
    for x in c {
        s.push_str(&format!("\n  {x}"));
    }
    s
}

impl Error {
    /// Exit code: 2 invalid input (a topology file, or a command's own arguments and values),
    /// 3 kernel lacks a feature, 4 busy (or owned by another running process), 1 anything
    /// else: a failure, and a lab, node or device named on the command line that is not there
    /// (a lookup, as `exec`, `trace` and `check` do).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::Unsupported(_) => 3,
            Error::Busy(_) | Error::Owned { .. } => 4,
            _ => 1,
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub fn kernel(context: impl Into<String>, source: KernelError) -> Self {
        Error::Kernel { context: context.into(), source }
    }
}

/// The same text as `Display`, as `anyhow` does; an invalid topology's findings are rendered
/// (without colour) with the lines of the file they point at.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(d) => {
                let r = d.report(false);
                let r = r.trim_end();
                if r.is_empty() {
                    write!(f, "{self}")
                } else {
                    f.write_str(r)
                }
            }
            _ => write!(f, "{self}"),
        }
    }
}

/// An invalid topology delegates to its findings (the file's text, each finding's labels and
/// help); the other errors are a message.
impl miette::Diagnostic for Error {
    fn severity(&self) -> Option<miette::Severity> {
        match self {
            Error::Invalid(d) => d.severity(),
            _ => None,
        }
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            Error::Invalid(d) => d.help(),
            _ => None,
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            Error::Invalid(d) => d.source_code(),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        match self {
            Error::Invalid(d) => d.labels(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
