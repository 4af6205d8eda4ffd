//! The Reconfigure message and its key: the HMAC against RFC 2104's vectors and RFC 9915
//! section 20.4's layout, the retransmission schedule, and the server giving keys, sending
//! Reconfigures to clients on its links and through relays, and stopping when answered.

use super::*;
use crate::server::{
    tests::{ia_na, ll, msg, reply, send, server, server_id, NOW},
    LeaseChange, Outcome,
};

/// RFC 2104's test vectors for HMAC-MD5 (its appendix, and RFC 2202 section 2).
#[test]
fn hmac_md5_gives_the_rfc_2104_digests() {
    let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(hmac_md5(&[0x0b; 16], b"Hi There")), "9294727a3638bb1c13f48ef8158bfc9d");
    assert_eq!(hex(hmac_md5(b"Jefe", b"what do ya want for nothing?")), "750c783e6ab0b503eaa86e310a5db738");
    assert_eq!(hex(hmac_md5(&[0xaa; 16], &[0xdd; 50])), "56be34521d144c88dbb8c733f0e8b3f6");
}

fn duid(last: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, last]
}

/// RFC 9915 section 20.4: protocol 3, algorithm 1, RDM 0, type 2, the HMAC-MD5 of the whole
/// message with the digest zeroed; section 18.3.11: transaction-id 0, Server ID, Client ID,
/// Reconfigure Message.
#[test]
fn a_reconfigure_is_signed_over_itself_with_the_digest_zeroed() {
    let key = ReconfigureKey(*b"0123456789abcdef");
    let (server, client) = (duid(1), duid(2));
    let bytes = signed_reconfigure(
        Duid::new(&server).unwrap(),
        Duid::new(&client).unwrap(),
        ReconfigureType::Renew,
        &key,
        0x0102_0304_0506_0708,
    )
    .unwrap();
    assert_eq!(&bytes[..4], &[10, 0, 0, 0], "Reconfigure, transaction-id 0");
    let Message::Client(m) = Message::decode(&bytes).unwrap() else { panic!("not a client message") };
    assert_eq!(m.options.server_id().map(|d| d.as_bytes().to_vec()), Some(server));
    assert_eq!(m.options.client_id().map(|d| d.as_bytes().to_vec()), Some(client));
    assert!(m.options.iter().any(|o| *o == DhcpOption::ReconfMsg(5)));
    // The Authentication option, by hand: code 11, length 28, 3 1 0, the replay detection
    // value, type 2, the digest.
    let auth = &bytes[bytes.len() - 32..];
    assert_eq!(&auth[..4], &[0, 11, 0, 28]);
    assert_eq!(&auth[4..7], &[3, 1, 0]);
    assert_eq!(&auth[7..15], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(auth[15], 2);
    let mut zeroed = bytes.clone();
    let n = zeroed.len();
    zeroed[n - 16..].fill(0);
    assert_eq!(&bytes[n - 16..], &hmac_md5(&key.0, &zeroed));
    assert!(verify(&bytes, &key));
    assert!(!verify(&bytes, &ReconfigureKey(*b"0123456789abcdeX")), "another key");
    let mut forged = bytes.clone();
    forged[n - 33] ^= 1;
    assert!(!verify(&forged, &key), "a changed message");
}

fn direct(interface: &str) -> Route {
    Route::Direct { interface: interface.into(), address: "fe80::2".parse().unwrap() }
}

#[test]
fn retransmissions_double_from_rec_timeout_and_stop_after_rec_max_rc() {
    let mut r = Reconfiguring::default();
    let resources = vec!["2001:db8::100/128".parse().unwrap()];
    assert!(r.start(&duid(2), ReconfigureType::Renew, direct("eth1"), resources.clone(), 1_000));
    assert!(!r.start(&duid(2), ReconfigureType::Renew, direct("eth1"), vec![], 1_000), "once at a time");
    assert_eq!(r.take_fast_path_changes(), resources, "its binding leaves the fast path");
    let mut at = 1_000;
    let mut sends = Vec::new();
    for _ in 0..(REC_MAX_RC * 2) {
        if !r.due(at, || 0).is_empty() {
            sends.push(at);
        }
        at = r.pending.values().map(|p| p.next_ms).next().unwrap_or(at);
    }
    // 2 s, then doubling (no jitter here): 8 transmissions, then given up.
    let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000]);
    assert_eq!((r.pending(), r.gave_up), (0, 1));
    assert_eq!(r.take_fast_path_changes(), resources, "given up on: its binding comes back");
}

