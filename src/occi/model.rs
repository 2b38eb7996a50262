//! The OCCI core model's categories (OCCI Core, GFD.183 §3–§4; GFD.221):
//! kinds, mixins and actions, their attributes, and the [`Model`] a server
//! offers at its query interface. Built in code, the way CO-OCCI's
//! create-category / add-attribute / add-action calls build it, but typed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) mod grammar;
pub use grammar::{check_id, check_location, GrammarError};

/// The scheme of the OCCI core categories.
pub const CORE_SCHEME: &str = "http://schemas.ogf.org/occi/core#";
/// `core#entity`.
pub const ENTITY: &str = "http://schemas.ogf.org/occi/core#entity";
/// `core#resource`.
pub const RESOURCE: &str = "http://schemas.ogf.org/occi/core#resource";
/// `core#link`.
pub const LINK: &str = "http://schemas.ogf.org/occi/core#link";

/// A link's source (`occi.core.source`, GFD.221 §4.6).
pub const SOURCE: &str = "occi.core.source";
/// A link's target (`occi.core.target`).
pub const TARGET: &str = "occi.core.target";
/// The kind of a link's source (`occi.core.source.kind`, OCCI 1.2).
pub const SOURCE_KIND: &str = "occi.core.source.kind";
/// The kind of a link's target (`occi.core.target.kind`, OCCI 1.2).
pub const TARGET_KIND: &str = "occi.core.target.kind";

/// An attribute's value type (GFD.221 §4.2; GFD.226 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrType {
    /// A string.
    String,
    /// A number (integer or float).
    Number,
    /// `true` or `false` (the strings `"true"`/`"false"` in any case are read
    /// as booleans too, as pyCMBS sends them).
    Boolean,
    /// A list of values.
    Array,
    /// A JSON object.
    Object,
    /// A string out of a fixed set.
    Enum(Vec<String>),
    /// Any JSON value (rendered as `Object`, as pyCMBS declares such fields).
    Any,
}

impl AttrType {
    /// The GFD.226 name: `string`, `number`, `boolean`, `array`, `object`.
    pub fn json_name(&self) -> &'static str {
        match self {
            AttrType::String | AttrType::Enum(_) => "string",
            AttrType::Number => "number",
            AttrType::Boolean => "boolean",
            AttrType::Array => "array",
            AttrType::Object | AttrType::Any => "object",
        }
    }

    /// Checks `value` against the type; the value as stored (a boolean
    /// given as a string becomes a boolean).
    pub fn check(&self, name: &str, value: Value) -> Result<Value, String> {
        let bad = |want: &str, v: &Value| format!("{name} must be {want}, not {v}");
        match (self, value) {
            (AttrType::Any, v) => Ok(v),
            (AttrType::String, v @ Value::String(_)) => Ok(v),
            (AttrType::Number, v @ Value::Number(_)) => Ok(v),
            (AttrType::Boolean, v @ Value::Bool(_)) => Ok(v),
            (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Ok(Value::Bool(true))
            }
            (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Ok(Value::Bool(false))
            }
            (AttrType::Array, v @ Value::Array(_)) => Ok(v),
            // pyCMBS declares `"default": ""` for arrays: an empty string is
            // an empty list.
            (AttrType::Array, Value::String(s)) if s.is_empty() => Ok(Value::Array(Vec::new())),
            (AttrType::Object, v @ Value::Object(_)) => Ok(v),
            (AttrType::Enum(values), Value::String(s)) => {
                if values.contains(&s) {
                    Ok(Value::String(s))
                } else {
                    Err(format!(
                        "{name} must be one of {}, not {s:?}",
                        values.join("|")
                    ))
                }
            }
            (AttrType::Enum(values), v) => Err(bad(&format!("one of {}", values.join("|")), &v)),
            (t, v) => Err(bad(&format!("a {}", t.json_name()), &v)),
        }
    }
}

/// An attribute definition (GFD.221 §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The flat dotted name (`occi.compute.cores`, `cmbs.member.state`).
    pub name: String,
    /// Its type.
    pub ty: AttrType,
    /// Clients may change it (otherwise the server manages it).
    pub mutable: bool,
    /// It must be given at creation.
    pub required: bool,
    /// The value used when a creation does not give one.
    pub default: Option<Value>,
    /// What it means.
    pub description: String,
}

