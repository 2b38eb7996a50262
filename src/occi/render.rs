//! Answers in each rendering: entities, listings, locations, categories,
//! per-entity results and errors (GFD.185 §3.4–§3.5; GFD.226; pyOCNI's
//! JSON for its clients).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::entity::Entity;
use super::error::OcciError;
use super::json;
use super::media::{Flavour, Media};
use super::model::{Category, Class, Model, SOURCE, TARGET};
use super::text;

/// How to answer: the rendering and, for JSON, the flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The rendering.
    pub media: Media,
    /// The JSON flavour.
    pub flavour: Flavour,
}

const X_OCCI_ATTRIBUTE: HeaderName = HeaderName::from_static("x-occi-attribute");
const X_OCCI_LOCATION: HeaderName = HeaderName::from_static("x-occi-location");
const CATEGORY: HeaderName = HeaderName::from_static("category");
const LINK: HeaderName = HeaderName::from_static("link");

/// An entity as an answer shows it: its URL, the actions it offers now,
/// and, for a link, its ends' URLs, for a resource, the links it owns
/// (GFD.221 §4.5–§4.6).
#[derive(Debug, Clone)]
pub struct Shown<'m> {
    /// The entity as stored.
    pub entity: Entity,
    /// Its absolute URL.
    pub url: String,
    /// The actions it offers.
    pub actions: Vec<&'m Category>,
    /// A link's source and target URLs.
    pub ends: Option<(String, String)>,
    /// A resource's links (those whose source it is).
    pub links: Vec<Shown<'m>>,
}

/// Text lines: (header name, value).
type Lines = Vec<(HeaderName, String)>;