#[test]
fn jitter_stays_within_a_tenth() {
    assert_eq!(next_rt(0, 1000), 2_200);
    assert_eq!(next_rt(0, -1000), 1_800);
    assert_eq!(next_rt(2_000, 1000), 4_200);
    assert_eq!(next_rt(2_000, 99_999), 4_200, "clamped");
}

#[test]
fn an_answer_ends_the_retransmissions_and_replay_values_only_grow() {
    let mut r = Reconfiguring::default();
    r.start(&duid(2), ReconfigureType::Renew, direct("eth1"), vec![], 0);
    assert_eq!(r.due(0, || 0).len(), 1);
    r.heard(&duid(2), direct("eth1"), MessageType::Release);
    assert_eq!(r.pending(), 1, "a Release is no answer");
    r.heard(&duid(2), direct("eth1"), MessageType::Renew);
    assert_eq!(r.pending(), 0);
    assert_eq!(r.route(&duid(2)), Some(&direct("eth1")));
    let a = r.next_replay(100);
    let b = r.next_replay(100);
    let c = r.next_replay(99);
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(a, 100 << 32);
}

/// A server that gives keys of 16 octets counting up from 1 (a new key for each client).
fn keyed_server() -> Server {
    let mut s = server();
    let mut next = 0u8;
    s.enable_reconfigure(Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            next = next.wrapping_add(1);
            *b = next;
        }
    }));
    s
}

/// The Reconfigure Key an Authentication option of `m` gives, if any.
fn given_key(m: &Message<'_>) -> Option<[u8; 16]> {
    m.options().iter().find_map(|o| match o {
        DhcpOption::Auth(a) => {
            assert_eq!((a.protocol, a.algorithm, a.rdm), (3, 1, 0), "RFC 9915 section 20.4.1");
            assert_eq!(a.auth_info.len(), 17);
            assert_eq!(a.auth_info[0], 1, "type 1: the key");
            a.auth_info[1..].try_into().ok()
        }
        _ => None,
    })
}

/// Solicit then Request for client `n` on eth1, with Reconfigure Accept if `accepts`; the
/// Reply to the Request.
fn request(s: &mut Server, n: u8, accepts: bool) -> Outcome {
    let accept = || if accepts { vec![DhcpOption::ReconfAccept] } else { vec![] };
    let mut solicit = vec![ia_na(1, &[])];
    solicit.extend(accept());
    send(s, &msg(MessageType::Solicit, n, solicit), n, NOW);
    let mut req = vec![ia_na(1, &[]), server_id()];
    req.extend(accept());
    send(s, &msg(MessageType::Request, n, req), n, NOW)
}

