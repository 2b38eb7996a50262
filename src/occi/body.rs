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

/// A request's content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    /// Category references (kind, mixins, action, filters).
    pub categories: Vec<CategoryRef>,
    /// Full category definitions (at the query interface).
    pub definitions: Vec<Category>,
    /// Attribute values, flat names, in the order given.
    pub attributes: Vec<(String, Value)>,
    /// Targets of links that are not action links (we do not create links).
    pub resource_links: Vec<String>,
    /// `X-OCCI-Location` values (mixin tagging).
    pub locations: Vec<String>,
    /// The JSON flavour the body was in.
    pub flavour: Option<Flavour>,
    /// pyOCNI's `{"providers": […]}`: the kinds it binds to a backend.
    pub providers: Vec<String>,
    /// How many resources a JSON body held (a create takes one).
    pub resources: usize,
}

impl Body {
    /// True if nothing was given.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
            && self.definitions.is_empty()
            && self.attributes.is_empty()
            && self.resource_links.is_empty()
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
