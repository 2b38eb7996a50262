//! `application/occi+json` in its two flavours: pyOCNI's (nested attribute
//! objects, capitalised types, `{"resources": […]}` envelopes, the 2012
//! drafts pyCMBS was written against) and OCCI 1.2's (GFD.226: flat dotted
//! names). Input is recognised by its shape; one flat model sits behind both.

use serde_json::{json, Map, Value};

use super::body::{Body, CategoryRef, InlineLink};
use super::entity::Entity;
use super::error::OcciError;
use super::media::Flavour;
use super::model::grammar::{check_scheme, check_term};
use super::model::{
    AttrType, Attribute, Category, Class, Model, TypeId, LINK, SOURCE, SOURCE_KIND, TARGET,
    TARGET_KIND,
};
use super::render::Shown;

/// An integer literal outside 64 bits (below `i64::MIN` or above
/// `u64::MAX`), which serde_json would silently read as a float (RFC 8259
/// §6 leaves the range to implementations; GFD.226 §4.1.1 numbers are
/// JSON numbers). The message names the literal (shortened when long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the integer {} does not fit in 64 bits", shown_integer(.0))]
pub struct WideInteger(pub String);

impl From<WideInteger> for OcciError {
    fn from(e: WideInteger) -> OcciError {
        OcciError::bad_request(e.to_string())
    }
}

/// How many digits of a wide integer an error message shows.
const SHOWN_DIGITS: usize = 40;

fn shown_integer(literal: &str) -> String {
    if literal.len() <= SHOWN_DIGITS {
        literal.to_owned()
    } else {
        // The literal is ASCII (a sign and digits): any cut is a boundary.
        format!(
            "{}… ({} characters)",
            &literal[..SHOWN_DIGITS],
            literal.len()
        )
    }
}

/// Finds the first integer literal in JSON text `bytes` that does not fit
/// in 64 bits: one without fraction or exponent (RFC 8259 §6) below
/// `i64::MIN` or above `u64::MAX`, outside strings (escapes honoured).
/// serde_json reads such a literal as an `f64` and loses digits
/// (12345678901234567890123 becomes 1.2345678901234568e22); call this on
/// every JSON text read from a client, before or after parsing it. Meant
/// for valid JSON; on anything else it never panics, and what it finds in
/// text that is not JSON means nothing.
pub fn check_integers(bytes: &[u8]) -> Result<(), WideInteger> {
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                // The escaped byte cannot end the string; skip it.
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                check_integer(&bytes[start..i])?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks one number literal: a float (fraction or exponent) or a
/// malformed one is not this check's business; an integer must fit in
/// `i64` (negative) or `u64`.
fn check_integer(literal: &[u8]) -> Result<(), WideInteger> {
    let (negative, digits) = match literal.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, literal),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(());
    }
    // ASCII digits (and a sign): valid UTF-8.
    let text = String::from_utf8_lossy(literal);
    let fits = if negative {
        text.parse::<i64>().is_ok()
    } else {
        text.parse::<u64>().is_ok()
    };
    if fits {
        Ok(())
    } else {
        Err(WideInteger(text.into_owned()))
    }
}

