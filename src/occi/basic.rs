//! HTTP Basic authentication (RFC 7617) for an OCCI server: users with
//! argon2id password hashes (PHC strings), users files, and the defences a
//! server reachable by strangers needs:
//!
//! - a cache of verified credentials (a keyed hash of the header, for
//!   [`CACHE_FOR`], at most [`AuthLimits::cached`] entries), so that honest
//!   clients do not pay a password hash per request;
//! - password checks on a few threads of their own with a bounded queue
//!   ([`super::password`]): a check that finds the queue full is answered
//!   503 with `Retry-After`, and memory stays at `checks` × the hash's cost;
//! - a back-off per client address for wrong credentials
//!   ([`super::throttle`]): 429 with `Retry-After` while it lasts, without
//!   a password check (credentials already in the cache still pass); and
//!   at most two checks of one address waiting or running at once (429
//!   beyond), so that one client cannot take the queue all share;
//! - unknown user names checked against a dummy hash of the same cost, so
//!   that timing does not tell which names exist.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::password::{CheckError, Passwords};
use super::server::{Authenticator, BoxFuture, Refusal};
use super::throttle::{Backoff, Throttle};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher;
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a verified credential is trusted without hashing again.
pub const CACHE_FOR: Duration = Duration::from_secs(300);

/// What a client is told to wait when the password checks are all busy.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Hashes `password` into an argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// The bounds of [`Users`]' checks.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Password checks run at once (threads; each holds one hash's memory,
    /// 19 MiB for argon2's default cost).
    pub checks: usize,
    /// Checks that may wait for a thread; one more is answered 503.
    pub queue: usize,
    /// Verified credentials remembered.
    pub cached: usize,
    /// The back-off for wrong credentials, per client address.
    pub backoff: Backoff,
}

impl Default for AuthLimits {
    fn default() -> AuthLimits {
        AuthLimits {
            checks: 2,
            queue: 32,
            cached: 1024,
            backoff: Backoff::default(),
        }
    }
}

/// The gateway's users, their password checks, cache and back-off.
pub struct Users {
    passwords: Passwords,
    key: [u8; 32],
    cached: usize,
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    throttle: Arc<Mutex<Throttle>>,
    /// The password check under way for each header (by its cache key):
    /// requests that bring the same header meanwhile wait for its answer.
    flights: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
}

impl Users {
    /// Users from (name, PHC string) pairs, with the default
    /// [`AuthLimits`]; every string must parse.
    pub fn new(hashes: HashMap<String, String>) -> Result<Users, String> {
        Users::with_limits(hashes, AuthLimits::default())
    }

    /// Users from (name, PHC string) pairs, checked within `limits`.
    pub fn with_limits(
        hashes: HashMap<String, String>,
        limits: AuthLimits,
    ) -> Result<Users, String> {
        Ok(Users {
            passwords: Passwords::new(&hashes, limits.checks, limits.queue)?,
            key: rand::random(),
            cached: limits.cached.max(1),
            cache: Mutex::new(HashMap::new()),
            throttle: Arc::new(Mutex::new(Throttle::new(limits.backoff))),
            flights: Mutex::new(HashMap::new()),
        })
    }

    fn cache_key(&self, header: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length fits HMAC");
        mac.update(header);
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (name, at) = cache.get(key)?;
        (now.duration_since(*at) < CACHE_FOR).then(|| name.clone())
    }

    fn remember(&self, key: [u8; 32], name: &str, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.cached && !cache.contains_key(&key) {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_FOR);
            if cache.len() >= self.cached {
                let oldest = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(key, (name.to_owned(), now));
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.throttle().failed(ip, Instant::now());
        }
    }