impl Attribute {
    /// A mutable, optional attribute without a default.
    pub fn new(name: &str, ty: AttrType) -> Attribute {
        Attribute {
            name: name.to_owned(),
            ty,
            mutable: true,
            required: false,
            default: None,
            description: String::new(),
        }
    }

    /// Makes it immutable (managed by the server).
    pub fn immutable(mut self) -> Attribute {
        self.mutable = false;
        self
    }

    /// Makes it mandatory at creation.
    pub fn required(mut self) -> Attribute {
        self.required = true;
        self
    }

    /// Gives it a default.
    pub fn default(mut self, value: impl Into<Value>) -> Attribute {
        self.default = Some(value.into());
        self
    }

    /// Describes it.
    pub fn describe(mut self, text: &str) -> Attribute {
        self.description = text.to_owned();
        self
    }
}

/// A category's identity: scheme and term (GFD.221 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TypeId {
    /// The scheme, ending in `#`.
    pub scheme: String,
    /// The term.
    pub term: String,
}

impl TypeId {
    /// `scheme` + `term`.
    pub fn new(scheme: &str, term: &str) -> TypeId {
        TypeId {
            scheme: scheme.to_owned(),
            term: term.to_owned(),
        }
    }

    /// Splits `scheme#term` at its last `#`.
    pub fn parse(id: &str) -> Option<TypeId> {
        let at = id.rfind('#')?;
        let (scheme, term) = id.split_at(at + 1);
        (!term.is_empty()).then(|| TypeId::new(scheme, term))
    }

    /// Reads a client's `scheme#term` (split at its last `#`) and checks
    /// both halves against GFD.185 §5.5's grammar ([`TypeId::check`]).
    pub fn parse_checked(id: &str) -> Result<TypeId, GrammarError> {
        let t = TypeId::parse(id).ok_or_else(|| GrammarError::TypeId(id.to_owned()))?;
        t.check()?;
        Ok(t)
    }

    /// Checks the scheme (a URI ending in `#`) and the term (`(ALPHA /
    /// DIGIT) *(ALPHA / DIGIT / "-" / "_" / ".")`) against the text
    /// rendering's grammar (GFD.185 §5.5), as everything a client names
    /// must be.
    pub fn check(&self) -> Result<(), GrammarError> {
        grammar::check_type_id(&self.scheme, &self.term)
    }
}

impl std::fmt::Display for TypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.scheme, self.term)
    }
}

/// What a category is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Class {
    /// The type of an entity.
    Kind,
    /// Added to entities.
    Mixin,
    /// An operation.
    Action,
}

impl Class {
    /// `kind`, `mixin` or `action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Kind => "kind",
            Class::Mixin => "mixin",
            Class::Action => "action",
        }
    }

    /// Reads [`Class::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Class> {
        match s {
            "kind" => Some(Class::Kind),
            "mixin" => Some(Class::Mixin),
            "action" => Some(Class::Action),
            _ => None,
        }
    }
}

/// A kind, mixin or action definition (GFD.221 §4.1, §4.4–§4.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Scheme and term.
    pub id: TypeId,
    /// Kind, mixin or action.
    pub class: Class,
    /// A human-readable title.
    pub title: String,
    /// Kinds: the parent kind; mixins: the mixins it depends on.
    pub rel: Vec<TypeId>,
    /// Mixins: the kinds it applies to (empty: any).
    pub applies: Vec<TypeId>,
    /// Kinds and mixins: the collection's path, relative, ending in `/`.
    pub location: Option<String>,
    /// The attributes it defines (actions: their parameters).
    pub attributes: Vec<Attribute>,
    /// The actions it offers.
    pub actions: Vec<TypeId>,
    /// Defined by a client at the query interface (it may remove it again).
    pub user_defined: bool,
    /// Link kinds: the kind a source must be (or derive from); `None`:
    /// any resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_source: Option<TypeId>,
    /// Link kinds: the kind a target must be (or derive from); `None`:
    /// any resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<TypeId>,
}

