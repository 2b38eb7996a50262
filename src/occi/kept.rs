//! Answers kept until their store changes: an unfiltered listing of a
//! collection (in one rendering and page) and an entity's rendering are
//! made once per [`super::EntityStore::generation`] (and model) and then
//! answered from memory, tags and all, as long as neither changes. A
//! server whose store changes all the time simply makes them again.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::media::{Flavour, Media};
use super::model::Model;
use super::tags::{self, Covers};

/// How many answers are kept, and how many bytes of them at most; beyond
/// either, all are dropped (they are made again as they are asked for).
const KEPT: usize = 4096;
const KEPT_BYTES: usize = 8 << 20;
/// The largest answer kept.
const KEPT_ONE: usize = KEPT_BYTES / 8;

/// What names a kept answer: the collection (its kind's or mixin's type
/// id) or the entity (its path), the page, the rendering.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AnswerKey {
    pub what: String,
    pub page: Option<usize>,
    pub number: Option<usize>,
    pub media: Media,
    pub flavour: Flavour,
}

/// An answer as given: its body, type and tags, and what it was made
/// from.
struct Kept {
    generation: u64,
    /// The model it was made with ([`Model::version`]).
    model: u64,
    /// Its head (`text/occi` renders into it) with its tags.
    headers: HeaderMap,
    body: Bytes,
}

/// The kept answers of a server, and the bytes they hold.
#[derive(Default)]
pub(super) struct KeptAnswers {
    kept: Mutex<(HashMap<AnswerKey, Kept>, usize)>,
}

impl KeptAnswers {
    /// The answer `key` names, if it was made from this generation and
    /// model.
    pub fn get(&self, key: &AnswerKey, generation: u64, model: &Model) -> Option<Response> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let k = kept
            .0
            .get(key)
            .filter(|k| k.generation == generation && k.model == model.version())?;
        let mut r = Response::new(Body::from(k.body.clone()));
        *r.status_mut() = StatusCode::OK;
        *r.headers_mut() = k.headers.clone();
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
        // What an answer holds: its body, its head and its key.
        let size = |k: &Kept, key: &AnswerKey| {
            k.body.len()
                + key.what.len()
                + k.headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len())
                    .sum::<usize>()
        };
        let kept = Kept {
            generation,
            model: model.version(),
            headers: parts.headers.clone(),
            body: bytes.clone(),
        };
        let n = size(&kept, &key);
        if n <= KEPT_ONE {
            let mut all = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let (map, held) = &mut *all;
            if map.len() >= KEPT || *held + n > KEPT_BYTES {
                map.clear();
                *held = 0;
            }
            *held += n;
            if let Some(old) = map.insert(key.clone(), kept) {
                *held = held.saturating_sub(size(&old, &key));
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: usize) -> Response {
        Response::new(Body::from(vec![b'x'; bytes]))
    }

    fn key(what: &str) -> AnswerKey {
        AnswerKey {
            what: what.into(),
            page: None,
            number: None,
            media: Media::Plain,
            flavour: Flavour::default(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_are_kept_for_their_generation_and_model_and_within_bounds() {
        let kept = KeptAnswers::default();
        let model = Model::new();
        let r = kept.keep(key("/a"), 7, &model, answer(10)).await;
        assert!(
            r.headers().contains_key(axum::http::header::ETAG),
            "tagged once, here"
        );
        assert!(kept.get(&key("/a"), 7, &model).is_some());
        assert!(
            kept.get(&key("/a"), 8, &model).is_none(),
            "another generation"
        );
        let mut changed = model.clone();
        changed.add(super::super::Category::mixin("http://x#", "t", "t", "/t/"));
        assert!(kept.get(&key("/a"), 7, &changed).is_none(), "another model");
        assert!(kept.get(&key("/b"), 7, &model).is_none());
        // One answer over the largest kept is answered, not kept.
        let big = kept
            .keep(key("/big"), 7, &model, answer(KEPT_ONE + 1))
            .await;
        assert_eq!(big.status(), StatusCode::OK);
        assert!(kept.get(&key("/big"), 7, &model).is_none());
        // Beyond the bytes kept, all are dropped and kept afresh.
        let half = KEPT_ONE / 2;
        for i in 0..=(KEPT_BYTES / half) {
            kept.keep(key(&format!("/n{i}")), 7, &model, answer(half))
                .await;
        }
        let held = kept.kept.lock().unwrap().1;
        assert!(held <= KEPT_BYTES, "{held} bytes held");
        assert!(
            kept.get(&key("/a"), 7, &model).is_none(),
            "dropped with the rest"
        );
    }
}
