//! `rmbus man`: the manual pages, generated from the command definitions
//! (clap_mangen): `rmbus(1)` with the configuration file and the exit codes,
//! and one page per subcommand (`rmbus-monitor(1)`, …) with its options, its
//! examples, and for `rmbus-join(1)` the action and event grammar.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::{write_stdout, Failure, Outcome};

/// Print the manual page, or write every page to a directory.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus man | man -l -
  rmbus man --out target/man && man -l target/man/rmbus-join.1

", exit_codes!()))]
pub struct Args {
    /// Write rmbus.1 and one rmbus-SUBCOMMAND.1 per subcommand into DIR
    /// (created if missing) instead of printing rmbus(1).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// The configuration file, for the FILES section of rmbus(1).
const CONFIGURATION: &str = "\
The configuration file is $MBUS (a file, or a directory holding .mbus), else
~/.mbus. Only that default location is ever created, with fresh keys, by a
command that joins the bus; a file named with --config must exist. It must be
readable and writable by its owner only (mode 0600), and is read under a POSIX
record lock, as the UCL library does.

[MBUS]
CONFIG_VERSION=1
HASHKEY=(HMAC-MD5-96,<base64 key>)      or HMAC-SHA1-96
ENCRYPTIONKEY=(NOENCR,)                 or (DES,<key>), (AES,<key>), (3DES,<key>)
SCOPE=HOSTLOCAL                         or LINKLOCAL
ADDRESS=239.255.255.247                 the group
PORT=47000

Extension keys: INTERFACE, SEND_UNICAST (yes/no), IPVERSION (4/6), FRAMING
(LF/CRLF), REPLAY_WINDOW (seconds a source's datagrams are remembered to refuse
replays, 30 by default, or off) and REPLAY_CLOCK (yes/no: also refuse a
TimeStamp further than the window from our clock; yes by default on HOSTLOCAL,
no on LINKLOCAL). Unknown keys are ignored. A file without CONFIG_VERSION is
read as version 1. An error names the file, the line and the key.";

pub fn run(args: Args) -> Outcome {
    let mut cli = crate::Cli::command().disable_help_subcommand(true);
    cli.build();
    match &args.out {
        None => {
            let mut page = Vec::new();
            main_page(&cli, &mut page).map_err(Failure::input)?;
            write_stdout(&page)
        }
        Some(dir) => write_all(&cli, dir),
    }
}

/// rmbus(1): clap's page, then FILES and EXIT STATUS.
fn main_page(cli: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cli.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    section(out, "FILES", CONFIGURATION)?;
    section(out, "EXIT STATUS", exit_codes!())?;
    man.render_version_section(out)
}

/// A section of preformatted text.
fn section(out: &mut Vec<u8>, title: &str, text: &str) -> std::io::Result<()> {
    writeln!(out, ".SH \"{title}\"")?;
    writeln!(out, ".nf")?;
    for line in text.lines() {
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            writeln!(out, "\\&{line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, ".fi")
}

fn write_all(cli: &clap::Command, dir: &Path) -> Outcome {
    let io = |e: std::io::Error| Failure::input(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut page = Vec::new();
    main_page(cli, &mut page).map_err(io)?;
    let main = dir.join("rmbus.1");
    std::fs::write(&main, page).map_err(io)?;
    let mut written = vec![main];
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = clap_mangen::Man::new(sub.clone())
            .generate_to(dir)
            .map_err(io)?;
        written.push(path);
    }
    let list: String = written
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    write_stdout(list.as_bytes())
}
