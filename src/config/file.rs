//! Finding, locking, reading, creating and writing the configuration file
//! (RFC 3259 §12.1, with the fcntl record lock the UCL library takes).
//!
//! The file must be readable and writable by its owner only: a file that others
//! may read or write is refused with an error that says how to fix it. While the
//! file is read or created, a POSIX record lock (`fcntl(F_SETLKW)`, the kind UCL
//! takes) is held on it, so two programs starting together agree on one key.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;

use super::{Config, ConfigError};
use crate::auth::{CipherAlgo, HashAlgo};

/// The file name used in a home directory or a `$MBUS` directory.
pub const FILE_NAME: &str = ".mbus";

/// The configuration file's location: `path` if given, else `$MBUS`, else
/// `$HOME/.mbus`. A path naming an existing directory means the `.mbus` file in it.
pub fn locate(path: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let chosen = match path {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("MBUS").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(FILE_NAME))
                .ok_or(ConfigError::NoLocation)?,
        },
    };
    Ok(if chosen.is_dir() {
        chosen.join(FILE_NAME)
    } else {
        chosen
    })
}

/// Reads an existing configuration file; never creates one.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ConfigError::NotFound {
            path: path.to_path_buf(),
        },
        _ => io_error(path, e),
    })?;
    check_mode(&file, path)?;
    lock(&file, path, libc::F_RDLCK)?;
    let text = read_text(&mut file, path)?;
    parse_and_warn(&text, path)
}

/// Parses a configuration file's text, and warns of each unknown key with
/// the file and line (a typo would otherwise leave a setting at its default
/// in silence).
fn parse_and_warn(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let (config, unknown) =
        Config::parse_checked(text).map_err(|e| e.in_file(path.to_path_buf()))?;
    for u in unknown {
        tracing::warn!("{}:{}: {u}", path.display(), u.line);
    }
    Ok(config)
}

/// What [`load_or_create`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration read (or created).
    pub config: Config,
    /// True if the file did not exist (or was empty) and was created with fresh keys.
    pub created: bool,
    /// True if the file existed but was empty, and the fresh keys were
    /// written into it (UCL does the same).
    pub was_empty: bool,
}

/// The configuration a program joins with (RFC 3259 §12.1): the file
/// `explicit`, which must exist, or without one `$MBUS`, else `~/.mbus`,
/// created with fresh keys (HMAC-MD5-96, no encryption) when missing, as
/// UCL creates it. Returns the file's path too.
pub fn load_for_joining(explicit: Option<&Path>) -> Result<(PathBuf, Config), ConfigError> {
    let path = locate(explicit)?;
    let config = match explicit {
        Some(_) => load(&path)?,
        None => load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None)?.config,
    };
    Ok((path, config))
}

/// Reads the configuration file, creating it with fresh keys (mode 0600) when it
/// is missing or empty, all under a write lock (what UCL does).
pub fn load_or_create(
    path: &Path,
    hash: HashAlgo,
    cipher: CipherAlgo,
) -> Result<Loaded, ConfigError> {
    // Created here, or there before (perhaps empty): UCL fills an empty file
    // too, and the caller tells the user which it was.
    let (mut file, existed) = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => (file, false),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => (
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io_error(path, e))?,
            true,
        ),
        Err(e) => return Err(io_error(path, e)),
    };
    lock(&file, path, libc::F_WRLCK)?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    if len == 0 {
        if existed {
            // Keys go into it: nobody else may read them.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error(path, e))?;
        }
        let config = Config::generate(hash, cipher);
        write_all(&mut file, path, &config)?;
        return Ok(Loaded {
            config,
            created: true,
            was_empty: existed,
        });
    }
    check_mode(&file, path)?;
    let text = read_text(&mut file, path)?;
    let config = parse_and_warn(&text, path)?;
    Ok(Loaded {
        config,
        created: false,
        was_empty: false,
    })
}

/// Writes `config` to a new file with mode 0600. An existing file is replaced
/// only if `overwrite` is set (under a write lock, and its mode reset to 0600).
pub fn write_new(path: &Path, config: &Config, overwrite: bool) -> Result<(), ConfigError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(false);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => ConfigError::AlreadyExists {
            path: path.to_path_buf(),
        },
        _ => io_error(path, e),
    })?;
    lock(&file, path, libc::F_WRLCK)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error(path, e))?;
    file.set_len(0).map_err(|e| io_error(path, e))?;
    write_all(&mut file, path, config)
}

fn write_all(file: &mut File, path: &Path, config: &Config) -> Result<(), ConfigError> {
    file.write_all(config.to_file_text().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

fn read_text(file: &mut File, path: &Path) -> Result<String, ConfigError> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| io_error(path, e))?;
    Ok(text)
}

fn io_error(path: &Path, source: std::io::Error) -> ConfigError {
    ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a file that others may read or write (RFC 3259 §12.1).
fn check_mode(file: &File, path: &Path) -> Result<(), ConfigError> {
    let mode = file
        .metadata()
        .map_err(|e| io_error(path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Takes a blocking POSIX record lock on the whole file; it is released when
/// the file is closed.
fn lock(file: &File, path: &Path, kind: libc::c_int) -> Result<(), ConfigError> {
    let request = libc::flock {
        // The lock type constants fit a c_short on every platform.
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        match fcntl(file, FcntlArg::F_SETLKW(&request)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_error(path, e.into())),
        }
    }
}
