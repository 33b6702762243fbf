//! A topology file read into a format-neutral JSON value plus a map from each value's path to
//! its place in the text, so that every later error can point at the offending text no matter
//! whether the file was YAML, TOML or JSON.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::diag::{Diag, Diagnostics};

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the document, e.g. `nodes / ns1 / interfaces / eth0 / mtu`.
pub type Path = Vec<Seg>;

/// Builds a path from string keys; numeric strings stay keys.
pub fn path(keys: &[&str]) -> Path {
    keys.iter().map(|k| Seg::Key((*k).to_string())).collect()
}

/// Places by path. Keyed by a 64-bit hash of the path rather than the path itself: a file of a
/// thousand nodes has tens of thousands of paths, and owning each as a vector of strings cost
/// more memory than everything else vnet holds.
#[derive(Clone, Debug, Default)]
pub struct Places(HashMap<u64, Place>);

fn path_key(path: &[Seg]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

impl Places {
    pub fn insert(&mut self, path: &[Seg], place: Place) {
        self.0.insert(path_key(path), place);
    }
    pub fn get(&self, path: &[Seg]) -> Option<&Place> {
        self.0.get(&path_key(path))
    }
    pub fn contains(&self, path: &[Seg]) -> bool {
        self.0.contains_key(&path_key(path))
    }
}

/// Where a value (and, for map entries, its key) sits in the text, as byte ranges.
#[derive(Clone, Debug, Default)]
pub struct Place {
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
}

/// Input format, chosen by the file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    /// Picks the format from a file name; YAML unless the extension says otherwise.
    pub fn from_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".toml") {
            Format::Toml
        } else if lower.ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// What findings in topology text that is no file are located by: `<yaml>`, `<toml>`, `<json>`.
pub fn text_name(format: Format) -> &'static str {
    match format {
        Format::Yaml => "<yaml>",
        Format::Toml => "<toml>",
        Format::Json => "<json>",
    }
}

/// The text of a topology file, shared by every diagnostic that points into it.
#[derive(Clone, Debug)]
pub struct SourceText {
    pub name: String,
    pub text: Arc<String>,
}

impl SourceText {
    /// 1-based line and column of a byte offset (column counted in characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        // A byte order mark at the start is invisible in an editor: columns count from after it.
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(if before.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 });
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

/// A parsed document: the value and where each part of it came from.
#[derive(Clone, Debug)]
pub struct Document {
    pub source: SourceText,
    pub value: Value,
    places: Places,
    /// Errors found while parsing that did not stop it (keys written twice, of which the first
    /// is kept): reported with validation's findings, so that they hide nothing.
    findings: Vec<Diag>,
}

impl Document {
    /// Parses text in the given format. Syntax errors come back located; a key written twice in
    /// one mapping is not one of them: its first value is kept, and the error is among the
    /// document's `findings`.
    pub fn parse(name: &str, text: &str, format: Format) -> Result<Document, Diagnostics> {
        let source = SourceText { name: name.to_string(), text: Arc::new(text.to_string()) };
        let mut places = Places::default();
        let mut dups = Vec::new();
        let value = match format {
            Format::Yaml => yaml::parse(text, &mut places, &mut dups),
            Format::Toml => toml_doc::parse(text, &mut places, &mut dups),
            Format::Json => json::parse(text, &mut places, &mut dups),
        };
        dups.sort_by_key(|d| d.at.start);
        match value {
            Ok(value) => {
                let findings = dups.iter().map(|d| d.diag(text)).collect();
                Ok(Document { source, value, places, findings })
            }
            Err(f) => {
                // The keys written twice before the text stopped making sense, then why it did.
                let mut diags: Vec<Diag> = dups.iter().filter(|d| d.at.start < f.at.start).map(|d| d.diag(text)).collect();
                let message = if f.syntax { format!("syntax error: {}", f.message) } else { f.message };
                let mut d = Diag::error(message).label(f.at, f.label);
                if let Some(h) = f.help {
                    d = d.help(h);
                }
                diags.push(d);
                Err(Diagnostics::from(diags))
            }
        }
    }

    /// A document built in code (the builder API): no text, no places.
    pub fn from_value(name: &str, value: Value) -> Document {
        Document { source: SourceText { name: name.to_string(), text: Arc::new(String::new()) }, value, places: Places::default(), findings: Vec::new() }
    }

    /// The text alone, for findings placed beforehand (spans kept in the lab): the parsed value
    /// and the places of its parts, the largest things held, are dropped.
    pub fn released(&self) -> Document {
        Document { source: self.source.clone(), value: Value::Null, places: Places::default(), findings: Vec::new() }
    }

    /// Errors found while parsing that did not stop it: keys written twice in one mapping.
    pub fn findings(&self) -> &[Diag] {
        &self.findings
    }

    /// The place of the value at `path`, or of the nearest ancestor that has one.
    pub fn place(&self, path: &[Seg]) -> Option<&Place> {
        let mut p = path.len();
        loop {
            if let Some(place) = self.places.get(&path[..p]) {
                return Some(place);
            }
            if p == 0 {
                return None;
            }
            p -= 1;
        }
    }

    /// The byte range of the value at `path` (or its nearest located ancestor).
    pub fn value_span(&self, path: &[Seg]) -> Option<Range<usize>> {
        self.place(path).map(|p| p.value.clone())
    }

    /// The byte range of the key at `path` (falling back to the value's range).
    pub fn key_span(&self, path: &[Seg]) -> Option<Range<usize>> {
        self.place(path).map(|p| p.key.clone().unwrap_or_else(|| p.value.clone()))
    }

