//! Decoding of the feature sections piece by piece (each NAT rule, each BPF attachment, each
//! IPsec connection on its own), so that one bad entry neither hides the others' errors nor
//! drops its whole node.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model::decode::piece;
use crate::model::diag::{Diag, Diagnostics};
use crate::model::file::NodeSpec;
use crate::model::source::{Document, Seg};

/// The node keys decoded here rather than with the rest of the node.
pub const NODE_SECTIONS: &[&str] = &["nat", "firewall", "tc", "bpf"];

/// Removes the feature sections from a node's mapping.
pub fn take_node_sections(obj: &mut Map<String, Value>) -> Vec<(String, Value)> {
    NODE_SECTIONS.iter().filter_map(|k| obj.remove(*k).map(|v| (k.to_string(), v))).collect()
}

/// Decodes the sections taken from a node into its spec.
pub fn node_sections(doc: &Document, diags: &mut Diagnostics, p: &[Seg], sections: Vec<(String, Value)>, spec: &mut NodeSpec) {
    for (key, v) in sections {
        let mut q = p.to_vec();
        q.push(Seg::Key(key.clone()));
        match key.as_str() {
            "nat" => spec.nat = piece(doc, diags, &q, v),
            "firewall" => spec.firewall = piece(doc, diags, &q, v),
            "bpf" => spec.bpf = list(doc, diags, &q, v),
            "tc" => match v {
                Value::Object(m) => {
                    for (dev, s) in m {
                        let mut r = q.clone();
                        r.push(Seg::Key(dev.clone()));
                        if let Some(t) = piece(doc, diags, &r, s) {
                            spec.tc.insert(dev, t);
                        }
                    }
                }
                Value::Null => {}
                other => diags.push(
                    Diag::error(format!("`tc` is a mapping from device name to settings, not {}", crate::model::decode::type_name(&other)))
                        .maybe_label(doc.value_span(&q), "expected a mapping"),
                ),
            },
            _ => {}
        }
    }
}

/// Decodes a list entry by entry.
pub fn list<T: DeserializeOwned>(doc: &Document, diags: &mut Diagnostics, p: &[Seg], v: Value) -> Vec<T> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let mut q = p.to_vec();
                q.push(Seg::Index(i));
                piece(doc, diags, &q, x)
            })
            .collect(),
        Value::Null => Vec::new(),
        other => {
            diags.push(
                Diag::error(format!("`{}` is a list, not {}", last(p), crate::model::decode::type_name(&other)))
                    .maybe_label(doc.value_span(p), "expected a list"),
            );
            Vec::new()
        }
    }
}

fn last(p: &[Seg]) -> String {
    match p.last() {
        Some(Seg::Key(k)) => k.clone(),
        _ => "this".into(),
    }
}
