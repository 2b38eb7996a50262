//! Content negotiation: which rendering a request is in and which one its
//! answer must be in (GFD.185 §3.6.6; GFD.223 §5.2).

use super::error::OcciError;
use axum::http::StatusCode;

/// A rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// `text/plain`: the rendering's lines in the body (the default).
    Plain,
    /// `text/occi`: the rendering's lines in HTTP headers, `OK` in the body.
    Occi,
    /// `text/uri-list`: one URL per line, for listings only.
    UriList,
    /// `application/occi+json` (also `application/json`).
    Json,
}

impl Media {
    /// The `Content-Type` of an answer in this rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            Media::Plain => "text/plain; charset=utf-8",
            Media::Occi => "text/occi",
            Media::UriList => "text/uri-list",
            Media::Json => "application/occi+json",
        }
    }
}

/// The two shapes of `application/occi+json` in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavour {
    /// pyOCNI's (pyCMBS's clients): nested attribute objects, capitalised
    /// types, every entity in a `{"resources": […]}` envelope.
    #[default]
    PyOcni,
    /// OCCI 1.2's JSON rendering (GFD.226): flat dotted attribute names.
    Occi12,
}

impl Flavour {
    /// Reads `pyocni` or `occi12`.
    pub fn parse(s: &str) -> Option<Flavour> {
        match s {
            "pyocni" => Some(Flavour::PyOcni),
            "occi12" => Some(Flavour::Occi12),
            _ => None,
        }
    }
}

fn essence(item: &str) -> (String, f32) {
    let mut parts = item.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut q = 1.0;
    for p in parts {
        if let Some(v) = p.trim().strip_prefix("q=") {
            q = v.trim().parse().unwrap_or(0.0);
        }
    }
    (mime, q)
}

/// The rendering of a request body from its `Content-Type`; `None` for a
/// type we do not read.
pub fn request_media(content_type: &str) -> Option<Media> {
    let (mime, _) = essence(content_type);
    match mime.as_str() {
        "text/plain" | "text/occi+plain" => Some(Media::Plain),
        "text/occi" => Some(Media::Occi),
        "text/uri-list" => Some(Media::UriList),
        "application/occi+json" | "application/json" | "application/json:occi" => Some(Media::Json),
        _ => None,
    }
}

/// The rendering of the answer: the first acceptable one in `Accept`
/// (highest `q` first); `text/plain` when `Accept` is missing or `*/*`.
/// `text/uri-list` only for listings (asked alone for anything else: 400);
/// nothing acceptable: 406.
pub fn negotiate(accept: Option<&str>, listing: bool) -> Result<Media, OcciError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Media::Plain);
    };
    let mut items: Vec<(String, f32)> = accept.split(',').map(essence).collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut uri_list_asked = false;
    for (mime, q) in items {
        if q <= 0.0 {
            continue;
        }
        let media = match mime.as_str() {
            "*/*" | "text/*" | "text/plain" | "text/occi+plain" => Media::Plain,
            "text/occi" => Media::Occi,
            "text/uri-list" => {
                if !listing {
                    uri_list_asked = true;
                    continue;
                }
                Media::UriList
            }
            "application/*"
            | "application/occi+json"
            | "application/json"
            | "application/json:occi" => Media::Json,
            _ => continue,
        };
        return Ok(media);
    }
    if uri_list_asked {
        return Err(OcciError::bad_request(
            "text/uri-list renders listings only; ask for text/plain, text/occi or application/occi+json",
        ));
    }
    Err(OcciError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!("cannot answer in {accept}; this server renders text/plain, text/occi, text/uri-list and application/occi+json"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_default_and_q_values() {
        assert_eq!(negotiate(None, false).unwrap(), Media::Plain);
        assert_eq!(negotiate(Some("*/*"), false).unwrap(), Media::Plain);
        assert_eq!(
            negotiate(Some("text/occi;q=0.5, application/occi+json"), false).unwrap(),
            Media::Json
        );
        assert_eq!(
            negotiate(Some("text/uri-list"), true).unwrap(),
            Media::UriList
        );
        assert_eq!(
            negotiate(Some("text/uri-list"), false).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            negotiate(Some("image/png"), false).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            request_media("application/occi+json; charset=utf-8"),
            Some(Media::Json)
        );
        assert_eq!(request_media("application/x-www-form-urlencoded"), None);
    }
}
