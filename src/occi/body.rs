//! What a request body (or a text/occi request's headers) says, whatever
//! its rendering: category references and definitions, attribute values,
//! links and locations. The renderings' parsers fill it; the server reads it.

use serde_json::Value;

use super::media::Flavour;
use super::model::{Category, Class, TypeId};

/// A category named in a request: a kind, mixin or action reference, or a
/// filter. The scheme may be missing in filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRef {
    /// The scheme, if given.
    pub scheme: Option<String>,
    /// The term.
    pub term: String,
    /// The class, if given.
    pub class: Option<Class>,
}

impl CategoryRef {
    /// A reference to `id` of `class`.
    pub fn to(id: &TypeId, class: Class) -> CategoryRef {
        CategoryRef {
            scheme: Some(id.scheme.clone()),
            term: id.term.clone(),
            class: Some(class),
        }
    }

    /// The type id, when the scheme is given.
    pub fn type_id(&self) -> Option<TypeId> {
        self.scheme.as_ref().map(|s| TypeId::new(s, &self.term))
    }
}

/// A link given inline with a resource (a `Link:` line of the text
/// renderings, an entry of a JSON resource's `links`; GFD.185 §3.5.1,
/// GFD.226 §4.3): its own categories and attributes, `occi.core.target`
/// among them (and `occi.core.source` when the client names it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InlineLink {
    /// Its kind (none given: `core#link`) and mixins.
    pub categories: Vec<CategoryRef>,
    /// Its attribute values, flat names.
    pub attributes: Vec<(String, Value)>,
    /// Where it is or is to be (`self=` in text, `location` in JSON), a
    /// URL of the server or a path.
    pub location: Option<String>,
}

/// A request's content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    /// Category references (kind, mixins, action, filters).
    pub categories: Vec<CategoryRef>,
    /// Full category definitions (at the query interface).
    pub definitions: Vec<Category>,
    /// Attribute values, flat names, in the order given.
    pub attributes: Vec<(String, Value)>,
    /// Links given inline with a resource (action links, as a GET
    /// rendered them, are not among them).
    pub links: Vec<InlineLink>,
    /// `X-OCCI-Location` values (mixin tagging).
    pub locations: Vec<String>,
    /// The JSON flavour the body was in.
    pub flavour: Option<Flavour>,
    /// pyOCNI's `{"providers": […]}`: the kinds it binds to a backend.
    pub providers: Vec<String>,
    /// How many resources a JSON body held (a create takes one).
    pub resources: usize,
    /// The body was in a text rendering (`text/plain`, `text/occi`), where
    /// a list or object value travels as a quoted string holding its JSON
    /// ([`Body::typed`]).
    pub text: bool,
}

impl Body {
    /// Attribute value `v` given for an attribute of type `ty`, as the
    /// model should check it: in a text rendering, a string holding a JSON
    /// list or object is that list or object for list, object and untyped
    /// attributes (GFD.185 and GFD.229 allow only strings, numbers and
    /// booleans there, so that is how such values travel).
    pub fn typed(&self, ty: &super::AttrType, v: &Value) -> Value {
        use super::AttrType;
        match v {
            Value::String(s)
                if self.text
                    && matches!(ty, AttrType::Array | AttrType::Object | AttrType::Any) =>
            {
                let t = s.trim_start();
                let json = (t.starts_with('[') || t.starts_with('{'))
                    .then(|| serde_json::from_str::<Value>(s).ok())
                    .flatten()
                    .filter(|_| super::json::check_integers(s.as_bytes()).is_ok());
                match (ty, json) {
                    (AttrType::Array, Some(j @ Value::Array(_)))
                    | (AttrType::Object, Some(j @ Value::Object(_)))
                    | (AttrType::Any, Some(j)) => j,
                    _ => v.clone(),
                }
            }
            _ => v.clone(),
        }
    }

    /// The body of inline link `link`: its categories and attributes, read
    /// as this body was (its rendering and flavour).
    pub fn of_link(&self, link: &InlineLink) -> Body {
        Body {
            categories: link.categories.clone(),
            attributes: link.attributes.clone(),
            flavour: self.flavour,
            text: self.text,
            resources: 1,
            ..Body::default()
        }
    }

    /// True if nothing was given.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
            && self.definitions.is_empty()
            && self.attributes.is_empty()
            && self.links.is_empty()
            && self.locations.is_empty()
            && self.providers.is_empty()
    }

    /// The references of `class` (or with no class given).
    pub fn refs(&self, class: Class) -> impl Iterator<Item = &CategoryRef> {
        self.categories
            .iter()
            .filter(move |c| c.class.is_none_or(|k| k == class))
    }
}
