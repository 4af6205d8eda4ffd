//! Counters an operator reads with `dhcp6d show statistics` and a metrics exporter scrapes:
//! messages per type, and messages left unanswered per reason.

use dhcp6_codec::MessageType;
use serde::{Deserialize, Serialize};

use crate::counters::Counts;

crate::counted_enum! {
    /// Why a message got no answer. The engine counts the first eleven; the daemon's driver counts
    /// the rest, which happen before a message reaches the engine or after it answered.
    pub enum DropReason {
        /// Not a valid DHCPv6 message.
        Malformed => "malformed",
        /// A type servers do not accept (Advertise, Reply, Reconfigure, Relay-Reply).
        NotForServer => "not_for_server",
        /// A Relay-Forward with no Relay Message option.
        NoRelayMessage => "no_relay_message",
        NoClientId => "no_client_id",
        /// A Server ID where RFC 9915 forbids one (Solicit, Confirm, Rebind).
        UnexpectedServerId => "unexpected_server_id",
        /// No Server ID where RFC 9915 requires one (Request, Renew, Release, Decline).
        MissingServerId => "missing_server_id",
        /// Meant for another server.
        OtherServer => "other_server",
        /// No configured subnet for the link the client is on.
        NoSubnet => "no_subnet",
        /// Information-Request with IA options, Confirm with no addresses, and the like.
        Invalid => "invalid",
        /// The failover state leaves this message to the partner (RFC 8156: a secondary in
        /// NORMAL answers no client but its own Renews; a server in STARTUP answers none).
        PartnersTurn => "partners_turn",
        /// The lease store did not accept the change: no Reply was sent.
        StoreFailed => "store_failed",
        /// The engine's queue was full: the reader dropped the message.
        QueueFull => "queue_full",
        /// A Solicit shed under overload, by XDP or by the reader.
        ShedSolicit => "shed_solicit",
        /// The kernel dropped the datagram: the socket's buffer (or the AF_XDP ring) was full.
        SocketFull => "socket_full",
        /// A frame from an AF_XDP or packet socket that is no DHCPv6 datagram.
        BadFrame => "bad_frame",
        /// The reply could not be sent.
        SendFailed => "send_failed",
        /// A client's message cut in XDP by storm protection: the client was over its rate.
        Storm => "storm",
        /// A shared lease database refused the change: another server holds the address or
        /// prefix. No Reply was sent; the engine learnt the holder.
        LeaseTakenElsewhere => "lease_taken_elsewhere",
    }
}

/// Messages received and sent per type, and drops per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    pub received: Counts<MessageType>,
    /// Counted by the driver as replies leave (once their changes are durable), not by the
    /// engine: a reply whose changes the store refused is never sent.
    pub sent: Counts<MessageType>,
    pub dropped: Counts<DropReason>,
    /// Renewals the XDP Renew/Rebind answer gave that moved a lease's durable expiry.
    pub fast_path_renewals: u64,
    /// IAs of Solicits and Requests past `max_ias_per_message` (left out of the answer), or of
    /// clients holding `max_leases_per_client` already (answered with no resource): nothing
    /// was reserved for them.
    #[serde(default)]
    pub ias_over_limit: u64,
    /// Reconfigure messages given up on: REC_MAX_RC sent to a client, none answered.
    #[serde(default)]
    pub reconfigures_given_up: u64,
    /// Leasequeries (RFC 5007, RFC 5460) by what became of them.
    #[serde(default)]
    pub leasequery: Counts<super::leasequery::LeasequeryOutcome>,
}

impl Statistics {
    pub fn count_received(&mut self, t: MessageType) {
        self.received.bump(t);
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        self.dropped.bump(reason);
    }

    pub fn count_fast_renewal(&mut self) {
        self.fast_path_renewals += 1;
    }

    pub fn received(&self, t: MessageType) -> u64 {
        self.received[t]
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason]
    }
}
