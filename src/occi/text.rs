//! The text renderings (GFD.185 §3.3–§3.5; GFD.229): `Category`, `Link`,
//! `X-OCCI-Attribute` and `X-OCCI-Location`, as body lines (`text/plain`)
//! or HTTP headers (`text/occi`). The parser is tolerant (repeated or
//! comma-joined values, any header case, parameters in any order, a
//! trailing `;`, extra parameters on references); the renderer writes the
//! canonical order `term; scheme; class; title; rel; location; attributes;
//! actions`.

use serde_json::Value;

use super::body::{Body, CategoryRef};
use super::error::OcciError;
use super::model::{Attribute, Category, Class, TypeId};

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
/// JSON list or object (GFD.229), or a bare token (a string).
pub fn parse_value(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if s.starts_with('"') {
        return unquote(s).map(Value::String);
    }
    if s.starts_with('[') || s.starts_with('{') {
        return serde_json::from_str(s).map_err(|e| format!("bad list or object {s}: {e}"));
    }
    match s {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "" => return Err("an empty value".into()),
        _ => {}
    }
    if let Ok(n) = serde_json::from_str::<serde_json::Number>(s) {
        return Ok(Value::Number(n));
    }
    Ok(Value::String(s.to_owned()))
}

/// Renders an attribute value.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Null => "\"\"".into(),
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
    if term.is_empty() || term.contains(char::is_whitespace) || term.contains('=') {
        return Err(format!("bad Category term {term:?}"));
    }
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
            "scheme" => r.scheme = Some(value),
            "class" => {
                r.class =
                    Some(Class::parse(&value).ok_or_else(|| format!("unknown class {value:?}"))?)
            }
            "title" => title = value,
            "rel" => rel = value.split_whitespace().filter_map(TypeId::parse).collect(),
            "location" => location = Some(value),
            "attributes" => attributes = parse_attribute_list(&value)?,
            "actions" => actions = value.split_whitespace().filter_map(TypeId::parse).collect(),
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
    };
    Ok((r, def))
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
    let mut body = Body::default();
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
                    let target = item
                        .strip_prefix('<')
                        .and_then(|r| r.split_once('>'))
                        .map(|(t, _)| t.trim())
                        .ok_or_else(|| bad("Link", format!("{item:?} has no <target>")))?;
                    // Action links (as a GET rendered them) are not links.
                    if !target.contains("?action=") {
                        body.resource_links.push(target.to_owned());
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

/// A category as the query interface renders it (the value after
/// `Category: `), in the canonical parameter order.
pub fn category_full(c: &Category) -> String {
    let mut s = format!(
        "{}; scheme={}; class={}",
        c.id.term,
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

/// A category reference inside an entity: `term; scheme; class` only.
pub fn category_short(id: &TypeId, class: Class) -> String {
    format!(
        "{}; scheme={}; class={}",
        id.term,
        quote(&id.scheme),
        quote(class.as_str())
    )
}

/// An action link: `<url?action=term>; rel="type id"`.
pub fn action_link(entity_url: &str, action: &TypeId) -> String {
    format!(
        "<{entity_url}?action={}>; rel={}",
        action.term,
        quote(&action.to_string())
    )
}

/// `name=value`.
pub fn attribute(name: &str, value: &Value) -> String {
    format!("{name}={}", render_value(value))
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
        for (_, v) in &got {
            assert_eq!(&parse_value(&render_value(v)).unwrap(), v);
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
            "Link: </m/1?action=start>; rel=\"http://x/action#start\"\nLink: </s/2>; rel=\"x\"",
            false,
        )
        .unwrap();
        assert_eq!(b.resource_links, ["/s/2"]);
    }
}
