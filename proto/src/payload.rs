//! Convenience constructors and accessors for [`Payload`], the content of one WebSocket message.

use bytes::Bytes;

use crate::v1::{Payload, PayloadKind};

impl Payload {
    /// A text message. `String` and `&'static str` convert without copying.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            data: Bytes::from(text.into()),
            kind: PayloadKind::Text as i32,
        }
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self {
            data: data.into(),
            kind: PayloadKind::Binary as i32,
        }
    }

    /// True for a text message. Unknown kinds count as binary, the form that never fails.
    pub fn is_text(&self) -> bool {
        self.kind == PayloadKind::Text as i32
    }

    /// The text of a text message whose data is valid UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        if self.is_text() {
            std::str::from_utf8(&self.data).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Payload::text("hi").as_text(), Some("hi"));
        assert!(!Payload::binary(vec![1u8, 2]).is_text());
        assert_eq!(Payload::binary(&b"hi"[..]).as_text(), None);
    }
}
