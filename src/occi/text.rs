//! The text renderings (GFD.185 §3.3–§3.5; GFD.229): `Category`, `Link`,
//! `X-OCCI-Attribute` and `X-OCCI-Location`, as body lines (`text/plain`)
//! or HTTP headers (`text/occi`). The parser is tolerant (repeated or
//! comma-joined values, any header case, parameters in any order, a
//! trailing `;`, extra parameters on references); the renderer writes the
//! canonical order `term; scheme; class; title; rel; location; attributes;
//! actions`.
//!
//! Whatever is read is checked (terms and schemes by GFD.185 §5.5's
//! grammar, integers to 64 bits); whatever is written is escaped by the
//! rendering's rules (quoted strings with `\"` and `\\`, terms, names and
//! URLs that do not fit their grammar quoted or percent-encoded), so that
//! no stored value can put a CR or LF into a line or forge one.

use std::borrow::Cow;

use serde_json::Value;

use super::body::{Body, CategoryRef, InlineLink};
use super::entity::Entity;
use super::error::OcciError;
use super::json::check_integers;
use super::model::grammar::{check_scheme, check_term, is_term};
use super::model::{Attribute, Category, Class, TypeId, SOURCE, SOURCE_KIND, TARGET, TARGET_KIND};

/// Splits `s` at `sep` where it is outside quotes, brackets and braces.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in s.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '[' | '{' | '<' => depth += 1,
            ']' | '}' | '>' => depth -= 1,
            _ if c == sep && depth <= 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Reads a quoted string (`\"` and `\\` escapes), or returns a bare token.
