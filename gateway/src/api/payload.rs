//! A message to send, as the API takes it: `text` (a string) or `binary` (standard base64),
//! exactly one of them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wsgate_business::Payload;

use super::errors::ApiError;

/// A field that may be left out but not set to `null` (the schema says a string): with
/// `#[serde(default)]`, left out is `None`, a string is `Some`, `null` is an error.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Some)
}

/// The payload of `text` / `binary` (named `text_field` / `binary_field` in messages), if one
/// is given; both is an error.
pub(crate) fn optional(
    text: Option<String>,
    binary: Option<String>,
    text_field: &str,
    binary_field: &str,
) -> Result<Option<Payload>, ApiError> {
    match (text, binary) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "both {text_field} and {binary_field} are set; send exactly one: {text_field} for a text message, {binary_field} (standard base64) for a binary one"
        ))),
        (Some(text), None) => Ok(Some(Payload::text(text))),
        (None, Some(b64)) => STANDARD
            .decode(b64.as_bytes())
            .map(|bytes| Some(Payload::binary(bytes)))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "{binary_field} is not valid standard base64 ({e}); encode the bytes with the standard alphabet (A-Z a-z 0-9 + /) and = padding"
                ))
            }),
        (None, None) => Ok(None),
    }
}

/// The payload of `text` / `binary`: exactly one must be given.
pub(crate) fn required(text: Option<String>, binary: Option<String>) -> Result<Payload, ApiError> {
    optional(text, binary, "text", "binary")?.ok_or_else(|| {
        ApiError::bad_request(
            "the message is missing; set text (a string) for a text message or binary (standard base64) for a binary one",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "present")]
        text: Option<String>,
    }

    #[test]
    fn null_is_not_a_message() {
        let left_out: Body = serde_json::from_str("{}").expect("left out");
        assert_eq!(left_out.text, None);
        let given: Body = serde_json::from_str(r#"{"text":"x"}"#).expect("given");
        assert_eq!(given.text.as_deref(), Some("x"));
        assert!(serde_json::from_str::<Body>(r#"{"text":null}"#).is_err());
    }

    #[test]
    fn exactly_one_of_text_and_binary() {
        let text = required(Some("hi".into()), None).expect("text");
        assert_eq!(text.as_text(), Some("hi"));
        let bin = required(None, Some("AAEC/w==".into())).expect("binary");
        assert!(!bin.is_text());
        assert_eq!(&bin.data[..], &[0, 1, 2, 255]);

        let both = required(Some("a".into()), Some("YQ==".into())).expect_err("both");
        assert!(both.message.contains("exactly one"), "{}", both.message);
        let neither = required(None, None).expect_err("neither");
        assert!(neither.message.contains("missing"), "{}", neither.message);
        let bad = required(None, Some("not base64!".into())).expect_err("bad base64");
        assert!(bad.message.contains("base64"), "{}", bad.message);
        assert_eq!(
            optional(None, None, "last_text", "last_binary").ok(),
            Some(None)
        );
    }
}
