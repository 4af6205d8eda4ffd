//! The standby profiles' virtual addresses, followed through rtnetlink: the kernel's IPv6
//! address events (the RTNLGRP_IPV6_IFADDR multicast group) for a profile's virtual address
//! on one of its access interfaces reach the engine's queue as that address appearing or
//! leaving. The driver subscribes before it reads the address list at start, so that no
//! change falls between the two; if the subscription ends (the socket failed), it is made
//! again and the list read again.

use std::{net::Ipv6Addr, time::Duration};

use futures_util::{stream::BoxStream, StreamExt};
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload},
    packet_route::{address::AddressAttribute, RouteNetlinkMessage},
    MulticastGroup,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{
    input::{Input, StandbyInput},
    interface::{interface_addresses, InterfaceAddress},
    socket::if_name,
};

/// A profile's virtual address and the interfaces it may appear on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub profile: usize,
    pub address: Ipv6Addr,
    /// Its access entries' interface names.
    pub interfaces: Vec<String>,
}

type Messages = BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, rtnetlink::sys::SocketAddr)>;

/// Subscribes to the kernel's IPv6 address events now, then follows them in a task.
pub fn subscribe(watched: Vec<Watched>, tx: mpsc::Sender<Input>) -> std::io::Result<()> {
    let messages = events()?;
    tokio::spawn(follow(watched, messages, tx));
    Ok(())
}

/// A netlink socket bound to the IPv6 address group, its connection running.
fn events() -> std::io::Result<Messages> {
    let (connection, _, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Ifaddr])?;
    tokio::spawn(connection);
    Ok(messages.boxed())
}

/// Whether each watched address is in `addresses`, on one of its interfaces.
pub fn present(watched: &[Watched], addresses: &[InterfaceAddress]) -> Vec<(usize, bool)> {
    let on = |w: &Watched| addresses.iter().any(|a| a.address == w.address && w.interfaces.contains(&a.name));
    watched.iter().map(|w| (w.profile, on(w))).collect()
}

/// What an address event says of the watched addresses: `(profile, present)` for each one it
/// adds or removes. `name_of` names an interface by index (as the kernel does now).
pub fn changes(
    watched: &[Watched],
    message: &RouteNetlinkMessage,
    name_of: impl Fn(u32) -> Option<String>,
) -> Vec<(usize, bool)> {
    let (m, added) = match message {
        RouteNetlinkMessage::NewAddress(m) => (m, true),
        RouteNetlinkMessage::DelAddress(m) => (m, false),
        _ => return Vec::new(),
    };
    let address = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(std::net::IpAddr::V6(v)) => Some(*v),
        _ => None,
    });
    let Some(address) = address else { return Vec::new() };
    let mine: Vec<&Watched> = watched.iter().filter(|w| w.address == address).collect();
    if mine.is_empty() {
        return Vec::new();
    }
    let Some(name) = name_of(m.header.index) else { return Vec::new() };
    mine.into_iter().filter(|w| w.interfaces.contains(&name)).map(|w| (w.profile, added)).collect()
}

async fn follow(watched: Vec<Watched>, mut messages: Messages, tx: mpsc::Sender<Input>) {
    loop {
        while let Some((message, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(m) = message.payload else { continue };
            for (profile, present) in changes(&watched, &m, if_name) {
                debug!(profile, present, "virtual address event");
                if tx.send(Input::Standby(StandbyInput::VirtualAddress { profile, present })).await.is_err() {
                    return;
                }
            }
        }
        warn!("the netlink subscription to address changes ended; subscribing again");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match events() {
                Ok(m) => {
                    messages = m;
                    break;
                }
                Err(e) => warn!(error = %e, "subscribing to address changes failed; retrying"),
            }
        }
        // What changed while no one listened.
        for (profile, present) in present(&watched, &interface_addresses()) {
            if tx.send(Input::Standby(StandbyInput::VirtualAddress { profile, present })).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::{address::AddressMessage, AddressFamily};

    use super::*;

    fn watched() -> Vec<Watched> {
        vec![
            Watched { profile: 0, address: "fe80::61".parse().unwrap(), interfaces: vec!["eth1".into()] },
            Watched {
                profile: 2,
                address: "fe80::62".parse().unwrap(),
                interfaces: vec!["eth2".into(), "eth3".into()],
            },
        ]
    }

    fn message(index: u32, address: &str) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = 64;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Address(address.parse().unwrap()));
        m
    }

    fn name_of(index: u32) -> Option<String> {
        Some(format!("eth{index}"))
    }

    #[test]
    fn a_watched_address_added_or_removed_on_its_interface_is_a_change() {
        let w = watched();
        let added = RouteNetlinkMessage::NewAddress(message(1, "fe80::61"));
        assert_eq!(changes(&w, &added, name_of), [(0, true)]);
        let removed = RouteNetlinkMessage::DelAddress(message(1, "fe80::61"));
        assert_eq!(changes(&w, &removed, name_of), [(0, false)]);
        let on_third = RouteNetlinkMessage::NewAddress(message(3, "fe80::62"));
        assert_eq!(changes(&w, &on_third, name_of), [(2, true)]);
    }

    #[test]
    fn other_addresses_interfaces_and_messages_are_no_change() {
        let w = watched();
        let other_address = RouteNetlinkMessage::NewAddress(message(1, "fe80::99"));
        assert!(changes(&w, &other_address, name_of).is_empty());
        let other_interface = RouteNetlinkMessage::NewAddress(message(2, "fe80::61"));
        assert!(changes(&w, &other_interface, name_of).is_empty());
        let gone_interface = RouteNetlinkMessage::DelAddress(message(1, "fe80::61"));
        assert!(changes(&w, &gone_interface, |_| None).is_empty());
        let v4 = RouteNetlinkMessage::NewAddress(message(1, "192.0.2.1"));
        assert!(changes(&w, &v4, name_of).is_empty());
        let no_address = RouteNetlinkMessage::NewAddress(AddressMessage::default());
        assert!(changes(&w, &no_address, name_of).is_empty());
    }

    #[test]
    fn the_address_list_at_start_says_each_watched_address_present_or_not() {
        let listed = |address: &str, name: &str| InterfaceAddress {
            address: address.parse().unwrap(),
            ifindex: 1,
            scope: 0x20,
            flags: 0,
            name: name.into(),
        };
        let list = [listed("fe80::61", "eth1"), listed("fe80::62", "eth1")];
        assert_eq!(present(&watched(), &list), [(0, true), (2, false)], "fe80::62 on another interface");
    }
}
