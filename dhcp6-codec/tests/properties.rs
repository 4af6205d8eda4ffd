//! Property tests: encode then decode is the identity for generated messages, client and
//! failover; decoding never panics; whatever decodes re-encodes to the bytes it came from; and
//! the failover stream's framing gives back the messages however the stream is split.

use std::net::Ipv6Addr;

use dhcp6_codec::{
    failover::{
        encode_framed, BindingStatus, FailoverMessage, FailoverMessageType, FailoverOption, FailoverOptions,
        FrameReader, ProtocolVersion, ReconfigureData, ServerState, FAILOVER_OPTION_CODES, MAX_FRAME_LEN,
    },
    option::{
        Auth, ClientFqdn, DhcpOption, IaAddr, IaNa, IaPd, IaPrefix, IaTa, LinkLayerAddr, LqQuery, LqRelayData,
        OpaqueList, Options, QueryType, RemoteId, VendorClass, VendorOpts,
    },
    option_code, ClientMessage, DomainName, Duid, FramingError, Message, MessageType, RawOption, RelayMessage, Status,
    StatusCode, TransactionId,
};
use proptest::prelude::*;

/// Generated messages borrow their bytes; leaking them gives the `'static` lifetime a
/// strategy needs. A few kilobytes per case, in a test process.
fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(leak)
}

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn duid() -> impl Strategy<Value = Duid<'static>> {
    let llt = (any::<u16>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..=16)).prop_map(|(hw, t, ll)| {
        let mut b = vec![0, 1];
        b.extend_from_slice(&hw.to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
        b.extend(ll);
        b
    });
    let en = (any::<u32>(), prop::collection::vec(any::<u8>(), 0..=16)).prop_map(|(en, id)| {
        let mut b = vec![0, 2];
        b.extend_from_slice(&en.to_be_bytes());
        b.extend(id);
        b
    });
    let ll = (any::<u16>(), prop::collection::vec(any::<u8>(), 0..=16)).prop_map(|(hw, ll)| {
        let mut b = vec![0, 3];
        b.extend_from_slice(&hw.to_be_bytes());
        b.extend(ll);
        b
    });
    let uuid = any::<[u8; 16]>().prop_map(|u| [&[0u8, 4][..], &u[..]].concat());
    let other = (5u16.., prop::collection::vec(any::<u8>(), 0..=128)).prop_map(|(t, d)| {
        let mut b = t.to_be_bytes().to_vec();
        b.extend(d);
        b
    });
    prop_oneof![llt, en, ll, uuid, other].prop_map(|b| Duid::new(leak(b)).expect("generated DUIDs are valid"))
}

fn domain(fully_qualified: bool) -> impl Strategy<Value = DomainName<'static>> {
    prop::collection::vec("[a-z0-9-]{1,12}", 0..4).prop_map(move |labels| {
        let mut wire = Vec::new();
        for l in &labels {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l.as_bytes());
        }
        if fully_qualified || labels.is_empty() {
            wire.push(0);
        }
        DomainName::split_first(leak(wire)).expect("generated names are valid").0
    })
}

fn opaque_list(code: u16) -> impl Strategy<Value = OpaqueList<'static>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..4).prop_map(move |items| {
        let wire = OpaqueList::encode_items(items.iter().map(|i| &i[..]), code).unwrap();
        OpaqueList::from_wire(leak(wire), code).unwrap()
    })
}

const KNOWN: &[u16] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 23, 24, 25, 26, 32, 37, 38, 39, 44, 45, 46, 47,
    48, 53, 79, 82, 83,
];

