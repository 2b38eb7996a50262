//! What a callee answers and a caller gets back (Guidelines §5.2.2): the
//! application status triple and the return values.

use crate::wire::Value;

/// The generic part of an application status: the first Symbol of APPSTATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `FAILED`.
    Failed,
}

impl Status {
    /// The wire Symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Failed => "FAILED",
        }
    }

    /// Reads the wire Symbol.
    pub fn from_wire(s: &str) -> Option<Status> {
        match s {
            "OK" => Some(Status::Ok),
            "FAILED" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// What a handler answers, and what a caller gets back: the application
/// status triple (OK/FAILED, result Symbol, description) and the return values
/// (Guidelines §5.2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// OK or FAILED.
    pub status: Status,
    /// The application-specific result Symbol (e.g. `BAR_COMPLETED`).
    pub result: String,
    /// A human-readable description.
    pub description: String,
    /// The return values.
    pub values: Vec<Value>,
}

impl Reply {
    /// `(OK OK "")` with `values`.
    pub fn ok(values: Vec<Value>) -> Reply {
        Reply {
            status: Status::Ok,
            result: "OK".into(),
            description: String::new(),
            values,
        }
    }

    /// `(OK result "description")` with `values`.
    pub fn ok_with(result: &str, description: &str, values: Vec<Value>) -> Reply {
        Reply {
            status: Status::Ok,
            result: result.into(),
            description: description.into(),
            values,
        }
    }

    /// `(FAILED result "description")` without values.
    pub fn failed(result: &str, description: &str) -> Reply {
        Reply {
            status: Status::Failed,
            result: result.into(),
            description: description.into(),
            values: Vec::new(),
        }
    }

    /// True for `OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// How a callee answers a request (`RPC-STATUS`, Guidelines §5.2.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `RPC-STATUS OK`: the procedure was called; here is its result.
    Reply(Reply),
    /// `RPC-STATUS UNKNOWN`: no such operation here.
    Unknown,
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Reply(r)
    }
}