impl Category {
    fn new(class: Class, scheme: &str, term: &str, title: &str) -> Category {
        Category {
            id: TypeId::new(scheme, term),
            class,
            title: title.to_owned(),
            rel: Vec::new(),
            applies: Vec::new(),
            location: None,
            attributes: Vec::new(),
            actions: Vec::new(),
            user_defined: false,
            link_source: None,
            link_target: None,
        }
    }

    /// A kind whose entities live under `location` (a path ending in `/`),
    /// a resource unless [`Category::rel`] says otherwise.
    pub fn kind(scheme: &str, term: &str, title: &str, location: &str) -> Category {
        let mut c = Category::new(Class::Kind, scheme, term, title);
        c.location = Some(location.to_owned());
        c.rel = vec![TypeId::parse(RESOURCE).expect("a constant type id")];
        c
    }

    /// A link kind (its parent `core#link`) whose entities live under
    /// `location`; [`Category::between`] says what it joins (GFD.221 §4.6).
    pub fn link(scheme: &str, term: &str, title: &str, location: &str) -> Category {
        let mut c = Category::new(Class::Kind, scheme, term, title);
        c.location = Some(location.to_owned());
        c.rel = vec![TypeId::parse(LINK).expect("a constant type id")];
        c
    }

    /// Link kinds: its links go from a `source` to a `target` of these
    /// kinds (or kinds derived from them); a link between others is a 400.
    pub fn between(mut self, source: &Category, target: &Category) -> Category {
        self.link_source = Some(source.id.clone());
        self.link_target = Some(target.id.clone());
        self
    }

    /// A mixin whose tagged entities are listed under `location`.
    pub fn mixin(scheme: &str, term: &str, title: &str, location: &str) -> Category {
        let mut c = Category::new(Class::Mixin, scheme, term, title);
        c.location = Some(location.to_owned());
        c
    }

    /// An action.
    pub fn action(scheme: &str, term: &str, title: &str) -> Category {
        Category::new(Class::Action, scheme, term, title)
    }

    /// Adds an attribute.
    pub fn attribute(mut self, a: Attribute) -> Category {
        self.attributes.push(a);
        self
    }

    /// Offers an action.
    pub fn with_action(mut self, action: &Category) -> Category {
        self.actions.push(action.id.clone());
        self
    }

    /// Sets the parent kind (kinds) or a dependency (mixins).
    pub fn with_rel(mut self, rel: &str) -> Category {
        if let Some(id) = TypeId::parse(rel) {
            if self.class == Class::Kind {
                self.rel = vec![id];
            } else {
                self.rel.push(id);
            }
        }
        self
    }

    /// Mixins: applies only to `kind`.
    pub fn applies_to(mut self, kind: &Category) -> Category {
        self.applies.push(kind.id.clone());
        self
    }
}

/// The categories a server offers: the core kinds, then what was added.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    categories: BTreeMap<TypeId, Category>,
    /// Definition order, for renderings.
    order: Vec<TypeId>,
    /// The names of every category's attributes.
    attribute_names: std::collections::BTreeSet<String>,
    /// Changes with every change of the model ([`Model::version`]).
    version: u64,
}

/// The next [`Model::version`]: unique in the process.
static NEXT_VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Default for Model {
    fn default() -> Model {
        Model::new()
    }
}

