//! Collections of kinds and mixins (GFD.185 §3.4.2–§3.4.3; GFD.223 §4.4):
//! listings with filters and paging, creation, mixin tagging, and actions
//! on every member of a collection.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::body::Body;
use super::entity::Entity;
use super::error::OcciError;
use super::kept::AnswerKey;
use super::media::{Flavour, Media};
use super::model::{Category, Class, Model};
use super::render::Answer;
use super::server::Server;

impl Server {
    /// The filter categories a request names.
    fn filters(model: &Model, body: &Body) -> Result<Vec<Category>, OcciError> {
        let mut filters = Vec::new();
        for r in &body.categories {
            let found = model.find(r.scheme.as_deref(), &r.term).ok_or_else(|| {
                OcciError::bad_request(format!("unknown category {} in the filter", r.term))
            })?;
            filters.push(found.clone());
        }
        Ok(filters)
    }

    /// True if collection `c` holds `e` and the request's categories
    /// (`filters`) and attributes select it.
    fn selects(model: &Model, c: &Category, filters: &[Category], body: &Body, e: &Entity) -> bool {
        let held = match c.class {
            Class::Kind => model.is_a(&e.kind, &c.id),
            _ => e.has_mixin(&c.id),
        };
        held && filters.iter().all(|f| match f.class {
            Class::Kind => model.is_a(&e.kind, &f.id),
            Class::Mixin => e.has_mixin(&f.id),
            Class::Action => model
                .actions_of(&e.kind, &e.mixins)
                .iter()
                .any(|a| a.id == f.id),
        }) && body.attributes.iter().all(|(k, v)| {
            // A value as a text rendering writes it (a list as its quoted
            // JSON) filters as the list it holds.
            let typed = model
                .attributes_of(&e.kind, &e.mixins)
                .iter()
                .find(|a| a.name == *k)
                .map(|a| body.typed(&a.ty, v));
            let v = typed.as_ref().unwrap_or(v);
            let have = if k == "occi.core.id" {
                Some(Value::String(e.id.clone()))
            } else {
                e.attributes.get(k).cloned()
            };
            match have {
                Some(Value::Array(items)) if !v.is_array() => items.contains(v),
                Some(h) => h == *v || h.as_str().is_some_and(|s| Some(s) == v.as_str()),
                None => false,
            }
        })
    }

