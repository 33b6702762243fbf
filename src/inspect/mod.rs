//! A running lab opened for inspection (`check`, `trace`, `doctor`, `capture`): its record, its
//! validated model (read again from the topology file when the file still matches what was
//! applied, so findings can point at file lines), and its nodes' namespaces.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::kernel::nl::{KernelError, Netlink};
use crate::model::source::Seg;
use crate::model::{self, Loaded};
use crate::probe::route::{self, Lookup, RouteAnswer};
use crate::state::{self, LabState};

/// A lab that is up, with namespace descriptors for each node.
pub struct RunningLab {
    pub state: LabState,
    pub loaded: Loaded,
    /// Whether `loaded` came from the topology file (so spans point into it).
    pub from_file: bool,
    /// node -> its namespace (every node whose namespace exists; a non-isolated host is vnet's own).
    pub fds: BTreeMap<String, OwnedFd>,
    /// node -> the name of its namespace, for nodes whose namespace is gone (deleted outside
    /// vnet): `doctor` reports them, `check` fails their probes, `trace` refuses them.
    pub missing: BTreeMap<String, String>,
    /// Route-netlink sockets opened inside nodes, kept for repeated lookups.
    sockets: Mutex<BTreeMap<String, Netlink>>,
}

impl RunningLab {
    /// Opens a lab by name from its record.
    pub fn open(lab: &str) -> Result<RunningLab> {
        let st = state::load(lab).map_err(|e| Error::io("read lab state", e))?.ok_or_else(|| Error::NoSuchLab(lab.to_string()))?;
        let topo = st.topology.clone().ok_or_else(|| Error::io(format!("lab {lab}"), std::io::Error::other("the lab is not up (no topology applied yet)")))?;
        // The file, when it still says what was applied, gives findings their line numbers.
        let mut from_file = false;
        let mut loaded = None;
        if let Some(f) = &st.file {
            if let Ok(l) = model::load_file_with(f, |t| {
                t.name = topo.name.clone();
                t.netns_prefix = topo.netns_prefix.clone();
                t.isolated_host = topo.isolated_host;
            }) {
                if l.lab.topology == topo {
                    loaded = Some(l);
                    from_file = true;
                }
            }
        }
        let loaded = match loaded {
            Some(l) => l,
            None => model::load_topology(&topo).map_err(Error::Invalid)?,
        };
        RunningLab::with(st, loaded, from_file)
    }

