//! The API key check of the gRPC API: with `api_key` configured, every call must carry the
//! metadata `authorization: Bearer <key>`, compared in constant time; anything else is
//! UNAUTHENTICATED with a message that says what to send. Without a key every call passes.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The interceptor in front of every RPC.
#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    key: Option<Arc<str>>,
}

impl ApiKey {
    /// Checks calls against `key`; `None` (or an empty key) lets every call through.
    pub(crate) fn new(key: Option<&str>) -> Self {
        Self {
            key: key.filter(|k| !k.is_empty()).map(Arc::from),
        }
    }

    /// Whether `request` carries the key, and if not, why not.
    fn check(&self, request: &Request<()>) -> Result<(), Status> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "this gateway requires an API key: send the metadata `authorization: Bearer <key>` with the key of --api-key / WSGATE_API_KEY",
            ));
        };
        let given = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                Status::unauthenticated(
                    "the `authorization` metadata must be `Bearer <key>` (the scheme, one space, the key of --api-key / WSGATE_API_KEY)",
                )
            })?;
        if bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "wrong API key in `authorization: Bearer <key>`; use the key of --api-key / WSGATE_API_KEY",
            ))
        }
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn with(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert("authorization", v.parse().expect("ascii metadata"));
        }
        request
    }

    #[test]
    fn no_key_lets_everything_through() {
        assert!(ApiKey::new(None).check(&with(None)).is_ok());
        assert!(ApiKey::new(Some("")).check(&with(Some("junk"))).is_ok());
    }

    #[test]
    fn the_key_is_required() {
        let auth = ApiKey::new(Some("s3cret"));
        assert!(auth.check(&with(Some("Bearer s3cret"))).is_ok());
        assert!(auth.check(&with(Some("bearer  s3cret "))).is_ok());
        for bad in [
            None,
            Some("s3cret"),
            Some("Basic s3cret"),
            Some("Bearer nope"),
        ] {
            let err = auth.check(&with(bad)).expect_err("refused");
            assert_eq!(err.code(), Code::Unauthenticated);
            assert!(err.message().contains("--api-key"), "{}", err.message());
        }
    }
}
