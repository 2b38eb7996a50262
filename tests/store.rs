//! The CMBS stores: SQLite keeps members, messages and held messages across
//! a reopen, several members in one file, retention, the schema version,
//! and a store that cannot be written turning into failed batches.
#![cfg(feature = "sqlite")]

use std::time::{Duration, SystemTime};

use rmbus::cmbs::{Content, HeldRecord, Layer, Message, StoreBatch, StoreOp};
use rmbus::store::{
    MemoryStore, Retention, SqliteStore, Store, StoreError, Worker, SCHEMA_VERSION,
};

fn message(id: &str, n: i64) -> Message {
    let mut m = Message::new(id, Layer::L32, Content::Json(serde_json::json!({ "n": n })));
    m.topics = vec!["a.b".into()];
    m.storable = true;
    m.path_history = vec!["sender".into(), "m1".into()];
    m.result = Some(serde_json::json!("r"));
    m
}

fn save(m: Message) -> StoreOp {
    StoreOp::Save {
        message: m,
        from: "(app:cmbs module:publish id:1-1@127.0.0.1)".into(),
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[test]
fn sqlite_keeps_members_messages_and_held_messages_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/members.sqlite");
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.add_member("m1").unwrap();
        s.add_member("m2").unwrap();
        s.add_member("m1").unwrap();
        s.commit("m1", &[save(message("x", 1)), save(message("y", 2))], t(0))
            .unwrap();
        s.commit("m2", &[save(message("z", 3))], t(1)).unwrap();
        let held = HeldRecord {
            message: message("h", 4),
            until_unix_ms: 1_700_000_100_000,
            delivered: vec!["m2".into()],
        };
        s.commit("m1", &[StoreOp::Hold(held.clone())], t(2))
            .unwrap();
        assert!(
            path.with_extension("sqlite-wal").exists(),
            "the journal is a WAL"
        );
    }
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.members().unwrap(), vec!["m1", "m2"]);
    let m1 = s.messages("m1").unwrap();
    assert_eq!(m1.len(), 2);
    assert_eq!(
        m1[0].message,
        message("x", 1),
        "result and path_history are kept"
    );
    assert_eq!(m1[0].stored_unix_ms, 1_700_000_000_000);
    assert!(m1[0].from.contains("module:publish"));
    assert_eq!(s.messages("m2").unwrap().len(), 1);
    let held = s.held("m1").unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].delivered, vec!["m2"]);
    assert!(s.held("m2").unwrap().is_empty());
    s.commit("m1", &[StoreOp::Release { id: "h".into() }], t(3))
        .unwrap();
    assert!(s.held("m1").unwrap().is_empty());
    let mut answered = s.answered("m1").unwrap();
    answered.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        answered,
        vec![
            ("x".to_owned(), Some(serde_json::json!("r"))),
            ("y".to_owned(), Some(serde_json::json!("r")))
        ]
    );
    let mut no_result = message("z2", 9);
    no_result.result = None;
    s.commit("m3", &[save(no_result)], t(4)).unwrap();
    assert_eq!(s.answered("m3").unwrap(), vec![("z2".to_owned(), None)]);
    assert!(s.message("m1", "y").unwrap().is_some());
    assert!(s.delete("m1", "y").unwrap());
    assert!(!s.delete("m1", "y").unwrap());
    assert_eq!(s.purge("m2").unwrap(), 1);
    assert_eq!(s.messages("m1").unwrap().len(), 1);
}

