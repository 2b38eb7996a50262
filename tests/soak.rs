//! A soak test (not a bench): 50 entities in one process on the library's
//! host exchange reliable commands and RPCs on the loopback group for 20 s
//! (`RMBUS_SOAK_SECS` for longer). Nothing fails, nothing is delivered twice,
//! and the resident memory at the end is within 10 % of that once the
//! duplicate memory (10 s of traffic) has filled: until then it grows with
//! the traffic, more of it the faster the machine, and a check inside that
//! window measures the machine's speed, not a leak.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rmbus::proto::{Delivery, Event};
use rmbus::rpc::{Outcome, Reply};
use rmbus::runtime::{EntityId, Host};
use rmbus::wire::{Address, Command, Value};

const ENTITIES: usize = 50;
/// Reliable commands and calls each entity keeps outstanding at most.
const WINDOW: u64 = 4;
/// The most each entity sends a second, of each (a fixed load, so that the
/// memory check does not depend on how fast the machine is).
const PER_SECOND: f64 = 20.0;
const DEADLINE: Duration = Duration::from_secs(60);

/// The numbers one sender's commands to one receiver carried: the highest,
/// and those below it not seen yet (bounded: only reordering leaves gaps).
#[derive(Default)]
struct Seen {
    max: Option<u64>,
    missing: BTreeSet<u64>,
}