/// Options that hold no options.
fn leaf_option() -> impl Strategy<Value = DhcpOption<'static>> {
    prop_oneof![
        duid().prop_map(DhcpOption::ClientId),
        duid().prop_map(DhcpOption::ServerId),
        prop::collection::vec(any::<u16>(), 0..6).prop_map(DhcpOption::Oro),
        any::<u8>().prop_map(DhcpOption::Preference),
        any::<u16>().prop_map(DhcpOption::ElapsedTime),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u64>(), bytes(16)).prop_map(|(p, a, r, d, i)| {
            DhcpOption::Auth(Auth { protocol: p, algorithm: a, rdm: r, replay_detection: d, auth_info: i })
        }),
        addr().prop_map(DhcpOption::Unicast),
        (any::<u16>(), "[ -~]{0,20}").prop_map(|(c, m)| {
            DhcpOption::StatusCode(StatusCode { status: Status(c), message: leak(m.into_bytes()) })
        }),
        Just(DhcpOption::RapidCommit),
        opaque_list(option_code::USER_CLASS).prop_map(DhcpOption::UserClass),
        (any::<u32>(), opaque_list(option_code::VENDOR_CLASS))
            .prop_map(|(e, data)| DhcpOption::VendorClass(VendorClass { enterprise_number: e, data })),
        (any::<u32>(), bytes(16))
            .prop_map(|(e, data)| DhcpOption::VendorOpts(VendorOpts { enterprise_number: e, data })),
        bytes(16).prop_map(DhcpOption::InterfaceId),
        any::<u8>().prop_map(DhcpOption::ReconfMsg),
        Just(DhcpOption::ReconfAccept),
        prop::collection::vec(addr(), 0..4).prop_map(DhcpOption::DnsServers),
        (prop::collection::vec(domain(true), 0..3), prop::option::of(domain(false))).prop_map(|(mut names, last)| {
            names.extend(last);
            DhcpOption::DomainList(names)
        }),
        any::<u32>().prop_map(DhcpOption::InformationRefreshTime),
        (any::<u32>(), bytes(16))
            .prop_map(|(e, id)| DhcpOption::RemoteId(RemoteId { enterprise_number: e, remote_id: id })),
        bytes(16).prop_map(DhcpOption::SubscriberId),
        (any::<u8>(), any::<bool>().prop_flat_map(domain))
            .prop_map(|(flags, name)| DhcpOption::ClientFqdn(ClientFqdn { flags, name })),
        (any::<u16>(), bytes(8))
            .prop_map(|(t, a)| DhcpOption::ClientLinkLayerAddr(LinkLayerAddr { link_layer_type: t, address: a })),
        any::<u32>().prop_map(DhcpOption::CltTime),
        prop::collection::vec(addr(), 0..3).prop_map(DhcpOption::LqClientLink),
        duid().prop_map(DhcpOption::RelayId),
        any::<u32>().prop_map(DhcpOption::SolMaxRt),
        any::<u32>().prop_map(DhcpOption::InfMaxRt),
        (any::<u16>().prop_filter("unknown codes only", |c| !KNOWN.contains(c)), bytes(24))
            .prop_map(|(code, data)| DhcpOption::Unknown(RawOption { code, data })),
    ]
}

/// Options, with IA options holding options, a few levels deep.
fn option() -> impl Strategy<Value = DhcpOption<'static>> {
    leaf_option().prop_recursive(3, 24, 4, |inner| {
        let opts = prop::collection::vec(inner, 0..4).prop_map(Options);
        prop_oneof![
            (any::<u32>(), any::<u32>(), any::<u32>(), opts.clone())
                .prop_map(|(iaid, t1, t2, options)| DhcpOption::IaNa(IaNa { iaid, t1, t2, options })),
            (any::<u32>(), any::<u32>(), any::<u32>(), opts.clone())
                .prop_map(|(iaid, t1, t2, options)| DhcpOption::IaPd(IaPd { iaid, t1, t2, options })),
            (any::<u32>(), opts.clone()).prop_map(|(iaid, options)| DhcpOption::IaTa(IaTa { iaid, options })),
            opts.clone().prop_map(DhcpOption::ClientData),
            (any::<u8>(), addr(), opts.clone()).prop_map(|(t, link_address, options)| {
                DhcpOption::LqQuery(LqQuery { query_type: QueryType(t), link_address, options })
            }),
            (addr(), addr(), any::<u8>(), addr(), opts.clone()).prop_map(|(peer, link, hop_count, from, options)| {
                let message = Message::Relay(RelayMessage {
                    msg_type: MessageType::RelayForw,
                    hop_count,
                    link_address: link,
                    peer_address: from,
                    options,
                });
                DhcpOption::LqRelayData(LqRelayData { peer_address: peer, message: Box::new(message) })
            }),
            (addr(), any::<u32>(), any::<u32>(), opts.clone()).prop_map(|(address, p, v, options)| {
                DhcpOption::IaAddr(IaAddr { address, preferred_lifetime: p, valid_lifetime: v, options })
            }),
            (any::<u32>(), any::<u32>(), any::<u8>(), addr(), opts).prop_map(|(p, v, len, prefix, options)| {
                DhcpOption::IaPrefix(IaPrefix {
                    preferred_lifetime: p,
                    valid_lifetime: v,
                    prefix_len: len,
                    prefix,
                    options,
                })
            }),
        ]
    })
}

fn client_message() -> impl Strategy<Value = Message<'static>> {
    let types: Vec<MessageType> = MessageType::ALL.into_iter().filter(|t| !t.is_relay()).collect();
    (prop::sample::select(types), any::<u32>(), prop::collection::vec(option(), 0..6)).prop_map(|(t, xid, o)| {
        Message::Client(ClientMessage {
            msg_type: t,
            transaction_id: TransactionId::from_u32(xid),
            options: Options(o),
        })
    })
}