    /// Wraps a lab this process brought up (the test library). A node whose namespace no longer
    /// exists is recorded in `missing` rather than failing the whole lab.
    pub fn with(state: LabState, loaded: Loaded, from_file: bool) -> Result<RunningLab> {
        let mut fds = BTreeMap::new();
        let mut missing = BTreeMap::new();
        for node in loaded.lab.nodes.keys() {
            let fd = match loaded.lab.netns_name(node) {
                Some(n) => match netns::open(&n) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        missing.insert(node.clone(), n);
                        continue;
                    }
                    Err(e) => return Err(Error::io(format!("open namespace {n} of node {node}"), e)),
                },
                None => netns::open_current().map_err(|e| Error::io("open the root namespace", e))?,
            };
            fds.insert(node.clone(), fd);
        }
        Ok(RunningLab { state, loaded, from_file, fds, missing, sockets: Mutex::new(BTreeMap::new()) })
    }

    pub fn name(&self) -> &str {
        &self.loaded.lab.name
    }

    pub fn model(&self) -> &model::Lab {
        &self.loaded.lab
    }

    /// The namespace of a node.
    pub fn fd(&self, node: &str) -> Result<&OwnedFd> {
        if let Some(netns) = self.missing.get(node) {
            return Err(self.missing_error(node, netns));
        }
        self.fds.get(node).ok_or_else(|| Error::NoSuchNode { lab: self.name().to_string(), node: node.to_string() })
    }

    fn missing_error(&self, node: &str, netns: &str) -> Error {
        Error::MissingNamespace { lab: self.name().to_string(), node: node.to_string(), netns: netns.to_string() }
    }

    /// Whether a node's namespace is gone.
    pub fn is_missing(&self, node: &str) -> bool {
        self.missing.contains_key(node)
    }

    /// Why nothing can be done in a node whose namespace is gone (`None` when it is there).
    pub fn missing_reason(&self, node: &str) -> Option<String> {
        self.missing.get(node).map(|n| format!("the namespace of node {node} ({n}) is missing: run `vnet up` again"))
    }

    /// The node whose namespace is gone that declares `addr`, if any.
    pub fn missing_holder(&self, addr: std::net::IpAddr) -> Option<&str> {
        self.missing
            .keys()
            .find(|n| self.model().nodes.get(*n).is_some_and(|node| node.interfaces.values().any(|i| i.addresses.iter().any(|a| a.addr() == addr))))
            .map(String::as_str)
    }

    /// Namespaces of `nodes`, in order, for `probe::ns::in_each` (`None`: vnet's own, the
    /// non-isolated host). Fails for a node whose namespace is gone: running there would
    /// mean running in vnet's own namespace.
    pub fn borrowed<'a>(&'a self, nodes: &[String]) -> Result<Vec<Option<BorrowedFd<'a>>>> {
        nodes.iter().map(|n| self.fd(n).map(|f| Some(f.as_fd()))).collect()
    }

    /// Runs `f` on the node's route-netlink socket, opened inside the node on first use and kept.
    fn with_socket<T>(&self, node: &str, f: impl FnOnce(&mut Netlink) -> Result<T>) -> Result<T> {
        let mut socks = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let nl = match socks.entry(node.to_string()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let fd = self.fd(node)?;
                let nl = crate::probe::ns::in_one(Some(fd), Netlink::open)
                    .and_then(|r| r)
                    .map_err(|e| Error::io(format!("open a netlink socket in node {node}"), e))?;
                v.insert(nl)
            }
        };
        f(nl)
    }

    /// The kernel's route lookup in a node, with the output device's name.
    pub fn route_lookup(&self, node: &str, l: Lookup) -> Result<std::result::Result<(RouteAnswer, Option<String>), KernelError>> {
        self.with_socket(node, |nl| {
            Ok(match route::get(nl, &l) {
                Ok(a) => {
                    let dev = a.oif.and_then(|i| ifname(nl, i));
                    Ok((a, dev))
                }
                Err(e) => Err(e),
            })
        })
    }

    /// The state of the neighbour entry for `addr` on device `ifindex` of a node.
    pub fn neighbour_state(&self, node: &str, ifindex: u32, addr: std::net::IpAddr) -> Result<Option<String>> {
        self.with_socket(node, |nl| Ok(crate::probe::neigh::entry_state(nl, ifindex, addr)))
    }

    /// The neighbour entry for `addr` on device `ifindex` of a node (state, last confirmation).
    pub fn neighbour_entry(&self, node: &str, ifindex: u32, addr: std::net::IpAddr) -> Result<Option<crate::probe::neigh::Entry>> {
        self.with_socket(node, |nl| Ok(crate::probe::neigh::entry(nl, ifindex, addr)))
    }

    /// Where a node has neighbour entries: (device, address) of each.
    pub fn neighbour_keys(&self, node: &str) -> Result<std::collections::HashSet<(u32, std::net::IpAddr)>> {
        self.with_socket(node, |nl| crate::probe::neigh::keys(nl).map_err(|e| Error::kernel(format!("list neighbours of {node}"), e)))
    }

    /// A device of a node, as the kernel reports it, and whether it resolves neighbours at all
    /// (no IFF_NOARP: a tun, a point-to-point tunnel or WireGuard has no link layer, so no
    /// ARP/NDP entry ever shows for what it sends); `None` when there is no such device.
    pub fn device(&self, node: &str, ifindex: u32) -> Result<Option<(crate::observed::ObservedLink, bool)>> {
        self.with_socket(node, |nl| {
            let mut m = netlink_packet_route::link::LinkMessage::default();
            m.header.index = ifindex;
            let Ok(reply) = nl.request(netlink_packet_route::RouteNetlinkMessage::GetLink(m), 0) else { return Ok(None) };
            Ok(reply.into_iter().find_map(|r| match r {
                netlink_packet_route::RouteNetlinkMessage::NewLink(l) => {
                    let resolves = !l.header.flags.contains(netlink_packet_route::link::LinkFlags::Noarp);
                    Some((crate::kernel::observe::decode_link(&l), resolves))
                }
                _ => None,
            }))
        })
    }

    /// Deletes the learned (not permanent) neighbour entries of a node, so a big check can run
    /// in waves within the machine-wide table's limit.
    pub fn flush_neighbours(&self, node: &str) -> Result<()> {
        self.with_socket(node, |nl| Self::flush_learned(nl, node))
    }

    fn flush_learned(nl: &mut Netlink, node: &str) -> Result<()> {
        use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage, NeighbourState};
        use netlink_packet_route::RouteNetlinkMessage;
        let entries =
            nl.dump(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default())).map_err(|e| Error::kernel(format!("list neighbours of {node}"), e))?;
        let dels: Vec<crate::kernel::nl::Request> = entries
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) if !matches!(n.header.state, NeighbourState::Permanent | NeighbourState::Noarp) => {
                    let dst = n.attributes.into_iter().find(|a| matches!(a, NeighbourAttribute::Destination(_)))?;
                    let mut d = NeighbourMessage::default();
                    d.header.family = n.header.family;
                    d.header.ifindex = n.header.ifindex;
                    d.attributes.push(dst);
                    Some(crate::kernel::nl::Request::new(RouteNetlinkMessage::DelNeighbour(d), 0))
                }
                _ => None,
            })
            .collect();
        for r in nl.batch(dels) {
            if let Err(e) = r {
                if e.errno != libc::ENOENT {
                    return Err(Error::kernel(format!("delete a neighbour entry of {node}"), e));
                }
            }
        }
        Ok(())
    }

    /// `file:line:col` of a place in the topology file, when the model came from the file.
    pub fn location(&self, path: &[Seg]) -> Option<String> {
        if !self.from_file {
            return None;
        }
        let span = self.loaded.document.key_span(path)?;
        let (line, col) = self.loaded.document.source.line_col(span.start);
        Some(format!("{}:{line}:{col}", self.loaded.document.source.name))
    }
}
pub mod view;

/// The name of a device by index, asked of the socket's namespace.
pub fn ifname(nl: &mut Netlink, index: u32) -> Option<String> {
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = index;
    let reply = nl.request(netlink_packet_route::RouteNetlinkMessage::GetLink(m), 0).ok()?;
    reply.into_iter().find_map(|r| match r {
        netlink_packet_route::RouteNetlinkMessage::NewLink(l) => Some(crate::kernel::observe::decode_link(&l).name),
        _ => None,
    })
}
