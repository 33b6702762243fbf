//! Sysctls only the kernel can judge: a misspelled name, a setting that exists only in the
//! machine's root namespace, a read-only one, a value the kernel refuses. Found before anything
//! changes, so `up` does not fail halfway over a typo and roll back; each finding points at its
//! line in the file (exit 2, like any other mistake in the file).
//!
//! A lab namespace starts as fresh as any new one, so each value is written once in a scratch
//! namespace that dies with its thread. Keys of a device (`conf.eth0.*`, `neigh.eth0.*`) are
//! judged on `conf.default` and `neigh.lo`, which have the same entries: the lab's devices do
//! not exist yet. The
//! machine's root namespace (a `host` without `isolated_host`) is never written: its names are
//! only looked up.

use std::collections::BTreeMap;
use std::io;

use crate::error::{Error, Result};
use crate::kernel::{netns, sysctl};
use crate::model::lab::{Lab, SysctlPlace, HOST};
use crate::model::source::SourceText;
use crate::model::validate::{did_you_mean, sysctl_components, sysctl_key};
use crate::model::{Diag, Diagnostics};

/// What the kernel says of one key and value.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    Fine,
    /// No such entry; the closest name in its directory, if one is close.
    Unknown(Option<String>),
    /// Machine-wide: the root namespace has it, a new one does not.
    RootOnly,
    ReadOnly,
    Refused(String),
}

/// One sysctl of the lab, as written and as probed.
struct Entry<'a> {
    node: &'a str,
    key: &'a str,
    value: &'a str,
    /// The key to probe (a device's replaced by `default`), and that device.
    probe: Vec<String>,
    device: Option<usize>,
    in_root: bool,
    place: Option<&'a SysctlPlace>,
}

/// Fails (exit 2) naming every sysctl of the lab the kernel would refuse.
pub fn check(lab: &Lab, source: &SourceText) -> Result<()> {
    let entries = entries(lab);
    if entries.is_empty() {
        return Ok(());
    }
    let mut fresh: Vec<(String, String)> = entries.iter().filter(|e| !e.in_root).map(|e| (sysctl_key(&e.probe), e.value.to_string())).collect();
    fresh.sort();
    fresh.dedup();
    let judged = judge_in_scratch(fresh).map_err(|e| Error::io("sysctl preflight", e))?;
    let mut diags = Diagnostics::new(Some(source.clone()));
    for e in &entries {
        let verdict = if e.device.is_some() && is_table_wide(&e.probe) {
            Verdict::Unknown(None)
        } else if e.in_root {
            exists_here(&e.probe)
        } else {
            let v = judged.get(&(sysctl_key(&e.probe), e.value.to_string())).cloned().unwrap_or(Verdict::Fine);
            // Missing from a new namespace, or read-only there, but present here: machine-wide.
            let here = || sysctl::writable(&sysctl_key(&e.probe));
            match v {
                Verdict::Unknown(_) if exists_here(&e.probe) == Verdict::Fine => Verdict::RootOnly,
                Verdict::ReadOnly if matches!(here(), Ok(true)) => Verdict::RootOnly,
                v => v,
            }
        };
        if let Some(d) = finding(e, verdict, source) {
            diags.push(d);
        }
    }
    if diags.has_errors() {
        return Err(Error::Invalid(diags));
    }
    Ok(())
}

fn entries(lab: &Lab) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (nname, node) in &lab.nodes {
        for (key, value) in &node.sysctls {
            let mut probe = sysctl_components(key);
            let per_device = matches!((probe.get(1).map(String::as_str), probe.get(2).map(String::as_str)), (Some("ipv4" | "ipv6"), Some("conf" | "neigh")))
                && probe.get(3).is_some_and(|d| d != "all" && d != "default");
            let device = per_device.then_some(3);
            if per_device {
                // A new namespace has `conf.default`, but its only neighbour parameters are
                // `lo`'s: the machine-wide `neigh.default` is the root namespace's.
                probe[3] = if probe[2] == "neigh" { "lo" } else { "default" }.into();
            }
            out.push(Entry { node: nname, key, value, probe, device, in_root: nname == HOST && !lab.isolated_host, place: node.sysctl_places.get(key) });
        }
    }
    out
}

/// The neighbour table's `gc_*` limits are the table's, not a device's: the root namespace's
/// `neigh.default` has them, `neigh.eth0` does not.
fn is_table_wide(probe: &[String]) -> bool {
    probe.get(2).is_some_and(|c| c == "neigh") && probe.get(4).is_some_and(|k| matches!(k.as_str(), "gc_interval" | "gc_thresh1" | "gc_thresh2" | "gc_thresh3"))
}

