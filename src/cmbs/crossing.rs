//! What bridges say to each other over NATS: the subjects, and the
//! messages on them, lines of Mbus values (Guidelines optional-argument
//! maps, §3.2.1) in Mbus text, each read by the same parser as a datagram
//! and with the same rule that unknown fields are ignored.
//!
//! Subjects, under a prefix (`cmbs` by default), for site `S`:
//!
//! | subject | who publishes | what |
//! |---|---|---|
//! | `cmbs.dir.S` | S's bridge | [`Update`]s of S's members and [`Heartbeat`]s |
//! | `cmbs.sync.S` | any bridge (request) | S's bridge answers a [`SyncPage`] of its members |
//! | `cmbs.deliver.S` | any bridge (request) | S's bridge delivers to its members and answers ([`RelayAnswer`]) |
//!
//! Replies go to each requester's inbox, `_INBOX_S.>` for the bridge of
//! site `S` (so that a NATS server can allow each site only its own).
//! A payload is a header map on its first line and, for an update, a page,
//! a delivery or an answer, one item per line after it.

use std::time::Duration;

use crate::wire::{Address, Value};

use super::description::Description;
use super::map::{Fields, MapWriter};
use super::relay::{answer_value, read_answer, Relay, RelayAnswer};

/// The largest message a bridge takes from NATS (and NATS's own default
/// limit): anything longer is dropped and counted.
pub const MAX_CROSSING_BYTES: usize = 1 << 20;

/// The most bytes of members in one [`SyncPage`] or [`Update`] (half of
/// [`MAX_CROSSING_BYTES`]).
pub const PAGE_BYTES: usize = 512 * 1024;

/// The most pages a site's directory comes in: a page holds at least one
/// member, and a directory at most [`crate::cmbs::MAX_MEMBERS`].
pub const MAX_PAGES: u64 = super::directory::MAX_MEMBERS as u64;

/// The subjects of one deployment: `<prefix>.dir.<site>` and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Subjects {
        Subjects {
            prefix: "cmbs".into(),
        }
    }
}

/// True if `name` is a valid site name: 1 to 64 letters, digits, `-` or
/// `_` (one NATS subject token, and an Mbus address value).
pub fn valid_site(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Subjects {
    /// Subjects under `prefix` (dot-separated tokens of letters, digits,
    /// `-` and `_`); `None` if it is not one.
    pub fn new(prefix: &str) -> Option<Subjects> {
        prefix.split('.').all(valid_site).then(|| Subjects {
            prefix: prefix.to_owned(),
        })
    }

    /// Where site `site`'s bridge publishes its directory.
    pub fn dir(&self, site: &str) -> String {
        format!("{}.dir.{site}", self.prefix)
    }

    /// Every site's directory (a subscription).
    pub fn all_dirs(&self) -> String {
        format!("{}.dir.*", self.prefix)
    }

    /// Where site `site`'s bridge answers for its directory.
    pub fn sync(&self, site: &str) -> String {
        format!("{}.sync.{site}", self.prefix)
    }

    /// Where site `site`'s bridge takes deliveries to its members.
    pub fn deliver(&self, site: &str) -> String {
        format!("{}.deliver.{site}", self.prefix)
    }

    /// The site a directory subject is for.
    pub fn site_of_dir<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".dir.")
            .filter(|s| valid_site(s))
    }

    /// The inbox prefix of site `site`'s bridge.
    pub fn inbox(site: &str) -> String {
        format!("_INBOX_{site}")
    }
}

/// A member as its own site knows it: what it announced, and its address
/// on that site's bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its description (never a remote one).
    pub description: Description,
    /// Its address.
    pub address: Address,
}

/// Members of a site that joined or changed, and those that left; each
/// update numbered in the bridge's run (`epoch`), so that a bridge that
/// missed one asks for the whole directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The site.
    pub site: String,
    /// The run of its bridge.
    pub epoch: u64,
    /// This update's number in that run (the first is 1).
    pub version: u64,
    /// Members new or changed.
    pub members: Vec<Known>,
    /// Members that left.
    pub left: Vec<String>,
}

/// A bridge is there: once a second, with the number of its last update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The site.
    pub site: String,
    /// The run of its bridge.
    pub epoch: u64,
    /// The number of its last update.
    pub version: u64,
    /// How many members its directory holds.
    pub members: u64,
}

