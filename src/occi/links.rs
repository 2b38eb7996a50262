//! Links (OCCI Core, GFD.221 §4.6; GFD.185 §3.4.2, §3.5.1; GFD.223
//! §4.5): their ends checked when they are made, made on their kind's
//! location or inline with a resource, shown with the resource they come
//! from, and gone with either end.
//!
//! A link's `occi.core.source` and `occi.core.target` are given when it is
//! made and kept (to re-point a link, delete it and make another); both
//! name resources of this server that it keeps itself (not read-only ones,
//! which can go without a delete), of the kinds the link's kind asks for
//! ([`super::Category::between`]). They are stored as paths and shown as
//! URLs; `occi.core.source.kind` and `occi.core.target.kind` are the
//! server's. Deleting a resource deletes every link from or to it.

use tokio::sync::OwnedMutexGuard;

use super::body::{Body, InlineLink};
use super::entity::Entity;
use super::error::OcciError;
use super::model::{
    Category, Class, Model, TypeId, LINK, RESOURCE, SOURCE, SOURCE_KIND, TARGET, TARGET_KIND,
};
use super::render::Shown;
use super::server::{Server, Target};

impl Server {
    /// The path of `url`: a URL of this server without its base; anything
    /// else as it is.
    pub(super) fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&self.base_url)
            .filter(|p| p.starts_with('/'))
            .unwrap_or(url)
    }

    /// Attribute `name`'s value as kept: a link's end as a path.
    pub(super) fn end_path(&self, name: &str, value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::String(s) if name == SOURCE || name == TARGET => {
                serde_json::Value::String(self.path_of(&s).to_owned())
            }
            v => v,
        }
    }

    /// `body` with the link ends it names (filters on `occi.core.source`
    /// and `occi.core.target`, given as the URLs the server shows) as the
    /// paths the store keeps.
    pub(super) fn ends_as_paths(&self, mut body: Body) -> Body {
        for (name, value) in &mut body.attributes {
            *value = self.end_path(name, std::mem::take(value));
        }
        body
    }

    fn end_url(&self, end: &str) -> String {
        if end.starts_with('/') {
            self.url(end)
        } else {
            end.to_owned()
        }
    }

    /// `e` as an answer shows it: a resource with the links it owns.
    pub(super) fn shown<'m>(&self, model: &'m Model, e: Entity) -> Result<Shown<'m>, OcciError> {
        let links = if e.link_ends().is_none() {
            self.store
                .links_at(&e.location)?
                .into_iter()
                .filter(|l| l.link_ends().is_some_and(|(s, _)| s == e.location))
                .map(|l| self.shown_alone(model, l))
                .collect()
        } else {
            Vec::new()
        };
        let mut s = self.shown_alone(model, e);
        s.links = links;
        Ok(s)
    }

    /// `e` as an answer shows it, without its links.
    pub(super) fn shown_alone<'m>(&self, model: &'m Model, e: Entity) -> Shown<'m> {
        Shown {
            url: self.url(&e.location),
            actions: model.actions_of(&e.kind, &e.mixins),
            ends: e
                .link_ends()
                .map(|(s, t)| (self.end_url(s), self.end_url(t))),
            links: Vec::new(),
            entity: e,
        }
    }

    /// The kind an inline link names (`core#link` if none).
    fn inline_kind<'m>(model: &'m Model, link: &InlineLink) -> Result<&'m Category, OcciError> {
        let kinds: Vec<&Category> = link
            .categories
            .iter()
            .filter_map(|r| model.find(r.scheme.as_deref(), &r.term))
            .filter(|c| c.class == Class::Kind)
            .collect();
        let kind = match kinds.as_slice() {
            [] => TypeId::parse(LINK)
                .and_then(|id| model.get(&id))
                .ok_or_else(|| OcciError::internal("no core#link in the model"))?,
            [k] => *k,
            _ => {
                return Err(OcciError::bad_request(
                    "an inline link names more than one kind",
                ))
            }
        };
        if !model.is_link(&kind.id) {
            return Err(OcciError::bad_request(format!(
                "{} is not a link kind",
                kind.id
            )));
        }
        Ok(kind)
    }

    /// Where an inline link is (or is to be), if it says: its `self` or
    /// `location`, else its kind's location and its `occi.core.id`.
    fn inline_location(&self, model: &Model, link: &InlineLink) -> Option<String> {
        if let Some(l) = &link.location {
            return Some(self.path_of(l).to_owned());
        }
        let id = link
            .attributes
            .iter()
            .find(|(k, _)| k == "occi.core.id")
            .and_then(|(_, v)| v.as_str())?;
        let kind = Self::inline_kind(model, link).ok()?;
        Some(format!("{}{id}", kind.location.as_deref()?))
    }

    /// The inline links of a request on `resource` that it does not own
    /// already: a PUT or POST that echoes the links a GET showed leaves
    /// them as they are (GFD.223 §4.5).
    pub(super) fn fresh_links(
        &self,
        model: &Model,
        resource: &Entity,
        links: &[InlineLink],
    ) -> Result<Vec<InlineLink>, OcciError> {
        let mut out = Vec::new();
        for l in links {
            let owned = match self.inline_location(model, l) {
                Some(at) => self.store.get(&at)?.is_some_and(|e| {
                    e.link_ends()
                        .is_some_and(|(source, _)| source == resource.location)
                }),
                None => false,
            };
            if !owned {
                out.push(l.clone());
            }
        }
        Ok(out)
    }

    /// The entities of inline links from `resource`, checked against the
    /// model (their ends are checked under their locks by
    /// [`Server::check_ends`]).
    pub(super) fn inline_links(
        &self,
        model: &Model,
        resource: &Entity,
        body: &Body,
        links: &[InlineLink],
    ) -> Result<Vec<Entity>, OcciError> {
        let mut out = Vec::new();
        for l in links {
            let kind = Self::inline_kind(model, l)?;
            let mut sub = body.of_link(l);
            match sub.attributes.iter().find(|(k, _)| k == SOURCE) {
                Some((_, v)) => {
                    if v.as_str().map(|s| self.path_of(s)) != Some(resource.location.as_str()) {
                        return Err(OcciError::bad_request(format!(
                            "an inline link goes from the resource it comes with ({}), not from {v}",
                            self.url(&resource.location)
                        )));
                    }
                }
                None => sub.attributes.push((
                    SOURCE.to_owned(),
                    serde_json::Value::String(resource.location.clone()),
                )),
            }
            let url_id = match &l.location {
                None => None,
                Some(at) => {
                    let dir = kind.location.as_deref().unwrap_or("/");
                    let id = self
                        .path_of(at)
                        .strip_prefix(dir)
                        .filter(|id| !id.is_empty() && !id.contains('/'))
                        .ok_or_else(|| {
                            OcciError::bad_request(format!(
                                "the link {at} is not under {dir}, where {} links are",
                                kind.id
                            ))
                        })?;
                    Some(id.to_owned())
                }
            };
            out.push(self.new_entity(model, kind, &sub, url_id)?);
        }
        Ok(out)
    }

    /// Checks a link's ends: each an entity of this server (or `new`, made
    /// in the same request), a resource, not read-only, of the kind the
    /// link's kind asks for, and of the kind the client said if it said
    /// one; records their kinds. Called with both ends locked.
    pub(super) fn check_ends(
        &self,
        model: &Model,
        link: &mut Entity,
        new: Option<&Entity>,
    ) -> Result<(), OcciError> {
        let (want_source, want_target) = model.link_ends_of(&link.kind);
        let resource =
            TypeId::parse(RESOURCE).ok_or_else(|| OcciError::internal("core#resource"))?;
        for (attr, kind_attr, want) in [
            (SOURCE, SOURCE_KIND, want_source),
            (TARGET, TARGET_KIND, want_target),
        ] {
            let bad = |why: String| OcciError::bad_request(format!("{attr}: {why}"));
            let path = link
                .text(attr)
                .ok_or_else(|| OcciError::bad_request(format!("{attr} is required")))?
                .to_owned();
            let url = self.end_url(&path);
            let end = match new {
                Some(n) if n.location == path => n.clone(),
                _ => self
                    .store
                    .get(&path)?
                    .ok_or_else(|| bad(format!("there is no entity at {url}")))?,
            };
            if !model.is_a(&end.kind, &resource) {
                return Err(bad(format!(
                    "{url} is not a resource; links join resources"
                )));
            }
            if end.read_only {
                return Err(bad(format!(
                    "{url} is read-only here (it can go without a delete), so it cannot be linked"
                )));
            }
            if let Some(want) = want {
                if !model.is_a(&end.kind, want) {
                    return Err(bad(format!(
                        "a {} link needs a {want} here, and {url} is a {}",
                        link.kind.term, end.kind
                    )));
                }
            }
            let actual = end.kind.to_string();
            if let Some(said) = link.text(kind_attr).filter(|k| *k != actual) {
                return Err(OcciError::bad_request(format!(
                    "{kind_attr} says {said}, but {url} is a {actual}"
                )));
            }
            link.attributes
                .insert(kind_attr.to_owned(), serde_json::Value::String(actual));
        }
        Ok(())
    }

    /// Stores new links (each through its kind's create hook); if one
    /// fails, those stored before it are taken back.
    pub(super) async fn store_links(&self, links: Vec<Entity>) -> Result<(), OcciError> {
        let mut stored = Vec::new();
        for l in links {
            match self.store_new(l).await {
                Ok(l) => stored.push(l),
                Err(e) => {
                    for l in &stored {
                        self.unstore(l).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Deletes every link from or to `resource` (its kind's delete hook,
    /// whose refusal cannot keep a link whose end is going, is logged).
    /// Called with `resource` locked.
    pub(super) async fn delete_links_at(&self, resource: &str) -> Result<(), OcciError> {
        for l in self.store.links_at(resource)? {
            let _g = self.lock(&l.location).await;
            let Some(l) = self.store.get(&l.location)? else {
                continue;
            };
            if let Some(h) = self.hooks_of(&l.kind) {
                if let Err(e) = h.delete(l.clone()).await {
                    tracing::warn!(
                        "{} goes with {resource} although its hook said: {}",
                        l.location,
                        e.reason
                    );
                }
            }
            self.store.remove_async(&l.location).await?;
        }
        Ok(())
    }

    /// Locks `locations`: resources first, then links (a path is a link's
    /// when it is under a link kind's location), each group in location
    /// order. Every request that holds more than one lock takes them so,
    /// and a resource's delete takes its links after it: no cycle.
    pub(super) async fn lock_all(
        &self,
        model: &Model,
        locations: Vec<String>,
    ) -> Vec<OwnedMutexGuard<()>> {
        let is_link = |p: &str| matches!(self.target(model, p), Some(Target::Entity(k, _)) if model.is_link(&k.id));
        let (mut links, mut resources): (Vec<String>, Vec<String>) =
            locations.into_iter().partition(|p| is_link(p));
        for group in [&mut resources, &mut links] {
            group.sort();
            group.dedup();
        }
        let mut guards = Vec::with_capacity(resources.len() + links.len());
        for at in resources.iter().chain(&links) {
            guards.push(self.lock(at).await);
        }
        guards
    }
}
