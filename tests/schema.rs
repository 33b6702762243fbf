//! The committed JSON Schema (schema/vnet.schema.json) is the one generated from the model, and
//! it says the same as vnet about files: the examples validate, obviously wrong files do not.
//! `VNET_BLESS=1 cargo test --test schema` rewrites the committed schema.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};
use vnet::model::{Document, Format};

fn schema() -> Value {
    serde_json::from_str(&vnet::model::schema::json_schema()).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema is a valid JSON Schema")
}

/// A topology file as the format-neutral value vnet decodes (YAML, TOML or JSON).
fn value_of(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.display().to_string();
    Document::parse(&name, &text, Format::from_name(&name)).unwrap_or_else(|d| panic!("{d}")).value
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn committed_schema_is_the_generated_one() {
    let generated = vnet::model::schema::json_schema();
    let path = repo("schema/vnet.schema.json");
    if std::env::var_os("VNET_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("schema/vnet.schema.json exists");
    assert!(committed == generated, "schema/vnet.schema.json is stale: run `vnet schema > schema/vnet.schema.json` (or VNET_BLESS=1 cargo test --test schema)");
    // `vnet schema` prints the same.
    let out = Command::new(vnet_bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated);
}

#[test]
fn every_example_validates() {
    let v = validator();
    let mut n = 0;
    for e in std::fs::read_dir(repo("examples")).unwrap() {
        let p = e.unwrap().path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "toml" | "json")) {
            continue;
        }
        let errs = errors(&v, &value_of(&p));
        assert!(errs.is_empty(), "{} does not validate against the schema:\n{}", p.display(), errs.join("\n"));
        // And vnet agrees.
        vnet::model::load_file(&p).unwrap_or_else(|d| panic!("{d}"));
        n += 1;
    }
    assert!(n >= 3, "only {n} examples");
    let warn = repo("tests/corpus/warn/gateway-own-address.yaml");
    assert!(errors(&v, &value_of(&warn)).is_empty());
}

fn with_interface(iface: Value) -> Value {
    json!({"name": "s", "nodes": {"a": {"interfaces": {"eth0": iface}}, "b": {}}})
}

#[test]
fn interfaces_accept_common_and_kind_fields_with_kind_optional() {
    let v = validator();
    let peer = json!({});
    for (ifname, ok) in [
        ("eth0", json!({"peer": "b:eth0"})),
        (
            "eth0",
            json!({"peer": "b:eth0", "addresses": ["10.0.0.1/24"], "mtu": 1400, "up": true, "mac": "02:00:00:00:00:01", "master": "br0", "hairpin": false}),
        ),
        ("eth0", json!({"kind": "veth", "peer": "b:eth0", "mtu": 9000, "up": null})),
        ("br0", json!({"kind": "bridge", "stp": true, "ageing_time": 30, "forward_delay": 4, "multicast_snooping": false, "addresses": ["10.0.0.1/24"]})),
        ("lo", json!({"kind": "loopback", "mtu": 65536})),
        ("lo", json!({"up": false})),
    ] {
        let mut doc = json!({"name": "s", "isolated_host": true, "nodes": {"a": {"interfaces": {ifname: ok.clone()}}, "b": peer.clone()}});
        if ok.get("master").is_some() {
            doc["nodes"]["a"]["interfaces"]["br0"] = json!({"kind": "bridge"});
        }
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{ok} is refused:\n{}", errs.join("\n"));
        // vnet accepts the same file.
        let t = serde_json::to_string(&doc).unwrap();
        vnet::model::load_str("s.json", &t, Format::Json).unwrap_or_else(|d| panic!("{ok}: {d}"));
    }
}

#[test]
fn obviously_wrong_files_are_refused() {
    let v = validator();
    let cases = [
        ("unknown common field", with_interface(json!({"address": "10.0.0.1/24"}))),
        ("bridge option on a veth", with_interface(json!({"stp": true}))),
        ("bridge option on an explicit veth", with_interface(json!({"kind": "veth", "ageing_time": 3}))),
        ("veth option on a bridge", with_interface(json!({"kind": "bridge", "peer": "b:eth0"}))),
        ("option on the loopback", with_interface(json!({"kind": "loopback", "peer": "b:eth0"}))),
        ("unknown kind", with_interface(json!({"kind": "switch"}))),
        ("mtu as a string", with_interface(json!({"mtu": "1500"}))),
        ("negative mtu", with_interface(json!({"mtu": -1}))),
        ("addresses not a list", with_interface(json!({"addresses": "10.0.0.1/24"}))),
        ("unknown top-level field", json!({"name": "s", "nodes": {}, "isolated": true})),
        ("missing name", json!({"nodes": {}})),
        ("unknown node field", json!({"name": "s", "nodes": {"a": {"route": []}}})),
        ("three endpoints", json!({"name": "s", "nodes": {}, "links": [{"endpoints": ["a:e", "b:e", "c:e"]}]})),
        ("endpoint without node", json!({"name": "s", "nodes": {}, "links": [{"endpoints": ["a:e", "eth0"]}]})),
        ("route without to", json!({"name": "s", "nodes": {"a": {"routes": [{"via": "10.0.0.1"}]}}})),
        ("sysctl value a list", json!({"name": "s", "nodes": {"a": {"sysctls": {"net.ipv4.ip_forward": [1]}}}})),
        ("ipv6 mode", json!({"name": "s", "nodes": {}, "ipv6": "maybe"})),
    ];
    for (what, doc) in cases {
        assert!(!v.is_valid(&doc), "the schema accepts {what}: {doc}");
        // vnet refuses it too.
        let t = serde_json::to_string(&doc).unwrap();
        assert!(vnet::model::load_str("s.json", &t, Format::Json).is_err(), "vnet accepts {what}");
    }
}

#[test]
fn corpus_files_with_type_errors_are_refused_by_the_schema() {
    let v = validator();
    for f in [
        "unknown-field-interface.yaml",
        "unknown-field-top.yaml",
        "unknown-kind.yaml",
        "wrong-types.yaml",
        "json-wrong-types.json",
        "json-unknown-field.json",
        "toml-wrong-types.toml",
        "toml-bad-cidr.toml",
        "link-three-endpoints.yaml",
        "missing-name.yaml",
    ] {
        let p = repo(&format!("tests/corpus/bad/{f}"));
        assert!(!v.is_valid(&value_of(&p)), "the schema accepts {f}");
    }
}

/// Output into a pipe whose reader is gone (`vnet schema | head -c1`) ends vnet quietly by
/// SIGPIPE, as other command-line tools do, not with a panic.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::{Command, Stdio};
    for _ in 0..3 {
        let mut child = Command::new(common::vnet_bin()).arg("schema").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        use std::os::unix::process::ExitStatusExt;
        assert!(out.status.success() || out.status.signal() == Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
    }
}
