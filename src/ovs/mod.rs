//! Open vSwitch from Rust: the OVSDB management protocol (RFC 7047, JSON-RPC on
//! ovsdb-server's unix socket) for configuration, in transactions; ovs-ofctl for flows; and
//! the lab's private ovsdb-server/ovs-vswitchd pair where the machine runs no Open vSwitch.
//!
//! - `jsonrpc`: the wire (also used for a daemon's unixctl socket).
//! - `db`: transactions and the OVSDB data notation.
//! - `vswitch`: the Open_vSwitch schema as vnet uses it: reading bridges/ports/interfaces,
//!   writing the plan's operations, waiting for ovs-vswitchd to apply them.
//! - `ofctl`: the lab's flows (by cookie) through ovs-ofctl.
//! - `daemon`: starting and stopping a private instance.

pub mod daemon;
pub mod db;
pub mod jsonrpc;
pub mod ofctl;
pub mod vswitch;

use std::path::{Path, PathBuf};

pub use db::{Client, DbError};

/// Where the machine's own Open vSwitch keeps its sockets (`OVS_RUNDIR`, as for ovs-vsctl).
pub fn system_rundir() -> PathBuf {
    std::env::var_os("OVS_RUNDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/openvswitch"))
}

/// The run directory of a lab's private Open vSwitch in a node.
pub fn private_dir(lab: &str, node: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("ovs").join(node)
}

/// An Open vSwitch instance, by its run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub rundir: PathBuf,
}

impl Target {
    pub fn new(rundir: impl Into<PathBuf>) -> Target {
        Target { rundir: rundir.into() }
    }
    pub fn db_sock(&self) -> PathBuf {
        self.rundir.join("db.sock")
    }
    /// The OpenFlow management socket ovs-vswitchd opens per bridge.
    pub fn mgmt(&self, bridge: &str) -> String {
        format!("unix:{}", self.rundir.join(format!("{bridge}.mgmt")).display())
    }
    pub fn connect(&self) -> Result<Client, DbError> {
        Client::connect(&self.db_sock())
    }
}

/// Whether an Open vSwitch database answers at `rundir`.
pub fn answers(rundir: &Path) -> bool {
    Target::new(rundir).connect().and_then(|mut c| c.list_dbs()).is_ok_and(|dbs| dbs.iter().any(|d| d == db::VSWITCH_DB))
}