impl Answer {
    fn text(self, status: StatusCode, lines: Lines, extra: Vec<(HeaderName, String)>) -> Response {
        let mut r = match self.media {
            Media::Occi => {
                // The rendering is in the head: the tag must cover it.
                let covers = super::tags::Covers::of(lines.iter().map(|(_, v)| v.as_bytes()));
                let mut r = (status, "OK\n").into_response();
                r.extensions_mut().insert(covers);
                for (name, value) in lines {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        r.headers_mut().append(name, v);
                    }
                }
                r
            }
            Media::UriList => {
                let body: String = lines.into_iter().map(|(_, v)| v + "\n").collect();
                (status, body).into_response()
            }
            _ => {
                let body: String = lines
                    .into_iter()
                    .map(|(n, v)| format!("{}: {v}\n", canonical(&n)))
                    .collect();
                (status, body).into_response()
            }
        };
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
        self.typed(r)
    }

    fn json(self, status: StatusCode, v: Value, extra: Vec<(HeaderName, String)>) -> Response {
        let mut r = (status, v.to_string() + "\n").into_response();
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
        self.typed(r)
    }

    fn typed(self, mut r: Response) -> Response {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.media.content_type()),
        );
        r
    }

    /// One entity, with the actions it offers now and its links.
    pub fn entity(self, status: StatusCode, shown: &Shown, model: &Model) -> Response {
        match self.media {
            Media::Json => {
                let v = json::entity(shown, self.flavour);
                let v = match (self.flavour, &shown.ends) {
                    (Flavour::PyOcni, None) => json!({ "resources": [v] }),
                    (Flavour::PyOcni, Some(_)) => json!({ "links": [v] }),
                    (Flavour::Occi12, _) => v,
                };
                self.json(status, v, Vec::new())
            }
            _ => self.text(status, entity_lines(shown, model), Vec::new()),
        }
    }

    /// A listing in GFD.226's JSON: the entities themselves, resources
    /// under `resources` (with their links), links under `links`.
    pub fn listing(self, entities: &[Shown]) -> Response {
        let (links, resources): (Vec<&Shown>, Vec<&Shown>) =
            entities.iter().partition(|s| s.ends.is_some());
        let render = |list: Vec<&Shown>| -> Vec<Value> {
            list.into_iter()
                .map(|s| json::entity(s, Flavour::Occi12))
                .collect()
        };
        let mut o = serde_json::Map::new();
        if !resources.is_empty() || links.is_empty() {
            o.insert("resources".into(), render(resources).into());
        }
        if !links.is_empty() {
            o.insert("links".into(), render(links).into());
        }
        self.json(StatusCode::OK, Value::Object(o), Vec::new())
    }

    /// A listing of entity URLs only (every rendering but GFD.226's JSON,
    /// which shows the entities: [`Answer::listing`]).
    pub fn locations(self, urls: Vec<String>) -> Response {
        match self.media {
            Media::Json => self.json(
                StatusCode::OK,
                json!({ "X-OCCI-Location": urls }),
                Vec::new(),
            ),
            _ => {
                let lines = urls.into_iter().map(|u| (X_OCCI_LOCATION, u)).collect();
                self.text(StatusCode::OK, lines, Vec::new())
            }
        }
    }

    /// 201 for a new entity: `Location:` and, in text, `X-OCCI-Location`
    /// (the same bytes).
    pub fn created(self, shown: &Shown) -> Response {
        let url = shown.url.as_str();
        let location = vec![(header::LOCATION, url.to_owned())];
        match (self.media, self.flavour) {
            (Media::Json, Flavour::PyOcni) => {
                self.json(StatusCode::CREATED, json!({ "Location": [url] }), location)
            }
            (Media::Json, Flavour::Occi12) => self.json(
                StatusCode::CREATED,
                json::entity(shown, Flavour::Occi12),
                location,
            ),
            _ => self.text(
                StatusCode::CREATED,
                vec![(X_OCCI_LOCATION, url.to_owned())],
                location,
            ),
        }
    }

    /// The query interface's categories.
    pub fn categories(self, cats: &[&Category]) -> Response {
        match self.media {
            Media::Json => self.json(
                StatusCode::OK,
                json::categories(cats.iter().copied(), self.flavour),
                Vec::new(),
            ),
            _ => {
                let lines = cats
                    .iter()
                    .map(|c| (CATEGORY, text::category_full(c)))
                    .collect();
                self.text(StatusCode::OK, lines, Vec::new())
            }
        }
    }

    /// A success with nothing to show.
    pub fn ok(self) -> Response {
        match self.media {
            Media::Json => self.json(StatusCode::OK, json!({}), Vec::new()),
            _ => self.text(StatusCode::OK, Vec::new(), Vec::new()),
        }
    }

    /// The results of an action on each entity of a collection.
    pub fn results(self, results: &[(String, Result<(), OcciError>)]) -> Response {
        let code = |r: &Result<(), OcciError>| match r {
            Ok(()) => (200u16, "OK".to_owned()),
            Err(e) => (e.status.as_u16(), e.reason.clone()),
        };
        match self.media {
            Media::Json => {
                let list: Vec<Value> = results
                    .iter()
                    .map(|(u, r)| {
                        let (s, reason) = code(r);
                        json!({"location": u, "status": s, "reason": reason})
                    })
                    .collect();
                self.json(StatusCode::OK, json!({ "results": list }), Vec::new())
            }
            _ => {
                let body: String = results
                    .iter()
                    .map(|(u, r)| {
                        let (s, reason) = code(r);
                        format!("{u} {s} {reason}\n")
                    })
                    .collect();
                let media = if self.media == Media::Occi {
                    Media::Plain
                } else {
                    self.media
                };
                Answer { media, ..self }.typed((StatusCode::OK, body).into_response())
            }
        }
    }

    /// An error: its status and its one-line reason.
    pub fn error(self, e: &OcciError) -> Response {
        let mut r = match self.media {
            Media::Json => self.json(
                e.status,
                json!({"error": e.reason, "status": e.status.as_u16()}),
                Vec::new(),
            ),
            _ => Answer {
                media: Media::Plain,
                ..self
            }
            .typed((e.status, format!("{}\n", e.reason)).into_response()),
        };
        if let Some(allow) = e.allow {
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = e.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

fn canonical(n: &HeaderName) -> &'static str {
    match n.as_str() {
        "category" => "Category",
        "link" => "Link",
        "x-occi-attribute" => "X-OCCI-Attribute",
        "x-occi-location" => "X-OCCI-Location",
        "location" => "Location",
        _ => "X-OCCI",
    }
}

fn entity_lines(shown: &Shown, model: &Model) -> Lines {
    let e = &shown.entity;
    let mut lines = vec![(CATEGORY, text::category_short(&e.kind, Class::Kind))];
    for m in &e.mixins {
        if model.get(m).is_some() {
            lines.push((CATEGORY, text::category_short(m, Class::Mixin)));
        }
    }
    for l in &shown.links {
        if let Some((_, target)) = &l.ends {
            lines.push((LINK, text::resource_link(&l.entity, &l.url, target)));
        }
    }
    for a in &shown.actions {
        lines.push((LINK, text::action_link(&shown.url, &a.id)));
    }
    lines.push((
        X_OCCI_ATTRIBUTE,
        text::attribute("occi.core.id", &Value::String(e.id.clone())),
    ));
    for (k, v) in &e.attributes {
        // A link's ends are stored as paths and shown as URLs.
        let v = match (&shown.ends, k.as_str()) {
            (Some((source, _)), SOURCE) => &Value::String(source.clone()),
            (Some((_, target)), TARGET) => &Value::String(target.clone()),
            _ => v,
        };
        if !v.is_null() {
            lines.push((X_OCCI_ATTRIBUTE, text::attribute(k, v)));
        }
    }
    lines
}
