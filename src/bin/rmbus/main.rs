//! `rmbus`: the command-line face of the rmbus library, one binary with
//! subcommands in the spirit of `busctl`.
//!
//! Exit codes, the same in every subcommand: 0 done; 1 the remote side said no
//! or the message was lost; 2 rejected input (bad arguments or configuration, a
//! datagram that fails authentication); 3 malformed data or no answer in time.

/// The one table of exit codes, at the end of every `--help` (and in the
/// README and the manual pages).
macro_rules! exit_codes {
    () => {
        "Exit status, the same for every rmbus command:
  0    done; a long-running command (demo, monitor, watch, join, member,
       gateway, bridge) stopped by Ctrl-C or SIGTERM after a clean bye
  1    a FAILED return, an unacknowledged delivery (also a call's undeliverable
       request), a CMBS refusal or a partial report
  2    bad arguments or configuration, an authentication failure, an unknown or
       non-unique destination (send, call, get, set; UNKNOWN_MEMBER, and
       UNDESCRIBED for L1; NO_RECIPIENT), an UNKNOWN RPC
  3    malformed data, or no answer in time
  130  a one-shot command interrupted by SIGINT (143: by SIGTERM)"
    };
}

mod bridge;
mod bus_args;
mod call;
mod cmbs_out;
mod decode;
mod demo;
mod driver;
mod encode;
mod exec;
#[cfg(feature = "gateway")]
mod gateway;
mod hosted;
mod join;
mod keygen;
mod list;
mod man;
mod member;
mod members;
mod messages;
mod monitor;
mod pcap;
mod publish;
mod reach;
mod send;
mod signals;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use rmbus::auth::Keys;
use rmbus::config::{file, Config};

/// A failure that ends a subcommand: a message for stderr and an exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Rejected input: bad arguments, configuration or authentication (exit 2).
    pub fn input(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The remote side said no, or the message was lost (exit 1).
    pub fn lost(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }

    /// A one-shot command stopped by SIGINT (130) or SIGTERM (143).
    pub fn interrupted(message: impl std::fmt::Display) -> Failure {
        Failure::with_code(signals::exit_code(), message)
    }

    /// An exit code of the table with a message (empty: nothing more to say).
    pub fn with_code(code: u8, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// Malformed data (exit 3).
    pub fn malformed(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: 3,
            message: message.to_string(),
        }
    }
}

/// What a subcommand returns.
pub type Outcome = Result<(), Failure>;

/// The options every subcommand that reads the bus configuration shares
/// (the global options).
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// The configuration file (default: $MBUS, else ~/.mbus); it must exist.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    /// Reads the configuration file, never creating one, and prepares its keys.
    pub fn load_existing(&self) -> Result<(Config, Keys), Failure> {
        let path = file::locate(self.config.as_deref()).map_err(Failure::input)?;
        let config = file::load(&path).map_err(Failure::input)?;
        let keys = config
            .keys()
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        Ok((config, keys))
    }
}

const EXIT_CODES: &str = exit_codes!();

#[derive(Parser)]
#[command(
    name = "rmbus",
    version,
    about = "The local Message Bus (Mbus, RFC 3259) from the command line"
)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also
    /// works. With --json, -v also prints the configuration used (file, group,
    /// port, scope) as a first {"event":"config",…} line on stdout (join and
    /// bridge: as fields of their ready event).
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Logging")]
    verbose: u8,
    /// Less logging on stderr (errors only).
    #[arg(short, long, global = true, help_heading = "Logging")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(demo::Args),
    Monitor(monitor::Args),
    List(list::Args),
    Send(send::Args),
    Join(join::Args),
    Call(call::CallArgs),
    Get(call::GetArgs),
    Set(call::SetArgs),
    Watch(call::WatchArgs),
    Member(member::Args),
    Members(members::Args),
    Publish(publish::Args),
    Messages(messages::Args),
    #[cfg(feature = "gateway")]
    Gateway(gateway::Args),
    Bridge(bridge::Args),
    Keygen(keygen::Args),
    Decode(decode::Args),
    Encode(encode::Args),
    Completions(Completions),
    /// Print the manual page (roff), e.g. `rmbus man | man -l -`, or write
    /// one page per subcommand with --out DIR.
    Man(man::Args),
}