/// Reads a JSON body. At the query interface (`query`), `kinds`, `mixins`
/// and `actions` are definitions; elsewhere `actions` is an invocation.
/// Integers beyond 64 bits ([`check_integers`]), and terms and schemes
/// outside GFD.185 §5.5's grammar, are 400s.
pub fn parse(bytes: &[u8], model: &Model, query: bool) -> Result<Body, OcciError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| OcciError::bad_request(format!("the body is not JSON: {e}")))?;
    check_integers(bytes)?;
    let Some(o) = v.as_object() else {
        return Err(OcciError::bad_request("the JSON body must be an object"));
    };
    let mut body = Body::default();
    let bad = |e: String| OcciError::bad_request(e);
    if o.is_empty() {
        return Ok(body);
    }
    if let Some(p) = o.get("providers") {
        body.flavour = Some(Flavour::PyOcni);
        for entry in p
            .as_array()
            .ok_or_else(|| bad("providers must be an array".into()))?
        {
            let id = entry
                .get("OCCI_ID")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a provider entry has no OCCI_ID".into()))?;
            body.providers.push(id.to_owned());
        }
        return Ok(body);
    }
    if let Some(l) = o.get("X-OCCI-Location").or_else(|| o.get("locations")) {
        body.flavour = Some(if o.contains_key("locations") {
            Flavour::Occi12
        } else {
            Flavour::PyOcni
        });
        for u in l
            .as_array()
            .ok_or_else(|| bad("locations must be an array".into()))?
        {
            let u = u
                .as_str()
                .ok_or_else(|| bad("a location must be a string".into()))?;
            body.locations.push(u.to_owned());
        }
        return Ok(body);
    }
    // A flat resource (GFD.226) names its kind; its "mixins" and "actions"
    // are the resource's, not definitions or an invocation.
    let flat_resource = !query && o.contains_key("kind");
    if !flat_resource && (query || o.contains_key("kinds") || o.contains_key("mixins")) {
        let mut flavour = Flavour::Occi12;
        for (key, class) in [
            ("kinds", Class::Kind),
            ("mixins", Class::Mixin),
            ("actions", Class::Action),
        ] {
            let Some(list) = o.get(key) else { continue };
            let list = list
                .as_array()
                .ok_or_else(|| bad(format!("{key} must be an array")))?;
            for item in list {
                let (c, f) = definition(item, class).map_err(bad)?;
                if f == Flavour::PyOcni {
                    flavour = Flavour::PyOcni;
                }
                body.categories.push(CategoryRef::to(&c.id, class));
                body.definitions.push(c);
            }
        }
        body.flavour = Some(flavour);
        return Ok(body);
    }
    if let Some(a) = o.get("action").filter(|_| !flat_resource) {
        // GFD.226 action invocation.
        body.flavour = Some(Flavour::Occi12);
        let id = a
            .as_str()
            .ok_or_else(|| bad("action must be a type id (scheme#term)".into()))
            .and_then(|a| TypeId::parse_checked(a).map_err(OcciError::from))?;
        body.categories.push(CategoryRef::to(&id, Class::Action));
        read_attributes(o.get("attributes"), model, &mut body)?;
        return Ok(body);
    }
    if let Some(actions) = o.get("actions").filter(|_| !flat_resource) {
        // pyOCNI action invocation: {"actions":[{"term","scheme"}], "attributes": {…}}.
        body.flavour = Some(Flavour::PyOcni);
        for a in actions
            .as_array()
            .ok_or_else(|| bad("actions must be an array".into()))?
        {
            let term = a.get("term").and_then(Value::as_str);
            let scheme = a.get("scheme").and_then(Value::as_str);
            let (Some(term), Some(scheme)) = (term, scheme) else {
                return Err(bad("an action needs a term and a scheme".into()));
            };
            check_scheme(scheme)?;
            check_term(term)?;
            body.categories
                .push(CategoryRef::to(&TypeId::new(scheme, term), Class::Action));
        }
        read_attributes(o.get("attributes"), model, &mut body)?;
        return Ok(body);
    }
    let resources: Vec<&Value> = match o.get("resources") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => return Err(bad("resources must be an array".into())),
        // GFD.226's collection of links: each a link object, of core#link
        // unless it names its kind.
        None if o.contains_key("links") && !o.contains_key("kind") => {
            let list = o
                .get("links")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("links must be an array".into()))?;
            body.flavour = Some(Flavour::Occi12);
            body.resources = list.len();
            if let Some(first) = list.first() {
                let mut link = first.clone();
                if let Value::Object(l) = &mut link {
                    l.entry("kind").or_insert_with(|| LINK.into());
                }
                resource(&link, model, &mut body)?;
            }
            return Ok(body);
        }
        None if o.contains_key("kind") => {
            body.flavour = Some(Flavour::Occi12);
            vec![&v]
        }
        None => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(3).collect();
            return Err(bad(format!(
                "unknown JSON shape (keys {}); expected resources, kind, action or X-OCCI-Location",
                keys.join(", ")
            )));
        }
    };
    body.resources = resources.len();
    if let Some(first) = resources.first() {
        if body.flavour.is_none() {
            body.flavour = Some(resource_flavour(first));
        }
        resource(first, model, &mut body)?;
    }
    Ok(body)
}

