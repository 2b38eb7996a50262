//! The five CMBS delivery layers and sets of them.

use std::fmt;

/// A CMBS delivery layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// L1, point to point: one member, request and reply.
    L1,
    /// L2, broadcast: every member.
    L2,
    /// L3.1, provider: members whose providers intersect the message's.
    L31,
    /// L3.2, topic: members subscribed to a matching topic.
    L32,
    /// L4, provider and topic.
    L4,
}

impl Layer {
    /// Every layer, in order.
    pub const ALL: [Layer; 5] = [Layer::L1, Layer::L2, Layer::L31, Layer::L32, Layer::L4];

    /// The short name used on the wire and in `cmbs_layer`: `l1`, `l2`,
    /// `l31`, `l32`, `l4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::L31 => "l31",
            Layer::L32 => "l32",
            Layer::L4 => "l4",
        }
    }

    /// The dotted name of the member attributes and actions: `l1`, `l2`,
    /// `l3.1`, `l3.2`, `l4`.
    pub fn dotted(self) -> &'static str {
        match self {
            Layer::L31 => "l3.1",
            Layer::L32 => "l3.2",
            other => other.as_str(),
        }
    }

    /// Reads a layer name in either spelling (`l31` or `l3.1`), any case.
    pub fn parse(s: &str) -> Option<Layer> {
        match s.to_ascii_lowercase().as_str() {
            "l1" => Some(Layer::L1),
            "l2" => Some(Layer::L2),
            "l31" | "l3.1" => Some(Layer::L31),
            "l32" | "l3.2" => Some(Layer::L32),
            "l4" => Some(Layer::L4),
            _ => None,
        }
    }

    /// The member attribute that names this layer's endpoint, e.g. `l3.1_socket`.
    pub fn socket_attribute(self) -> String {
        format!("{}_socket", self.dotted())
    }

    /// True for the layers that need `providers` (L3.1, L4).
    pub fn uses_providers(self) -> bool {
        matches!(self, Layer::L31 | Layer::L4)
    }

    /// True for the layers that need `topics` (L3.2, L4).
    pub fn uses_topics(self) -> bool {
        matches!(self, Layer::L32 | Layer::L4)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dotted())
    }
}

/// A set of layers (for example the started ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    /// No layer.
    pub const NONE: LayerSet = LayerSet(0);
    /// All five layers.
    pub const ALL: LayerSet = LayerSet(0b1_1111);

    /// True if `layer` is in the set.
    pub fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    /// Adds `layer`; true if it was not there.
    pub fn insert(&mut self, layer: Layer) -> bool {
        let had = self.contains(layer);
        self.0 |= layer.bit();
        !had
    }

    /// Removes `layer`; true if it was there.
    pub fn remove(&mut self, layer: Layer) -> bool {
        let had = self.contains(layer);
        self.0 &= !layer.bit();
        had
    }

    /// True if no layer is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers in the set, in order.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        Layer::ALL.into_iter().filter(move |l| self.contains(*l))
    }

    /// Reads a comma-separated list such as `l1,l2,l3.1`.
    pub fn parse_list(s: &str) -> Result<LayerSet, String> {
        let mut set = LayerSet::NONE;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let layer = Layer::parse(word).ok_or_else(|| {
                format!("unknown layer {word:?} (expected l1, l2, l3.1/l31, l3.2/l32 or l4)")
            })?;
            set.insert(layer);
        }
        Ok(set)
    }
}

impl FromIterator<Layer> for LayerSet {
    fn from_iter<I: IntoIterator<Item = Layer>>(iter: I) -> LayerSet {
        let mut set = LayerSet::NONE;
        for l in iter {
            set.insert(l);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_read_the_same_layer() {
        assert_eq!(Layer::parse("l3.1"), Some(Layer::L31));
        assert_eq!(Layer::parse("L31"), Some(Layer::L31));
        assert_eq!(Layer::parse("l3.2"), Layer::parse("l32"));
        assert_eq!(Layer::parse("l5"), None);
        assert_eq!(Layer::L31.socket_attribute(), "l3.1_socket");
    }

    #[test]
    fn a_set_holds_what_was_put_in() {
        let set = LayerSet::parse_list("l1, l3.2").unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Layer::L1, Layer::L32]);
        assert!(LayerSet::parse_list("l1,x").is_err());
        let mut s = LayerSet::ALL;
        assert!(s.remove(Layer::L2));
        assert!(!s.remove(Layer::L2));
        assert!(!s.contains(Layer::L2));
    }
}
