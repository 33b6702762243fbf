//! The Open_vSwitch database as vnet uses it (vswitch.ovsschema): bridges, ports and
//! interfaces read into `observed::ovs`, the plan's operations written as one transaction,
//! and the wait for ovs-vswitchd to apply a configuration (what `ovs-vsctl --wait` does:
//! bump `next_cfg`, then watch `cur_cfg` reach it).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::db::{self, Client, DbError, Row};
use crate::observed::ovs::{OvsBridgeObs, OvsIfaceObs, OvsPortObs, MARK_KEY};
use crate::plan::ovs::{BridgeRow, OvsOp, PortRow};

/// How long ovs-vswitchd may take to apply a configuration.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// external_ids marking a row as the lab's.
pub fn mark(lab: &str) -> Value {
    db::map([(MARK_KEY, lab)])
}

/// Creates the root row of a fresh database (what `ovs-vsctl init` does), unless present.
pub fn init(c: &mut Client) -> Result<(), DbError> {
    let rows = c.select("Open_vSwitch", vec![], &["_uuid"])?;
    if rows.is_empty() {
        c.transact(vec![db::wait("Open_vSwitch", vec![], &["_uuid"], true, vec![], 0), db::insert("Open_vSwitch", json!({}), "root")])?;
    }
    Ok(())
}

fn lab_of(row: &Row) -> Option<String> {
    row.get("external_ids").and_then(|v| db::map_get(v, MARK_KEY))
}

fn uuid_col(row: &Row) -> String {
    row.get("_uuid").and_then(db::uuid_of).unwrap_or_default().to_string()
}

