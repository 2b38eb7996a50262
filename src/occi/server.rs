//! The OCCI HTTP server: a [`Server`] built from a [`Model`], an
//! [`EntityStore`], an async handler per action and optional [`Hooks`] per
//! kind, served with axum; one handler (`request`) reads every request and
//! hands it to the query interface, a collection or an entity.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::{HeaderValue, Method, StatusCode};
use serde_json::Value;

use super::entity::{Entity, EntityStore};
use super::error::OcciError;
use super::media::Flavour;
use super::model::{Category, Class, Model, TypeId};

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
/// deleted; each may refuse with an error, and nothing is stored then,
/// except that a link's delete hook cannot keep a link whose source or
/// target is being deleted (its refusal is logged). A resource's delete
/// hook runs before those of its links. Hooks run with the entity locked
/// (a link's also with its ends locked): a hook must not call
/// [`Server::modify`] on them.
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

/// Why an [`Authenticator`] did not take a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials (401).
    Missing,
    /// Wrong or unreadable credentials (401).
    Wrong,
    /// Too many checks at once: come back after this long (503).
    Busy(std::time::Duration),
    /// Too many wrong credentials from this client: shut out for this
    /// long (429).
    Throttled(std::time::Duration),
}

/// Checks a request's credentials: the user's name, or why not.
pub trait Authenticator: Send + Sync {
    /// `authorization`: the `Authorization` header's bytes, if any;
    /// `client`: the client's address, when the listener knows it.
    fn check(
        &self,
        authorization: Option<Vec<u8>>,
        client: Option<std::net::IpAddr>,
    ) -> BoxFuture<Result<String, Refusal>>;
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
    /// How long a request body may take to arrive (408 beyond).
    pub body_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: 1 << 20,
            headers: 64 << 10,
            attributes: 256,
            page: 1000,
            body_timeout: std::time::Duration::from_secs(30),
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
            // Stored before names were checked: a mixin outside the
            // grammar is left out, and said so.
            let location = m
                .location
                .as_deref()
                .map_or(Ok(()), super::model::check_location);
            if let Err(e) = m.id.check().and(location) {
                tracing::warn!("the stored client mixin {} is left out: {e}", m.id);
                continue;
            }
            self.model.add(m);
        }
        let server_header = HeaderValue::from_str(&format!("{} OCCI/1.1 OCCI/1.2", self.name))
            .map_err(|e| OcciError::internal(format!("bad server name: {e}")))?;
        Ok(Arc::new(Server {
            model: RwLock::new(Arc::new(self.model)),
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
            kept: super::kept::KeptAnswers::default(),
        }))
    }
}

/// An OCCI server. Serve it with [`Server::router`] or [`Server::serve`].
pub struct Server {
    /// The categories; requests take a snapshot, changes swap it.
    pub(super) model: RwLock<Arc<Model>>,
    pub(super) store: Arc<dyn EntityStore>,
    pub(super) actions: HashMap<TypeId, ActionHandler>,
    pub(super) hooks: HashMap<TypeId, Arc<dyn Hooks>>,
    pub(super) aliases: HashMap<String, String>,
    pub(super) auth: Option<Arc<dyn Authenticator>>,
    pub(super) base_url: String,
    pub(super) flavour: Flavour,
    pub(super) limits: Limits,
    pub(super) server_header: HeaderValue,
    pub(super) log: Option<LogFn>,
    pub(super) providers: Vec<TypeId>,
    /// One lock per entity location, so that changes to one entity are
    /// serialised (an action's read, handler and write).
    pub(super) locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Listings and renderings kept until the store changes.
    pub(super) kept: super::kept::KeptAnswers,
}

/// The query interface's paths (GFD.185 §3.4.1; RFC 5785).
pub(super) const QUERY_PATHS: [&str; 2] = ["/-/", "/.well-known/org/ogf/occi/-/"];

