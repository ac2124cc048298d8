//! Address ranges in CIDR notation (`10.0.0.0/8`, `::1/128`, or a plain address), for the
//! settings that name clients or proxies by address.
//!
//! IPv4 addresses mapped into IPv6 (`::ffff:10.0.0.1`, what a dual-stack listener reports)
//! match IPv4 ranges, so one list covers both kinds of listener.

use std::net::IpAddr;

/// One address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a plain address (a range of one).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not an address range; write it like 10.0.0.0/8, 192.168.1.7 or fd00::/8")
        })?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("{text:?} has a prefix length that is not a number from 0 to {max}")
            })?,
        };
        Ok(Self { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

/// A list of ranges, as the settings give them.
#[derive(Debug, Clone, Default)]
pub(crate) struct CidrList(Vec<Cidr>);

impl CidrList {
    /// Parses every entry; the error names the one that is wrong.
    pub(crate) fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| Cidr::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map(CidrList)
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ranges_match_what_they_cover() {
        let loopback = Cidr::parse("127.0.0.0/8").expect("valid");
        assert!(loopback.contains(ip("127.1.2.3")));
        assert!(loopback.contains(ip("::ffff:127.0.0.1")), "mapped IPv4");
        assert!(!loopback.contains(ip("128.0.0.1")));
        assert!(!loopback.contains(ip("::1")));
        let one = Cidr::parse("192.168.1.7").expect("a plain address");
        assert!(one.contains(ip("192.168.1.7")));
        assert!(!one.contains(ip("192.168.1.8")));
        let v6 = Cidr::parse("fd00::/8").expect("valid");
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
    }

    #[test]
    fn bad_entries_say_how_to_write_them() {
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", "/8"] {
            let err = Cidr::parse(bad).expect_err(bad);
            assert!(err.contains(bad.trim()), "{err}");
        }
        let err = CidrList::parse(&["127.0.0.1".into(), "10.0.0.0/99".into()]).expect_err("bad");
        assert!(err.contains("10.0.0.0/99"), "{err}");
    }
}
