//! What the relay puts in the XDP program's maps: each access interface's Relay-Forward head
//! (relay header, the options the relay inserts, the Relay Message option's header), with the
//! places XDP fills in per client; the XDP relay then builds the same Relay-Forward that
//! [`super::Relay::from_client`] builds.

use std::net::Ipv6Addr;

use dhcp6_codec::{option_code, MessageType};
use dhcp6_common::relay::{RelayLink, HEAD_PEER_AT, NOWHERE, RELAY_HEAD_MAX};

use super::AccessInterface;

/// Why an access interface is relayed by userspace alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoFastPath {
    #[error("its Remote-ID template uses {{peer}}, which XDP does not write")]
    PeerInTemplate,
    #[error("its Remote-ID template uses {{mac}} more than once")]
    MacTwice,
    #[error("its relay header and options take {0} bytes, more than XDP's {RELAY_HEAD_MAX}")]
    TooLong(usize),
    #[error("it has no Interface-ID of 1 to 32 bytes, by which XDP finds it again")]
    InterfaceId,
}

/// The length of a MAC written as colon-separated hex.
const MAC_TEXT_LEN: usize = 17;

fn option(head: &mut Vec<u8>, code: u16, content: &[u8]) {
    head.extend_from_slice(&code.to_be_bytes());
    head.extend_from_slice(&(content.len() as u16).to_be_bytes());
    head.extend_from_slice(content);
}

/// The link map's entry for access interface `iface` (of group `group`, with this MAC and
/// link-local address), for a relay that sends `relay_id` as OPTION_RELAY_ID, if any.
pub fn relay_link(
    iface: &AccessInterface,
    group: u32,
    mac: [u8; 6],
    link_local: Ipv6Addr,
    relay_id: Option<&[u8]>,
) -> Result<RelayLink, NoFastPath> {
    if iface.interface_id.is_empty() || iface.interface_id.len() > dhcp6_common::relay::INTERFACE_ID_MAX {
        return Err(NoFastPath::InterfaceId);
    }
    let mut head = vec![MessageType::RelayForw as u8, 0];
    head.extend_from_slice(&iface.link_address.octets());
    head.extend_from_slice(&[0; 16]);
    debug_assert_eq!(head.len(), HEAD_PEER_AT + 16);
    option(&mut head, option_code::INTERFACE_ID, &iface.interface_id);
    let mut mac_hex_at = NOWHERE;
    if let Some((enterprise, text)) = iface.remote_id_template() {
        if text.contains("{peer}") {
            return Err(NoFastPath::PeerInTemplate);
        }
        let mut pieces = text.split("{mac}");
        let before = pieces.next().unwrap_or_default();
        let after: Vec<&str> = pieces.collect();
        if after.len() > 1 {
            return Err(NoFastPath::MacTwice);
        }
        let mut content = enterprise.to_be_bytes().to_vec();
        content.extend_from_slice(before.as_bytes());
        if let Some(after) = after.first() {
            mac_hex_at = (head.len() + 4 + content.len()) as u16;
            content.extend_from_slice(&[b'0'; MAC_TEXT_LEN]);
            content.extend_from_slice(after.as_bytes());
        }
        option(&mut head, option_code::REMOTE_ID, &content);
    }
    let mut mac_at = NOWHERE;
    if iface.client_link_layer_address {
        // Link-layer type 1 (Ethernet), then the MAC XDP writes.
        mac_at = (head.len() + 4 + 2) as u16;
        option(&mut head, option_code::CLIENT_LINKLAYER_ADDR, &[0, 1, 0, 0, 0, 0, 0, 0]);
    }
    if let Some(id) = relay_id {
        option(&mut head, option_code::RELAY_ID, id);
    }
    // The Relay Message option's code and length (XDP writes the length).
    head.extend_from_slice(&option_code::RELAY_MSG.to_be_bytes());
    head.extend_from_slice(&[0, 0]);
    if head.len() > RELAY_HEAD_MAX {
        return Err(NoFastPath::TooLong(head.len()));
    }
    let mut link = RelayLink {
        mac,
        _pad: [0; 2],
        link_local: link_local.octets(),
        group,
        head_len: head.len() as u16,
        mac_hex_at,
        mac_at,
        _pad2: 0,
        head: [0; RELAY_HEAD_MAX],
    };
    link.head[..head.len()].copy_from_slice(&head);
    Ok(link)
}

