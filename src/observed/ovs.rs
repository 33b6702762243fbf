//! What an Open vSwitch instance holds for a node, as plain data (filled by
//! `lifecycle::ovs`, compared by `plan::ovs`).

use serde::Serialize;

/// The external_ids key carrying the owning lab on every row vnet creates.
pub const MARK_KEY: &str = "vnet-lab";

/// Which Open vSwitch serves a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "instance", rename_all = "snake_case")]
pub enum OvsInstance {
    /// None yet: vnet starts a private one for the lab in the node.
    #[default]
    None,
    /// The lab's own ovsdb-server and ovs-vswitchd, running in the node (run directory).
    Private { dir: String },
    /// The machine's Open vSwitch (the node is the real root namespace); only rows carrying
    /// the lab's mark are the lab's.
    System { rundir: String },
}

impl OvsInstance {
    pub fn is_running(&self) -> bool {
        !matches!(self, OvsInstance::None)
    }
    /// Where the instance keeps its sockets (db.sock, BRIDGE.mgmt).
    pub fn rundir(&self) -> Option<&str> {
        match self {
            OvsInstance::None => None,
            OvsInstance::Private { dir } => Some(dir),
            OvsInstance::System { rundir } => Some(rundir),
        }
    }
}

/// One Interface row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OvsIfaceObs {
    pub uuid: String,
    pub name: String,
    /// `""` (a system device), `internal`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub ofport_request: Option<i64>,
    pub mtu_request: Option<i64>,
    /// The MAC requested for an internal interface.
    pub mac: Option<String>,
    /// The lab named in external_ids, if any.
    pub lab: Option<String>,
}

/// One Port row with its interfaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OvsPortObs {
    pub uuid: String,
    pub name: String,
    pub tag: Option<i64>,
    pub trunks: Vec<i64>,
    pub vlan_mode: Option<String>,
    pub interfaces: Vec<OvsIfaceObs>,
    pub lab: Option<String>,
}

/// One Bridge row with its ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OvsBridgeObs {
    pub uuid: String,
    pub name: String,
    pub datapath_type: String,
    pub fail_mode: Option<String>,
    pub controllers: Vec<String>,
    pub ports: Vec<OvsPortObs>,
    pub lab: Option<String>,
    /// Cookies of the lab's flows on this bridge (`None` when not read: not the lab's).
    pub flow_cookies: Option<Vec<u64>>,
}

impl OvsBridgeObs {
    pub fn port(&self, name: &str) -> Option<&OvsPortObs> {
        self.ports.iter().find(|p| p.name == name)
    }
}

/// One node's Open vSwitch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ObservedOvs {
    pub instance: OvsInstance,
    /// Whether the kernel has the openvswitch datapath (decides `datapath: auto`).
    pub kernel_datapath: bool,
    pub bridges: Vec<OvsBridgeObs>,
}

impl ObservedOvs {
    pub fn bridge(&self, name: &str) -> Option<&OvsBridgeObs> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The bridge holding a port of that name, if any.
    pub fn port_owner(&self, port: &str) -> Option<&OvsBridgeObs> {
        self.bridges.iter().find(|b| b.port(port).is_some() || b.ports.iter().any(|p| p.interfaces.iter().any(|i| i.name == port)))
    }

    /// Whether `ifname` is an internal interface (a device OVS made) of a row owned by `lab`.
    pub fn owns_device(&self, lab: &str, ifname: &str) -> bool {
        self.bridges
            .iter()
            .filter(|b| b.lab.as_deref() == Some(lab))
            .flat_map(|b| &b.ports)
            .flat_map(|p| &p.interfaces)
            .any(|i| i.name == ifname && i.kind == "internal" && i.lab.as_deref() == Some(lab))
    }
}