    /// Checks an `Authorization` header from `client`: the user's name, or
    /// why not.
    pub async fn check(
        &self,
        header: Option<&[u8]>,
        client: Option<IpAddr>,
    ) -> Result<String, Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let now = Instant::now();
        let key = self.cache_key(header);
        if let Some(name) = self.cached(&key, now) {
            return Ok(name);
        }
        if let Some(left) = client.and_then(|ip| self.throttle().shut_out(ip, now)) {
            return Err(Refusal::Throttled(left));
        }
        // A header we cannot read costs nothing to refuse: not counted.
        let Some((name, password)) = basic_credentials(header) else {
            return Err(Refusal::Wrong);
        };
        // One check per header at a time: a client that opens fifty
        // connections at once with the same credentials pays one hash, and
        // is not refused for having more than two checks waiting.
        let flight = Flight {
            cell: Arc::clone(
                self.flights
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_default(),
            ),
            flights: &self.flights,
            key,
        };
        let answer = flight
            .cell
            .get_or_try_init(|| self.verify(&name, &password, client))
            .await
            .copied();
        if answer == Ok(true) {
            self.remember(key, &name, Instant::now());
        }
        drop(flight);
        match answer? {
            true => {
                if let Some(ip) = client {
                    self.throttle().succeeded(ip);
                }
                Ok(name)
            }
            false => {
                self.failed(client);
                Err(Refusal::Wrong)
            }
        }
    }

    /// One password check on the checking threads, counted against
    /// `client`'s share of the queue: right or wrong, or why it was not
    /// made.
    async fn verify(
        &self,
        name: &str,
        password: &[u8],
        client: Option<IpAddr>,
    ) -> Result<bool, Refusal> {
        let now = Instant::now();
        // The address's share of the queue is taken until a checking thread
        // is done with the job (or drops it unread), not merely until this
        // request gives up waiting; the request that runs the check, if
        // dropped before its answer (a cancelled stream, a closed
        // connection), counts as a failure of its address (the others
        // waiting on it then run the check again).
        let (pending, mut unanswered) = match client {
            Some(ip) => {
                if !self.throttle().start_check(ip, now) {
                    return Err(Refusal::Throttled(BUSY_RETRY));
                }
                let pending = Pending {
                    throttle: Arc::clone(&self.throttle),
                    ip,
                };
                let unanswered = Unanswered {
                    throttle: Arc::clone(&self.throttle),
                    ip: Some(ip),
                };
                (Some(pending), Some(unanswered))
            }
            None => (None, None),
        };
        let held = pending.map(|p| Box::new(p) as Box<dyn Send>);
        let answer = match self.passwords.check(name, password, held) {
            Ok(answer) => answer,
            Err(CheckError::Busy | CheckError::Stopped) => {
                // Not checked at all: no failure of the client's.
                if let Some(u) = unanswered.as_mut() {
                    u.ip = None;
                }
                return Err(Refusal::Busy(BUSY_RETRY));
            }
        };
        let right = answer.await.unwrap_or(false);
        if let Some(u) = unanswered.as_mut() {
            u.ip = None;
        }
        Ok(right)
    }

    /// [`Users::check`] for callers outside an async runtime (tests, tools).
    pub fn check_blocking(&self, header: &[u8]) -> Option<String> {
        let (name, password) = basic_credentials(header)?;
        matches!(self.passwords.check_blocking(&name, &password), Ok(true)).then_some(name)
    }
}

/// A request's place in the check under way for its header: when the
/// request is done or dropped, the check is forgotten (those still waiting
/// on it keep it; a request that comes later starts its own, or finds the
/// cache).
struct Flight<'a> {
    cell: Arc<tokio::sync::OnceCell<bool>>,
    flights: &'a Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
    key: [u8; 32],
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.cell))
        {
            flights.remove(&self.key);
        }
    }
}

/// A client's password check, counted while its job waits or runs: it
/// travels with the job and is dropped with it.
struct Pending {
    throttle: Arc<Mutex<Throttle>>,
    ip: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end_check(self.ip);
    }
}

/// Counts a failure for its address if dropped before the check answered.
struct Unanswered {
    throttle: Arc<Mutex<Throttle>>,
    ip: Option<IpAddr>,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.throttle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed(ip, Instant::now());
        }
    }
}

/// The user name and password of a `Basic` `Authorization` header (RFC
/// 7617 §2; the scheme's name in any case, RFC 9110 §11.1), or `None`.
fn basic_credentials(header: &[u8]) -> Option<(String, Vec<u8>)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = header.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let name = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((name, decoded[colon + 1..].to_vec()))
}

