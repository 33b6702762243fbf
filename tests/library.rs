//! The library as a test author uses it from their own crate: warnings, panics in `run`,
//! labs from text, the running topology and updates, errors (miette, `Debug`, names, builder
//! mistakes), a node whose namespace is gone, and the record's file across updates.

mod common;

use std::process::Command;

use common::*;
use vnet::{Error, Format, Lab, LabOptions};

fn pair(name: &str) -> Lab {
    Lab::builder(name).link("a:eth0", "b:eth0").address("a:eth0", "10.0.0.1/24").address("b:eth0", "10.0.0.2/24").up().unwrap()
}

const PAIR_YAML: &str = "name: textpair
nodes:
  a:
    interfaces: { eth0: { addresses: [10.0.0.1/24] } }
  b:
    interfaces: { eth0: { addresses: [10.0.0.2/24] } }
links:
  - endpoints: [a:eth0, b:eth0]
";

/// Runs one `#[ignore]`d test of this file in a child process and returns its stderr (what
/// `cargo test` would show of it).
fn stderr_of(test: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap()).args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{test}: {}\n{err}", String::from_utf8_lossy(&out.stdout));
    err
}

// A. Warnings.

#[test]
fn warnings_of_validation_are_kept_and_printed_once_when_the_lab_comes_up() {
    require_root();
    let lab = Lab::builder("mtuwarn").link("a:eth0", "b:eth0").mtu("a:eth0", 1400).mtu("b:eth0", 1500).up().unwrap();
    let w: Vec<String> = lab.warnings().iter().map(|d| d.message.clone()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("MTU"), "{w:?}");
    assert!(lab.warnings().iter().all(|d| d.severity == vnet::Severity::Warning));
    // A lab without any has none.
    assert!(pair("nowarn").warnings().is_empty());

    let err = stderr_of("prints_its_warnings");
    let first = err.find("is up with 1 warning:").unwrap_or_else(|| panic!("no warning printed:\n{err}"));
    assert!(err[first..].contains(&w[0]), "{err}");
    assert_eq!(err.matches(&w[0]).count(), 1, "printed once:\n{err}");
    // An update that adds a warning prints that one.
    let second = err[first + 1..].find("is up with 1 warning:").map(|i| i + first + 1).unwrap_or_else(|| panic!("update's warning not printed:\n{err}"));
    assert!(err[second..].contains("MTU"), "{err}");
}

#[test]
#[ignore = "run by warnings_of_validation_are_kept_and_printed_once_when_the_lab_comes_up"]
fn prints_its_warnings() {
    let mut lab = Lab::builder("mtuwarn")
        .link("a:eth0", "b:eth0")
        .mtu("a:eth0", 1400)
        .mtu("b:eth0", 1500)
        .link("a:eth1", "c:eth0")
        .mtu("a:eth1", 1500)
        .mtu("c:eth0", 1500)
        .up()
        .unwrap();
    // Unchanged: nothing new to say.
    lab.update(lab.topology().clone()).unwrap();
    let mut t = lab.topology().clone();
    t.nodes["c"].interfaces["eth0"].mtu = Some(1300);
    lab.update(t).unwrap();
    assert_eq!(lab.warnings().len(), 2, "{}", lab.warnings());
}

// B. A panic in `run` keeps its message.

#[test]
#[should_panic(expected = "my assertion message 42")]
fn a_panic_in_run_goes_on_with_its_own_message() {
    require_root();
    let lab = pair("runpanic");
    lab.node("a").run(|| assert_eq!(1 + 1, 3, "my assertion message 42"));
}

#[test]
fn catch_unwind_of_run_sees_the_payload() {
    require_root();
    let lab = pair("runcatch");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lab.node("b").run(|| -> u32 { std::panic::panic_any(7u64) })));
    assert_eq!(r.unwrap_err().downcast_ref::<u64>(), Some(&7));
    // The node is still usable after it.
    assert!(lab.node("b").run(|| std::net::UdpSocket::bind("10.0.0.2:0").is_ok()));
}

// C. Labs from text, the running topology, updates.

