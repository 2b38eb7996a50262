//! The grammar of the names a client gives the server: category terms and
//! schemes (GFD.185 §5.5, GFD.229 §3: `term = (ALPHA / DIGIT) *(ALPHA /
//! DIGIT / "-" / "_")`, the scheme a URI ending in `#`), entity ids and
//! collection locations (path segments, RFC 3986 §3.3). Anything read from
//! a request is checked here before the server keeps it or names it in a
//! rendering, so that nothing stored can forge a line of the text renderings
//! or hide from clients that normalise URL paths.

use super::super::error::OcciError;

/// A name that does not fit the grammar; the message names it (shortened
/// when long, escaped, one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// A category term outside GFD.185 §5.5's `term` (with `.` allowed).
    #[error("bad term {}: a term is a letter or digit, then letters, digits, -, _ or . (GFD.185 §5.5)", shown(.0))]
    Term(String),
    /// A category scheme that is not a URI ending in `#`.
    #[error("bad scheme {}: a scheme is a URI ending in # without whitespace, control characters, quotes or ; (GFD.185 §5.5)", shown(.0))]
    Scheme(String),
    /// A type id (`scheme#term`) missing its term or scheme.
    #[error("bad type id {}: expected scheme#term (GFD.185 §5.5)", shown(.0))]
    TypeId(String),
    /// An entity id that is `.` or `..`: a dot segment, which clients that
    /// normalise URL paths (RFC 3986 §5.2.4) never send.
    #[error("the id {} cannot be used in a URL path", shown(.0))]
    DotId(String),
    /// An entity id outside letters, digits and `-._~`, or too long.
    #[error("bad id {}: use letters, digits and -._~ (at most {MAX_ID})", shown(.0))]
    Id(String),
    /// A collection location that is not a path of id-like segments.
    #[error("bad location {}: a location is a path like /name/ of letters, digits and -._~, without . or .. segments", shown(.0))]
    Location(String),
}

impl From<GrammarError> for OcciError {
    fn from(e: GrammarError) -> OcciError {
        OcciError::bad_request(e.to_string())
    }
}

/// The longest entity id.
pub const MAX_ID: usize = 128;

/// How much of a bad name an error message shows.
const SHOWN: usize = 100;

/// `s` quoted and escaped (`Debug`), cut after [`SHOWN`] characters.
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{:?}…", &s[..at]),
        None => format!("{s:?}"),
    }
}

/// True if `c` may follow a term's first character. GFD.185 §5.5 allows
/// letters, digits, `-` and `_`; `.` is allowed too, because servers
/// define such terms (the gateway's `start_l3.1`, after pyCMBS).
fn term_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// True if `term` fits the term grammar (see [`check_term`]).
pub fn is_term(term: &str) -> bool {
    let mut chars = term.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(term_char)
}

/// Checks a category term: `(ALPHA / DIGIT) *(ALPHA / DIGIT / "-" / "_" /
/// ".")` (GFD.185 §5.5 and GFD.229 §3, with `.` for terms such as
/// `start_l3.1`).
pub fn check_term(term: &str) -> Result<(), GrammarError> {
    if is_term(term) {
        Ok(())
    } else {
        Err(GrammarError::Term(term.to_owned()))
    }
}

/// True if `c` may stand in a scheme: RFC 3986's unreserved, gen-delims
/// and sub-delims characters (§2.2–§2.3), but not `;` (the text
/// rendering's parameter separator) nor `'`; `%` is checked apart.
fn scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&()*+,=".contains(c)
}

/// Checks a category scheme (GFD.185 §5.5): a URI (RFC 3986 §3: a scheme
/// name, `:`, then URI characters, `%` followed by two hex digits) whose
/// only `#` ends it; no whitespace, control characters, quotes or `;`.
pub fn check_scheme(scheme: &str) -> Result<(), GrammarError> {
    let bad = || GrammarError::Scheme(scheme.to_owned());
    let name_ok = scheme.split_once(':').is_some_and(|(name, _)| {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !name_ok || !scheme.ends_with('#') || scheme.matches('#').count() != 1 {
        return Err(bad());
    }
    let bytes = scheme.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad());
                }
                i += 3;
            }
            b if scheme_char(char::from(b)) => i += 1,
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// Checks a type id's scheme and term (GFD.185 §5.5).
pub fn check_type_id(scheme: &str, term: &str) -> Result<(), GrammarError> {
    check_scheme(scheme)?;
    check_term(term)
}

