//! Ctrl-C and SIGTERM as a mio event: long-running commands say bye and stop,
//! one-shot commands say bye and exit 130 (SIGINT) or 143 (SIGTERM).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use mio::{Interest, Registry, Token};

/// Set when SIGTERM arrived (the exit code is then 143, not 130).
static TERMINATED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Set when SIGINT or SIGTERM arrived after [`hold`] and before a
/// [`Termination`] was installed to hear it.
static EARLY: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From now on SIGINT and SIGTERM no longer kill the process; a
/// [`Termination`] installed later still hears one that came meanwhile. For
/// the commands that install one, called first thing, so that a Ctrl-C
/// during start-up still ends with a bye and the table's exit code.
pub fn hold() -> io::Result<()> {
    let early = EARLY.get_or_init(|| Arc::new(AtomicBool::new(false)));
    let terminated = TERMINATED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(early))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(terminated))?;
    Ok(())
}

/// The exit code of a one-shot command stopped by a signal: 143 after
/// SIGTERM, else 130 (SIGINT), as a shell reports a command the signal
/// killed.
pub fn exit_code() -> u8 {
    match TERMINATED.get() {
        Some(flag) if flag.load(Ordering::Relaxed) => 143,
        _ => 130,
    }
}

/// Readable once SIGINT or SIGTERM has arrived.
pub struct Termination {
    stream: mio::net::UnixStream,
}

impl Termination {
    /// Installs the handlers; the signals stop killing the process.
    pub fn install() -> io::Result<Termination> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        if TERMINATED.get().is_none() {
            let terminated = TERMINATED.get_or_init(|| Arc::new(AtomicBool::new(false)));
            signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(terminated))?;
        }
        // A signal that came before we listened.
        if EARLY.get().is_some_and(|f| f.load(Ordering::Relaxed)) {
            let _ = (&writer).write(&[1]);
        }
        Ok(Termination {
            stream: mio::net::UnixStream::from_std(reader),
        })
    }

    /// Registers with a poll under `token`.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.stream, token, Interest::READABLE)
    }

    /// Blocks until a signal arrives.
    pub fn wait(mut self) -> io::Result<()> {
        let mut poll = mio::Poll::new()?;
        self.register(poll.registry(), Token(0))?;
        let mut events = mio::Events::with_capacity(4);
        loop {
            match poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.arrived() {
                return Ok(());
            }
        }
    }

    /// True if a signal arrived (consumes the notification).
    pub fn arrived(&mut self) -> bool {
        let mut buf = [0u8; 16];
        let mut any = false;
        while let Ok(n) = self.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            any = true;
        }
        any
    }
}