/// HTTP Basic over [`Users`], as a server's [`Authenticator`].
pub struct Basic(pub Arc<Users>);

impl Authenticator for Basic {
    fn check(
        &self,
        authorization: Option<Vec<u8>>,
        client: Option<IpAddr>,
    ) -> BoxFuture<Result<String, Refusal>> {
        let users = Arc::clone(&self.0);
        Box::pin(async move { users.check(authorization.as_deref(), client).await })
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
    use futures_util::FutureExt;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    fn ann() -> Users {
        Users::new(HashMap::from([(
            "ann".to_owned(),
            hash_password("s3cret").unwrap(),
        )]))
        .unwrap()
    }

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let users = ann();
        assert_eq!(
            users.check_blocking(&basic("ann", "s3cret")).as_deref(),
            Some("ann")
        );
        assert_eq!(users.check_blocking(&basic("ann", "wrong")), None);
        assert_eq!(users.check_blocking(&basic("bob", "s3cret")), None);
        assert_eq!(users.check_blocking(b"Basic !!!"), None);
        assert_eq!(users.check_blocking(b"Bearer x"), None);
        assert_ne!(
            users.cache_key(&basic("ann", "a")),
            users.cache_key(&basic("ann", "b"))
        );
    }

    #[test]
    fn the_scheme_name_is_matched_in_any_case_and_passwords_may_hold_colons_and_utf8() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("ann:pa:ss é");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let (n, p) = basic_credentials(format!("{scheme}  {encoded}").as_bytes()).unwrap();
            assert_eq!((n.as_str(), p.as_slice()), ("ann", "pa:ss é".as_bytes()));
        }
        assert!(basic_credentials(format!("Basically {encoded}").as_bytes()).is_none());
    }

    #[test]
    fn unknown_users_cost_what_known_ones_do() {
        // Timing, measured against itself: the median of an unknown name's
        // checks is within a factor of the known name's (0.8 ms against
        // 37 ms before the dummy hash).
        let users = ann();
        let time = |name: &str| {
            let mut v: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    assert!(users.check_blocking(&basic(name, "wrong")).is_none());
                    t.elapsed().as_secs_f64()
                })
                .collect();
            v.sort_by(f64::total_cmp);
            v[2]
        };
        let (known, unknown) = (time("ann"), time("nobody"));
        assert!(
            unknown > known / 3.0 && unknown < known * 3.0,
            "known {known:.4} s, unknown {unknown:.4} s"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wrong_credentials_back_off_per_address_and_cached_ones_still_pass() {
        let users = ann();
        let attacker: IpAddr = "127.0.0.9".parse().unwrap();
        let honest: IpAddr = "127.0.0.1".parse().unwrap();
        let good = basic("ann", "s3cret");
        assert_eq!(
            users.check(Some(&good), Some(attacker)).await.unwrap(),
            "ann"
        );
        let mut throttled = 0;
        for _ in 0..8 {
            match users.check(Some(&basic("ann", "x")), Some(attacker)).await {
                Err(Refusal::Throttled(d)) => {
                    throttled += 1;
                    assert!(d <= Duration::from_secs(1));
                }
                Err(Refusal::Wrong) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(throttled >= 2, "the back-off started: {throttled}");
        assert_eq!(
            users.check(Some(&good), Some(attacker)).await.unwrap(),
            "ann",
            "verified credentials pass from the cache"
        );
        assert!(matches!(
            users
                .check(Some(&basic("ann", "s3cret ")), Some(attacker))
                .await,
            Err(Refusal::Throttled(_))
        ));
        assert!(
            matches!(
                users
                    .check(Some(&basic("ann", "wrong")), Some(honest))
                    .await,
                Err(Refusal::Wrong)
            ),
            "another address is not held back"
        );
        assert!(matches!(
            users.check(None, Some(honest)).await,
            Err(Refusal::Missing)
        ));
    }

    /// An argon2id hash fifty times the default's cost (a large part of a
    /// second a check, even here): a test that must see checks still
    /// queued has time to look, however loaded the machine.
    fn slow_hash(password: &str) -> String {
        let params = argon2::Params::new(19 * 1024, 100, 1, None).unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_check_keeps_its_share_of_the_queue_and_counts_as_a_failure() {
        let users = Users::with_limits(
            HashMap::from([("ann".to_owned(), slow_hash("s3cret"))]),
            AuthLimits {
                checks: 1,
                ..AuthLimits::default()
            },
        )
        .unwrap();
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let wrong = basic("ann", "wrong");
        // Another client's check, still awaited, takes the one checking
        // thread for a while (a slow hash): the jobs below wait behind it.
        let other = basic("ann", "another");
        let mut busy = Box::pin(users.check(Some(&other), Some("127.0.0.8".parse().unwrap())));
        assert!(
            (&mut busy).now_or_never().is_none(),
            "its check is under way"
        );
        // Requests given up at once (a stream reset, a closed connection):
        // each leaves its job, and its address's share, behind it.
        for _ in 0..2 {
            let f = users.check(Some(&wrong), Some(ip));
            assert!(f.now_or_never().is_none(), "waiting for its check");
        }
        let third = users.check(Some(&wrong), Some(ip)).await;
        assert!(
            matches!(third, Err(Refusal::Throttled(_))),
            "the address's two checks are still queued or running: {third:?}"
        );
        // Six cancelled checks shut the address out like six wrong ones.
        let until = Instant::now() + Duration::from_secs(30);
        let mut cancelled = 2;
        while cancelled < 6 {
            let f = users.check(Some(&wrong), Some(ip));
            if f.now_or_never().is_none() {
                cancelled += 1;
            } else {
                assert!(Instant::now() < until, "the queue never drained");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut shut = false;
        while Instant::now() < until && !shut {
            shut = users.throttle().shut_out(ip, Instant::now()).is_some();
            if !shut {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(shut, "cancelled checks count as failures");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_with_the_same_credentials_at_once_share_one_check() {
        let users = ann();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        let good = basic("ann", "s3cret");
        // Fifty connections opened at once (a client's pool): one hash,
        // and none refused for more than two checks of one address.
        let checks: Vec<_> = (0..50)
            .map(|_| users.check(Some(&good), Some(ip)))
            .collect();
        let results = futures_util::future::join_all(checks).await;
        assert!(
            results.iter().all(|r| r.as_deref() == Ok("ann")),
            "{results:?}"
        );
        let wrong = basic("ann", "nope");
        let checks: Vec<_> = (0..10)
            .map(|_| users.check(Some(&wrong), Some(ip)))
            .collect();
        let results = futures_util::future::join_all(checks).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(Refusal::Wrong | Refusal::Throttled(_)))),
            "{results:?}"
        );
        assert!(
            users.throttle().shut_out(ip, Instant::now()).is_some(),
            "each request that got the wrong answer counts as a failure"
        );
        assert!(
            users.flights.lock().unwrap().is_empty(),
            "no check is left behind"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_answers_busy_at_once() {
        let users = Users::with_limits(
            HashMap::from([("ann".to_owned(), hash_password("s3cret").unwrap())]),
            AuthLimits {
                checks: 1,
                queue: 1,
                ..AuthLimits::default()
            },
        )
        .unwrap();
        let wrong: Vec<Vec<u8>> = (0..6).map(|i| basic("ann", &format!("wrong{i}"))).collect();
        let checks: Vec<_> = wrong.iter().map(|w| users.check(Some(w), None)).collect();
        let results = futures_util::future::join_all(checks).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(Refusal::Busy(_))))
            .count();
        assert!(busy >= 1, "{results:?}");
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(Refusal::Wrong | Refusal::Busy(_)))));
    }

    #[test]
    fn users_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        let password = create_admin(&p).unwrap();
        let users = read_users_file(&p).unwrap();
        let u = Users::new(users).unwrap();
        assert_eq!(
            u.check_blocking(&basic("admin", &password)).as_deref(),
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