/// pyOCNI nests attributes: a resource whose attribute keys contain no dot
/// and hold objects.
fn resource_flavour(r: &Value) -> Flavour {
    match r.get("attributes") {
        Some(Value::Object(a)) if a.keys().any(|k| k.contains('.')) => Flavour::Occi12,
        Some(Value::Object(a)) if !a.is_empty() => Flavour::PyOcni,
        _ => {
            if r.get("actions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(Value::is_string))
            {
                Flavour::Occi12
            } else {
                Flavour::PyOcni
            }
        }
    }
}

fn resource(r: &Value, model: &Model, body: &mut Body) -> Result<(), OcciError> {
    let bad = |e: &str| OcciError::bad_request(e.to_owned());
    let Value::Object(o) = r else {
        return Err(bad("a resource must be an object"));
    };
    let kind = o
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a resource needs a kind (scheme#term)"))?;
    let kind = TypeId::parse_checked(kind)?;
    body.categories.push(CategoryRef::to(&kind, Class::Kind));
    body.categories.extend(mixin_refs(o)?);
    core_attributes(o, &mut body.attributes)?;
    link_ends(o, &mut body.attributes)?;
    if let Some(links) = o.get("links") {
        for l in links
            .as_array()
            .ok_or_else(|| bad("links must be an array"))?
        {
            body.links.push(inline_link(l, model)?);
        }
    }
    read_attributes(o.get("attributes"), model, body)
}

/// A resource's or link's `mixins`: type ids (GFD.226), or `{"scheme",
/// "term"}` as pyOCNI writes a category.
fn mixin_refs(o: &Map<String, Value>) -> Result<Vec<CategoryRef>, OcciError> {
    let bad = |e: &str| OcciError::bad_request(e.to_owned());
    let Some(m) = o.get("mixins") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for m in m.as_array().ok_or_else(|| bad("mixins must be an array"))? {
        let id = match m {
            Value::String(id) => TypeId::parse_checked(id)?,
            Value::Object(c) => {
                let text = |k: &str| c.get(k).and_then(Value::as_str);
                let (Some(scheme), Some(term)) = (text("scheme"), text("term")) else {
                    return Err(bad("a mixin object needs a scheme and a term"));
                };
                check_scheme(scheme)?;
                check_term(term)?;
                TypeId::new(scheme, term)
            }
            _ => return Err(bad("a mixin must be a type id (scheme#term)")),
        };
        out.push(CategoryRef::to(&id, Class::Mixin));
    }
    Ok(out)
}

/// The members GFD.226 writes apart from `attributes`: `id`, `title`,
/// `summary`.
fn core_attributes(
    o: &Map<String, Value>,
    out: &mut Vec<(String, Value)>,
) -> Result<(), OcciError> {
    for (key, attr) in [
        ("id", "occi.core.id"),
        ("title", "occi.core.title"),
        ("summary", "occi.core.summary"),
    ] {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::String(_)) => out.push((attr.to_owned(), v.clone())),
            Some(_) => return Err(OcciError::bad_request(format!("{key} must be a string"))),
        }
    }
    Ok(())
}

/// A link's `source` and `target` (GFD.226 §4.3): a location, or
/// `{"location", "kind"}`; read as `occi.core.source` and
/// `occi.core.source.kind` (and the target's).
fn link_ends(o: &Map<String, Value>, out: &mut Vec<(String, Value)>) -> Result<(), OcciError> {
    for (key, attr, kind_attr) in [
        ("source", SOURCE, SOURCE_KIND),
        ("target", TARGET, TARGET_KIND),
    ] {
        let bad = || {
            OcciError::bad_request(format!(
                "a link's {key} must be a location or {{\"location\": …, \"kind\": …}}"
            ))
        };
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::String(_)) => out.push((attr.to_owned(), v.clone())),
            Some(Value::Object(end)) => {
                let location = end
                    .get("location")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?;
                out.push((attr.to_owned(), Value::String(location.to_owned())));
                match end.get("kind") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(k)) => {
                        TypeId::parse_checked(k)?;
                        out.push((kind_attr.to_owned(), Value::String(k.clone())));
                    }
                    Some(_) => return Err(bad()),
                }
            }
            Some(_) => return Err(bad()),
        }
    }
    Ok(())
}