#[test]
fn a_lab_comes_up_from_yaml_toml_and_json_text() {
    require_root();
    let lab = Lab::from_str(PAIR_YAML, Format::Yaml).unwrap();
    assert!(lab.name().starts_with("textpair-"), "{}", lab.name());
    assert!(lab.node("a").netns().is_some());
    assert!(reach(&lab, "a", "10.0.0.2"));
    drop(lab);

    let toml = "name = \"tomlpair\"\n[nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.1/24\"]\n[nodes.b.interfaces.eth0]\naddresses = [\"10.0.0.2/24\"]\n[[links]]\nendpoints = [\"a:eth0\", \"b:eth0\"]\n";
    let lab = Lab::from_str(toml, Format::Toml).unwrap();
    assert!(reach(&lab, "b", "10.0.0.1"));
    drop(lab);

    let json = r#"{"name": "jsonpair", "nodes": {"a": {"interfaces": {"eth0": {"addresses": ["10.0.0.1/24"]}}}, "b": {"interfaces": {"eth0": {"addresses": ["10.0.0.2/24"]}}}}, "links": [{"endpoints": ["a:eth0", "b:eth0"]}]}"#;
    let lab = Lab::from_str_with(json, Format::Json, LabOptions::default()).unwrap();
    assert!(reach(&lab, "a", "10.0.0.2"));
    let name = lab.name().to_string();
    drop(lab);
    assert_gone(&name);
}

#[test]
fn invalid_text_is_reported_at_its_place_in_the_text() {
    let e = Lab::from_str("name: bad\nnodes:\n  a: { interfaces: { eth0: { addresses: [10.0.0.300/24] } } }\n", Format::Yaml).err().expect("invalid");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("<yaml>:3:42: error: bad address `10.0.0.300/24`"), "{e}");
    let e = vnet::Topology::parse("name: bad\nnodes: [a]\n", Format::Yaml).unwrap_err();
    assert!(e.to_string().starts_with("<yaml>:2:8: error: "), "{e}");
}

#[test]
fn the_running_topology_is_edited_and_applied() {
    require_root();
    let mut lab = pair("edit");
    let t = lab.topology();
    assert_eq!(t.name, lab.name());
    assert!(t.isolated_host);
    assert_eq!(t.links[0].endpoints, ["a:eth0", "b:eth0"]);

    let mut t = lab.topology().clone();
    t.nodes["b"].interfaces["eth0"].addresses.push("10.0.0.3/24".into());
    lab.update(t).unwrap();
    assert!(reach(&lab, "a", "10.0.0.3"));
    assert!(lab.topology().nodes["b"].interfaces["eth0"].addresses.contains(&"10.0.0.3/24".to_string()));

    // From text: whatever its name says, the lab keeps its own.
    let text = PAIR_YAML.replace("10.0.0.1/24", "10.0.0.4/24");
    let name = lab.name().to_string();
    lab.update_from_str(&text, Format::Yaml).unwrap();
    assert_eq!(lab.name(), name);
    assert!(reach(&lab, "b", "10.0.0.4"));
    assert!(!ping(&lab, "a", "10.0.0.3"), "the address the text no longer has is gone");

    // From a file.
    let file = temp_topology("edit-update", "yaml", &PAIR_YAML.replace("10.0.0.2/24", "10.0.0.5/24"));
    lab.update_from_file(&file).unwrap();
    assert!(reach(&lab, "a", "10.0.0.5"));
    assert_eq!(record_file(&name), Some(std::fs::canonicalize(&file).unwrap()));
}

fn record_file(lab: &str) -> Option<std::path::PathBuf> {
    vnet::state::load(lab).unwrap().expect("the lab has a record").file
}

// G. The record keeps the file a lab came from.

#[test]
fn an_update_keeps_the_file_the_lab_came_from_in_its_record() {
    require_root();
    let file = temp_topology("kept", "yaml", PAIR_YAML);
    let mut lab = Lab::from_file(&file).unwrap();
    let canonical = std::fs::canonicalize(&file).unwrap();
    assert_eq!(record_file(lab.name()), Some(canonical.clone()));
    let mut t = lab.topology().clone();
    t.nodes["a"].interfaces["eth0"].addresses.push("10.0.0.7/24".into());
    lab.update(t).unwrap();
    assert_eq!(record_file(lab.name()), Some(canonical.clone()));
    lab.update_from_str(PAIR_YAML, Format::Yaml).unwrap();
    assert_eq!(record_file(lab.name()), Some(canonical));
    // A lab from text has none.
    let lab = Lab::from_str(PAIR_YAML, Format::Yaml).unwrap();
    assert_eq!(record_file(lab.name()), None);
}

// D. Errors.

