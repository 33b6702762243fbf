//! `vnet impair`: change a running lab's traffic control on one device. The change is made to
//! the lab's recorded topology and applied like any `up` (only the difference), so `status`,
//! `plan` and a later `up FILE` all see it; `--clear` removes the device's entry, which puts
//! back the qdisc the device had before vnet.

use crate::error::{Error, Result};
use crate::model::lab::Endpoint;
use crate::model::netfeat::Impairment;
use crate::model::source::Document;
use crate::state;

use super::up::{up, UpOptions, UpReport};

/// Sets (`Some`) or clears (`None`) the traffic control of `node:ifname` in a running lab.
/// Exit codes as elsewhere: a malformed target or a request the lab cannot take (nothing to
/// clear, `lo`) is invalid input (2); a lab, node or device that is not there is a failed lookup
/// (1, as `exec` and `trace`); a kernel without the qdisc is refused by `up`'s preflight (3).
/// Each is refused before the record or the kernel changes.
pub fn impair(lab: &str, target: &str, imp: Option<&Impairment>) -> Result<UpReport> {
    let ep = Endpoint::parse(target).ok_or_else(|| invalid(format!("`{target}` is not NODE:IFACE")))?;
    let st = state::load(lab).map_err(|e| Error::io("read lab state", e))?.ok_or_else(|| Error::NoSuchLab(lab.to_string()))?;
    let mut topo = st.topology.clone().ok_or_else(|| Error::io(format!("lab {lab}"), std::io::Error::other("the lab is not up (no topology applied yet)")))?;
    let node = topo.nodes.get_mut(&ep.node).ok_or_else(|| Error::NoSuchNode { lab: lab.into(), node: ep.node.clone() })?;
    // Every node has `lo`, declared or not; the file's check says why it cannot be impaired.
    if ep.ifname == "lo" {
        return Err(invalid("traffic control on `lo` is not supported: impair the devices between nodes".into()));
    }
    if !node.interfaces.contains_key(&ep.ifname) {
        let known = node.interfaces.keys().filter(|i| i.as_str() != "lo").cloned().collect();
        return Err(Error::NoSuchDevice { lab: lab.into(), node: ep.node.clone(), device: ep.ifname.clone(), known });
    }
    match imp {
        Some(i) => {
            node.tc.insert(ep.ifname.clone(), i.to_spec());
        }
        None => {
            if node.tc.shift_remove(&ep.ifname).is_none() {
                return Err(invalid(format!("`{target}` has no traffic control to clear")));
            }
        }
    }
    // Relative BPF object paths stay relative to the lab's file.
    let name = st.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| format!("<lab {lab}>"));
    let value = serde_json::to_value(&topo).map_err(|e| Error::io("encode topology", std::io::Error::other(e)))?;
    let loaded = crate::model::load_document(Document::from_value(&name, value)).map_err(Error::Invalid)?;
    let opts = UpOptions { file: st.file.clone(), owner: super::up::Ownership::Keep, ..Default::default() };
    up(&loaded, &opts)
}

fn invalid(msg: String) -> Error {
    Error::Invalid(crate::model::Diagnostics::from(vec![crate::model::Diag::error(msg)]))
}
