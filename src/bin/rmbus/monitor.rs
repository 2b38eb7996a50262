//! `rmbus monitor`: watch the bus, like `dbus-monitor`. It never sends.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rmbus::auth::{open, open_unverified, Keys, Rejection};
use rmbus::proto::{Limits, ReplayGuard, ReplayPolicy, ReplayVerdict};
use rmbus::wire::{timestamp_of, Address, Message};

use crate::bus_args::BusArgs;
use crate::signals::Termination;
use crate::{pcap, Failure, Outcome};
use rmbus::record::{clock_offset, rejected_line, to_line, verified_line, ReplayNote};

/// Print every datagram on the bus: time, source, authentication, message.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus monitor
  rmbus monitor --json --command tool           # JSON lines, commands tool and tool.*
  rmbus monitor --dst '(module:engine)'          # what entities matching it could receive
  rmbus monitor --pcap bus.pcap                  # also record for tcpdump / Wireshark
  rmbus monitor --pcap bus.pcapng                # the same, as pcapng
  rmbus monitor --read bus.pcap                  # decode a capture instead of listening

Rejected datagrams are shown, flagged with the reason; so are the copies and
out-of-window datagrams the entities' replay guard refuses (REPLAY_WINDOW), and
how far each source's clock is from ours. Unicast traffic between entities
(SEND_UNICAST=yes) does not pass the group and is not seen.

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// One JSON object per datagram (the `decode --json` record plus time and source).
    #[arg(long)]
    pub json: bool,
    /// Only messages an entity matching ADDR could receive (no element of the
    /// destination contradicts ADDR); rejected datagrams are always shown.
    #[arg(long, value_name = "ADDR")]
    dst: Option<Address>,
    /// Only messages with a command named PREFIX or below it, by whole name
    /// components: `audio` matches `audio` and `audio.x`, not `audiox.y`
    /// (`tool.` means the same as `tool`).
    #[arg(long, value_name = "PREFIX")]
    command: Option<String>,
    /// Also write every datagram seen to this capture file (pcapng if its
    /// name ends in .pcapng, else pcap; see --pcap-format).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// The capture's format, whatever the file's name.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "pcap")]
    pcap_format: Option<pcap::Format>,
    /// Decode a capture (pcap or pcapng) instead of listening; creates no
    /// configuration, and without one shows the records unverified.
    #[arg(long, value_name = "FILE", conflicts_with = "pcap")]
    read: Option<PathBuf>,
    /// Stop after printing this many datagrams.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// A signed offset in seconds, e.g. `+1.250 s`.
fn signed_seconds(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03} s", abs / 1000, abs % 1000)
}

/// How far a source's clock must move from the offset last shown for it to
/// be shown again.
const CLOCK_NOTE_STEP_MS: u64 = 1000;
/// The most sources whose offsets are remembered (then the memory starts over).
const CLOCK_SOURCES: usize = 4096;

struct Printer {
    /// `None` when reading a capture with no configuration at hand: records
    /// are then shown unverified.
    keys: Option<Keys>,
    json: bool,
    colour: bool,
    dst: Option<Address>,
    command: Option<String>,
    remaining: Option<u64>,
    /// What the entities' replay guard would refuse (the bus's policy).
    replay: ReplayGuard,
    /// Each source's clock offset as last shown (text output).
    clocks: HashMap<Address, i64>,
    out: io::StdoutLock<'static>,
}

impl Printer {
    /// Prints one datagram if it passes the filters; false once --count is reached.
    fn datagram(&mut self, at: SystemTime, from: SocketAddr, bytes: &[u8]) -> io::Result<bool> {
        let opened = self.open(bytes);
        if let Ok(msg) = &opened {
            if !self.wanted(msg) {
                return Ok(true);
            }
        }
        match &opened {
            Ok(msg) => {
                let h = &msg.header;
                let verdict = self
                    .replay
                    .check(&h.src, h.seq, h.timestamp, timestamp_of(at));
                self.accepted(at, from, msg, bytes.len(), verdict)?
            }
            Err(rejection) => self.rejected(at, from, rejection)?,
        }
        self.out.flush()?;
        if let Some(n) = &mut self.remaining {
            *n = n.saturating_sub(1);
            return Ok(*n > 0);
        }
        Ok(true)
    }

