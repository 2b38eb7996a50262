//! Reading a request: limits, the OCCI version, credentials, the body in
//! any rendering (and text/occi headers), then the path it names
//! (GFD.185 §3.6; GFD.223 §5).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::body::Body;
use super::error::OcciError;
use super::media::{self, Media};
use super::model::Model;
use super::render::Answer;
use super::server::{RequestLog, Server, Target};
use super::{json, text};

/// The axum handler of every request.
pub(super) async fn handle(State(server): State<Arc<Server>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Errors before negotiation are in the Accept'ed rendering if it is one
    // we make, else text/plain.
    let fallback = Answer {
        media: media::negotiate(accept.as_deref(), true).unwrap_or(Media::Plain),
        flavour: server.flavour,
    };
    let (parts, raw) = req.into_parts();
    let mut user = None;
    let result = serve_request(&server, &parts, raw, &accept, &mut user).await;
    let (response, reason) = match result {
        Ok(r) => (r, None),
        Err((e, answer)) => {
            let mut r = answer.unwrap_or(fallback).error(&e);
            if e.status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"rmbus\""),
                );
            }
            (r, Some(e.reason))
        }
    };
    let mut response = super::tags::tag(&method, &parts.headers, response).await;
    response
        .headers_mut()
        .insert(header::SERVER, server.server_header.clone());
    if let Some(log) = &server.log {
        log(&RequestLog {
            method,
            target,
            status: response.status(),
            user,
            millis: started.elapsed().as_secs_f64() * 1000.0,
            reason,
        });
    }
    response
}

type Failed = (OcciError, Option<Answer>);

/// The highest OCCI version a `User-Agent` announces (`OCCI/x.y` tokens),
/// if any.
fn occi_version(agent: &str) -> Option<(u32, u32)> {
    agent
        .split_whitespace()
        .filter_map(|t| t.strip_prefix("OCCI/"))
        .filter_map(|v| {
            let (major, minor) = v.split_once('.')?;
            let minor = minor.trim_end_matches(|c: char| !c.is_ascii_digit());
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .max()
}

async fn serve_request(
    server: &Arc<Server>,
    req: &Parts,
    raw: HttpBody,
    accept: &Option<String>,
    user: &mut Option<String>,
) -> Result<Response, Failed> {
    let plain = |e: OcciError| (e, None);
    // Credentials first: an anonymous caller learns nothing but 401.
    *user = server.authenticate(req).await.map_err(plain)?;
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > server.limits.headers {
        return Err(plain(OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the headers take {header_bytes} bytes; at most {} are read",
                server.limits.headers
            ),
        )));
    }
    if let Some(agent) = req
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(v) = occi_version(agent) {
            if v > (1, 2) {
                return Err(plain(OcciError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    format!(
                        "OCCI/{}.{} is not supported; this server speaks OCCI/1.1 and OCCI/1.2",
                        v.0, v.1
                    ),
                )));
            }
        }
    }
    let model = server.model();
    let path = req.uri.path().to_owned();
    let query: Vec<(String, String)> = req
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    // Only these parameters mean anything: a misspelt one (`?actoin=`)
    // must not turn an action into a plain update.
    if let Some((k, _)) = query
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "action" | "page" | "number"))
    {
        return Err(plain(OcciError::bad_request(format!(
            "unknown query parameter {k:?} (known: action, page, number)"
        ))));
    }
    let target = match server.target(&model, &path) {
        Some(t) => t,
        // The name-space's root: every entity (GFD.185 §3.4.3), and a
        // create whose body names its kind.
        None if path == "/" => Target::Root,
        None if req.method == Method::PUT => {
            return Err(plain(OcciError::bad_request(format!(
                "{path} is under no kind's location: an entity is made at its kind's \
                 location (see GET /-/)"
            ))))
        }
        None => return Err(plain(OcciError::not_found(format!("nothing at {path}")))),
    };
    let listing = match &target {
        Target::Collection(_) => !query.iter().any(|(k, _)| k == "action"),
        Target::Root => true,
        _ => false,
    };
    let mut answer = Answer {
        media: media::negotiate(accept.as_deref(), listing).map_err(plain)?,
        flavour: server.flavour,
    };
    let method = req.method.clone();
    let body = read_body(
        server,
        &model,
        &req.headers,
        raw,
        matches!(target, Target::Query),
    )
    .await
    .map_err(|e| (e, Some(answer)))?;
    if let Some(f) = body.flavour {
        answer.flavour = f;
    }
    let fail = |e: OcciError| (e, Some(answer));
    let action = query
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.clone());
    if action.is_some() && matches!(target, Target::Query | Target::Root) {
        return Err(fail(OcciError::bad_request(format!(
            "{path} has no actions: trigger one on an entity or a collection"
        ))));
    }
    match target {
        Target::Query => server
            .query(&model, &method, body, answer)
            .await
            .map_err(fail),
        Target::Root => server
            .root(&model, &method, &query, body, answer)
            .await
            .map_err(fail),
        Target::Collection(c) => {
            if let Some(term) = action {
                if method != Method::POST {
                    return Err(fail(OcciError::method_not_allowed(
                        "POST",
                        "actions are triggered with POST",
                    )));
                }
                server
                    .collection_action(&model, c, &term, body, answer)
                    .await
                    .map_err(fail)
            } else {
                server
                    .collection(&model, c, &method, &query, body, answer)
                    .await
                    .map_err(fail)
            }
        }
        Target::Entity(kind, id) => {
            let location = format!("{}{id}", kind.location.as_deref().unwrap_or("/"));
            if let Some(term) = action {
                if method != Method::POST {
                    return Err(fail(OcciError::method_not_allowed(
                        "POST",
                        "actions are triggered with POST",
                    )));
                }
                let _guard = server.lock(&location).await;
                let e = server
                    .store
                    .get(&location)
                    .map_err(|e| fail(e.into()))?
                    .ok_or_else(|| {
                        fail(OcciError::not_found(format!("no entity at {location}")))
                    })?;
                let e = server
                    .run_action(&model, e, &term, &body)
                    .await
                    .map_err(fail)?;
                let shown = server.shown(&model, e).map_err(fail)?;
                Ok(answer.entity(StatusCode::OK, &shown, &model))
            } else {
                server
                    .entity(&model, kind, &id, &location, &method, body, answer)
                    .await
                    .map_err(fail)
            }
        }
    }
}

