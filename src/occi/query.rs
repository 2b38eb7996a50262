//! The query interface (GFD.185 §3.4.1; GFD.223 §4.3): the categories,
//! client-defined mixins, and the registrations pyOCNI clients send.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;

use super::body::Body;
use super::error::OcciError;
use super::model::grammar::check_location;
use super::model::{Category, Class, Model, TypeId};
use super::render::Answer;
use super::server::{Server, QUERY_PATHS};

impl Server {
    /// The query interface: GET lists (filtered by categories), POST
    /// defines mixins (and accepts what exists), PUT takes pyOCNI's
    /// providers document, DELETE removes client mixins.
    pub(super) async fn query(
        &self,
        model: &Model,
        method: &Method,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        match *method {
            Method::GET | Method::HEAD => {
                let wanted: Vec<TypeId> = body.definitions.iter().map(|d| d.id.clone()).collect();
                let cats: Vec<&Category> = model
                    .iter()
                    .filter(|c| wanted.is_empty() || wanted.contains(&c.id))
                    .collect();
                Ok(answer.categories(&cats))
            }
            Method::POST | Method::PUT if !body.providers.is_empty() => {
                for p in &body.providers {
                    let known = TypeId::parse(p)
                        .and_then(|id| model.get(&id))
                        .filter(|c| c.class == Class::Kind)
                        .filter(|c| self.providers.is_empty() || self.providers.contains(&c.id));
                    if known.is_none() {
                        return Err(OcciError::bad_request(format!(
                            "{p} is not a kind this server provides"
                        )));
                    }
                }
                Ok(answer.ok())
            }
            Method::POST => {
                if body.definitions.is_empty() {
                    return Err(OcciError::bad_request("no category given"));
                }
                let mut new = Vec::new();
                for d in &body.definitions {
                    // The parsers checked them already; what is kept is
                    // checked here again, whatever parser it came from.
                    d.id.check()?;
                    match model.get(&d.id) {
                        Some(ours) => compatible(ours, d)?,
                        None if d.class == Class::Mixin => {
                            let loc = d.location.as_deref().ok_or_else(|| {
                                OcciError::bad_request(format!("mixin {} needs a location", d.id))
                            })?;
                            if let Err(e) = check_location(loc) {
                                return Err(OcciError::bad_request(format!("mixin {}: {e}", d.id)));
                            }
                            if QUERY_PATHS.contains(&loc) {
                                return Err(OcciError::bad_request(format!(
                                    "mixin {}: location {loc:?} must be a path like /name/",
                                    d.id
                                )));
                            }
                            if model.at_location(loc).is_some() {
                                return Err(OcciError::conflict(format!("{loc} is taken")));
                            }
                            if !d.attributes.is_empty() || !d.actions.is_empty() {
                                return Err(OcciError::bad_request(
                                    "a client mixin is a tag: it has no attributes or actions",
                                ));
                            }
                            for id in d.rel.iter().chain(&d.applies) {
                                id.check()?;
                            }
                            let mut m = d.clone();
                            m.user_defined = true;
                            m.rel.retain(|r| model.get(r).is_some());
                            new.push(m);
                        }
                        None => {
                            return Err(OcciError::bad_request(format!(
                                "{} is not a {} of this server; clients may define mixins only",
                                d.id,
                                d.class.as_str()
                            )))
                        }
                    }
                }
                for m in new {
                    self.store.put_user_mixin(&m)?;
                    Arc::make_mut(&mut *self.model.write().unwrap_or_else(|p| p.into_inner()))
                        .add(m);
                }
                Ok(answer.ok())
            }
            Method::DELETE => {
                if body.definitions.is_empty() {
                    return Err(OcciError::bad_request("no mixin given"));
                }
                for d in &body.definitions {
                    match model.get(&d.id) {
                        None => return Err(OcciError::not_found(format!("no category {}", d.id))),
                        Some(c) if !c.user_defined => {
                            return Err(OcciError::forbidden(format!(
                                "{} is defined by the server and cannot be removed",
                                d.id
                            )))
                        }
                        Some(_) => {}
                    }
                }
                for d in &body.definitions {
                    let mut tagged = Vec::new();
                    self.store.visit(&mut |e| {
                        if e.has_mixin(&d.id) {
                            tagged.push(e.location.clone());
                        }
                    })?;
                    // Each read again under its lock: a change made
                    // meanwhile is kept, and one gone meanwhile skipped.
                    for location in tagged {
                        let _g = self.lock(&location).await;
                        let Some(mut e) = self.store.get(&location)? else {
                            continue;
                        };
                        if e.has_mixin(&d.id) {
                            e.mixins.retain(|m| *m != d.id);
                            e.revision += 1;
                            self.store.replace_async(&e).await?;
                        }
                    }
                    self.store.remove_user_mixin(&d.id)?;
                    Arc::make_mut(&mut *self.model.write().unwrap_or_else(|p| p.into_inner()))
                        .remove(&d.id);
                }
                Ok(answer.ok())
            }
            _ => Err(OcciError::method_not_allowed(
                "GET, HEAD, POST, PUT, DELETE",
                "the query interface takes GET, POST, PUT (providers) and DELETE",
            )),
        }
    }
}

