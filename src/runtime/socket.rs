//! The two UDP sockets of an entity (RFC 3259 §6, §12: group, port and scope).
//!
//! - The **group socket** is bound to the group's port with `SO_REUSEADDR` and
//!   `SO_REUSEPORT`, so that every entity on the host shares it, and joins the
//!   group on one interface.
//! - The **own socket** is bound to an ephemeral port on that interface; every
//!   message is sent from it (so that our endpoint is unique, RFC 3259 §6.2)
//!   and unicast replies arrive on it. Multicast loop is on, so entities on the
//!   same host hear each other.
//!
//! Scope: IPv4 HOSTLOCAL is the loopback, 127.0.0.1, with TTL 0: the traffic
//! never leaves the host. LINKLOCAL is TTL 1 on `INTERFACE` or the interface of
//! the default route. IPv6 uses FF01::300 (hop limit 0) or FF02::300 (hop
//! limit 1) on `INTERFACE` or the default route's interface.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, IpVersion, Scope};

/// The sockets of one entity, and what they were set up with.
#[derive(Debug)]
pub struct Sockets {
    /// Bound to the group's port, joined to the group.
    pub group: UdpSocket,
    /// Bound to an ephemeral port on the bus interface; sends everything.
    pub own: UdpSocket,
    /// The group and port messages are sent to.
    pub group_addr: SocketAddr,
    /// The address of the interface we send from (for the `id` element).
    pub interface_ip: IpAddr,
}

/// Large enough for any datagram; UCL's 1500 bytes are not enough for ours.
const BUFFER: usize = 1 << 20;

/// Opens and configures both sockets for `config`.
pub fn open(config: &Config) -> io::Result<Sockets> {
    match config.effective_ip_version() {
        IpVersion::V4 => open_v4(config),
        IpVersion::V6 => open_v6(config),
    }
}

fn open_v4(config: &Config) -> io::Result<Sockets> {
    let IpAddr::V4(group) = config.group() else {
        return Err(invalid("IPVERSION=4 needs an IPv4 ADDRESS"));
    };
    let port = config.effective_port();
    let broadcast = group.is_broadcast();
    let (interface, ttl) = match config.scope {
        Scope::HostLocal => (Ipv4Addr::LOCALHOST, 0),
        Scope::LinkLocal => (interface_v4(config.interface.as_deref(), !broadcast)?, 1),
    };
    let g = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    g.set_reuse_address(true)?;
    #[cfg(unix)]
    g.set_reuse_port(true)?;
    let _ = g.set_recv_buffer_size(BUFFER);
    // Bound to the group address, the socket only sees the group's traffic.
    let bind_ip = if broadcast {
        Ipv4Addr::UNSPECIFIED
    } else {
        group
    };
    g.bind(&SocketAddr::from((bind_ip, port)).into())?;
    if !broadcast {
        g.join_multicast_v4(&group, &interface)?;
    }
    g.set_nonblocking(true)?;

    let own = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    own.bind(&SocketAddr::from((interface, 0)).into())?;
    own.set_multicast_if_v4(&interface)?;
    own.set_multicast_ttl_v4(ttl)?;
    own.set_multicast_loop_v4(true)?;
    own.set_ttl_v4(ttl.max(1))?;
    if broadcast {
        own.set_broadcast(true)?;
    }
    let _ = own.set_recv_buffer_size(BUFFER);
    let _ = own.set_send_buffer_size(BUFFER);
    own.set_nonblocking(true)?;
    Ok(Sockets {
        group: g.into(),
        own: own.into(),
        group_addr: SocketAddr::from((group, port)),
        interface_ip: IpAddr::V4(interface),
    })
}

