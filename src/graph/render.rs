//! The picture as SVG (drawn from `layout`, no graphviz needed), Graphviz DOT and Mermaid. Pure.

use std::fmt::Write as _;

use super::ir::{Dev, DevState, EdgeKind, Graph};
use super::layout::{layout, Rect, MARGIN};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fill(kind: &str) -> &'static str {
    match kind {
        "bridge" => "#dbeafe",
        "veth" => "#ffffff",
        "vxlan" => "#e0e7ff",
        "macvlan" | "macvtap" | "ipvlan" | "ipvtap" | "vlan" => "#fef3c7",
        "loopback" => "#f3f4f6",
        _ => "#f0fdf4",
    }
}

fn kind_label(d: &Dev) -> String {
    let mut k = if d.kind == "bridge" { "bridge (switch)".to_string() } else { d.kind.clone() };
    if let Some(m) = d.mtu {
        k.push_str(&format!(", mtu {m}"));
    }
    if !d.up {
        k.push_str(", down");
    }
    match d.state {
        DevState::Declared => {}
        DevState::Missing => k.push_str(", MISSING"),
        DevState::Undeclared => k.push_str(", not declared"),
    }
    k
}

/// The outline of a device: red for one the kernel lacks, amber for one the file lacks.
fn stroke(d: &Dev) -> &'static str {
    match d.state {
        DevState::Declared => "#334155",
        DevState::Missing => "#dc2626",
        DevState::Undeclared => "#d97706",
    }
}

/// Anchor of an edge on a device box, facing the other end.
fn anchor(r: &Rect, other: &Rect) -> (f64, f64) {
    if other.cy() > r.y + r.h {
        (r.cx(), r.y + r.h)
    } else if other.cy() < r.y {
        (r.cx(), r.y)
    } else if other.cx() > r.cx() {
        (r.x + r.w, r.cy())
    } else {
        (r.x, r.cy())
    }
}