/// The Relay-Forward XDP builds from `link` for a client at `peer` with MAC `mac` sending
/// `msg`: what the XDP program writes, done here, for tests to compare with the relay's own.
pub fn fill(link: &RelayLink, peer: Ipv6Addr, mac: [u8; 6], msg: &[u8]) -> Vec<u8> {
    let mut head = link.head[..usize::from(link.head_len)].to_vec();
    head[HEAD_PEER_AT..HEAD_PEER_AT + 16].copy_from_slice(&peer.octets());
    if link.mac_hex_at != NOWHERE {
        let at = usize::from(link.mac_hex_at);
        head[at..at + MAC_TEXT_LEN].copy_from_slice(dhcp6_codec::hex_string(&mac).as_bytes());
    }
    if link.mac_at != NOWHERE {
        let at = usize::from(link.mac_at);
        head[at..at + 6].copy_from_slice(&mac);
    }
    let n = head.len();
    head[n - 2..].copy_from_slice(&(msg.len() as u16).to_be_bytes());
    head.extend_from_slice(msg);
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{
        tests::{config, only},
        Relay,
    };
    use std::net::SocketAddrV6;

    const CLIENT_LL: &str = "fe80::200:ff:fe00:c1";
    const CLIENT_MAC: [u8; 6] = [0, 0, 0, 0, 0, 0xc1];

    #[test]
    fn the_xdp_head_filled_in_is_the_relay_forward_userspace_builds() {
        let msg = crate::relay::tests::client_msg(MessageType::Solicit, 7, 0x1234, None);
        for (remote_id, cll) in [
            (Some((2011, "{interface}:{mac}".to_string())), true),
            (Some((9, "{mac}".to_string())), false),
            (Some((311, "bng1-{interface}".to_string())), true),
            (None, false),
        ] {
            for relay_id in [None, Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0xee])] {
                let mut config = config();
                config.interfaces[0].remote_id = remote_id.clone();
                config.interfaces[0].client_link_layer_address = cll;
                config.relay_id = relay_id.clone();
                let ll = "fe80::1".parse().unwrap();
                let link = relay_link(&config.interfaces[0], 0, [2, 0, 0, 0, 0, 1], ll, relay_id.as_deref()).unwrap();
                let mut relay = Relay::new(config);
                let peer: Ipv6Addr = CLIENT_LL.parse().unwrap();
                let out = only(relay.from_client(0, &msg, SocketAddrV6::new(peer, 546, 0, 0), None, 0));
                assert_eq!(fill(&link, peer, CLIENT_MAC, &msg), out.payload, "{remote_id:?} {cll} {relay_id:?}");
            }
        }
    }

    #[test]
    fn templates_xdp_cannot_fill_stay_in_userspace() {
        let mut config = config();
        let ll = "fe80::1".parse().unwrap();
        config.interfaces[0].remote_id = Some((1, "{peer}".into()));
        assert_eq!(relay_link(&config.interfaces[0], 0, [0; 6], ll, None), Err(NoFastPath::PeerInTemplate));
        config.interfaces[0].remote_id = Some((1, "{mac}/{mac}".into()));
        assert_eq!(relay_link(&config.interfaces[0], 0, [0; 6], ll, None), Err(NoFastPath::MacTwice));
        config.interfaces[0].remote_id = Some((1, "x".repeat(200)));
        assert!(matches!(relay_link(&config.interfaces[0], 0, [0; 6], ll, None), Err(NoFastPath::TooLong(_))));
        config.interfaces[0].remote_id = None;
        config.interfaces[0].interface_id = Vec::new();
        assert_eq!(relay_link(&config.interfaces[0], 0, [0; 6], ll, None), Err(NoFastPath::InterfaceId));
    }
}
