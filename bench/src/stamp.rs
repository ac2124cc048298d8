//! The benchmark's message: 100 bytes of ASCII text that carry their own send time.
//!
//! Layout: the send time in nanoseconds since the UNIX epoch as 20 zero-padded decimal
//! digits, a space, a sequence number, then `x` up to exactly 100 bytes. Every target passes
//! messages through untouched, so the receiver computes latency as its own clock minus the
//! embedded one (same host, same clock) without any side channel.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes in every message.
pub const LEN: usize = 100;

/// Digits of the timestamp.
const STAMP_DIGITS: usize = 20;

/// Nanoseconds since the UNIX epoch, now.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A message stamped with the current time and `seq`.
pub fn message(seq: u64) -> String {
    message_at(now_nanos(), seq)
}

/// A message stamped with `nanos` and `seq`.
pub fn message_at(nanos: u64, seq: u64) -> String {
    let mut text = format!("{nanos:020} {seq}");
    text.truncate(LEN);
    let pad = LEN - text.len();
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// The send time embedded in a message, if it starts with one.
pub fn parse(message: &[u8]) -> Option<u64> {
    let digits = message.get(..STAMP_DIGITS)?;
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

/// The sequence number of a message made by [`message_at`]: the digits after the stamp and
/// its space.
pub fn parse_seq(message: &[u8]) -> Option<u64> {
    let rest = message.get(STAMP_DIGITS..)?.strip_prefix(b" ")?;
    let digits = rest.iter().take_while(|d| d.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |value, &d| {
        value.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Microseconds from a message's embedded send time to `now_nanos` (0 if the clock went back).
pub fn latency_micros(message: &[u8], now_nanos: u64) -> Option<u64> {
    parse(message).map(|sent| now_nanos.saturating_sub(sent) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = message_at(1_700_000_000_123_456_789, 42);
        assert_eq!(m.len(), LEN);
        assert!(m.starts_with("01700000000123456789 42x"));
        assert!(m.ends_with('x'));
        assert_eq!(parse(m.as_bytes()), Some(1_700_000_000_123_456_789));
        assert_eq!(
            latency_micros(m.as_bytes(), 1_700_000_000_124_456_789),
            Some(1000)
        );
        assert_eq!(latency_micros(m.as_bytes(), 0), Some(0));
        assert_eq!(parse_seq(m.as_bytes()), Some(42));
        assert_eq!(parse_seq(message_at(7, 0).as_bytes()), Some(0));
    }

    #[test]
    fn refuses_what_is_not_a_stamp() {
        assert_eq!(parse(b"pong"), None);
        assert_eq!(parse(b"0000000000000000000a 1"), None);
        assert!(message(u64::MAX).len() == LEN);
        assert_eq!(parse_seq(b"pong"), None);
        assert_eq!(parse_seq(b"00000000000000000001 x"), None);
        assert_eq!(parse_seq(b"00000000000000000001"), None);
    }
}
