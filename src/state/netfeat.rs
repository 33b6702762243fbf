//! What the lab record keeps about NAT tables, qdiscs, BPF attachments and IPsec: the previous
//! qdisc of each device to restore, which programs were attached (by content hash and kernel
//! program id), generated keys, and where tables and xfrm objects were put.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::netfeat::spec::{BpfHookSpec, XdpMode};
use crate::observed::netfeat::ObservedQdisc;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Keys vnet generated (hex), by `<connection>/<aead|enc|auth>/<direction>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// Nodes holding the lab's nftables table.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub nft: BTreeSet<String>,
    /// node -> device -> the root qdisc before vnet replaced it (`None`: the kernel default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub qdiscs: BTreeMap<String, BTreeMap<String, Option<ObservedQdisc>>>,
    /// node -> programs vnet attached.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bpf: BTreeMap<String, Vec<BpfRecord>>,
    /// Nodes holding xfrm states/policies of the lab.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub xfrm: BTreeSet<String>,
}

impl Record {
    pub fn is_empty(&self) -> bool {
        *self == Record::default()
    }
}

/// One attached program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfRecord {
    pub dev: String,
    pub hook: BpfHookSpec,
    pub object: PathBuf,
    pub program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<XdpMode>,
    /// Content hash of the object when it was attached.
    pub hash: String,
    /// The kernel's id of the attached program.
    pub prog_id: u32,
}
