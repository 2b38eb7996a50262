//! One entity's life (GFD.185 §3.4.4–§3.5; GFD.223 §4.5–§4.6): checked
//! creation, full and partial update, deletion, and actions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::body::{Body, CategoryRef};
use super::entity::Entity;
use super::error::OcciError;
use super::kept::AnswerKey;
use super::model::grammar::check_id;
use super::model::{Category, Class, Model, TypeId, SOURCE, SOURCE_KIND, TARGET, TARGET_KIND};
use super::render::Answer;
use super::server::{ActionCall, Hooks, Server};

/// Resolves a category reference of `class` in `model`.
fn resolve<'a>(model: &'a Model, r: &CategoryRef, class: Class) -> Result<&'a Category, OcciError> {
    model
        .find(r.scheme.as_deref(), &r.term)
        .filter(|c| c.class == class)
        .ok_or_else(|| {
            OcciError::bad_request(format!(
                "unknown {} {}{}",
                class.as_str(),
                r.scheme.as_deref().unwrap_or(""),
                r.term
            ))
        })
}

fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

impl Server {
    pub(super) fn hooks_of(&self, kind: &TypeId) -> Option<&Arc<dyn Hooks>> {
        self.hooks.get(kind)
    }

    /// Checks and completes a new entity's attributes.
    pub(super) fn new_entity(
        &self,
        model: &Model,
        kind: &Category,
        body: &Body,
        url_id: Option<String>,
    ) -> Result<Entity, OcciError> {
        if body.resources > 1 {
            return Err(OcciError::bad_request("one resource per request"));
        }
        if body
            .refs(Class::Action)
            .any(|r| r.class == Some(Class::Action))
        {
            return Err(OcciError::bad_request(
                "an action category in a create; trigger actions with ?action=",
            ));
        }
        let kinds: Vec<&CategoryRef> = body
            .categories
            .iter()
            .filter(|r| {
                r.class == Some(Class::Kind)
                    || (r.class.is_none()
                        && model
                            .find(r.scheme.as_deref(), &r.term)
                            .is_some_and(|c| c.class == Class::Kind))
            })
            .collect();
        if kinds.len() > 1 {
            return Err(OcciError::bad_request("more than one kind given"));
        }
        if let Some(k) = kinds.first() {
            let k = resolve(model, k, Class::Kind)?;
            if k.id != kind.id {
                return Err(OcciError::bad_request(format!(
                    "{} entities are not created at {}",
                    k.id,
                    kind.location.as_deref().unwrap_or("")
                )));
            }
        }
        let mut mixins = Vec::new();
        for r in body.categories.iter().filter(|r| !kinds.contains(r)) {
            let m = resolve(model, r, Class::Mixin)?;
            if !m.applies.is_empty() && !m.applies.iter().any(|k| model.is_a(&kind.id, k)) {
                return Err(OcciError::bad_request(format!(
                    "{} does not apply to {}",
                    m.id, kind.id
                )));
            }
            if !mixins.contains(&m.id) {
                mixins.push(m.id.clone());
            }
        }
        let given_id = body
            .attributes
            .iter()
            .find(|(k, _)| k == "occi.core.id")
            .map(|(_, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| OcciError::bad_request("occi.core.id must be a string"))
            })
            .transpose()?;
        let id = match (given_id, url_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(OcciError::bad_request(format!(
                    "the body's id {a} is not the URL's {b}"
                )))
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => new_id(),
        };
        check_id(&id)?;
        let location = format!("{}{id}", kind.location.as_deref().unwrap_or("/"));
        let mut e = Entity::new(&id, &location, kind.id.clone());
        e.mixins = mixins;
        let defs = model.attributes_of(&kind.id, &e.mixins);
        // A link's ends are the client's to give at creation, kept after.
        let link = model.is_link(&kind.id);
        for (name, value) in &body.attributes {
            if name == "occi.core.id" {
                continue;
            }
            let def = defs.iter().find(|a| a.name == *name).ok_or_else(|| {
                OcciError::bad_request(format!("unknown attribute {name} for {}", kind.id))
            })?;
            let value = def
                .ty
                .check(name, body.typed(&def.ty, value))
                .map_err(OcciError::bad_request)?;
            let value = self.end_path(name, value);
            let given_end =
                link && [SOURCE, TARGET, SOURCE_KIND, TARGET_KIND].contains(&name.as_str());
            if !def.mutable && !given_end && Some(&value) != def.default.as_ref() {
                return Err(OcciError::forbidden(format!("{name} is set by the server")));
            }
            e.attributes.insert(name.clone(), value);
        }
        for def in defs {
            if def.name == "occi.core.id" || e.attributes.contains_key(&def.name) {
                continue;
            }
            if def.required {
                return Err(OcciError::bad_request(format!("{} is required", def.name)));
            }
            if let Some(d) = &def.default {
                e.attributes.insert(def.name.clone(), d.clone());
            }
        }
        Ok(e)
    }

    /// Creates an entity of `kind` (at `url_id` when the URL names it),
    /// with the links its body gives inline; a link's ends, and those of
    /// the inline links, are checked under their locks, taken resources
    /// first, then links, each group in location order (the order every
    /// request takes them in, so none waits on another in a cycle).
    pub(super) async fn create(
        &self,
        model: &Model,
        kind: &Category,
        body: Body,
        url_id: Option<String>,
    ) -> Result<Entity, OcciError> {
        if kind.id.scheme == super::model::CORE_SCHEME && kind.id.to_string() != super::model::LINK
        {
            return Err(OcciError::bad_request(format!(
                "{} entities are not created directly",
                kind.id
            )));
        }
        let e = self.new_entity(model, kind, &body, url_id)?;
        let is_link = e.link_ends().is_some();
        if is_link && !body.links.is_empty() {
            return Err(OcciError::bad_request("a link has no links of its own"));
        }
        let links = self.inline_links(model, &e, &body, &body.links)?;
        let mut locked = vec![e.location.clone()];
        for l in std::iter::once(&e).chain(&links) {
            if let Some((source, target)) = l.link_ends() {
                locked.extend([source.to_owned(), target.to_owned(), l.location.clone()]);
            }
        }
        let _guards = self.lock_all(model, locked).await;
        for new in std::iter::once(&e).chain(&links) {
            if self.store.get(&new.location)?.is_some() {
                return Err(OcciError::conflict(format!(
                    "{} already exists",
                    self.url(&new.location)
                )));
            }
        }
        let mut e = e;
        if is_link {
            self.check_ends(model, &mut e, None)?;
        }
        let mut links = links;
        for l in &mut links {
            self.check_ends(model, l, Some(&e))?;
        }
        let e = self.store_new(e).await?;
        if let Err(err) = self.store_links(links).await {
            self.unstore(&e).await;
            return Err(err);
        }
        Ok(e)
    }

    /// Runs the create hook of a new entity's kind and stores it (its
    /// revision 1); if the store refuses, the delete hook undoes the
    /// create's.
    pub(super) async fn store_new(&self, e: Entity) -> Result<Entity, OcciError> {
        let mut e = match self.hooks_of(&e.kind) {
            Some(h) => h.create(e).await?,
            None => e,
        };
        e.revision = 1;
        if let Err(err) = self.store.insert_async(&e).await {
            if let Some(h) = self.hooks_of(&e.kind) {
                let _ = h.delete(e.clone()).await;
            }
            return Err(err.into());
        }
        Ok(e)
    }

    /// Takes a just-stored entity away again (its delete hook, then the
    /// store), as a request that failed after storing it must.
    pub(super) async fn unstore(&self, e: &Entity) {
        if let Some(h) = self.hooks_of(&e.kind) {
            let _ = h.delete(e.clone()).await;
        }
        if let Err(err) = self.store.remove_async(&e.location).await {
            tracing::warn!("{} could not be taken back: {err}", e.location);
        }
    }

    /// PUT (full) or POST (partial) update of `old`.
    pub(super) fn updated(
        &self,
        model: &Model,
        old: &Entity,
        body: &Body,
        full: bool,
    ) -> Result<Entity, OcciError> {
        if body.resources > 1 {
            return Err(OcciError::bad_request("one resource per request"));
        }
        let mut e = old.clone();
        let mut mixins = if full { Vec::new() } else { old.mixins.clone() };
        for r in &body.categories {
            let c = model
                .find(r.scheme.as_deref(), &r.term)
                .ok_or_else(|| OcciError::bad_request(format!("unknown category {}", r.term)))?;
            match c.class {
                Class::Kind if c.id != old.kind && model.is_link(&c.id) && !model.is_link(&old.kind) => {
                    return Err(OcciError::bad_request(format!(
                        "the body is a {} link, not {}: make links at their kind's location, \
                         or give them inline with the resource (a JSON resource's links, Link lines)",
                        c.id, old.id
                    )))
                }
                Class::Kind if c.id != old.kind => {
                    return Err(OcciError::bad_request(format!(
                        "the kind of {} cannot change",
                        old.id
                    )))
                }
                Class::Kind => {}
                Class::Mixin => {
                    if !c.applies.is_empty() && !c.applies.iter().any(|k| model.is_a(&old.kind, k))
                    {
                        return Err(OcciError::bad_request(format!(
                            "{} does not apply to {}",
                            c.id, old.kind
                        )));
                    }
                    if !mixins.contains(&c.id) {
                        mixins.push(c.id.clone());
                    }
                }
                Class::Action => {
                    return Err(OcciError::bad_request("trigger actions with ?action="))
                }
            }
        }
        e.mixins = mixins;
        let defs = model.attributes_of(&e.kind, &e.mixins);
        if full {
            e.attributes
                .retain(|k, _| defs.iter().any(|d| d.name == *k && !d.mutable));
            for d in &defs {
                if d.mutable && !body.attributes.iter().any(|(k, _)| *k == d.name) {
                    if let Some(v) = &d.default {
                        e.attributes.insert(d.name.clone(), v.clone());
                    }
                }
            }
        }
        for (name, value) in &body.attributes {
            if name == "occi.core.id" {
                if value.as_str() != Some(&old.id) {
                    return Err(OcciError::forbidden("occi.core.id cannot change"));
                }
                continue;
            }
            let def = defs.iter().find(|a| a.name == *name).ok_or_else(|| {
                OcciError::bad_request(format!("unknown attribute {name} for {}", e.kind))
            })?;
            let value = def
                .ty
                .check(name, body.typed(&def.ty, value))
                .map_err(OcciError::bad_request)?;
            let value = self.end_path(name, value);
            if !def.mutable {
                if old.attributes.get(name) != Some(&value) {
                    return Err(OcciError::forbidden(format!("{name} is immutable")));
                }
                continue;
            }
            e.attributes.insert(name.clone(), value);
        }
        for d in &defs {
            if d.required && d.name != "occi.core.id" && !e.attributes.contains_key(&d.name) {
                return Err(OcciError::bad_request(format!("{} is required", d.name)));
            }
        }
        // Attributes of mixins taken away go with them.
        e.attributes
            .retain(|k, _| defs.iter().any(|d| d.name == *k));
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn entity(
        &self,
        model: &Model,
        kind: &Category,
        id: &str,
        location: &str,
        method: &Method,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        // A rendering is kept until the store changes.
        let generation = if matches!(*method, Method::GET | Method::HEAD) && body.is_empty() {
            self.store.generation()
        } else {
            None
        };
        let key = generation.map(|g| {
            let key = AnswerKey {
                what: location.to_owned(),
                page: None,
                number: None,
                media: answer.media,
                flavour: answer.flavour,
            };
            (g, key)
        });
        if let Some(r) = key
            .as_ref()
            .and_then(|(g, key)| self.kept.get(key, *g, model))
        {
            return Ok(r);
        }
        let current = self.store.get(location)?;
        let url = self.url(location);
        let render = |e: Entity, status| -> Result<Response, OcciError> {
            Ok(answer.entity(status, &self.shown(model, e)?, model))
        };
        let read_only = |e: &Entity| {
            if e.read_only {
                Err(OcciError::method_not_allowed(
                    "GET, HEAD, POST",
                    format!(
                        "{url} is read-only here: it can be read and its actions run, not changed"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match (method.clone(), current) {
            (Method::GET | Method::HEAD, Some(e)) => {
                let r = render(e, StatusCode::OK)?;
                match key {
                    Some((g, key)) => Ok(self.kept.keep(key, g, model, r).await),
                    None => Ok(r),
                }
            }
            (Method::PUT, None) => {
                let e = self.create(model, kind, body, Some(id.to_owned())).await?;
                Ok(answer.created(&self.shown(model, e)?))
            }
            (Method::PUT | Method::POST, Some(current)) => {
                // Links the body gives that the resource does not own yet
                // are made by a POST; a PUT leaves links as they are.
                let fresh = self.fresh_links(model, &current, &body.links)?;
                if !fresh.is_empty() && current.link_ends().is_some() {
                    return Err(OcciError::bad_request("a link has no links of its own"));
                }
                if !fresh.is_empty() && *method == Method::PUT {
                    return Err(OcciError::bad_request(format!(
                        "a PUT leaves the links of {url} as they are: add links with a POST to it, \
                         or make them at their kind's location"
                    )));
                }
                let links = self.inline_links(model, &current, &body, &fresh)?;
                let mut locked = vec![location.to_owned()];
                for l in &links {
                    if let Some((_, target)) = l.link_ends() {
                        locked.extend([target.to_owned(), l.location.clone()]);
                    }
                }
                let _g = self.lock_all(model, locked).await;
                let old = self
                    .store
                    .get(location)?
                    .ok_or_else(|| OcciError::not_found(format!("no entity at {location}")))?;
                read_only(&old)?;
                let mut links = links;
                for l in &mut links {
                    if self.store.get(&l.location)?.is_some() {
                        return Err(OcciError::conflict(format!(
                            "{} already exists",
                            self.url(&l.location)
                        )));
                    }
                    self.check_ends(model, l, None)?;
                }
                let old_revision = old.revision;
                let new = self.updated(model, &old, &body, *method == Method::PUT)?;
                let new = match self.hooks_of(&old.kind) {
                    Some(h) => h.update(old, new).await?,
                    None => new,
                };
                let mut new = new;
                new.revision = old_revision + 1;
                // The links first: if the resource cannot be stored, they
                // are taken back, and nothing of the request stays.
                let stored = links.clone();
                self.store_links(links).await?;
                if let Err(e) = self.store.replace_async(&new).await {
                    for l in &stored {
                        self.unstore(l).await;
                    }
                    return Err(e.into());
                }
                render(new, StatusCode::OK)
            }
            (Method::DELETE, Some(_)) => {
                self.delete_entity(location, None).await?;
                Ok(answer.ok())
            }
            (Method::GET | Method::HEAD | Method::POST | Method::DELETE, None) => {
                Err(OcciError::not_found(format!("no entity at {location}")))
            }
            _ => Err(OcciError::method_not_allowed(
                "GET, HEAD, POST, PUT, DELETE",
                "an entity takes GET, POST, PUT and DELETE",
            )),
        }
    }

    /// Deletes the entity at `location` (its kind's hooks first), if
    /// `still` (checked under the entity's lock) holds for it; a read-only
    /// one is refused (405), one that no longer matches kept (409).
    pub(super) async fn delete_entity(
        &self,
        location: &str,
        still: Option<&(dyn Fn(&Entity) -> bool + Sync)>,
    ) -> Result<(), OcciError> {
        let _g = self.lock(location).await;
        let Some(old) = self.store.get(location)? else {
            return Err(OcciError::not_found(format!("no entity at {location}")));
        };
        if still.is_some_and(|f| !f(&old)) {
            return Err(OcciError::new(
                StatusCode::CONFLICT,
                format!(
                    "{} changed meanwhile and no longer matches: kept",
                    self.url(location)
                ),
            ));
        }
        if old.read_only {
            return Err(OcciError::method_not_allowed(
                "GET, HEAD, POST",
                format!(
                    "{} is read-only here: it can be read and its actions run, not changed",
                    self.url(location)
                ),
            ));
        }
        if let Some(h) = self.hooks_of(&old.kind) {
            h.delete(old.clone()).await?;
        }
        // A resource's links, from it and to it, go with it.
        if old.link_ends().is_none() {
            self.delete_links_at(location).await?;
        }
        self.store.remove_async(location).await?;
        Ok(())
    }

    /// Runs action `term` on `e` (its lock held by the caller) and stores
    /// what it changed.
    pub(super) async fn run_action(
        &self,
        model: &Model,
        e: Entity,
        term: &str,
        body: &Body,
    ) -> Result<Entity, OcciError> {
        let term = self.aliases.get(term).map_or(term, String::as_str);
        let offered = model.actions_of(&e.kind, &e.mixins);
        let action = offered.iter().find(|a| a.id.term == term).ok_or_else(|| {
            let terms: Vec<&str> = offered.iter().map(|a| a.id.term.as_str()).collect();
            OcciError::bad_request(format!(
                "action {term} is not offered by {}; it offers {}",
                self.url(&e.location),
                if terms.is_empty() {
                    "none".to_owned()
                } else {
                    terms.join(", ")
                }
            ))
        })?;
        for r in body.categories.iter() {
            let named = self
                .aliases
                .get(&r.term)
                .map_or(r.term.as_str(), String::as_str);
            if named != term || r.scheme.as_ref().is_some_and(|s| *s != action.id.scheme) {
                return Err(OcciError::bad_request(format!(
                    "the body names action {}{}, the URL {term}",
                    r.scheme.as_deref().unwrap_or(""),
                    r.term
                )));
            }
        }
        let mut parameters = BTreeMap::new();
        for (k, v) in &body.attributes {
            let def = action
                .attributes
                .iter()
                .find(|a| a.name == *k)
                .ok_or_else(|| {
                    OcciError::bad_request(format!("action {term} has no parameter {k}"))
                })?;
            parameters.insert(
                k.clone(),
                def.ty
                    .check(k, body.typed(&def.ty, v))
                    .map_err(OcciError::bad_request)?,
            );
        }
        let handler = self.actions.get(&action.id).ok_or_else(|| {
            OcciError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("action {} has no handler", action.id),
            )
        })?;
        let before = e.clone();
        let mut after = handler(ActionCall {
            entity: e,
            action: action.id.clone(),
            parameters,
            store: Arc::clone(&self.store),
        })
        .await?;
        if after != before && !after.read_only {
            after.revision = before.revision + 1;
            self.store.replace_async(&after).await?;
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::occi::entity::MemoryEntities;
    use serde_json::Value;

    fn server() -> (Arc<Server>, Arc<Model>, Category) {
        let kind = Category::kind("http://x.example/k#", "thing", "Thing", "/thing/");
        let s = Server::builder("http://h", Arc::new(MemoryEntities::new()))
            .category(kind.clone())
            .build()
            .expect("a server");
        let m = s.model();
        (s, m, kind)
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("996ad860-2a9a-504f-8861-aeafd0b2ae29").is_ok());
        for bad in ["", "a/b", "a b", ".", "..", &"x".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_ids_are_refused_from_the_body_and_from_the_url() {
        let (s, m, kind) = server();
        for dot in [".", ".."] {
            let want = format!("the id \"{dot}\" cannot be used in a URL path");
            let mut body = Body::default();
            body.attributes
                .push(("occi.core.id".into(), Value::String(dot.into())));
            let e = s.new_entity(&m, &kind, &body, None).unwrap_err();
            assert_eq!(
                (e.status, e.reason.as_str()),
                (StatusCode::BAD_REQUEST, &*want)
            );
            let e = s
                .new_entity(&m, &kind, &Body::default(), Some(dot.into()))
                .unwrap_err();
            assert_eq!(
                (e.status, e.reason.as_str()),
                (StatusCode::BAD_REQUEST, &*want)
            );
            let e = s
                .new_entity(&m, &kind, &body, Some(dot.into()))
                .unwrap_err();
            assert_eq!(e.reason, want, "the body and the URL agree on {dot:?}");
        }
        let ok = s
            .new_entity(&m, &kind, &Body::default(), Some("a.b".into()))
            .expect("dots inside an id are fine");
        assert_eq!(ok.location, "/thing/a.b");
    }

    #[test]
    fn a_delete_checks_its_condition_under_the_entitys_lock() {
        let (s, m, kind) = server();
        let e = s
            .new_entity(&m, &kind, &Body::default(), Some("one".into()))
            .expect("an entity");
        s.store.insert(&e).expect("stored");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let no = |_: &Entity| false;
        let kept = runtime
            .block_on(s.delete_entity("/thing/one", Some(&no)))
            .unwrap_err();
        assert_eq!(kept.status, StatusCode::CONFLICT, "{}", kept.reason);
        assert!(s.store.get("/thing/one").unwrap().is_some());
        let yes = |_: &Entity| true;
        runtime
            .block_on(s.delete_entity("/thing/one", Some(&yes)))
            .expect("deleted");
        assert!(s.store.get("/thing/one").unwrap().is_none());
    }
}
