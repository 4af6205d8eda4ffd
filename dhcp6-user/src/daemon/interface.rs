//! What the kernel says of an interface: its MAC address (sysfs) and its IPv6 addresses
//! (/proc/net/if_inet6), as the XDP maps and the AF_XDP and packet sockets need them.

use std::net::Ipv6Addr;

/// An interface's MAC address, from sysfs.
pub fn mac_address(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    bytes.try_into().ok()
}

/// The scope of a link-local address in /proc/net/if_inet6.
pub const SCOPE_LINK: u32 = 0x20;
/// The flag of a tentative address (DAD under way) in /proc/net/if_inet6.
pub const TENTATIVE: u32 = 0x40;

/// One IPv6 address of an interface, as /proc/net/if_inet6 lists it (address, ifindex,
/// prefix length, scope, flags, name).
pub struct InterfaceAddress {
    pub address: Ipv6Addr,
    pub ifindex: u32,
    /// [`SCOPE_LINK`]: link-local.
    pub scope: u32,
    /// [`TENTATIVE`]: tentative.
    pub flags: u32,
    pub name: String,
}

/// Every IPv6 address of every interface of this namespace.
pub fn interface_addresses() -> Vec<InterfaceAddress> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(InterfaceAddress {
                address: u128::from_str_radix(f.first()?, 16).ok().map(Ipv6Addr::from)?,
                ifindex: u32::from_str_radix(f.get(1)?, 16).ok()?,
                scope: u32::from_str_radix(f.get(3)?, 16).ok()?,
                flags: u32::from_str_radix(f.get(4)?, 16).ok()?,
                name: f.get(5)?.to_string(),
            })
        })
        .collect()
}

/// The interface's link-local address, once it is no longer tentative.
pub fn link_local(ifindex: u32) -> Option<Ipv6Addr> {
    interface_addresses()
        .into_iter()
        .find(|a| a.ifindex == ifindex && a.scope == SCOPE_LINK && a.flags & TENTATIVE == 0)
        .map(|a| a.address)
}
