//! The flow table's own key: a flow's addresses and ports as plain
//! integers, hashed and compared word by word (an `Endpoint` holds an
//! `IpAddr` enum, whose derived hash and order cost several times more).

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::Dir;
use crate::decode::Endpoint;

/// Both endpoints of a flow, the lower one first (as in [`super::FlowKey`]),
/// as integers: an address as two words (IPv4 in the low one), the ports
/// and address families in one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tuple {
    addrs: [u64; 4],
    /// Lower port in the high half; bit 32 and 33: either address is IPv6.
    rest: u64,
}

impl Hash for Tuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for w in self.addrs {
            state.write_u64(w);
        }
        state.write_u64(self.rest);
    }
}

/// An endpoint as integers that order as `Endpoint` does: IPv4 before IPv6,
/// then the address (its octets, most significant first), then the port.
#[inline]
fn words(e: &Endpoint) -> (bool, u64, u64, u16) {
    match e.ip {
        IpAddr::V4(a) => (false, 0, u64::from(u32::from(a)), e.port),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (true, (b >> 64) as u64, b as u64, e.port)
        }
    }
}

impl Tuple {
    /// The key of a segment from `src` to `dst`, and the direction it
    /// travels in: [`Dir::A`] from the lower endpoint, as `FlowKey::of`.
    #[inline]
    pub fn of(src: &Endpoint, dst: &Endpoint) -> (Tuple, Dir) {
        let (s, d) = (words(src), words(dst));
        let (lo, hi, dir) = if s <= d {
            (s, d, Dir::A)
        } else {
            (d, s, Dir::B)
        };
        let rest =
            u64::from(lo.3) << 16 | u64::from(hi.3) | u64::from(lo.0) << 32 | u64::from(hi.0) << 33;
        let addrs = [lo.1, lo.2, hi.1, hi.2];
        (Tuple { addrs, rest }, dir)
    }
}

/// A hash of a segment's flow that is the same for both directions and
/// from run to run (a fixed seed): what shares flows out among a sharded
/// run's analyzers. Computed from the integer key, as the table's own
/// hash is.
pub fn symmetric_hash(src: &Endpoint, dst: &Endpoint) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(Tuple::of(src, dst).0)
}

#[cfg(test)]
mod tests {
    use super::super::FlowKey;
    use super::*;

    /// The lower endpoint is the one `FlowKey` puts first, for every mix
    /// of families, addresses and ports; distinct flows get distinct keys;
    /// both directions share out alike.
    #[test]
    fn same_order_as_flow_key() {
        let ips: [IpAddr; 6] = [
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "255.0.0.0".parse().unwrap(),
            "::1".parse().unwrap(),
            "::a00:1".parse().unwrap(),
            "ff00::1".parse().unwrap(),
        ];
        let mut eps = Vec::new();
        for ip in ips {
            for port in [0, 80, 443, 65535] {
                eps.push(Endpoint { ip, port });
            }
        }
        let mut keys = Vec::new();
        for a in &eps {
            for b in &eps {
                let (t, d) = Tuple::of(a, b);
                let (k, dk) = FlowKey::of(*a, *b);
                assert_eq!(d, dk, "{a} {b}");
                assert_eq!(Tuple::of(&k.lo, &k.hi), (t, Dir::A));
                assert_eq!(symmetric_hash(a, b), symmetric_hash(b, a));
                keys.push((t, k));
            }
        }
        for (t1, k1) in &keys {
            for (t2, k2) in &keys {
                assert_eq!(t1 == t2, k1 == k2);
            }
        }
    }
}