fn unquote(s: &str) -> Result<String, String> {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(s.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("unterminated quoted string {s}"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("a bad \\u escape in {s}"))?;
                    out.push(code);
                }
                Some(n) => out.push(n),
                None => return Err(format!("a dangling escape in {s}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// A quoted-string (GFD.185 §5.5, RFC 7230 §3.2.6): `"` and `\` escaped
/// with `\`; CR, LF, tab and other control characters as `\n`-style or
/// `\uXXXX` escapes, so the value stays on its line.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    // Control characters are escaped: a rendering is one line per value,
    // and a header value cannot hold them.
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads an attribute value: a quoted string, a number, `true`/`false`, a
/// bare JSON list or object (which GFD.185 and GFD.229 do not allow; we
/// wrote them so once, and still read them), or a bare token (a string). An integer
/// beyond 64 bits is refused ([`check_integers`]), not rounded to a float.
pub fn parse_value(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if s.starts_with('"') {
        return unquote(s).map(Value::String);
    }
    if s.starts_with('[') || s.starts_with('{') {
        let v = serde_json::from_str(s).map_err(|e| format!("bad list or object {s}: {e}"))?;
        check_integers(s.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(v);
    }
    match s {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "" => return Err("an empty value".into()),
        _ => {}
    }
    if let Ok(n) = serde_json::from_str::<serde_json::Number>(s) {
        check_integers(s.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(Value::Number(n));
    }
    Ok(Value::String(s.to_owned()))
}

/// Renders an attribute value: a string quoted, a number or boolean bare,
/// and a list or object as a quoted string holding its JSON (GFD.185 and
/// GFD.229 allow only strings, numbers and booleans, so standard parsers
/// read it; [`Body::typed`] reads it back).
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Null => "\"\"".into(),
        v @ (Value::Array(_) | Value::Object(_)) => quote(&v.to_string()),
        other => other.to_string(),
    }
}

/// Reads one `Category` value. `definition`: read location, attributes
/// and actions as a full definition.
fn parse_category(item: &str) -> Result<(CategoryRef, Category), String> {
    let mut parts = split_outside(item, ';').into_iter();
    if item.trim_start().starts_with(';') {
        return Err("a Category without a term".into());
    }
    let term = unquote(parts.next().ok_or("an empty Category")?)?;
    check_term(&term).map_err(|e| e.to_string())?;
    let mut r = CategoryRef {
        scheme: None,
        term: term.clone(),
        class: None,
    };
    let mut title = String::new();
    let mut rel = Vec::new();
    let mut location = None;
    let mut attributes = Vec::new();
    let mut actions = Vec::new();
    for p in parts {
        let (key, value) = p
            .split_once('=')
            .ok_or_else(|| format!("bad Category parameter {p:?}"))?;
        let value = unquote(value)?;
        match key.trim() {
            "scheme" => {
                check_scheme(&value).map_err(|e| e.to_string())?;
                r.scheme = Some(value)
            }
            "class" => {
                r.class =
                    Some(Class::parse(&value).ok_or_else(|| format!("unknown class {value:?}"))?)
            }
            "title" => title = value,
            "rel" => rel = type_ids(&value)?,
            "location" => location = Some(value),
            "attributes" => attributes = parse_attribute_list(&value)?,
            "actions" => actions = type_ids(&value)?,
            // Unknown parameters are ignored (pOCCI adds some).
            _ => {}
        }
    }
    let scheme = r.scheme.clone().unwrap_or_default();
    let def = Category {
        id: TypeId::new(&scheme, &term),
        class: r.class.unwrap_or(Class::Mixin),
        title,
        rel,
        applies: Vec::new(),
        location,
        attributes,
        actions,
        user_defined: true,
        link_source: None,
        link_target: None,
    };
    Ok((r, def))
}

/// Reads a space-separated list of type ids (`rel`, `actions`), each
/// checked against GFD.185 §5.5's grammar.
fn type_ids(value: &str) -> Result<Vec<TypeId>, String> {
    value
        .split_whitespace()
        .map(|id| TypeId::parse_checked(id).map_err(|e| e.to_string()))
        .collect()
}

/// Reads `name{immutable required} name2 …`.
fn parse_attribute_list(s: &str) -> Result<Vec<Attribute>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '{')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        rest = rest[end..].trim_start();
        let mut a = Attribute::new(name, super::model::AttrType::String);
        if let Some(after) = rest.strip_prefix('{') {
            let close = after.find('}').ok_or("an unclosed { in attributes")?;
            for flag in after[..close].split_whitespace() {
                match flag {
                    "immutable" => a.mutable = false,
                    "required" => a.required = true,
                    _ => {}
                }
            }
            rest = after[close + 1..].trim_start();
        }
        out.push(a);
    }
    Ok(out)
}

/// Reads the text rendering's lines, given as (name, value) pairs: the body
/// lines of `text/plain`, or the request headers of `text/occi` (other
/// headers are ignored). At the query interface (`query`), categories are
/// definitions.
pub fn parse<'a>(
    lines: impl IntoIterator<Item = (&'a str, &'a str)>,
    query: bool,
) -> Result<Body, OcciError> {
    let mut body = Body {
        text: true,
        ..Body::default()
    };
    let bad = |what: &str, e: String| OcciError::bad_request(format!("bad {what}: {e}"));
    for (name, value) in lines {
        let name = name.trim().to_ascii_lowercase();
        let handled = matches!(
            name.as_str(),
            "category" | "link" | "x-occi-attribute" | "x-occi-location"
        );
        if !handled {
            continue;
        }
        for item in split_outside(value, ',') {
            match name.as_str() {
                "category" => {
                    let (r, def) = parse_category(item).map_err(|e| bad("Category", e))?;
                    if query {
                        if r.scheme.is_none() {
                            return Err(bad("Category", format!("{item:?} has no scheme")));
                        }
                        body.definitions.push(def);
                    }
                    body.categories.push(r);
                }
                "link" => {
                    if let Some(link) = parse_link(item).map_err(|e| bad("Link", e))? {
                        body.links.push(link);
                    }
                }
                "x-occi-attribute" => {
                    let (k, v) = item.split_once('=').ok_or_else(|| {
                        bad("X-OCCI-Attribute", format!("{item:?} is not name=value"))
                    })?;
                    let k = k.trim();
                    if k.is_empty() || k.contains(char::is_whitespace) {
                        return Err(bad("X-OCCI-Attribute", format!("bad name {k:?}")));
                    }
                    let v = parse_value(v).map_err(|e| bad("X-OCCI-Attribute", e))?;
                    body.attributes.push((k.to_owned(), v));
                }
                _ => body
                    .locations
                    .push(unquote(item).map_err(|e| bad("X-OCCI-Location", e))?),
            }
        }
    }
    Ok(body)
}

/// Reads one `Link` value (GFD.185 §3.5.1; GFD.229 §5.4): `<target>;
/// rel="target kind"; self="link location"; category="link kind and
/// mixins"; name=value…`. An action link (as a GET rendered it) is no link:
/// `None`.
fn parse_link(item: &str) -> Result<Option<InlineLink>, String> {
    let (target, rest) = item
        .trim()
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .ok_or_else(|| format!("{item:?} has no <target>"))?;
    let target = target.trim();
    if target.contains("?action=") {
        return Ok(None);
    }
    if target.is_empty() {
        return Err(format!("{item:?} has an empty <target>"));
    }
    let mut link = InlineLink::default();
    link.attributes
        .push((TARGET.to_owned(), Value::String(target.to_owned())));
    for p in split_outside(rest, ';') {
        let (key, value) = p
            .split_once('=')
            .ok_or_else(|| format!("bad Link parameter {p:?}"))?;
        let key = key.trim();
        match key {
            "rel" => {
                let kind = unquote(value)?;
                if let Some(first) = kind.split_whitespace().next() {
                    TypeId::parse_checked(first).map_err(|e| e.to_string())?;
                    link.attributes
                        .push((TARGET_KIND.to_owned(), Value::String(first.to_owned())));
                }
            }
            "self" => link.location = Some(unquote(value)?),
            "category" => {
                for id in type_ids(&unquote(value)?)? {
                    link.categories.push(CategoryRef {
                        scheme: Some(id.scheme),
                        term: id.term,
                        class: None,
                    });
                }
            }
            _ => {
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(format!("bad attribute name {key:?}"));
                }
                link.attributes.push((key.to_owned(), parse_value(value)?));
            }
        }
    }
    Ok(Some(link))
}

/// Reads a `text/plain` body: `Name: value` lines (blank lines ignored).
pub fn parse_plain(text: &str, query: bool) -> Result<Body, OcciError> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line == "OK" {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            OcciError::bad_request(format!(
                "line {}: expected Name: value, got {line:?}",
                n + 1
            ))
        })?;
        lines.push((name, value));
    }
    parse(lines, query)
}

