//! The OCCI HTTP server: a [`Server`] built from a [`Model`], an
//! [`EntityStore`], an async handler per action and optional [`Hooks`] per
//! kind, served with axum. One handler reads every request: limits, the
//! OCCI version, credentials, the body in any rendering, then the path
//! (GFD.185 §3.6; GFD.223 §4–§5).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::body::{Body, CategoryRef};
use super::entity::{Entity, EntityStore};
use super::error::OcciError;
use super::media::{self, Flavour, Media};
use super::model::{Category, Class, Model, TypeId};
use super::render::Answer;
use super::{json, text};

/// A boxed future, as action handlers and hooks return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An action invocation handed to its handler.
pub struct ActionCall {
    /// The entity, as stored.
    pub entity: Entity,
    /// The action.
    pub action: TypeId,
    /// Its parameters (the invocation's attributes).
    pub parameters: BTreeMap<String, Value>,
    /// The store, for handlers that record progress while they run.
    pub store: Arc<dyn EntityStore>,
}

/// An action's handler: the entity after the action (stored if changed).
pub type ActionHandler =
    Arc<dyn Fn(ActionCall) -> BoxFuture<Result<Entity, OcciError>> + Send + Sync>;

/// What a kind's owner does when its entities are created, changed and
/// deleted; each may refuse with an error, and nothing is stored then.
pub trait Hooks: Send + Sync {
    /// Before a new entity is stored: the entity to store.
    fn create(&self, entity: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        Box::pin(async move { Ok(entity) })
    }
    /// Before a changed entity is stored: the entity to store.
    fn update(&self, old: Entity, new: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        let _ = old;
        Box::pin(async move { Ok(new) })
    }
    /// Before an entity is removed.
    fn delete(&self, entity: Entity) -> BoxFuture<Result<(), OcciError>> {
        let _ = entity;
        Box::pin(async move { Ok(()) })
    }
}

/// Checks a request's credentials: the user's name, or `None` (401).
pub trait Authenticator: Send + Sync {
    /// `authorization`: the `Authorization` header, if any.
    fn check(&self, authorization: Option<String>) -> BoxFuture<Option<String>>;
}

/// One request, for the log.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub target: String,
    /// The answer's status.
    pub status: StatusCode,
    /// The authenticated user.
    pub user: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: f64,
    /// The error's reason, for failures.
    pub reason: Option<String>,
}

/// The per-request log callback.
type LogFn = Arc<dyn Fn(&RequestLog) + Send + Sync>;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Body bytes (413 beyond).
    pub body: usize,
    /// Header bytes, all headers together (413 beyond).
    pub headers: usize,
    /// Attribute values in one request (413 beyond).
    pub attributes: usize,
    /// The largest page (`number`, 413 beyond).
    pub page: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: 1 << 20,
            headers: 64 << 10,
            attributes: 256,
            page: 1000,
        }
    }
}

/// Builds a [`Server`].
pub struct ServerBuilder {
    model: Model,
    store: Arc<dyn EntityStore>,
    actions: HashMap<TypeId, ActionHandler>,
    hooks: HashMap<TypeId, Arc<dyn Hooks>>,
    aliases: HashMap<String, String>,
    auth: Option<Arc<dyn Authenticator>>,
    base_url: String,
    flavour: Flavour,
    limits: Limits,
    name: String,
    log: Option<LogFn>,
    providers: Vec<TypeId>,
}

impl ServerBuilder {
    /// Adds a kind or mixin (and offers its actions once they are added).
    pub fn category(mut self, c: Category) -> ServerBuilder {
        self.model.add(c);
        self
    }

