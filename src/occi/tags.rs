//! Cheap change detection: every successful `GET`/`HEAD` answer carries
//! `Content-MD5` (the base64 MD5 of its body, RFC 1864) and an `ETag`, and a
//! `GET` whose `If-None-Match` names the current tag gets 304 (RFC 9110
//! §8.8.3, §13.1.2). A collection's tag also covers its entities' contents,
//! so it changes whenever one of them does, even when its listing (URLs
//! only) does not.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use md5::{Digest, Md5};

/// What a collection's tag covers beyond its body: a digest of its
/// entities, put in the answer's extensions by the listing.
#[derive(Debug, Clone, Copy)]
pub struct Covers(pub [u8; 16]);

impl Covers {
    /// The digest of `parts` (the entities as stored).
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Covers {
        let mut h = Md5::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Covers(h.finalize().into())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True if `if_none_match` (a list of tags, or `*`) names `etag`; weak
/// comparison, as RFC 9110 §13.1.2 asks for GET.
fn matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// The `ETag` and `Content-MD5` of an answer whose body is `bytes` (and
/// which covers `covers`).
pub fn digests(bytes: &[u8], covers: Option<Covers>) -> (String, String) {
    let md5: [u8; 16] = Md5::digest(bytes).into();
    let mut h = Md5::new();
    h.update(md5);
    if let Some(Covers(c)) = covers {
        h.update(c);
    }
    let etag = format!("\"{}\"", hex(&h.finalize()));
    let content_md5 = base64::engine::general_purpose::STANDARD.encode(md5);
    (etag, content_md5)
}

/// Puts `ETag` and `Content-MD5` on an answer's head.
pub fn set_digests(headers: &mut HeaderMap, etag: &str, content_md5: &str) {
    for (name, value) in [(header::ETAG, etag), (CONTENT_MD5, content_md5)] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
}

/// Adds `Content-MD5` and `ETag` to a successful answer to GET or HEAD
/// (unless it carries them already: a kept listing), and turns it into a
/// 304 when `If-None-Match` names its tag.
pub async fn tag(method: &Method, request: &HeaderMap, response: Response) -> Response {
    if !matches!(*method, Method::GET | Method::HEAD) || response.status() != StatusCode::OK {
        return response;
    }
    let covers = response.extensions().get::<Covers>().copied();
    let (mut parts, body) = response.into_parts();
    let kept = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (etag, body) = match kept {
        Some(etag) => (etag, body),
        None => {
            // Our answers are in memory already; this only gathers them.
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            let (etag, content_md5) = digests(&bytes, covers);
            set_digests(&mut parts.headers, &etag, &content_md5);
            (etag, Body::from(bytes))
        }
    };
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches(v, &etag));
    if unchanged {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, body)
}

/// `Content-MD5` (RFC 1864), which `http` has no constant for.
const CONTENT_MD5: header::HeaderName = header::HeaderName::from_static("content-md5");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(matches("\"a\"", "\"a\""));
        assert!(matches("W/\"a\"", "\"a\""));
        assert!(matches("\"x\", \"a\"", "\"a\""));
        assert!(matches("*", "\"a\""));
        assert!(!matches("\"b\"", "\"a\""));
    }

    #[test]
    fn covers_depend_on_every_part_and_its_bounds() {
        let a = Covers::of([&b"ab"[..], b"c"]).0;
        let b = Covers::of([&b"a"[..], b"bc"]).0;
        assert_ne!(a, b);
        assert_eq!(a, Covers::of([&b"ab"[..], b"c"]).0);
    }
}