fn open_v6(config: &Config) -> io::Result<Sockets> {
    let IpAddr::V6(group) = config.group() else {
        return Err(invalid("IPVERSION=6 needs an IPv6 ADDRESS"));
    };
    let port = config.effective_port();
    let hops = match config.scope {
        Scope::HostLocal => 0,
        Scope::LinkLocal => 1,
    };
    // ff0X::…: X is the group's scope (RFC 4291 §2.7); 1, interface-local,
    // never reaches another host.
    if config.scope == Scope::LinkLocal && group.segments()[0] & 0x000f == 1 {
        return Err(invalid(&format!(
            "ADDRESS={group} is interface-local and never leaves this host; \
             SCOPE=LINKLOCAL needs a link-scope group such as FF02::300"
        )));
    }
    let name = match &config.interface {
        Some(name) => name.clone(),
        None => default_interface(IpVersion::V6)?,
    };
    check_interface(&name, true)?;
    let index = nix::net::if_::if_nametoindex(name.as_str())
        .map_err(|e| io::Error::other(format!("interface {name}: {e}")))?;
    let g = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    g.set_only_v6(true)?;
    g.set_reuse_address(true)?;
    #[cfg(unix)]
    g.set_reuse_port(true)?;
    let _ = g.set_recv_buffer_size(BUFFER);
    g.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    g.join_multicast_v6(&group, index)?;
    g.set_nonblocking(true)?;

    let own = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    own.set_only_v6(true)?;
    own.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    own.set_multicast_if_v6(index)?;
    own.set_multicast_hops_v6(hops)?;
    own.set_multicast_loop_v6(true)?;
    let _ = own.set_recv_buffer_size(BUFFER);
    let _ = own.set_send_buffer_size(BUFFER);
    own.set_nonblocking(true)?;
    let interface_ip = interface_addresses(&name)
        .into_iter()
        .find(|ip| matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
    Ok(Sockets {
        group: g.into(),
        own: own.into(),
        group_addr: SocketAddr::from((group, port)),
        interface_ip,
    })
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Refuses an interface that does not exist, or that does not do multicast
/// when the bus needs it (a broadcast bus does not).
fn check_interface(name: &str, multicast: bool) -> io::Result<()> {
    if nix::net::if_::if_nametoindex(name).is_err() {
        return Err(io::Error::other(format!(
            "no interface named {name} (INTERFACE in the configuration, or --interface)"
        )));
    }
    let flags = nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|mut all| all.find(|a| a.interface_name == name).map(|a| a.flags));
    if multicast && flags.is_some_and(|f| !f.contains(nix::net::if_::InterfaceFlags::IFF_MULTICAST))
    {
        return Err(io::Error::other(format!(
            "interface {name} does not do multicast (its MULTICAST flag is off: \
             `ip link set {name} multicast on`, or ADDRESS=BROADCAST)"
        )));
    }
    Ok(())
}

/// The IPv4 address of `name`, or of the default route's interface.
fn interface_v4(name: Option<&str>, multicast: bool) -> io::Result<Ipv4Addr> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => default_interface(IpVersion::V4)?,
    };
    check_interface(&name, multicast)?;
    interface_addresses(&name)
        .into_iter()
        .find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| io::Error::other(format!("interface {name} has no IPv4 address")))
}

/// Every address of interface `name`.
fn interface_addresses(name: &str) -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name == name)
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// The interface of the default route (Linux: from /proc/net).
fn default_interface(version: IpVersion) -> io::Result<String> {
    let none =
        || io::Error::other("no default route: set INTERFACE in the configuration or --interface");
    match version {
        IpVersion::V4 => {
            let table = std::fs::read_to_string("/proc/net/route").map_err(|_| none())?;
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[1] == "00000000")
                .map(|f| f[0].to_owned())
                .ok_or_else(none)
        }
        IpVersion::V6 => {
            let table = std::fs::read_to_string("/proc/net/ipv6_route").map_err(|_| none())?;
            table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| {
                    f.len() >= 10
                        && f[0] == "00000000000000000000000000000000"
                        && f[1] == "00"
                        && f[9] != "lo"
                })
                .map(|f| f[9].to_owned())
                .ok_or_else(none)
        }
    }
}