impl Model {
    /// The core kinds `entity`, `resource` and `link` with their attributes.
    pub fn new() -> Model {
        let mut m = Model {
            categories: BTreeMap::new(),
            order: Vec::new(),
            attribute_names: Default::default(),
            version: 0,
        };
        let mut entity = Category::new(Class::Kind, CORE_SCHEME, "entity", "entity")
            .attribute(
                Attribute::new("occi.core.id", AttrType::String)
                    .immutable()
                    .describe("the entity's id"),
            )
            .attribute(Attribute::new("occi.core.title", AttrType::String));
        entity.location = None;
        let mut resource = Category::new(Class::Kind, CORE_SCHEME, "resource", "resource")
            .attribute(Attribute::new("occi.core.summary", AttrType::String))
            .with_rel(ENTITY);
        resource.location = Some("/resource/".into());
        // Source and target are given at creation and kept (to re-point a
        // link, delete it and make another); the kinds are the server's.
        let mut link = Category::new(Class::Kind, CORE_SCHEME, "link", "link")
            .attribute(
                Attribute::new(SOURCE, AttrType::String)
                    .immutable()
                    .required()
                    .describe("the resource the link belongs to"),
            )
            .attribute(
                Attribute::new(TARGET, AttrType::String)
                    .immutable()
                    .required()
                    .describe("the resource the link points at"),
            )
            .attribute(
                Attribute::new(SOURCE_KIND, AttrType::String)
                    .immutable()
                    .describe("the source's kind"),
            )
            .attribute(
                Attribute::new(TARGET_KIND, AttrType::String)
                    .immutable()
                    .describe("the target's kind"),
            )
            .with_rel(ENTITY);
        link.location = Some("/link/".into());
        for c in [entity, resource, link] {
            m.add(c);
        }
        m
    }

    /// Adds (or replaces) a category.
    pub fn add(&mut self, c: Category) {
        if !self.categories.contains_key(&c.id) {
            self.order.push(c.id.clone());
        }
        self.categories.insert(c.id.clone(), c);
        self.index_attributes();
    }

    /// Removes a category.
    pub fn remove(&mut self, id: &TypeId) -> Option<Category> {
        self.order.retain(|o| o != id);
        let gone = self.categories.remove(id);
        self.index_attributes();
        gone
    }