    fn open(&self, bytes: &[u8]) -> Result<Message, Rejection> {
        match &self.keys {
            Some(keys) => open(bytes, keys),
            None => open_unverified(bytes),
        }
    }

    fn wanted(&self, msg: &Message) -> bool {
        let dst_ok = self.dst.as_ref().is_none_or(|want| {
            msg.header
                .dst
                .elements()
                .all(|e| want.get(e.tag).is_none_or(|v| v == e.value))
        });
        let cmd_ok = self
            .command
            .as_ref()
            .is_none_or(|p| msg.commands.iter().any(|c| c.is_under(p)));
        dst_ok && cmd_ok
    }

    fn accepted(
        &mut self,
        at: SystemTime,
        from: SocketAddr,
        msg: &Message,
        len: usize,
        verdict: ReplayVerdict,
    ) -> io::Result<()> {
        let verified = self.keys.is_some();
        let offset = clock_offset(msg, at);
        let replay = ReplayNote::new(msg, verdict);
        if self.json {
            let mut line = verified_line(at, from, msg, len, verified);
            line.clock_offset_ms = Some(offset);
            line.replay = replay;
            return writeln!(self.out, "{}", to_line(&line));
        }
        let hazards: Vec<String> = msg
            .ucl_hazards(len)
            .iter()
            .map(ToString::to_string)
            .collect();
        let again = replay.as_ref().map(|r| r.retransmission);
        let (on, off) = match (self.colour, verified, again) {
            (true, _, Some(false)) => ("\x1b[31m", "\x1b[0m"),
            (true, true, None) => ("\x1b[32m", "\x1b[0m"),
            (true, _, _) => ("\x1b[33m", "\x1b[0m"),
            _ => ("", ""),
        };
        let status = match (again, verified) {
            (Some(true), _) => "again",
            (Some(false), _) => "REPLAY",
            (None, true) => "ok",
            (None, false) => "unverified",
        };
        let text = msg.to_string();
        let mut lines = text.lines();
        writeln!(
            self.out,
            "{}  {from:<21}  {on}{status}{off}  {}",
            rmbus::record::short(at),
            lines.next().unwrap_or_default()
        )?;
        for l in lines {
            writeln!(self.out, "{:>39}{l}", "")?;
        }
        for h in hazards {
            writeln!(self.out, "{:>39}! ucl: {h}", "")?;
        }
        for note in msg.outside_rfc() {
            writeln!(self.out, "{:>39}! outside RFC 3259: {note}", "")?;
        }
        match &replay {
            Some(r) if r.retransmission => {
                writeln!(self.out, "{:>39}! again: {}", "", r.reason)?;
            }
            Some(r) => writeln!(self.out, "{:>39}! replay ({}): {}", "", r.code, r.reason)?,
            None => {}
        }
        let shown = self.clocks.get(&msg.header.src).copied();
        if shown.is_none_or(|s| s.abs_diff(offset) > CLOCK_NOTE_STEP_MS) {
            if self.clocks.len() >= CLOCK_SOURCES {
                self.clocks.clear();
            }
            self.clocks.insert(msg.header.src.clone(), offset);
            writeln!(
                self.out,
                "{:>39}! clock: {} is {} from ours",
                "",
                msg.header.src,
                signed_seconds(offset)
            )?;
        }
        Ok(())
    }

    fn rejected(
        &mut self,
        at: SystemTime,
        from: SocketAddr,
        rejection: &Rejection,
    ) -> io::Result<()> {
        if self.json {
            return writeln!(self.out, "{}", to_line(&rejected_line(at, from, rejection)));
        }
        let (on, off) = if self.colour {
            ("\x1b[31m", "\x1b[0m")
        } else {
            ("", "")
        };
        writeln!(
            self.out,
            "{}  {from:<21}  {on}REJECTED {} at byte {}{off}: {}",
            rmbus::record::short(at),
            rejection.code(),
            rejection.offset(),
            rejection.reason()
        )
    }
}

