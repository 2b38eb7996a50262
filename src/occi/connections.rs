//! The listener's table of open connections: who holds a slot, whether a
//! request on it was authenticated, when it last moved a byte, and which
//! connection gives its slot up when the table is full.
//!
//! A connection is *anonymous* until one of its requests passes the
//! server's authentication (or, without an authenticator, until its first
//! request is read). An anonymous connection lives at most
//! [`Deadlines::anonymous`] from its accept, whatever it sends; any
//! connection with no request in flight is closed after
//! [`Deadlines::idle`] without a byte in either direction. When every slot
//! is taken, the oldest anonymous connection (with no request in flight,
//! if there is one) is closed to make room, so
//! peers without credentials can never hold the limit against a client
//! with them; only when every slot belongs to an authenticated connection
//! is a new one refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// How long connections may live without doing their part.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept to the first authenticated request.
    pub anonymous: Duration,
    /// Without a byte either way while no request is in flight.
    pub idle: Duration,
}

/// One open connection.
pub(super) struct Conn {
    id: u64,
    peer: SocketAddr,
    opened: Instant,
    trusted: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the last byte read or written.
    last_io: AtomicU64,
    evicted: Notify,
}

impl Conn {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io.store(ms, Ordering::Relaxed);
    }

    fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    /// What ends this connection now, or when to look again.
    fn verdict(&self, now: Instant, d: Deadlines) -> Result<Instant, Closed> {
        if !self.trusted() {
            let until = self.opened + d.anonymous;
            return if now >= until {
                Err(Closed::Anonymous(d.anonymous))
            } else {
                Ok(until)
            };
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Ok(now + d.idle);
        }
        let last = self.opened + Duration::from_millis(self.last_io.load(Ordering::Relaxed));
        let until = last + d.idle;
        if now >= until {
            Err(Closed::Idle(d.idle))
        } else {
            Ok(until)
        }
    }

    /// Waits until this connection has overstayed, or is evicted.
    pub(super) async fn expired(&self, d: Deadlines) -> Closed {
        let evicted = self.evicted.notified();
        tokio::pin!(evicted);
        loop {
            let next = match self.verdict(Instant::now(), d) {
                Ok(next) => next,
                Err(why) => return why,
            };
            tokio::select! {
                () = &mut evicted => return Closed::Evicted,
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }

    /// Counts a request in flight until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// Why a connection was closed by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// No authenticated request within this long of its accept.
    Anonymous(Duration),
    /// No byte either way for this long, nothing in flight.
    Idle(Duration),
    /// Its slot went to a newer connection.
    Evicted,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Anonymous(d) => write!(
                f,
                "closed: no authenticated request within {} s",
                d.as_secs_f64()
            ),
            Closed::Idle(d) => write!(f, "closed: idle for {} s", d.as_secs_f64()),
            Closed::Evicted => write!(
                f,
                "closed: all slots taken, and it was the oldest without an authenticated request"
            ),
        }
    }
}

/// A request in flight on a connection (the idle clock stops meanwhile).
pub(super) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The connection a request came on, as [`super::serve`] puts it in each
/// request's extensions: the client's address, and the means to mark the
/// connection authenticated.
#[derive(Clone)]
pub struct Peer(pub(super) Arc<Conn>);

impl Peer {
    /// The client's address.
    pub fn addr(&self) -> SocketAddr {
        self.0.peer
    }

    /// Marks the connection as an authenticated client's: it no longer
    /// has to authenticate by the anonymous deadline, and it keeps its slot
    /// when the table is full.
    pub fn trust(&self) {
        self.0.trusted.store(true, Ordering::Relaxed);
    }
}

/// The slots.
pub(super) struct Table {
    max: usize,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

/// A taken slot, given back when dropped.
pub(super) struct Slot {
    table: Arc<Table>,
    pub(super) conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().remove(&self.conn.id);
    }
}

/// What [`Table::admit`] did.
pub(super) enum Admission {
    /// A slot, and the anonymous connection that gave it up, if any.
    Admitted(Slot, Option<SocketAddr>),
    /// Every slot belongs to an authenticated connection.
    Full,
}

