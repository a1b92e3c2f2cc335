//! Node ids: the XOR metric, and BEP 42's ids derived from the node's external address.

use std::net::IpAddr;

/// A 160-bit node id (or info-hash, in the same space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The XOR distance to `other`, comparable as bytes (smaller is closer).
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut out = [0; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        out
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(&other.0).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// A random id sharing exactly `prefix` leading bits with `self` (a target inside the bucket
    /// at that depth).
    pub(crate) fn random_at_depth(&self, prefix: usize, rng: &mut fastrand::Rng) -> NodeId {
        let mut id = NodeId(std::array::from_fn(|_| rng.u8(..)));
        for bit in 0..prefix.min(160) {
            set_bit(&mut id, bit, bit_of(self, bit));
        }
        if prefix < 160 {
            set_bit(&mut id, prefix, !bit_of(self, prefix));
        }
        id
    }

    /// A random id (not tied to any address).
    pub(crate) fn random(rng: &mut fastrand::Rng) -> NodeId {
        NodeId(std::array::from_fn(|_| rng.u8(..)))
    }

    /// BEP 42: an id whose first 21 bits are fixed by `ip`, the rest random.
    pub fn secure(ip: IpAddr, rng: &mut fastrand::Rng) -> NodeId {
        let mut id = Self::random(rng);
        let r = rng.u8(..) & 7;
        let crc = ip_crc(ip, r).to_be_bytes();
        id.0[0] = crc[0];
        id.0[1] = crc[1];
        id.0[2] = (crc[2] & 0xf8) | (id.0[2] & 7);
        id.0[19] = r;
        id
    }

    /// BEP 42: whether this id is one `ip` may use. Local and loopback addresses always may.
    pub fn is_valid_for(&self, ip: IpAddr) -> bool {
        if is_local(ip) {
            return true;
        }
        let crc = ip_crc(ip, self.0[19] & 7).to_be_bytes();
        self.0[0] == crc[0] && self.0[1] == crc[1] && self.0[2] & 0xf8 == crc[2] & 0xf8
    }
}

fn bit_of(id: &NodeId, bit: usize) -> bool {
    id.0[bit / 8] & (0x80 >> (bit % 8)) != 0
}

fn set_bit(id: &mut NodeId, bit: usize, on: bool) {
    let mask = 0x80 >> (bit % 8);
    if on {
        id.0[bit / 8] |= mask;
    } else {
        id.0[bit / 8] &= !mask;
    }
}

/// Addresses BEP 42 exempts, as libtorrent does: private, loopback, link-local and unique-local.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_private() || ip.is_loopback() || ip.is_link_local(),
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback() || first & 0xffc0 == 0xfe80 || first & 0xfe00 == 0xfc00
        }
    }
}

/// BEP 42's CRC32-C of the masked address with `r` in its top bits.
fn ip_crc(ip: IpAddr, r: u8) -> u32 {
    match ip {
        IpAddr::V4(ip) => {
            let mut bytes = ip.octets();
            for (byte, mask) in bytes.iter_mut().zip([0x03, 0x0f, 0x3f, 0xff]) {
                *byte &= mask;
            }
            bytes[0] |= r << 5;
            crc32c(&bytes)
        }
        IpAddr::V6(ip) => {
            let mut bytes: [u8; 8] = [0; 8];
            bytes.copy_from_slice(&ip.octets()[..8]);
            for (byte, mask) in bytes
                .iter_mut()
                .zip([0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff])
            {
                *byte &= mask;
            }
            bytes[0] |= r << 5;
            crc32c(&bytes)
        }
    }
}

/// CRC-32C (Castagnoli), bit by bit: it runs on a few bytes per id, so no table is needed.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hex_id(hex: &str) -> NodeId {
        let bytes: Vec<u8> = (0..40)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        NodeId(bytes.try_into().unwrap())
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    /// BEP 42's table of addresses, random values and example ids.
    #[test]
    fn bep42_examples_verify() {
        let examples = [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, id) in examples {
            let ip: IpAddr = ip.parse().unwrap();
            let id = hex_id(id);
            assert!(id.is_valid_for(ip), "{ip}");
            let mut wrong = id;
            wrong.0[0] ^= 1;
            assert!(!wrong.is_valid_for(ip), "{ip}");
        }
    }

    #[test]
    fn generated_ids_verify_for_their_address_only() {
        let mut rng = fastrand::Rng::with_seed(7);
        for ip in ["124.31.75.21", "2001:db8:85a3::8a2e:370:7334", "8.8.8.8"] {
            let ip: IpAddr = ip.parse().unwrap();
            let id = NodeId::secure(ip, &mut rng);
            assert!(id.is_valid_for(ip));
            assert!(!id.is_valid_for("1.2.3.4".parse().unwrap()));
        }
        let any = NodeId::random(&mut rng);
        assert!(any.is_valid_for("127.0.0.1".parse().unwrap()));
        assert!(any.is_valid_for("192.168.1.9".parse().unwrap()));
        assert!(any.is_valid_for("fe80::1".parse().unwrap()));
    }

    #[test]
    fn prefix_and_depth() {
        let mut rng = fastrand::Rng::with_seed(1);
        let own = NodeId::random(&mut rng);
        assert_eq!(own.common_prefix(&own), 160);
        for depth in [0, 1, 7, 8, 63, 159] {
            let id = own.random_at_depth(depth, &mut rng);
            assert_eq!(own.common_prefix(&id), depth);
        }
    }
}
