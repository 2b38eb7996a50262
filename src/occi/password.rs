//! Password checks on a few threads of their own: argon2id verification
//! (RFC 9106) with a bounded queue and memory that is allocated once per
//! thread and reused, so that a flood of wrong passwords costs at most
//! `threads` × the hashes' memory and is refused, not queued without end.
//!
//! A name that is not a user is checked against a dummy hash of the same
//! cost as the most costly user's, so that answers take as long for both.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// One stored hash, parsed once.
#[derive(Clone)]
struct Stored {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Stored {
    fn parse(phc: &str) -> Result<Stored, String> {
        let h = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
        let algorithm =
            Algorithm::new(h.algorithm.as_str()).map_err(|e| format!("not an argon2 hash: {e}"))?;
        let version = match h.version {
            Some(v) => Version::try_from(v).map_err(|e| format!("argon2 version {v}: {e}"))?,
            None => Version::default(),
        };
        let params = Params::try_from(&h).map_err(|e| format!("argon2 parameters: {e}"))?;
        let salt = h.salt.ok_or("the hash has no salt")?.as_ref().to_vec();
        let hash = h.hash.ok_or("the string has no hash")?.as_bytes().to_vec();
        Ok(Stored {
            algorithm,
            version,
            params,
            salt,
            hash,
        })
    }

    /// True if `password` hashes to this, computed in `memory`.
    fn matches(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        let blocks = self.params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        let mut out = vec![0u8; self.hash.len()];
        let argon = Argon2::new(self.algorithm, self.version, self.params.clone());
        if argon
            .hash_password_into_with_memory(password, &self.salt, &mut out, &mut memory[..blocks])
            .is_err()
        {
            return false;
        }
        // Constant time: every byte is looked at whatever differs.
        out.iter()
            .zip(&self.hash)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Why a check could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The queue is full: the caller should come back later.
    #[error("too many password checks at once")]
    Busy,
    /// The checking threads are gone (they could not be started).
    #[error("the password checks stopped")]
    Stopped,
}

struct Job {
    /// The user's hash, or the dummy for an unknown name.
    against: Arc<Stored>,
    known: bool,
    password: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<bool>,
    /// Held while the job waits or runs, dropped with it.
    _held: Option<Box<dyn Send>>,
}

/// The users' hashes and the threads that check passwords against them.
pub struct Passwords {
    users: HashMap<String, Arc<Stored>>,
    dummy: Arc<Stored>,
    jobs: SyncSender<Job>,
}

impl Passwords {
    /// Parses every (name, PHC string) pair and starts `threads` checking
    /// threads that hold at most `queue` waiting checks between them.
    pub fn new(
        hashes: &HashMap<String, String>,
        threads: usize,
        queue: usize,
    ) -> Result<Passwords, String> {
        let mut users = HashMap::new();
        for (name, phc) in hashes {
            let s = Stored::parse(phc).map_err(|e| format!("user {name}: {e}"))?;
            users.insert(name.clone(), Arc::new(s));
        }
        let costliest = users
            .values()
            .max_by_key(|s| cost(s))
            .map(|s| (**s).clone());
        let cheaper = cheaper_than_the_costliest(&users);
        if !cheaper.is_empty() {
            tracing::warn!(
                "the password hashes of {} cost less than the others': their checks are \
                 faster, which tells their names apart from unknown ones; hash every \
                 password with the same parameters",
                cheaper.join(", ")
            );
        }
        let dummy = match costliest {
            Some(mut s) => {
                // The same cost, a salt and hash nobody knows.
                s.salt = rand::random::<[u8; 16]>().to_vec();
                s.hash = (0..s.hash.len()).map(|_| rand::random()).collect();
                s
            }
            None => Stored::parse(&super::basic::hash_password(&format!(
                "{:x}",
                rand::random::<u128>()
            ))?)?,
        };
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("rmbus-passwords-{n}"))
                .spawn(move || check_loop(&rx))
                .map_err(|e| format!("cannot start a password thread: {e}"))?;
        }
        Ok(Passwords {
            users,
            dummy: Arc::new(dummy),
            jobs,
        })
    }

    /// Checks `password` for `name` on a checking thread; an unknown name
    /// costs as much as a known one and is never right. `held` is kept with
    /// the job until a thread is done with it (or drops it unread because
    /// its caller went away).
    pub fn check(
        &self,
        name: &str,
        password: &[u8],
        held: Option<Box<dyn Send>>,
    ) -> Result<tokio::sync::oneshot::Receiver<bool>, CheckError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let user = self.users.get(name);
        let job = Job {
            against: Arc::clone(user.unwrap_or(&self.dummy)),
            known: user.is_some(),
            password: password.to_vec(),
            reply,
            _held: held,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(CheckError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(CheckError::Stopped),
        }
    }

    /// Checks and waits (for callers outside an async runtime).
    pub fn check_blocking(&self, name: &str, password: &[u8]) -> Result<bool, CheckError> {
        let answer = self.check(name, password, None)?;
        answer.blocking_recv().map_err(|_| CheckError::Stopped)
    }
}

/// What a hash costs to check: memory blocks, passes, lanes.
fn cost(s: &Stored) -> (usize, u32, u32) {
    (s.params.block_count(), s.params.t_cost(), s.params.p_cost())
}

/// The users whose hashes cost less than the costliest one's (sorted):
/// their checks answer faster than an unknown name's.
fn cheaper_than_the_costliest(users: &HashMap<String, Arc<Stored>>) -> Vec<String> {
    let Some(top) = users.values().map(|s| cost(s)).max() else {
        return Vec::new();
    };
    let mut cheaper: Vec<String> = users
        .iter()
        .filter(|(_, s)| cost(s) != top)
        .map(|(n, _)| n.clone())
        .collect();
    cheaper.sort();
    cheaper
}

fn check_loop(rx: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if job.reply.is_closed() {
            // Its client went away while it waited.
            continue;
        }
        let right = job.against.matches(&job.password, &mut memory);
        let _ = job.reply.send(right && job.known);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    fn hash(m_cost: u32) -> String {
        let params = Params::new(m_cost, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw")
            .unwrap()
            .to_string()
    }

    #[test]
    fn users_with_cheaper_hashes_are_named() {
        let parsed = |pairs: &[(&str, String)]| -> HashMap<String, Arc<Stored>> {
            pairs
                .iter()
                .map(|(n, h)| (n.to_string(), Arc::new(Stored::parse(h).unwrap())))
                .collect()
        };
        let same = parsed(&[("ann", hash(64)), ("bob", hash(64))]);
        assert!(cheaper_than_the_costliest(&same).is_empty());
        let mixed = parsed(&[("ann", hash(64)), ("bob", hash(16)), ("cy", hash(8))]);
        assert_eq!(cheaper_than_the_costliest(&mixed), ["bob", "cy"]);
    }
}