/// Checks that a category a client registers matches ours: the same
/// class and location, and each attribute it declares one of ours with a
/// compatible type (pyCMBS declares every scalar a String) and each action
/// one we offer.
fn compatible(ours: &Category, theirs: &Category) -> Result<(), OcciError> {
    use super::model::AttrType as T;
    let conflict =
        |what: String| OcciError::conflict(format!("{} conflicts with ours: {what}", theirs.id));
    if ours.class != theirs.class {
        return Err(conflict(format!("ours is a {}", ours.class.as_str())));
    }
    if let Some(l) = &theirs.location {
        if ours.location.as_ref() != Some(l) {
            return Err(conflict(format!(
                "location {l}, ours is {}",
                ours.location.as_deref().unwrap_or("none")
            )));
        }
    }
    for a in &theirs.attributes {
        let Some(o) = ours.attributes.iter().find(|o| o.name == a.name) else {
            return Err(conflict(format!("attribute {} is not ours", a.name)));
        };
        let fits = matches!(
            (&a.ty, &o.ty),
            (_, T::Any)
                | (T::String, T::String | T::Enum(_) | T::Boolean | T::Number)
                | (T::Number, T::Number)
                | (T::Boolean, T::Boolean)
                | (T::Array, T::Array)
                | (T::Object, T::Object)
        );
        if !fits {
            return Err(conflict(format!(
                "attribute {} is a {}, ours a {}",
                a.name,
                a.ty.json_name(),
                o.ty.json_name()
            )));
        }
    }
    for act in &theirs.actions {
        if !ours.actions.contains(act) {
            return Err(conflict(format!("action {act} is not ours")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::occi::entity::MemoryEntities;
    use crate::occi::media::{Flavour, Media};
    use axum::http::StatusCode;

    const PLAIN: Answer = Answer {
        media: Media::Plain,
        flavour: Flavour::PyOcni,
    };

    fn define(m: Category) -> Body {
        Body {
            definitions: vec![m],
            ..Body::default()
        }
    }

    #[tokio::test]
    async fn client_mixins_are_checked_before_they_are_kept() {
        let s = Server::builder("http://h", Arc::new(MemoryEntities::new()))
            .build()
            .expect("a server");
        let m = s.model();
        let mixin = |term: &str, location: &str| {
            Category::mixin("http://me.example/tags#", term, "T", location)
        };
        let mut evil_applies = mixin("ok", "/ok/");
        evil_applies.applies = vec![TypeId::new("http://x#", "k\nCategory: f")];
        let mut evil_scheme = mixin("ok", "/ok/");
        evil_scheme.id.scheme = "http://me\"; class=\"kind#".into();
        for (d, says) in [
            (mixin("evil\nCategory: forged", "/e/"), "bad term"),
            (evil_scheme, "bad scheme"),
            (evil_applies, "bad term"),
            (mixin("ok", "/a/../"), "bad location"),
            (mixin("ok", "/./"), "bad location"),
            (mixin("ok", "/a b/"), "bad location"),
            (mixin("ok", "/-/"), "must be a path"),
        ] {
            let e = s
                .query(&m, &Method::POST, define(d), PLAIN)
                .await
                .expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.reason.contains(says), "{} lacks {says}", e.reason);
        }
        assert!(s.store().user_mixins().expect("a list").is_empty());
        let r = s
            .query(&m, &Method::POST, define(mixin("v1.2", "/v1.2/")), PLAIN)
            .await
            .expect("a good mixin");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(s.store().user_mixins().expect("a list").len(), 1);
    }
}
