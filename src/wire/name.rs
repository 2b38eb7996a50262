//! Command names as hierarchies (RFC 3259 §5.3: "hierarchical names use `.`
//! as separator"), and the one error every typed command reports when a
//! command does not have its shape.

use super::Command;

/// True if command name `name` is `prefix` or lies below it, matching whole
/// dot-separated components: `audio` covers `audio` and `audio.x`, not
/// `audiox.y`. A trailing dot means the same as none (`tool.` is `tool`), and
/// the empty prefix covers every name.
///
/// This is the one prefix rule of the crate: callbacks per command prefix,
/// services by command prefix (Guidelines §6) and the monitor's `--command`
/// filter all use it.
pub fn is_under(name: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('.').unwrap_or(prefix);
    if prefix.is_empty() {
        return true;
    }
    match name.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with('.'),
        None => false,
    }
}

impl Command {
    /// True if this command's name is `prefix` or lies below it (see
    /// [`is_under`]).
    pub fn is_under(&self, prefix: &str) -> bool {
        is_under(&self.name, prefix)
    }
}

/// Why a command does not have the shape of a typed command (the types of
/// `proto::cmd` for RFC 3259 §9 and `rpc::cmd` for the Guidelines draft).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Another command altogether: its name, or for a Guidelines message its
    /// META map with an `ID`, is not this shape's. Nothing is wrong with it.
    #[error("not a {0} command")]
    Other(&'static str),
    /// This command, but its arguments do not fit the format.
    #[error("malformed {command}{}: {problem}", id.as_ref().map(|i| format!(" {i:?}")).unwrap_or_default())]
    Malformed {
        /// What the shape is (e.g. `mbus.waiting`, `RPC request`).
        command: &'static str,
        /// The RPC or transaction ID the command carries, where it could be
        /// read, so that an error answer can name it.
        id: Option<String>,
        /// What is wrong.
        problem: String,
    },
}

impl ShapeError {
    /// A [`ShapeError::Malformed`] of shape `command`.
    pub fn malformed(
        command: &'static str,
        id: Option<&str>,
        problem: impl Into<String>,
    ) -> ShapeError {
        ShapeError::Malformed {
            command,
            id: id.map(str::to_owned),
            problem: problem.into(),
        }
    }

    /// True for [`ShapeError::Other`]: the command is simply not this shape.
    pub fn is_other(&self) -> bool {
        matches!(self, ShapeError::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::is_under;

    #[test]
    fn prefixes_match_whole_components() {
        for (name, prefix, under) in [
            ("audio", "audio", true),
            ("audio.x", "audio", true),
            ("audio.x.y", "audio.x", true),
            ("audiox.y", "audio", false),
            ("audio", "audio.x", false),
            ("tool.set", "tool.", true),
            ("tool", "tool.", true),
            ("toolbox", "tool.", false),
            ("anything", "", true),
            ("anything", ".", true),
            ("a.b", "a.b.", true),
            ("b", "a", false),
        ] {
            assert_eq!(is_under(name, prefix), under, "{name:?} under {prefix:?}");
        }
    }
}
