//! The bridge's NATS thread: an async-nats client on a tokio runtime of its
//! own, subscribed to the bridge's subjects, publishing and requesting what
//! the bus thread hands it, and handing back what comes.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, RequestErrorKind};
use futures_util::StreamExt;
use mio::Waker;
use tokio::sync::mpsc::Receiver as FromBus;

use crate::cmbs::crossing::Subjects;
use crate::cmbs::{NatsInput, NatsOutput, RequestFailure};

use super::{BridgeOptions, BridgeSpawnError, NatsCredentials, Shared};

/// How long the NATS thread may take, once the bridge stops, to send what
/// is left (the update that says this site's members are gone).
const FLUSH_AT_STOP: Duration = Duration::from_secs(2);

/// Hands inputs to the bus thread and wakes it.
#[derive(Clone)]
struct ToBus {
    tx: Sender<NatsInput>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
}

impl ToBus {
    /// Hands over a message from a subscription, unless [`super::QUEUE`]
    /// of them wait already (then it is dropped and counted).
    fn message(&self, input: NatsInput) {
        if self.shared.queued.fetch_add(1, Ordering::AcqRel) >= super::QUEUE {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            if self.shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "the bridge's bus thread is behind: NATS messages are dropped (and counted)"
                );
            }
            return;
        }
        self.send(input);
    }

    /// Hands over an answer or a change of the connection (never dropped:
    /// the bridge waits for each answer).
    fn send(&self, input: NatsInput) {
        if self.tx.send(input).is_ok() {
            if let Err(e) = self.waker.wake() {
                tracing::warn!("cannot wake the bridge's bus thread: {e}");
            }
        }
    }
}

/// The NATS side of a bridge, connected (or trying to).
pub(super) struct NatsSide {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    subscribers: Vec<async_nats::Subscriber>,
    to_bus: ToBus,
}

fn options(o: &BridgeOptions, to_bus: &ToBus, shared: &Arc<Shared>) -> ConnectOptions {
    let mut c = match &o.credentials {
        NatsCredentials::None => ConnectOptions::new(),
        NatsCredentials::UserPassword { user, password } => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsCredentials::Token(t) => ConnectOptions::with_token(t.clone()),
        NatsCredentials::NkeySeed(seed) => ConnectOptions::with_nkey(seed.clone()),
    };
    c = c
        .name(format!("rmbus bridge {}", o.bridge.site))
        .custom_inbox_prefix(Subjects::inbox(&o.bridge.site))
        .connection_timeout(o.connect_timeout)
        .max_reconnects(None);
    if let Some(ca) = &o.ca_file {
        c = c.add_root_certificates(ca.clone()).require_tls(true);
    }
    if o.require_tls {
        c = c.require_tls(true);
    }
    if o.only_listed {
        c = c.ignore_discovered_servers();
    }
    let to_bus = to_bus.clone();
    let shared = Arc::clone(shared);
    c.event_callback(move |event| {
        let to_bus = to_bus.clone();
        let shared = Arc::clone(&shared);
        async move {
            match event {
                async_nats::Event::Connected => {
                    tracing::info!("the bridge is connected to NATS");
                    shared.connected.store(true, Ordering::Release);
                    to_bus.send(NatsInput::Connection(true));
                }
                async_nats::Event::Disconnected => {
                    tracing::warn!(
                        "the bridge lost its NATS server; it reconnects to any of the cluster"
                    );
                    shared.connected.store(false, Ordering::Release);
                    to_bus.send(NatsInput::Connection(false));
                }
                other => tracing::warn!("NATS: {other}"),
            }
        }
    })
}

/// True if `e` comes from an I/O error of kind invalid data (how rustls's
/// certificate errors reach us).
fn is_invalid_data(e: &async_nats::ConnectError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
}

