//! BPF attachments, checked: device of the node, hook, mode, object path resolved against the
//! topology file's directory. The object itself is read at `up` (it may be rebuilt between
//! runs: its content hash decides whether the attached program is current).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::check_dev;
use super::spec::{BpfHookSpec, BpfSpec, XdpMode};
use crate::model::lab::Node;
use crate::model::source::Path;
use crate::model::validate::Ctx;

/// A program to attach.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BpfAttach {
    pub dev: String,
    pub hook: BpfHookSpec,
    /// Absolute (or working-directory relative, for topologies built in code) object path.
    pub object: PathBuf,
    pub program: String,
    /// XDP mode (generic unless `native`); `None` for tc hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<XdpMode>,
}

pub(crate) fn check_list(ctx: &mut Ctx, nname: &str, list: &[BpfSpec], node: &Node, base: &Path, dir: &std::path::Path) -> Vec<BpfAttach> {
    let mut out: Vec<BpfAttach> = Vec::new();
    let mut seen: Vec<((String, BpfHookSpec), Path)> = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let p = ctx.idx(base, i);
        if !check_dev(ctx, nname, &b.dev, node, &ctx.sub(&p, "dev")) {
            continue;
        }
        if b.dev == "lo" && b.hook == BpfHookSpec::Xdp {
            ctx.error_at(&ctx.sub(&p, "dev"), "XDP on `lo` is not supported", "loopback");
            continue;
        }
        if b.mode.is_some() && b.hook != BpfHookSpec::Xdp {
            ctx.error_at(&ctx.sub(&p, "mode"), format!("`mode` chooses how XDP runs; hook `{}` has no mode", b.hook.name()), "not an XDP hook");
            continue;
        }
        if b.program.trim().is_empty() {
            ctx.error_at(&ctx.sub(&p, "program"), "the program name cannot be empty", "empty");
            continue;
        }
        if b.object.trim().is_empty() {
            ctx.error_at(&ctx.sub(&p, "object"), "the object path cannot be empty", "empty");
            continue;
        }
        let key = (b.dev.clone(), b.hook);
        if let Some((_, prev)) = seen.iter().find(|(k, _)| *k == key) {
            let (span, prev_span) = (ctx.span(&p), ctx.span(prev));
            ctx.push(
                crate::model::Diag::error(format!("`{nname}:{}` has two programs on hook `{}`; vnet attaches one per hook", b.dev, b.hook.name()))
                    .maybe_label(span, "second program")
                    .maybe_label(prev_span, "first program"),
            );
            continue;
        }
        seen.push((key, p.clone()));
        let object = {
            let raw = std::path::Path::new(b.object.trim());
            if raw.is_absolute() {
                raw.to_path_buf()
            } else {
                dir.join(raw)
            }
        };
        let mode = if b.hook == BpfHookSpec::Xdp { Some(b.mode.unwrap_or(XdpMode::Generic)) } else { None };
        out.push(BpfAttach { dev: b.dev.clone(), hook: b.hook, object, program: b.program.trim().to_string(), mode });
    }
    out
}