/// What a path names.
pub(super) enum Target<'m> {
    Query,
    /// `/`, the name-space's root.
    Root,
    Collection(&'m Category),
    Entity(&'m Category, String),
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

    /// The model as it stands (a snapshot).
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&self.model.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EntityStore> {
        &self.store
    }

    /// The absolute URL of `location`.
    pub fn url(&self, location: &str) -> String {
        format!("{}{location}", self.base_url)
    }

    /// Checks a request's credentials with the server's [`Authenticator`]:
    /// the user (`None` without one), or the error to answer (401, 429 or
    /// 503 with `Retry-After`). A request that passes marks its connection
    /// authenticated (its [`super::Peer`], from [`super::serve`]); the
    /// client's address comes from there, or from axum's `ConnectInfo`.
    pub async fn authenticate(
        &self,
        request: &axum::http::request::Parts,
    ) -> Result<Option<String>, OcciError> {
        let peer = request.extensions.get::<super::Peer>();
        let Some(auth) = &self.auth else {
            if let Some(p) = peer {
                p.trust();
            }
            return Ok(None);
        };
        let client = peer.map(|p| p.addr().ip()).or_else(|| {
            request
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        });
        let given = request
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        // A refusal that asks the client to come back: whole seconds, up.
        let later = |status: StatusCode, why: &str, d: std::time::Duration| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            OcciError::new(status, format!("{why}; try again in {secs} s")).retry_after(secs)
        };
        match auth.check(given, client).await {
            Ok(name) => {
                if let Some(p) = peer {
                    p.trust();
                }
                Ok(Some(name))
            }
            Err(Refusal::Missing) => Err(OcciError::new(
                StatusCode::UNAUTHORIZED,
                "credentials required (HTTP Basic)",
            )),
            Err(Refusal::Wrong) => Err(OcciError::new(StatusCode::UNAUTHORIZED, "bad credentials")),
            Err(Refusal::Busy(d)) => Err(later(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many password checks at once",
                d,
            )),
            Err(Refusal::Throttled(d)) => Err(later(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong credentials from this address",
                d,
            )),
        }
    }

    /// Changes the entity at `location` from outside a request (what its
    /// owner learned elsewhere), serialised with the requests that change
    /// it; the entity after `change`, or `None` if there is none or it is
    /// read-only.
    pub async fn modify(
        &self,
        location: &str,
        change: impl FnOnce(&mut Entity),
    ) -> Result<Option<Entity>, OcciError> {
        let _guard = self.lock(location).await;
        let Some(mut e) = self.store.get(location)? else {
            return Ok(None);
        };
        if e.read_only {
            return Ok(None);
        }
        change(&mut e);
        e.revision += 1;
        self.store.replace_async(&e).await?;
        Ok(Some(e))
    }

    /// An axum router that sends every request to this server.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(super::request::handle)
            .with_state(Arc::clone(self))
    }

    /// Serves on `listener` until `shutdown` completes, with the default
    /// [`super::Listening`] (no TLS); connection trouble goes to `tracing`.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let log: Arc<dyn Fn(String) + Send + Sync> = Arc::new(|m| tracing::warn!("{m}"));
        super::listen::serve(
            listener,
            self.router(),
            super::Listening::default(),
            shutdown,
            log,
        )
        .await
    }

    pub(super) async fn lock(&self, location: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            Arc::clone(locks.entry(location.to_owned()).or_default())
        };
        m.lock_owned().await
    }

    pub(super) fn target<'m>(&self, model: &'m Model, path: &str) -> Option<Target<'m>> {
        if QUERY_PATHS.contains(&path) {
            return Some(Target::Query);
        }
        if let Some(c) = model.at_location(path) {
            return Some(Target::Collection(c));
        }
        let (dir, id) = path.rsplit_once('/')?;
        let kind = model.at_location(&format!("{dir}/"))?;
        (kind.class == Class::Kind && !id.is_empty()).then(|| Target::Entity(kind, id.to_owned()))
    }
}