impl NatsSide {
    /// Connects to the cluster: credentials the servers refuse, or options
    /// that cannot work, are an error; a cluster not reachable now is
    /// tried again and again in the background.
    pub(super) fn connect(
        o: &BridgeOptions,
        subscriptions: Vec<String>,
        tx: Sender<NatsInput>,
        waker: Arc<Waker>,
        shared: Arc<Shared>,
    ) -> Result<NatsSide, BridgeSpawnError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let to_bus = ToBus {
            tx,
            waker,
            shared: Arc::clone(&shared),
        };
        let first = rt.block_on(options(o, &to_bus, &shared).connect(o.servers.clone()));
        let client = match first {
            Ok(c) => {
                shared.connected.store(true, Ordering::Release);
                to_bus.send(NatsInput::Connection(true));
                c
            }
            Err(e) => match e.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    return Err(BridgeSpawnError::Credentials(e.to_string()))
                }
                ConnectErrorKind::ServerParse | ConnectErrorKind::Tls => {
                    return Err(BridgeSpawnError::Nats(e.to_string()))
                }
                // A server certificate that cannot be checked comes as an
                // I/O error of invalid data: no retry makes it valid.
                ConnectErrorKind::Io if is_invalid_data(&e) => {
                    return Err(BridgeSpawnError::Nats(format!(
                        "{e} (the servers' TLS certificate; give the CA that signed it with --ca)"
                    )))
                }
                _ => {
                    tracing::warn!(
                        servers = ?o.servers,
                        "cannot reach the NATS cluster ({e}): the bridge starts and keeps trying"
                    );
                    let retrying = options(o, &to_bus, &shared).retry_on_initial_connect();
                    rt.block_on(retrying.connect(o.servers.clone()))
                        .map_err(|e| BridgeSpawnError::Nats(e.to_string()))?
                }
            },
        };
        let mut subscribers = Vec::new();
        for s in subscriptions {
            let sub = rt
                .block_on(client.subscribe(s.clone()))
                .map_err(|e| BridgeSpawnError::Nats(format!("cannot subscribe to {s}: {e}")))?;
            subscribers.push(sub);
        }
        Ok(NatsSide {
            rt,
            client,
            subscribers,
            to_bus,
        })
    }

    /// Runs until the bus thread drops its end of `from_bus`, then sends
    /// what is left.
    pub(super) fn run(self, mut from_bus: FromBus<NatsOutput>) {
        let NatsSide {
            rt,
            client,
            subscribers,
            to_bus,
        } = self;
        rt.block_on(async move {
            for mut sub in subscribers {
                let to_bus = to_bus.clone();
                tokio::spawn(async move {
                    while let Some(m) = sub.next().await {
                        to_bus.message(NatsInput::Message {
                            subject: m.subject.to_string(),
                            payload: m.payload.into(),
                            reply: m.reply.map(|r| r.to_string()),
                        });
                    }
                });
            }
            while let Some(out) = from_bus.recv().await {
                match out {
                    NatsOutput::Publish { subject, payload } => {
                        if let Err(e) = client.publish(subject, payload.into()).await {
                            tracing::warn!("cannot publish on NATS: {e}");
                        }
                    }
                    NatsOutput::Request {
                        token,
                        subject,
                        payload,
                        timeout,
                    } => {
                        let client = client.clone();
                        let to_bus = to_bus.clone();
                        tokio::spawn(async move {
                            let request = async_nats::Request::new()
                                .payload(payload.into())
                                .timeout(Some(timeout));
                            let result = match client.send_request(subject, request).await {
                                Ok(m) => Ok(m.payload.into()),
                                Err(e) => Err(match e.kind() {
                                    RequestErrorKind::NoResponders => RequestFailure::NoResponders,
                                    RequestErrorKind::TimedOut => RequestFailure::TimedOut,
                                    _ => RequestFailure::Unreachable(e.to_string()),
                                }),
                            };
                            to_bus.send(NatsInput::Answered { token, result });
                        });
                    }
                }
            }
            if tokio::time::timeout(FLUSH_AT_STOP, client.flush())
                .await
                .is_err()
            {
                tracing::warn!("the bridge stopped before NATS took its last messages");
            }
        });
    }
}
