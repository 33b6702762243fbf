//! Observed NAT/firewall tables, root qdiscs, BPF attachments and xfrm objects of a namespace,
//! as plain data. The xfrm types double as the planner's desired state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::netfeat::spec::BpfHookSpec;

/// What a namespace holds of vnet's features. Only filled for nodes that declare a feature
/// or whose record says the lab put one there (other nodes cost nothing to observe).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NsFeatures {
    /// The lab's nftables table, if present: its ruleset fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nft: Option<NftTable>,
    /// Root qdisc of each device (ifname ->).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub qdiscs: BTreeMap<String, ObservedQdisc>,
    /// BPF programs attached to devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bpf: Vec<ObservedBpf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xfrm_states: Vec<XfrmState>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xfrm_policies: Vec<XfrmPolicy>,
    /// Content hash of each BPF object the node declares (or why it could not be read).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub object_hashes: BTreeMap<PathBuf, Result<String, String>>,
}

impl NsFeatures {
    /// Nothing observed (usable in statics).
    pub const fn new() -> Self {
        NsFeatures { nft: None, qdiscs: BTreeMap::new(), bpf: Vec::new(), xfrm_states: Vec::new(), xfrm_policies: Vec::new(), object_hashes: BTreeMap::new() }
    }
}

/// The lab's table in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftTable {
    pub name: String,
    /// The fingerprint vnet stored in the table (a chain named `spec-<fingerprint>`).
    pub fingerprint: Option<String>,
    /// The table's content as nft listed it right after vnet wrote it, stored in the table (a
    /// chain named `content-<rules>-<digest>`); `None` in a table an older vnet wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<NftContent>,
    /// The table's content now.
    pub content: NftContent,
}

impl NftTable {
    /// How the table differs from what vnet wrote for its fingerprint's ruleset, if it does.
    pub fn edits(&self) -> Option<NftDrift> {
        match &self.written {
            None => Some(NftDrift::Unrecorded),
            Some(w) if *w != self.content => Some(NftDrift::Edited { rules: self.content.rules, written: w.rules }),
            Some(_) => None,
        }
    }
}

/// A digest of a table's chains and rules as `nft -j` lists them (handles and vnet's content
/// chain left out), and how many rules it holds. Compared with itself only: nft's listing is
/// what the digest covers, so nothing depends on how nft normalises rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NftContent {
    pub rules: usize,
    pub digest: String,
}

/// Why the planner rewrites the lab's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NftDrift {
    /// No table (a new node, or the table was deleted).
    Absent,
    /// A table of another ruleset (the file changed since, or vnet's fingerprint chain went).
    Other,
    /// vnet's ruleset, changed by hand since vnet wrote it (rules deleted, added or edited).
    Edited { rules: usize, written: usize },
    /// vnet's ruleset, written by an older vnet that kept no record of its content: rewritten
    /// once so that later edits show.
    Unrecorded,
}

/// A device's root qdisc with its decoded parameters (netem and tbf; others are opaque).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedQdisc {
    pub kind: String,
    pub handle: u32,
    #[serde(default)]
    pub params: QdiscParams,
    /// TCA_OPTIONS as dumped, to put a foreign qdisc back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<u8>,
}

impl ObservedQdisc {
    /// Whether vnet installed it (its handle `7654:`).
    pub fn is_vnet(&self) -> bool {
        self.handle == VNET_QDISC_HANDLE
    }

    /// Whether it is the qdisc the kernel gives a device by itself (`noqueue`, `fq_codel`, `mq`,
    /// ... with handle 0): one that anybody adds gets a handle of its own.
    pub fn is_default(&self) -> bool {
        self.handle == 0
    }

    /// The handle as `tc` writes it: `7654:`.
    pub fn handle_text(&self) -> String {
        format!("{:x}:", self.handle >> 16)
    }

