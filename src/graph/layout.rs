//! Where things go in the picture: nodes in layers (breadth-first from the best-connected node,
//! ordered by the barycenter of their neighbours to keep links short and uncrossed), devices
//! inside their node in two rows (bridges and lower devices above, their ports and children
//! below them). Pure and deterministic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::ir::{EdgeKind, Graph};

pub const DEV_W: f64 = 138.0;
pub const DEV_H: f64 = 62.0;
const DEV_GAP: f64 = 14.0;
const PAD: f64 = 14.0;
const TITLE: f64 = 24.0;
const ROW_GAP: f64 = 26.0;
const NODE_GAP_X: f64 = 56.0;
const NODE_GAP_Y: f64 = 84.0;
pub const MARGIN: f64 = 24.0;

#[derive(Clone, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.x + o.w <= self.x + self.w && o.y + o.h <= self.y + self.h
    }
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeBox {
    pub name: String,
    pub rect: Rect,
    pub layer: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DevBox {
    pub node: String,
    pub name: String,
    pub rect: Rect,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<NodeBox>,
    pub devices: Vec<DevBox>,
}

impl Layout {
    pub fn device(&self, node: &str, name: &str) -> Option<&DevBox> {
        self.devices.iter().find(|d| d.node == node && d.name == name)
    }
    pub fn node(&self, name: &str) -> Option<&NodeBox> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Layers of nodes: breadth-first from the best-connected node of each connected part.
fn layers(g: &Graph) -> Vec<Vec<usize>> {
    let n = g.nodes.len();
    let idx: BTreeMap<&str, usize> = g.nodes.iter().enumerate().map(|(i, x)| (x.name.as_str(), i)).collect();
    let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for e in &g.edges {
        if let (Some(&a), Some(&b)) = (idx.get(e.from.0.as_str()), idx.get(e.to.0.as_str())) {
            if a != b {
                adj[a].insert(b);
                adj[b].insert(a);
            }
        }
    }
    let mut layer = vec![usize::MAX; n];
    let mut order: Vec<usize> = (0..n).collect();
    // Most connected first; declaration order breaks ties.
    order.sort_by_key(|&i| (std::cmp::Reverse(adj[i].len()), i));
    for &start in &order {
        if layer[start] != usize::MAX {
            continue;
        }
        layer[start] = 0;
        let mut q = VecDeque::from([start]);
        while let Some(u) = q.pop_front() {
            for &v in &adj[u] {
                if layer[v] == usize::MAX {
                    layer[v] = layer[u] + 1;
                    q.push_back(v);
                }
            }
        }
    }
    let depth = layer.iter().copied().max().map(|m| m + 1).unwrap_or(0);
    let mut out = vec![Vec::new(); depth];
    for i in 0..n {
        out[layer[i]].push(i);
    }
    // Barycenter sweeps: order each layer by the mean position of its neighbours above, then below.
    for _ in 0..2 {
        for l in 1..out.len() {
            reorder(&mut out, l, l - 1, &adj);
        }
        for l in (0..out.len().saturating_sub(1)).rev() {
            reorder(&mut out, l, l + 1, &adj);
        }
    }
    out
}

fn reorder(layers: &mut [Vec<usize>], l: usize, by: usize, adj: &[BTreeSet<usize>]) {
    let pos: BTreeMap<usize, usize> = layers[by].iter().enumerate().map(|(p, &v)| (v, p)).collect();
    let cur: BTreeMap<usize, usize> = layers[l].iter().enumerate().map(|(p, &v)| (v, p)).collect();
    let key = |v: usize| -> (u64, usize) {
        let ps: Vec<usize> = adj[v].iter().filter_map(|u| pos.get(u).copied()).collect();
        let b = if ps.is_empty() { cur[&v] as f64 } else { ps.iter().sum::<usize>() as f64 / ps.len() as f64 };
        ((b * 1000.0) as u64, cur[&v])
    };
    layers[l].sort_by_key(|&v| key(v));
}

/// Device rows inside a node: (top row, bottom row) as device indexes.
fn rows(g: &Graph, node: usize) -> (Vec<usize>, Vec<usize>) {
    let n = &g.nodes[node];
    let parent: BTreeMap<&str, &str> = g
        .edges
        .iter()
        .filter(|e| matches!(e.kind, EdgeKind::Port | EdgeKind::Lower) && e.from.0 == n.name && e.to.0 == n.name)
        .map(|e| (e.from.1.as_str(), e.to.1.as_str()))
        .collect();
    let top: Vec<usize> = (0..n.devices.len()).filter(|&i| !parent.contains_key(n.devices[i].name.as_str())).collect();
    let mut bottom: Vec<usize> = (0..n.devices.len()).filter(|&i| parent.contains_key(n.devices[i].name.as_str())).collect();
    let top_pos = |name: &str| top.iter().position(|&t| n.devices[t].name == name).unwrap_or(usize::MAX);
    bottom.sort_by_key(|&i| (top_pos(parent[n.devices[i].name.as_str()]), i));
    (top, bottom)
}

fn row_width(k: usize) -> f64 {
    if k == 0 {
        0.0
    } else {
        k as f64 * DEV_W + (k - 1) as f64 * DEV_GAP
    }
}

/// Lays the picture out.
pub fn layout(g: &Graph) -> Layout {
    let ls = layers(g);
    let mut sizes = Vec::new();
    let mut node_rows = Vec::new();
    for i in 0..g.nodes.len() {
        let (top, bottom) = rows(g, i);
        let w = row_width(top.len()).max(row_width(bottom.len())).max(DEV_W * 0.8) + 2.0 * PAD;
        let nrows = usize::from(!top.is_empty()) + usize::from(!bottom.is_empty());
        let h = TITLE + PAD + nrows.max(1) as f64 * DEV_H + nrows.saturating_sub(1) as f64 * ROW_GAP + PAD;
        sizes.push((w, h));
        node_rows.push((top, bottom));
    }
    let layer_w: Vec<f64> = ls.iter().map(|l| l.iter().map(|&i| sizes[i].0).sum::<f64>() + NODE_GAP_X * l.len().saturating_sub(1) as f64).collect();
    let width = layer_w.iter().copied().fold(0.0, f64::max) + 2.0 * MARGIN;
    let mut nodes = Vec::new();
    let mut devices = Vec::new();
    let mut y = MARGIN;
    for (li, l) in ls.iter().enumerate() {
        let lh = l.iter().map(|&i| sizes[i].1).fold(0.0, f64::max);
        let mut x = (width - layer_w[li]) / 2.0;
        for &i in l {
            let (w, h) = sizes[i];
            let r = Rect { x, y, w, h };
            let (top, bottom) = &node_rows[i];
            for (row, list) in [top, bottom].into_iter().filter(|l| !l.is_empty()).enumerate() {
                let rw = row_width(list.len());
                let mut dx = x + (w - rw) / 2.0;
                let dy = y + TITLE + PAD + row as f64 * (DEV_H + ROW_GAP);
                for &d in list {
                    devices.push(DevBox {
                        node: g.nodes[i].name.clone(),
                        name: g.nodes[i].devices[d].name.clone(),
                        rect: Rect { x: dx, y: dy, w: DEV_W, h: DEV_H },
                    });
                    dx += DEV_W + DEV_GAP;
                }
            }
            nodes.push(NodeBox { name: g.nodes[i].name.clone(), rect: r, layer: li });
            x += w + NODE_GAP_X;
        }
        y += lh + NODE_GAP_Y;
    }
    let height = (y - NODE_GAP_Y + MARGIN).max(2.0 * MARGIN);
    Layout { width, height, nodes, devices }
}

#[cfg(test)]
mod tests {
    use super::super::ir::{from_lab, Dev, Edge, GNode};
    use super::*;
    use crate::model::{load_str, Format};

    fn example(name: &str) -> Graph {
        let text = std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        from_lab(&load_str(name, &text, Format::from_name(name)).unwrap().lab)
    }

    fn check_sane(g: &Graph, l: &Layout) {
        for (i, a) in l.nodes.iter().enumerate() {
            for b in l.nodes.iter().skip(i + 1) {
                assert!(!a.rect.overlaps(&b.rect), "nodes {} and {} overlap", a.name, b.name);
            }
            assert!(a.rect.x >= 0.0 && a.rect.y >= 0.0 && a.rect.x + a.rect.w <= l.width && a.rect.y + a.rect.h <= l.height);
        }
        for d in &l.devices {
            let n = l.node(&d.node).unwrap();
            assert!(n.rect.contains(&d.rect), "device {}:{} outside its node", d.node, d.name);
        }
        for (i, a) in l.devices.iter().enumerate() {
            for b in l.devices.iter().skip(i + 1) {
                assert!(!a.rect.overlaps(&b.rect), "devices {}:{} and {}:{} overlap", a.node, a.name, b.node, b.name);
            }
        }
        assert_eq!(l.devices.len(), g.nodes.iter().map(|n| n.devices.len()).sum::<usize>());
    }

    #[test]
    fn bridge_example_hub_on_top_ports_under_their_bridge() {
        let g = example("bridge.yaml");
        let l = layout(&g);
        check_sane(&g, &l);
        assert_eq!(l.node("host").unwrap().layer, 0, "the best-connected node is the first layer");
        assert_eq!(l.node("ns1").unwrap().layer, 1);
        let br = l.device("host", "br1").unwrap();
        let p1 = l.device("host", "veth1").unwrap();
        assert!(p1.rect.y > br.rect.y, "ports sit below their bridge");
        // ns1 and ns2 sit below the host's ports, in the ports' order.
        assert!(l.node("ns1").unwrap().rect.x < l.node("ns2").unwrap().rect.x);
        assert_eq!(layout(&g), l, "deterministic");
    }

    #[test]
    fn routed_example_is_a_chain_of_layers() {
        let g = example("routed.yaml");
        let l = layout(&g);
        check_sane(&g, &l);
        assert_eq!(l.node("r").unwrap().layer, 0);
        assert!(["a", "c", "d"].iter().all(|n| l.node(n).unwrap().layer == 1));
    }

    #[test]
    fn barycenters_uncross_a_ladder() {
        // r - x1, r - x2; y1 hangs under x2 and y2 under x1, but y1 is declared first.
        let dev = |n: &str| Dev { name: n.into(), kind: "veth".into(), addresses: vec![], up: true, mtu: None, state: Default::default() };
        let node = |n: &str, ds: &[&str]| GNode { name: n.into(), devices: ds.iter().map(|d| dev(d)).collect() };
        let e = |a: (&str, &str), b: (&str, &str)| Edge { from: (a.0.into(), a.1.into()), to: (b.0.into(), b.1.into()), kind: EdgeKind::Veth };
        let g = Graph {
            name: "x".into(),
            nodes: vec![node("r", &["e1", "e2"]), node("x1", &["u", "d"]), node("x2", &["u", "d"]), node("y1", &["u"]), node("y2", &["u"])],
            edges: vec![e(("r", "e1"), ("x1", "u")), e(("r", "e2"), ("x2", "u")), e(("x2", "d"), ("y1", "u")), e(("x1", "d"), ("y2", "u"))],
        };
        let l = layout(&g);
        check_sane(&g, &l);
        let x = |n: &str| l.node(n).unwrap().rect.x;
        assert_eq!(l.node("y1").unwrap().layer, 2);
        assert!(x("x1") < x("x2"));
        assert!(x("y2") < x("y1"), "y2 moves under x1, so the links do not cross");
    }

    #[test]
    fn empty_lab_has_a_canvas() {
        let l = layout(&Graph { name: "e".into(), nodes: vec![], edges: vec![] });
        assert!(l.width > 0.0 && l.height > 0.0 && l.nodes.is_empty());
    }
}
