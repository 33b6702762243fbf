//! Diagnostics for topology files: every problem at once, each pointing at the text that caused
//! it, rendered by miette (underlined snippet) or as compact `file:line:col` lines.

use std::fmt;
use std::ops::Range;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use super::source::SourceText;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A label underlining part of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Range<usize>,
    pub text: String,
}

/// One finding about a topology file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(message: impl Into<String>) -> Diag {
        Diag { severity: Severity::Error, message: message.into(), labels: Vec::new(), help: None }
    }
    pub fn warning(message: impl Into<String>) -> Diag {
        Diag { severity: Severity::Warning, message: message.into(), labels: Vec::new(), help: None }
    }
    /// Underlines `span` with `text`; spans are byte ranges into the file.
    pub fn label(mut self, span: Range<usize>, text: impl Into<String>) -> Diag {
        self.labels.push(Label { span, text: text.into() });
        self
    }
    pub fn maybe_label(self, span: Option<Range<usize>>, text: impl Into<String>) -> Diag {
        match span {
            Some(s) => self.label(s, text),
            None => self,
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// How many findings a report renders in full; the rest are only counted in its summary line.
pub const RENDERED_MAX: usize = 50;

/// All findings about one file, with the file's text so they can be rendered.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    pub source: Option<SourceText>,
    items: Vec<Diag>,
}

impl From<Vec<Diag>> for Diagnostics {
    fn from(items: Vec<Diag>) -> Self {
        Diagnostics { source: None, items }
    }
}

impl Diagnostics {
    pub fn new(source: Option<SourceText>) -> Self {
        Diagnostics { source, items: Vec::new() }
    }
    pub fn push(&mut self, d: Diag) {
        if !self.items.contains(&d) {
            self.items.push(d);
        }
    }
    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
    }
    /// Drops the warnings, keeping the errors.
    pub fn retain_errors(&mut self) {
        self.items.retain(Diag::is_error);
    }
    pub fn with_source(mut self, source: SourceText) -> Self {
        self.source = Some(source);
        self
    }
    pub fn last_mut(&mut self) -> Option<&mut Diag> {
        self.items.last_mut()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter()
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter().filter(|d| !d.is_error())
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diag::is_error)
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Orders findings by their place in the file (errors before warnings at the same place).
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| (d.labels.first().map(|l| l.span.start).unwrap_or(usize::MAX), d.severity));
    }

    /// `file:line:col` of a diagnostic's first label.
    pub fn location(&self, d: &Diag) -> String {
        match (&self.source, d.labels.first()) {
            (Some(src), Some(l)) if !src.text.is_empty() => {
                let (line, col) = src.line_col(l.span.start);
                format!("{}:{}:{}", src.name, line, col)
            }
            (Some(src), _) => src.name.clone(),
            (None, _) => "<input>".to_string(),
        }
    }

    /// One line per finding: `file:line:col: error: message [underlined text]`; stable for tests.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{}: {}: {}", self.location(d), sev, d.message));
            if let (Some(src), Some(l)) = (&self.source, d.labels.first()) {
                if let Some(t) = src.text.get(l.span.clone()) {
                    if !t.is_empty() {
                        let t = t.lines().next().unwrap_or("");
                        out.push_str(&format!(" [{t}]"));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// Rich rendering with the offending text underlined (colours when `color`).
    pub fn render(&self, color: bool) -> String {
        self.render_some(color, &self.items.iter().collect::<Vec<_>>())
    }

    fn render_some(&self, color: bool, items: &[&Diag]) -> String {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        // The text is shared, not copied per finding.
        let src = self.source.as_ref().map(|s| NamedSource::new(s.name.clone(), s.text.clone()));
        let mut out = String::new();
        for d in items {
            let r = Rendered { d, src: src.clone() };
            let _ = handler.render_report(&mut out, &r);
            out.push('\n');
        }
        out
    }

    /// What the command line prints: the findings rendered (the first `RENDERED_MAX`, errors
    /// before warnings, in file order), then, when there is more than one, a count of them
    /// ("3 errors, 1 warning", "... (showing the first 50)").
    pub fn report(&self, color: bool) -> String {
        let errors = self.errors().count();
        let shown: Vec<&Diag> = if self.items.len() <= RENDERED_MAX {
            self.items.iter().collect()
        } else {
            let room_for_warnings = RENDERED_MAX.saturating_sub(errors);
            let mut warnings = 0;
            let mut errs = 0;
            self.items
                .iter()
                .filter(|d| {
                    if d.is_error() {
                        errs += 1;
                        errs <= RENDERED_MAX
                    } else {
                        warnings += 1;
                        warnings <= room_for_warnings
                    }
                })
                .collect()
        };
        let mut out = self.render_some(color, &shown);
        if let Some(s) = self.summary(shown.len()) {
            out.push_str(&s);
            out.push('\n');
        }
        out
    }

    /// "3 errors, 1 warning" when there is more than one finding, with "(showing the first N)"
    /// when only `shown` of them are rendered.
    pub fn summary(&self, shown: usize) -> Option<String> {
        let total = self.items.len();
        if total < 2 {
            return None;
        }
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let (e, w) = (self.errors().count(), self.warnings().count());
        let mut parts = Vec::new();
        if e > 0 {
            parts.push(count(e, "error"));
        }
        if w > 0 {
            parts.push(count(w, "warning"));
        }
        let mut s = parts.join(", ");
        if shown < total {
            // With that many errors, the warnings are left out.
            let only_errors = e >= shown && w > 0;
            s.push_str(&format!(" (showing the first {shown}{})", if only_errors { " errors" } else { "" }));
        }
        Some(s)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.compact().trim_end())
    }
}

impl std::error::Error for Diagnostics {}

/// The findings as one miette diagnostic (what `vnet::Error::Invalid` reports through
/// `miette::Result`): the message is the `Display` text (a line per finding), the labels those
/// of every finding, underlining the file's text; the help is that of the findings that give
/// one.
impl miette::Diagnostic for Diagnostics {
    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.has_errors() || self.is_empty() { miette::Severity::Error } else { miette::Severity::Warning })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut helps: Vec<&str> = Vec::new();
        for h in self.items.iter().filter_map(|d| d.help.as_deref()) {
            if !helps.contains(&h) {
                helps.push(h);
            }
        }
        (!helps.is_empty()).then(|| Box::new(helps.join("\n")) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        match &self.source {
            Some(s) if !s.text.is_empty() && self.items.iter().any(|d| !d.labels.is_empty()) => Some(s as &dyn SourceCode),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source_code()?;
        let text_len = self.source.as_ref().map(|s| s.text.len()).unwrap_or(0);
        let labels = self.items.iter().flat_map(|d| d.labels.iter()).filter(move |l| l.span.end <= text_len);
        Some(Box::new(labels.enumerate().map(|(i, l)| {
            let len = l.span.end.saturating_sub(l.span.start);
            if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), (l.span.start, len))
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), (l.span.start, len))
            }
        })))
    }
}

/// The file's text, named by the file, as miette reads snippets of it.
impl SourceCode for SourceText {
    fn read_span<'a>(&'a self, span: &miette::SourceSpan, before: usize, after: usize) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(self.name.clone(), inner.data(), *inner.span(), inner.line(), inner.column(), inner.line_count())))
    }
}

struct Rendered<'a> {
    d: &'a Diag,
    src: Option<NamedSource<std::sync::Arc<String>>>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d.help.as_ref().map(|h| Box::new(h.clone()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        match &self.src {
            Some(s) if !self.d.labels.is_empty() => Some(s as &dyn SourceCode),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.src.is_none() || self.d.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.d.labels.iter().enumerate().map(|(i, l)| {
            let len = l.span.end.saturating_sub(l.span.start);
            if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), (l.span.start, len))
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), (l.span.start, len))
            }
        })))
    }
}