#[test]
fn retention_keeps_the_newest_n_and_nothing_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let mut sqlite = SqliteStore::open(&path).unwrap();
    let mut memory = MemoryStore::new();
    for s in [&mut sqlite as &mut dyn Store, &mut memory] {
        for k in 0..10 {
            s.commit(
                "m",
                &[save(message(&format!("k{k}"), k))],
                t(k as u64 * 86_400),
            )
            .unwrap();
        }
        let removed = s
            .retain(
                "m",
                Retention {
                    keep: 5,
                    keep_for: Duration::from_secs(3 * 86_400),
                },
                t(9 * 86_400),
            )
            .unwrap();
        let left: Vec<String> = s
            .messages("m")
            .unwrap()
            .into_iter()
            .map(|m| m.message.id)
            .collect();
        assert_eq!(left, vec!["k6", "k7", "k8", "k9"]);
        assert_eq!(removed, 6);
    }
}

#[test]
fn the_schema_is_versioned_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    SqliteStore::open(&path).unwrap();
    // A file from a later rmbus.
    set_user_version(&path, SCHEMA_VERSION + 1);
    match SqliteStore::open(&path) {
        Err(StoreError::TooNew { found, known }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SqliteStore::open_read_only(&path),
        Err(StoreError::TooNew { .. })
    ));
}

