//! Ethernet II frames (IEEE 802.3) with up to two VLAN tags: an 802.1ad (S-VLAN) or 802.1Q
//! outer tag and an 802.1Q inner one, each 4 bytes between the source MAC and the EtherType.

use core::net::Ipv6Addr;

use dhcp6_common::{
    relay::{vlan_tags, Vlans},
    wire::frame::{ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HEADER_LEN, MAX_VLAN_TAGS, VLAN_TAG_LEN},
};

use super::{check_len, read_u16, FrameError};

/// Byte offsets of the Ethernet header's fields.
pub mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// The EtherType of an untagged frame; in a tagged one, the first tag starts here.
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Within a tag: its TPID (where the EtherType of an untagged frame is) and its TCI.
    pub const TAG_TPID: Range<usize> = 0..2;
    pub const TAG_TCI: Range<usize> = 2..4;

    /// Where tag `n` (0: the outer one) starts.
    pub const fn tag(n: usize) -> usize {
        ETHERTYPE.start + super::VLAN_TAG_LEN * n
    }

    /// The EtherType after `n` tags; the header ends with it.
    pub const fn ethertype(n: usize) -> Range<usize> {
        tag(n)..ETHERTYPE.end + super::VLAN_TAG_LEN * n
    }
}

/// One VLAN tag (IEEE 802.1Q section 9.6): the TPID that says it is one, and the TCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

impl VlanTag {
    /// The VLAN ID: the TCI's low 12 bits (its top 4 are priority and drop eligibility).
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// Whether `ethertype` is the TPID of a tag: 802.1Q's or 802.1ad's.
    pub const fn is_tpid(ethertype: u16) -> bool {
        ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ
    }

    /// The tag as it stands in a frame.
    pub const fn to_bytes(self) -> [u8; VLAN_TAG_LEN] {
        let (t, c) = (self.tpid.to_be_bytes(), self.tci.to_be_bytes());
        [t[0], t[1], c[0], c[1]]
    }
}

/// An Ethernet frame in a buffer whose header, tags included, has been checked.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
    tags: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the header is whole: the MACs, up to two tags, the EtherType after them.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let bytes = buffer.as_ref();
        check_len(bytes, ETH_HEADER_LEN, "Ethernet header")?;
        let mut tags = 0;
        while VlanTag::is_tpid(read_u16(bytes, field::ethertype(tags))) {
            if tags == MAX_VLAN_TAGS {
                return Err(FrameError::TooManyVlanTags);
            }
            tags += 1;
            check_len(bytes, field::ethertype(tags).end, "VLAN tag")?;
        }
        Ok(EthernetFrame { buffer, tags })
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn dst_mac(&self) -> [u8; 6] {
        mac_at(self.bytes(), field::DESTINATION.start)
    }

    pub fn src_mac(&self) -> [u8; 6] {
        mac_at(self.bytes(), field::SOURCE.start)
    }

    /// How many VLAN tags the frame has (0 to 2).
    pub fn tag_count(&self) -> usize {
        self.tags
    }

    /// Tag `n`, outer first, if the frame has it.
    pub fn vlan_tag(&self, n: usize) -> Option<VlanTag> {
        (n < self.tags).then(|| {
            let at = field::tag(n);
            VlanTag {
                tpid: read_u16(self.bytes(), at + field::TAG_TPID.start..at + field::TAG_TPID.end),
                tci: read_u16(self.bytes(), at + field::TAG_TCI.start..at + field::TAG_TCI.end),
            }
        })
    }

    /// The tags, outer first.
    pub fn vlan_tags(&self) -> impl Iterator<Item = VlanTag> + '_ {
        (0..self.tags).filter_map(|n| self.vlan_tag(n))
    }

    /// The VLAN IDs of the tags, outer first (0 where there is no tag).
    pub fn vlans(&self) -> Vlans {
        let vid = |n| self.vlan_tag(n).map_or(0, |t| t.vid());
        Vlans { outer: vid(0), inner: vid(1) }
    }

    /// Bytes before the payload: 14, and 4 per tag.
    pub fn header_len(&self) -> usize {
        field::ethertype(self.tags).end
    }

    /// The EtherType after the tags: what the payload is.
    pub fn ethertype(&self) -> u16 {
        read_u16(self.bytes(), field::ethertype(self.tags))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// What follows the header, padding included.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_mac(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    pub fn set_src_mac(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    /// Sets the EtherType after the tags.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ethertype(self.tags)].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// What follows the header, padding included.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// An Ethernet header, its tags by VLAN ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// The VLANs, written as the relay writes them ([`vlan_tags`]): 802.1Q for a lone tag,
    /// 802.1ad over 802.1Q for two. Read from a frame whatever its TPIDs, so a frame parsed
    /// and emitted again may differ in them (or lose a tag of VLAN 0, which names none).
    pub vlans: Vlans,
    pub ethertype: u16,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            dst_mac: frame.dst_mac(),
            src_mac: frame.src_mac(),
            vlans: frame.vlans(),
            ethertype: frame.ethertype(),
        }
    }

    /// Bytes of the header: 14, and 4 per tag.
    pub const fn header_len(&self) -> usize {
        field::ethertype(self.vlans.tags()).end
    }

    /// Writes the header at the start of `buf`, and returns the frame there.
    pub fn emit<'a>(&self, buf: &'a mut [u8]) -> Result<EthernetFrame<&'a mut [u8]>, FrameError> {
        let needed = self.header_len();
        let available = buf.len();
        let header = buf.get_mut(..needed).ok_or(FrameError::NoRoom { needed, available })?;
        header[field::DESTINATION].copy_from_slice(&self.dst_mac);
        header[field::SOURCE].copy_from_slice(&self.src_mac);
        let (tags, len) = vlan_tags(self.vlans);
        header[field::tag(0)..field::tag(0) + len].copy_from_slice(&tags[..len]);
        header[field::ethertype(self.vlans.tags())].copy_from_slice(&self.ethertype.to_be_bytes());
        EthernetFrame::new_checked(buf)
    }
}