/// Reads the body (in the rendering its `Content-Type` names), and the
/// text/occi headers of the request.
async fn read_body(
    server: &Server,
    model: &Model,
    headers: &HeaderMap,
    raw: HttpBody,
    query: bool,
) -> Result<Body, OcciError> {
    let too_big = || {
        OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} bytes", server.limits.body),
        )
    };
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > server.limits.body {
            return Err(too_big());
        }
    }
    let wait = server.limits.body_timeout;
    let bytes = tokio::time::timeout(wait, axum::body::to_bytes(raw, server.limits.body))
        .await
        .map_err(|_| {
            OcciError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body took longer than {} s to arrive",
                    wait.as_secs_f64()
                ),
            )
        })?
        .map_err(|e| body_error(&e).unwrap_or_else(too_big))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map_err(|_| OcciError::bad_request("the content-type header is not ASCII"))
        })
        .transpose()?;
    let media = content_type.map(media::request_media);
    let has_text_headers = headers.keys().any(|k| {
        matches!(
            k.as_str(),
            "category" | "x-occi-attribute" | "x-occi-location" | "link"
        )
    });
    let body_empty = bytes.iter().all(u8::is_ascii_whitespace);
    let mut body = match (media, body_empty) {
        (Some(None), false) => {
            return Err(OcciError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "cannot read {} body; send text/plain, text/occi, text/uri-list or application/occi+json",
                    with_article(content_type.unwrap_or("this"))
                ),
            ))
        }
        (None, false) => {
            return Err(OcciError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a body without Content-Type; send text/plain, text/occi or application/occi+json",
            ))
        }
        (Some(Some(Media::Json)), false) => json::parse(&bytes, model, query)?,
        (Some(Some(Media::Plain)), false) => {
            let s = std::str::from_utf8(&bytes)
                .map_err(|_| OcciError::bad_request("the body is not UTF-8"))?;
            text::parse_plain(s, query)?
        }
        (Some(Some(Media::UriList)), false) => {
            let s = std::str::from_utf8(&bytes)
                .map_err(|_| OcciError::bad_request("the body is not UTF-8"))?;
            text::parse_uri_list(s)
        }
        _ => Body::default(),
    };
    if has_text_headers && body.is_empty() {
        let pairs = text_headers(headers)?;
        body = text::parse(pairs, query)?;
    }
    let n = body.attributes.len() + body.locations.len() + body.definitions.len();
    if n > server.limits.attributes {
        return Err(OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{n} values in one request; at most {} are taken",
                server.limits.attributes
            ),
        ));
    }
    Ok(body)
}

/// Why reading a body failed, unless it was its size: a malformed or
/// truncated chunked encoding, or a connection that ended early (400).
fn body_error(e: &axum::Error) -> Option<OcciError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return None;
        }
        cause = c.source();
    }
    let mut why = e.to_string();
    let mut inner = std::error::Error::source(e);
    while let Some(c) = inner {
        why = format!("{why}: {c}");
        inner = c.source();
    }
    Some(OcciError::bad_request(format!(
        "the body could not be read ({why})"
    )))
}

/// Every header, with its value decoded as UTF-8 (GFD.185 §3.6: text/occi
/// attribute values are UTF-8 strings); a header that is not UTF-8 is a
/// 400 naming it, never skipped.
fn text_headers(headers: &HeaderMap) -> Result<Vec<(&str, &str)>, OcciError> {
    headers
        .iter()
        .map(|(k, v)| {
            std::str::from_utf8(v.as_bytes())
                .map(|v| (k.as_str(), v))
                .map_err(|_| {
                    OcciError::bad_request(format!("the {} header is not UTF-8", k.as_str()))
                })
        })
        .collect()
}

/// `word` with its indefinite article: "an application/…", "a text/…".
fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_take_their_article() {
        assert_eq!(
            with_article("application/x-www-form-urlencoded"),
            "an application/x-www-form-urlencoded"
        );
        assert_eq!(with_article("text/html"), "a text/html");
    }

    #[test]
    fn versions_are_read_from_the_user_agent() {
        assert_eq!(occi_version("pOCCI/1.0 OCCI/1.1"), Some((1, 1)));
        assert_eq!(occi_version("x OCCI/9.9 y"), Some((9, 9)));
        assert_eq!(occi_version("curl/8.0"), None);
        assert!(occi_version("OCCI/1.3").unwrap() > (1, 2));
    }
}