    /// Adds an action with its handler.
    pub fn action<F, Fut>(mut self, action: Category, handler: F) -> ServerBuilder
    where
        F: Fn(ActionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Entity, OcciError>> + Send + 'static,
    {
        self.actions.insert(
            action.id.clone(),
            Arc::new(move |call| Box::pin(handler(call))),
        );
        self.model.add(action);
        self
    }

    /// Another spelling of an action term in `?action=` (pyCMBS's
    /// `start_l31` for `start_l3.1`).
    pub fn alias(mut self, alias: &str, term: &str) -> ServerBuilder {
        self.aliases.insert(alias.to_owned(), term.to_owned());
        self
    }

    /// The hooks of `kind`'s entities.
    pub fn hooks(mut self, kind: &Category, hooks: Arc<dyn Hooks>) -> ServerBuilder {
        self.hooks.insert(kind.id.clone(), hooks);
        self
    }

    /// Kinds a pyOCNI `{"providers": […]}` document may bind (all kinds by
    /// default).
    pub fn providers(mut self, kinds: &[&Category]) -> ServerBuilder {
        self.providers = kinds.iter().map(|k| k.id.clone()).collect();
        self
    }

    /// Checks credentials on every request.
    pub fn authenticator(mut self, a: Arc<dyn Authenticator>) -> ServerBuilder {
        self.auth = Some(a);
        self
    }

    /// The JSON flavour of answers to requests without a JSON body.
    pub fn flavour(mut self, f: Flavour) -> ServerBuilder {
        self.flavour = f;
        self
    }

    /// Request limits.
    pub fn limits(mut self, l: Limits) -> ServerBuilder {
        self.limits = l;
        self
    }

    /// The product in `Server:` (`name/version`; ` OCCI/1.1 OCCI/1.2` follows).
    pub fn name(mut self, name: &str) -> ServerBuilder {
        self.name = name.to_owned();
        self
    }

    /// Called once per request, after its answer.
    pub fn log(mut self, f: impl Fn(&RequestLog) + Send + Sync + 'static) -> ServerBuilder {
        self.log = Some(Arc::new(f));
        self
    }

    /// The server; the client-defined mixins of the store are loaded back.
    pub fn build(mut self) -> Result<Arc<Server>, OcciError> {
        for m in self.store.user_mixins()? {
            self.model.add(m);
        }
        let server_header = HeaderValue::from_str(&format!("{} OCCI/1.1 OCCI/1.2", self.name))
            .map_err(|e| OcciError::internal(format!("bad server name: {e}")))?;
        Ok(Arc::new(Server {
            model: RwLock::new(self.model),
            store: self.store,
            actions: self.actions,
            hooks: self.hooks,
            aliases: self.aliases,
            auth: self.auth,
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            flavour: self.flavour,
            limits: self.limits,
            server_header,
            log: self.log,
            providers: self.providers,
            locks: Mutex::new(HashMap::new()),
        }))
    }
}

/// An OCCI server. Serve it with [`Server::router`] or [`Server::serve`].
pub struct Server {
    model: RwLock<Model>,
    store: Arc<dyn EntityStore>,
    actions: HashMap<TypeId, ActionHandler>,
    hooks: HashMap<TypeId, Arc<dyn Hooks>>,
    aliases: HashMap<String, String>,
    auth: Option<Arc<dyn Authenticator>>,
    base_url: String,
    flavour: Flavour,
    limits: Limits,
    server_header: HeaderValue,
    log: Option<LogFn>,
    providers: Vec<TypeId>,
    /// One lock per entity location, so that changes to one entity are
    /// serialised (an action's read, handler and write).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The query interface's paths (GFD.185 §3.4.1; RFC 5785).
const QUERY_PATHS: [&str; 2] = ["/-/", "/.well-known/org/ogf/occi/-/"];

/// What a path names.
enum Target {
    Query,
    Collection(Category),
    Entity(Category, String),
}

impl Server {
    /// A builder: entities in `store`, absolute URLs under `base_url`
    /// (`http://127.0.0.1:8090`).
    pub fn builder(base_url: &str, store: Arc<dyn EntityStore>) -> ServerBuilder {
        ServerBuilder {
            model: Model::new(),
            store,
            actions: HashMap::new(),
            hooks: HashMap::new(),
            aliases: HashMap::new(),
            auth: None,
            base_url: base_url.to_owned(),
            flavour: Flavour::PyOcni,
            limits: Limits::default(),
            name: concat!("rmbus/", env!("CARGO_PKG_VERSION")).to_owned(),
            log: None,
            providers: Vec::new(),
        }
    }

    /// A copy of the model as it stands.
    pub fn model(&self) -> Model {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EntityStore> {
        &self.store
    }

    /// The absolute URL of `location`.
    pub fn url(&self, location: &str) -> String {
        format!("{}{location}", self.base_url)
    }

    /// An axum router that sends every request to this server.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(self))
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    async fn lock(&self, location: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            Arc::clone(locks.entry(location.to_owned()).or_default())
        };
        m.lock_owned().await
    }

    fn target(&self, model: &Model, path: &str) -> Option<Target> {
        if QUERY_PATHS.contains(&path) {
            return Some(Target::Query);
        }
        if let Some(c) = model.at_location(path) {
            return Some(Target::Collection(c.clone()));
        }
        let (dir, id) = path.rsplit_once('/')?;
        let kind = model.at_location(&format!("{dir}/"))?;
        (kind.class == Class::Kind && !id.is_empty())
            .then(|| Target::Entity(kind.clone(), id.to_owned()))
    }
}

/// The axum handler of every request.
async fn handle(State(server): State<Arc<Server>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Errors before negotiation are in the Accept'ed rendering if it is one
    // we make, else text/plain.
    let fallback = Answer {
        media: media::negotiate(accept.as_deref(), true).unwrap_or(Media::Plain),
        flavour: server.flavour,
    };
    let mut user = None;
    let result = serve_request(&server, req, &accept, &mut user).await;
    let (mut response, reason) = match result {
        Ok(r) => (r, None),
        Err((e, answer)) => {
            let mut r = answer.unwrap_or(fallback).error(&e);
            if e.status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"rmbus\""),
                );
            }
            (r, Some(e.reason))
        }
    };
    response
        .headers_mut()
        .insert(header::SERVER, server.server_header.clone());
    if let Some(log) = &server.log {
        log(&RequestLog {
            method,
            target,
            status: response.status(),
            user,
            millis: started.elapsed().as_secs_f64() * 1000.0,
            reason,
        });
    }
    response
}

type Failed = (OcciError, Option<Answer>);