/// The Ethernet multicast address IPv6 multicast to `group` goes to (RFC 2464 section 7):
/// 33:33 and the group's last 32 bits.
pub fn multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Puts `tag` in front of the tags of the `len`-byte frame held [`VLAN_TAG_LEN`] bytes into
/// `buf` (where a packet socket reads a frame whose outer tag the kernel took off, to put it
/// back), its MACs moved to the start: the tagged frame is `buf[..len + VLAN_TAG_LEN]`, and its
/// length is returned.
pub fn push_outer_tag(buf: &mut [u8], len: usize, tag: VlanTag) -> Result<usize, FrameError> {
    let tagged = len + VLAN_TAG_LEN;
    if buf.len() < tagged {
        return Err(FrameError::NoRoom { needed: tagged, available: buf.len() });
    }
    if len < ETH_HEADER_LEN {
        return Err(FrameError::Truncated { what: "Ethernet header", needed: ETH_HEADER_LEN, available: len });
    }
    buf.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + field::SOURCE.end, 0);
    buf[field::tag(0)..field::tag(1)].copy_from_slice(&tag.to_bytes());
    Ok(tagged)
}

fn mac_at(bytes: &[u8], at: usize) -> [u8; 6] {
    let mut mac = [0; 6];
    mac.copy_from_slice(&bytes[at..at + 6]);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::SOLICIT;

    /// The start of a captured frame: to 33:33:00:01:00:02 from 02:00:00:00:00:c0, IPv6.
    const UNTAGGED: &[u8] = SOLICIT.split_at(16).0;

    fn tagged(tags: &[[u8; 4]]) -> Vec<u8> {
        [&UNTAGGED[..12], &tags.concat(), &UNTAGGED[12..]].concat()
    }

    #[test]
    fn an_untagged_frame_reads_its_fields() {
        let frame = EthernetFrame::new_checked(UNTAGGED).unwrap();
        assert_eq!(frame.dst_mac(), [0x33, 0x33, 0, 1, 0, 2]);
        assert_eq!(frame.src_mac(), [2, 0, 0, 0, 0, 0xc0]);
        assert_eq!((frame.tag_count(), frame.vlan_tag(0), frame.vlans()), (0, None, Vlans::NONE));
        assert_eq!((frame.ethertype(), frame.header_len()), (0x86dd, 14));
        assert_eq!(frame.payload(), &[0x60, 0x08]);
    }

    #[test]
    fn tags_are_read_outer_first_whatever_their_tpid() {
        let one = tagged(&[[0x81, 0, 0x20, 100]]);
        let frame = EthernetFrame::new_checked(&one[..]).unwrap();
        assert_eq!(frame.vlan_tags().collect::<Vec<_>>(), [VlanTag { tpid: 0x8100, tci: 0x2000 | 100 }]);
        assert_eq!(frame.vlans(), Vlans { outer: 100, inner: 0 }, "the priority bits are not the VLAN");
        assert_eq!((frame.ethertype(), frame.header_len(), frame.payload()), (0x86dd, 18, &[0x60, 0x08][..]));
        for outer in [0x88a8u16, 0x8100] {
            let t = outer.to_be_bytes();
            let two = tagged(&[[t[0], t[1], 0, 10], [0x81, 0, 0, 20]]);
            let frame = EthernetFrame::new_checked(&two[..]).unwrap();
            assert_eq!((frame.tag_count(), frame.vlans()), (2, Vlans { outer: 10, inner: 20 }));
            assert_eq!(frame.vlan_tag(0).map(|t| t.tpid), Some(outer));
            assert_eq!((frame.ethertype(), frame.header_len()), (0x86dd, 22));
        }
        let three = tagged(&[[0x88, 0xa8, 0, 1], [0x81, 0, 0, 2], [0x81, 0, 0, 3]]);
        assert_eq!(EthernetFrame::new_checked(&three[..]).unwrap_err(), FrameError::TooManyVlanTags);
    }

    #[test]
    fn every_cut_header_is_refused() {
        let two = tagged(&[[0x88, 0xa8, 0, 10], [0x81, 0, 0, 20]]);
        for len in 0..22 {
            let what = if len < 14 { "Ethernet header" } else { "VLAN tag" };
            let needed = if len < 14 {
                14
            } else if len < 18 {
                18
            } else {
                22
            };
            assert_eq!(
                EthernetFrame::new_checked(&two[..len]).unwrap_err(),
                FrameError::Truncated { what, needed, available: len },
                "cut to {len}"
            );
        }
        assert!(EthernetFrame::new_checked(&two[..22]).is_ok(), "a header with nothing after it");
    }

    #[test]
    fn a_header_emitted_reads_back() {
        for vlans in [Vlans::NONE, Vlans { outer: 100, inner: 0 }, Vlans { outer: 100, inner: 200 }] {
            let repr =
                EthernetRepr { dst_mac: [2, 0, 0, 0, 0, 1], src_mac: [2, 0, 0, 0, 0, 2], vlans, ethertype: 0x86dd };
            let mut buf = [0xffu8; 30];
            let frame = repr.emit(&mut buf).unwrap();
            assert_eq!(frame.header_len(), repr.header_len());
            assert_eq!(EthernetRepr::parse(&frame), repr);
            let short = repr.header_len() - 1;
            let e = FrameError::NoRoom { needed: repr.header_len(), available: short };
            assert_eq!(repr.emit(&mut buf[..short]).unwrap_err(), e);
        }
        let mut buf = [0u8; 22];
        let repr = EthernetRepr {
            vlans: Vlans { outer: 100, inner: 200 },
            ..EthernetRepr::parse(&EthernetFrame::new_checked(UNTAGGED).unwrap())
        };
        repr.emit(&mut buf).unwrap();
        assert_eq!(&buf[12..22], &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 200, 0x86, 0xdd], "802.1ad over 802.1Q");
    }

    #[test]
    fn setters_write_in_place() {
        let mut bytes = tagged(&[[0x81, 0, 0, 7]]);
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst_mac([1; 6]);
        frame.set_src_mac([2; 6]);
        frame.set_ethertype(0x0806);
        frame.payload_mut()[0] = 0x45;
        assert_eq!(bytes, [&[1; 6][..], &[2; 6], &[0x81, 0, 0, 7, 0x08, 0x06, 0x45, 0x08]].concat());
    }

    #[test]
    fn the_outer_tag_is_put_back_in_front() {
        let one = tagged(&[[0x81, 0, 0, 200]]);
        let mut buf = [&[0u8; 4][..], &one[..]].concat();
        let len = one.len();
        assert_eq!(push_outer_tag(&mut buf, len, VlanTag { tpid: 0x88a8, tci: 100 }), Ok(len + 4));
        assert_eq!(buf, tagged(&[[0x88, 0xa8, 0, 100], [0x81, 0, 0, 200]]));
        let tag = VlanTag { tpid: 0x8100, tci: 1 };
        let e = FrameError::NoRoom { needed: len + 5, available: len + 4 };
        assert_eq!(push_outer_tag(&mut buf, len + 1, tag), Err(e));
        let e = FrameError::Truncated { what: "Ethernet header", needed: 14, available: 13 };
        assert_eq!(push_outer_tag(&mut [0; 18], 13, tag), Err(e));
    }

    #[test]
    fn ipv6_multicast_goes_to_33_33_and_the_group_s_last_32_bits() {
        assert_eq!(multicast_mac(&"ff02::1:2".parse().unwrap()), [0x33, 0x33, 0, 1, 0, 2]);
    }
}