/// Sets `PRAGMA user_version` by editing the database header (bytes 60–63,
/// big-endian), without a second SQLite binding in the tests.
fn set_user_version(path: &std::path::Path, version: i64) {
    // The last connection to close folds the WAL back into the file.
    let wal = path.with_extension("sqlite-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL still holds pages"
    );
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&(version as u32).to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_store_that_cannot_be_written_fails_its_batches_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.sqlite");
    SqliteStore::open(&path).unwrap().add_member("m").unwrap();
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(
        ro.members().unwrap(),
        vec!["m"],
        "a read-only store still reads"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = Worker::spawn(Box::new(ro), Retention::default(), move || {
        let _ = tx.send(());
    })
    .unwrap();
    for ticket in 0..3 {
        worker.submit(StoreBatch {
            ticket,
            member: "m".into(),
            ops: vec![save(message(&format!("t{ticket}"), 0))],
        });
    }
    let mut done = Vec::new();
    while done.len() < 3 {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the worker answers");
        done.extend(worker.completed());
    }
    assert_eq!(
        done.iter().map(|d| d.ticket).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(done
        .iter()
        .all(|d| d.result.as_ref().is_err_and(|e| e.contains("read-only"))));
}

#[test]
fn the_worker_commits_what_it_is_given_and_finish_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sqlite");
    let worker = Worker::spawn(
        Box::new(SqliteStore::open(&path).unwrap()),
        Retention::default(),
        || {},
    )
    .unwrap();
    for ticket in 0..64 {
        worker.submit(StoreBatch {
            ticket,
            member: "m".into(),
            ops: vec![save(message(&format!("w{ticket}"), ticket as i64))],
        });
    }
    let done = worker.finish();
    assert_eq!(done.len(), 64);
    assert!(done.iter().all(|d| d.result.is_ok()));
    assert_eq!(
        SqliteStore::open(&path)
            .unwrap()
            .messages("m")
            .unwrap()
            .len(),
        64
    );
}

/// A store whose first commit waits until it is let go, so that the
/// batches handed over meanwhile are all waiting when the worker looks.
struct Gated {
    inner: MemoryStore,
    gate: Option<std::sync::mpsc::Receiver<()>>,
    rounds: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Store for Gated {
    fn add_member(&mut self, id: &str) -> Result<(), StoreError> {
        self.inner.add_member(id)
    }
    fn members(&self) -> Result<Vec<String>, StoreError> {
        self.inner.members()
    }
    fn description(&self, member: &str) -> Result<Option<rmbus::cmbs::Description>, StoreError> {
        self.inner.description(member)
    }
    fn commit(&mut self, member: &str, ops: &[StoreOp], now: SystemTime) -> Result<(), StoreError> {
        self.inner.commit(member, ops, now)
    }
    fn commit_all(
        &mut self,
        batches: &[(&str, &[StoreOp])],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if let Some(gate) = self.gate.take() {
            let _ = gate.recv();
        }
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for (m, ops) in batches {
            self.inner.commit(m, ops, now)?;
        }
        Ok(())
    }
    fn messages(&self, member: &str) -> Result<Vec<rmbus::cmbs::StoredMessage>, StoreError> {
        self.inner.messages(member)
    }
    fn message(
        &self,
        member: &str,
        id: &str,
    ) -> Result<Option<rmbus::cmbs::StoredMessage>, StoreError> {
        self.inner.message(member, id)
    }
    fn delete(&mut self, member: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete(member, id)
    }
    fn purge(&mut self, member: &str) -> Result<usize, StoreError> {
        self.inner.purge(member)
    }
    fn held(&self, member: &str) -> Result<Vec<HeldRecord>, StoreError> {
        self.inner.held(member)
    }
    fn retain(&mut self, member: &str, r: Retention, now: SystemTime) -> Result<usize, StoreError> {
        self.inner.retain(member, r, now)
    }
}

#[test]
fn batches_that_wait_while_the_disk_is_busy_share_one_transaction() {
    let (open_gate, gate) = std::sync::mpsc::channel();
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = Gated {
        inner: MemoryStore::new(),
        gate: Some(gate),
        rounds: rounds.clone(),
    };
    let worker = Worker::spawn(Box::new(store), Retention::default(), || {}).unwrap();
    let batch = |ticket: u64| StoreBatch {
        ticket,
        member: "m".into(),
        ops: vec![save(message(&format!("g{ticket}"), 0))],
    };
    // The first batch holds the "disk"; ten more arrive meanwhile.
    worker.submit(batch(0));
    for ticket in 1..=10 {
        worker.submit(batch(ticket));
    }
    open_gate.send(()).unwrap();
    let done = worker.finish();
    assert_eq!(done.len(), 11);
    assert!(done.iter().all(|d| d.result.is_ok()));
    let rounds = rounds.load(std::sync::atomic::Ordering::SeqCst);
    assert!(rounds <= 2, "{rounds} transactions for 11 batches");
}

#[test]
fn a_members_description_is_kept_and_read_back_in_both_stores() {
    use rmbus::cmbs::{Description, Layer, LayerSet, MemberState};
    let dir = tempfile::tempdir().unwrap();
    let mut d = Description::new("m1");
    d.topics = vec!["jobs.#".into()];
    d.providers = vec!["weather".into()];
    d.neighbors = vec!["mbus:other/l1".into()];
    d.started = LayerSet::parse_list("l1,l3.2").unwrap();
    d.state = MemberState::Suspended;
    let stores: Vec<Box<dyn Store>> = vec![
        Box::new(MemoryStore::new()),
        Box::new(SqliteStore::open(&dir.path().join("s.sqlite")).unwrap()),
    ];
    for mut s in stores {
        assert_eq!(s.description("m1").unwrap(), None);
        s.add_member("m1").unwrap();
        assert_eq!(s.description("m1").unwrap(), None, "an id alone");
        s.commit("m1", &[StoreOp::Describe(d.clone())], t(1))
            .unwrap();
        assert_eq!(s.description("m1").unwrap().as_ref(), Some(&d));
        let mut later = d.clone();
        later.started.remove(Layer::L1);
        s.commit("m1", &[StoreOp::Describe(later.clone())], t(2))
            .unwrap();
        assert_eq!(s.description("m1").unwrap(), Some(later));
        assert_eq!(s.members().unwrap(), ["m1"]);
    }
    // A schema-1 file (no descriptions) is migrated and reads as none.
    let old = dir.path().join("old.sqlite");
    drop(SqliteStore::open(&old).unwrap());
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch(
            "DROP TABLE members;
             CREATE TABLE members (id TEXT PRIMARY KEY, added_ms INTEGER NOT NULL, position INTEGER NOT NULL);
             INSERT INTO members VALUES ('m0', 1, 1);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&old).unwrap();
    assert_eq!(s.members().unwrap(), ["m0"]);
    assert_eq!(s.description("m0").unwrap(), None);
}
