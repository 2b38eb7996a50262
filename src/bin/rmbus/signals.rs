//! Ctrl-C and SIGTERM as a mio event: long-running commands say bye and stop.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;

use mio::{Interest, Registry, Token};

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
        Ok(Termination {
            stream: mio::net::UnixStream::from_std(reader),
        })
    }

    /// Registers with a poll under `token`.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.stream, token, Interest::READABLE)
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