#[test]
fn a_client_that_accepts_reconfigure_gets_its_key_in_the_reply_to_its_request_only() {
    let mut s = keyed_server();
    let out = request(&mut s, 1, true);
    let m = reply(&out);
    let key = given_key(&m).expect("the Reply gives the key");
    assert!(m.options().contains(dhcp6_codec::option_code::RECONF_ACCEPT));
    let LeaseChange::Upsert(lease) = &out.changes[0] else { panic!("{:?}", out.changes) };
    assert_eq!(lease.reconfigure_key, Some(ReconfigureKey(key)), "kept with the lease, for the store");

    // A Renew's Reply gives no key (XDP answers Renews with the same bytes).
    let renew = msg(MessageType::Renew, 1, vec![ia_na(1, &[]), server_id(), DhcpOption::ReconfAccept]);
    let out = send(&mut s, &renew, 1, NOW + 10);
    assert_eq!(given_key(&reply(&out)), None);
    let LeaseChange::Upsert(lease) = &out.changes[0] else { panic!() };
    assert_eq!(lease.reconfigure_key, Some(ReconfigureKey(key)), "the same key");
    // A Request again gets the same key.
    assert_eq!(given_key(&reply(&request(&mut s, 1, true))), Some(key));

    // Without Reconfigure Accept: no key; and a client that stops sending it loses its own.
    let out = request(&mut s, 2, false);
    assert_eq!(given_key(&reply(&out)), None);
    assert!(!reply(&out).options().contains(dhcp6_codec::option_code::RECONF_ACCEPT));
    let out = request(&mut s, 1, false);
    assert_eq!(given_key(&reply(&out)), None);
    let LeaseChange::Upsert(lease) = &out.changes[0] else { panic!() };
    assert_eq!(lease.reconfigure_key, None);

    // A server without a source of keys gives none.
    let mut off = server();
    assert_eq!(given_key(&reply(&request(&mut off, 1, true))), None);
    assert_eq!(
        off.start_reconfigure(&ReconfigureTarget::Client(&duid(1)), ReconfigureType::Renew, 0),
        Err(ReconfigureError::Off)
    );
}

#[test]
fn a_reconfigure_goes_to_the_client_where_it_was_heard_signed_with_its_key_until_it_renews() {
    let mut s = keyed_server();
    let key = ReconfigureKey(given_key(&reply(&request(&mut s, 1, true))).unwrap());
    request(&mut s, 2, false);
    s.enable_fast_path();
    assert!(s.fast_binding(&duid(1), 1, IaType::Na).is_some());
    let now_ms = NOW * 1000;

    let who = |d: &[u8]| ReconfigureTarget::Client(Box::leak(d.to_vec().into_boxed_slice()));
    assert_eq!(s.start_reconfigure(&who(&duid(9)), ReconfigureType::Renew, now_ms), Err(ReconfigureError::NoBinding));
    let nobody = s.start_reconfigure(&ReconfigureTarget::Pool("nope"), ReconfigureType::Renew, now_ms);
    assert!(matches!(nobody, Err(ReconfigureError::UnknownPool(_))));
    let done = s.start_reconfigure(&ReconfigureTarget::Pool("eth1"), ReconfigureType::Renew, now_ms).unwrap();
    assert_eq!(done, ReconfigureStarted { started: 1, without_key: 1, unreachable: 0, already: 0 });
    let again = s.start_reconfigure(&who(&duid(1)), ReconfigureType::Renew, now_ms).unwrap();
    assert_eq!(again.already, 1);

    // While it is reconfigured, its binding is out of the fast path.
    assert!(s.fast_binding(&duid(1), 1, IaType::Na).is_none());
    let left = s.take_fast_path_changes();
    assert_eq!(left.iter().map(|l| l.duid.clone()).collect::<Vec<_>>(), [duid(1)]);

    let sent = s.reconfigures_due(now_ms);
    assert_eq!(sent.len(), 1);
    let first = &sent[0];
    assert_eq!(first.destination, SocketAddrV6::new(ll(1), 546, 0, 0), "unicast to where it sent from");
    assert_eq!(first.interface.as_deref(), Some("eth1"));
    assert!(verify(&first.payload, &key));
    let Message::Client(m) = Message::decode(&first.payload).unwrap() else { panic!() };
    assert_eq!(m.msg_type, MessageType::Reconfigure);
    assert!(m.options.iter().any(|o| *o == DhcpOption::ReconfMsg(MessageType::Renew as u8)));
    assert!(s.reconfigures_due(now_ms + 1_000).is_empty(), "not before REC_TIMEOUT");
    let second = s.reconfigures_due(now_ms + 2_500);
    assert_eq!(second.len(), 1, "retransmitted");
    assert_ne!(second[0].payload, first.payload, "with a new replay detection value");
    assert!(verify(&second[0].payload, &key));

    // Its Renew ends it: the binding comes back to the fast path.
    let renew = msg(MessageType::Renew, 1, vec![ia_na(1, &[]), server_id(), DhcpOption::ReconfAccept]);
    send(&mut s, &renew, 1, NOW + 3);
    assert_eq!(s.reconfigures_pending(), 0);
    assert!(s.reconfigures_due(now_ms + 10_000).is_empty());
    assert_eq!(s.take_fast_path_changes().len(), 1);
    assert!(s.fast_binding(&duid(1), 1, IaType::Na).is_some());
}

