//! A complete OCCI infrastructure server (GFD.224, OCCI 1.2, with what
//! GFD.184, OCCI 1.1, adds) served from memory by the `rmbus::occi`
//! library: the library serves more than CMBS.
//!
//! - Kinds: `compute`, `storage`, `network`, and the links
//!   `networkinterface` (compute to network) and `storagelink` (compute to
//!   storage), each with its attributes and states.
//! - Actions: compute `start`, `stop`, `restart`, `suspend`, `save`;
//!   storage `online`, `offline` and OCCI 1.1's `backup`, `snapshot`,
//!   `resize`; network `up`, `down`.
//! - Mixins: `ipnetwork` (networks), `ipnetworkinterface` (network
//!   interfaces), the templates `os_tpl` (`ubuntu`, `debian`: a create
//!   with two is refused, an update that adds another replaces the old) and `resource_tpl` (`small`, which
//!   presets cores and memory), and OCCI 1.2's `ssh_key` and `user_data`.
//!
//! ```text
//! cargo run --example occi_iaas -- --listen 127.0.0.1:8080
//! curl -s http://127.0.0.1:8080/-/
//! curl -s -X POST http://127.0.0.1:8080/network/ -H 'Content-Type: text/plain' \
//!   --data-binary $'Category: network; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'
//! curl -s -X POST http://127.0.0.1:8080/compute/ -H 'Content-Type: text/plain' \
//!   --data-binary $'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"\nLink: </network/<id>>; category="http://schemas.ogf.org/occi/infrastructure#networkinterface"'
//! curl -s -X POST 'http://127.0.0.1:8080/compute/<id>?action=start'
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts requests
//! (`--listen 127.0.0.1:0` picks a free port). `tests/occi_iaas.rs` serves
//! [`server`] and drives it over HTTP.

use std::sync::Arc;

use rmbus::occi::{
    ActionCall, AttrType, Attribute, BoxFuture, Category, Entity, EntityStore, Hooks,
    MemoryEntities, OcciError, Server, TypeId,
};
use serde_json::Value;

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";

fn one_of(values: &[&str]) -> AttrType {
    AttrType::Enum(values.iter().map(|s| s.to_string()).collect())
}

/// A state attribute (set by the server) and its message (OCCI 1.2).
fn state(category: Category, prefix: &str, values: &[&str], default: &str) -> Category {
    category
        .attribute(
            Attribute::new(&format!("{prefix}.state"), one_of(values))
                .immutable()
                .default(default)
                .describe("the current state"),
        )
        .attribute(
            Attribute::new(&format!("{prefix}.state.message"), AttrType::String)
                .immutable()
                .describe("why it is in this state"),
        )
}

fn action(of: &str, term: &str, title: &str) -> Category {
    Category::action(
        &format!("http://schemas.ogf.org/occi/infrastructure/{of}/action#"),
        term,
        title,
    )
}

/// The `method` parameter of an action.
fn method(action: Category, values: &[&str]) -> Category {
    action.attribute(Attribute::new("method", one_of(values)).describe("how"))
}

/// An action handler that moves `attribute` to `to`, refused in the states
/// `refuse_in`.
fn move_state(
    attribute: &'static str,
    to: &'static str,
    refuse_in: &'static [&'static str],
) -> impl Fn(ActionCall) -> std::future::Ready<Result<Entity, OcciError>> + Send + Sync + 'static {
    move |call: ActionCall| {
        std::future::ready(moved(call.entity, &call.action, attribute, to, refuse_in))
    }
}

fn moved(
    mut e: Entity,
    action: &TypeId,
    attribute: &str,
    to: &str,
    refuse_in: &[&str],
) -> Result<Entity, OcciError> {
    if let Some(now) = e.text(attribute).filter(|s| refuse_in.contains(s)) {
        return Err(OcciError::bad_request(format!(
            "{} is {now}: {} does not apply",
            e.id, action.term
        )));
    }
    e.attributes
        .insert(attribute.into(), Value::String(to.into()));
    Ok(e)
}

/// The storage actions OCCI 1.1 adds (`backup`, `snapshot`, `resize`):
/// done at once in memory, so the storage passes through the state of
/// that name and is `online` again when the answer comes; refused while it
/// is offline. `resize` sets the size it is given.
fn storage_job(call: ActionCall) -> std::future::Ready<Result<Entity, OcciError>> {
    let size = call.parameters.get("size").cloned();
    let mut r = moved(
        call.entity,
        &call.action,
        "occi.storage.state",
        "online",
        &["offline", "error"],
    );
    if let (Ok(e), Some(size)) = (&mut r, size) {
        e.attributes.insert("occi.storage.size".into(), size);
    }
    if let Ok(e) = &mut r {
        e.attributes.insert(
            "occi.storage.state.message".into(),
            Value::String(format!("{} done", call.action.term)),
        );
    }
    std::future::ready(r)
}