/// True if `c` may stand in an entity id or a location segment: RFC 3986's
/// unreserved characters (§2.3).
fn segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Checks an entity id (`occi.core.id`, the last segment of its URL;
/// GFD.221 §4.3, GFD.185 §3.4.4): 1 to 128 letters, digits and
/// `-._~`, and neither `.` nor `..`, the dot segments that clients
/// normalise away (RFC 3986 §5.2.4) so that the entity could never be
/// reached.
pub fn check_id(id: &str) -> Result<(), GrammarError> {
    if id == "." || id == ".." {
        return Err(GrammarError::DotId(id.to_owned()));
    }
    if id.is_empty() || id.len() > MAX_ID || !id.chars().all(segment_char) {
        return Err(GrammarError::Id(id.to_owned()));
    }
    Ok(())
}

/// Checks a collection location (GFD.185 §3.4.2: a path ending in `/`):
/// `/`, then one or more segments of letters, digits and `-._~`, each
/// followed by `/`, none of them `.` or `..`.
pub fn check_location(location: &str) -> Result<(), GrammarError> {
    let bad = || GrammarError::Location(location.to_owned());
    let inner = location
        .strip_prefix('/')
        .and_then(|l| l.strip_suffix('/'))
        .filter(|l| !l.is_empty())
        .ok_or_else(bad)?;
    for segment in inner.split('/') {
        let ok = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.chars().all(segment_char);
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_follow_the_text_grammar_with_dots() {
        for good in [
            "compute",
            "os_tpl",
            "start_l3.1",
            "check_neighbors",
            "l31",
            "9p",
            "a-b",
        ] {
            assert!(check_term(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "_x",
            "-x",
            ".x",
            "a b",
            "a\nCategory: forged",
            "a\r",
            "a;b",
            "a\"b",
            "a=b",
            "a,b",
            "a#b",
            "é",
            "a\u{0}",
        ] {
            assert_eq!(
                check_term(bad),
                Err(GrammarError::Term(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn schemes_are_uris_ending_in_a_hash() {
        for good in [
            "http://schemas.ogf.org/occi/infrastructure#",
            "http://houssem.org/cmbs/member/action#",
            "http://me.example/tags#",
            "urn:x-example:tags#",
            "http://x/a%20b?q=1&r=(2)#",
            "https://[::1]:8080/p#",
        ] {
            assert!(check_scheme(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "#",
            "http://x",
            "x#",
            "1http://x#",
            "http://x#y#",
            "http://x#y",
            "http://x y#",
            "http://x\n#",
            "http://x\t#",
            "http://x\"; class=\"kind#",
            "http://x';#",
            "http://x;y#",
            "http://x\\#",
            "http://x<y>#",
            "http://x%2#",
            "http://x%zz#",
            "http://é#",
            "http://x\u{7f}#",
        ] {
            assert_eq!(
                check_scheme(bad),
                Err(GrammarError::Scheme(bad.into())),
                "{bad:?}"
            );
        }
        assert!(check_type_id("http://x#", "a b").is_err());
        assert!(check_type_id("http://x#", "ab").is_ok());
    }

    #[test]
    fn ids_refuse_dot_segments() {
        assert!(check_id("996ad860-2a9a-504f-8861-aeafd0b2ae29").is_ok());
        assert!(check_id("a.b").is_ok());
        assert!(check_id("...").is_ok(), "only . and .. are dot segments");
        assert!(check_id(&"x".repeat(MAX_ID)).is_ok());
        for dot in [".", ".."] {
            let e = check_id(dot).unwrap_err();
            assert_eq!(e, GrammarError::DotId(dot.into()));
            assert_eq!(
                e.to_string(),
                format!("the id \"{dot}\" cannot be used in a URL path")
            );
        }
        for bad in ["", "a/b", "a b", "a%2e", "a\n", &"x".repeat(MAX_ID + 1)] {
            assert_eq!(check_id(bad), Err(GrammarError::Id(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn locations_are_paths_of_segments() {
        for good in ["/mine/", "/os_tpl/ubuntu/", "/a.b/c~d/"] {
            assert!(check_location(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/", "//", "mine/", "/mine", "/a//b/", "/./", "/../", "/a/../", "/a/./b/", "/a b/",
            "/a\n/", "/a?b/", "/a\"/",
        ] {
            assert_eq!(
                check_location(bad),
                Err(GrammarError::Location(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_are_one_escaped_line_and_short() {
        let e = GrammarError::Term(format!("a\nCategory: x{}", "y".repeat(500))).to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("\"a\\nCategory: x"), "{e}");
        assert!(e.len() < 300, "{e}");
        let o: OcciError = GrammarError::Scheme("x".into()).into();
        assert_eq!(o.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(o.reason.starts_with("bad scheme \"x\""), "{}", o.reason);
    }
}