/// With `--json`, a failure that printed no outcome of its own is one
/// object too: `{"outcome":"error","exit":N,"error":"…"}` (a failure with an
/// empty message already printed its outcome, e.g. a CMBS report).
fn json_errors(json: bool, outcome: Outcome) -> Outcome {
    if let (true, Err(f)) = (json, &outcome) {
        if !f.message.is_empty() {
            let line = serde_json::json!({"outcome": "error", "exit": f.code, "error": f.message});
            let _ = write_stdout(format!("{line}\n").as_bytes());
        }
    }
    outcome
}

impl Command {
    /// True for the commands that join the bus with `--json` and have no
    /// `ready` event of their own to carry the configuration's fields: with
    /// `-v` they print a typed `config` event first.
    fn wants_config_event(&self) -> bool {
        match self {
            Command::Monitor(args) => args.json && !args.reads_a_capture(),
            Command::List(args) => args.json,
            Command::Call(args) => args.target.json,
            Command::Get(args) => args.target.json,
            Command::Set(args) => args.target.json,
            Command::Watch(args) => args.target.json,
            Command::Member(args) => args.json,
            Command::Members(args) => args.json,
            Command::Publish(args) => args.json,
            _ => false,
        }
    }

    /// True for the commands that join the bus and stop cleanly on SIGINT
    /// or SIGTERM (see [`signals::hold`]).
    fn hears_signals(&self) -> bool {
        match self {
            Command::Monitor(args) => !args.reads_a_capture(),
            #[cfg(feature = "gateway")]
            Command::Gateway(args) => !args.hashes_a_password(),
            Command::Demo(_)
            | Command::List(_)
            | Command::Send(_)
            | Command::Join(_)
            | Command::Call(_)
            | Command::Get(_)
            | Command::Set(_)
            | Command::Watch(_)
            | Command::Member(_)
            | Command::Members(_)
            | Command::Publish(_)
            | Command::Bridge(_) => true,
            _ => false,
        }
    }
}

/// Print a shell completion script.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  mkdir -p ~/.local/share/bash-completion/completions
  rmbus completions bash > ~/.local/share/bash-completion/completions/rmbus

", exit_codes!()))]
struct Completions {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes `bytes` to stdout; a reader that went away early is no error.
fn write_stdout(bytes: &[u8]) -> Outcome {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::input(e)),
        _ => Ok(()),
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    if cli.verbose > 0 && !cli.quiet && cli.command.wants_config_event() {
        bus_args::print_config_event();
    }
    // Commands that say bye on Ctrl-C hold the signals from the start.
    if cli.command.hears_signals() {
        if let Err(e) = signals::hold() {
            tracing::warn!("cannot hold SIGINT/SIGTERM: {e}");
        }
    }
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Monitor(args) => monitor::run(args),
        Command::List(args) => json_errors(args.json, list::run(args)),
        Command::Send(args) => send::run(args),
        Command::Join(args) => join::run(args),
        Command::Call(args) => call::run_call(args),
        Command::Get(args) => call::run_get(args),
        Command::Set(args) => call::run_set(args),
        Command::Watch(args) => call::run_watch(args),
        Command::Member(args) => member::run(args),
        Command::Members(args) => json_errors(args.json, members::run(args)),
        Command::Publish(args) => json_errors(args.json, publish::run(args)),
        Command::Messages(args) => json_errors(args.json, messages::run(args)),
        #[cfg(feature = "gateway")]
        Command::Gateway(args) => gateway::run(args),
        Command::Bridge(args) => bridge::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Completions(c) => {
            let mut script = Vec::new();
            clap_complete::generate(c.shell, &mut Cli::command(), "rmbus", &mut script);
            write_stdout(&script)
        }
        Command::Man(args) => man::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("rmbus: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