impl Seen {
    /// False if `n` was seen before.
    fn fresh(&mut self, n: u64) -> bool {
        match self.max {
            Some(max) if n <= max => self.missing.remove(&n),
            max => {
                let from = max.map_or(0, |m| m + 1);
                self.missing.extend(from..n);
                self.max = Some(n);
                true
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn fifty_entities_exchange_reliable_commands_and_calls_without_loss_or_growth() {
    let secs: u64 = std::env::var("RMBUS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // Steady state: the duplicate memory holds a full window of traffic,
    // and resident memory has settled (it still rises for several seconds
    // after the duplicate memory is full).
    let steady = rmbus::proto::Timers::default().dup_memory + Duration::from_secs(10);
    let secs = secs.max(steady.as_secs() + 10);
    let mut config = common::free_port_config();
    // The replay guard remembers a window of traffic: its tables grow in
    // doubling steps with the busiest window so far, which would blur this
    // leak check. Its memory is bounded by `Limits::max_replay_entries`,
    // tested at that bound in tests/replay.rs; here it is off.
    config.replay_window = None;
    let mut host = Host::bind(&config).unwrap();
    let ids: Vec<EntityId> = (0..ENTITIES)
        .map(|i| {
            let id = host
                .add(&Address::parse(&format!("(app:soak module:m{i})")).unwrap())
                .unwrap();
            host.entity(id)
                .unwrap()
                .serve("soak.echo", |req| Reply::ok(req.args.clone()).into());
            id
        })
        .collect();
    let addresses: Vec<Address> = ids
        .iter()
        .map(|id| host.endpoint(*id).unwrap().local_address().clone())
        .collect();
    let index: HashMap<Address, usize> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), i))
        .collect();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut host, Token(0), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(64);
    let mut turn = |host: &mut Host, on_event: &mut dyn FnMut(EntityId, Event)| {
        let wait = host.timeout().map_or(Duration::from_millis(10), |t| {
            t.min(Duration::from_millis(10))
        });
        poll.poll(&mut events, Some(wait)).unwrap();
        host.on_readable().unwrap();
        host.on_timeout().unwrap();
        while let Some((id, e)) = host.poll_event() {
            on_event(id, e);
        }
    };

    // Everyone meets everyone.
    for &id in &ids {
        let _ = host
            .entity(id)
            .unwrap()
            .with_endpoint(|ep, now| ep.ping(now, &Address::empty()));
    }
    let until = Instant::now() + DEADLINE;
    while !ids
        .iter()
        .all(|id| host.endpoint(*id).unwrap().entities() == ENTITIES)
    {
        assert!(Instant::now() < until, "the entities did not meet");
        turn(&mut host, &mut |_, _| {});
    }

    let returned = Arc::new(AtomicU64::new(0));
    let call_failures = Arc::new(AtomicU64::new(0));
    let mut next_number = vec![0u64; ENTITIES];
    let mut outstanding = vec![0u64; ENTITIES];
    let mut calls_out = vec![0u64; ENTITIES];
    let calls_done: Vec<Arc<AtomicU64>> = (0..ENTITIES).map(|_| Arc::default()).collect();
    let mut calls_made = vec![0u64; ENTITIES];
    let mut seen: HashMap<(usize, usize), Seen> = HashMap::new();
    let (mut delivered, mut failed, mut duplicates, mut received) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut rss_steady = None;
    while start.elapsed() < Duration::from_secs(secs) {
        if rss_steady.is_none() && start.elapsed() >= steady {
            rss_steady = Some(rss_kib());
        }
        let allowed = (start.elapsed().as_secs_f64() * PER_SECOND) as u64 + 1;
        for i in 0..ENTITIES {
            let mut bus = host.entity(ids[i]).unwrap();
            while outstanding[i] < WINDOW && next_number[i] < allowed {
                let n = next_number[i];
                let to = &addresses[(i + 1) % ENTITIES];
                let cmd = Command::new("soak.n", vec![Value::Integer(n as i64)]);
                bus.with_endpoint(|ep, now| ep.send(now, to, vec![cmd], Delivery::Reliable))
                    .unwrap();
                next_number[i] += 1;
                outstanding[i] += 1;
            }
            calls_out[i] = calls_made[i] - calls_done[i].load(Ordering::Relaxed);
            while calls_out[i] < WINDOW && calls_made[i] < allowed {
                let to = addresses[(i + 7) % ENTITIES].clone();
                let (done, ok, bad) = (
                    calls_done[i].clone(),
                    returned.clone(),
                    call_failures.clone(),
                );
                let arg = vec![Value::Integer(calls_made[i] as i64)];
                bus.call_then(&to, "soak.echo", arg.clone(), Duration::from_secs(10), {
                    move |_, outcome| {
                        if outcome == Outcome::Returned(Reply::ok(arg)) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap();
                calls_made[i] += 1;
                calls_out[i] += 1;
            }
        }
        turn(&mut host, &mut |id, e| match e {
            Event::Delivered { .. } => {
                delivered += 1;
                outstanding[id.0 as usize - ids[0].0 as usize] -= 1;
            }
            Event::DeliveryFailed { .. } => {
                failed += 1;
                outstanding[id.0 as usize - ids[0].0 as usize] -= 1;
            }
            Event::Command { src, command, .. } if command.name == "soak.n" => {
                received += 1;
                let to = id.0 as usize - ids[0].0 as usize;
                let n = command.args[0].as_i64().unwrap_or(-1) as u64;
                if !seen.entry((index[&src], to)).or_default().fresh(n) {
                    duplicates += 1;
                }
            }
            _ => {}
        });
    }
    let rss_end = rss_kib();
    let rss_steady_kib = rss_steady.unwrap();
    let (ok, bad) = (
        returned.load(Ordering::Relaxed),
        call_failures.load(Ordering::Relaxed),
    );
    println!(
        "soak: {secs} s, {ENTITIES} entities: {delivered} reliable commands delivered \
         ({received} received), {failed} failed, {duplicates} duplicates; {ok} calls returned, \
         {bad} failed; resident {rss_steady_kib} KiB at {} s, {rss_end} KiB at the end",
        steady.as_secs()
    );
    assert_eq!((failed, duplicates, bad), (0, 0, 0));
    assert!(delivered > 1000 && ok > 1000, "traffic flowed");
    assert!(
        received >= delivered,
        "every acknowledged command was received"
    );
    assert!(
        rss_end * 10 <= rss_steady_kib * 11,
        "memory grew from {rss_steady_kib} KiB to {rss_end} KiB"
    );
}