/// One entry of a resource's `links` (GFD.226 §4.3): a link object whose
/// kind defaults to `core#link`.
fn inline_link(v: &Value, model: &Model) -> Result<InlineLink, OcciError> {
    let Value::Object(o) = v else {
        return Err(OcciError::bad_request("a link must be an object"));
    };
    let mut link = InlineLink::default();
    match o.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) => link
            .categories
            .push(CategoryRef::to(&TypeId::parse_checked(k)?, Class::Kind)),
        Some(_) => return Err(OcciError::bad_request("a link's kind must be a type id")),
    }
    link.categories.extend(mixin_refs(o)?);
    core_attributes(o, &mut link.attributes)?;
    link_ends(o, &mut link.attributes)?;
    let mut attributes = Body::default();
    read_attributes(o.get("attributes"), model, &mut attributes)?;
    link.attributes.extend(attributes.attributes);
    match o.get("location") {
        None | Some(Value::Null) => {}
        Some(Value::String(l)) => link.location = Some(l.clone()),
        Some(_) => return Err(OcciError::bad_request("a link's location must be a string")),
    }
    Ok(link)
}

/// Reads an attributes object, flat (GFD.226) or nested (pyOCNI): a nested
/// key path stops where it names an attribute the model knows, so
/// `{"cmbs":{"member":{"l3.1_socket":…}}}` is `cmbs.member.l3.1_socket`
/// and an Object-valued attribute keeps its object.
fn read_attributes(v: Option<&Value>, model: &Model, body: &mut Body) -> Result<(), OcciError> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(o)) => {
            flatten("", o, model, &mut body.attributes);
            Ok(())
        }
        Some(_) => Err(OcciError::bad_request("attributes must be an object")),
    }
}

fn flatten(prefix: &str, o: &Map<String, Value>, model: &Model, out: &mut Vec<(String, Value)>) {
    for (k, v) in o {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !model.knows_attribute(&name) && !inner.is_empty() => {
                flatten(&name, inner, model, out)
            }
            _ => out.push((name, v.clone())),
        }
    }
}

/// Reads one kind, mixin or action definition, in either flavour.
fn definition(v: &Value, class: Class) -> Result<(Category, Flavour), String> {
    let o = v.as_object().ok_or("a category must be an object")?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (term, scheme) = (text("term"), text("scheme"));
    if term.is_empty() || scheme.is_empty() {
        return Err("a category needs a term and a scheme".into());
    }
    check_scheme(&scheme).map_err(|e| e.to_string())?;
    check_term(&term).map_err(|e| e.to_string())?;
    let mut flavour = if o.contains_key("related") {
        Flavour::PyOcni
    } else {
        Flavour::Occi12
    };
    let mut attributes = Vec::new();
    if let Some(a) = o.get("attributes") {
        let a = a.as_object().ok_or("attributes must be an object")?;
        descriptions("", a, &mut attributes, &mut flavour)?;
    }
    let mut rel = type_ids(o, "related")?;
    rel.extend(type_ids(o, "depends")?);
    match o.get("parent") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p.is_empty() => {}
        Some(Value::String(p)) => rel.push(TypeId::parse_checked(p).map_err(|e| e.to_string())?),
        Some(_) => return Err("parent must be a type id (scheme#term)".into()),
    }
    let c = Category {
        id: TypeId::new(&scheme, &term),
        class,
        title: text("title"),
        rel,
        applies: type_ids(o, "applies")?,
        location: o.get("location").and_then(Value::as_str).map(str::to_owned),
        attributes,
        actions: type_ids(o, "actions")?,
        user_defined: true,
        link_source: None,
        link_target: None,
    };
    Ok((c, flavour))
}

/// A definition's list of type ids under `key` (`related`, `depends`,
/// `applies`, `actions`), each checked against GFD.185 §5.5's grammar;
/// empty strings (pyOCNI writes `""` for none) are skipped, a missing or
/// null list is empty.
fn type_ids(o: &Map<String, Value>, key: &str) -> Result<Vec<TypeId>, String> {
    let list = match o.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(format!("{key} must be an array of type ids")),
    };
    let mut out = Vec::new();
    for item in list {
        match item {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(TypeId::parse_checked(s).map_err(|e| e.to_string())?),
            _ => return Err(format!("{key} must be an array of type ids")),
        }
    }
    Ok(out)
}

