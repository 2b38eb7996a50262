//! HTTP Basic authentication (RFC 7617) for an OCCI server: users with
//! argon2id password hashes (PHC strings), users files, and a cache of
//! verified credentials (a keyed hash of the header, five minutes) so that
//! a request does not pay a password hash.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::server::{Authenticator, BoxFuture};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a verified credential is trusted without hashing again.
pub const CACHE_FOR: Duration = Duration::from_secs(300);

/// Hashes `password` into an argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// The gateway's users and its cache.
pub struct Users {
    hashes: HashMap<String, String>,
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Users {
    /// Users from (name, PHC string) pairs; every string must parse.
    pub fn new(hashes: HashMap<String, String>) -> Result<Users, String> {
        for (name, h) in &hashes {
            PasswordHash::new(h).map_err(|e| format!("user {name}: not a PHC string: {e}"))?;
        }
        Ok(Users {
            hashes,
            key: rand::random(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cache_key(&self, header: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length fits HMAC");
        mac.update(header.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user a `Basic` header names, if its password is right.
    fn verify(&self, header: &str) -> Option<String> {
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (name, password) = decoded.split_once(':')?;
        let hash = PasswordHash::new(self.hashes.get(name)?).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()?;
        Some(name.to_owned())
    }
}

/// HTTP Basic over [`Users`], as a server's [`Authenticator`].
pub struct Basic(pub Arc<Users>);

impl Authenticator for Basic {
    fn check(&self, authorization: Option<String>) -> BoxFuture<Option<String>> {
        let users = Arc::clone(&self.0);
        Box::pin(async move {
            let header = authorization?;
            let key = users.cache_key(&header);
            {
                let mut cache = users.cache.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_FOR);
                if let Some((name, _)) = cache.get(&key) {
                    return Some(name.clone());
                }
            }
            let u = Arc::clone(&users);
            let name = tokio::task::spawn_blocking(move || u.verify(&header))
                .await
                .ok()??;
            users
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (name.clone(), Instant::now()));
            Some(name)
        })
    }
}

/// Reads a users file: `NAME:<PHC string>` per line, `#` comments. It must
/// not be readable by group or others (mode 0600), like the bus config.
pub fn read_users_file(path: &Path) -> Result<HashMap<String, String>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| at(&e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(at(&format!(
            "mode {mode:04o} lets others read the password hashes; chmod 600 it"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| at(&e))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_at = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
        let (name, hash) = line
            .split_once(':')
            .ok_or_else(|| line_at("expected NAME:<argon2id PHC string>"))?;
        if name.is_empty() {
            return Err(line_at("the user name is empty"));
        }
        PasswordHash::new(hash)
            .map_err(|e| line_at(&format!("user {name}: not a PHC string: {e}")))?;
        if out.insert(name.to_owned(), hash.to_owned()).is_some() {
            return Err(line_at(&format!("user {name} is given twice")));
        }
    }
    Ok(out)
}

/// Creates user `admin` with a random password in a new users file at
/// `path` (mode 0600); the password.
pub fn create_admin(path: &Path) -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 20] = rand::random();
    let password: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let line = format!(
        "# rmbus gateway users: NAME:<argon2id PHC string>\nadmin:{}\n",
        hash_password(&password)?
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let users = Users::new(HashMap::from([(
            "ann".to_owned(),
            hash_password("s3cret").unwrap(),
        )]))
        .unwrap();
        assert_eq!(
            users.verify(&basic("ann", "s3cret")).as_deref(),
            Some("ann")
        );
        assert_eq!(users.verify(&basic("ann", "wrong")), None);
        assert_eq!(users.verify(&basic("bob", "s3cret")), None);
        assert_eq!(users.verify("Basic !!!"), None);
        assert_eq!(users.verify("Bearer x"), None);
        assert_ne!(
            users.cache_key(&basic("ann", "a")),
            users.cache_key(&basic("ann", "b"))
        );
    }

    #[test]
    fn users_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        let password = create_admin(&p).unwrap();
        let users = read_users_file(&p).unwrap();
        let u = Users::new(users).unwrap();
        assert_eq!(
            u.verify(&basic("admin", &password)).as_deref(),
            Some("admin")
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_users_file(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "ann:notahash\n").unwrap();
        let e = read_users_file(&p).unwrap_err();
        assert!(e.contains("users:1:"), "{e}");
    }
}
