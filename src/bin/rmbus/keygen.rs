//! `rmbus keygen`: write a new configuration file with fresh keys.

use std::path::PathBuf;

use clap::ValueEnum;
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{file, Config};

use crate::{Failure, Outcome};

/// The HMAC for `--hash`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Hash {
    /// HMAC-MD5-96 (every deployed peer speaks it).
    Md5,
    /// HMAC-SHA1-96 (the RFC's MUST).
    Sha1,
}

/// The cipher for `--cipher`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Cipher {
    /// No encryption.
    None,
    /// DES-CBC (UCL-compatible).
    Des,
    /// AES-128-CBC (UCL peers accept only none and des).
    Aes,
    /// Triple DES (EDE3) in CBC mode (UCL peers accept only none and des).
    #[value(name = "3des")]
    TripleDes,
}

/// Write a new configuration file (mode 0600) with fresh random keys.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  rmbus keygen --hash sha1 --cipher aes -o ~/.mbus-test

The file is never overwritten without --force. Without -o it is $MBUS (a file, or a
directory holding .mbus), else ~/.mbus.

", exit_codes!()))]
pub struct Args {
    /// The HMAC algorithm.
    #[arg(long, value_enum, default_value = "md5")]
    hash: Hash,
    /// The encryption algorithm.
    #[arg(long, value_enum, default_value = "none")]
    cipher: Cipher,
    /// Where to write (default: $MBUS, else ~/.mbus).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Replace an existing file (its old keys are lost).
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Outcome {
    let hash = match args.hash {
        Hash::Md5 => HashAlgo::HmacMd5_96,
        Hash::Sha1 => HashAlgo::HmacSha1_96,
    };
    let cipher = match args.cipher {
        Cipher::None => CipherAlgo::None,
        Cipher::Des => CipherAlgo::Des,
        Cipher::Aes => CipherAlgo::Aes,
        Cipher::TripleDes => CipherAlgo::TripleDes,
    };
    let path = file::locate(args.output.as_deref()).map_err(Failure::input)?;
    let config = Config::generate(hash, cipher);
    file::write_new(&path, &config, args.force).map_err(Failure::input)?;
    eprintln!(
        "rmbus: wrote {} with fresh keys ({hash}, {cipher})",
        path.display()
    );
    if matches!(cipher, CipherAlgo::Aes | CipherAlgo::TripleDes) {
        eprintln!(
            "rmbus: note: UCL peers (RAT, VIC, SDR) accept only NOENCR and DES: they cannot read a bus encrypted with {cipher}"
        );
    }
    Ok(())
}