/// Compute `save` (OCCI 1.2): in memory there is no disk to copy, so it
/// records the image's name (the `name` parameter, or the compute's id)
/// in the state message; the compute keeps running.
fn save(call: ActionCall) -> std::future::Ready<Result<Entity, OcciError>> {
    let name = call
        .parameters
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| call.entity.id.clone(), str::to_owned);
    let mut r = moved(
        call.entity,
        &call.action,
        "occi.compute.state",
        "active",
        &["inactive", "suspended", "error"],
    );
    if let Ok(e) = &mut r {
        e.attributes.insert(
            "occi.compute.state.message".into(),
            Value::String(format!("saved as {name}")),
        );
    }
    std::future::ready(r)
}

/// What the server does when links are made: a network interface gets the
/// next free device name of its compute (`eth0`, `eth1`, …) and, unless
/// the client gave one, a locally administered MAC address; links are
/// attached at once (`active`).
struct Attach {
    store: Arc<MemoryEntities>,
    kind: TypeId,
}

impl Hooks for Attach {
    fn create(&self, mut e: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        let prefix = format!("occi.{}", self.kind.term);
        if self.kind.term == "networkinterface" {
            let taken: Vec<String> = e
                .link_ends()
                .map(|(source, _)| self.store.links_at(source))
                .transpose()
                .map(Option::unwrap_or_default)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| l.text("occi.networkinterface.interface").map(str::to_owned))
                .collect();
            let name = (0..)
                .map(|n| format!("eth{n}"))
                .find(|n| !taken.contains(n))
                .unwrap_or_default();
            e.attributes
                .insert(format!("{prefix}.interface"), Value::String(name));
            if e.text("occi.networkinterface.mac").is_none() {
                let hex: String =
                    e.id.chars()
                        .filter(char::is_ascii_hexdigit)
                        .take(10)
                        .collect();
                let mut mac = String::from("02");
                for pair in hex.as_bytes().chunks(2) {
                    mac.push(':');
                    mac.push_str(&String::from_utf8_lossy(pair));
                }
                e.attributes
                    .insert("occi.networkinterface.mac".into(), Value::String(mac));
            }
        }
        e.attributes
            .insert(format!("{prefix}.state"), Value::String("active".into()));
        Box::pin(async move { Ok(e) })
    }
}

/// Templates (GFD.224 §3.5): a compute takes at most one OS template and
/// one resource template; adding another replaces it. And `user_data` is
/// not changed by an update once it is given.
struct Templates {
    families: Vec<(TypeId, Vec<TypeId>)>,
}

impl Templates {
    /// `mixins` with, of each template family, only the last one given.
    fn one_of_each(&self, mixins: &mut Vec<TypeId>) {
        for (_, members) in &self.families {
            if let Some(last) = mixins.iter().rev().find(|m| members.contains(m)).cloned() {
                mixins.retain(|m| !members.contains(m) || *m == last);
            }
        }
    }
}

impl Hooks for Templates {
    fn create(&self, e: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        let r = match self
            .families
            .iter()
            .find(|(_, members)| e.mixins.iter().filter(|m| members.contains(m)).count() > 1)
        {
            Some((base, _)) => Err(OcciError::bad_request(format!(
                "a compute takes one {} at a time",
                base.term
            ))),
            None => Ok(e),
        };
        Box::pin(async move { r })
    }

    fn update(&self, old: Entity, mut new: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        self.one_of_each(&mut new.mixins);
        const USERDATA: &str = "occi.compute.userdata";
        let r = match (old.text(USERDATA), new.text(USERDATA)) {
            (Some(a), Some(b)) if a != b => Err(OcciError::forbidden(format!(
                "{USERDATA} cannot change once it is given"
            ))),
            _ => Ok(new),
        };
        Box::pin(async move { r })
    }
}

