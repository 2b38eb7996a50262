//! The project's documentation stands on its own: nothing in the README, the
//! sources, the tests, the benches or the examples cites a document that is
//! not in the repository, or a numbered design decision that lives only in
//! such a document. RFC 3259 and the Guidelines draft are cited by section.

use std::fs;
use std::path::{Path, PathBuf};

/// The directories and files that are checked, relative to the crate root.
const CHECKED: &[&str] = &[
    "README.md",
    "src",
    "tests",
    "benches",
    "examples",
    "fuzz",
    ".ci",
];

/// Copies of other projects' files, quoted as they are.
const QUOTED: &[&str] = &["tests/fixtures"];

fn files(root: &Path, rel: &str, out: &mut Vec<PathBuf>) {
    let path = root.join(rel);
    if QUOTED.iter().any(|q| rel.starts_with(q)) || rel.ends_with("target") {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        for name in entries {
            files(root, &format!("{rel}/{name}"), out);
        }
    } else if path.is_file() {
        out.push(PathBuf::from(rel));
    }
}

/// The `.md` file names the repository has.
fn markdown_files(root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for top in CHECKED {
        files(root, top, &mut all);
    }
    files(root, "tests/fixtures", &mut all);
    all.iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".md"))
        .collect()
}

/// Every `NAME.md` the text mentions.
fn cited_markdown(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(".md") {
        let at = from + i;
        from = at + 3;
        let after_ok = bytes
            .get(at + 3)
            .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_');
        let start = text[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |j| j + 1);
        if after_ok && start < at {
            out.push(format!("{}.md", &text[start..at]));
        }
    }
    out
}

/// A design-decision number such as `D8` standing alone (a letter D, one or
/// two digits, no word characters around it), or the words "decision D".
fn decision_numbers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (i, _) in text.match_indices('D') {
        let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let after_ok = bytes
            .get(i + 1 + digits)
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
        if before_ok && (1..=2).contains(&digits) && after_ok {
            out.push(text[i..i + 1 + digits].to_owned());
        }
    }
    out
}

#[test]
fn no_reference_to_documents_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = Path::new(file!());
    let known = markdown_files(root);
    let mut all = Vec::new();
    for top in CHECKED {
        files(root, top, &mut all);
    }
    assert!(all.len() > 50, "the walk found the sources: {}", all.len());
    // Spelled in pieces, so that this file does not trip over itself.
    let outside = [["..", "/shared"].concat(), ["spec", " README"].concat()];
    let mut problems = Vec::new();
    for rel in &all {
        let Ok(text) = fs::read_to_string(root.join(rel)) else {
            continue;
        };
        let checking_itself = rel.ends_with(here.file_name().unwrap());
        for (n, line) in text.lines().enumerate() {
            if checking_itself {
                continue;
            }
            let at = format!("{}:{}", rel.display(), n + 1);
            for md in cited_markdown(line) {
                if !known.contains(&md) {
                    problems.push(format!("{at}: cites {md}, which is not in the repository"));
                }
            }
            for d in decision_numbers(line) {
                problems.push(format!("{at}: cites design decision {d}"));
            }
            for o in &outside {
                if line.contains(o.as_str()) {
                    problems.push(format!("{at}: cites {o:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scanners_find_what_they_look_for() {
    assert_eq!(
        cited_markdown("see mbus.md §3 and `cli.md`, not mbus.mdx"),
        ["mbus.md", "cli.md"]
    );
    assert_eq!(
        decision_numbers("(D4) decision D10, D8. not HD4, D123, DX or D4a"),
        ["D4", "D10", "D8"]
    );
}
