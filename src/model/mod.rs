//! The model: topology files parsed and validated into a `Lab`. Pure: no kernel, no I/O
//! beyond reading the file.

pub mod anchor;
pub mod decode;
pub mod diag;
pub mod expect;
pub mod file;
pub mod forms;
pub mod hosts;
pub mod kind;
pub mod lab;
pub mod netfeat;
pub mod schema;
pub mod segments;
pub mod source;
pub mod validate;

pub use diag::{Diag, Diagnostics, Severity};
pub use file::Topology;
pub use lab::{Endpoint, Interface, Lab, Node, Route, HOST};
pub use source::{Document, Format};

/// A validated lab plus the warnings validation raised.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub lab: Lab,
    pub warnings: Diagnostics,
    pub document: Document,
}

impl Loaded {
    /// Frees the parsed document (its value and the places of its text) once findings are
    /// reported: building a big lab does not need it, and it is the largest thing held.
    pub fn release_document(&mut self) {
        self.document = self.document.released();
    }
}

/// Reads, parses and validates a topology file (format from its extension).
pub fn load_file(path: &std::path::Path) -> Result<Loaded, Diagnostics> {
    load_file_with(path, |_| {})
}

/// Reads a file, lets `adjust` change the decoded topology (e.g. a command-line override),
/// then validates.
pub fn load_file_with(path: &std::path::Path, adjust: impl FnOnce(&mut Topology)) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Diagnostics::from(vec![Diag::error(format!("cannot read {name}: {e}"))]))?;
    let document = parse_text(&name, &text, Format::from_name(&name))?;
    check(document, adjust)
}

/// Decodes and validates a parsed document; the errors parsing went on after (keys written
/// twice) come with validation's findings.
fn check(document: Document, adjust: impl FnOnce(&mut Topology)) -> Result<Loaded, Diagnostics> {
    let (mut topo, diags) = decode::decode(&document);
    adjust(&mut topo);
    let result = validate::validate(&topo, &document, diags);
    if document.findings().is_empty() {
        let (lab, warnings) = result?;
        return Ok(Loaded { lab, warnings, document });
    }
    let mut diags = match result {
        Ok((_, warnings)) => warnings,
        Err(d) => d,
    };
    for f in document.findings() {
        diags.push(f.clone());
    }
    diags.sort();
    Err(diags)
}

pub(crate) fn parse_text(name: &str, text: &str, format: Format) -> Result<Document, Diagnostics> {
    Document::parse(name, text, format).map_err(|mut d| {
        d.source = Some(source::SourceText { name: name.to_string(), text: std::sync::Arc::new(text.to_string()) });
        d
    })
}

/// Parses and validates topology text; `name` names it in findings (`name:line:col`).
pub fn load_str(name: &str, text: &str, format: Format) -> Result<Loaded, Diagnostics> {
    load_document(parse_text(name, text, format)?)
}

/// `load_str`, letting `adjust` change the decoded topology before validation (as
/// `load_file_with` does).
pub fn load_str_with(name: &str, text: &str, format: Format, adjust: impl FnOnce(&mut Topology)) -> Result<Loaded, Diagnostics> {
    check(parse_text(name, text, format)?, adjust)
}

/// Validates a parsed document.
pub fn load_document(document: Document) -> Result<Loaded, Diagnostics> {
    check(document, |_| {})
}

/// Validates a topology built in code (no file, so findings carry no location).
pub fn load_topology(topo: &Topology) -> Result<Loaded, Diagnostics> {
    let value = serde_json::to_value(topo).expect("topology serializes");
    let name = if topo.name.is_empty() { "<lab>".to_string() } else { format!("<lab {}>", topo.name) };
    load_document(Document::from_value(&name, value))
}

#[cfg(test)]
mod tests;