fn descriptions(
    prefix: &str,
    o: &Map<String, Value>,
    out: &mut Vec<Attribute>,
    flavour: &mut Flavour,
) -> Result<(), String> {
    for (k, v) in o {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let d = v
            .as_object()
            .ok_or_else(|| format!("attribute {name} must be described by an object"))?;
        let is_description = ["type", "mutable", "required", "default", "pattern"]
            .iter()
            .any(|key| d.get(*key).is_some_and(|x| !x.is_object()))
            || d.is_empty();
        if !is_description {
            *flavour = Flavour::PyOcni;
            descriptions(&name, d, out, flavour)?;
            continue;
        }
        let ty = match d.get("type").and_then(Value::as_str) {
            None => AttrType::String,
            Some(t) => {
                if t.starts_with(|c: char| c.is_ascii_uppercase()) {
                    *flavour = Flavour::PyOcni;
                }
                match t.to_ascii_lowercase().as_str() {
                    "string" => AttrType::String,
                    "number" | "integer" | "float" => AttrType::Number,
                    "boolean" | "bool" => AttrType::Boolean,
                    "array" | "list" => AttrType::Array,
                    "object" | "hash" => AttrType::Object,
                    other => return Err(format!("attribute {name}: unknown type {other:?}")),
                }
            }
        };
        let mut a = Attribute::new(&name, ty);
        a.mutable = d.get("mutable").and_then(Value::as_bool).unwrap_or(true);
        a.required = d.get("required").and_then(Value::as_bool).unwrap_or(false);
        a.default = d.get("default").cloned();
        a.description = d
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        out.push(a);
    }
    Ok(())
}

/// Nests flat names for pyOCNI: `cmbs.member.state` → `{"cmbs":{"member":
/// {"state":…}}}`; a segment starting with a digit stays with the one
/// before it (`l3.1_socket`), as pyCMBS wrote its names, and a name that
/// continues one with a value keeps its rest as one key.
fn nest(flat: impl IntoIterator<Item = (String, Value)>) -> Value {
    let mut root = Map::new();
    for (name, value) in flat {
        let mut segments: Vec<String> = Vec::new();
        for s in name.split('.') {
            match segments.last_mut() {
                Some(last) if s.starts_with(|c: char| c.is_ascii_digit()) => {
                    last.push('.');
                    last.push_str(s);
                }
                _ => segments.push(s.to_owned()),
            }
        }
        if segments.is_empty() {
            continue;
        }
        // Where a shorter name holds a value already (`occi.compute.state`
        // beside `occi.compute.state.message`), the rest of the longer one
        // stays one key (`"state.message"`), which reads back the same.
        let mut at = &mut root;
        let mut rest = &segments[..];
        while rest.len() > 1 && at.get(&rest[0]).is_none_or(Value::is_object) {
            at = at
                .entry(rest[0].clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("an object: checked above");
            rest = &rest[1..];
        }
        at.insert(rest.join("."), value);
    }
    Value::Object(root)
}

/// An entity's attributes without those rendered apart (title, summary,
/// and a link's ends).
fn own_attributes(e: &Entity) -> impl Iterator<Item = (String, Value)> + '_ {
    e.attributes
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "occi.core.title"
                    | "occi.core.summary"
                    | SOURCE
                    | TARGET
                    | SOURCE_KIND
                    | TARGET_KIND
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
}

/// One entity: in pyOCNI's flavour the resource object (the caller wraps
/// it), in GFD.226's the bare object; a resource with the links it owns
/// (`links`), a link with its `source` and `target` (GFD.226 §4.2–§4.3).
pub fn entity(shown: &Shown, flavour: Flavour) -> Value {
    let (e, url) = (&shown.entity, shown.url.as_str());
    let mixins: Vec<String> = e.mixins.iter().map(TypeId::to_string).collect();
    let mut o = Map::new();
    o.insert("kind".into(), e.kind.to_string().into());
    o.insert("mixins".into(), mixins.into());
    let attrs = match flavour {
        Flavour::PyOcni => nest(own_attributes(e)),
        Flavour::Occi12 => Value::Object(own_attributes(e).collect()),
    };
    o.insert("attributes".into(), attrs);
    let actions: Vec<Value> = match flavour {
        Flavour::PyOcni => shown
            .actions
            .iter()
            .map(|a| {
                json!({"title": a.title, "href": format!("{url}?action={}", a.id.term), "category": a.id.to_string()})
            })
            .collect(),
        Flavour::Occi12 => shown
            .actions
            .iter()
            .map(|a| a.id.to_string().into())
            .collect(),
    };
    o.insert("actions".into(), actions.into());
    o.insert("id".into(), e.id.clone().into());
    for (key, attr) in [
        ("title", "occi.core.title"),
        ("summary", "occi.core.summary"),
    ] {
        if let Some(v) = e.attributes.get(attr) {
            o.insert(key.into(), v.clone());
        }
    }
    o.insert("location".into(), url.into());
    match &shown.ends {
        Some((source, target)) => {
            for (key, at, kind) in [
                ("source", source, SOURCE_KIND),
                ("target", target, TARGET_KIND),
            ] {
                let mut end = Map::new();
                end.insert("location".into(), at.clone().into());
                if let Some(k) = e.text(kind) {
                    end.insert("kind".into(), k.into());
                }
                o.insert(key.into(), Value::Object(end));
            }
        }
        None => {
            let links: Vec<Value> = shown.links.iter().map(|l| entity(l, flavour)).collect();
            o.insert("links".into(), links.into());
        }
    }
    Value::Object(o)
}