/// A client message wrapped in up to four relay levels.
fn message() -> impl Strategy<Value = Message<'static>> {
    let relay_level = (any::<bool>(), any::<u8>(), addr(), addr(), prop::collection::vec(option(), 0..3));
    (client_message(), prop::collection::vec(relay_level, 0..4)).prop_map(|(mut msg, relays)| {
        for (reply, hop_count, link_address, peer_address, mut options) in relays {
            options.push(DhcpOption::RelayMsg(Box::new(msg)));
            let msg_type = if reply { MessageType::RelayRepl } else { MessageType::RelayForw };
            msg = Message::Relay(RelayMessage {
                msg_type,
                hop_count,
                link_address,
                peer_address,
                options: Options(options),
            });
        }
        msg
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(msg in message()) {
        let wire = msg.to_vec().unwrap();
        let decoded = Message::decode(&wire).unwrap();
        prop_assert_eq!(&decoded, &msg);
    }

    #[test]
    fn decode_never_panics_and_what_decodes_re_encodes_exactly(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(msg) = Message::decode(&bytes) {
            prop_assert_eq!(msg.to_vec().unwrap(), bytes);
        }
    }

    /// Random bytes rarely get past the header; mutating valid messages reaches the options.
    #[test]
    fn mutated_messages_never_panic(msg in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut wire = msg.to_vec().unwrap();
        for (at, value) in flips {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        wire.truncate(cut.index(wire.len() + 1));
        if let Ok(decoded) = Message::decode(&wire) {
            prop_assert_eq!(decoded.to_vec().unwrap(), wire);
        }
    }
}

#[test]
fn relay_nesting_is_limited_to_the_hop_limit() {
    let mut msg = Message::Client(ClientMessage {
        msg_type: MessageType::Solicit,
        transaction_id: TransactionId::from_u32(1),
        options: Options::new(),
    });
    let wrap = |m: Message<'static>| {
        Message::Relay(RelayMessage {
            msg_type: MessageType::RelayForw,
            hop_count: 0,
            link_address: Ipv6Addr::UNSPECIFIED,
            peer_address: Ipv6Addr::LOCALHOST,
            options: Options(vec![DhcpOption::RelayMsg(Box::new(m))]),
        })
    };
    for _ in 0..32 {
        msg = wrap(msg);
    }
    let wire = msg.to_vec().unwrap();
    assert!(Message::decode(&wire).is_ok());
    // Build 33 levels by hand, as an attacker would, since the encoder refuses.
    assert!(wrap(msg).to_vec().is_err());
    let mut deep = wire;
    let mut outer = vec![12u8, 0];
    outer.extend_from_slice(&[0u8; 32]);
    outer.extend_from_slice(&9u16.to_be_bytes());
    outer.extend_from_slice(&(deep.len() as u16).to_be_bytes());
    outer.append(&mut deep);
    assert_eq!(Message::decode(&outer).unwrap_err(), dhcp6_codec::DecodeError::RelayNestingTooDeep { limit: 32 });
}

#[test]
fn deeply_nested_options_are_refused_not_recursed() {
    // IA_TA inside IA_TA ... 2000 levels: bounded by MAX_OPTION_NESTING, no stack overflow.
    let mut data: Vec<u8> = Vec::new();
    for _ in 0..2000 {
        let mut o = vec![0, 4];
        o.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
        o.extend_from_slice(&[0, 0, 0, 1]);
        o.extend_from_slice(&data);
        if o.len() > 60_000 {
            break;
        }
        data = o;
    }
    let mut msg = vec![1u8, 0, 0, 1];
    msg.extend_from_slice(&data);
    assert!(matches!(Message::decode(&msg), Err(dhcp6_codec::DecodeError::OptionNestingTooDeep { .. })));
}

/// Failover options that hold no failover options (a [`FailoverOption::Dhcp`] may hold IAs).
fn failover_leaf() -> impl Strategy<Value = FailoverOption<'static>> {
    prop_oneof![
        any::<u32>().prop_map(FailoverOption::CltTime),
        any::<u32>().prop_map(FailoverOption::LqBaseTime),
        any::<u32>().prop_map(FailoverOption::ExpirationTime),
        any::<u32>().prop_map(FailoverOption::MaxUnackedBndupd),
        any::<u32>().prop_map(FailoverOption::Mclt),
        any::<u32>().prop_map(FailoverOption::PartnerLifetime),
        any::<u32>().prop_map(FailoverOption::PartnerLifetimeSent),
        any::<u32>().prop_map(FailoverOption::PartnerDownTime),
        any::<u32>().prop_map(FailoverOption::PartnerRawCltTime),
        any::<u32>().prop_map(FailoverOption::KeepaliveTime),
        any::<u32>().prop_map(FailoverOption::StartTimeOfState),
        any::<u32>().prop_map(FailoverOption::StateExpirationTime),
        any::<u8>().prop_map(|v| FailoverOption::BindingStatus(BindingStatus(v))),
        any::<u8>().prop_map(FailoverOption::ServerFlags),
        any::<u8>().prop_map(|v| FailoverOption::ServerState(ServerState(v))),
        any::<u16>().prop_map(FailoverOption::ConnectFlags),
        any::<u16>().prop_map(FailoverOption::DnsFlags),
        any::<bool>().prop_flat_map(domain).prop_map(FailoverOption::DnsHostName),
        any::<bool>().prop_flat_map(domain).prop_map(FailoverOption::DnsZoneName),
        (any::<u16>(), any::<u16>())
            .prop_map(|(major, minor)| FailoverOption::ProtocolVersion(ProtocolVersion { major, minor })),
        (any::<u32>(), bytes(20))
            .prop_map(|(time, key)| FailoverOption::ReconfigureData(ReconfigureData { time, key })),
        bytes(16).prop_map(FailoverOption::RelationshipName),
        option()
            .prop_filter("codes a failover list types itself", |o| !FAILOVER_OPTION_CODES.contains(&o.code()))
            .prop_map(FailoverOption::Dhcp),
    ]
}

