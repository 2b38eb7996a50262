//! Answers kept until their store changes: an unfiltered listing of a
//! collection (in one rendering and page) and an entity's rendering are
//! made once per [`super::EntityStore::generation`] (and model) and then
//! answered from memory, tags and all, as long as neither changes. A
//! server whose store changes all the time simply makes them again.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::media::{Flavour, Media};
use super::model::Model;
use super::tags::{self, Covers};

/// How many answers are kept, and how many bytes of them at most; beyond
/// either, all are dropped (they are made again as they are asked for).
const KEPT: usize = 4096;
const KEPT_BYTES: usize = 8 << 20;

/// What names a kept answer: the collection (its kind's or mixin's type
/// id) or the entity (its path), the page, the rendering.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AnswerKey {
    pub what: String,
    pub page: Option<String>,
    pub number: Option<String>,
    pub media: Media,
    pub flavour: Flavour,
}

/// An answer as given: its body, type and tags, and what it was made
/// from.
struct Kept {
    generation: u64,
    /// The model it was made with (its address: a model is replaced, never
    /// changed in place, and every replacement follows a change of the
    /// store's generation).
    model: usize,
    content_type: Option<HeaderValue>,
    body: Bytes,
    etag: String,
    content_md5: String,
}

/// The kept answers of a server, and the bytes they hold.
#[derive(Default)]
pub(super) struct KeptAnswers {
    kept: Mutex<(HashMap<AnswerKey, Kept>, usize)>,
}

fn model_id(model: &Model) -> usize {
    std::ptr::from_ref(model) as usize
}

impl KeptAnswers {
    /// The answer `key` names, if it was made from this generation and
    /// model.
    pub fn get(&self, key: &AnswerKey, generation: u64, model: &Model) -> Option<Response> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let k = kept
            .0
            .get(key)
            .filter(|k| k.generation == generation && k.model == model_id(model))?;
        let mut r = Response::new(Body::from(k.body.clone()));
        *r.status_mut() = StatusCode::OK;
        if let Some(t) = &k.content_type {
            r.headers_mut().insert(header::CONTENT_TYPE, t.clone());
        }
        tags::set_digests(r.headers_mut(), &k.etag, &k.content_md5);
        Some(r)
    }

    /// Keeps `r`, an answer made from `generation` and `model` (its tags
    /// computed here, once); the answer to give.
    pub async fn keep(
        &self,
        key: AnswerKey,
        generation: u64,
        model: &Model,
        r: Response,
    ) -> Response {
        let covers = r.extensions().get::<Covers>().copied();
        let (mut parts, body) = r.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return Response::from_parts(parts, Body::empty());
        };
        let (etag, content_md5) = tags::digests(&bytes, covers);
        tags::set_digests(&mut parts.headers, &etag, &content_md5);
        let kept = Kept {
            generation,
            model: model_id(model),
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: bytes.clone(),
            etag,
            content_md5,
        };
        {
            let mut all = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let (map, bytes) = &mut *all;
            if map.len() >= KEPT || *bytes + kept.body.len() > KEPT_BYTES {
                map.clear();
                *bytes = 0;
            }
            *bytes += kept.body.len();
            if let Some(old) = map.insert(key, kept) {
                *bytes -= old.body.len();
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}
