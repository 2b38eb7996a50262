//! Topic matching with the AMQP topic-exchange rules: a table of cases, and
//! a property test against a plain recursive reference matcher.

use proptest::prelude::*;
use rmbus::cmbs::topic::{matches, validate_subscription, validate_topic};

#[test]
fn the_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("a.b.c", "a.b.c", true),
        ("a.b.c", "a.b", false),
        ("a.b", "a.b.c", false),
        ("*", "a", true),
        ("*", "a.b", false),
        ("*.b", "a.b", true),
        ("a.*", "a", false),
        ("sensors.*.temp", "sensors.kitchen.temp", true),
        ("sensors.*.temp", "sensors.kitchen.hall.temp", false),
        ("sensors.*.temp", "sensors.temp", false),
        ("#", "a", true),
        ("#", "a.b.c", true),
        ("alerts.#", "alerts", true),
        ("alerts.#", "alerts.disk", true),
        ("alerts.#", "alerts.disk.full", true),
        ("alerts.#", "alert.disk", false),
        ("#.error", "error", true),
        ("#.error", "db.error", true),
        ("#.error", "db.error.x", false),
        ("a.#.z", "a.z", true),
        ("a.#.z", "a.b.c.z", true),
        ("a.#.z", "a.b.c", false),
        ("#.*", "a", true),
        ("*.#", "a.b", true),
        ("#.#", "a", true),
        ("a.*.#", "a", false),
        ("a.*.#", "a.b", true),
        ("a.*.#", "a.b.c.d", true),
        ("Upper.Case", "upper.case", false),
    ];
    for (pattern, topic, want) in cases {
        validate_subscription(pattern).unwrap();
        validate_topic(topic).unwrap();
        assert_eq!(matches(pattern, topic), *want, "{pattern} against {topic}");
    }
}

/// The reference: the rules read literally, by recursion on the words.
fn reference(p: &[&str], t: &[&str]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((&"#", rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..])),
        Some((&"*", rest)) => !t.is_empty() && reference(rest, &t[1..]),
        Some((w, rest)) => t.first() == Some(w) && reference(rest, &t[1..]),
    }
}

fn words(of: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(of), 1..max)
}

proptest! {
    #[test]
    fn matching_agrees_with_the_reference(
        p in words(&["a", "b", "c", "*", "#"], 7),
        t in words(&["a", "b", "c"], 7),
    ) {
        let pattern = p.join(".");
        let topic = t.join(".");
        prop_assert_eq!(matches(&pattern, &topic), reference(&p, &t), "{} against {}", pattern, topic);
    }

    #[test]
    fn no_topic_with_a_wildcard_or_an_empty_word_is_valid(s in "[a-c*#.]{0,12}") {
        let bad = s.is_empty() || s.contains('*') || s.contains('#') || s.split('.').any(str::is_empty);
        prop_assert_eq!(validate_topic(&s).is_err(), bad);
    }
}
