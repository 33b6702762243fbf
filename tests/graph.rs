//! `vnet graph` from a topology file and from a running lab, in all three formats.

mod common;

use std::process::Command;

use common::*;
use vnet::Lab;

fn graph(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(vnet_bin()).arg("graph").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn file_to_svg_dot_and_mermaid() {
    let file = repo("examples/routed.yaml").display().to_string();
    let (code, svg, err) = graph(&[&file]);
    assert_eq!(code, 0, "{err}");
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("class=\"node\"").count(), 4);
    assert_eq!(svg.matches("class=\"veth\"").count(), 3);
    assert!(svg.contains(">fd02::1/64</text>") && svg.contains(">veth, mtu 1400</text>"));
    let (_, dot, _) = graph(&[&file, "--format", "dot"]);
    assert!(dot.contains("\"a:eth0\" -- \"r:eth0\" [penwidth=2];"), "{dot}");
    let (_, mm, _) = graph(&[&file, "--format", "mermaid"]);
    assert!(mm.contains("a__eth0 === r__eth0"), "{mm}");
    // -o writes the file; the picture in docs/ is this command's output.
    let out = std::env::temp_dir().join(format!("vnet-graph-{}.svg", std::process::id()));
    let (code, stdout, _) = graph(&[&file, "-o", &out.display().to_string()]);
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), svg);
    assert_eq!(
        std::fs::read_to_string(repo("docs/routed.svg")).unwrap(),
        svg,
        "docs/routed.svg is up to date (vnet graph examples/routed.yaml -o docs/routed.svg)"
    );
    let _ = std::fs::remove_file(out);
}

#[test]
fn running_lab_and_errors() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let (code, dot, err) = graph(&[lab.name(), "--format", "dot"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.contains(&format!("graph \"{}\"", lab.name())));
    assert!(dot.contains("\"host:veth1\" -- \"host:br1\" [color=\"#2563eb\", label=\"port\"];"), "{dot}");
    assert!(dot.contains("bridge (switch)\\n192.168.1.10/24"), "{dot}");
    assert!(dot.contains(&format!("\"{}\" -- \"ns1:eth0\" [penwidth=2];", "host:veth1")), "{dot}");

    // Drawn from the kernel, not from the record: a device deleted by hand is missing, one
    // added by hand in a lab namespace is drawn as not declared, with its pair.
    let (ns1, ns2) = (lab.node("ns1").netns().unwrap().to_string(), lab.node("ns2").netns().unwrap().to_string());
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["-n", &ns1, "link", "add", "extra0", "type", "veth", "peer", "name", "extra1"]);
    ip(&["-n", &ns2, "link", "del", "eth0"]);
    let (code, dot, err) = graph(&[lab.name(), "--format", "dot"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.contains("\"ns2:eth0\" [label=\"eth0\\nveth, MISSING\\n192.168.1.12/24\", fillcolor=\"#ffffff\", color=\"#dc2626\"];"), "{dot}");
    assert!(dot.contains("\"ns1:extra0\" [label=\"extra0\\nveth, down, not declared\", fillcolor=\"#ffffff\", color=\"#d97706\"];"), "{dot}");
    assert!(dot.contains("\"ns1:extra0\" -- \"ns1:extra1\" [penwidth=2];"), "{dot}");
    // The peer of the deleted end went with it.
    assert!(dot.contains("\"host:veth2\" [label=\"veth2\\nveth, MISSING\""), "{dot}");
    assert!(!dot.contains("\"host:veth2\" -- \"ns2:eth0\""), "{dot}");

    let (code, _, err) = graph(&["no-such-lab-or-file"]);
    assert_eq!(code, 1);
    assert!(err.contains("`no-such-lab-or-file` is neither a topology file nor a lab"), "{err}");
    let (code, _, err) = graph(&[lab.name(), "--format", "png"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown format `png`: svg, dot or mermaid"), "{err}");
}