    /// Kind, handle and decoded parameters in the file's words, as `tc` orders them:
    /// `netem 7654: delay 20ms loss 1%`, `tbf 8001: rate 10mbit burst 12500b`, `noqueue 0:`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.kind.clone(), self.handle_text()];
        parts.extend(self.params_words());
        parts.join(" ")
    }

    /// netem and tbf parameters in the file's words (other kinds are not decoded).
    fn params_words(&self) -> Vec<String> {
        use crate::model::netfeat::units::{format_duration, format_percent, format_rate};
        let p = &self.params;
        let mut parts = Vec::new();
        let pct = |v: u32| format_percent(v as f64 / u32::MAX as f64);
        match self.kind.as_str() {
            "netem" => {
                if p.delay_ns > 0 {
                    parts.push(format!("delay {}", format_duration(p.delay_ns)));
                }
                if p.jitter_ns > 0 {
                    parts.push(format!("jitter {}", format_duration(p.jitter_ns)));
                }
                for (n, v) in [("loss", p.loss), ("duplicate", p.duplicate), ("reorder", p.reorder), ("corrupt", p.corrupt)] {
                    if v > 0 {
                        parts.push(format!("{n} {}", pct(v)));
                    }
                }
                if p.rate > 0 {
                    parts.push(format!("rate {}", format_rate(p.rate)));
                }
                if p.limit != 1000 {
                    parts.push(format!("limit {}", p.limit));
                }
            }
            "tbf" => {
                parts.push(format!("rate {}", format_rate(p.rate)));
                parts.push(format!("burst {}b", p.burst));
            }
            _ => {}
        }
        parts
    }
}

/// Decoded netem/tbf parameters, in the kernel's units: probabilities scaled to u32::MAX.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdiscParams {
    pub delay_ns: u64,
    pub jitter_ns: u64,
    pub loss: u32,
    pub duplicate: u32,
    pub reorder: u32,
    pub corrupt: u32,
    /// Bytes per second.
    pub rate: u64,
    /// netem: packets; tbf: bytes.
    pub limit: u32,
    /// tbf bucket, bytes (approximate: the kernel keeps it as time).
    pub burst: u32,
}

/// A BPF program on a device hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedBpf {
    pub ifname: String,
    pub hook: BpfHookSpec,
    pub prog_id: u32,
    /// tc filter name (vnet's filters are named `vnet:<program>`); empty for XDP.
    pub name: String,
    /// tc filter priority (vnet uses `bpf::VNET_PRIO`).
    pub prio: u16,
    /// XDP attach mode as reported (1 driver, 2 generic, 3 offload).
    pub xdp_mode: u8,
}

/// An xfrm state (SA), as vnet declares and observes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmState {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    /// IPPROTO_ESP (50).
    pub proto: u8,
    /// 0 transport, 1 tunnel.
    pub mode: u8,
    pub reqid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aead: Option<XfrmAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enc: Option<XfrmAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<XfrmAlg>,
}

/// An algorithm with its key; `bits` is the ICV length (AEAD) or truncation (auth).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmAlg {
    pub name: String,
    #[serde(skip_serializing)]
    pub key: Vec<u8>,
    pub bits: u32,
}

impl std::fmt::Debug for XfrmAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs and plans.
        write!(f, "XfrmAlg({}, {} key bytes, {} bits)", self.name, self.key.len(), self.bits)
    }
}

/// An xfrm policy with its (single) template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmPolicy {
    pub src: IpNet,
    pub dst: IpNet,
    /// 0 in, 1 out, 2 fwd.
    pub dir: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpl: Option<XfrmTmpl>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmTmpl {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub mode: u8,
    pub reqid: u32,
}

pub const IPPROTO_ESP: u8 = 50;

/// Handle of the root qdiscs vnet installs (`7654:`): how vnet recognises its own.
pub const VNET_QDISC_HANDLE: u32 = 0x7654_0000;

/// Priority of vnet's tc BPF filters (with handle 1): how vnet recognises its own.
pub const VNET_BPF_PRIO: u16 = 0x7654;

pub fn dir_name(d: u8) -> &'static str {
    match d {
        0 => "in",
        1 => "out",
        2 => "fwd",
        _ => "?",
    }
}
