//! JSON Schema of the topology file, generated from the model (committed as
//! `schema/vnet.schema.json`; a test keeps the two equal).

/// The schema as pretty JSON.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(super::file::Topology);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}