/// Reads a `text/uri-list` body (mixin tagging): one URL per line, `#`
/// lines are comments.
pub fn parse_uri_list(text: &str) -> Body {
    Body {
        locations: text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        ..Body::default()
    }
}

/// A term as rendered: bare when it fits the grammar (GFD.185 §5.5), as
/// every term the server accepts does; quoted otherwise (a term stored
/// before it was checked), so it can never end the line or add a parameter.
fn term(t: &str) -> Cow<'_, str> {
    if is_term(t) {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(quote(t))
    }
}

/// `s` with every byte for which `keep` is false percent-encoded
/// (RFC 3986 §2.1).
fn percent_encode(s: &str, keep: impl Fn(u8) -> bool) -> Cow<'_, str> {
    if s.bytes().all(&keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// A URL as written in a rendering (`Link: <…>`, `X-OCCI-Location`): the
/// characters RFC 3986 allows in a URI (§2.2–§2.3, and `%`) are kept, any
/// other byte (controls, space, `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`,
/// `}`, non-ASCII) is percent-encoded, so a URL can never break its line
/// or its `<…>`.
pub fn uri_text(url: &str) -> Cow<'_, str> {
    percent_encode(url, |b| {
        b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
    })
}

/// An attribute name as written (`name=value`): bare when made of
/// letters, digits, `.`, `-` and `_` (GFD.185 §5.5's attribute-name, with
/// digits where pyCMBS puts them), percent-encoded otherwise.
fn attribute_name(name: &str) -> Cow<'_, str> {
    percent_encode(name, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
    })
}