impl Table {
    /// A table of `max` slots (at least one).
    pub(super) fn new(max: usize) -> Arc<Table> {
        Arc::new(Table {
            max: max.max(1),
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection from `peer`, evicting the oldest anonymous
    /// connection when all are taken.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Admission {
        let mut open = self.lock();
        let mut evicted = None;
        if open.len() >= self.max {
            // An anonymous connection with nothing in flight first (one
            // whose password is being checked may be an honest client's).
            let anonymous = |busy: bool| {
                open.values()
                    .find(|c| !c.trusted() && (busy || c.in_flight.load(Ordering::Relaxed) == 0))
                    .map(Arc::clone)
            };
            let oldest = anonymous(false).or_else(|| anonymous(true));
            let Some(old) = oldest else {
                return Admission::Full;
            };
            open.remove(&old.id);
            // A stored permit: its watcher sees it even if not waiting yet.
            old.evicted.notify_one();
            evicted = Some(old.peer);
        }
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            peer,
            opened: Instant::now(),
            trusted: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            evicted: Notify::new(),
        });
        open.insert(conn.id, Arc::clone(&conn));
        Admission::Admitted(
            Slot {
                table: Arc::clone(self),
                conn,
            },
            evicted,
        )
    }

    /// Open connections, and how many of them are authenticated.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize) {
        let open = self.lock();
        (open.len(), open.values().filter(|c| c.trusted()).count())
    }
}

/// A stream that tells its connection when bytes move.
pub(super) struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, conn: Arc<Conn>) -> Watched<S> {
        Watched { inner, conn }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    fn slot(a: Admission) -> (Slot, Option<SocketAddr>) {
        match a {
            Admission::Admitted(s, e) => (s, e),
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn a_full_table_evicts_the_oldest_anonymous_and_refuses_only_when_all_are_trusted() {
        let t = Table::new(2);
        let (a, none) = slot(t.admit(addr(1)));
        assert!(none.is_none());
        let (b, _) = slot(t.admit(addr(2)));
        Peer(Arc::clone(&b.conn)).trust();
        let (c, evicted) = slot(t.admit(addr(3)));
        assert_eq!(evicted, Some(addr(1)), "the anonymous one goes");
        assert_eq!(t.counts(), (2, 1));
        drop(a);
        assert_eq!(t.counts(), (2, 1), "an evicted slot is not counted twice");
        Peer(Arc::clone(&c.conn)).trust();
        assert!(matches!(t.admit(addr(4)), Admission::Full));
        drop(b);
        let (_d, evicted) = slot(t.admit(addr(4)));
        assert_eq!(evicted, None, "a slot was free");
    }

    #[test]
    fn an_anonymous_connection_in_flight_goes_after_the_idle_ones() {
        let t = Table::new(2);
        let (a, _) = slot(t.admit(addr(1)));
        let (_b, _) = slot(t.admit(addr(2)));
        let checking = a.conn.begin();
        let (_c, evicted) = slot(t.admit(addr(3)));
        assert_eq!(evicted, Some(addr(2)), "the idle one, though younger");
        let (_d, evicted) = slot(t.admit(addr(4)));
        assert_eq!(evicted, Some(addr(3)));
        let (_e, evicted) = slot(t.admit(addr(5)));
        assert_eq!(evicted, Some(addr(4)));
        drop(checking);
        let (_f, evicted) = slot(t.admit(addr(6)));
        assert_eq!(
            evicted,
            Some(addr(1)),
            "the oldest once nothing is in flight"
        );
    }

    #[test]
    fn deadlines_anonymous_from_accept_idle_from_the_last_byte() {
        let t = Table::new(4);
        let (s, _) = slot(t.admit(addr(1)));
        let d = Deadlines {
            anonymous: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let c = &s.conn;
        let t0 = c.opened;
        assert_eq!(c.verdict(t0, d), Ok(t0 + d.anonymous));
        c.touch();
        assert_eq!(
            c.verdict(t0 + Duration::from_secs(10), d),
            Err(Closed::Anonymous(d.anonymous)),
            "bytes do not keep an anonymous connection open"
        );
        Peer(Arc::clone(c)).trust();
        let later = t0 + Duration::from_secs(61);
        assert_eq!(c.verdict(later, d), Err(Closed::Idle(d.idle)));
        let busy = c.begin();
        assert!(c.verdict(later, d).is_ok(), "a request in flight");
        drop(busy);
        let now = Instant::now();
        assert!(
            c.verdict(now + Duration::from_secs(59), d).is_ok(),
            "its end counts as activity"
        );
        assert!(c.verdict(now + Duration::from_secs(61), d).is_err());
    }
}