    /// The value at `path`, if the document has one there.
    pub fn get(&self, path: &[Seg]) -> Option<&Value> {
        let mut v = &self.value;
        for s in path {
            v = match (s, v) {
                (Seg::Key(k), Value::Object(m)) => m.get(k)?,
                (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(v)
    }

    /// Whether the exact path was written in the file (not just an ancestor).
    pub fn has(&self, path: &[Seg]) -> bool {
        self.places.contains(path)
    }
}

/// Why a text could not be read, and where.
struct Failure {
    message: String,
    at: Range<usize>,
    label: &'static str,
    help: Option<String>,
    /// Reported as a syntax error.
    syntax: bool,
}

impl From<(String, Range<usize>)> for Failure {
    fn from((message, at): (String, Range<usize>)) -> Failure {
        Failure { message, at, label: "here", help: None, syntax: true }
    }
}

type ParseResult = Result<Value, Failure>;

/// A key written a second time in one mapping (YAML, JSON) or table (TOML). The first is kept:
/// the document is decoded and validated as if the second were not there (in TOML, as the
/// toml crate recovers, see `toml_doc`), so that this error hides no other.
struct Duplicate {
    /// The key (decoded), or for a TOML table defined again its header as written.
    key: String,
    /// The second key.
    at: Range<usize>,
    /// The first key, when it could be found.
    first: Option<Range<usize>>,
    /// How the second is dealt with.
    treated: Treated,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Treated {
    /// The second key and its value are ignored.
    Ignored,
    /// YAML: a second merge key `<<` is ignored.
    MergeIgnored,
    /// TOML: a `[table]` header written again; the toml crate adds the keys under it to the
    /// first table (those both set are reported as duplicates of their own and keep the first).
    TomlTableMerged,
    /// TOML: a `[table]` header over a key that holds a value; the toml crate keeps the table.
    TomlReplaced,
}

impl Duplicate {
    fn diag(&self, text: &str) -> Diag {
        let k = &self.key;
        let line = self.first.as_ref().map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1);
        let what = if self.treated == Treated::TomlTableMerged { "table" } else { "key" };
        let message = match line {
            Some(l) => format!("duplicate {what} `{k}` (first on line {l})"),
            None => format!("duplicate {what} `{k}`"),
        };
        let help = match self.treated {
            Treated::Ignored => format!("a key may appear once in a mapping: the first `{k}` is kept and this one is ignored; remove one or merge them"),
            Treated::MergeIgnored => "a mapping has one merge key: the first `<<` is kept and this one is ignored; merge several mappings with one list, `<<: [*a, *b]`".to_string(),
            Treated::TomlTableMerged => {
                "a TOML table is defined once: the keys under this second header are added to the first table (a key set under both keeps its first value); merge the two".to_string()
            }
            Treated::TomlReplaced => format!("`{k}` holds a value and cannot also be a table: the table under this header is kept and the first `{k}` is ignored; remove one"),
        };
        let (second_label, first_label) = match self.treated {
            Treated::Ignored | Treated::MergeIgnored => ("written again, ignored", format!("first `{k}`, kept")),
            Treated::TomlTableMerged => ("defined again", "first defined here".to_string()),
            Treated::TomlReplaced => ("kept", format!("first `{k}`, ignored")),
        };
        Diag::error(message).label(self.at.clone(), second_label).maybe_label(self.first.clone(), first_label).help(help)
    }
}

/// How many values YAML aliases may add to a document in all. A lab's values are written out
/// (a 10 000-node star is about 120 000 of them; aliases share settings), so
/// this is generous; aliases of aliases that multiply past it are an "alias bomb" (billion
/// laughs), refused before they can exhaust memory.
pub const ALIAS_EXPANSION_LIMIT: usize = 500_000;

mod yaml {
    //! YAML via saphyr's event parser, which reports a span for every node.
    use super::*;
    use saphyr_parser::{Event, Parser, ScalarStyle, Span};

    struct Builder<'a> {
        text: &'a str,
        /// char index -> byte offset, only when the text is not pure ASCII
        char_to_byte: Option<Vec<usize>>,
        anchors: HashMap<usize, Anchor>,
        /// Values added by aliases so far, against `ALIAS_EXPANSION_LIMIT`.
        expanded: usize,
        /// Keys written twice so far.
        dups: Vec<Duplicate>,
    }

    /// An anchored value, its size in values, and where it was written (merged keys point there).
    struct Anchor {
        value: Value,
        size: usize,
        path: Path,
    }

    /// The number of values in a value, itself included.
    fn size(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(size).sum::<usize>(),
            Value::Object(m) => 1 + m.values().map(size).sum::<usize>(),
            _ => 1,
        }
    }

    impl Builder<'_> {
        fn anchor(&mut self, id: usize, value: &Value, path: &Path) {
            if id > 0 {
                self.anchors.insert(id, Anchor { value: value.clone(), size: size(value), path: path.clone() });
            }
        }

        /// The value of an alias, unless it would take the document past the expansion limit.
        fn alias(&mut self, id: usize, span: &Span) -> Result<(Value, Option<Path>), Failure> {
            let Some(a) = self.anchors.get(&id) else { return Ok((Value::Null, None)) };
            if self.expanded + a.size > ALIAS_EXPANSION_LIMIT {
                let at = self.range(span);
                let name = self.text[at.clone()].to_string();
                return Err(Failure {
                    message: format!(
                        "YAML aliases expand this file past {ALIAS_EXPANSION_LIMIT} values: `{name}` stands for {} values, after {} from aliases already",
                        a.size, self.expanded
                    ),
                    at,
                    label: "expands too far",
                    help: Some(
                        "aliases of aliases multiply (an \"alias bomb\"); a topology shares settings with a few aliases, it does not need this many values"
                            .into(),
                    ),
                    syntax: false,
                });
            }
            self.expanded += a.size;
            Ok((a.value.clone(), Some(a.path.clone())))
        }

        fn byte(&self, char_index: usize) -> usize {
            match &self.char_to_byte {
                None => char_index.min(self.text.len()),
                Some(table) => table.get(char_index).copied().unwrap_or(self.text.len()),
            }
        }
        fn range(&self, span: &Span) -> Range<usize> {
            let start = self.byte(span.start.index());
            let end = self.byte(span.end.index()).max(start);
            // Trim trailing whitespace/newlines that block scalars include.
            let mut end = end;
            while end > start && self.text.as_bytes()[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            start..end
        }
    }

    pub(super) fn parse(text: &str, places: &mut Places, dups: &mut Vec<Duplicate>) -> ParseResult {
        let char_to_byte = if text.is_ascii() {
            None
        } else {
            let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            v.push(text.len());
            Some(v)
        };
        let mut b = Builder { text, char_to_byte, anchors: HashMap::new(), expanded: 0, dups: Vec::new() };
        let value = document(&mut b, places);
        dups.append(&mut b.dups);
        value
    }

    /// Where the value of a key written a second time goes: a path no file can write (an index
    /// under a mapping), so that its places and anchors do not take the first's.
    fn ignored_path(b: &Builder, path: &Path) -> Path {
        let mut p = path.clone();
        p.push(Seg::Index(usize::MAX - b.dups.len()));
        p
    }

    fn document(b: &mut Builder, places: &mut Places) -> ParseResult {
        let text = b.text;
        // Events are consumed as they come (one of lookahead): a big file's event list would
        // otherwise be the largest thing vnet ever holds.
        let mut ev = Events { parser: Parser::new_from_str(text), peeked: None };
        while matches!(ev.peek(b)?.0, Event::StreamStart | Event::DocumentStart(_)) {
            ev.next(b)?;
        }
        if matches!(ev.peek(b)?.0, Event::StreamEnd | Event::DocumentEnd) {
            return Ok(Value::Object(Map::new()));
        }
        let mut path = Vec::new();
        let value = node(b, &mut ev, &mut path, places, None)?;
        // A second document is a mistake in a topology file.
        loop {
            match ev.next(b) {
                Ok((Event::DocumentStart(_), span)) => {
                    return Err(("a topology file holds one YAML document; found a second".to_string(), b.range(&span)).into());
                }
                Ok((Event::StreamEnd, _)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok(value)
    }

    /// saphyr's events with one of lookahead.
    struct Events<'a> {
        parser: Parser<'a, saphyr_parser::StrInput<'a>>,
        peeked: Option<(Event<'a>, Span)>,
    }

    impl<'a> Events<'a> {
        fn fill(&mut self, b: &Builder) -> Result<(), (String, Range<usize>)> {
            if self.peeked.is_none() {
                match self.parser.next_event() {
                    Some(Ok(e)) => self.peeked = Some(e),
                    Some(Err(e)) => {
                        let at = b.byte(e.marker().index());
                        return Err((e.info().to_string(), at..(at + 1).min(b.text.len()).max(at)));
                    }
                    None => return Err(("unexpected end of the YAML document".into(), b.text.len()..b.text.len())),
                }
            }
            Ok(())
        }
        fn peek(&mut self, b: &Builder) -> Result<&(Event<'a>, Span), (String, Range<usize>)> {
            self.fill(b)?;
            Ok(self.peeked.as_ref().expect("filled"))
        }
        fn next(&mut self, b: &Builder) -> Result<(Event<'a>, Span), (String, Range<usize>)> {
            self.fill(b)?;
            Ok(self.peeked.take().expect("filled"))
        }
    }

    fn scalar(value: &str, style: ScalarStyle, tagged_str: bool) -> Value {
        if style != ScalarStyle::Plain || tagged_str {
            return Value::String(value.to_string());
        }
        // YAML 1.2 core schema resolution.
        match value {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        }
        let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            if let Ok(i) = value.parse::<i64>() {
                return Value::Number(i.into());
            }
            if let Ok(u) = value.parse::<u64>() {
                return Value::Number(u.into());
            }
        }
        if let Some(hex) = value.strip_prefix("0x") {
            if let Ok(u) = u64::from_str_radix(hex, 16) {
                return Value::Number(u.into());
            }
        }
        if let Some(oct) = value.strip_prefix("0o") {
            if let Ok(u) = u64::from_str_radix(oct, 8) {
                return Value::Number(u.into());
            }
        }
        let looks_float = value.bytes().any(|c| c == b'.' || c == b'e' || c == b'E')
            && value.bytes().all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
            && value.bytes().any(|c| c.is_ascii_digit());
        if looks_float {
            if let Ok(f) = value.parse::<f64>() {
                if let Some(n) = Number::from_f64(f) {
                    return Value::Number(n);
                }
            }
        }
        Value::String(value.to_string())
    }

    /// A mapping a merge key brings in, the path where it was written, and a span to fall back on.
    type MergeSource = (Map<String, Value>, Path, Range<usize>);

    /// The mappings a merge key's value names (an alias, a mapping, or a list of them, earlier
    /// ones first), each with the path where it was written and a span to fall back on.
    fn merge_sources(b: &mut Builder, events: &mut Events, path: &mut Path, places: &mut Places) -> Result<Vec<MergeSource>, Failure> {
        path.push(Seg::Key("<<".into()));
        let mut out = Vec::new();
        let is_list = matches!(events.peek(b)?.0, Event::SequenceStart(..));
        if is_list {
            events.next(b)?;
        }
        let mut i = 0;
        loop {
            if is_list && matches!(events.peek(b)?.0, Event::SequenceEnd) {
                events.next(b)?;
                break;
            }
            if is_list {
                path.push(Seg::Index(i));
            }
            let (value, from, span) = if let (Event::Alias(id), span) = events.peek(b)? {
                let (id, span) = (*id, *span);
                events.next(b)?;
                let (v, from) = b.alias(id, &span)?;
                (v, from.unwrap_or_else(|| path.clone()), b.range(&span))
            } else {
                let v = node(b, events, path, places, None)?;
                let span = places.get(path).map(|p| p.value.clone()).unwrap_or_default();
                (v, path.clone(), span)
            };
            match value {
                Value::Object(m) => out.push((m, from, span)),
                other => {
                    let what = match other {
                        Value::Array(_) => "a list",
                        Value::Null => "nothing",
                        _ => "a scalar",
                    };
                    return Err(Failure {
                        message: format!("a merge key `<<` takes a mapping (`<<: *name`) or a list of mappings, not {what}"),
                        at: span,
                        label: "not a mapping",
                        help: None,
                        syntax: false,
                    });
                }
            }
            if !is_list {
                break;
            }
            path.pop();
            i += 1;
        }
        path.pop();
        Ok(out)
    }

    fn node(b: &mut Builder, events: &mut Events, path: &mut Path, places: &mut Places, key: Option<Range<usize>>) -> ParseResult {
        let (ev, span) = events.next(b)?;
        let span = &span;
        match &ev {
            Event::Scalar(v, style, anchor, tag) => {
                let tagged_str = tag.as_ref().map(|t| t.suffix == "str").unwrap_or(false);
                let value = scalar(v, *style, tagged_str);
                b.anchor(*anchor, &value, path);
                places.insert(path, Place { key, value: b.range(span) });
                Ok(value)
            }
            Event::Alias(id) => {
                let (value, _) = b.alias(*id, span)?;
                places.insert(path, Place { key, value: b.range(span) });
                Ok(value)
            }
            Event::SequenceStart(anchor, _) => {
                let start = b.range(span).start;
                let mut items = Vec::new();
                let mut child_end: Option<usize> = None;
                loop {
                    match &events.peek(b)?.0 {
                        Event::SequenceEnd => {
                            let (_, end_span) = events.next(b)?;
                            let end = b.range(&end_span).end.max(start);
                            // A flow sequence ends at its `]`; a block one at its last child.
                            let block_end = child_end.filter(|e| *e < end).unwrap_or(end);
                            let end = if b.text.as_bytes().get(start) == Some(&b'[') { end } else { block_end };
                            places.insert(path, Place { key, value: start..end });
                            let value = Value::Array(items);
                            b.anchor(*anchor, &value, path);
                            return Ok(value);
                        }
                        _ => {
                            path.push(Seg::Index(items.len()));
                            let item = node(b, events, path, places, None)?;
                            child_end = places.get(path).map(|p| p.value.end).max(child_end);
                            path.pop();
                            items.push(item);
                        }
                    }
                }
            }
            Event::MappingStart(anchor, _) => {
                let start = b.range(span).start;
                let mut map = Map::new();
                let mut child_end: Option<usize> = None;
                // YAML 1.1 merge keys: `<<: *defaults` (or a list of them) adds the keys the
                // mapping does not set itself. `merged` holds the keys that came that way (an
                // explicit key may still override them); `merge_key` where `<<` was.
                let mut merged: std::collections::HashSet<String> = std::collections::HashSet::new();
                let mut merge_key: Option<Range<usize>> = None;
                loop {
                    match &events.peek(b)?.0 {
                        Event::MappingEnd => {
                            let (_, end_span) = events.next(b)?;
                            let end = b.range(&end_span).end.max(start);
                            // A flow mapping ends at its `}`; a block one at its last child.
                            let block_end = child_end.filter(|e| *e < end).unwrap_or(end);
                            let end = if b.text.as_bytes().get(start) == Some(&b'{') { end } else { block_end };
                            places.insert(path, Place { key, value: start..end });
                            let value = Value::Object(map);
                            b.anchor(*anchor, &value, path);
                            return Ok(value);
                        }
                        Event::Scalar(..) => {
                            let (kev, kspan) = events.next(b)?;
                            let Event::Scalar(k, kstyle, ..) = kev else { unreachable!("peeked a scalar") };
                            let k = k.to_string();
                            let key_range = b.range(&kspan);
                            if k == "<<" && kstyle == ScalarStyle::Plain {
                                if let Some(first) = &merge_key {
                                    // The first merge key is kept; this one is read (its anchors
                                    // count) and left out.
                                    let mut ignored = ignored_path(b, path);
                                    b.dups.push(Duplicate { key: k, at: key_range, first: Some(first.clone()), treated: Treated::MergeIgnored });
                                    merge_sources(b, events, &mut ignored, places)?;
                                    child_end = Some(b.range(&kspan).end).max(child_end);
                                    continue;
                                }
                                merge_key = Some(key_range.clone());
                                for (source, from, fallback) in merge_sources(b, events, path, places)? {
                                    for (mk, mv) in source {
                                        if map.contains_key(&mk) {
                                            continue;
                                        }
                                        // Errors in a merged value point at where it was written.
                                        let mut to = path.clone();
                                        to.push(Seg::Key(mk.clone()));
                                        let mut src = from.clone();
                                        src.push(Seg::Key(mk.clone()));
                                        let place = places.get(&src).cloned().unwrap_or(Place { key: None, value: fallback.clone() });
                                        places.insert(&to, place);
                                        merged.insert(mk.clone());
                                        map.insert(mk, mv);
                                    }
                                }
                                child_end = Some(b.range(&kspan).end).max(child_end);
                                continue;
                            }
                            if map.contains_key(&k) && !merged.remove(&k) {
                                // The first is kept; this one is read (a syntax error or an
                                // anchor in it still counts) and left out.
                                let mut first = path.clone();
                                first.push(Seg::Key(k.clone()));
                                let first = places.get(&first).and_then(|p| p.key.clone());
                                let mut ignored = ignored_path(b, path);
                                b.dups.push(Duplicate { key: k, at: key_range.clone(), first, treated: Treated::Ignored });
                                node(b, events, &mut ignored, places, Some(key_range))?;
                                child_end = places.get(&ignored).map(|p| p.value.end).max(child_end);
                                continue;
                            }
                            path.push(Seg::Key(k.clone()));
                            let v = node(b, events, path, places, Some(key_range))?;
                            child_end = places.get(path).map(|p| p.value.end).max(child_end);
                            path.pop();
                            map.insert(k, v);
                        }
                        _ => {
                            let r = b.range(&events.peek(b)?.1);
                            return Err(("mapping keys must be plain strings".to_string(), r).into());
                        }
                    }
                }
            }
            other => Err((format!("unexpected YAML event {other:?}"), b.range(span)).into()),
        }
    }
}

mod toml_doc {
    //! TOML via the toml crate's spanned document parser.
    //!
    //! A key written twice is not fatal: the crate's recovering parser reports it ("duplicate
    //! key", at the second key) and goes on. It keeps the first of two `key = value`s and drops
    //! the second; a `[table]` header written again reopens the first table, adding the keys under
    //! it (each key set under both is a duplicate of its own, the first kept). Any other error
    //! stops parsing as before.
    use super::*;
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;

    pub(super) fn parse(text: &str, places: &mut Places, dups: &mut Vec<Duplicate>) -> ParseResult {
        let (doc, errors) = DeTable::parse_recoverable(text);
        let mut fatal = None;
        for e in errors {
            let r = e.span().unwrap_or(0..0);
            let msg = e.message().trim_end().to_string();
            if msg == "duplicate key" && fatal.is_none() {
                // Finding the first costs a parse of the text: done for as many as a report
                // renders.
                let locate = dups.len() < crate::model::diag::RENDERED_MAX;
                if let Some(d) = duplicate(text, r.clone(), locate) {
                    dups.push(d);
                    continue;
                }
            }
            if fatal.is_none() {
                // toml says only "duplicate key": name it.
                let msg = match text.get(r.clone()).filter(|k| msg == "duplicate key" && !k.is_empty() && !k.contains('\n')) {
                    Some(key) => format!("duplicate key `{}`", key.trim()),
                    None => msg,
                };
                fatal = Some((msg, r));
            }
        }
        if let Some(f) = fatal {
            return Err(f.into());
        }
        let span = doc.span();
        let mut path = Vec::new();
        let v = table(doc.get_ref(), &mut path, places);
        places.insert(&[], Place { key: None, value: span });
        Ok(v)
    }

    /// One step down a TOML document.
    enum Step {
        Key(String),
        Index(usize),
    }

    /// The key a "duplicate key" error points at, with its first occurrence and how the toml
    /// crate went on. The first is found by parsing the text again with the second key renamed
    /// to one the file does not hold: where that name lands is where the key sits (its table),
    /// and the key of the same name there is the first. It comes before the renamed one, so the
    /// renaming moved nothing in its place.
    fn duplicate(text: &str, at: Range<usize>, locate: bool) -> Option<Duplicate> {
        let raw = text.get(at.clone()).filter(|k| !k.trim().is_empty() && !k.contains('\n'))?.trim();
        let key = match DeTable::parse(&format!("{raw} = 0")) {
            Ok(t) => t.get_ref().keys().next().map(|k| k.get_ref().to_string()),
            Err(_) => None,
        }
        .unwrap_or_else(|| raw.trim_matches(['"', '\'']).to_string());
        // The first occurrence, and whether it is a table.
        let mut first: Option<(Range<usize>, bool)> = None;
        if locate {
            let mut stand_in = String::from("vnet-duplicate-key");
            while text.contains(&stand_in) {
                stand_in.push('-');
            }
            let renamed = format!("{}{stand_in}{}", &text[..at.start], &text[at.end..]);
            let (doc, _) = DeTable::parse_recoverable(&renamed);
            let mut steps = Vec::new();
            if find(doc.get_ref(), &stand_in, &mut steps) {
                steps.pop();
                first = table_at(doc.get_ref(), &steps)
                    .and_then(|t| t.get_key_value(key.as_str()))
                    .filter(|(k, _)| k.span().end <= at.start)
                    .map(|(k, v)| (k.span(), matches!(v.get_ref(), DeValue::Table(_))));
            }
        }
        // A `[table]` header written again.
        let line_start = text[..at.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let header = {
            let before = text[line_start..at.start].trim_start();
            before.starts_with('[') && !before.starts_with("[[") && text[at.end..].trim_start().starts_with(']')
        };
        let (key, treated) = match first {
            // Over a key that holds a value: the crate keeps the table of the header.
            Some((_, false)) if header => (key, Treated::TomlReplaced),
            // Over a table: the crate reopens it. Named by the whole header, `[nodes.a]`.
            _ if header => {
                let open = line_start + text[line_start..].find('[').unwrap_or(0);
                let close = at.end + text[at.end..].find(']').map(|i| i + 1).unwrap_or(0);
                (text[open..close].to_string(), Treated::TomlTableMerged)
            }
            _ => (key, Treated::Ignored),
        };
        Some(Duplicate { key, at, first: first.map(|(r, _)| r), treated })
    }

    /// Whether a key named `name` is under `t`, and the steps to it.
    fn find(t: &DeTable, name: &str, steps: &mut Vec<Step>) -> bool {
        for (k, v) in t.iter() {
            steps.push(Step::Key(k.get_ref().to_string()));
            if k.get_ref() == name || find_in(v.get_ref(), name, steps) {
                return true;
            }
            steps.pop();
        }
        false
    }

    fn find_in(v: &DeValue, name: &str, steps: &mut Vec<Step>) -> bool {
        match v {
            DeValue::Table(t) => find(t, name, steps),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    steps.push(Step::Index(i));
                    if find_in(item.get_ref(), name, steps) {
                        return true;
                    }
                    steps.pop();
                }
                false
            }
            _ => false,
        }
    }

    /// The table `steps` lead to.
    fn table_at<'t, 'i>(t: &'t DeTable<'i>, steps: &[Step]) -> Option<&'t DeTable<'i>> {
        let Some((step, rest)) = steps.split_first() else { return Some(t) };
        let Step::Key(k) = step else { return None };
        let mut v = t.get(k.as_str())?.get_ref();
        let mut rest = rest;
        // Arrays (of tables) are stepped through by index.
        while let (DeValue::Array(a), Some((Step::Index(i), more))) = (v, rest.split_first()) {
            v = a.get(*i)?.get_ref();
            rest = more;
        }
        match v {
            DeValue::Table(t) => table_at(t, rest),
            _ => None,
        }
    }

    fn table(t: &DeTable, path: &mut Path, places: &mut Places) -> Value {
        let mut map = Map::new();
        for (k, v) in t.iter() {
            path.push(Seg::Key(k.get_ref().to_string()));
            let val = value(v, path, places, Some(k.span()));
            path.pop();
            map.insert(k.get_ref().to_string(), val);
        }
        Value::Object(map)
    }

    fn value(v: &Spanned<DeValue>, path: &mut Path, places: &mut Places, key: Option<Range<usize>>) -> Value {
        places.insert(path, Place { key, value: v.span() });
        match v.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => {
                let s = i.as_str().replace('_', "");
                let parsed = match i.radix() {
                    10 => s.parse::<i64>().ok(),
                    r => i64::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0o").trim_start_matches("0b"), r).ok(),
                };
                parsed.map(|n| Value::Number(n.into())).unwrap_or(Value::String(s))
            }
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number).unwrap_or(Value::Null),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::String(d.to_string()),
            DeValue::Array(a) => {
                let mut items = Vec::new();
                for (i, item) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    items.push(value(item, path, places, None));
                    path.pop();
                }
                Value::Array(items)
            }
            DeValue::Table(t) => table(t, path, places),
        }
    }
}