/// SVG drawing.
pub fn svg(g: &Graph) -> String {
    let l = layout(g);
    let legend_h = 28.0;
    let (w, h) = (l.width.max(420.0), l.height + legend_h);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(s, "<title>lab {}</title>", esc(&g.name));
    let _ = writeln!(s, r##"<rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="#ffffff"/>"##);
    // Nodes.
    for n in &l.nodes {
        let r = &n.rect;
        let _ = writeln!(
            s,
            r##"<g class="node"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="10" fill="#f8fafc" stroke="#64748b" stroke-width="1.5"/>"##,
            r.x, r.y, r.w, r.h
        );
        let _ =
            writeln!(s, r##"<text x="{:.1}" y="{:.1}" font-size="14" font-weight="bold" fill="#0f172a">{}</text></g>"##, r.x + 10.0, r.y + 18.0, esc(&n.name));
    }
    // Edges under the devices.
    for e in &g.edges {
        let (Some(a), Some(b)) = (l.device(&e.from.0, &e.from.1), l.device(&e.to.0, &e.to.1)) else { continue };
        let (p, q) = (anchor(&a.rect, &b.rect), anchor(&b.rect, &a.rect));
        let style = match e.kind {
            EdgeKind::Veth => r##"stroke="#1e293b" stroke-width="2""##,
            EdgeKind::Port => r##"stroke="#2563eb" stroke-width="1.5""##,
            EdgeKind::Lower => r##"stroke="#b45309" stroke-width="1.5" stroke-dasharray="2,3""##,
            EdgeKind::Tunnel { .. } => r##"stroke="#4f46e5" stroke-width="2" stroke-dasharray="8,5""##,
        };
        let class = match e.kind {
            EdgeKind::Veth => "veth",
            EdgeKind::Port => "port",
            EdgeKind::Lower => "lower",
            EdgeKind::Tunnel { .. } => "tunnel",
        };
        let _ = writeln!(s, r#"<line class="{class}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {style}/>"#, p.0, p.1, q.0, q.1);
        if let EdgeKind::Tunnel { vni } = e.kind {
            let (mx, my) = ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
            let label = format!("VNI {vni}");
            let tw = label.len() as f64 * 6.5 + 8.0;
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{tw:.1}" height="16" rx="3" fill="#ffffff" stroke="#4f46e5"/><text x="{mx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#4f46e5">{label}</text>"##,
                mx - tw / 2.0,
                my - 8.0,
                my + 4.0
            );
        }
    }
    // Devices.
    for d in &l.devices {
        let Some(dev) = g.device(&(d.node.clone(), d.name.clone())) else { continue };
        let r = &d.rect;
        let dash = if dev.up && dev.state != DevState::Missing { "" } else { r#" stroke-dasharray="4,3""# };
        let rx = if dev.kind == "bridge" { 12 } else { 4 };
        let _ = writeln!(
            s,
            r##"<g class="device"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{rx}" fill="{}" stroke="{}"{dash}/>"##,
            r.x,
            r.y,
            r.w,
            r.h,
            fill(&dev.kind),
            stroke(dev)
        );
        let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}" font-size="12" font-weight="bold" fill="#0f172a">{}</text>"##, r.x + 7.0, r.y + 15.0, esc(&dev.name));
        let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#475569">{}</text>"##, r.x + 7.0, r.y + 28.0, esc(&kind_label(dev)));
        let mut lines: Vec<String> = dev.addresses.iter().take(2).cloned().collect();
        if dev.addresses.len() > 2 {
            lines[1] = format!("+{} more", dev.addresses.len() - 1);
        }
        for (i, a) in lines.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" font-family="DejaVu Sans Mono, monospace" fill="#065f46">{}</text>"##,
                r.x + 7.0,
                r.y + 42.0 + 12.0 * i as f64,
                esc(a)
            );
        }
        s.push_str("</g>\n");
    }
    // Legend.
    let y = l.height + 8.0;
    let items = [
        ("veth", r##"stroke="#1e293b" stroke-width="2""##),
        ("bridge port", r##"stroke="#2563eb" stroke-width="1.5""##),
        ("lower device", r##"stroke="#b45309" stroke-width="1.5" stroke-dasharray="2,3""##),
        ("vxlan", r##"stroke="#4f46e5" stroke-width="2" stroke-dasharray="8,5""##),
    ];
    let mut x = MARGIN;
    for (label, style) in items {
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {style}/><text x="{:.1}" y="{:.1}" font-size="11" fill="#334155">{label}</text>"##,
            y + 6.0,
            x + 26.0,
            y + 6.0,
            x + 32.0,
            y + 10.0
        );
        x += 40.0 + label.len() as f64 * 6.5;
    }
    s.push_str("</svg>\n");
    s
}

fn dot_id(node: &str, dev: &str) -> String {
    format!("\"{}:{}\"", node.replace('"', "\\\""), dev.replace('"', "\\\""))
}

/// Graphviz DOT: one cluster per node.
pub fn dot(g: &Graph) -> String {
    let mut s = format!(
        "graph \"{}\" {{\n  compound=true;\n  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica, fontsize=10];\n",
        g.name.replace('"', "\\\"")
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let _ = writeln!(s, "  subgraph cluster_{i} {{\n    label=\"{}\";\n    style=rounded;", n.name.replace('"', "\\\""));
        for d in &n.devices {
            let mut label = format!("{}\\n{}", d.name, kind_label(d));
            for a in &d.addresses {
                label.push_str(&format!("\\n{a}"));
            }
            let _ = writeln!(s, "    {} [label=\"{label}\", fillcolor=\"{}\", color=\"{}\"];", dot_id(&n.name, &d.name), fill(&d.kind), stroke(d));
        }
        s.push_str("  }\n");
    }
    for e in &g.edges {
        let attr = match e.kind {
            EdgeKind::Veth => "penwidth=2".to_string(),
            EdgeKind::Port => "color=\"#2563eb\", label=\"port\"".into(),
            EdgeKind::Lower => "style=dotted, color=\"#b45309\", label=\"lower\"".into(),
            EdgeKind::Tunnel { vni } => format!("style=dashed, color=\"#4f46e5\", label=\"VNI {vni}\""),
        };
        let _ = writeln!(s, "  {} -- {} [{attr}];", dot_id(&e.from.0, &e.from.1), dot_id(&e.to.0, &e.to.1));
    }
    s.push_str("}\n");
    s
}

fn mm_id(node: &str, dev: &str) -> String {
    let clean = |x: &str| x.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>();
    format!("{}__{}", clean(node), clean(dev))
}

/// Mermaid flowchart: one subgraph per node.
pub fn mermaid(g: &Graph) -> String {
    let mut s = String::from("flowchart TB\n");
    for n in &g.nodes {
        let _ = writeln!(s, "  subgraph {}[\"{}\"]", mm_id(&n.name, ""), n.name.replace('"', "'"));
        for d in &n.devices {
            let mut label = format!("<b>{}</b><br/>{}", d.name, kind_label(d));
            for a in &d.addresses {
                label.push_str(&format!("<br/>{a}"));
            }
            let shape = if d.kind == "bridge" { ("([", "])") } else { ("[", "]") };
            let _ = writeln!(s, "    {}{}\"{}\"{}", mm_id(&n.name, &d.name), shape.0, label.replace('"', "'"), shape.1);
        }
        s.push_str("  end\n");
    }
    for e in &g.edges {
        let (a, b) = (mm_id(&e.from.0, &e.from.1), mm_id(&e.to.0, &e.to.1));
        let _ = match e.kind {
            EdgeKind::Veth => writeln!(s, "  {a} === {b}"),
            EdgeKind::Port => writeln!(s, "  {a} -->|port| {b}"),
            EdgeKind::Lower => writeln!(s, "  {a} -.->|lower| {b}"),
            EdgeKind::Tunnel { vni } => writeln!(s, "  {a} -. VNI {vni} .- {b}"),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::ir::{Dev, Edge, GNode};
    use super::*;

    /// Checks that tags nest and close (enough XML for our output).
    fn well_formed(x: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = x;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').ok_or("unclosed <")? + i;
            let tag = &rest[i + 1..j];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or(format!("</{name}> without opening"))?;
                if top != name {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
            }
            rest = &rest[j + 1..];
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn sample() -> Graph {
        let d = |n: &str, k: &str, a: &[&str]| Dev {
            name: n.into(),
            kind: k.into(),
            addresses: a.iter().map(|x| x.to_string()).collect(),
            up: true,
            mtu: None,
            state: Default::default(),
        };
        let e = |a: (&str, &str), b: (&str, &str), kind: EdgeKind| Edge { from: (a.0.into(), a.1.into()), to: (b.0.into(), b.1.into()), kind };
        Graph {
            name: "s<&>".into(),
            nodes: vec![
                GNode {
                    name: "h1".into(),
                    devices: vec![
                        d("br0", "bridge", &["10.0.0.1/24"]),
                        d("eth0", "veth", &["192.0.2.1/24"]),
                        d("vx42", "vxlan", &[]),
                        d("mv0", "macvlan", &["10.9.0.1/24", "10.9.0.2/24", "fd00::1/64"]),
                    ],
                },
                GNode { name: "h2".into(), devices: vec![d("eth0", "veth", &["192.0.2.2/24"]), d("vx42", "vxlan", &[])] },
            ],
            edges: vec![
                e(("h1", "eth0"), ("h2", "eth0"), EdgeKind::Veth),
                e(("h1", "vx42"), ("h1", "br0"), EdgeKind::Port),
                e(("h1", "mv0"), ("h1", "eth0"), EdgeKind::Lower),
                e(("h1", "vx42"), ("h2", "vx42"), EdgeKind::Tunnel { vni: 42 }),
            ],
        }
    }

    #[test]
    fn svg_is_well_formed_and_shows_everything() {
        let x = svg(&sample());
        well_formed(&x).unwrap();
        assert!(x.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(x.contains("<title>lab s&lt;&amp;&gt;</title>"), "text is escaped");
        assert_eq!(x.matches("class=\"device\"").count(), 6);
        assert_eq!(x.matches("class=\"node\"").count(), 2);
        assert!(x.contains("class=\"tunnel\"") && x.contains("stroke-dasharray=\"8,5\"") && x.contains(">VNI 42</text>"));
        assert!(x.contains(">bridge (switch)</text>"));
        assert!(x.contains(">10.0.0.1/24</text>"));
        assert!(x.contains(">+2 more</text>"), "long address lists are shortened");
        assert!(x.contains("class=\"lower\""));
    }

    #[test]
    fn dot_and_mermaid() {
        let d = dot(&sample());
        assert!(d.contains("subgraph cluster_0 {\n    label=\"h1\";"));
        assert!(d.contains("\"h1:eth0\" -- \"h2:eth0\" [penwidth=2];"));
        assert!(d.contains("\"h1:vx42\" -- \"h2:vx42\" [style=dashed, color=\"#4f46e5\", label=\"VNI 42\"];"));
        assert!(d.contains("\"h1:mv0\" -- \"h1:eth0\" [style=dotted"));
        let m = mermaid(&sample());
        assert!(m.starts_with("flowchart TB\n"));
        assert!(m.contains("  h1__eth0 === h2__eth0\n"));
        assert!(m.contains("  h1__vx42 -. VNI 42 .- h2__vx42\n"));
        assert!(m.contains("  h1__vx42 -->|port| h1__br0\n"));
        assert!(m.contains("h1__br0([\"<b>br0</b><br/>bridge (switch)<br/>10.0.0.1/24\"])"));
    }
}
