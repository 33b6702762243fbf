//! JSON Schema of the topology file, generated from the model (committed as
//! `schema/vnet.schema.json`; a test keeps the two equal and checks the examples against it).

use schemars::Schema;
use serde_json::Value;

/// The schema as pretty JSON.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(super::file::Topology);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}

/// Fixes up the derived schema of an interface (common settings flattened beside an internally
/// tagged kind): `kind` may be left out, which means a veth end, as the decoder does; and a
/// setting must be either common or of the interface's kind (`unevaluatedProperties` sees
/// the properties of the matching `oneOf` branch, where `additionalProperties` would not).
pub(crate) fn interface_schema(schema: &mut Schema) {
    if let Some(Value::Array(branches)) = schema.get_mut("oneOf") {
        for b in branches.iter_mut() {
            if b.pointer("/properties/kind/const") != Some(&Value::from("veth")) {
                continue;
            }
            if let Some(Value::Array(req)) = b.get_mut("required") {
                req.retain(|k| k != "kind");
                if req.is_empty() {
                    b.as_object_mut().map(|o| o.remove("required"));
                }
            }
            if let Some(kind) = b.pointer_mut("/properties/kind").and_then(Value::as_object_mut) {
                kind.insert("default".into(), Value::from("veth"));
                kind.insert("description".into(), Value::from("Device kind; without it an interface is a veth end (`lo` is the loopback)."));
            }
        }
    }
    schema.insert("unevaluatedProperties".into(), Value::Bool(false));
}