fn str_col(row: &Row, col: &str) -> String {
    row.get(col).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Every bridge with its ports and interfaces (flows are read separately, by `ofctl`).
pub fn snapshot(c: &mut Client) -> Result<Vec<OvsBridgeObs>, DbError> {
    let r = c.transact(vec![
        db::select("Bridge", vec![], &["_uuid", "name", "ports", "datapath_type", "fail_mode", "controller", "external_ids"]),
        db::select("Port", vec![], &["_uuid", "name", "interfaces", "tag", "trunks", "vlan_mode", "external_ids"]),
        db::select("Interface", vec![], &["_uuid", "name", "type", "ofport_request", "mtu_request", "mac", "external_ids"]),
        db::select("Controller", vec![], &["_uuid", "target"]),
    ])?;
    let bridges = db::rows_of(&r[0])?;
    let ports = db::rows_of(&r[1])?;
    let ifaces = db::rows_of(&r[2])?;
    let controllers = db::rows_of(&r[3])?;
    let ifaces: HashMap<String, OvsIfaceObs> = ifaces
        .iter()
        .map(|i| {
            let o = OvsIfaceObs {
                uuid: uuid_col(i),
                name: str_col(i, "name"),
                kind: str_col(i, "type"),
                ofport_request: db::opt_int(i.get("ofport_request")),
                mtu_request: db::opt_int(i.get("mtu_request")),
                mac: db::opt_str(i.get("mac")),
                lab: lab_of(i),
            };
            (o.uuid.clone(), o)
        })
        .collect();
    let ports: HashMap<String, OvsPortObs> = ports
        .iter()
        .map(|p| {
            let o = OvsPortObs {
                uuid: uuid_col(p),
                name: str_col(p, "name"),
                tag: db::opt_int(p.get("tag")),
                trunks: db::ints(p.get("trunks")),
                vlan_mode: db::opt_str(p.get("vlan_mode")),
                interfaces: p.get("interfaces").map(db::uuids).unwrap_or_default().iter().filter_map(|u| ifaces.get(u).cloned()).collect(),
                lab: lab_of(p),
            };
            (o.uuid.clone(), o)
        })
        .collect();
    let targets: HashMap<String, String> = controllers.iter().map(|c| (uuid_col(c), str_col(c, "target"))).collect();
    let mut out: Vec<OvsBridgeObs> = bridges
        .iter()
        .map(|b| {
            let mut ports: Vec<OvsPortObs> = b.get("ports").map(db::uuids).unwrap_or_default().iter().filter_map(|u| ports.get(u).cloned()).collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            let mut controllers: Vec<String> = b.get("controller").map(db::uuids).unwrap_or_default().iter().filter_map(|u| targets.get(u).cloned()).collect();
            controllers.sort();
            OvsBridgeObs {
                uuid: uuid_col(b),
                name: str_col(b, "name"),
                datapath_type: str_col(b, "datapath_type"),
                fail_mode: db::opt_str(b.get("fail_mode")),
                controllers,
                ports,
                lab: lab_of(b),
                flow_cookies: None,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Builds one transaction from operations on one OVS.
struct Txn<'a> {
    lab: &'a str,
    ops: Vec<Value>,
    n: usize,
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    db::optional(v.map(Into::into))
}

impl Txn<'_> {
    fn name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}", self.n)
    }

    fn port_columns(p: &PortRow) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("tag".into(), opt(p.tag.map(i64::from)));
        m.insert("trunks".into(), db::set(p.trunks.iter().map(|t| json!(t)).collect()));
        m.insert("vlan_mode".into(), opt(p.vlan_mode.clone()));
        m
    }

    fn iface_columns(p: &PortRow) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ofport_request".into(), opt(p.ofport.map(i64::from)));
        if p.internal {
            m.insert("mtu_request".into(), opt(p.mtu.map(i64::from)));
            m.insert("mac".into(), opt(p.mac.clone()));
        }
        m
    }

    /// Inserts a port with its interface; returns the port's uuid-name.
    fn insert_port(&mut self, p: &PortRow) -> String {
        let iname = self.name("iface");
        let pname = self.name("port");
        let mut irow = Self::iface_columns(p);
        irow.insert("name".into(), json!(p.name));
        if p.internal {
            irow.insert("type".into(), json!("internal"));
        }
        irow.insert("external_ids".into(), mark(self.lab));
        self.ops.push(db::insert("Interface", Value::Object(irow), &iname));
        let mut prow = Self::port_columns(p);
        prow.insert("name".into(), json!(p.name));
        prow.insert("interfaces".into(), db::named_uuid(&iname));
        prow.insert("external_ids".into(), mark(self.lab));
        self.ops.push(db::insert("Port", Value::Object(prow), &pname));
        pname
    }

    fn controller(&mut self, target: &Option<String>) -> Value {
        match target {
            None => db::set(Vec::new()),
            Some(t) => {
                let cname = self.name("controller");
                self.ops.push(db::insert("Controller", json!({ "target": t, "external_ids": mark(self.lab) }), &cname));
                db::named_uuid(&cname)
            }
        }
    }

    fn bridge_is_ours(&self, name: &str) -> Vec<Value> {
        vec![db::eq("name", json!(name)), db::cond("external_ids", "includes", mark(self.lab))]
    }

    fn add_bridge(&mut self, b: &BridgeRow) {
        // Refused atomically if the name was taken since it was observed.
        self.ops.push(db::wait("Bridge", vec![db::eq("name", json!(b.name))], &["name"], true, vec![], 0));
        let mut ports = vec![db::named_uuid(&self.insert_port(&b.local))];
        for p in &b.ports {
            ports.push(db::named_uuid(&self.insert_port(p)));
        }
        let controller = self.controller(&b.controller);
        let bname = self.name("bridge");
        let row = json!({
            "name": b.name,
            "ports": db::set(ports),
            "datapath_type": b.datapath,
            "fail_mode": opt(b.fail_mode.clone()),
            "controller": controller,
            "external_ids": mark(self.lab),
        });
        self.ops.push(db::insert("Bridge", row, &bname));
        self.ops.push(db::mutate("Open_vSwitch", vec![], vec![db::mutation("bridges", "insert", db::set(vec![db::named_uuid(&bname)]))]));
    }

    fn push_op(&mut self, op: &OvsOp, now: &[OvsBridgeObs]) -> Result<(), DbError> {
        let missing = |what: &str| DbError::Reply(format!("{what} is not in the database (changed since it was observed?)"));
        match op {
            OvsOp::AddBridge { bridge } => self.add_bridge(bridge),
            OvsOp::SetBridge { bridge, datapath, fail_mode, controller } => {
                let mut row = Map::new();
                if let Some(d) = datapath {
                    row.insert("datapath_type".into(), json!(d));
                }
                if let Some(m) = fail_mode {
                    row.insert("fail_mode".into(), opt(m.clone()));
                }
                if let Some(c) = controller {
                    let v = self.controller(c);
                    row.insert("controller".into(), v);
                }
                let w = self.bridge_is_ours(bridge);
                self.ops.push(db::update("Bridge", w, Value::Object(row)));
            }
            OvsOp::AddPort { bridge, port } => {
                let pname = self.insert_port(port);
                let w = self.bridge_is_ours(bridge);
                self.ops.push(db::mutate("Bridge", w, vec![db::mutation("ports", "insert", db::set(vec![db::named_uuid(&pname)]))]));
            }
            OvsOp::SetPort { bridge, port } => {
                let b = now.iter().find(|b| &b.name == bridge).ok_or_else(|| missing(&format!("bridge {bridge}")))?;
                let p = b.port(&port.name).ok_or_else(|| missing(&format!("port {} of bridge {bridge}", port.name)))?;
                self.ops.push(db::update("Port", vec![db::is_uuid(&p.uuid)], Value::Object(Self::port_columns(port))));
                if let Some(i) = p.interfaces.iter().find(|i| i.name == port.name) {
                    self.ops.push(db::update("Interface", vec![db::is_uuid(&i.uuid)], Value::Object(Self::iface_columns(port))));
                }
            }
            OvsOp::DelPort { bridge, port } => {
                // Already gone is fine (a port moved between two of the lab's bridges).
                let Some(p) = now.iter().find(|b| &b.name == bridge).and_then(|b| b.port(port)) else {
                    return Ok(());
                };
                if p.lab.as_deref() != Some(self.lab) {
                    return Err(DbError::Reply(format!("port {port} of bridge {bridge} does not carry the lab's mark")));
                }
                let w = self.bridge_is_ours(bridge);
                self.ops.push(db::mutate("Bridge", w, vec![db::mutation("ports", "delete", db::set(vec![db::uuid(&p.uuid)]))]));
            }
            OvsOp::DelBridge { bridge } => {
                let Some(b) = now.iter().find(|b| &b.name == bridge) else {
                    return Ok(());
                };
                if b.lab.as_deref() != Some(self.lab) {
                    return Err(DbError::Reply(format!("bridge {bridge} does not carry the lab's mark")));
                }
                self.ops.push(db::mutate("Open_vSwitch", vec![], vec![db::mutation("bridges", "delete", db::set(vec![db::uuid(&b.uuid)]))]));
            }
            OvsOp::Flows { .. } | OvsOp::Start | OvsOp::Stop => {}
        }
        Ok(())
    }
}

