//! The reachability matrix: which pairs are probed, and how the answers are shown (rows: source
//! node, columns: destination node, one mark per cell). Pure.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::Lab;

/// One probe of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub from: String,
    pub to: String,
    pub addr: IpAddr,
}

/// Every ordered pair of distinct nodes, for every address the destination declares whose
/// family the source also has. Nodes without addresses are neither sources nor destinations.
pub fn pairs(lab: &Lab) -> Vec<Pair> {
    let addrs: Vec<(&String, Vec<IpAddr>)> = lab
        .nodes
        .iter()
        .map(|(n, node)| (n, node.interfaces.values().flat_map(|i| i.addresses.iter().map(|a| a.addr())).collect::<Vec<_>>()))
        .filter(|(_, a)| !a.is_empty())
        .collect();
    let mut out = Vec::new();
    for (from, fa) in &addrs {
        let v4 = fa.iter().any(IpAddr::is_ipv4);
        let v6 = fa.iter().any(IpAddr::is_ipv6);
        for (to, ta) in &addrs {
            if from == to {
                continue;
            }
            for a in ta {
                if (a.is_ipv4() && v4) || (a.is_ipv6() && v6) {
                    out.push(Pair { from: (*from).clone(), to: (*to).clone(), addr: *a });
                }
            }
        }
    }
    out
}

/// Splits sources (given how many probes each sends) into waves that each need at most `budget`
/// neighbour entries: every probe needs one at its source and, for the answer, one at its
/// destination. A source that alone exceeds the budget gets a wave of its own.
pub fn waves(per_source: &[usize], budget: u64) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut used = 0u64;
    for (i, &n) in per_source.iter().enumerate() {
        let need = 2 * n as u64;
        if out.is_empty() || used + need > budget {
            out.push(Vec::new());
            used = 0;
        }
        out.last_mut().expect("a wave").push(i);
        used += need;
    }
    out
}

/// One cell: how many of the destination's addresses answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub probed: u32,
    pub reached: u32,
}

impl Cell {
    pub fn mark(&self) -> char {
        match (self.probed, self.reached) {
            (0, _) => '.',
            (p, r) if p == r => '+',
            (_, 0) => 'x',
            _ => '~',
        }
    }
}

/// Rows (sources) by columns (destinations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grid {
    pub nodes: Vec<String>,
    /// `cells[row][col]`
    pub cells: Vec<Vec<Cell>>,
}

/// Folds per-pair answers into a grid over `nodes` (in lab order).
pub fn grid(nodes: &[String], pairs: &[Pair], reached: &[bool]) -> Grid {
    let idx = |n: &str| nodes.iter().position(|x| x == n);
    let mut cells = vec![vec![Cell { probed: 0, reached: 0 }; nodes.len()]; nodes.len()];
    for (p, ok) in pairs.iter().zip(reached) {
        if let (Some(r), Some(c)) = (idx(&p.from), idx(&p.to)) {
            cells[r][c].probed += 1;
            cells[r][c].reached += u32::from(*ok);
        }
    }
    Grid { nodes: nodes.to_vec(), cells }
}

