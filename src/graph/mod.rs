//! `graph`: a picture of a lab (from its topology file, or a running lab as the kernel has it): nodes as
//! boxes holding their devices, veth links between them, bridges as switches with their ports,
//! children (macvlan, ipvlan, vlan) tied to their lower device, VXLAN tunnels dashed with their
//! VNI, addresses as labels. SVG is laid out and drawn by vnet itself; DOT and Mermaid are text
//! for other tools.

pub mod ir;
pub mod kernel;
pub mod layout;
pub mod render;

use std::path::Path;

use crate::error::{Error, Result};
use crate::model;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Dot,
    Mermaid,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "svg" => Ok(Format::Svg),
            "dot" => Ok(Format::Dot),
            "mermaid" | "mmd" => Ok(Format::Mermaid),
            other => Err(format!("unknown format `{other}`: svg, dot or mermaid")),
        }
    }
}

/// The picture of a validated lab.
pub fn draw(lab: &model::Lab, format: Format) -> String {
    render(&ir::from_lab(lab), format)
}

/// A topology file, or the name of a running lab.
pub fn draw_target(target: &str, format: Format) -> Result<String> {
    if Path::new(target).is_file() {
        let loaded = model::load_file(Path::new(target)).map_err(Error::Invalid)?;
        return Ok(draw(&loaded.lab, format));
    }
    let neither = || Error::io("graph", std::io::Error::other(format!("`{target}` is neither a topology file nor a lab (see `vnet status`)")));
    if model::validate::lab_name_problem(target).is_some() {
        return Err(neither());
    }
    if crate::state::load(target).map_err(|e| Error::io("read lab state", e))?.is_none() {
        return Err(neither());
    }
    // A running lab is drawn as the kernel has it, against what its file declared.
    let rl = crate::inspect::RunningLab::open(target)?;
    let view = crate::inspect::view::LabView::observe(&rl)?;
    let lab = rl.model();
    let root = (!lab.isolated_host).then_some(model::HOST);
    Ok(render(&kernel::from_view(lab, &view, root), format))
}

fn render(g: &ir::Graph, format: Format) -> String {
    match format {
        Format::Svg => render::svg(g),
        Format::Dot => render::dot(g),
        Format::Mermaid => render::mermaid(g),
    }
}