    /// A number that no other state of any model in this process has had:
    /// what was made from a model is good while its version stays.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn index_attributes(&mut self) {
        self.version = NEXT_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.attribute_names = self
            .categories
            .values()
            .flat_map(|c| c.attributes.iter().map(|a| a.name.clone()))
            .collect();
    }

    /// The category `id`.
    pub fn get(&self, id: &TypeId) -> Option<&Category> {
        self.categories.get(id)
    }

    /// Every category, in definition order.
    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        self.order.iter().filter_map(|id| self.categories.get(id))
    }

    /// The kind or mixin whose collection is at `path`.
    pub fn at_location(&self, path: &str) -> Option<&Category> {
        self.iter().find(|c| c.location.as_deref() == Some(path))
    }

    /// The category with `term` and, when given, `scheme`.
    pub fn find(&self, scheme: Option<&str>, term: &str) -> Option<&Category> {
        self.iter()
            .find(|c| c.id.term == term && scheme.is_none_or(|s| c.id.scheme == s))
    }

    /// True if kind `kind` is `ancestor` or derives from it.
    pub fn is_a(&self, kind: &TypeId, ancestor: &TypeId) -> bool {
        let mut at = Some(kind);
        let mut hops = 0;
        while let Some(k) = at {
            if k == ancestor {
                return true;
            }
            hops += 1;
            if hops > 32 {
                return false;
            }
            at = self.get(k).and_then(|c| c.rel.first());
        }
        false
    }

    /// True if `kind` is a link kind (`core#link` or derived from it).
    pub fn is_link(&self, kind: &TypeId) -> bool {
        let mut at = Some(kind);
        for _ in 0..32 {
            let Some(k) = at else { return false };
            if k.scheme == CORE_SCHEME && k.term == "link" {
                return true;
            }
            at = self.get(k).and_then(|c| c.rel.first());
        }
        false
    }

    /// The kinds a link of `kind` must join (source, target): the first
    /// constraint found from `kind` up its parents.
    pub fn link_ends_of(&self, kind: &TypeId) -> (Option<&TypeId>, Option<&TypeId>) {
        let (mut source, mut target) = (None, None);
        let mut at = self.get(kind);
        let mut hops = 0;
        while let Some(k) = at {
            source = source.or(k.link_source.as_ref());
            target = target.or(k.link_target.as_ref());
            hops += 1;
            if hops > 32 {
                break;
            }
            at = k.rel.first().and_then(|p| self.get(p));
        }
        (source, target)
    }

    /// The attributes of an entity of `kind` with `mixins`: its ancestors'
    /// from the root down, the kind's, and the mixins', in that order; a
    /// kind or mixin that
    /// defines an attribute again refines it (a template's default applies,
    /// GFD.224 §3.5), in the place it first had.
    pub fn attributes_of<'a>(&'a self, kind: &TypeId, mixins: &[TypeId]) -> Vec<&'a Attribute> {
        let mut out: Vec<&Attribute> = Vec::new();
        let mut chain = Vec::new();
        let mut at = self.get(kind);
        while let Some(k) = at {
            if chain.len() > 32 {
                break;
            }
            chain.push(k);
            at = k.rel.first().and_then(|p| self.get(p));
        }
        for c in chain
            .into_iter()
            .rev()
            .chain(mixins.iter().filter_map(|m| self.get(m)))
        {
            for a in &c.attributes {
                match out.iter_mut().find(|o| o.name == a.name) {
                    Some(earlier) => *earlier = a,
                    None => out.push(a),
                }
            }
        }
        out
    }

    /// The actions an entity of `kind` with `mixins` offers.
    pub fn actions_of(&self, kind: &TypeId, mixins: &[TypeId]) -> Vec<&Category> {
        let mut out: Vec<&Category> = Vec::new();
        for c in std::iter::once(kind)
            .chain(mixins)
            .filter_map(|id| self.get(id))
        {
            for a in c.actions.iter().filter_map(|a| self.get(a)) {
                if !out.iter().any(|o| o.id == a.id) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// True if `name` is an attribute of some category (for reading nested
    /// JSON attributes back into flat names).
    pub fn knows_attribute(&self, name: &str) -> bool {
        self.attribute_names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_split_at_the_last_hash() {
        let t = TypeId::parse("http://a/b#c").unwrap();
        assert_eq!((t.scheme.as_str(), t.term.as_str()), ("http://a/b#", "c"));
        assert_eq!(t.to_string(), "http://a/b#c");
        assert!(TypeId::parse("http://a/b#").is_none());
        assert!(TypeId::parse("nohash").is_none());
    }

    #[test]
    fn checked_type_ids_follow_the_grammar() {
        for c in Model::new().iter() {
            assert!(c.id.check().is_ok(), "{}", c.id);
        }
        let t = TypeId::parse_checked("http://houssem.org/cmbs/member/action#start_l3.1").unwrap();
        assert_eq!(t.term, "start_l3.1");
        assert_eq!(
            TypeId::parse_checked("nohash"),
            Err(GrammarError::TypeId("nohash".into()))
        );
        assert!(matches!(
            TypeId::parse_checked("http://x#a\nb"),
            Err(GrammarError::Term(_))
        ));
        assert!(matches!(
            TypeId::parse_checked("http://x y#a"),
            Err(GrammarError::Scheme(_))
        ));
    }

    #[test]
    fn types_check_and_normalise() {
        assert_eq!(
            AttrType::Boolean.check("x", "True".into()).unwrap(),
            Value::Bool(true)
        );
        assert!(AttrType::Boolean.check("x", "yes".into()).is_err());
        assert!(AttrType::Number.check("x", "1".into()).is_err());
        let e = AttrType::Enum(vec!["a".into(), "b".into()]);
        assert!(e.check("x", "c".into()).unwrap_err().contains("a|b"));
        assert_eq!(
            AttrType::Array.check("x", "".into()).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn attributes_come_from_the_kind_its_parents_and_mixins() {
        let mut m = Model::new();
        let k = Category::kind("http://x#", "thing", "Thing", "/thing/")
            .attribute(Attribute::new("x.size", AttrType::Number));
        let mx = Category::mixin("http://x#", "tag", "Tag", "/tag/")
            .attribute(Attribute::new("x.colour", AttrType::String));
        m.add(k.clone());
        m.add(mx.clone());
        let names: Vec<&str> = m
            .attributes_of(&k.id, std::slice::from_ref(&mx.id))
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "occi.core.id",
                "occi.core.title",
                "occi.core.summary",
                "x.size",
                "x.colour"
            ]
        );
        assert!(m.is_a(&k.id, &TypeId::parse(ENTITY).unwrap()));
        assert_eq!(m.at_location("/tag/").unwrap().id, mx.id);
    }
}