    /// The entities a collection holds, filtered by the request's
    /// categories and attributes, in location order.
    pub(super) fn members(
        &self,
        model: &Model,
        c: &Category,
        body: &Body,
    ) -> Result<Vec<Entity>, OcciError> {
        let filters = Self::filters(model, body)?;
        let mut out: Vec<Entity> = self
            .store
            .list()?
            .into_iter()
            .filter(|e| Self::selects(model, c, &filters, body, e))
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    pub(super) async fn collection(
        &self,
        model: &Model,
        c: &Category,
        method: &Method,
        query: &[(String, String)],
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        let body = self.ends_as_paths(body);
        let allow = if c.class == Class::Kind {
            "GET, HEAD, POST, DELETE"
        } else {
            "GET, HEAD, POST, PUT, DELETE"
        };
        match (method.clone(), c.class) {
            (Method::GET | Method::HEAD, _) => {
                // Only GFD.226's listing shows the entities themselves
                // (resources with their links); the others show URLs, and
                // nothing is copied for them but what the tag covers.
                let full = answer.media == Media::Json && answer.flavour == Flavour::Occi12;
                // What the tag covers: each entity's location and revision,
                // or, for one the server never wrote, its whole content;
                // and so for the links from or to it, which its rendering
                // shows (a link made or gone leaves its source's revision).
                let key = |e: &Entity| {
                    if e.revision > 0 {
                        let mut k = e.location.as_bytes().to_vec();
                        k.extend_from_slice(&e.revision.to_be_bytes());
                        k
                    } else {
                        serde_json::to_vec(e).unwrap_or_default()
                    }
                };
                // An unfiltered listing is kept until the store changes.
                let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
                let unfiltered = body.categories.is_empty()
                    && body.attributes.is_empty()
                    && body.locations.is_empty()
                    && body.links.is_empty();
                let kept = unfiltered
                    .then(|| self.store.generation())
                    .flatten()
                    .map(|g| {
                        let key = AnswerKey {
                            what: c.id.to_string(),
                            page: get("page").and_then(|p| p.parse().ok()),
                            number: get("number").and_then(|n| n.parse().ok()),
                            media: answer.media,
                            flavour: answer.flavour,
                        };
                        (g, key)
                    });
                if let Some((g, key)) = &kept {
                    if let Some(r) = self.kept.get(key, *g, model) {
                        return Ok(r);
                    }
                }
                let filters = Self::filters(model, &body)?;
                let mut picked: Vec<(String, Vec<u8>, Option<Entity>)> = Vec::new();
                self.store.visit(&mut |e| {
                    if Self::selects(model, c, &filters, &body, e) {
                        picked.push((e.location.clone(), key(e), full.then(|| e.clone())));
                    }
                })?;
                picked.sort_by(|a, b| a.0.cmp(&b.0));
                if get("page").is_some() || get("number").is_some() {
                    let number: usize = get("number")
                        .unwrap_or("100")
                        .parse()
                        .map_err(|_| OcciError::bad_request("number must be a positive integer"))?;
                    let page: usize = get("page")
                        .unwrap_or("1")
                        .parse()
                        .map_err(|_| OcciError::bad_request("page must be a positive integer"))?;
                    if number == 0 || page == 0 {
                        return Err(OcciError::bad_request("page and number start at 1"));
                    }
                    if number > self.limits.page {
                        return Err(OcciError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("number={number}: a page holds at most {}", self.limits.page),
                        ));
                    }
                    picked = picked
                        .into_iter()
                        .skip((page - 1).saturating_mul(number))
                        .take(number)
                        .collect();
                }
                let mut stored: Vec<Vec<u8>> = Vec::with_capacity(picked.len());
                for (location, k, _) in &mut picked {
                    stored.push(std::mem::take(k));
                    for l in self.store.links_at(location)? {
                        stored.push(key(&l));
                    }
                }
                let mut r = if full {
                    let mut rows = Vec::with_capacity(picked.len());
                    for (_, _, e) in picked {
                        if let Some(e) = e {
                            rows.push(self.shown(model, e)?);
                        }
                    }
                    answer.listing(&rows)
                } else {
                    answer.locations(picked.iter().map(|(l, _, _)| self.url(l)).collect())
                };
                r.extensions_mut()
                    .insert(super::tags::Covers::of(stored.iter().map(Vec::as_slice)));
                match kept {
                    Some((g, key)) => Ok(self.kept.keep(key, g, model, r).await),
                    None => Ok(r),
                }
            }
            (Method::POST, Class::Kind) => {
                if body.is_empty() {
                    return Err(OcciError::bad_request(format!(
                        "an empty body: a new {} needs its categories and attributes",
                        c.id.term
                    )));
                }
                let e = self.create(model, c, body, None).await?;
                Ok(answer.created(&self.shown(model, e)?))
            }
            (Method::DELETE, Class::Kind) => {
                // The entities of exactly this kind (not of kinds related
                // to it: DELETE /resource/ is not every resource), those
                // the body lists if it lists locations, else those its
                // categories and attributes select; each on its own, not
                // all or nothing, one line each. Read-only ones (members
                // running elsewhere) stay, 405; one gone meanwhile is
                // deleted all the same.
                let filters = Self::filters(model, &body)?;
                let listed = !body.locations.is_empty();
                let chosen: Vec<String> = if !listed {
                    self.members(model, c, &body)?
                        .into_iter()
                        .filter(|e| e.kind == c.id)
                        .map(|e| e.location)
                        .collect()
                } else {
                    let mut listed = Vec::new();
                    for l in &body.locations {
                        let (path, e) = self.listed_entity(l)?;
                        if e.kind != c.id {
                            return Err(OcciError::bad_request(format!("{l} is no {}", c.id)));
                        }
                        listed.push(path);
                    }
                    listed
                };
                let mut results = Vec::new();
                // Selected from a snapshot: checked again under each
                // entity's lock, so that one changed meanwhile to no
                // longer match stays (409 on its line).
                let still = |e: &Entity| {
                    listed || (e.kind == c.id && Self::selects(model, c, &filters, &body, e))
                };
                for location in chosen {
                    let r = match self.delete_entity(&location, Some(&still)).await {
                        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(()),
                        other => other,
                    };
                    results.push((self.url(&location), r));
                }
                Ok(answer.results(&results))
            }
            (Method::POST | Method::PUT | Method::DELETE, Class::Mixin) => {
                self.tag(model, c, method, body).await?;
                Ok(answer.ok())
            }
            _ => Err(OcciError::method_not_allowed(
                allow,
                format!("{} takes {allow}", c.location.as_deref().unwrap_or("")),
            )),
        }
    }