/// Writes `ops` (bridges and ports of one OVS) in one transaction, removals first, then waits
/// until ovs-vswitchd applied it. Returns the interfaces ovs-vswitchd could not attach, with
/// its reason (`could not open network device p1 (No such device)`).
pub fn apply(c: &mut Client, lab: &str, ops: &[&OvsOp]) -> Result<(), DbError> {
    let now = snapshot(c)?;
    let mut t = Txn { lab, ops: vec![db::comment(&format!("vnet: lab {lab}"))], n: 0 };
    let removals = ops.iter().filter(|o| matches!(o, OvsOp::DelPort { .. } | OvsOp::DelBridge { .. }));
    let rest = ops.iter().filter(|o| !matches!(o, OvsOp::DelPort { .. } | OvsOp::DelBridge { .. }));
    for op in removals.chain(rest) {
        t.push_op(op, &now)?;
    }
    if t.ops.len() == 1 {
        return Ok(());
    }
    commit_and_wait(c, t.ops)?;
    interface_errors(c, lab, ops)
}

/// Commits `ops` with `next_cfg` bumped, then waits for ovs-vswitchd to reach it.
pub fn commit_and_wait(c: &mut Client, mut ops: Vec<Value>) -> Result<(), DbError> {
    ops.push(db::mutate("Open_vSwitch", vec![], vec![db::mutation("next_cfg", "+=", json!(1))]));
    ops.push(db::select("Open_vSwitch", vec![], &["next_cfg"]));
    let r = c.transact(ops)?;
    let want = r
        .iter()
        .rev()
        .find_map(|x| x.get("rows").and_then(|rows| rows.get(0)).and_then(|row| row.get("next_cfg")).and_then(Value::as_i64))
        .ok_or_else(|| DbError::Reply("no next_cfg in the reply".into()))?;
    wait_applied(c, want)
}

