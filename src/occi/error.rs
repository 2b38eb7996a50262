//! The one error type of the OCCI server: a status code and a one-line
//! reason (GFD.185 §3.6.7's return codes; GFD.223 §5.5).

use axum::http::StatusCode;

/// A request that failed: the status and what was wrong, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct OcciError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong.
    pub reason: String,
    /// For 405: the methods the path allows.
    pub allow: Option<&'static str>,
    /// For 429 and 503: seconds the client should wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl OcciError {
    /// An error with `status`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> OcciError {
        let mut reason: String = reason.into();
        // One line, whatever the cause said.
        if reason.contains(['\n', '\r']) {
            reason = reason.replace(['\n', '\r'], " ");
        }
        OcciError {
            status,
            reason,
            allow: None,
            retry_after: None,
        }
    }

    /// The same error, telling the client to wait `secs` (at least one).
    pub fn retry_after(mut self, secs: u64) -> OcciError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 400: unparsable, unknown category or attribute, invalid value.
    pub fn bad_request(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 403: an immutable attribute changed, or a provider category removed.
    pub fn forbidden(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::FORBIDDEN, reason)
    }

    /// 404: no such path or entity.
    pub fn not_found(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::NOT_FOUND, reason)
    }

    /// 405 with the methods the path allows.
    pub fn method_not_allowed(allow: &'static str, reason: impl Into<String>) -> OcciError {
        let mut e = OcciError::new(StatusCode::METHOD_NOT_ALLOWED, reason);
        e.allow = Some(allow);
        e
    }

    /// 409: the id is taken, or a category conflicts.
    pub fn conflict(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::CONFLICT, reason)
    }

    /// 500: the server failed (a store error); nothing was changed.
    pub fn internal(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::INTERNAL_SERVER_ERROR, reason)
    }

    /// 503: a service the server needs (the bus) is down.
    pub fn unavailable(reason: impl Into<String>) -> OcciError {
        OcciError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }
}

impl From<super::entity::EntityStoreError> for OcciError {
    fn from(e: super::entity::EntityStoreError) -> OcciError {
        use super::entity::EntityStoreError as E;
        match e {
            E::Exists(_) => OcciError::conflict(e.to_string()),
            E::Missing(_) => OcciError::not_found(e.to_string()),
            E::Failed(_) => OcciError::internal(e.to_string()),
        }
    }
}
