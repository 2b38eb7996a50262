//! The thread that runs a store, so that disk I/O never runs on the bus
//! loop: the loop hands it batches, it commits every batch waiting at that
//! moment in one transaction (deliveries that arrive while the disk is busy
//! share the next commit), applies the
//! retention now and then, and reports each batch done through a channel,
//! after which it calls the loop's notifier (a mio `Waker`, say).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::cmbs::{StoreBatch, StoreOp};

use super::{Retention, Store};

/// How often (in commits) the worker applies the retention.
const RETAIN_EVERY: u64 = 256;

/// A batch that was committed, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The member.
    pub member: String,
    /// The batch's ticket.
    pub ticket: u64,
    /// `Err`: why it is not on disk.
    pub result: Result<(), String>,
}

/// A store on its own thread.
#[derive(Debug)]
pub struct Worker {
    jobs: Option<Sender<StoreBatch>>,
    transactions: Arc<AtomicU64>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread over `store`; `notify` runs after each round of
    /// commits.
    pub fn spawn(
        mut store: Box<dyn Store>,
        retention: Retention,
        notify: impl Fn() + Send + 'static,
    ) -> std::io::Result<Worker> {
        let (jobs, inbox) = mpsc::channel::<StoreBatch>();
        let (outbox, done) = mpsc::channel();
        let transactions = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&transactions);
        let thread = std::thread::Builder::new()
            .name("rmbus-store".into())
            .spawn(move || {
                let mut commits = 0u64;
                while let Ok(first) = inbox.recv() {
                    let mut round = vec![first];
                    while let Ok(b) = inbox.try_recv() {
                        round.push(b);
                    }
                    let now = SystemTime::now();
                    let batches: Vec<(&str, &[StoreOp])> = round
                        .iter()
                        .map(|b| (b.member.as_str(), b.ops.as_slice()))
                        .collect();
                    let result = store.commit_all(&batches, now).map_err(|e| e.to_string());
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = &result {
                        tracing::warn!(batches = round.len(), "store write failed: {e}");
                    }
                    for b in &round {
                        commits += 1;
                        if commits % RETAIN_EVERY == 1 {
                            if let Err(e) = store.retain(&b.member, retention, now) {
                                tracing::warn!("retention failed: {e}");
                            }
                        }
                        let _ = outbox.send(Done {
                            member: b.member.clone(),
                            ticket: b.ticket,
                            result: result.clone(),
                        });
                    }
                    notify();
                }
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            transactions,
            done,
            thread: Some(thread),
        })
    }

    /// Hands a batch to the thread.
    pub fn submit(&self, batch: StoreBatch) {
        if let Some(j) = &self.jobs {
            if j.send(batch).is_err() {
                tracing::error!("the store thread is gone");
            }
        }
    }

    /// How many transactions the thread has committed (or tried to): each
    /// takes every batch that was waiting.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// The batches done since the last call.
    pub fn completed(&self) -> Vec<Done> {
        self.done.try_iter().collect()
    }

    /// Waits for the batches handed over so far to be done, and stops the
    /// thread; what they said.
    pub fn finish(mut self) -> Vec<Done> {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.done.try_iter().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