/// A category as the query interface renders it (the value after
/// `Category: `), in the canonical parameter order (GFD.185 §3.4.1, §5.5);
/// every value escaped.
pub fn category_full(c: &Category) -> String {
    let mut s = format!(
        "{}; scheme={}; class={}",
        term(&c.id.term),
        quote(&c.id.scheme),
        quote(c.class.as_str())
    );
    if !c.title.is_empty() {
        s += &format!("; title={}", quote(&c.title));
    }
    if !c.rel.is_empty() {
        let rel: Vec<String> = c.rel.iter().map(TypeId::to_string).collect();
        s += &format!("; rel={}", quote(&rel.join(" ")));
    }
    if let Some(l) = &c.location {
        s += &format!("; location={}", quote(l));
    }
    if !c.attributes.is_empty() {
        let attrs: Vec<String> = c
            .attributes
            .iter()
            .map(|a| {
                let flags: Vec<&str> = [(!a.mutable, "immutable"), (a.required, "required")]
                    .into_iter()
                    .filter_map(|(on, f)| on.then_some(f))
                    .collect();
                if flags.is_empty() {
                    a.name.clone()
                } else {
                    format!("{}{{{}}}", a.name, flags.join(" "))
                }
            })
            .collect();
        s += &format!("; attributes={}", quote(&attrs.join(" ")));
    }
    if !c.actions.is_empty() {
        let actions: Vec<String> = c.actions.iter().map(TypeId::to_string).collect();
        s += &format!("; actions={}", quote(&actions.join(" ")));
    }
    s
}

/// A category reference inside an entity: `term; scheme; class` only
/// (GFD.185 §3.5.1, §5.5); every value escaped.
pub fn category_short(id: &TypeId, class: Class) -> String {
    format!(
        "{}; scheme={}; class={}",
        term(&id.term),
        quote(&id.scheme),
        quote(class.as_str())
    )
}

/// An action link: `<url?action=term>; rel="type id"` (GFD.185 §3.5.1,
/// §5.5); the URL and term percent-encoded where they leave the URI
/// grammar.
pub fn action_link(entity_url: &str, action: &TypeId) -> String {
    let term = percent_encode(&action.term, is_term_byte);
    format!(
        "<{}?action={term}>; rel={}",
        uri_text(entity_url),
        quote(&action.to_string())
    )
}

/// A link a resource owns, as its rendering shows it (GFD.185 §3.5.1,
/// GFD.229 §5.4): `<target>; rel="target kind"; self="link";
/// category="kind mixins"` and the link's other attributes as `name=value`
/// (its source is the resource it is shown with).
pub fn resource_link(link: &Entity, link_url: &str, target_url: &str) -> String {
    let mut s = format!("<{}>", uri_text(target_url));
    if let Some(k) = link.text(TARGET_KIND) {
        s += &format!("; rel={}", quote(k));
    }
    s += &format!("; self={}", quote(&uri_text(link_url)));
    let categories: Vec<String> = std::iter::once(&link.kind)
        .chain(&link.mixins)
        .map(TypeId::to_string)
        .collect();
    s += &format!("; category={}", quote(&categories.join(" ")));
    s += &format!(
        "; {}",
        attribute("occi.core.id", &Value::String(link.id.clone()))
    );
    for (k, v) in &link.attributes {
        if !v.is_null() && ![SOURCE, TARGET, SOURCE_KIND, TARGET_KIND].contains(&k.as_str()) {
            s += &format!("; {}", attribute(k, v));
        }
    }
    s
}