/// The server, its entities in memory, its URLs under `base`.
pub fn server(base: &str) -> Result<Arc<Server>, OcciError> {
    let start = action("compute", "start", "Start the compute");
    let stop = method(
        action("compute", "stop", "Stop the compute"),
        &["graceful", "acpioff", "poweroff"],
    );
    let restart = method(
        action("compute", "restart", "Restart the compute"),
        &["graceful", "warm", "cold"],
    );
    let suspend = method(
        action("compute", "suspend", "Suspend the compute"),
        &["hibernate", "suspend"],
    );
    let save_action = method(
        action("compute", "save", "Save the compute's disk as an image"),
        &["hot", "deferred"],
    )
    .attribute(Attribute::new("name", AttrType::String).describe("the image's name"));
    let compute = state(
        Category::kind(INFRA, "compute", "Compute Resource", "/compute/"),
        "occi.compute",
        &["active", "inactive", "suspended", "error"],
        "inactive",
    )
    .attribute(Attribute::new(
        "occi.compute.architecture",
        one_of(&["x86", "x64"]),
    ))
    .attribute(Attribute::new("occi.compute.cores", AttrType::Number).describe("CPU cores"))
    .attribute(Attribute::new("occi.compute.hostname", AttrType::String))
    .attribute(Attribute::new("occi.compute.share", AttrType::Number).describe("CPU shares"))
    .attribute(Attribute::new("occi.compute.memory", AttrType::Number).describe("RAM in GiB"))
    .attribute(
        Attribute::new("occi.compute.speed", AttrType::Number).describe("CPU GHz (OCCI 1.1)"),
    )
    .with_action(&start)
    .with_action(&stop)
    .with_action(&restart)
    .with_action(&suspend)
    .with_action(&save_action);

    let online = action("storage", "online", "Bring the storage online");
    let offline = action("storage", "offline", "Take the storage offline");
    let backup = action("storage", "backup", "Back the storage up (OCCI 1.1)");
    let snapshot = action("storage", "snapshot", "Snapshot the storage (OCCI 1.1)");
    let resize = action("storage", "resize", "Resize the storage (OCCI 1.1)").attribute(
        Attribute::new("size", AttrType::Number)
            .required()
            .describe("the new size in GiB"),
    );
    let storage = state(
        Category::kind(INFRA, "storage", "Storage Resource", "/storage/"),
        "occi.storage",
        // OCCI 1.2's states, and those OCCI 1.1 adds.
        &[
            "online", "offline", "error", "backup", "snapshot", "resize", "degraded",
        ],
        "offline",
    )
    .attribute(
        Attribute::new("occi.storage.size", AttrType::Number)
            .required()
            .describe("size in GiB"),
    )
    .with_action(&online)
    .with_action(&offline)
    .with_action(&backup)
    .with_action(&snapshot)
    .with_action(&resize);

    let up = action("network", "up", "Bring the network up");
    let down = action("network", "down", "Take the network down");
    let network = state(
        Category::kind(INFRA, "network", "Network Resource", "/network/"),
        "occi.network",
        &["active", "inactive", "error"],
        "inactive",
    )
    .attribute(Attribute::new("occi.network.vlan", AttrType::Number).describe("802.1q VLAN id"))
    .attribute(Attribute::new("occi.network.label", AttrType::String))
    .with_action(&up)
    .with_action(&down);

    let link_states = &["active", "inactive", "error"];
    let networkinterface = state(
        Category::link(
            INFRA,
            "networkinterface",
            "NetworkInterface Link",
            "/networkinterface/",
        )
        .between(&compute, &network),
        "occi.networkinterface",
        link_states,
        "inactive",
    )
    .attribute(
        Attribute::new("occi.networkinterface.interface", AttrType::String)
            .immutable()
            .describe("the device's name, chosen by the server"),
    )
    .attribute(Attribute::new(
        "occi.networkinterface.mac",
        AttrType::String,
    ));
    let storagelink = state(
        Category::link(INFRA, "storagelink", "StorageLink Link", "/storagelink/")
            .between(&compute, &storage),
        "occi.storagelink",
        link_states,
        "inactive",
    )
    .attribute(
        Attribute::new("occi.storagelink.deviceid", AttrType::String)
            .required()
            .describe("the device, as the provider names it"),
    )
    .attribute(Attribute::new(
        "occi.storagelink.mountpoint",
        AttrType::String,
    ));

    let allocation = || one_of(&["dynamic", "static"]);
    let ipnetwork = Category::mixin(
        "http://schemas.ogf.org/occi/infrastructure/network#",
        "ipnetwork",
        "IP Network Mixin",
        "/ipnetwork/",
    )
    .applies_to(&network)
    .attribute(Attribute::new("occi.network.address", AttrType::String).describe("CIDR"))
    .attribute(Attribute::new("occi.network.gateway", AttrType::String))
    .attribute(Attribute::new("occi.network.allocation", allocation()));
    let ipnetworkinterface = Category::mixin(
        "http://schemas.ogf.org/occi/infrastructure/networkinterface#",
        "ipnetworkinterface",
        "IP Network Interface Mixin",
        "/ipnetworkinterface/",
    )
    .applies_to(&networkinterface)
    .attribute(Attribute::new("occi.networkinterface.address", AttrType::String).required())
    .attribute(Attribute::new(
        "occi.networkinterface.gateway",
        AttrType::String,
    ))
    .attribute(Attribute::new("occi.networkinterface.allocation", allocation()).required());

    let os_tpl = Category::mixin(INFRA, "os_tpl", "OS template", "/os_tpl/").applies_to(&compute);
    let resource_tpl =
        Category::mixin(INFRA, "resource_tpl", "Resource template", "/resource_tpl/")
            .applies_to(&compute);
    let ubuntu = Category::mixin(
        "http://example.org/occi/os#",
        "ubuntu",
        "Ubuntu 24.04",
        "/os_tpl/ubuntu/",
    )
    .with_rel(&os_tpl.id.to_string())
    .applies_to(&compute);
    let debian = Category::mixin(
        "http://example.org/occi/os#",
        "debian",
        "Debian 13",
        "/os_tpl/debian/",
    )
    .with_rel(&os_tpl.id.to_string())
    .applies_to(&compute);
    let small = Category::mixin(
        "http://example.org/occi/resource#",
        "small",
        "2 cores, 4 GiB",
        "/resource_tpl/small/",
    )
    .with_rel(&resource_tpl.id.to_string())
    .applies_to(&compute)
    .attribute(Attribute::new("occi.compute.cores", AttrType::Number).default(2))
    .attribute(Attribute::new("occi.compute.memory", AttrType::Number).default(4));
    let ssh_key = Category::mixin(
        "http://schemas.ogf.org/occi/infrastructure/credentials#",
        "ssh_key",
        "Credentials Mixin",
        "/ssh_key/",
    )
    .applies_to(&compute)
    .attribute(
        Attribute::new("occi.credentials.ssh.publickey", AttrType::String)
            .required()
            .describe("a public key to put into the compute"),
    );
    let user_data = Category::mixin(
        "http://schemas.ogf.org/occi/infrastructure/compute#",
        "user_data",
        "Contextualization Mixin",
        "/user_data/",
    )
    .applies_to(&compute)
    .attribute(
        Attribute::new("occi.compute.userdata", AttrType::String)
            .required()
            .describe("run once at the first boot; given at creation"),
    );

    let store = Arc::new(MemoryEntities::new());
    let attach = |kind: &Category| -> Arc<dyn Hooks> {
        Arc::new(Attach {
            store: Arc::clone(&store),
            kind: kind.id.clone(),
        })
    };
    let templates: Arc<dyn Hooks> = Arc::new(Templates {
        families: vec![
            (
                os_tpl.id.clone(),
                vec![ubuntu.id.clone(), debian.id.clone()],
            ),
            (resource_tpl.id.clone(), vec![small.id.clone()]),
        ],
    });
    const C: &str = "occi.compute.state";
    const S: &str = "occi.storage.state";
    const N: &str = "occi.network.state";
    Server::builder(base, Arc::clone(&store) as Arc<dyn EntityStore>)
        .name(concat!("rmbus-iaas/", env!("CARGO_PKG_VERSION")))
        .hooks(&networkinterface, attach(&networkinterface))
        .hooks(&storagelink, attach(&storagelink))
        .hooks(&compute, templates)
        .category(compute)
        .category(storage)
        .category(network)
        .category(networkinterface)
        .category(storagelink)
        .category(ipnetwork)
        .category(ipnetworkinterface)
        .category(os_tpl)
        .category(resource_tpl)
        .category(ubuntu)
        .category(debian)
        .category(small)
        .category(ssh_key)
        .category(user_data)
        .action(start, move_state(C, "active", &["active", "error"]))
        .action(stop, move_state(C, "inactive", &["inactive"]))
        .action(restart, move_state(C, "active", &["inactive"]))
        .action(
            suspend,
            move_state(C, "suspended", &["inactive", "suspended"]),
        )
        .action(save_action, save)
        .action(online, move_state(S, "online", &[]))
        .action(offline, move_state(S, "offline", &[]))
        .action(backup, storage_job)
        .action(snapshot, storage_job)
        .action(resize, storage_job)
        .action(up, move_state(N, "active", &[]))
        .action(down, move_state(N, "inactive", &[]))
        .build()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            _ => return Err(format!("usage: occi_iaas [--listen ADDR:PORT], not {a}").into()),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let server = server(&format!("http://{addr}"))?;
    println!("listening on http://{addr}");
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server.serve(listener, stop).await?;
    Ok(())
}