/// The OCCI version a `User-Agent` announces, if any.
fn occi_version(agent: &str) -> Option<(u32, u32)> {
    let at = agent.find("OCCI/")?;
    let v = &agent[at + 5..];
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (major, minor) = v[..end].split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

async fn serve_request(
    server: &Arc<Server>,
    req: Request,
    accept: &Option<String>,
    user: &mut Option<String>,
) -> Result<Response, Failed> {
    let plain = |e: OcciError| (e, None);
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > server.limits.headers {
        return Err(plain(OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the headers take {header_bytes} bytes; at most {} are read",
                server.limits.headers
            ),
        )));
    }
    if let Some(agent) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(v) = occi_version(agent) {
            if v > (1, 2) {
                return Err(plain(OcciError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    format!(
                        "OCCI/{}.{} is not supported; this server speaks OCCI/1.1 and OCCI/1.2",
                        v.0, v.1
                    ),
                )));
            }
        }
    }
    if let Some(auth) = &server.auth {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let had = given.is_some();
        match auth.check(given).await {
            Some(name) => *user = Some(name),
            None => {
                return Err(plain(OcciError::new(
                    StatusCode::UNAUTHORIZED,
                    if had {
                        "bad credentials"
                    } else {
                        "credentials required (HTTP Basic)"
                    },
                )))
            }
        }
    }
    let model = server.model();
    let path = req.uri().path().to_owned();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let target = server
        .target(&model, &path)
        .ok_or_else(|| plain(OcciError::not_found(format!("nothing at {path}"))))?;
    let listing = match &target {
        Target::Collection(_) => !query.iter().any(|(k, _)| k == "action"),
        _ => false,
    };
    let mut answer = Answer {
        media: media::negotiate(accept.as_deref(), listing).map_err(plain)?,
        flavour: server.flavour,
    };
    let method = req.method().clone();
    let (parts, raw) = req.into_parts();
    let body = read_body(
        server,
        &model,
        &parts.headers,
        raw,
        matches!(target, Target::Query),
    )
    .await
    .map_err(|e| (e, Some(answer)))?;
    if let Some(f) = body.flavour {
        answer.flavour = f;
    }
    let fail = |e: OcciError| (e, Some(answer));
    let action = query
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.clone());
    match target {
        Target::Query => server
            .query(&model, &method, body, answer)
            .await
            .map_err(fail),
        Target::Collection(c) => {
            if let Some(term) = action {
                if method != Method::POST {
                    return Err(fail(OcciError::method_not_allowed(
                        "POST",
                        "actions are triggered with POST",
                    )));
                }
                server
                    .collection_action(&model, &c, &term, body, answer)
                    .await
                    .map_err(fail)
            } else {
                server
                    .collection(&model, &c, &method, &query, body, answer)
                    .await
                    .map_err(fail)
            }
        }
        Target::Entity(kind, id) => {
            let location = format!("{}{id}", kind.location.as_deref().unwrap_or("/"));
            if let Some(term) = action {
                if method != Method::POST {
                    return Err(fail(OcciError::method_not_allowed(
                        "POST",
                        "actions are triggered with POST",
                    )));
                }
                let _guard = server.lock(&location).await;
                let e = server
                    .store
                    .get(&location)
                    .map_err(|e| fail(e.into()))?
                    .ok_or_else(|| {
                        fail(OcciError::not_found(format!("no entity at {location}")))
                    })?;
                let e = server
                    .run_action(&model, e, &term, &body)
                    .await
                    .map_err(fail)?;
                let actions = model.actions_of(&e.kind, &e.mixins);
                Ok(answer.entity(
                    StatusCode::OK,
                    &e,
                    &server.url(&e.location),
                    &model,
                    &actions,
                ))
            } else {
                server
                    .entity(&model, &kind, &id, &location, &method, body, answer)
                    .await
                    .map_err(fail)
            }
        }
    }
}

/// Reads the body (in the rendering its `Content-Type` names), and the
/// text/occi headers of the request.
async fn read_body(
    server: &Server,
    model: &Model,
    headers: &HeaderMap,
    raw: HttpBody,
    query: bool,
) -> Result<Body, OcciError> {
    let too_big = || {
        OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} bytes", server.limits.body),
        )
    };
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > server.limits.body {
            return Err(too_big());
        }
    }
    let bytes = axum::body::to_bytes(raw, server.limits.body)
        .await
        .map_err(|_| too_big())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let media = content_type.map(media::request_media);
    let has_text_headers = headers.keys().any(|k| {
        matches!(
            k.as_str(),
            "category" | "x-occi-attribute" | "x-occi-location" | "link"
        )
    });
    let body_empty = bytes.iter().all(u8::is_ascii_whitespace);
    let mut body = match (media, body_empty) {
        (Some(None), false) => {
            return Err(OcciError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "cannot read a {} body; send text/plain, text/occi, text/uri-list or application/occi+json",
                    content_type.unwrap_or("")
                ),
            ))
        }
        (None, false) => {
            return Err(OcciError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a body without Content-Type; send text/plain, text/occi or application/occi+json",
            ))
        }
        (Some(Some(Media::Json)), false) => json::parse(&bytes, model, query)?,
        (Some(Some(Media::Plain)), false) => {
            let s = std::str::from_utf8(&bytes)
                .map_err(|_| OcciError::bad_request("the body is not UTF-8"))?;
            text::parse_plain(s, query)?
        }
        (Some(Some(Media::UriList)), false) => {
            let s = std::str::from_utf8(&bytes)
                .map_err(|_| OcciError::bad_request("the body is not UTF-8"))?;
            text::parse_uri_list(s)
        }
        _ => Body::default(),
    };
    if has_text_headers && body.is_empty() {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        body = text::parse(pairs, query)?;
    }
    let n = body.attributes.len() + body.locations.len() + body.definitions.len();
    if n > server.limits.attributes {
        return Err(OcciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{n} values in one request; at most {} are taken",
                server.limits.attributes
            ),
        ));
    }
    Ok(body)
}