/// Failover options, Client Data and DNS Removal Info holding options.
fn failover_option() -> impl Strategy<Value = FailoverOption<'static>> {
    failover_leaf().prop_recursive(2, 16, 4, |inner| {
        let opts = prop::collection::vec(inner, 0..4).prop_map(FailoverOptions);
        prop_oneof![opts.clone().prop_map(FailoverOption::ClientData), opts.prop_map(FailoverOption::DnsRemovalInfo)]
    })
}

fn failover_message() -> impl Strategy<Value = FailoverMessage<'static>> {
    (
        prop::sample::select(FailoverMessageType::ALL.to_vec()),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(failover_option(), 0..6),
    )
        .prop_map(|(msg_type, xid, sent_time, options)| FailoverMessage {
            msg_type,
            transaction_id: TransactionId::from_u32(xid),
            sent_time,
            options: FailoverOptions(options),
        })
}

/// Pushes `stream` into a reader in pieces cut at `cuts`, and collects what comes out.
fn read_in_pieces(stream: &[u8], cuts: &[prop::sample::Index], max_len: usize) -> Vec<Result<Vec<u8>, FramingError>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    let mut reader = FrameReader::new(max_len);
    let mut out = Vec::new();
    for piece in at.windows(2) {
        reader.push(&stream[piece[0]..piece[1]]);
        while let Some(frame) = reader.next_frame() {
            let failed = frame.is_err();
            out.push(frame.map(<[u8]>::to_vec));
            if failed {
                return out;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn failover_encode_then_decode_is_identity(msg in failover_message()) {
        let wire = msg.to_vec().unwrap();
        prop_assert_eq!(&FailoverMessage::decode(&wire).unwrap(), &msg);
    }

    #[test]
    fn failover_decode_never_panics_and_re_encodes_exactly(
        msg_type in 22u8..=37,
        rest in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![msg_type];
        bytes.extend(rest);
        if let Ok(msg) = FailoverMessage::decode(&bytes) {
            prop_assert_eq!(msg.to_vec().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_failover_messages_never_panic(msg in failover_message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut wire = msg.to_vec().unwrap();
        for (at, value) in flips {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        wire.truncate(cut.index(wire.len() + 1));
        if let Ok(decoded) = FailoverMessage::decode(&wire) {
            prop_assert_eq!(decoded.to_vec().unwrap(), wire);
        }
    }

    /// However TCP splits the stream, the reader gives back each message whole, in order.
    #[test]
    fn framing_survives_any_split(msgs in prop::collection::vec(failover_message(), 1..5), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for m in &msgs {
            encode_framed(m, &mut stream).unwrap();
            expected.push(Ok(m.to_vec().unwrap()));
        }
        prop_assert_eq!(read_in_pieces(&stream, &cuts, MAX_FRAME_LEN), expected);
    }

    /// Whatever the peer sends, the reader never panics, never hands out an empty frame or
    /// one over the cap, and stops at the first bad length.
    #[test]
    fn framing_of_arbitrary_bytes_never_panics(stream in prop::collection::vec(any::<u8>(), 0..600), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8), max_len in 1usize..300) {
        let frames = read_in_pieces(&stream, &cuts, max_len);
        for (i, frame) in frames.iter().enumerate() {
            match frame {
                Ok(f) => prop_assert!(!f.is_empty() && f.len() <= max_len),
                Err(_) => prop_assert_eq!(i, frames.len() - 1),
            }
        }
        let consumed: usize = frames.iter().map(|f| f.as_ref().map_or(0, |f| f.len() + 2)).sum();
        prop_assert!(consumed <= stream.len());
    }
}
