//! Dialling a gateway and registering: one attempt, from nothing to a registered transport.
//!
//! The TCP connection (with TCP_NODELAY) and the TLS handshake are each bounded by the
//! request timeout; the register handshake is the protocol crate's
//! [`Registration`](wsgate_proto::link::Registration) machine, fed with the frames read here
//! and bounded by the same timeout. Retrying is not this module's business: the driver
//! decides whether and when to call [`establish`] again.

use std::io;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::{debug, warn};
use wsgate_proto::link::{Registered, Registration, RegistrationOutcome};
use wsgate_proto::v1::Register;
use wsgate_proto::{CodecError, PROTOCOL_VERSION, WorkerCodec};

use crate::config::Config;
use crate::error::{self, Error};

/// The request id of `Register`: the first request of every link, so any id will do.
const REGISTER_REQUEST_ID: u64 = 1;

/// What a link runs on: a TCP stream, or a TLS stream over one.
pub(crate) trait LinkStream:
    AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug
{
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> LinkStream for T {}

/// Frames over the stream.
pub(crate) type Transport = Framed<Box<dyn LinkStream>, WorkerCodec>;

/// A connection on which the gateway accepted our `Register`.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) transport: Transport,
    pub(crate) registered: Registered,
}

/// Dials the gateway at `addr` and performs the register handshake, each step bounded by
/// the request timeout.
pub(crate) async fn establish(config: &Config, addr: &str) -> Result<Established, Error> {
    let connect_error = |source| Error::Connect {
        addr: addr.to_owned(),
        source,
    };
    let timed_out = |what: &str| {
        connect_error(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no {what} within {:?}", config.request_timeout),
        ))
    };
    let stream = match tokio::time::timeout(config.request_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(connect_error(err)),
        Err(_) => return Err(timed_out("TCP connection")),
    };
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%addr, error = %err, "cannot set TCP_NODELAY on the link");
    }
    let stream: Box<dyn LinkStream> = match &config.tls {
        None => Box::new(stream),
        Some(tls) => {
            let handshake = tokio::time::timeout(config.request_timeout, tls.connect(addr, stream));
            match handshake.await {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(timed_out("TLS handshake")),
            }
        }
    };
    let mut transport = Framed::new(stream, WorkerCodec::default());
    let io_error = |err| match err {
        CodecError::Io(source) => connect_error(source),
        other => Error::Codec(other),
    };

    let register = Register {
        name: config.name.clone(),
        token: config.token.clone(),
        events: config.events.iter().map(|k| *k as i32).collect(),
        protocol_version: PROTOCOL_VERSION,
        authorize: config.authorize,
        acks: config.acks,
    };
    debug!(%addr, name = %config.name, "registering with the gateway");
    let mut registration = Registration::new(
        register,
        REGISTER_REQUEST_ID,
        Instant::now(),
        config.request_timeout,
    );
    let outcome = loop {
        while let Some(frame) = registration.poll_transmit() {
            transport.send(frame).await.map_err(io_error)?;
        }
        let Some(deadline) = registration.poll_timeout() else {
            // Unreachable: the machine has no deadline only once it ended.
            break RegistrationOutcome::TimedOut;
        };
        let read = tokio::time::timeout_at(deadline.into(), transport.next()).await;
        let step = match read {
            Err(_) => registration.handle_timeout(Instant::now()),
            Ok(None) => return Err(Error::Disconnected),
            Ok(Some(Err(err))) => return Err(io_error(err)),
            Ok(Some(Ok(envelope))) => registration.handle_frame(envelope),
        };
        if let Some(outcome) = step {
            break outcome;
        }
    };
    match outcome {
        RegistrationOutcome::Registered(registered) => {
            if registered.protocol_version > PROTOCOL_VERSION {
                warn!(%addr, gateway = registered.protocol_version, ours = PROTOCOL_VERSION, "the gateway speaks a newer protocol version");
            }
            // Read frames as large as the gateway may send; what we send is checked against
            // its own limit separately (the session's `peer_max`).
            *transport.codec_mut() = WorkerCodec::new(registered.read_max_frame());
            Ok(Established {
                transport,
                registered,
            })
        }
        RegistrationOutcome::Refused(err) => Err(Error::Rejected {
            code: error::error_code(err.code),
            message: error::describe(err.code, err.message),
        }),
        RegistrationOutcome::TimedOut => Err(Error::Timeout),
    }
}