#[test]
fn an_invalid_file_renders_through_miette_with_its_text_underlined() {
    let file = temp_topology("miette", "yaml", "name: bad\nnodes:\n  a:\n    interfaces: { eth0: { addresses: [10.0.0.300/24] } }\n  b:\n    interfaces: { eth0: { mtu: 9 } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n");
    let e = Lab::from_file(&file).err().expect("invalid");
    assert!(matches!(e, Error::Invalid(_)));
    let path = file.display().to_string();

    // `?` into miette::Result, rendered as a terminal would show it (without colour).
    fn build(f: &std::path::Path) -> miette::Result<Lab> {
        Ok(Lab::from_file(f)?)
    }
    let report = build(&file).err().unwrap();
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).render_report(&mut out, report.as_ref()).unwrap();
    assert!(out.contains(&format!("[{path}:4:")), "the snippet names the file:\n{out}");
    assert!(out.contains("interfaces: { eth0: { addresses: [10.0.0.300/24] } }"), "the snippet shows the line:\n{out}");
    assert!(out.contains("interfaces: { eth0: { mtu: 9 } }"), "both findings are underlined:\n{out}");
    let d: &dyn miette::Diagnostic = &e;
    assert_eq!(d.labels().unwrap().count(), 2);
    assert!(d.source_code().is_some());

    // Debug is the findings rendered, not a dump of the value.
    let debug = format!("{e:?}");
    assert!(!debug.contains("Invalid(") && !debug.contains("Diagnostics {"), "{debug}");
    assert!(debug.contains(&format!("[{path}:4:")) && debug.contains("10.0.0.300/24"), "{debug}");
    assert!(!debug.contains('\x1b'), "no colour: {debug}");
    // As a `Box<dyn Error>` a test returns, too.
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert_eq!(format!("{boxed:?}"), debug);
}

#[test]
fn debug_of_other_errors_is_their_message() {
    let e = Error::NoSuchLab("nope".into());
    assert_eq!(format!("{e:?}"), e.to_string());
    let e = Error::io("open something", std::io::Error::from_raw_os_error(libc::ENOENT));
    assert_eq!(format!("{e:?}"), "open something: No such file or directory (os error 2)");
}

#[test]
fn a_base_name_that_is_no_lab_name_is_refused_in_the_users_words() {
    for (name, says) in [
        ("", "lab name cannot be empty"),
        ("ÿÿÿ", "lab name `ÿÿÿ` contains `ÿ`"),
        ("a b/c", "lab name `a b/c` contains a space"),
        ("-lab", "lab name `-lab` must start with a letter, digit or `_`"),
    ] {
        let e = Lab::builder(name).node("a").up().err().unwrap_or_else(|| panic!("{name:?} is refused"));
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(says), "{name:?}: {e}");
        assert!(!e.to_string().contains(&format!("-{}-", std::process::id())), "{name:?}: no generated name: {e}");
    }
    // In a file, too, at the name's place.
    let file = temp_topology("badname", "yaml", "name: a b\nnodes: { a: {} }\n");
    let e = Lab::from_file(&file).err().unwrap();
    assert!(e.to_string().starts_with(&format!("{}:1:7: error: lab name `a b` contains a space", file.display())), "{e}");
}

#[test]
fn a_long_base_name_is_cut_to_fit() {
    require_root();
    let lab = Lab::builder(&"x".repeat(100)).node("a").up().unwrap();
    assert!(lab.name().len() <= 40 && lab.name().starts_with("xxxx"), "{}", lab.name());
}

#[test]
fn the_multi_host_refusal_names_the_file() {
    require_root();
    let file = repo("examples/multihost.yaml");
    let e = Lab::from_file(&file).err().expect("a multi-host lab needs a host");
    let s = e.to_string();
    assert!(s.starts_with(&format!("{}: error: lab multihost-", file.display())), "{s}");
    assert!(s.contains("spans hosts (h1, h2)"), "{s}");
    assert!(!s.contains("<input>"), "{s}");
}

#[test]
fn builder_mistakes_are_errors_at_up() {
    let e = Lab::builder("noc").link("a", "b:eth0").up().err().expect("refused");
    assert!(e.to_string().contains("endpoint `a` is not of the form `node:ifname`"), "{e}");
    let e = Lab::builder("noc").link("a:eth0", "b:eth0").address("a", "10.0.0.1/24").mtu("b", 1400).up().err().expect("refused");
    assert_eq!(e.exit_code(), 2);
    let s = e.to_string();
    assert!(s.contains("<lab noc>: error: address(\"a\", ..): `a` is not of the form `node:ifname`"), "{s}");
    assert!(s.contains("mtu(\"b\", ..): `b` is not of the form `node:ifname`"), "{s}");
}

// E. A node whose namespace is gone.

#[test]
fn a_command_in_a_node_whose_namespace_is_gone_fails_to_start() {
    require_root();
    let lab = pair("nsgone");
    let netns = lab.node("a").netns().unwrap().to_string();
    let del = Command::new("ip").args(["netns", "del", &netns]).status().unwrap();
    assert!(del.success());
    let e = lab.node("a").command("true").status().expect_err("does not start");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(lab.node("a").command("true").output().is_err());
    match lab.node("a").try_command("true") {
        Err(Error::MissingNamespace { node, netns: n, .. }) => assert_eq!((node.as_str(), n.as_str()), ("a", netns.as_str())),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("no namespace, no command"),
    }
    // The other node still works.
    assert!(lab.node("b").command("true").status().unwrap().success());
}