mod json {
    //! JSON: values are parsed by serde_json, places found by a small scanner over the same text.
    use super::*;
    use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    pub(super) fn parse(text: &str, places: &mut Places, dups: &mut Vec<Duplicate>) -> ParseResult {
        // A byte order mark (as some Windows editors write) is not JSON, but YAML and TOML accept
        // it, and so does vnet: the JSON starts after it, and places still count from the file's
        // first byte.
        let bom = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
        // The scanner is first: it finds the keys written twice, also before a syntax error.
        let mut s = Scanner { b: text.as_bytes(), i: bom, dups };
        let mut path = Vec::new();
        s.value(&mut path, places, None);
        let mut de = serde_json::Deserializer::from_str(&text[bom..]);
        let value = FirstWins::deserialize(&mut de).and_then(|v| de.end().map(|_| v.0)).map_err(|e| {
            let offset = offset_of(&text[bom..], e.line(), e.column()) + bom;
            let msg = e.to_string();
            // The location is shown separately.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            (msg, offset..(offset + 1).min(text.len()).max(offset))
        })?;
        Ok(value)
    }

    /// A JSON value in which the first of duplicate keys is kept (serde_json's own `Value` keeps
    /// the last, silently).
    struct FirstWins(Value);

    impl<'de> Deserialize<'de> for FirstWins {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(FirstWinsVisitor).map(FirstWins)
        }
    }

    struct FirstWinsVisitor;

    impl<'de> DeserializeSeed<'de> for FirstWinsVisitor {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for FirstWinsVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element_seed(FirstWinsVisitor)? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut m = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                let v = map.next_value_seed(FirstWinsVisitor)?;
                m.entry(k).or_insert(v);
            }
            Ok(Value::Object(m))
        }
    }

    fn offset_of(text: &str, line: usize, col: usize) -> usize {
        let mut off = 0;
        for (n, l) in text.split_inclusive('\n').enumerate() {
            if n + 1 == line {
                return (off + col.saturating_sub(1)).min(text.len());
            }
            off += l.len();
        }
        text.len()
    }

    struct Scanner<'a> {
        b: &'a [u8],
        i: usize,
        /// The keys written twice in one object.
        dups: &'a mut Vec<Duplicate>,
    }

    impl Scanner<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn string(&mut self) -> String {
            let start = self.i;
            self.i += 1;
            while self.i < self.b.len() && self.b[self.i] != b'"' {
                if self.b[self.i] == b'\\' {
                    self.i += 1;
                }
                self.i += 1;
            }
            self.i += 1;
            let raw = std::str::from_utf8(&self.b[start..self.i.min(self.b.len())]).unwrap_or("\"\"");
            serde_json::from_str(raw).unwrap_or_default()
        }
        fn value(&mut self, path: &mut Path, places: &mut Places, key: Option<Range<usize>>) {
            self.ws();
            let start = self.i;
            match self.b.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut keys: HashMap<String, Range<usize>> = HashMap::new();
                    loop {
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            Some(b',') => self.i += 1,
                            Some(b'"') => {
                                let ks = self.i;
                                let k = self.string();
                                let kr = ks..self.i;
                                // The second of a key written twice is left out: its places go
                                // to a path no file can write (an index under an object).
                                let seg = match keys.get(&k) {
                                    Some(first) => {
                                        let seg = Seg::Index(usize::MAX - self.dups.len());
                                        self.dups.push(Duplicate { key: k, at: kr.clone(), first: Some(first.clone()), treated: Treated::Ignored });
                                        seg
                                    }
                                    None => {
                                        keys.insert(k.clone(), kr.clone());
                                        Seg::Key(k)
                                    }
                                };
                                self.ws();
                                self.i += 1; // ':'
                                path.push(seg);
                                self.value(path, places, Some(kr));
                                path.pop();
                            }
                            _ => break,
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut n = 0;
                    loop {
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            Some(b',') => self.i += 1,
                            Some(_) => {
                                let at = self.i;
                                path.push(Seg::Index(n));
                                self.value(path, places, None);
                                path.pop();
                                n += 1;
                                // Text that is no value (a syntax error serde_json reports).
                                if self.i == at {
                                    break;
                                }
                            }
                            None => break,
                        }
                    }
                }
                Some(b'"') => {
                    self.string();
                }
                Some(_) => {
                    while self.i < self.b.len() && !b",]} \t\r\n".contains(&self.b[self.i]) {
                        self.i += 1;
                    }
                }
                None => {}
            }
            places.insert(path, Place { key, value: start..self.i });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(keys: &[&str]) -> Path {
        keys.iter().map(|k| k.parse::<usize>().map(Seg::Index).unwrap_or_else(|_| Seg::Key(k.to_string()))).collect()
    }

    #[test]
    fn yaml_places_point_at_values_and_keys() {
        let text = "name: lab\nnodes:\n  a:\n    interfaces:\n      eth0: {mtu: 1400}\nlist: [x, 'y']\n";
        let d = Document::parse("t.yaml", text, Format::Yaml).unwrap();
        let r = d.value_span(&seg(&["nodes", "a", "interfaces", "eth0", "mtu"])).unwrap();
        assert_eq!(&text[r], "1400");
        let k = d.key_span(&seg(&["nodes", "a"])).unwrap();
        assert_eq!(&text[k], "a");
        let r = d.value_span(&seg(&["list", "1"])).unwrap();
        assert_eq!(&text[r], "'y'");
        assert_eq!(d.value["nodes"]["a"]["interfaces"]["eth0"]["mtu"], 1400);
        assert_eq!(d.value["list"][1], "y");
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let text = "a: 02:00:00:00:00:01\nb: '1'\nc: 1\nd: true\ne: 1.5\nf: 10.0.0.1/24\ng: ~\n";
        let d = Document::parse("t.yaml", text, Format::Yaml).unwrap();
        assert_eq!(d.value["a"], "02:00:00:00:00:01");
        assert_eq!(d.value["b"], "1");
        assert_eq!(d.value["c"], 1);
        assert_eq!(d.value["d"], true);
        assert_eq!(d.value["e"], 1.5);
        assert_eq!(d.value["f"], "10.0.0.1/24");
        assert!(d.value["g"].is_null());
    }

    /// Each finding of a document as (message, [(underlined text, label)]).
    fn findings(d: &Document) -> Vec<(String, Vec<(String, String)>)> {
        let text = d.source.text.as_str();
        d.findings().iter().map(|f| (f.message.clone(), f.labels.iter().map(|l| (text[l.span.clone()].to_string(), l.text.clone())).collect())).collect()
    }

    fn labels(second: &str, first: &str, k: &str) -> Vec<(String, String)> {
        vec![(second.to_string(), "written again, ignored".to_string()), (first.to_string(), format!("first `{k}`, kept"))]
    }

    #[test]
    fn a_key_written_twice_keeps_the_first_and_parsing_goes_on_in_every_format() {
        let cases = [
            ("t.yaml", "nodes:\n  a: { mtu: 1 }\n  b: {}\n  a: { mtu: 2 }\nname: x\n", "a"),
            ("t.json", "{\"nodes\": {\"a\": {\"mtu\": 1},\n \"b\": {},\n \"a\": {\"mtu\": 2}},\n \"name\": \"x\"}", "\"a\""),
            ("t.toml", "name = \"x\"\nnodes.a.mtu = 1\nnodes.b = {}\nnodes.a.mtu = 2\n", "mtu"),
        ];
        for (name, text, key) in cases {
            let d = Document::parse(name, text, Format::from_name(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            // The first is kept, the rest of the file read.
            assert_eq!(d.value["nodes"]["a"]["mtu"], 1, "{name}");
            assert_eq!(d.value["name"], "x", "{name}");
            assert!(d.value["nodes"]["b"].is_object(), "{name}");
            // The places are the first's.
            let r = d.value_span(&seg(&["nodes", "a", "mtu"])).unwrap();
            assert_eq!((&text[r.clone()], d.source.line_col(r.start).0), ("1", 2 - usize::from(name == "t.json")), "{name}");
            // One error: at the second, a label at the first, and a help that says which is kept.
            let f = findings(&d);
            let k = key.trim_matches('"');
            assert_eq!(f.len(), 1, "{name}: {f:?}");
            let first_line = if name == "t.json" { 1 } else { 2 };
            assert_eq!(f[0].0, format!("duplicate key `{k}` (first on line {first_line})"), "{name}");
            assert_eq!(f[0].1, labels(key, key, k), "{name}");
            assert_eq!(d.source.line_col(d.findings()[0].labels[0].span.start).0, 4 - usize::from(name == "t.json"), "{name}");
            let help = d.findings()[0].help.clone().unwrap();
            assert!(help.contains(&format!("the first `{k}` is kept and this one is ignored")), "{name}: {help}");
        }
    }

    #[test]
    fn json_keys_written_twice_anywhere_are_each_found_and_the_second_ignored() {
        // serde_json alone keeps the last, silently.
        let text = "{\"a\": {\"x\": 1, \"x\": {\"y\": 2, \"y\": 3}},\n \"a\": 5, \"b\": [1, {\"c\": true, \"c\": false}]}";
        let d = Document::parse("t.json", text, Format::Json).unwrap();
        assert_eq!(d.value, serde_json::json!({"a": {"x": 1}, "b": [1, {"c": true}]}));
        let f = findings(&d);
        let msgs: Vec<&str> = f.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "duplicate key `x` (first on line 1)",
                "duplicate key `y` (first on line 1)",
                "duplicate key `a` (first on line 1)",
                "duplicate key `c` (first on line 2)"
            ]
        );
        assert_eq!(d.source.line_col(d.findings()[2].labels[0].span.start), (2, 2));
        assert_eq!(d.source.line_col(d.findings()[2].labels[1].span.start), (1, 2));
        // The ignored value's places do not take the first's.
        let r = d.value_span(&seg(&["a", "x"])).unwrap();
        assert_eq!(&text[r], "1");
        let r = d.value_span(&seg(&["b", "1", "c"])).unwrap();
        assert_eq!(&text[r], "true");
    }

    #[test]
    fn toml_keys_written_twice_are_found_as_the_toml_crate_recovers() {
        // A key twice: the first is kept (also in an array of tables, an inline table, quoted).
        let text = "[[links]]\ne = 1\ne = 2\n[[links]]\ne = 3\nx = { a = 1, \"a\" = 2 }\n";
        let d = Document::parse("t.toml", text, Format::Toml).unwrap();
        assert_eq!(d.value, serde_json::json!({"links": [{"e": 1}, {"e": 3, "x": {"a": 1}}]}));
        assert_eq!(
            findings(&d),
            [
                ("duplicate key `e` (first on line 2)".to_string(), labels("e", "e", "e")),
                ("duplicate key `a` (first on line 6)".to_string(), labels("\"a\"", "a", "a")),
            ]
        );
        // A table defined twice: the crate adds the second's keys to the first; a key set under
        // both keeps its first value and is a duplicate of its own.
        let text =
            "[nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.1/24\"]\n[nodes.b]\n[nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.2/24\"]\nmtu = 1400\n";
        let d = Document::parse("t.toml", text, Format::Toml).unwrap();
        assert_eq!(d.value["nodes"]["a"], serde_json::json!({"interfaces": {"eth0": {"addresses": ["10.0.0.1/24"], "mtu": 1400}}}));
        let f = findings(&d);
        assert_eq!(f[0].0, "duplicate table `[nodes.a.interfaces.eth0]` (first on line 1)");
        assert_eq!(f[0].1, [("eth0".to_string(), "defined again".to_string()), ("eth0".to_string(), "first defined here".to_string())]);
        assert!(d.findings()[0].help.as_deref().unwrap().contains("the keys under this second header are added to the first table"));
        assert_eq!(d.source.line_col(d.findings()[0].labels[0].span.start), (4, 21));
        assert_eq!(f[1], ("duplicate key `addresses` (first on line 2)".to_string(), labels("addresses", "addresses", "addresses")));
        assert_eq!(f.len(), 2);
        // A header over a key that holds a value: the crate keeps the table, and says so.
        let d = Document::parse("t.toml", "[a]\nb = 1\n[a.b]\nc = 2\n", Format::Toml).unwrap();
        assert_eq!(d.value, serde_json::json!({"a": {"b": {"c": 2}}}));
        assert_eq!(
            findings(&d),
            [(
                "duplicate key `b` (first on line 2)".to_string(),
                vec![("b".to_string(), "kept".to_string()), ("b".to_string(), "first `b`, ignored".to_string())]
            )]
        );
        // Finding the first costs a parse: only as many as a report renders are located.
        let mut text = String::new();
        for i in 0..60 {
            text.push_str(&format!("k{i} = 1\n[t{i}]\n[t{i}]\nk{i} = 2\nk{i} = 3\n"));
        }
        let d = Document::parse("t.toml", &text, Format::Toml).unwrap();
        let f = findings(&d);
        assert_eq!(f.len(), 120);
        assert_eq!(f[0].0, "duplicate table `[t0]` (first on line 2)");
        assert_eq!(f[1].0, "duplicate key `k0` (first on line 4)");
        assert_eq!(f[49].0, "duplicate key `k24` (first on line 124)");
        assert_eq!((f[50].0.as_str(), f[51].0.as_str()), ("duplicate table `[t25]`", "duplicate key `k25`"));
        assert_eq!(f[51].1.len(), 1);
    }

    #[test]
    fn keys_written_twice_before_a_syntax_error_are_reported_with_it() {
        let cases = [
            ("t.yaml", "x: 1\nx: 2\ny: [\n", "syntax error: while parsing a node, did not find expected node content"),
            ("t.json", "{\"x\": 1, \"x\": 2, \"y\": [1, }", "syntax error: expected value"),
            ("t.toml", "x = 1\nx = 2\ny = \n", "syntax error: string values must be quoted, expected literal string"),
        ];
        for (name, text, syntax) in cases {
            let e = Document::parse(name, text, Format::from_name(name)).unwrap_err();
            let msgs: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
            assert_eq!(msgs, ["duplicate key `x` (first on line 1)", syntax], "{name}");
        }
        // Those after it are not: what follows a syntax error is not read reliably.
        let e = Document::parse("t.toml", "y = \nx = 1\nx = 2\n", Format::Toml).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
    }

    #[test]
    fn toml_places() {
        let text = "name = \"lab\"\n[nodes.a.interfaces.eth0]\nmtu = 1400\naddresses = [\"10.0.0.1/24\"]\n";
        let d = Document::parse("t.toml", text, Format::Toml).unwrap();
        let r = d.value_span(&seg(&["nodes", "a", "interfaces", "eth0", "addresses", "0"])).unwrap();
        assert_eq!(&text[r], "\"10.0.0.1/24\"");
        assert_eq!(d.value["nodes"]["a"]["interfaces"]["eth0"]["mtu"], 1400);
    }

    #[test]
    fn json_places() {
        let text = "{\"name\": \"lab\", \"nodes\": {\"a\": {\"interfaces\": {\"eth0\": {\"mtu\": 1400}}}}}";
        let d = Document::parse("t.json", text, Format::Json).unwrap();
        let r = d.value_span(&seg(&["nodes", "a", "interfaces", "eth0", "mtu"])).unwrap();
        assert_eq!(&text[r], "1400");
        let k = d.key_span(&seg(&["nodes", "a"])).unwrap();
        assert_eq!(&text[k], "\"a\"");
    }

    #[test]
    fn a_byte_order_mark_is_accepted_in_every_format_with_places_after_it() {
        let cases = [
            ("t.json", Format::Json, "\u{feff}{\"name\": \"b\", \"nodes\": {\"a\": {\"mtu\": 1400}}}", 2),
            ("t.yaml", Format::Yaml, "\u{feff}name: b\nnodes: {a: {mtu: 1400}}\n", 1),
            ("t.toml", Format::Toml, "\u{feff}name = \"b\"\nnodes.a.mtu = 1400\n", 1),
        ];
        for (name, format, text, col) in cases {
            let d = Document::parse(name, text, format).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(d.value["name"], "b", "{name}");
            let r = d.value_span(&seg(&["nodes", "a", "mtu"])).unwrap();
            assert_eq!(&text[r], "1400", "{name}");
            let k = d.key_span(&seg(&["name"])).unwrap();
            assert_eq!(text[k].trim_matches('"'), "name", "{name}");
            // The mark is not a column.
            assert_eq!(d.source.line_col(d.key_span(&seg(&["name"])).unwrap().start), (1, col), "{name}");
        }
        // A syntax error after the mark is located in the file's own bytes.
        let text = "\u{feff}{\"name\": }";
        let e = Document::parse("t.json", text, Format::Json).unwrap_err();
        let d = e.iter().next().unwrap();
        assert_eq!(d.message, "syntax error: expected value");
        assert_eq!(&text[d.labels[0].span.clone()], "}");
    }

    #[test]
    fn yaml_aliases_that_multiply_past_the_limit_are_refused_at_the_alias() {
        // Each level stands for 40 of the one before: the fourth (40^4 = 2 560 000 strings)
        // crosses the limit, and is refused before it is built.
        let mut text = String::from("name: lol\na: &a [");
        text.push_str(&vec!["lol"; 40].join(", "));
        text.push_str("]\n");
        for (name, prev) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d")] {
            text.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 40].join(", ")));
        }
        let started = std::time::Instant::now();
        let e = Document::parse("t.yaml", &text, Format::Yaml).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
        let d = e.iter().next().unwrap();
        assert_eq!(
            d.message,
            format!("YAML aliases expand this file past {ALIAS_EXPANSION_LIMIT} values: `*c` stands for 65641 values, after 461126 from aliases already")
        );
        let l = &d.labels[0];
        assert_eq!((&text[l.span.clone()], l.text.as_str()), ("*c", "expands too far"));
        // The seventh `*c` of `d:` is the one.
        assert_eq!(text[..l.span.start].rsplit('\n').next().unwrap(), format!("d: &d [{}", "*c, ".repeat(6)));
        assert!(d.help.as_deref().unwrap().contains("alias bomb"));
        // Aliases within the limit are expanded as usual.
        let d = Document::parse("t.yaml", "a: &a [1, 2]\nb: [*a, *a]\n", Format::Yaml).unwrap();
        assert_eq!(d.value["b"], serde_json::json!([[1, 2], [1, 2]]));
    }

    #[test]
    fn yaml_merge_keys_add_the_keys_a_mapping_does_not_set() {
        let text = "d: &d { mtu: 1400, up: false }\ne: &e { mtu: 9000, mac: x }\n\
                    one: { <<: *d, up: true }\n\
                    list:\n  mtu: 1300\n  <<: [*d, *e]\n\
                    inline: { <<: { mtu: 1 }, mac: y }\n\
                    late: { up: true, <<: *d }\n";
        let d = Document::parse("t.yaml", text, Format::Yaml).unwrap();
        // The mapping's own keys win, then earlier sources over later ones.
        assert_eq!(d.value["one"], serde_json::json!({"mtu": 1400, "up": true}));
        assert_eq!(d.value["list"], serde_json::json!({"mtu": 1300, "up": false, "mac": "x"}));
        assert_eq!(d.value["inline"], serde_json::json!({"mtu": 1, "mac": "y"}));
        assert_eq!(d.value["late"], serde_json::json!({"up": true, "mtu": 1400}));
        // A merged value is located where it was written.
        let r = d.value_span(&seg(&["one", "mtu"])).unwrap();
        assert_eq!((&text[r.clone()], d.source.line_col(r.start)), ("1400", (1, 14)));
        let r = d.key_span(&seg(&["list", "mac"])).unwrap();
        assert_eq!((&text[r.clone()], d.source.line_col(r.start)), ("mac", (2, 20)));
        let r = d.value_span(&seg(&["inline", "mtu"])).unwrap();
        assert_eq!(&text[r], "1");
        // ... and an overriding key where it is.
        let r = d.value_span(&seg(&["one", "up"])).unwrap();
        assert_eq!(d.source.line_col(r.start), (3, 20));

        let err = |text: &str| {
            let e = Document::parse("t.yaml", text, Format::Yaml).unwrap_err();
            let d = e.iter().next().unwrap().clone();
            (d.message, text[d.labels[0].span.clone()].to_string())
        };
        assert_eq!(
            err("d: &d [1]\nx: { <<: *d }\n"),
            ("a merge key `<<` takes a mapping (`<<: *name`) or a list of mappings, not a list".to_string(), "*d".to_string())
        );
        // A key written twice is an error that stops nothing: the first is kept.
        let dup = |text: &str| {
            let d = Document::parse("t.yaml", text, Format::Yaml).unwrap();
            let f = d.findings()[0].clone();
            (d.value["x"].clone(), f.message, text[f.labels[0].span.clone()].to_string(), text[f.labels[1].span.clone()].to_string(), f.help.unwrap())
        };
        let (v, msg, second, first, help) = dup("d: &d {a: 1}\ne: &e {b: 1}\nx:\n  <<: *d\n  <<: *e\n");
        assert_eq!((v, msg.as_str(), second.as_str(), first.as_str()), (serde_json::json!({"a": 1}), "duplicate key `<<` (first on line 4)", "<<", "<<"));
        assert!(help.contains("the first `<<` is kept and this one is ignored"), "{help}");
        let (v, msg, second, first, _) = dup("d: &d {a: 1}\nx: { a: 2, <<: *d, a: 3 }\n");
        assert_eq!((v, msg.as_str(), second.as_str(), first.as_str()), (serde_json::json!({"a": 2}), "duplicate key `a` (first on line 2)", "a", "a"));
        // An anchor in an ignored value still names it, located where it is written.
        let text = "x: {a: 1, a: &z {q: 1}}\ny: {<<: *z}\n";
        let d = Document::parse("t.yaml", text, Format::Yaml).unwrap();
        assert_eq!(d.value, serde_json::json!({"x": {"a": 1}, "y": {"q": 1}}));
        assert_eq!(d.source.line_col(d.value_span(&seg(&["y", "q"])).unwrap().start), (1, 21));
        assert_eq!(&text[d.value_span(&seg(&["x", "a"])).unwrap()], "1");
        // A quoted `<<` is an ordinary key.
        let d = Document::parse("t.yaml", "x: { '<<': 1 }\n", Format::Yaml).unwrap();
        assert_eq!(d.value["x"]["<<"], 1);
    }

    #[test]
    fn line_col_counts_from_one() {
        let s = SourceText { name: "x".into(), text: Arc::new("ab\ncd".into()) };
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
    }
}