    /// `/`, the name-space's root (GFD.185 §3.4.3): GET lists every
    /// entity, as the collection of `core#entity`; POST creates the entity
    /// its body describes at its kind's location (as OCCI 1.1 clients do).
    pub(super) async fn root(
        &self,
        model: &Model,
        method: &Method,
        query: &[(String, String)],
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        match method.clone() {
            Method::GET | Method::HEAD => {
                let entity = model
                    .find(None, "entity")
                    .filter(|c| c.id.to_string() == super::model::ENTITY)
                    .cloned()
                    .ok_or_else(|| OcciError::not_found("no core#entity in the model"))?;
                self.collection(model, &entity, method, query, body, answer)
                    .await
            }
            Method::POST => {
                let kinds: Vec<Category> = body
                    .categories
                    .iter()
                    .filter_map(|r| model.find(r.scheme.as_deref(), &r.term))
                    .filter(|c| c.class == Class::Kind && c.location.is_some())
                    .cloned()
                    .collect();
                let [kind] = kinds.as_slice() else {
                    return Err(OcciError::bad_request(
                        "a POST to / creates the entity its body describes: name exactly one kind",
                    ));
                };
                self.collection(model, kind, method, query, body, answer)
                    .await
            }
            _ => Err(OcciError::method_not_allowed(
                "GET, HEAD, POST",
                "/ lists every entity (GET) and creates one of the kind its body names (POST)",
            )),
        }
    }

    /// The entity a request lists (`X-OCCI-Location`, `text/uri-list`), a
    /// URL of ours or a path, and its path; a 400 if there is none.
    fn listed_entity(&self, l: &str) -> Result<(String, Entity), OcciError> {
        let path = l.strip_prefix(&self.base_url).unwrap_or(l).to_owned();
        let e = self
            .store
            .get(&path)?
            .ok_or_else(|| OcciError::bad_request(format!("no entity at {l}")))?;
        Ok((path, e))
    }

    /// Mixin tagging: POST adds the mixin to the listed entities, PUT makes
    /// them the only ones, DELETE takes it away from them (GFD.185 §3.4.3);
    /// each entity changed through its kind's update hook.
    pub(super) async fn tag(
        &self,
        model: &Model,
        mixin: &Category,
        method: &Method,
        body: Body,
    ) -> Result<(), OcciError> {
        let mut listed = Vec::new();
        for l in &body.locations {
            let (path, e) = self.listed_entity(l)?;
            if e.read_only {
                return Err(OcciError::method_not_allowed(
                    "GET, HEAD, POST",
                    format!("{l} is read-only here"),
                ));
            }
            if !mixin.applies.is_empty() && !mixin.applies.iter().any(|k| model.is_a(&e.kind, k)) {
                return Err(OcciError::bad_request(format!(
                    "{} does not apply to {l}",
                    mixin.id
                )));
            }
            listed.push(path);
        }
        let mut changes: Vec<(String, bool)> = Vec::new();
        match *method {
            Method::POST => changes.extend(listed.iter().map(|p| (p.clone(), true))),
            Method::DELETE => changes.extend(listed.iter().map(|p| (p.clone(), false))),
            _ => {
                self.store.visit(&mut |e| {
                    if e.has_mixin(&mixin.id) && !listed.contains(&e.location) {
                        changes.push((e.location.clone(), false));
                    }
                })?;
                changes.extend(listed.iter().map(|p| (p.clone(), true)));
            }
        }
        // Each change is an update of its entity: its kind's update hook
        // sees it (and may refuse it, or change more: a template that
        // replaces another).
        for (path, add) in changes {
            let _g = self.lock(&path).await;
            let Some(old) = self.store.get(&path)? else {
                continue;
            };
            let mut e = old.clone();
            let had = e.has_mixin(&mixin.id);
            if add && !had {
                e.mixins.push(mixin.id.clone());
            } else if !add && had {
                e.mixins.retain(|m| *m != mixin.id);
            } else {
                continue;
            }
            let revision = old.revision;
            let mut e = match self.hooks_of(&old.kind) {
                Some(h) => h.update(old, e).await?,
                None => e,
            };
            e.revision = revision + 1;
            self.store.replace_async(&e).await?;
        }
        Ok(())
    }

    /// An action on every entity of a collection, one after the other; the
    /// answer lists each entity's result (nothing is rolled back).
    pub(super) async fn collection_action(
        &self,
        model: &Model,
        c: &Category,
        term: &str,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        let mut filter = body.clone();
        filter.categories.clear();
        filter.attributes.clear();
        let mut results = Vec::new();
        for e in self.members(model, c, &filter)? {
            let url = self.url(&e.location);
            let _g = self.lock(&e.location).await;
            let r = match self.store.get(&e.location)? {
                Some(e) => self.run_action(model, e, term, &body).await.map(|_| ()),
                None => Err(OcciError::not_found("gone meanwhile")),
            };
            results.push((url, r));
        }
        Ok(answer.results(&results))
    }
}
