//! A running lab keeps where its nodes live: the host in the machine's root namespace or in an
//! isolated one, and each node's namespace name (`netns_prefix`). A file that moves them would
//! have `up` build the lab a second time beside the first and lose track of the old namespaces,
//! so `up` and `plan` refuse and say how to move it (down first). And a lab whose record lost
//! its namespaces (deleted by hand, an older crash) gets back those the kernel shows as its own.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::kernel::handle::NsHandle;
use crate::kernel::netns;
use crate::model::lab::HOST;
use crate::model::{Diag, Diagnostics, Lab};
use crate::observed::{NsState, Observed};
use crate::state::LabState;

/// Where a node lives.
#[derive(Debug, PartialEq)]
enum Place<'a> {
    Root,
    Netns(&'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Root => write!(f, "the machine's root namespace"),
            Place::Netns(n) => write!(f, "namespace `{n}`"),
        }
    }
}

/// Refuses a file that moves nodes of the running lab `prior` to other namespaces.
pub fn check(lab: &Lab, prior: Option<&LabState>) -> Result<()> {
    let Some(prior) = prior else { return Ok(()) };
    let host_was_root = !prior.isolated_host && prior.topology.as_ref().map_or(!prior.root_devices.is_empty(), |t| t.nodes.contains_key(HOST));
    let mut diags = Diagnostics::default();
    let mut renamed = 0;
    for node in lab.nodes.keys() {
        let was = match prior.netns.get(node) {
            Some(n) => Place::Netns(n),
            None if node == HOST && host_was_root => Place::Root,
            None => continue,
        };
        let wanted = lab.netns_name(node);
        let now = wanted.as_deref().map_or(Place::Root, Place::Netns);
        let (why, help) = match (&was, &now) {
            (a, b) if a == b => continue,
            (Place::Netns(_), Place::Netns(_)) => {
                renamed += 1;
                continue;
            }
            (Place::Netns(_), Place::Root) => {
                ("the lab was built with an isolated host", "pass `--isolated-host` (or set `isolated_host: true`) as when it was built")
            }
            (Place::Root, _) => ("the lab was built in the machine's root namespace", "drop `--isolated-host` / `isolated_host: true` as when it was built"),
        };
        diags.push(
            Diag::error(format!("node `{node}` of the running lab `{}` is in {was}; this file puts it in {now} ({why})", lab.name))
                .help(format!("{help}, or run `vnet down {}` first to build it anew there", lab.name)),
        );
    }
    if renamed > 0 {
        let old = prior.topology.as_ref().and_then(|t| t.netns_prefix.clone()).unwrap_or_else(|| format!("{}-", lab.name));
        diags.push(
            Diag::error(format!(
                "the running lab `{}` has its namespaces named `{old}NODE`; this file names them `{}NODE` (`netns_prefix` changed; {renamed} node(s) would move)",
                lab.name, lab.netns_prefix
            ))
            .help(format!("keep `netns_prefix: {old}` while the lab runs, or run `vnet down {}` first to build it anew", lab.name)),
        );
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(diags))
    }
}

/// Records the lab's own namespaces (marked as its) that the record does not list, so that
/// `down` removes them and `check` probes them. Returns whether the record changed.
pub fn adopt(lab: &Lab, observed: &Observed, handles: &BTreeMap<String, NsHandle>, st: &mut LabState) -> bool {
    let mut changed = false;
    for (node, ns) in &observed.nodes {
        if let (NsState::Owned(_), Some(name)) = (ns, lab.netns_name(node)) {
            if lab.nodes.contains_key(node) && !st.netns.contains_key(node) {
                // Observing opened it: its descriptor proves which namespace it is.
                if let Some(Ok((_, ino))) = handles.get(node).map(|h| netns::identity(&h.fd)) {
                    st.netns_ids.insert(name.clone(), ino);
                }
                st.netns.insert(node.clone(), name);
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(yaml: &str) -> Lab {
        crate::model::load_str("t.yaml", yaml, crate::model::Format::Yaml).expect("valid").lab
    }

    fn prior(lab: &Lab, isolated: bool, netns: &[(&str, &str)]) -> LabState {
        let mut st = LabState::new(&lab.name, isolated);
        st.topology = Some(lab.topology.clone());
        st.netns = netns.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        st
    }

    const TWO: &str = "name: t\nnodes:\n  host: {}\n  a: {}\n";

    #[test]
    fn the_same_places_pass() {
        let l = lab(TWO);
        check(&l, Some(&prior(&l, false, &[("a", "t-a")]))).unwrap();
        check(&l, None).unwrap();
    }

    #[test]
    fn a_new_prefix_is_refused_with_the_old_one_named() {
        let old = lab(TWO);
        let new = lab(&format!("{TWO}netns_prefix: u-\n"));
        let Err(Error::Invalid(d)) = check(&new, Some(&prior(&old, false, &[("a", "t-a")]))) else { panic!("refused") };
        let text = d.render(false);
        assert!(
            text.contains(
                "the running lab `t` has its namespaces named `t-NODE`; this file names them `u-NODE` (`netns_prefix` changed; 1 node(s) would move)"
            ),
            "{text}"
        );
        assert!(text.contains("keep `netns_prefix: t-` while the lab runs, or run `vnet down t` first"), "{text}");
    }

    #[test]
    fn moving_the_host_between_root_and_isolated_is_refused_both_ways() {
        let root = lab(TWO);
        let iso = lab(&format!("{TWO}isolated_host: true\n"));
        let Err(Error::Invalid(d)) = check(&root, Some(&prior(&iso, true, &[("host", "t-host"), ("a", "t-a")]))) else { panic!("refused") };
        let text = d.render(false);
        assert!(text.contains("node `host` of the running lab `t` is in namespace `t-host`; this file puts it in the machine's root namespace"), "{text}");
        assert!(text.contains("pass `--isolated-host`"), "{text}");
        let Err(Error::Invalid(d)) = check(&iso, Some(&prior(&root, false, &[("a", "t-a")]))) else { panic!("refused") };
        let text = d.render(false);
        assert!(text.contains("node `host` of the running lab `t` is in the machine's root namespace; this file puts it in namespace `t-host`"), "{text}");
    }

    #[test]
    fn new_and_removed_nodes_are_not_moves() {
        let old = lab(TWO);
        let new = lab("name: t\nnodes:\n  host: {}\n  b: {}\n");
        check(&new, Some(&prior(&old, false, &[("a", "t-a")]))).unwrap();
        // A lab without a host node may switch the flag: nothing moves.
        let no_host = lab("name: t\nnodes:\n  a: {}\n");
        let mut iso = no_host.clone();
        iso.isolated_host = true;
        check(&no_host, Some(&prior(&iso, true, &[("a", "t-a")]))).unwrap();
    }
}