/// The grid as text. Up to 30 nodes, columns carry names (vertically when long); beyond,
/// columns are numbered and rows carry the number and the name.
pub fn render(g: &Grid) -> String {
    let mut s = String::new();
    let n = g.nodes.len();
    if n == 0 {
        return "no nodes with addresses: nothing to probe\n".into();
    }
    let width = g.nodes.iter().map(|x| x.chars().count()).max().unwrap_or(1);
    let numbered = n > 30;
    let label = |i: usize| if numbered { format!("{:>4} {:<w$}", i + 1, g.nodes[i], w = width) } else { format!("{:<w$}", g.nodes[i], w = width) };
    let pad = label(0).chars().count();
    // Column headers.
    let mut line = String::new();
    let flush = |line: &mut String, s: &mut String| {
        s.push_str(line.trim_end());
        s.push('\n');
        line.clear();
    };
    if numbered {
        let digits = n.to_string().len();
        for d in 0..digits {
            line.push_str(&" ".repeat(pad + 1));
            for c in 0..n {
                let num = format!("{:>digits$}", c + 1);
                line.push(num.chars().nth(d).unwrap_or(' '));
            }
            flush(&mut line, &mut s);
        }
    } else {
        let tall = g.nodes.iter().map(|x| x.chars().count()).max().unwrap_or(1);
        for row in 0..tall {
            line.push_str(&" ".repeat(pad + 1));
            for c in 0..n {
                let name: Vec<char> = g.nodes[c].chars().collect();
                // Bottom-align names so the last letter sits just above the cells.
                let off = tall - name.len();
                line.push(if row >= off { name[row - off] } else { ' ' });
                line.push(' ');
            }
            flush(&mut line, &mut s);
        }
    }
    for (r, row) in g.cells.iter().enumerate() {
        s.push_str(&label(r));
        s.push(' ');
        for (c, cell) in row.iter().enumerate() {
            s.push(if r == c { '\\' } else { cell.mark() });
            if !numbered {
                s.push(' ');
            }
        }
        let t = s.trim_end().len();
        s.truncate(t);
        s.push('\n');
    }
    s.push_str("+ every address answered   ~ some did   x none did   . not probed (no address of a shared family)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_str, Format};

    fn lab() -> Lab {
        load_str(
            "m.yaml",
            "name: m
nodes:
  a: { interfaces: { eth0: { addresses: [10.0.0.1/24, fd00::1/64] } } }
  b: { interfaces: { eth0: { addresses: [10.0.0.2/24] } } }
  c: { interfaces: { eth0: { addresses: [10.0.0.3/24] } } }
  d: {}
links:
  - endpoints: [a:eth0, b:eth0]
  - endpoints: [c:eth0, d:eth0]
",
            Format::Yaml,
        )
        .unwrap()
        .lab
    }

    #[test]
    fn pairs_skip_self_addressless_nodes_and_foreign_families() {
        let p = pairs(&lab());
        let s: Vec<String> = p.iter().map(|p| format!("{}>{}:{}", p.from, p.to, p.addr)).collect();
        assert_eq!(s, ["a>b:10.0.0.2", "a>c:10.0.0.3", "b>a:10.0.0.1", "b>c:10.0.0.3", "c>a:10.0.0.1", "c>b:10.0.0.2"]);
    }

    #[test]
    fn grid_and_rendering() {
        let l = lab();
        let p = pairs(&l);
        let nodes = vec!["a".to_string(), "b".into(), "c".into()];
        let reached = [true, false, true, false, false, false];
        let g = grid(&nodes, &p, &reached);
        assert_eq!(g.cells[0][1], Cell { probed: 1, reached: 1 });
        assert_eq!(g.cells[0][2].mark(), 'x');
        let text = render(&g);
        assert_eq!(
            text,
            "  a b c\na \\ + x\nb + \\ x\nc x x \\\n+ every address answered   ~ some did   x none did   . not probed (no address of a shared family)\n"
        );
    }

    #[test]
    fn partial_cells_and_long_names() {
        let nodes = vec!["router".to_string(), "h".into()];
        let p = vec![
            Pair { from: "h".into(), to: "router".into(), addr: "10.0.0.1".parse().unwrap() },
            Pair { from: "h".into(), to: "router".into(), addr: "fd00::1".parse().unwrap() },
        ];
        let g = grid(&nodes, &p, &[true, false]);
        let text = render(&g);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       r");
        assert_eq!(lines[5], "       r h");
        assert_eq!(lines[6], "router \\ .");
        assert_eq!(lines[7], "h      ~ \\");
    }

    #[test]
    fn waves_fit_the_budget() {
        assert_eq!(waves(&[5, 5, 5, 5, 5, 5], 20), vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!(waves(&[5, 5, 5], 1000), vec![vec![0, 1, 2]], "one wave when it fits");
        assert_eq!(waves(&[50, 1, 1], 20), vec![vec![0], vec![1, 2]], "an oversized source goes alone");
        assert!(waves(&[], 10).is_empty());
    }

    #[test]
    fn big_grids_are_numbered() {
        let nodes: Vec<String> = (1..=100).map(|i| format!("n{i}")).collect();
        let g = grid(&nodes, &[], &[]);
        let text = render(&g);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3 + 100 + 1);
        assert!(lines[3].starts_with("   1 n1   \\..."), "{}", lines[3]);
        assert_eq!(lines[2].trim_start().len(), 100, "one column per node");
    }
}
