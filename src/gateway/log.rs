//! The gateway's log lines on stderr, written by a thread of their own:
//! a request never waits for the terminal or the pipe (nor wakes a
//! thread for each line), and lines that come together go out in one
//! write.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use super::Log;

/// Lines waiting to be written; beyond, lines are counted, not kept, and
/// the count is written with the next line that gets through.
const QUEUE: usize = 4096;

/// A log that writes each line, after `prefix`, to stderr from a thread of
/// its own. [`StderrLog::finish`] writes what is left and stops it.
pub struct StderrLog {
    prefix: &'static str,
    tx: RwLock<Option<SyncSender<String>>>,
    dropped: std::sync::atomic::AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl StderrLog {
    /// Starts the writing thread.
    pub fn start(prefix: &'static str) -> std::io::Result<Arc<StderrLog>> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("rmbus-log".into())
            .spawn(move || write_lines(prefix, &rx))?;
        Ok(Arc::new(StderrLog {
            prefix,
            tx: RwLock::new(Some(tx)),
            dropped: std::sync::atomic::AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// The gateway's [`Log`] that writes here.
    pub fn log(self: &Arc<Self>) -> Log {
        let me = Arc::clone(self);
        Arc::new(move |line| me.say(line))
    }

    fn say(&self, mut line: String) {
        use std::sync::atomic::Ordering;
        let tx = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            // Finished: the last words go straight out.
            let _ = writeln!(std::io::stderr(), "{}{line}", self.prefix);
            return;
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            line = format!(
                "({dropped} log lines were dropped: stderr is not read fast enough) {line}"
            );
        }
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(line)) => {
                let _ = writeln!(std::io::stderr(), "{}{line}", self.prefix);
            }
        }
    }

    /// Writes the lines still queued and stops the thread; later lines are
    /// written at once.
    pub fn finish(&self) {
        drop(self.tx.write().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                std::io::stderr(),
                "{}{dropped} log lines were dropped: stderr was not read fast enough",
                self.prefix
            );
        }
    }
}

/// How long the writer rests after a write: lines that come meanwhile wait
/// in the queue (no sender wakes the writer while it rests) and go out
/// together.
const REST: std::time::Duration = std::time::Duration::from_millis(2);

/// Writes every line `rx` gives, those waiting together in one write: the
/// first line after a quiet time at once, lines under load at most
/// [`REST`] late.
fn write_lines(prefix: &str, rx: &Receiver<String>) {
    let mut out = String::new();
    while let Ok(first) = rx.recv() {
        out.clear();
        for line in std::iter::once(first).chain(rx.try_iter()) {
            out.push_str(prefix);
            out.push_str(&line);
            out.push('\n');
        }
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
        std::thread::sleep(REST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_and_finish_drains_them() {
        let log = StderrLog::start("test: ").unwrap();
        let say = log.log();
        for i in 0..100 {
            say(format!("line {i}"));
        }
        log.finish();
        assert!(log.writer.lock().unwrap().is_none(), "the thread stopped");
        // After finishing, a line is written at once, not lost.
        say("after".into());
        assert_eq!(
            log.dropped.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "nothing was dropped"
        );
    }
}