/// One page of a site's directory, answering a sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// The site.
    pub site: String,
    /// The run of its bridge.
    pub epoch: u64,
    /// The number of the last update this page includes.
    pub version: u64,
    /// This page (from 0).
    pub page: u64,
    /// How many pages there are.
    pub pages: u64,
    /// The members on this page.
    pub members: Vec<Known>,
}

/// A delivery crossing to another site: who sent it on its bus, and the
/// relay (message, recipients there, the far side's timeout).
#[derive(Debug, Clone, PartialEq)]
pub struct CrossDeliver {
    /// The original sender (the far side keeps its order per sender and
    /// recipient).
    pub origin: Address,
    /// The message and its recipients at that site.
    pub relay: Relay,
}

/// Anything a bridge sends another over NATS.
#[derive(Debug, Clone, PartialEq)]
pub enum Crossing {
    /// On `dir.<site>`.
    Update(Update),
    /// On `dir.<site>`.
    Heartbeat(Heartbeat),
    /// A request on `sync.<site>`: page `page` of its directory.
    SyncAsk {
        /// The page wanted.
        page: u64,
        /// The version the sync began with (`None` for its first page: the
        /// current one).
        version: Option<u64>,
    },
    /// The answer to [`Crossing::SyncAsk`].
    SyncPage(SyncPage),
    /// A request on `deliver.<site>`.
    Deliver(Box<CrossDeliver>),
    /// The answer to [`Crossing::Deliver`].
    Answer(RelayAnswer),
}

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

fn known_value(k: &Known) -> Value {
    let mut m = MapWriter::default();
    m.put("member", k.description.to_value())
        .string("address", &k.address.to_string());
    m.finish()
}

fn read_known(v: &Value) -> Result<Known, String> {
    let f = Fields::read(v)?;
    let description =
        Description::from_value(f.get("member").ok_or("a member without \"member\"")?)?;
    if description.remote.is_some() {
        return Err("a site's own member is never remote".into());
    }
    let address = Address::parse(f.string("address")?).map_err(|e| format!("the address: {e}"))?;
    if super::shared::member_id_of(&address) != Some(description.id.as_str()) {
        return Err("a member's address names another member id".into());
    }
    Ok(Known {
        description,
        address,
    })
}

fn read_site(f: &Fields<'_>) -> Result<String, String> {
    let site = f.string("site")?;
    if !valid_site(site) {
        return Err(format!("{site:?} is no site name"));
    }
    Ok(site.to_owned())
}

fn need(f: &Fields<'_>, name: &str) -> Result<u64, String> {
    f.opt_u64(name)?
        .ok_or_else(|| format!("the field {name:?} is missing"))
}

