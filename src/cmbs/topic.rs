//! Topics and subscriptions, with the AMQP topic-exchange rules: a topic is
//! dot-separated words; in a subscription `*` stands for exactly one word and
//! `#` for zero or more words, anywhere (`alerts.#`, `sensors.*.temp`,
//! `#.error`). Wildcards belong to subscriptions only.
//!
//! A word is one or more letters, digits, `_` or `-` (letters and digits of
//! any script). A topic or subscription is at most [`MAX_TOPIC_LEN`] bytes.

use thiserror::Error;

/// The longest topic or subscription accepted, in bytes (AMQP's routing-key
/// limit).
pub const MAX_TOPIC_LEN: usize = 255;

/// Why a topic or a subscription is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// Nothing at all.
    #[error("a topic cannot be empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`].
    #[error("{0:?} is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong(String),
    /// Two dots in a row, or a dot at either end.
    #[error("{0:?} has an empty word")]
    EmptyWord(String),
    /// A wildcard in a message's topic.
    #[error("{0:?}: a message topic cannot hold the wildcards * or # (only subscriptions can)")]
    Wildcard(String),
    /// A character that is neither a letter, a digit, `_` nor `-`, or a
    /// wildcard mixed with other characters in one word.
    #[error("{topic:?} has a bad character {bad:?} (words are letters, digits, _ and -)")]
    BadCharacter {
        /// The topic.
        topic: String,
        /// The first bad character.
        bad: char,
    },
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

fn check(s: &str, wildcards: bool) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(s.to_owned()));
    }
    for word in s.split('.') {
        if word.is_empty() {
            return Err(TopicError::EmptyWord(s.to_owned()));
        }
        if word == "*" || word == "#" {
            if !wildcards {
                return Err(TopicError::Wildcard(s.to_owned()));
            }
            continue;
        }
        if let Some(bad) = word.chars().find(|c| !word_char(*c)) {
            if !wildcards && (bad == '*' || bad == '#') {
                return Err(TopicError::Wildcard(s.to_owned()));
            }
            return Err(TopicError::BadCharacter {
                topic: s.to_owned(),
                bad,
            });
        }
    }
    Ok(())
}

/// Checks a message's topic: words only, no wildcard.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check(topic, false)
}

/// Checks a subscription: words, `*` and `#`, each wildcard a whole word.
pub fn validate_subscription(pattern: &str) -> Result<(), TopicError> {
    check(pattern, true)
}

/// True if `topic` matches `pattern` (both assumed valid).
pub fn matches(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    // reach[j]: the first i pattern words can match the first j topic words.
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for word in &p {
        let mut next = vec![false; t.len() + 1];
        match *word {
            "#" => {
                let mut any = false;
                for j in 0..=t.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            w => {
                for j in 0..t.len() {
                    if reach[j] && (w == "*" || w == t[j]) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// True if any of `subscriptions` matches any of `topics`.
pub fn any_match(subscriptions: &[String], topics: &[String]) -> bool {
    subscriptions
        .iter()
        .any(|s| topics.iter().any(|t| matches(s, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_refused_in_topics_and_kept_whole_in_subscriptions() {
        assert!(validate_topic("sensors.kitchen.temp").is_ok());
        assert!(matches!(
            validate_topic("a.*"),
            Err(TopicError::Wildcard(_))
        ));
        assert!(matches!(validate_topic("a#"), Err(TopicError::Wildcard(_))));
        assert!(matches!(
            validate_topic("a..b"),
            Err(TopicError::EmptyWord(_))
        ));
        assert!(matches!(validate_topic(""), Err(TopicError::Empty)));
        assert!(matches!(
            validate_topic("a b"),
            Err(TopicError::BadCharacter { bad: ' ', .. })
        ));
        assert!(validate_subscription("#.error").is_ok());
        assert!(validate_subscription("a*").is_err());
        assert!(validate_topic(&"a".repeat(256)).is_err());
    }
}