fn is_term_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `name=value` (GFD.185 §3.5.1, §5.5): the name as [`attribute_name`]
/// writes it, the value as [`render_value`] does.
pub fn attribute(name: &str, value: &Value) -> String {
    format!("{}={}", attribute_name(name), render_value(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_read_in_any_order_and_render_canonically() {
        let b = parse(
            [(
                "category",
                "tag ; class=mixin; location=\"/tag/\"; scheme=\"http://x#\"; title=\"A, tag\";",
            )],
            true,
        )
        .unwrap();
        let d = &b.definitions[0];
        assert_eq!(d.id.to_string(), "http://x#tag");
        assert_eq!(d.location.as_deref(), Some("/tag/"));
        assert_eq!(
            category_full(d),
            "tag; scheme=\"http://x#\"; class=\"mixin\"; title=\"A, tag\"; location=\"/tag/\""
        );
    }

    #[test]
    fn values_and_comma_joined_headers_read_back() {
        let b = parse(
            [(
                "X-OCCI-Attribute",
                "a=\"x, \\\"y\\\"\", b=2.5, c=true, d=[\"p\",\"q\"], e={\"k\":1}",
            )],
            false,
        )
        .unwrap();
        let got: Vec<(&str, Value)> = b
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(got[0], ("a", Value::String("x, \"y\"".into())));
        assert_eq!(got[1].1, serde_json::json!(2.5));
        assert_eq!(got[2].1, Value::Bool(true));
        assert_eq!(got[3].1, serde_json::json!(["p", "q"]));
        assert_eq!(got[4].1, serde_json::json!({"k": 1}));
        // Lists and objects are written as quoted JSON, and read back as
        // such for attributes typed so.
        let text = Body {
            text: true,
            ..Body::default()
        };
        for (_, v) in &got {
            let back = parse_value(&render_value(v)).unwrap();
            match v {
                Value::Array(_) | Value::Object(_) => {
                    assert_eq!(back, Value::String(v.to_string()));
                    let ty = crate::occi::model::AttrType::Any;
                    assert_eq!(&text.typed(&ty, &back), v);
                }
                _ => assert_eq!(&back, v),
            }
        }
        let lines = Value::String("one\ntwo\t\u{1}".into());
        let rendered = render_value(&lines);
        assert!(!rendered.chars().any(char::is_control), "{rendered}");
        assert_eq!(parse_value(&rendered).unwrap(), lines);
    }

    #[test]
    fn bad_lines_are_400_and_action_links_are_not_links() {
        for bad in [
            "X-OCCI-Attribute: novalue",
            "Category: ; scheme=\"x#\"",
            "X-OCCI-Attribute: a=\"open",
            "Link: no-target",
            "just text",
        ] {
            let e = parse_plain(bad, false).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        let b = parse_plain(
            "Link: </m/1?action=start>; rel=\"http://x/action#start\"\nLink: </s/2>; rel=\"http://x#s\"; self=\"/l/3\"; category=\"http://x#l\"; a.b=2",
            false,
        )
        .unwrap();
        assert_eq!(b.links.len(), 1);
        let l = &b.links[0];
        assert_eq!(
            l.attributes,
            [
                (TARGET.to_owned(), Value::String("/s/2".into())),
                (TARGET_KIND.to_owned(), Value::String("http://x#s".into())),
                ("a.b".to_owned(), serde_json::json!(2)),
            ]
        );
        assert_eq!(l.location.as_deref(), Some("/l/3"));
        assert_eq!(l.categories[0].type_id(), TypeId::parse("http://x#l"));
        let e = parse_plain("Link: </s/2>; rel=\"x\"", false).unwrap_err();
        assert!(e.reason.contains("bad type id"), "{}", e.reason);
    }

    #[test]
    fn terms_schemes_and_type_ids_are_checked_on_every_line() {
        for (line, says) in [
            (
                "Category: \"evil\\nCategory: forged\"; scheme=\"http://me#\"; class=\"mixin\"; location=\"/e/\"",
                "bad term \"evil\\nCategory: forged\"",
            ),
            ("Category: a:b; scheme=\"http://me#\"", "bad term"),
            ("Category: ok; scheme=\"http://me\\\"x#\"", "bad scheme"),
            ("Category: ok; scheme=\"http://me;x#\"", "bad scheme"),
            ("Category: ok; scheme=\"http://me\"", "bad scheme"),
            (
                "Category: ok; scheme=\"http://me#\"; rel=\"http://x#a\\u0001\"",
                "bad term",
            ),
            (
                "Category: ok; scheme=\"http://me#\"; actions=\"nohash\"",
                "bad type id",
            ),
        ] {
            for query in [false, true] {
                let e = parse_plain(line, query).unwrap_err();
                assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{line}");
                assert!(e.reason.contains(says), "{line}: {}", e.reason);
                assert!(!e.reason.contains('\n'));
            }
            // The same value as a text/occi header.
            let value = line.trim_start_matches("Category: ");
            assert!(parse([("Category", value)], true).is_err(), "{value}");
        }
        let b = parse_plain(
            "Category: start_l3.1; scheme=\"http://houssem.org/cmbs/member/action#\"; class=\"action\"",
            false,
        )
        .unwrap();
        assert_eq!(b.categories[0].term, "start_l3.1");
        // A filter may leave the scheme out; the term is checked still.
        assert!(parse_plain("Category: ubuntu", false).is_ok());
        assert!(parse_plain("Category: \"ub untu\"", false).is_err());
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_not_rounded() {
        for line in [
            "X-OCCI-Attribute: a=12345678901234567890123",
            "X-OCCI-Attribute: a=-9223372036854775809",
            "X-OCCI-Attribute: a=[1, 12345678901234567890123]",
            "X-OCCI-Attribute: a={\"k\": 18446744073709551616}",
        ] {
            let e = parse_plain(line, false).unwrap_err();
            assert!(e.reason.contains("does not fit in 64 bits"), "{}", e.reason);
        }
        let e = parse_plain("X-OCCI-Attribute: a=12345678901234567890123", false).unwrap_err();
        assert_eq!(
            e.reason,
            "bad X-OCCI-Attribute: the integer 12345678901234567890123 does not fit in 64 bits"
        );
        let b = parse_plain(
            "X-OCCI-Attribute: a=18446744073709551615, b=\"12345678901234567890123\", c=1.5e30",
            false,
        )
        .unwrap();
        assert_eq!(b.attributes[0].1.as_u64(), Some(u64::MAX));
        assert_eq!(
            b.attributes[1].1,
            Value::String("12345678901234567890123".into())
        );
        assert!(b.attributes[2].1.is_f64());
    }

    #[test]
    fn nothing_stored_can_forge_a_line_or_a_parameter() {
        let evil = "x\r\nCategory: forged; scheme=\"http://f#\"\n\"\\";
        let c = Category {
            id: TypeId::new(&format!("http://e#{evil}#"), evil),
            class: Class::Mixin,
            title: evil.into(),
            rel: vec![TypeId::new("http://r#", evil)],
            applies: Vec::new(),
            location: Some(format!("/{evil}/")),
            attributes: vec![Attribute::new(evil, crate::occi::model::AttrType::String)],
            actions: vec![TypeId::new("http://a#", evil)],
            user_defined: true,
            link_source: None,
            link_target: None,
        };
        let full = category_full(&c);
        let short = category_short(&c.id, Class::Mixin);
        let link = action_link(
            &format!("http://h/m/{evil}"),
            &TypeId::new("http://a#", evil),
        );
        let attr = attribute(evil, &Value::String(evil.into()));
        let list = attribute("a", &serde_json::json!([evil, {evil: evil}]));
        for out in [&full, &short, &link, &attr, &list] {
            assert!(!out.chars().any(char::is_control), "{out:?}");
        }
        // Each is one value of one line: no second category, and the
        // stored term, quoted, is refused when read back (never forged).
        assert_eq!(split_outside(&full, ',').len(), 1, "{full}");
        let back = parse_plain(&format!("Category: {full}"), true).unwrap_err();
        assert!(back.reason.contains("bad term"), "{}", back.reason);
        let b = parse_plain(&format!("X-OCCI-Attribute: {list}"), false).unwrap();
        assert_eq!(b.attributes.len(), 1);
        let any = crate::occi::model::AttrType::Any;
        assert_eq!(
            b.typed(&any, &b.attributes[0].1),
            serde_json::json!([evil, {evil: evil}])
        );
        assert_eq!(split_outside(&short, ',').len(), 1, "{short}");
        assert!(
            link.starts_with("<http://h/m/x%0D%0ACategory:%20forged;"),
            "{link}"
        );
        assert!(
            link.contains("?action=x%0D%0ACategory%3A%20forged"),
            "{link}"
        );
        assert!(attr.starts_with("x%0D%0ACategory%3A%20forged%3B"), "{attr}");
        assert_eq!(
            parse_value(&render_value(&Value::String(evil.into()))).unwrap(),
            Value::String(evil.into())
        );
        // What the server defines is written as before.
        let ok = Category::mixin("http://me.example/tags#", "mine", "Mine", "/mine/");
        assert_eq!(
            category_full(&ok),
            "mine; scheme=\"http://me.example/tags#\"; class=\"mixin\"; title=\"Mine\"; location=\"/mine/\""
        );
        assert_eq!(
            action_link("http://h/m/1", &TypeId::new("http://a#", "start_l3.1")),
            "<http://h/m/1?action=start_l3.1>; rel=\"http://a#start_l3.1\""
        );
    }
}
