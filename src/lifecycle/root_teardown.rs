//! The lab's devices in the real root namespace (a lab whose `host` is not isolated): found
//! by their mark, deleted in one kernel batch when that removes nothing of anyone else's.

use crate::error::{Error, Result};
use crate::kernel::handle::{self, NsHandle};
use crate::kernel::{msg, observe};
use crate::model::lab::owner_mark;
use crate::observed::ObservedLink;
use crate::state::LabState;

use super::teardown::busy_bridges;

/// The root namespace's share of a `down`: found before anything is deleted, deleted beside
/// the lab's namespaces (`teardown::delete_namespaces`), which stay held meanwhile.
pub(super) struct RootTeardown {
    root: NsHandle,
    group: u32,
    deletes: RootDeletes,
    /// Bridges among `deletes.by_group` with many ports.
    busy: Vec<String>,
}

/// What the root namespace's share removed.
pub(super) struct RootRemoved {
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

impl RootTeardown {
    /// Devices carrying the lab's mark (or, for devices the record names, the lab's group: a
    /// device whose alias write was cut short).
    pub fn find(lab: &str, st: Option<&LabState>, group: u32) -> Result<RootTeardown> {
        let mark = owner_mark(lab);
        let mut root = handle::open_root("host").map_err(|e| Error::io("open a netlink socket", e))?;
        let links = observe::links(&mut root.nl).map_err(|e| Error::kernel("list devices", e))?;
        let recorded = |name: &str| st.map(|s| s.root_devices.iter().any(|d| d == name)).unwrap_or(false);
        let deletes = root_deletes(&links, group, |l| l.alias.as_deref() == Some(mark.as_str()) || (l.group == group && recorded(&l.name)));
        // Only bridges of the node `host` that are the root's and proven the lab's.
        let declared = st.filter(|s| !s.isolated_host).map(busy_bridges).unwrap_or_default().remove(crate::model::HOST).unwrap_or_default();
        let busy = declared.into_iter().filter(|b| deletes.by_group.iter().any(|(_, n)| n == b)).collect();
        Ok(RootTeardown { root, group, deletes, busy })
    }

