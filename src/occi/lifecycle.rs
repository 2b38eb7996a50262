//! One entity's life (GFD.185 §3.4.4–§3.5; GFD.223 §4.5–§4.6): checked
//! creation, full and partial update, deletion, and actions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::body::{Body, CategoryRef};
use super::entity::Entity;
use super::error::OcciError;
use super::model::grammar::check_id;
use super::model::{Category, Class, Model, TypeId};
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
        if !body.resource_links.is_empty() {
            return Err(OcciError::bad_request(
                "links are not supported by this server",
            ));
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
            if !def.mutable && Some(&value) != def.default.as_ref() {
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

    pub(super) async fn create(
        &self,
        model: &Model,
        kind: &Category,
        body: Body,
        url_id: Option<String>,
    ) -> Result<Entity, OcciError> {
        if kind.id.scheme == super::model::CORE_SCHEME {
            return Err(OcciError::bad_request(format!(
                "{} entities are not created directly",
                kind.id
            )));
        }
        let e = self.new_entity(model, kind, &body, url_id)?;
        let _g = self.lock(&e.location).await;
        if self.store.get(&e.location)?.is_some() {
            return Err(OcciError::conflict(format!(
                "{} already exists",
                self.url(&e.location)
            )));
        }
        let e = match self.hooks_of(&kind.id) {
            Some(h) => h.create(e).await?,
            None => e,
        };
        let mut e = e;
        e.revision = 1;
        if let Err(err) = self.store.insert(&e) {
            if let Some(h) = self.hooks_of(&kind.id) {
                let _ = h.delete(e.clone()).await;
            }
            return Err(err.into());
        }
        Ok(e)
    }

    /// PUT (full) or POST (partial) update of `old`.
    pub(super) fn updated(
        &self,
        model: &Model,
        old: &Entity,
        body: &Body,
        full: bool,
    ) -> Result<Entity, OcciError> {
        if !body.resource_links.is_empty() {
            return Err(OcciError::bad_request(
                "links are not supported by this server",
            ));
        }
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
        let current = self.store.get(location)?;
        let url = self.url(location);
        let render = |e: &Entity, status| {
            let actions = model.actions_of(&e.kind, &e.mixins);
            answer.entity(status, e, &url, model, &actions)
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
            (Method::GET | Method::HEAD, Some(e)) => Ok(render(&e, StatusCode::OK)),
            (Method::PUT, None) => {
                let e = self.create(model, kind, body, Some(id.to_owned())).await?;
                let actions = model.actions_of(&e.kind, &e.mixins);
                Ok(answer.created(&e, &url, &actions))
            }
            (Method::PUT | Method::POST, Some(_)) => {
                let _g = self.lock(location).await;
                let old = self
                    .store
                    .get(location)?
                    .ok_or_else(|| OcciError::not_found(format!("no entity at {location}")))?;
                read_only(&old)?;
                let old_revision = old.revision;
                let new = self.updated(model, &old, &body, *method == Method::PUT)?;
                let new = match self.hooks_of(&old.kind) {
                    Some(h) => h.update(old, new).await?,
                    None => new,
                };
                let mut new = new;
                new.revision = old_revision + 1;
                self.store.replace(&new)?;
                Ok(render(&new, StatusCode::OK))
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
        self.store.remove(location)?;
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
            self.store.replace(&after)?;
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
