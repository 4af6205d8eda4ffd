//! The AF_XDP path of the server's own link: XDP hands the messages of on-link clients
//! (link-local source, untagged, to port 547) to an AF_XDP socket of dhcp6d's, past the
//! kernel's IP and UDP stack, and dhcp6d sends its replies back as whole frames through it.

/// Most interfaces with AF_XDP sockets.
pub const XSK_LINKS: u32 = 64;
/// Most receive queues of one interface with a socket: an interface's sockets take the slots
/// `first .. first + XSK_QUEUES` of [`crate::maps::XSKS`].
pub const XSK_QUEUES: u32 = 16;
/// Entries of [`crate::maps::XSKS`].
pub const XSK_SLOTS: u32 = XSK_LINKS * XSK_QUEUES;