/// Writes each (key, value) in a namespace of its own.
fn judge_in_scratch(pairs: Vec<(String, String)>) -> io::Result<BTreeMap<(String, String), Verdict>> {
    if pairs.is_empty() {
        return Ok(BTreeMap::new());
    }
    std::thread::spawn(move || -> io::Result<BTreeMap<(String, String), Verdict>> {
        netns::unshare_thread()?;
        let mut out = BTreeMap::new();
        for (key, value) in pairs {
            let verdict = match sysctl::writable(&key) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Verdict::Unknown(closest(&sysctl_components(&key))),
                Ok(false) => Verdict::ReadOnly,
                _ => match sysctl::write(&key, &value) {
                    Ok(()) => Verdict::Fine,
                    // A name the setting does not know (`tcp_congestion_control: nosuch`).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Verdict::Refused("no such value".into()),
                    Err(e) => Verdict::Refused(reason(&e)),
                },
            };
            out.insert((key, value), verdict);
        }
        Ok(out)
    })
    .join()
    .map_err(|_| io::Error::other("sysctl preflight thread panicked"))?
}

/// Whether the calling thread's namespace has the key (write-only ones count).
fn exists_here(probe: &[String]) -> Verdict {
    match sysctl::read(&sysctl_key(probe)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Verdict::Unknown(closest(probe)),
        _ => Verdict::Fine,
    }
}

/// The entry of the key's directory closest to its last component.
fn closest(parts: &[String]) -> Option<String> {
    let (last, dir) = parts.split_last()?;
    let names = sysctl::list(&sysctl_key(dir)).ok()?;
    did_you_mean(last, names.iter().map(String::as_str)).map(str::to_string)
}

/// The kernel's words, without the path that `sysctl::write` puts first or the errno after.
fn reason(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s.rsplit_once(": ").map(|(_, r)| r.to_string()).unwrap_or(s);
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn finding(e: &Entry, verdict: Verdict, source: &SourceText) -> Option<Diag> {
    // Spans only into the text they were taken from.
    let fits = |r: &Option<std::ops::Range<usize>>| r.clone().filter(|r| r.end <= source.text.len());
    let (key_span, value_span) = e.place.map(|p| (fits(&p.key), fits(&p.value))).unwrap_or_default();
    let (node, key, value) = (e.node, e.key, e.value);
    let d = match verdict {
        Verdict::Fine => return None,
        Verdict::Unknown(_) if e.device.is_some() && is_table_wide(&e.probe) => {
            let family = &e.probe[1];
            Diag::error(format!("sysctl `{key}` of node `{node}`: the neighbour table's `{}` is not per device", e.probe[4]))
                .maybe_label(key_span, "not a device's setting")
                .help(format!("it is `net.{family}.neigh.default.{}`, and only the machine's root namespace has it (see `neighbour_limits`)", e.probe[4]))
        }
        Verdict::Unknown(hint) => {
            let d = Diag::error(format!("this kernel has no sysctl `{key}` (node `{node}`)")).maybe_label(key_span, "no such sysctl");
            match hint {
                Some(h) => {
                    let mut parts = sysctl_components(key);
                    if let Some(last) = parts.last_mut() {
                        *last = h;
                    }
                    d.help(format!("did you mean `{}`?", sysctl_key(&parts)))
                }
                None => d.help(format!("{} lists what this kernel has", sysctl::path(&sysctl_key(&e.probe[..e.probe.len() - 1])).display())),
            }
        }
        Verdict::RootOnly => Diag::error(format!("sysctl `{key}` of node `{node}` is machine-wide: only the machine's root namespace can set it"))
            .maybe_label(key_span, "not per namespace")
            .help("other namespaces have no such setting or see it read-only; set it on the machine, outside the lab"),
        Verdict::ReadOnly => Diag::error(format!("sysctl `{key}` of node `{node}` is read-only")).maybe_label(key_span, "read-only"),
        Verdict::Refused(why) => Diag::error(format!("the kernel refuses `{value}` for sysctl `{key}` of node `{node}`: {why}"))
            .maybe_label(value_span, "refused")
            .help(format!("see the kernel's documentation of `{}` for the values it takes", e.probe.last().map(String::as_str).unwrap_or(key))),
    };
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::{is_table_wide, reason};
    use crate::model::validate::sysctl_components;

    /// Messages carry the kernel's words only: no path, no errno number.
    #[test]
    fn reasons_are_the_kernels_words() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "/proc/sys/net/ipv4/ip_local_port_range: Invalid argument (os error 22)");
        assert_eq!(reason(&e), "Invalid argument");
    }

    /// Only the neighbour table's limits are table-wide; a device's own parameters are not.
    #[test]
    fn gc_limits_are_the_tables() {
        let probe = |k: &str| sysctl_components(k);
        assert!(is_table_wide(&probe("net.ipv4.neigh.lo.gc_thresh1")));
        assert!(is_table_wide(&probe("net.ipv6.neigh.lo.gc_interval")));
        assert!(!is_table_wide(&probe("net.ipv4.neigh.lo.gc_stale_time")));
        assert!(!is_table_wide(&probe("net.ipv4.conf.default.forwarding")));
    }
}