/// An attribute description.
fn description(a: &Attribute, flavour: Flavour) -> Value {
    let ty = a.ty.json_name();
    let mut o = Map::new();
    o.insert("mutable".into(), a.mutable.into());
    o.insert("required".into(), a.required.into());
    o.insert(
        "type".into(),
        match flavour {
            Flavour::PyOcni => {
                let mut t = ty.to_owned();
                t[..1].make_ascii_uppercase();
                t.into()
            }
            Flavour::Occi12 => ty.into(),
        },
    );
    if let AttrType::Enum(values) = &a.ty {
        let alternatives = values.join("|");
        o.insert(
            "pattern".into(),
            match flavour {
                Flavour::PyOcni => alternatives.into(),
                Flavour::Occi12 => {
                    json!({"type": "string", "pattern": format!("^({alternatives})$")})
                }
            },
        );
    }
    if let Some(d) = &a.default {
        o.insert("default".into(), d.clone());
    }
    if !a.description.is_empty() {
        o.insert("description".into(), a.description.clone().into());
    }
    Value::Object(o)
}

/// One category as the query interface renders it.
pub fn category(c: &Category, flavour: Flavour) -> Value {
    let mut o = Map::new();
    o.insert("term".into(), c.id.term.clone().into());
    o.insert("scheme".into(), c.id.scheme.clone().into());
    if !c.title.is_empty() {
        o.insert("title".into(), c.title.clone().into());
    }
    let described = c
        .attributes
        .iter()
        .map(|a| (a.name.clone(), description(a, flavour)));
    o.insert(
        "attributes".into(),
        match flavour {
            Flavour::PyOcni => nest(described),
            Flavour::Occi12 => Value::Object(described.collect()),
        },
    );
    if c.class != Class::Action {
        let actions: Vec<String> = c.actions.iter().map(TypeId::to_string).collect();
        o.insert("actions".into(), actions.into());
        if let Some(l) = &c.location {
            o.insert("location".into(), l.clone().into());
        }
        let rel: Vec<String> = c.rel.iter().map(TypeId::to_string).collect();
        match (flavour, c.class) {
            (Flavour::PyOcni, _) => {
                o.insert("related".into(), rel.into());
            }
            (Flavour::Occi12, Class::Kind) => {
                if let Some(p) = rel.into_iter().next() {
                    o.insert("parent".into(), p.into());
                }
            }
            (Flavour::Occi12, _) => {
                o.insert("depends".into(), rel.into());
                let applies: Vec<String> = c.applies.iter().map(TypeId::to_string).collect();
                o.insert("applies".into(), applies.into());
            }
        }
    }
    Value::Object(o)
}