impl Args {
    /// True with `--read`: no bus, no signal handling.
    pub fn reads_a_capture(&self) -> bool {
        self.read.is_some()
    }
}

pub fn run(args: Args) -> Outcome {
    // Reading a capture creates nothing: without a configuration the records
    // are shown unverified.
    let config = match &args.read {
        Some(_) => args.bus.existing_config()?,
        None => Some(args.bus.config()?),
    };
    let keys = match &config {
        Some(c) => Some(c.keys().map_err(Failure::input)?),
        None => {
            tracing::warn!(
                "no configuration file: showing the records unverified (no keys to check them)"
            );
            None
        }
    };
    // Without a configuration (a capture read alone) the default window,
    // and no clock check: the capture's hosts may have other clocks.
    let policy = config
        .as_ref()
        .map_or_else(ReplayPolicy::default, ReplayPolicy::from_config);
    let stdout = io::stdout();
    let mut printer = Printer {
        replay: ReplayGuard::new(policy, Limits::default().max_replay_entries),
        clocks: HashMap::new(),
        keys,
        json: args.json,
        colour: !args.json && stdout.is_terminal(),
        dst: args.dst.clone(),
        command: args.command.clone(),
        remaining: args.count,
        out: stdout.lock(),
    };
    watch(args, config, &mut printer)
}

/// Whether to go on after printing; a reader that went away (`monitor | head`)
/// ends the monitor quietly.
fn go_on(printed: io::Result<bool>) -> Result<bool, Failure> {
    match printed {
        Ok(more) => Ok(more),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::input(e)),
    }
}

fn watch(args: Args, config: Option<rmbus::config::Config>, printer: &mut Printer) -> Outcome {
    let io_err = |e: io::Error| Failure::input(e);
    if let Some(path) = &args.read {
        let file =
            File::open(path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        let capture =
            pcap::read_all(file).map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        let datagrams = capture.datagrams;
        let port = config
            .as_ref()
            .map_or(rmbus::config::DEFAULT_PORT, |c| c.effective_port());
        for d in datagrams {
            let ours = d.dst.port() == port || printer.open(&d.payload).is_ok();
            if ours && !go_on(printer.datagram(d.at, d.src, &d.payload))? {
                return Ok(());
            }
        }
        if let Some(why) = capture.cut_short {
            tracing::warn!("{}: {why}; the records before it are shown", path.display());
        }
        return Ok(());
    }
    let Some(config) = config else {
        return Err(Failure::input("no configuration to join the bus with"));
    };
    let sockets = rmbus::runtime::socket::open(&config)
        .map_err(|e| Failure::input(format!("cannot join {}: {e}", config.group_addr())))?;
    let group_addr = sockets.group_addr;
    drop(sockets.own);
    let mut capture = match &args.pcap {
        Some(path) => Some(
            File::create(path)
                .map(BufWriter::new)
                .and_then(|out| {
                    let format = args.pcap_format.unwrap_or_else(|| pcap::Format::of(path));
                    pcap::Writer::new(out, format)
                })
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut socket = UdpSocket::from_std(sockets.group);
    let mut poll = Poll::new().map_err(io_err)?;
    poll.registry()
        .register(&mut socket, Token(0), Interest::READABLE)
        .map_err(io_err)?;
    let mut signals = Termination::install().map_err(io_err)?;
    signals
        .register(poll.registry(), Token(1))
        .map_err(io_err)?;
    tracing::info!("monitoring {group_addr}");
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err(e));
        }
        if events.iter().any(|e| e.token() == Token(1)) && signals.arrived() {
            return Ok(());
        }
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let at = SystemTime::now();
                    if let Some(w) = &mut capture {
                        w.write(at, from, group_addr, &buf[..n]).map_err(io_err)?;
                    }
                    if !go_on(printer.datagram(at, from, &buf[..n]))? {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
    }
}
