//! Names the kernel and the file system will accept, and "did you mean" hints.

use super::Ctx;

/// Why an interface name is unusable, if it is.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an interface name cannot be empty".into());
    }
    if name.len() > 15 {
        return Some(format!("interface name `{name}` is {} bytes; the kernel allows at most 15", name.len()));
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` is not a valid interface name"));
    }
    if name.contains('%') {
        return Some(format!("interface name `{name}` contains `%`, which the kernel takes as a name template (`eth%d` becomes `eth0`)"));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control()) {
        let what = match c {
            '/' => "`/`".to_string(),
            ':' => "`:`".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            _ => "a control character".to_string(),
        };
        return Some(format!("interface name `{name}` contains {what}, which the kernel does not allow"));
    }
    None
}

/// Why a node or lab name is unusable, if it is (they become file and namespace names).
pub(crate) fn plain_name_problem(what: &str, name: &str, max: usize, dot: bool) -> Option<String> {
    let allowed = if dot { "letters, digits, `-`, `_` and `.`" } else { "letters, digits, `-` and `_`" };
    if name.is_empty() {
        return Some(format!("{what} name cannot be empty"));
    }
    if name.len() > max {
        return Some(format!("{what} name `{name}` is {} bytes; at most {max} are allowed", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || (dot && *c == '.'))) {
        let what_c = match c {
            ' ' => "a space".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            c if c.is_control() => "a control character".to_string(),
            c => format!("`{c}`"),
        };
        return Some(format!("{what} name `{name}` contains {what_c}; use only {allowed}"));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Some(format!("{what} name `{name}` must start with a letter, digit or `_`"));
    }
    None
}

/// Why a lab name is unusable, if it is.
pub fn lab_name_problem(name: &str) -> Option<String> {
    plain_name_problem("lab", name, 40, false)
}

pub(crate) fn push_did_you_mean<'a>(ctx: &mut Ctx, wrong: &str, names: impl Iterator<Item = &'a String>) {
    if let Some(n) = crate::model::decode::closest(wrong, names.map(String::as_str)) {
        if let Some(last) = ctx.diags_last_mut() {
            if last.help.is_none() {
                last.help = Some(format!("did you mean `{n}`?"));
            }
        }
    }
}

/// The closest of `names` to `wrong`, if close enough to suggest.
pub(crate) fn did_you_mean<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.map(|n| (edit_distance(wrong, n), n)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, n)| n)
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