impl Crossing {
    /// The message as NATS carries it: a header map on the first line, and
    /// for updates, pages and answers one item per line after it (each line
    /// is at most a datagram's worth, which is what the Mbus parser reads).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = MapWriter::default();
        let mut items: Vec<Value> = Vec::new();
        match self {
            Crossing::Update(u) => {
                m.string("kind", "update")
                    .string("site", &u.site)
                    .put("epoch", int(u.epoch))
                    .put("version", int(u.version));
                items.extend(u.members.iter().map(known_value));
                items.extend(u.left.iter().map(|id| {
                    let mut l = MapWriter::default();
                    l.string("left", id);
                    l.finish()
                }));
            }
            Crossing::Heartbeat(h) => {
                m.string("kind", "heartbeat")
                    .string("site", &h.site)
                    .put("epoch", int(h.epoch))
                    .put("version", int(h.version))
                    .put("count", int(h.members));
            }
            Crossing::SyncAsk { page, version } => {
                m.string("kind", "sync").put("page", int(*page));
                if let Some(v) = version {
                    m.put("version", int(*v));
                }
            }
            Crossing::SyncPage(p) => {
                m.string("kind", "page")
                    .string("site", &p.site)
                    .put("epoch", int(p.epoch))
                    .put("version", int(p.version))
                    .put("page", int(p.page))
                    .put("pages", int(p.pages));
                items.extend(p.members.iter().map(known_value));
            }
            Crossing::Deliver(d) => {
                m.string("kind", "deliver")
                    .string("origin", &d.origin.to_string());
                items.extend(d.relay.clone().into_args());
            }
            Crossing::Answer(a) => {
                m.string("kind", "answer");
                items.extend(
                    a.answers
                        .iter()
                        .map(|(member, answer)| answer_value(member, answer)),
                );
            }
        }
        let mut out = m.finish().to_string().into_bytes();
        for item in items {
            out.push(b'\n');
            out.extend_from_slice(item.to_string().as_bytes());
        }
        out
    }

    /// Reads a message from NATS; `Err` is why it is dropped.
    pub fn parse(bytes: &[u8]) -> Result<Crossing, String> {
        if bytes.len() > MAX_CROSSING_BYTES {
            return Err(format!(
                "{} bytes, more than {MAX_CROSSING_BYTES}",
                bytes.len()
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let mut lines = text.split('\n');
        let head = Value::parse(lines.next().unwrap_or_default())
            .map_err(|e| format!("not an Mbus value: {e}"))?;
        let items: Vec<Value> = lines
            .map(|l| Value::parse(l).map_err(|e| format!("an item is not an Mbus value: {e}")))
            .collect::<Result<_, _>>()?;
        let f = Fields::read(&head)?;
        let members = |items: &[Value]| -> Result<Vec<Known>, String> {
            items
                .iter()
                .filter(|v| Fields::read(v).is_ok_and(|f| f.get("left").is_none()))
                .map(read_known)
                .collect()
        };
        match f.string("kind")? {
            "update" => {
                let mut left = Vec::new();
                for v in &items {
                    if let Some(id) = Fields::read(v)?.opt_string("left")? {
                        left.push(id.to_owned());
                    }
                }
                Ok(Crossing::Update(Update {
                    site: read_site(&f)?,
                    epoch: need(&f, "epoch")?,
                    version: need(&f, "version")?,
                    members: members(&items)?,
                    left,
                }))
            }
            "heartbeat" => Ok(Crossing::Heartbeat(Heartbeat {
                site: read_site(&f)?,
                epoch: need(&f, "epoch")?,
                version: need(&f, "version")?,
                members: need(&f, "count")?,
            })),
            "sync" => Ok(Crossing::SyncAsk {
                page: need(&f, "page")?,
                version: f.opt_u64("version")?,
            }),
            "page" => {
                let p = SyncPage {
                    site: read_site(&f)?,
                    epoch: need(&f, "epoch")?,
                    version: need(&f, "version")?,
                    page: need(&f, "page")?,
                    pages: need(&f, "pages")?,
                    members: members(&items)?,
                };
                if p.pages == 0 || p.pages > MAX_PAGES || p.page >= p.pages {
                    return Err(format!(
                        "page {} of {}: pages are 1 to {MAX_PAGES}, each below their count",
                        p.page, p.pages
                    ));
                }
                Ok(Crossing::SyncPage(p))
            }
            "deliver" => {
                let origin =
                    Address::parse(f.string("origin")?).map_err(|e| format!("the origin: {e}"))?;
                let relay =
                    Relay::from_args(&items)?.ok_or("a delivery that names no recipients")?;
                Ok(Crossing::Deliver(Box::new(CrossDeliver { origin, relay })))
            }
            "answer" => Ok(Crossing::Answer(RelayAnswer {
                answers: items.iter().map(read_answer).collect::<Result<_, _>>()?,
            })),
            other => Err(format!("unknown kind {other:?}")),
        }
    }
}

/// The size of a member's line in an update or a page.
pub fn known_len(k: &Known) -> usize {
    known_value(k).encoded_len() + 1
}

/// Splits `members` into pages whose lines add up to at most
/// [`PAGE_BYTES`] (a member alone may exceed it: it fits a datagram).
pub fn paginate(members: Vec<Known>) -> Vec<Vec<Known>> {
    let mut pages = vec![Vec::new()];
    let mut bytes = 0;
    for k in members {
        let len = known_len(&k);
        if bytes + len > PAGE_BYTES && pages.last().is_some_and(|p| !p.is_empty()) {
            pages.push(Vec::new());
            bytes = 0;
        }
        bytes += len;
        if let Some(p) = pages.last_mut() {
            p.push(k);
        }
    }
    pages
}

/// How long a bridge waits for another site's answer to a delivery: the
/// far side's timeout plus three quarters of the crossing allowance, so
/// that the sender hears of a crossing that failed before its own time
/// runs out.
pub fn crossing_timeout(far_side: Duration) -> Duration {
    far_side + super::relay::CROSSING_ALLOWANCE * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmbs::{Content, Layer, Message, Order, Recipient};

    fn known(id: &str) -> Known {
        Known {
            description: Description::new(id),
            address: Address::parse(&format!("(app:cmbs module:member member:{id} id:1-1@h)"))
                .unwrap(),
        }
    }

    #[test]
    fn every_crossing_reads_back_and_bad_ones_say_why() {
        let relay = Relay {
            message: Message::new("m", Layer::L2, Content::Json(serde_json::json!(1))),
            recipients: vec![Recipient {
                member: "a".into(),
                order: Order { seq: 1, low: 0 },
            }],
            timeout: Duration::from_secs(2),
        };
        let all = [
            Crossing::Update(Update {
                site: "s1".into(),
                epoch: 7,
                version: 2,
                members: vec![known("a")],
                left: vec!["b".into()],
            }),
            Crossing::Heartbeat(Heartbeat {
                site: "s1".into(),
                epoch: 7,
                version: 2,
                members: 1,
            }),
            Crossing::SyncAsk {
                page: 3,
                version: Some(9),
            },
            Crossing::SyncAsk {
                page: 0,
                version: None,
            },
            Crossing::SyncPage(SyncPage {
                site: "s1".into(),
                epoch: 7,
                version: 2,
                page: 0,
                pages: 1,
                members: vec![known("a")],
            }),
            Crossing::Deliver(Box::new(CrossDeliver {
                origin: Address::parse("(app:x id:1@h)").unwrap(),
                relay,
            })),
            Crossing::Answer(RelayAnswer { answers: vec![] }),
        ];
        for c in all {
            assert_eq!(Crossing::parse(&c.to_bytes()).unwrap(), c);
        }
        assert!(Crossing::parse(b"(").is_err());
        for (page, pages) in [(0, 0), (1, 1), (0, MAX_PAGES + 1)] {
            let bad = format!("((\"kind\" \"page\") (\"site\" \"s\") (\"epoch\" 1) (\"version\" 1) (\"page\" {page}) (\"pages\" {pages}))");
            assert!(
                Crossing::parse(bad.as_bytes()).is_err(),
                "{page} of {pages}"
            );
        }
        assert!(Crossing::parse(b"((\"kind\" \"launch\"))").is_err());
        assert!(Crossing::parse(&vec![b' '; MAX_CROSSING_BYTES + 1]).is_err());
        assert!(
            Crossing::parse(b"((\"kind\" \"heartbeat\") (\"site\" \"a.b\") (\"epoch\" 1) (\"version\" 1) (\"count\" 0))").is_err(),
            "a site name with a dot"
        );
        let mut wrong = known("a");
        wrong.address = known("b").address;
        let u = Crossing::Update(Update {
            site: "s".into(),
            epoch: 1,
            version: 1,
            members: vec![wrong],
            left: vec![],
        });
        assert!(
            Crossing::parse(&u.to_bytes()).is_err(),
            "an address of another id"
        );
        assert!(Subjects::new("cmbs").is_some() && Subjects::new("a..b").is_none());
        // A directory far larger than a datagram, in pages that each fit
        // NATS, every line read by the datagram parser.
        let many: Vec<Known> = (0..3000)
            .map(|i| {
                let mut k = known(&format!("member-{i:05}"));
                k.description.topics = (0..20).map(|t| format!("topic.{i}.{t}")).collect();
                k
            })
            .collect();
        let pages = paginate(many.clone());
        assert!(pages.len() > 1);
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 3000);
        let mut back = Vec::new();
        for (n, p) in pages.iter().enumerate() {
            let page = Crossing::SyncPage(SyncPage {
                site: "s".into(),
                epoch: 1,
                version: 1,
                page: n as u64,
                pages: pages.len() as u64,
                members: p.clone(),
            });
            let bytes = page.to_bytes();
            assert!(bytes.len() <= PAGE_BYTES + 1024, "{}", bytes.len());
            let Crossing::SyncPage(p) = Crossing::parse(&bytes).unwrap() else {
                unreachable!()
            };
            back.extend(p.members);
        }
        assert_eq!(back, many);
        let s = Subjects::default();
        assert_eq!(s.site_of_dir(&s.dir("x")), Some("x"));
        assert_eq!(s.site_of_dir("cmbs.dir.x.y"), None);
    }
}