#[test]
fn a_relayed_client_is_reconfigured_through_its_relay() {
    let mut s = keyed_server();
    let relay = SocketAddrV6::new("2001:db8:ff::2".parse().unwrap(), 547, 0, 0);
    let relayed = |s: &mut Server, payload: Vec<u8>| {
        let inner = Message::decode(Box::leak(payload.into_boxed_slice())).unwrap();
        let forward = Message::Relay(RelayMessage {
            msg_type: MessageType::RelayForw,
            hop_count: 0,
            link_address: "2001:db8:2::1".parse().unwrap(),
            peer_address: ll(5),
            options: Options(vec![DhcpOption::InterfaceId(b"eth0.100"), DhcpOption::RelayMsg(Box::new(inner))]),
        });
        let payload = forward.to_vec().unwrap();
        s.handle(&Inbound { payload: &payload, source: relay, interface: None, now: NOW })
    };
    relayed(&mut s, msg(MessageType::Solicit, 5, vec![ia_na(1, &[]), DhcpOption::ReconfAccept]));
    let out = relayed(&mut s, msg(MessageType::Request, 5, vec![ia_na(1, &[]), server_id(), DhcpOption::ReconfAccept]));
    let key = ReconfigureKey(given_key(reply(&out).innermost()).expect("a key, through the relay"));

    let done =
        s.start_reconfigure(&ReconfigureTarget::Pool("relayed"), ReconfigureType::InformationRequest, 0).unwrap();
    assert_eq!(done.started, 1);
    let sent = s.reconfigures_due(0);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].destination, sent[0].interface.as_deref()), (relay, None));
    let m = Message::decode(&sent[0].payload).unwrap();
    let Message::Relay(r) = &m else { panic!("not a Relay-Reply") };
    assert_eq!((r.msg_type, r.peer_address), (MessageType::RelayRepl, ll(5)));
    assert_eq!(r.link_address, "2001:db8:2::1".parse::<Ipv6Addr>().unwrap());
    assert!(r.options.iter().any(|o| *o == DhcpOption::InterfaceId(b"eth0.100")));
    let Some(Message::Client(c)) = r.options.relay_message() else { panic!("no Reconfigure inside") };
    assert!(c.options.iter().any(|o| *o == DhcpOption::ReconfMsg(MessageType::InformationRequest as u8)));
    assert!(verify(&Message::Client(c.clone()).to_vec().unwrap(), &key), "the client checks the message it receives");
}

#[test]
fn a_client_not_heard_since_a_restart_is_reached_at_its_address_and_keys_survive_the_store() {
    let mut s = keyed_server();
    request(&mut s, 1, true);
    // A restart: the leases come back from the store, the routes do not.
    let mut restarted = keyed_server();
    for l in s.durable_leases() {
        restarted.restore(LeaseChange::Upsert(l));
    }
    let done = restarted.start_reconfigure(&ReconfigureTarget::Subnets(vec![0]), ReconfigureType::Renew, 0).unwrap();
    assert_eq!(done.started, 1);
    let sent = restarted.reconfigures_due(0);
    assert_eq!(sent[0].destination, SocketAddrV6::new("2001:db8:1::100".parse().unwrap(), 546, 0, 0));
    assert_eq!(sent[0].interface.as_deref(), Some("eth1"));
}
