//! The OCCI infrastructure kinds (GFD.184 / GFD.224: compute, storage,
//! network, their actions, the `os_tpl` and `resource_tpl` mixins) served
//! from memory by the `rmbus::occi` library: the library serves more than
//! CMBS.
//!
//! ```text
//! cargo run --example occi_iaas -- --listen 127.0.0.1:8080
//! curl -s http://127.0.0.1:8080/-/
//! curl -s -X POST http://127.0.0.1:8080/compute/ -H 'Content-Type: text/plain' \
//!   --data-binary $'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"\nX-OCCI-Attribute: occi.compute.cores=2'
//! curl -s -X POST 'http://127.0.0.1:8080/compute/<id>?action=start'
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts requests
//! (`--listen 127.0.0.1:0` picks a free port). `tests/occi_iaas.rs` serves
//! [`server`] and drives it over HTTP.

use std::sync::Arc;

use rmbus::occi::{
    ActionCall, AttrType, Attribute, Category, Entity, MemoryEntities, OcciError, Server,
};
use serde_json::Value;

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";

fn states(values: &[&str]) -> AttrType {
    AttrType::Enum(values.iter().map(|s| s.to_string()).collect())
}

fn state(name: &str, values: &[&str], default: &str) -> Attribute {
    Attribute::new(name, states(values))
        .immutable()
        .default(default)
}

/// An action handler that sets `attribute` to `value`, refused when the
/// entity is in state `refuse_in`.
fn set_state(
    attribute: &'static str,
    value: &'static str,
    refuse_in: Option<&'static str>,
) -> impl Fn(ActionCall) -> std::future::Ready<Result<Entity, OcciError>> + Send + Sync + 'static {
    move |call: ActionCall| {
        let mut e = call.entity;
        if refuse_in.is_some() && e.text(attribute) == refuse_in {
            return std::future::ready(Err(OcciError::bad_request(format!(
                "{} is {}: {} does not apply",
                e.id,
                refuse_in.unwrap_or_default(),
                call.action.term
            ))));
        }
        e.attributes
            .insert(attribute.into(), Value::String(value.into()));
        std::future::ready(Ok(e))
    }
}

fn action(scheme_of: &str, term: &str, title: &str) -> Category {
    Category::action(
        &format!("http://schemas.ogf.org/occi/infrastructure/{scheme_of}/action#"),
        term,
        title,
    )
}

pub fn server(base: &str) -> Result<Arc<Server>, OcciError> {
    let start = action("compute", "start", "Start the compute");
    let stop = action("compute", "stop", "Stop the compute");
    let restart = action("compute", "restart", "Restart the compute");
    let suspend = action("compute", "suspend", "Suspend the compute");
    let compute = Category::kind(INFRA, "compute", "Compute Resource", "/compute/")
        .attribute(Attribute::new(
            "occi.compute.architecture",
            states(&["x86", "x64"]),
        ))
        .attribute(Attribute::new("occi.compute.cores", AttrType::Number))
        .attribute(Attribute::new("occi.compute.hostname", AttrType::String))
        .attribute(Attribute::new("occi.compute.speed", AttrType::Number))
        .attribute(Attribute::new("occi.compute.memory", AttrType::Number))
        .attribute(state(
            "occi.compute.state",
            &["active", "inactive", "suspended", "error"],
            "inactive",
        ))
        .with_action(&start)
        .with_action(&stop)
        .with_action(&restart)
        .with_action(&suspend);

    let online = action("storage", "online", "Bring the storage online");
    let offline = action("storage", "offline", "Take the storage offline");
    let backup = action("storage", "backup", "Back the storage up");
    let storage = Category::kind(INFRA, "storage", "Storage Resource", "/storage/")
        .attribute(Attribute::new("occi.storage.size", AttrType::Number).required())
        .attribute(state(
            "occi.storage.state",
            &["online", "offline", "backup", "degraded"],
            "offline",
        ))
        .with_action(&online)
        .with_action(&offline)
        .with_action(&backup);

    let up = action("network", "up", "Bring the network up");
    let down = action("network", "down", "Take the network down");
    let network = Category::kind(INFRA, "network", "Network Resource", "/network/")
        .attribute(Attribute::new("occi.network.vlan", AttrType::Number))
        .attribute(Attribute::new("occi.network.label", AttrType::String))
        .attribute(state(
            "occi.network.state",
            &["active", "inactive"],
            "inactive",
        ))
        .with_action(&up)
        .with_action(&down);

    let os_tpl = Category::mixin(INFRA, "os_tpl", "OS template", "/os_tpl/");
    let resource_tpl =
        Category::mixin(INFRA, "resource_tpl", "Resource template", "/resource_tpl/");
    let ubuntu = Category::mixin(
        "http://example.org/occi/os#",
        "ubuntu",
        "Ubuntu 24.04",
        "/os_tpl/ubuntu/",
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
    .applies_to(&compute);

    const C: &str = "occi.compute.state";
    const S: &str = "occi.storage.state";
    const N: &str = "occi.network.state";
    Server::builder(base, Arc::new(MemoryEntities::new()))
        .name(concat!("rmbus-iaas/", env!("CARGO_PKG_VERSION")))
        .category(compute)
        .category(storage)
        .category(network)
        .category(os_tpl)
        .category(resource_tpl)
        .category(ubuntu)
        .category(small)
        .action(start, set_state(C, "active", Some("active")))
        .action(stop, set_state(C, "inactive", Some("inactive")))
        .action(restart, set_state(C, "active", Some("inactive")))
        .action(suspend, set_state(C, "suspended", Some("inactive")))
        .action(online, set_state(S, "online", None))
        .action(offline, set_state(S, "offline", None))
        .action(backup, set_state(S, "backup", Some("offline")))
        .action(up, set_state(N, "active", None))
        .action(down, set_state(N, "inactive", None))
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