/// The query interface: `{"kinds": […], "mixins": […], "actions": […]}`.
pub fn categories<'a>(cats: impl IntoIterator<Item = &'a Category>, flavour: Flavour) -> Value {
    let (mut kinds, mut mixins, mut actions) = (Vec::new(), Vec::new(), Vec::new());
    for c in cats {
        let v = category(c, flavour);
        match c.class {
            Class::Kind => kinds.push(v),
            Class::Mixin => mixins.push(v),
            Class::Action => actions.push(v),
        }
    }
    json!({"kinds": kinds, "mixins": mixins, "actions": actions})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let mut m = Model::new();
        m.add(
            Category::kind("http://x#", "member", "m", "/m/")
                .attribute(Attribute::new("cmbs.member.l3.1_socket", AttrType::String))
                .attribute(Attribute::new("cmbs.member.content", AttrType::Any)),
        );
        m
    }

    #[test]
    fn nested_attributes_flatten_by_the_model_and_nest_back() {
        let m = model();
        let body = parse(
            br#"{"resources":[{"kind":"http://x#member","id":"a","attributes":{"cmbs":{"member":{"l3.1_socket":"s","content":{"k":1}}}}}]}"#,
            &m,
            false,
        )
        .unwrap();
        assert_eq!(body.flavour, Some(Flavour::PyOcni));
        assert!(body
            .attributes
            .contains(&("cmbs.member.l3.1_socket".into(), "s".into())));
        assert!(body
            .attributes
            .contains(&("cmbs.member.content".into(), json!({"k": 1}))));
        let nested = nest(body.attributes.iter().cloned());
        assert_eq!(nested["cmbs"]["member"]["l3.1_socket"], "s");
        // A name that continues one with a value (OCCI 1.2's
        // `….state.message`) keeps its rest as one key, and reads back.
        let both = nest([
            ("x.k.state".to_owned(), json!("active")),
            ("x.k.state.message".to_owned(), json!("up")),
        ]);
        assert_eq!(
            both,
            json!({"x": {"k": {"state": "active", "state.message": "up"}}})
        );
        let mut m2 = Model::new();
        m2.add(
            Category::kind("http://x#", "k", "k", "/k/")
                .attribute(Attribute::new("x.k.state", AttrType::String))
                .attribute(Attribute::new("x.k.state.message", AttrType::String)),
        );
        let mut back = Body::default();
        read_attributes(Some(&both), &m2, &mut back).unwrap();
        assert_eq!(
            back.attributes,
            [
                ("x.k.state".to_owned(), json!("active")),
                ("x.k.state.message".to_owned(), json!("up"))
            ]
        );
        let flat = parse(
            br#"{"kind":"http://x#member","id":"a","attributes":{"cmbs.member.l3.1_socket":"s"}}"#,
            &m,
            false,
        )
        .unwrap();
        assert_eq!(flat.flavour, Some(Flavour::Occi12));
        assert_eq!(flat.resources, 1);
    }

    #[test]
    fn shapes_are_recognised_and_bad_ones_refused() {
        let m = model();
        let a = parse(br#"{"action":"http://x/a#go","attributes":{}}"#, &m, false).unwrap();
        assert_eq!(a.categories[0].term, "go");
        assert_eq!(a.flavour, Some(Flavour::Occi12));
        let p = parse(
            br#"{"actions":[{"term":"go","scheme":"http://x/a#"}]}"#,
            &m,
            false,
        )
        .unwrap();
        assert_eq!(p.flavour, Some(Flavour::PyOcni));
        assert!(parse(b"{}", &m, false).unwrap().is_empty());
        for bad in [&b"[1]"[..], b"{\"x\":1}", b"{nope", b"{\"resources\":3}"] {
            assert!(parse(bad, &m, false).is_err());
        }
        let defs = parse(
            br#"{"kinds":[{"term":"k","scheme":"http://x#","attributes":{"a":{"b":{"type":"String"}}},"location":"/k/"}]}"#,
            &m,
            true,
        )
        .unwrap();
        assert_eq!(defs.flavour, Some(Flavour::PyOcni));
        assert_eq!(defs.definitions[0].attributes[0].name, "a.b");
    }

    #[test]
    fn integers_beyond_64_bits_are_found_outside_strings_only() {
        let wide = |t: &str| check_integers(t.as_bytes()).map_err(|e| e.0);
        for fits in [
            "0",
            "[18446744073709551615, -9223372036854775808]",
            "{\"a\": -1, \"b\": 1.5e300, \"c\": 123456789012345678901234.5}",
            "123456789012345678901234e0",
            "{\"123456789012345678901234\": \"123456789012345678901234\"}",
            r#"["\"123456789012345678901234", "\\", 5]"#,
            r#""\u0031 12345678901234567890123""#,
            "true",
            "",
        ] {
            assert_eq!(wide(fits), Ok(()), "{fits}");
        }
        for (text, literal) in [
            ("12345678901234567890123", "12345678901234567890123"),
            ("[18446744073709551616]", "18446744073709551616"),
            ("[-9223372036854775809]", "-9223372036854775809"),
            (r#"{"a\\":99999999999999999999}"#, "99999999999999999999"),
            (
                r#"["\\\"", 1, 99999999999999999999]"#,
                "99999999999999999999",
            ),
        ] {
            assert_eq!(wide(text), Err(literal.to_owned()), "{text}");
        }
        let e = check_integers(b"[12345678901234567890123]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the integer 12345678901234567890123 does not fit in 64 bits"
        );
        let long = "9".repeat(5000);
        let e = check_integers(long.as_bytes()).unwrap_err().to_string();
        assert!(e.len() < 120 && e.contains("5000 characters"), "{e}");
        // Not JSON: no panic, whatever it finds.
        for junk in [
            &b"\"\\"[..],
            b"-",
            b"--1e",
            b"\xff\xfe9",
            b"\"unterminated 1",
        ] {
            let _ = check_integers(junk);
        }
    }

    #[test]
    fn wide_integers_in_a_body_are_400_and_64_bit_ones_kept() {
        let m = model();
        for body in [
            &br#"{"kind":"http://x#member","attributes":{"cmbs.member.content":12345678901234567890123}}"#[..],
            br#"{"resources":[{"kind":"http://x#member","attributes":{"cmbs":{"member":{"content":[1,-12345678901234567890123]}}}}]}"#,
            br#"{"action":"http://x/a#go","attributes":{"n":12345678901234567890123}}"#,
        ] {
            let e = parse(body, &m, false).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.reason.contains("does not fit in 64 bits"), "{}", e.reason);
        }
        let ok = parse(
            br#"{"kind":"http://x#member","attributes":{"cmbs.member.content":[18446744073709551615,-9223372036854775808]}}"#,
            &m,
            false,
        )
        .unwrap();
        let v = &ok.attributes[0].1;
        assert_eq!(v[0].as_u64(), Some(u64::MAX));
        assert_eq!(v[1].as_i64(), Some(i64::MIN));
    }

    #[test]
    fn terms_and_schemes_are_checked_in_both_flavours() {
        let m = model();
        let refused = |body: &[u8], query: bool, says: &str| {
            let e = parse(body, &m, query).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.reason.contains(says), "{} lacks {says}", e.reason);
            assert!(!e.reason.contains('\n'));
        };
        // Definitions at the query interface: flat and pyOCNI.
        refused(
            br#"{"mixins":[{"term":"evil\nCategory: forged","scheme":"http://me#","location":"/e/"}]}"#,
            true,
            r#"bad term "evil\nCategory: forged""#,
        );
        refused(
            br#"{"mixins":[{"term":"evil\nCategory: forged","scheme":"http://me#","related":[],"location":"/e/"}]}"#,
            true,
            "bad term",
        );
        refused(
            br#"{"mixins":[{"term":"ok","scheme":"http://me\"; class=\"kind#","location":"/e/"}]}"#,
            true,
            "bad scheme",
        );
        refused(
            br#"{"mixins":[{"term":"ok","scheme":"http://me#","applies":["http://x#a b"],"location":"/e/"}]}"#,
            true,
            r#"bad term "a b""#,
        );
        refused(
            br#"{"kinds":[{"term":"k","scheme":"http://x#","parent":"http://x#k\r"}]}"#,
            true,
            "bad term",
        );
        refused(
            br#"{"mixins":[{"term":"ok","scheme":"http://me#","related":["nohash"]}]}"#,
            true,
            "bad type id",
        );
        // References to categories: resources, mixins, actions.
        refused(br#"{"kind":"http://x#mem ber"}"#, false, "bad term");
        refused(
            br#"{"resources":[{"kind":"http://x#member","mixins":["http://x y#m"]}]}"#,
            false,
            "bad scheme",
        );
        refused(br#"{"action":"http://x/a#go\n"}"#, false, "bad term");
        refused(
            br#"{"actions":[{"term":"go","scheme":"http://x/a"}]}"#,
            false,
            "bad scheme",
        );
        // What servers define, dots included, passes.
        let ok = parse(
            br#"{"kinds":[{"term":"member","scheme":"http://houssem.org/cmbs#","related":[""],"actions":["http://houssem.org/cmbs/member/action#start_l3.1"]}]}"#,
            &m,
            true,
        )
        .unwrap();
        assert_eq!(ok.definitions[0].actions[0].term, "start_l3.1");
        let ok = parse(
            br#"{"actions":[{"term":"start_l3.1","scheme":"http://houssem.org/cmbs/member/action#"}]}"#,
            &m,
            false,
        )
        .unwrap();
        assert_eq!(ok.categories[0].term, "start_l3.1");
    }
}