/// Resolves a category reference of `class` in `model`.
fn resolve<'a>(model: &'a Model, r: &CategoryRef, class: Class) -> Result<&'a Category, OcciError> {
    model
        .find(r.scheme.as_deref(), &r.term)
        .filter(|c| c.class == class)
        .ok_or_else(|| {
            OcciError::bad_request(format!(
                "unknown {} {}{}",
                class.as_str(),
                r.scheme.as_deref().unwrap_or(""),
                r.term
            ))
        })
}

/// A client-chosen id: letters, digits and `-._~`, at most 128 characters.
fn check_id(id: &str) -> Result<(), OcciError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OcciError::bad_request(format!(
            "bad id {id:?}: use letters, digits and -._~ (at most 128)"
        )))
    }
}

fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

impl Server {
    fn hooks_of(&self, kind: &TypeId) -> Option<&Arc<dyn Hooks>> {
        self.hooks.get(kind)
    }

    /// The query interface: GET lists (filtered by categories), POST
    /// defines mixins (and accepts what exists), PUT takes pyOCNI's
    /// providers document, DELETE removes client mixins.
    async fn query(
        &self,
        model: &Model,
        method: &Method,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        match *method {
            Method::GET | Method::HEAD => {
                let wanted: Vec<TypeId> = body.definitions.iter().map(|d| d.id.clone()).collect();
                let cats: Vec<&Category> = model
                    .iter()
                    .filter(|c| wanted.is_empty() || wanted.contains(&c.id))
                    .collect();
                Ok(answer.categories(&cats))
            }
            Method::POST | Method::PUT if !body.providers.is_empty() => {
                for p in &body.providers {
                    let known = TypeId::parse(p)
                        .and_then(|id| model.get(&id))
                        .filter(|c| c.class == Class::Kind)
                        .filter(|c| self.providers.is_empty() || self.providers.contains(&c.id));
                    if known.is_none() {
                        return Err(OcciError::bad_request(format!(
                            "{p} is not a kind this server provides"
                        )));
                    }
                }
                Ok(answer.ok())
            }
            Method::POST => {
                if body.definitions.is_empty() {
                    return Err(OcciError::bad_request("no category given"));
                }
                let mut new = Vec::new();
                for d in &body.definitions {
                    match model.get(&d.id) {
                        Some(ours) => compatible(ours, d)?,
                        None if d.class == Class::Mixin => {
                            let loc = d.location.as_deref().ok_or_else(|| {
                                OcciError::bad_request(format!("mixin {} needs a location", d.id))
                            })?;
                            let ok_loc =
                                loc.starts_with('/') && loc.ends_with('/') && loc.len() > 2;
                            if !ok_loc || QUERY_PATHS.contains(&loc) {
                                return Err(OcciError::bad_request(format!(
                                    "mixin {}: location {loc:?} must be a path like /name/",
                                    d.id
                                )));
                            }
                            if model.at_location(loc).is_some() {
                                return Err(OcciError::conflict(format!("{loc} is taken")));
                            }
                            if !d.attributes.is_empty() || !d.actions.is_empty() {
                                return Err(OcciError::bad_request(
                                    "a client mixin is a tag: it has no attributes or actions",
                                ));
                            }
                            let mut m = d.clone();
                            m.user_defined = true;
                            m.rel.retain(|r| model.get(r).is_some());
                            new.push(m);
                        }
                        None => {
                            return Err(OcciError::bad_request(format!(
                                "{} is not a {} of this server; clients may define mixins only",
                                d.id,
                                d.class.as_str()
                            )))
                        }
                    }
                }
                for m in new {
                    self.store.put_user_mixin(&m)?;
                    self.model.write().unwrap_or_else(|p| p.into_inner()).add(m);
                }
                Ok(answer.ok())
            }
            Method::DELETE => {
                if body.definitions.is_empty() {
                    return Err(OcciError::bad_request("no mixin given"));
                }
                for d in &body.definitions {
                    match model.get(&d.id) {
                        None => return Err(OcciError::not_found(format!("no category {}", d.id))),
                        Some(c) if !c.user_defined => {
                            return Err(OcciError::forbidden(format!(
                                "{} is defined by the server and cannot be removed",
                                d.id
                            )))
                        }
                        Some(_) => {}
                    }
                }
                for d in &body.definitions {
                    for mut e in self.store.list()? {
                        if e.has_mixin(&d.id) {
                            let _g = self.lock(&e.location).await;
                            e.mixins.retain(|m| *m != d.id);
                            self.store.replace(&e)?;
                        }
                    }
                    self.store.remove_user_mixin(&d.id)?;
                    self.model
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&d.id);
                }
                Ok(answer.ok())
            }
            _ => Err(OcciError::method_not_allowed(
                "GET, HEAD, POST, PUT, DELETE",
                "the query interface takes GET, POST, PUT (providers) and DELETE",
            )),
        }
    }

    /// The entities a collection holds, filtered by the request's
    /// categories and attributes, in location order.
    fn members(&self, model: &Model, c: &Category, body: &Body) -> Result<Vec<Entity>, OcciError> {
        let mut filters = Vec::new();
        for r in &body.categories {
            let found = model.find(r.scheme.as_deref(), &r.term).ok_or_else(|| {
                OcciError::bad_request(format!("unknown category {} in the filter", r.term))
            })?;
            filters.push(found.clone());
        }
        let mut out: Vec<Entity> = self
            .store
            .list()?
            .into_iter()
            .filter(|e| match c.class {
                Class::Kind => model.is_a(&e.kind, &c.id),
                _ => e.has_mixin(&c.id),
            })
            .filter(|e| {
                filters.iter().all(|f| match f.class {
                    Class::Kind => model.is_a(&e.kind, &f.id),
                    Class::Mixin => e.has_mixin(&f.id),
                    Class::Action => model
                        .actions_of(&e.kind, &e.mixins)
                        .iter()
                        .any(|a| a.id == f.id),
                })
            })
            .filter(|e| {
                body.attributes.iter().all(|(k, v)| {
                    let have = if k == "occi.core.id" {
                        Some(Value::String(e.id.clone()))
                    } else {
                        e.attributes.get(k).cloned()
                    };
                    match have {
                        Some(Value::Array(items)) if !v.is_array() => items.contains(v),
                        Some(h) => h == *v || h.as_str().is_some_and(|s| Some(s) == v.as_str()),
                        None => false,
                    }
                })
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    async fn collection(
        &self,
        model: &Model,
        c: &Category,
        method: &Method,
        query: &[(String, String)],
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        let allow = if c.class == Class::Kind {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD, POST, PUT, DELETE"
        };
        match (method.clone(), c.class) {
            (Method::GET | Method::HEAD, _) => {
                let mut list = self.members(model, c, &body)?;
                let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
                if get("page").is_some() || get("number").is_some() {
                    let number: usize = get("number")
                        .unwrap_or("100")
                        .parse()
                        .map_err(|_| OcciError::bad_request("number must be a positive integer"))?;
                    let page: usize = get("page")
                        .unwrap_or("1")
                        .parse()
                        .map_err(|_| OcciError::bad_request("page must be a positive integer"))?;
                    if number == 0 || page == 0 {
                        return Err(OcciError::bad_request("page and number start at 1"));
                    }
                    if number > self.limits.page {
                        return Err(OcciError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("number={number}: a page holds at most {}", self.limits.page),
                        ));
                    }
                    list = list
                        .into_iter()
                        .skip((page - 1).saturating_mul(number))
                        .take(number)
                        .collect();
                }
                let rows: Vec<(Entity, String, Vec<&Category>)> = list
                    .into_iter()
                    .map(|e| {
                        let url = self.url(&e.location);
                        let actions = model.actions_of(&e.kind, &e.mixins);
                        (e, url, actions)
                    })
                    .collect();
                Ok(answer.listing(&rows))
            }
            (Method::POST, Class::Kind) => {
                let e = self.create(model, c, body, None).await?;
                let actions = model.actions_of(&e.kind, &e.mixins);
                Ok(answer.created(&e, &self.url(&e.location), model, &actions))
            }
            (Method::POST | Method::PUT | Method::DELETE, Class::Mixin) => {
                self.tag(model, c, method, body).await?;
                Ok(answer.ok())
            }
            _ => Err(OcciError::method_not_allowed(
                allow,
                format!("{} takes {allow}", c.location.as_deref().unwrap_or("")),
            )),
        }
    }

    /// Mixin tagging: POST adds the mixin to the listed entities, PUT makes
    /// them the only ones, DELETE takes it away from them (GFD.185 §3.4.3).
    async fn tag(
        &self,
        model: &Model,
        mixin: &Category,
        method: &Method,
        body: Body,
    ) -> Result<(), OcciError> {
        let mut listed = Vec::new();
        for l in &body.locations {
            let path = l.strip_prefix(&self.base_url).unwrap_or(l).to_owned();
            let e = self
                .store
                .get(&path)?
                .ok_or_else(|| OcciError::bad_request(format!("no entity at {l}")))?;
            if e.read_only {
                return Err(OcciError::method_not_allowed(
                    "GET, HEAD, POST",
                    format!("{l} is read-only here"),
                ));
            }
            if !mixin.applies.is_empty() && !mixin.applies.iter().any(|k| model.is_a(&e.kind, k)) {
                return Err(OcciError::bad_request(format!(
                    "{} does not apply to {l}",
                    mixin.id
                )));
            }
            listed.push(path);
        }
        let mut changes: Vec<(String, bool)> = Vec::new();
        match *method {
            Method::POST => changes.extend(listed.iter().map(|p| (p.clone(), true))),
            Method::DELETE => changes.extend(listed.iter().map(|p| (p.clone(), false))),
            _ => {
                for e in self.store.list()? {
                    if e.has_mixin(&mixin.id) && !listed.contains(&e.location) {
                        changes.push((e.location.clone(), false));
                    }
                }
                changes.extend(listed.iter().map(|p| (p.clone(), true)));
            }
        }
        for (path, add) in changes {
            let _g = self.lock(&path).await;
            let Some(mut e) = self.store.get(&path)? else {
                continue;
            };
            let had = e.has_mixin(&mixin.id);
            if add && !had {
                e.mixins.push(mixin.id.clone());
            } else if !add && had {
                e.mixins.retain(|m| *m != mixin.id);
            } else {
                continue;
            }
            self.store.replace(&e)?;
        }
        Ok(())
    }

    /// Checks and completes a new entity's attributes.
    fn new_entity(
        &self,
        model: &Model,
        kind: &Category,
        body: &Body,
        url_id: Option<String>,
    ) -> Result<Entity, OcciError> {
        if body.resources > 1 {
            return Err(OcciError::bad_request("one resource per request"));
        }
        if !body.resource_links.is_empty() {
            return Err(OcciError::bad_request(
                "links are not supported by this server",
            ));
        }
        if body
            .refs(Class::Action)
            .any(|r| r.class == Some(Class::Action))
        {
            return Err(OcciError::bad_request(
                "an action category in a create; trigger actions with ?action=",
            ));
        }
        let kinds: Vec<&CategoryRef> = body
            .categories
            .iter()
            .filter(|r| {
                r.class == Some(Class::Kind)
                    || (r.class.is_none()
                        && model
                            .find(r.scheme.as_deref(), &r.term)
                            .is_some_and(|c| c.class == Class::Kind))
            })
            .collect();
        if kinds.len() > 1 {
            return Err(OcciError::bad_request("more than one kind given"));
        }
        if let Some(k) = kinds.first() {
            let k = resolve(model, k, Class::Kind)?;
            if k.id != kind.id {
                return Err(OcciError::bad_request(format!(
                    "{} entities are not created at {}",
                    k.id,
                    kind.location.as_deref().unwrap_or("")
                )));
            }
        }
        let mut mixins = Vec::new();
        for r in body.categories.iter().filter(|r| !kinds.contains(r)) {
            let m = resolve(model, r, Class::Mixin)?;
            if !m.applies.is_empty() && !m.applies.iter().any(|k| model.is_a(&kind.id, k)) {
                return Err(OcciError::bad_request(format!(
                    "{} does not apply to {}",
                    m.id, kind.id
                )));
            }
            if !mixins.contains(&m.id) {
                mixins.push(m.id.clone());
            }
        }
        let given_id = body
            .attributes
            .iter()
            .find(|(k, _)| k == "occi.core.id")
            .map(|(_, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| OcciError::bad_request("occi.core.id must be a string"))
            })
            .transpose()?;
        let id = match (given_id, url_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(OcciError::bad_request(format!(
                    "the body's id {a} is not the URL's {b}"
                )))
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => new_id(),
        };
        check_id(&id)?;
        let location = format!("{}{id}", kind.location.as_deref().unwrap_or("/"));
        let mut e = Entity::new(&id, &location, kind.id.clone());
        e.mixins = mixins;
        let defs = model.attributes_of(&kind.id, &e.mixins);
        for (name, value) in &body.attributes {
            if name == "occi.core.id" {
                continue;
            }
            let def = defs.iter().find(|a| a.name == *name).ok_or_else(|| {
                OcciError::bad_request(format!("unknown attribute {name} for {}", kind.id))
            })?;
            let value = def
                .ty
                .check(name, value.clone())
                .map_err(OcciError::bad_request)?;
            if !def.mutable && Some(&value) != def.default.as_ref() {
                return Err(OcciError::forbidden(format!("{name} is set by the server")));
            }
            e.attributes.insert(name.clone(), value);
        }
        for def in defs {
            if def.name == "occi.core.id" || e.attributes.contains_key(&def.name) {
                continue;
            }
            if def.required {
                return Err(OcciError::bad_request(format!("{} is required", def.name)));
            }
            if let Some(d) = &def.default {
                e.attributes.insert(def.name.clone(), d.clone());
            }
        }
        Ok(e)
    }

    async fn create(
        &self,
        model: &Model,
        kind: &Category,
        body: Body,
        url_id: Option<String>,
    ) -> Result<Entity, OcciError> {
        if kind.id.scheme == super::model::CORE_SCHEME {
            return Err(OcciError::bad_request(format!(
                "{} entities are not created directly",
                kind.id
            )));
        }
        let e = self.new_entity(model, kind, &body, url_id)?;
        let _g = self.lock(&e.location).await;
        if self.store.get(&e.location)?.is_some() {
            return Err(OcciError::conflict(format!(
                "{} already exists",
                self.url(&e.location)
            )));
        }
        let e = match self.hooks_of(&kind.id) {
            Some(h) => h.create(e).await?,
            None => e,
        };
        if let Err(err) = self.store.insert(&e) {
            if let Some(h) = self.hooks_of(&kind.id) {
                let _ = h.delete(e.clone()).await;
            }
            return Err(err.into());
        }
        Ok(e)
    }

    /// PUT (full) or POST (partial) update of `old`.
    fn updated(
        &self,
        model: &Model,
        old: &Entity,
        body: &Body,
        full: bool,
    ) -> Result<Entity, OcciError> {
        if !body.resource_links.is_empty() {
            return Err(OcciError::bad_request(
                "links are not supported by this server",
            ));
        }
        if body.resources > 1 {
            return Err(OcciError::bad_request("one resource per request"));
        }
        let mut e = old.clone();
        let mut mixins = if full { Vec::new() } else { old.mixins.clone() };
        for r in &body.categories {
            let c = model
                .find(r.scheme.as_deref(), &r.term)
                .ok_or_else(|| OcciError::bad_request(format!("unknown category {}", r.term)))?;
            match c.class {
                Class::Kind if c.id != old.kind => {
                    return Err(OcciError::bad_request(format!(
                        "the kind of {} cannot change",
                        old.id
                    )))
                }
                Class::Kind => {}
                Class::Mixin => {
                    if !c.applies.is_empty() && !c.applies.iter().any(|k| model.is_a(&old.kind, k))
                    {
                        return Err(OcciError::bad_request(format!(
                            "{} does not apply to {}",
                            c.id, old.kind
                        )));
                    }
                    if !mixins.contains(&c.id) {
                        mixins.push(c.id.clone());
                    }
                }
                Class::Action => {
                    return Err(OcciError::bad_request("trigger actions with ?action="))
                }
            }
        }
        e.mixins = mixins;
        let defs = model.attributes_of(&e.kind, &e.mixins);
        if full {
            e.attributes
                .retain(|k, _| defs.iter().any(|d| d.name == *k && !d.mutable));
            for d in &defs {
                if d.mutable && !body.attributes.iter().any(|(k, _)| *k == d.name) {
                    if let Some(v) = &d.default {
                        e.attributes.insert(d.name.clone(), v.clone());
                    }
                }
            }
        }
        for (name, value) in &body.attributes {
            if name == "occi.core.id" {
                if value.as_str() != Some(&old.id) {
                    return Err(OcciError::forbidden("occi.core.id cannot change"));
                }
                continue;
            }
            let def = defs.iter().find(|a| a.name == *name).ok_or_else(|| {
                OcciError::bad_request(format!("unknown attribute {name} for {}", e.kind))
            })?;
            let value = def
                .ty
                .check(name, value.clone())
                .map_err(OcciError::bad_request)?;
            if !def.mutable {
                if old.attributes.get(name) != Some(&value) {
                    return Err(OcciError::forbidden(format!("{name} is immutable")));
                }
                continue;
            }
            e.attributes.insert(name.clone(), value);
        }
        for d in &defs {
            if d.required && d.name != "occi.core.id" && !e.attributes.contains_key(&d.name) {
                return Err(OcciError::bad_request(format!("{} is required", d.name)));
            }
        }
        // Attributes of mixins taken away go with them.
        e.attributes
            .retain(|k, _| defs.iter().any(|d| d.name == *k));
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    async fn entity(
        &self,
        model: &Model,
        kind: &Category,
        id: &str,
        location: &str,
        method: &Method,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        let current = self.store.get(location)?;
        let url = self.url(location);
        let render = |e: &Entity, status| {
            let actions = model.actions_of(&e.kind, &e.mixins);
            answer.entity(status, e, &url, model, &actions)
        };
        let read_only = |e: &Entity| {
            if e.read_only {
                Err(OcciError::method_not_allowed(
                    "GET, HEAD, POST",
                    format!(
                        "{url} is read-only here: it can be read and its actions run, not changed"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match (method.clone(), current) {
            (Method::GET | Method::HEAD, Some(e)) => Ok(render(&e, StatusCode::OK)),
            (Method::PUT, None) => {
                let e = self.create(model, kind, body, Some(id.to_owned())).await?;
                let actions = model.actions_of(&e.kind, &e.mixins);
                Ok(answer.created(&e, &url, model, &actions))
            }
            (Method::PUT | Method::POST, Some(_)) => {
                let _g = self.lock(location).await;
                let old = self
                    .store
                    .get(location)?
                    .ok_or_else(|| OcciError::not_found(format!("no entity at {location}")))?;
                read_only(&old)?;
                let new = self.updated(model, &old, &body, *method == Method::PUT)?;
                let new = match self.hooks_of(&old.kind) {
                    Some(h) => h.update(old, new).await?,
                    None => new,
                };
                self.store.replace(&new)?;
                Ok(render(&new, StatusCode::OK))
            }
            (Method::DELETE, Some(_)) => {
                let _g = self.lock(location).await;
                let Some(old) = self.store.get(location)? else {
                    return Err(OcciError::not_found(format!("no entity at {location}")));
                };
                read_only(&old)?;
                if let Some(h) = self.hooks_of(&old.kind) {
                    h.delete(old.clone()).await?;
                }
                self.store.remove(location)?;
                Ok(answer.ok())
            }
            (Method::GET | Method::HEAD | Method::POST | Method::DELETE, None) => {
                Err(OcciError::not_found(format!("no entity at {location}")))
            }
            _ => Err(OcciError::method_not_allowed(
                "GET, HEAD, POST, PUT, DELETE",
                "an entity takes GET, POST, PUT and DELETE",
            )),
        }
    }

    /// Runs action `term` on `e` (its lock held by the caller) and stores
    /// what it changed.
    async fn run_action(
        &self,
        model: &Model,
        e: Entity,
        term: &str,
        body: &Body,
    ) -> Result<Entity, OcciError> {
        let term = self.aliases.get(term).map_or(term, String::as_str);
        let offered = model.actions_of(&e.kind, &e.mixins);
        let action = offered.iter().find(|a| a.id.term == term).ok_or_else(|| {
            let terms: Vec<&str> = offered.iter().map(|a| a.id.term.as_str()).collect();
            OcciError::bad_request(format!(
                "action {term} is not offered by {}; it offers {}",
                self.url(&e.location),
                if terms.is_empty() {
                    "none".to_owned()
                } else {
                    terms.join(", ")
                }
            ))
        })?;
        for r in body.categories.iter() {
            let named = self
                .aliases
                .get(&r.term)
                .map_or(r.term.as_str(), String::as_str);
            if named != term || r.scheme.as_ref().is_some_and(|s| *s != action.id.scheme) {
                return Err(OcciError::bad_request(format!(
                    "the body names action {}{}, the URL {term}",
                    r.scheme.as_deref().unwrap_or(""),
                    r.term
                )));
            }
        }
        let mut parameters = BTreeMap::new();
        for (k, v) in &body.attributes {
            let def = action
                .attributes
                .iter()
                .find(|a| a.name == *k)
                .ok_or_else(|| {
                    OcciError::bad_request(format!("action {term} has no parameter {k}"))
                })?;
            parameters.insert(
                k.clone(),
                def.ty.check(k, v.clone()).map_err(OcciError::bad_request)?,
            );
        }
        let handler = self.actions.get(&action.id).ok_or_else(|| {
            OcciError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("action {} has no handler", action.id),
            )
        })?;
        let before = e.clone();
        let after = handler(ActionCall {
            entity: e,
            action: action.id.clone(),
            parameters,
            store: Arc::clone(&self.store),
        })
        .await?;
        if after != before && !after.read_only {
            self.store.replace(&after)?;
        }
        Ok(after)
    }

    /// An action on every entity of a collection, one after the other; the
    /// answer lists each entity's result (nothing is rolled back).
    async fn collection_action(
        &self,
        model: &Model,
        c: &Category,
        term: &str,
        body: Body,
        answer: Answer,
    ) -> Result<Response, OcciError> {
        let mut filter = body.clone();
        filter.categories.clear();
        filter.attributes.clear();
        let mut results = Vec::new();
        for e in self.members(model, c, &filter)? {
            let url = self.url(&e.location);
            let _g = self.lock(&e.location).await;
            let r = match self.store.get(&e.location)? {
                Some(e) => self.run_action(model, e, term, &body).await.map(|_| ()),
                None => Err(OcciError::not_found("gone meanwhile")),
            };
            results.push((url, r));
        }
        Ok(answer.results(&results))
    }
}

/// Checks that a category a client registers matches ours: the same
/// class and location, and each attribute it declares one of ours with a
/// compatible type (pyCMBS declares every scalar a String) and each action
/// one we offer.
fn compatible(ours: &Category, theirs: &Category) -> Result<(), OcciError> {
    use super::model::AttrType as T;
    let conflict =
        |what: String| OcciError::conflict(format!("{} conflicts with ours: {what}", theirs.id));
    if ours.class != theirs.class {
        return Err(conflict(format!("ours is a {}", ours.class.as_str())));
    }
    if let Some(l) = &theirs.location {
        if ours.location.as_ref() != Some(l) {
            return Err(conflict(format!(
                "location {l}, ours is {}",
                ours.location.as_deref().unwrap_or("none")
            )));
        }
    }
    for a in &theirs.attributes {
        let Some(o) = ours.attributes.iter().find(|o| o.name == a.name) else {
            return Err(conflict(format!("attribute {} is not ours", a.name)));
        };
        let fits = matches!(
            (&a.ty, &o.ty),
            (_, T::Any)
                | (T::String, T::String | T::Enum(_) | T::Boolean | T::Number)
                | (T::Number, T::Number)
                | (T::Boolean, T::Boolean)
                | (T::Array, T::Array)
                | (T::Object, T::Object)
        );
        if !fits {
            return Err(conflict(format!(
                "attribute {} is a {}, ours a {}",
                a.name,
                a.ty.json_name(),
                o.ty.json_name()
            )));
        }
    }
    for act in &theirs.actions {
        if !ours.actions.contains(act) {
            return Err(conflict(format!("action {act} is not ours")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_user_agent() {
        assert_eq!(occi_version("pOCCI/1.0 OCCI/1.1"), Some((1, 1)));
        assert_eq!(occi_version("x OCCI/9.9 y"), Some((9, 9)));
        assert_eq!(occi_version("curl/8.0"), None);
        assert!(occi_version("OCCI/1.3").unwrap() > (1, 2));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("996ad860-2a9a-504f-8861-aeafd0b2ae29").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