/// Waits until ovs-vswitchd has applied configuration `want` (`cur_cfg >= want`).
pub fn wait_applied(c: &mut Client, want: i64) -> Result<(), DbError> {
    let deadline = Instant::now() + APPLY_TIMEOUT;
    loop {
        let rows = c.select("Open_vSwitch", vec![], &["cur_cfg"])?;
        let cur = rows.first().and_then(|r| r.get("cur_cfg")).and_then(Value::as_i64).unwrap_or(0);
        if cur >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DbError::Reply(format!(
                "ovs-vswitchd did not apply the configuration within {} s (cur_cfg {cur}, waiting for {want}); is it running?",
                APPLY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first interface the operations added that ovs-vswitchd reports an error for.
fn interface_errors(c: &mut Client, lab: &str, ops: &[&OvsOp]) -> Result<(), DbError> {
    let mut names: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            OvsOp::AddBridge { bridge } => names.extend(std::iter::once(&bridge.local).chain(&bridge.ports).map(|p| p.name.as_str())),
            OvsOp::AddPort { port, .. } => names.push(&port.name),
            _ => {}
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let rows = c.select("Interface", vec![db::cond("external_ids", "includes", mark(lab))], &["name", "error", "ofport"])?;
    let errors: BTreeMap<String, String> = rows.iter().filter_map(|r| Some((str_col(r, "name"), db::opt_str(r.get("error"))?))).collect();
    for n in names {
        if let Some(e) = errors.get(n) {
            return Err(DbError::Reply(format!("ovs-vswitchd could not attach `{n}`: {e}")));
        }
    }
    Ok(())
}

/// Removes every Bridge, and every Port on a bridge not the lab's, that carries the lab's
/// mark (`down` on a shared Open vSwitch); returns the names of the bridges removed.
pub fn remove_lab(c: &mut Client, lab: &str) -> Result<Vec<String>, DbError> {
    let now = snapshot(c)?;
    let mut ops = Vec::new();
    let mut removed = Vec::new();
    for b in &now {
        if b.lab.as_deref() == Some(lab) {
            ops.push(db::mutate("Open_vSwitch", vec![], vec![db::mutation("bridges", "delete", db::set(vec![db::uuid(&b.uuid)]))]));
            removed.push(b.name.clone());
        } else {
            let ours: Vec<Value> = b.ports.iter().filter(|p| p.lab.as_deref() == Some(lab)).map(|p| db::uuid(&p.uuid)).collect();
            if !ours.is_empty() {
                ops.push(db::mutate("Bridge", vec![db::is_uuid(&b.uuid)], vec![db::mutation("ports", "delete", db::set(ours))]));
            }
        }
    }
    if ops.is_empty() {
        return Ok(removed);
    }
    commit_and_wait(c, ops)?;
    Ok(removed)
}

/// Labs that own rows in this database.
pub fn labs(bridges: &[OvsBridgeObs]) -> Vec<String> {
    let mut out: Vec<String> = bridges.iter().flat_map(|b| std::iter::once(b.lab.clone()).chain(b.ports.iter().map(|p| p.lab.clone()))).flatten().collect();
    out.sort();
    out.dedup();
    out
}
