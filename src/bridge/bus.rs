//! The bridge's bus thread: its entity on a [`Host`], the
//! [`Bridge`] core, and the mio loop that feeds it the bus's datagrams,
//! its timers and what the NATS thread hands over.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender as NatsSender;

use crate::cmbs::{Bridge, BridgeConfig, BridgeEvent, NatsInput, NatsOutput, RequestFailure};
use crate::config::Config;
use crate::runtime::{BindError, EntityId, Host};

use super::{Shared, Snapshot};

const HOST: Token = Token(0);
const WAKE: Token = Token(1);

/// How often the handle's snapshot is made again, at most.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(50);

/// The bus side of a bridge, before and while it runs.
pub(super) struct BusSide {
    host: Host,
    id: EntityId,
    poll: Poll,
    waker: Arc<Waker>,
    bridge: Bridge,
    shared: Arc<Shared>,
    from_nats: Receiver<NatsInput>,
    to_nats: NatsSender<NatsOutput>,
    /// Its entity's address, for the snapshot.
    address: String,
    /// When the snapshot was last made.
    snapshot_at: Option<Instant>,
}

impl BusSide {
    /// Joins the bus as the bridge of `config.site`.
    pub(super) fn bind(
        bus: &Config,
        config: &BridgeConfig,
        shared: Arc<Shared>,
        from_nats: Receiver<NatsInput>,
        to_nats: NatsSender<NatsOutput>,
    ) -> Result<BusSide, BindError> {
        let mut host = Host::bind(bus)?;
        let address = Bridge::address(&config.site).map_err(|e| {
            BindError::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        let id = host.add(&address)?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let started = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let epoch = started * 1000 + rand::random::<u64>() % 1000;
        let bridge = Bridge::new(config.clone(), epoch, rand::random());
        let address = host
            .endpoint(id)
            .map(|e| e.local_address().to_string())
            .unwrap_or_default();
        Ok(BusSide {
            snapshot_at: None,
            address,
            host,
            id,
            poll,
            waker,
            bridge,
            shared,
            from_nats,
            to_nats,
        })
    }

    /// Its entity's address.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// The waker of its loop.
    pub(super) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// What the NATS side subscribes to.
    pub(super) fn subscriptions(&self) -> Vec<String> {
        self.bridge.subscriptions().to_vec()
    }

    fn with_bridge<R>(
        &mut self,
        f: impl FnOnce(&mut Bridge, &mut crate::proto::Endpoint, Instant) -> R,
    ) -> Option<R> {
        let bridge = &mut self.bridge;
        let mut entity = self.host.entity(self.id)?;
        Some(entity.with_endpoint(|ep, now| f(bridge, ep, now)))
    }

    /// The loop, until it is asked to stop, another bridge of its site
    /// runs, or the sockets fail.
    pub(super) fn run(
        mut self,
        mut on_event: Box<dyn FnMut(BridgeEvent) + Send>,
    ) -> Result<(), String> {
        let result = self.turns(&mut on_event);
        self.with_bridge(|b, ep, now| b.stop(ep, now));
        self.hand_over();
        if let Some(mut entity) = self.host.entity(self.id) {
            if let Err(e) = entity.close() {
                tracing::warn!("cannot say bye: {e}");
            }
        }
        // Dropping the sender ends the NATS thread once it has sent the rest.
        drop(self.to_nats);
        result
    }

    fn turns(&mut self, on_event: &mut Box<dyn FnMut(BridgeEvent) + Send>) -> Result<(), String> {
        self.with_bridge(|b, ep, now| b.start(ep, now));
        let mut events = Events::with_capacity(64);
        loop {
            let now = Instant::now();
            let wake = self
                .host
                .deadline()
                .into_iter()
                .chain(self.bridge.poll_timeout())
                .min()
                .map(|t| t.saturating_duration_since(now) + Duration::from_micros(200));
            match self.poll.poll(&mut events, wake) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("the bus failed: {e}")),
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let failed = |e: io::Error| format!("the bus failed: {e}");
            if events.iter().any(|e| e.token() == HOST) {
                self.host.on_readable().map_err(failed)?;
            }
            self.host.on_timeout().map_err(failed)?;
            while let Some((_, event)) = self.host.poll_event() {
                self.with_bridge(|b, ep, now| {
                    b.handle_event(ep, now, event);
                });
            }
            while let Ok(input) = self.from_nats.try_recv() {
                if matches!(input, NatsInput::Message { .. }) {
                    self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                }
                self.with_bridge(|b, ep, now| b.handle_nats(ep, now, input));
            }
            if self
                .bridge
                .poll_timeout()
                .is_some_and(|t| t <= Instant::now())
            {
                self.with_bridge(|b, ep, now| b.handle_timeout(ep, now));
            }
            self.hand_over();
            let mut yielded = None;
            while let Some(e) = self.bridge.poll_event() {
                if let BridgeEvent::Yield { other } = &e {
                    yielded = Some(*other);
                }
                on_event(e);
            }
            if self
                .snapshot_at
                .is_none_or(|t| t.elapsed() >= SNAPSHOT_EVERY)
            {
                self.snapshot();
            }
            self.host.flush().map_err(failed)?;
            if let Some(other) = yielded {
                let site = &self.bridge.config().site;
                return Err(format!(
                    "another bridge for site {site} runs (epoch {other}, older than ours): one bridge per site"
                ));
            }
        }
    }

    /// Hands what the bridge has for NATS to the NATS thread; a request
    /// that cannot be handed over is answered at once as not sent.
    fn hand_over(&mut self) {
        let mut unsent = Vec::new();
        while let Some(out) = self.bridge.poll_nats() {
            match self.to_nats.try_send(out) {
                Ok(()) => {}
                Err(TrySendError::Full(out) | TrySendError::Closed(out)) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    if let NatsOutput::Request { token, .. } = out {
                        unsent.push(token);
                    }
                }
            }
        }
        for token in unsent {
            let result = Err(RequestFailure::Unreachable(
                "the bridge's queue to NATS is full".into(),
            ));
            let input = NatsInput::Answered { token, result };
            self.with_bridge(|b, ep, now| b.handle_nats(ep, now, input));
        }
    }

    fn snapshot(&mut self) {
        self.snapshot_at = Some(Instant::now());
        let b = &self.bridge;
        let snapshot = Snapshot {
            stats: b.stats(),
            active: b.is_active(),
            remote_members: b.remote_members(),
            sites: b.sites().map(|(s, n)| (s.to_owned(), n)).collect(),
            address: self.address.clone(),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        };
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}