    pub fn delete(self) -> RootRemoved {
        let RootTeardown { mut root, group, deletes, busy } = self;
        delete(&mut root, group, deletes, &busy)
    }
}

/// Deletes root devices as `deletes` says; `busy` bridges among them are quietened first.
pub(super) fn delete(root: &mut NsHandle, group: u32, deletes: RootDeletes, busy: &[String]) -> RootRemoved {
    let mut out = RootRemoved { removed: Vec::new(), problems: Vec::new() };
    let mut one_by_one = deletes.one_by_one;
    if !deletes.by_group.is_empty() {
        for b in busy {
            if let Err(e) = root.nl.request(msg::bridge_snooping_off(b), 0) {
                tracing::debug!("multicast snooping off on {b}: {e}");
            }
        }
        match root.nl.request(msg::del_group(group), 0) {
            Ok(_) => out.removed.extend(deletes.by_group.into_iter().map(|(_, n)| n)),
            Err(e) if e.errno == libc::ENODEV => out.removed.extend(deletes.by_group.into_iter().map(|(_, n)| n)),
            // Refused as a group: each on its own.
            Err(e) => {
                tracing::debug!("group delete in the root namespace: {e}");
                one_by_one.extend(deletes.by_group);
            }
        }
    }
    for (ifindex, name) in one_by_one {
        match root.nl.request(msg::del_link(ifindex), 0) {
            Ok(_) => out.removed.push(name),
            Err(e) if e.errno == libc::ENODEV => out.removed.push(name),
            Err(e) => out.problems.push(format!("delete device {name}: {e}")),
        }
    }
    out
}

/// How the lab's root devices go.
#[derive(Debug, Default, PartialEq)]
pub(super) struct RootDeletes {
    /// Removed by one RTM_DELLINK of the lab's interface group: (ifindex, name).
    by_group: Vec<(u32, String)>,
    /// Removed one request each.
    one_by_one: Vec<(u32, String)>,
}

/// Splits the lab's root devices (`mine`) between one group delete and single deletes.
/// Deleted one by one, a root-host star-1000's 1001 devices took 24 s (a kernel batch each,
/// with its RCU waits); by group, well under a second. The group delete is used only when
/// every device in the group is the lab's: a device of someone else's that carries the lab's
/// group number is never removed.
pub(super) fn root_deletes(links: &[ObservedLink], group: u32, mine: impl Fn(&ObservedLink) -> bool) -> RootDeletes {
    let whole_group = group != 0 && links.iter().filter(|l| l.group == group).all(&mine);
    let pair = |l: &ObservedLink| (l.ifindex, l.name.clone());
    let (by_group, one_by_one): (Vec<&ObservedLink>, Vec<&ObservedLink>) = links.iter().filter(|l| mine(l)).partition(|l| whole_group && l.group == group);
    if by_group.len() < 2 {
        // One device: a group request buys nothing.
        return RootDeletes { by_group: Vec::new(), one_by_one: by_group.into_iter().chain(one_by_one).map(pair).collect() };
    }
    RootDeletes { by_group: by_group.into_iter().map(pair).collect(), one_by_one: one_by_one.into_iter().map(pair).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: u32 = 0x1234_5678;

    fn link(ifindex: u32, name: &str, group: u32, alias: Option<&str>) -> ObservedLink {
        ObservedLink { ifindex, name: name.into(), group, alias: alias.map(String::from), ..Default::default() }
    }

    fn names(v: &[(u32, String)]) -> Vec<&str> {
        v.iter().map(|(_, n)| n.as_str()).collect()
    }

    fn marked(l: &ObservedLink) -> bool {
        l.alias.as_deref() == Some("vnet:lab")
    }

    #[test]
    fn a_group_holding_only_the_labs_devices_goes_in_one_request() {
        let links = [
            link(1, "lo", 0, None),
            link(2, "eth0", 0, None),
            link(3, "br0", GROUP, Some("vnet:lab")),
            link(4, "v1", GROUP, Some("vnet:lab")),
            link(5, "v2", GROUP, Some("vnet:lab")),
        ];
        let d = root_deletes(&links, GROUP, marked);
        assert_eq!(names(&d.by_group), ["br0", "v1", "v2"]);
        assert!(d.one_by_one.is_empty());
    }

    #[test]
    fn a_foreign_device_in_the_labs_group_turns_the_group_delete_off() {
        let links = [link(3, "br0", GROUP, Some("vnet:lab")), link(4, "v1", GROUP, Some("vnet:lab")), link(9, "theirs", GROUP, None)];
        let d = root_deletes(&links, GROUP, marked);
        assert!(d.by_group.is_empty());
        assert_eq!(names(&d.one_by_one), ["br0", "v1"], "never `theirs`");
    }

    #[test]
    fn marked_devices_outside_the_group_and_single_devices_go_one_by_one() {
        // A device moved to another group by hand is still the lab's (marked): deleted alone.
        let links = [link(3, "br0", GROUP, Some("vnet:lab")), link(4, "v1", GROUP, Some("vnet:lab")), link(5, "v2", 7, Some("vnet:lab"))];
        let d = root_deletes(&links, GROUP, marked);
        assert_eq!(names(&d.by_group), ["br0", "v1"]);
        assert_eq!(names(&d.one_by_one), ["v2"]);
        let d = root_deletes(&links[..1], GROUP, marked);
        assert_eq!((names(&d.by_group), names(&d.one_by_one)), (vec![], vec!["br0"]));
    }

    #[test]
    fn group_zero_is_everyones_and_never_deleted_as_a_group() {
        let links = [link(3, "a", 0, Some("vnet:lab")), link(4, "b", 0, Some("vnet:lab"))];
        let d = root_deletes(&links, 0, marked);
        assert!(d.by_group.is_empty());
        assert_eq!(names(&d.one_by_one), ["a", "b"]);
    }
}
