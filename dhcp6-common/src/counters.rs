//! Counters the XDP program keeps, indexed so that userspace can name each one.

/// What the XDP program decided about a frame, one per-CPU counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Verdict {
    /// Not IPv6 (after up to two VLAN tags): passed.
    NotIpv6 = 0,
    /// IPv6 but not UDP as the first next header (extension headers included): passed.
    NotUdp = 1,
    /// UDP, but neither port is 546/547: passed.
    OtherPort = 2,
    /// DHCPv6 too short to hold a message type, or headers cut short: passed to userspace.
    Truncated = 3,
    /// A DHCPv6 message the fast path does not take (not a Renew or Rebind): passed.
    Dhcp6Passed = 4,
    /// A Renew or Rebind answered in XDP.
    Replied = 5,
    /// A Renew or Rebind on an interface without a fast path, or with an IA the lease map
    /// does not hold: passed.
    NoLease = 6,
    /// A Renew or Rebind whose binding is past the deadline userspace authorised: passed.
    PastDeadline = 7,
    /// A Renew or Rebind the fast path does not answer as it stands (another server's, options
    /// it does not take, addresses not the binding's, a bad checksum, too long): passed.
    Unfit = 8,
    /// A Renew or Rebind the fast path would answer, but the frame could not grow: passed.
    NoRoom = 9,
    /// A client's message relayed up as a Relay-Forward in XDP.
    RelayForwarded = 10,
    /// A Relay-Reply unwrapped in XDP and its message sent down to the client.
    RelayReplied = 11,
    /// A message the relay fast path does not take as it stands (a downstream relay's;
    /// VLAN-tagged; options it cannot read; too long; a bad checksum): passed.
    RelayUnfit = 12,
    /// A message the relay would carry, but no route or no neighbour entry (yet) toward the
    /// server, or no server up: passed, for the kernel to resolve and userspace to send.
    RelayNoRoute = 13,
    /// A Relay-Reply for a client whose MAC XDP does not know, or a Reply, Release or Decline
    /// that could not be reported (ring full): passed to userspace.
    RelayNoPeer = 14,
    /// A client's message to the server, checked as the kernel's stack would (lengths, UDP
    /// checksum), handed to dhcp6d's AF_XDP socket on the interface.
    ToAfXdp = 15,
    /// A Rebind for a binding whose Rebinds XDP leaves to userspace (a failover pair's state
    /// leaves them to the partner): passed.
    RenewOnly = 16,
}

impl Verdict {
    /// Number of verdicts: the size of the verdict counter map.
    pub const COUNT: u32 = 17;

    pub const ALL: [Verdict; Self::COUNT as usize] = [
        Verdict::NotIpv6,
        Verdict::NotUdp,
        Verdict::OtherPort,
        Verdict::Truncated,
        Verdict::Dhcp6Passed,
        Verdict::Replied,
        Verdict::NoLease,
        Verdict::PastDeadline,
        Verdict::Unfit,
        Verdict::NoRoom,
        Verdict::RelayForwarded,
        Verdict::RelayReplied,
        Verdict::RelayUnfit,
        Verdict::RelayNoRoute,
        Verdict::RelayNoPeer,
        Verdict::ToAfXdp,
        Verdict::RenewOnly,
    ];

    /// A stable snake_case name for statistics output.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::NotIpv6 => "not_ipv6",
            Verdict::NotUdp => "not_udp",
            Verdict::OtherPort => "other_port",
            Verdict::Truncated => "truncated",
            Verdict::Dhcp6Passed => "dhcp6_passed",
            Verdict::Replied => "replied",
            Verdict::NoLease => "no_lease",
            Verdict::PastDeadline => "past_deadline",
            Verdict::Unfit => "unfit",
            Verdict::NoRoom => "no_room",
            Verdict::RelayForwarded => "relay_forwarded",
            Verdict::RelayReplied => "relay_replied",
            Verdict::RelayUnfit => "relay_unfit",
            Verdict::RelayNoRoute => "relay_no_route",
            Verdict::RelayNoPeer => "relay_no_peer",
            Verdict::ToAfXdp => "to_af_xdp",
            Verdict::RenewOnly => "renew_only",
        }
    }
}

/// Size of the per-message-type counter map: one slot for every possible type byte.
pub const MSG_TYPE_SLOTS: u32 = 256;

/// Entries of the [`crate::maps::SHED`] map.
pub const SHED_SLOTS: u32 = 3;
/// Where the [`crate::maps::SHED`] map holds the deadline of shedding.
pub const SHED_UNTIL: u32 = 0;
/// Where the [`crate::maps::SHED`] map counts the Solicits XDP dropped.
pub const SHED_COUNT: u32 = 1;
/// Where the [`crate::maps::SHED`] map holds the share of Solicits dropped while shedding, in
/// units of 1/[`SHED_SHARE_ONE`]: at [`SHED_SHARE_ONE`], every one.
pub const SHED_SHARE: u32 = 2;
/// A whole share: every Solicit.
pub const SHED_SHARE_ONE: u64 = 1 << 16;
