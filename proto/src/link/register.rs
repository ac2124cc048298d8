//! The register handshake (`docs/protocol.md` section 7), one machine per end.
//!
//! The business process sends `Register` as its first frame and waits, at most a deadline,
//! for `RegisterOk` (registered) or an `Error` (refused), answering the gateway's `Ping`s
//! meanwhile and ignoring anything else: [`Registration`]. The gateway waits, at most its
//! register timeout, for that first frame, and refuses a link whose first frame is anything
//! but `Register`: [`AwaitRegister`]. Checking the `Register` itself (token, version) and
//! answering it is the gateway's, since it depends on its configuration.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::DEFAULT_MAX_FRAME_BYTES;
use crate::link::frames;
use crate::v1::envelope::Body;
use crate::v1::{self, Envelope, ErrorCode, Limits, Register};

/// The business side of the handshake.
///
/// ```
/// use std::time::{Duration, Instant};
/// use wsgate_proto::link::{Registration, RegistrationOutcome};
/// use wsgate_proto::v1::{envelope::Body, Envelope, Register, RegisterOk};
///
/// let now = Instant::now();
/// let mut reg = Registration::new(Register::default(), 1, now, Duration::from_secs(10));
/// let register = reg.poll_transmit().expect("Register goes first");
/// // ... sent; then the gateway answers:
/// let ok = Envelope {
///     request_id: register.request_id,
///     body: Some(Body::RegisterOk(RegisterOk { node_id: "gw1".into(), ..Default::default() })),
///     ..Default::default()
/// };
/// let Some(RegistrationOutcome::Registered(registered)) = reg.handle_frame(ok) else {
///     panic!("registered")
/// };
/// assert_eq!(registered.node_id, "gw1");
/// ```
#[derive(Debug)]
pub struct Registration {
    deadline: Instant,
    transmit: VecDeque<Envelope>,
    done: bool,
}

/// How a [`Registration`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationOutcome {
    /// The gateway accepted it.
    Registered(Registered),
    /// The gateway refused it with this `Error` (a wrong token, an unsupported version, ...).
    Refused(v1::Error),
    /// No answer before the deadline.
    TimedOut,
}

/// What the gateway's `RegisterOk` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The gateway's node id; the connection ids it issues start with it.
    pub node_id: String,
    /// The protocol version the gateway speaks.
    pub protocol_version: u32,
    /// The gateway's limits (all zero, "unknown", when it sent none).
    pub limits: Limits,
}

impl Registration {
    /// A handshake that sends `register` with `request_id` and gives up `timeout` after `now`.
    pub fn new(register: Register, request_id: u64, now: Instant, timeout: Duration) -> Self {
        Self {
            deadline: now + timeout,
            transmit: VecDeque::from([Envelope {
                request_id,
                body: Some(Body::Register(register)),
                ..Default::default()
            }]),
            done: false,
        }
    }

    /// The next frame to send: the `Register` first, then `Pong`s for the gateway's `Ping`s.
    pub fn poll_transmit(&mut self) -> Option<Envelope> {
        self.transmit.pop_front()
    }

    /// When the handshake gives up; `None` once it ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.deadline)
    }

    /// A frame arrived from the gateway: the outcome if it ends the handshake.
    pub fn handle_frame(&mut self, envelope: Envelope) -> Option<RegistrationOutcome> {
        if self.done {
            return None;
        }
        let outcome = match envelope.body {
            Some(Body::RegisterOk(ok)) => RegistrationOutcome::Registered(Registered {
                node_id: ok.node_id,
                protocol_version: ok.protocol_version,
                limits: ok.limits.unwrap_or_default(),
            }),
            Some(Body::Error(err)) => RegistrationOutcome::Refused(err),
            Some(Body::Ping(_)) => {
                self.transmit.push_back(frames::pong(envelope.request_id));
                return None;
            }
            // Nothing else may come before RegisterOk; a gateway that sends it anyway is
            // ignored rather than refused, as the handshake has its deadline.
            _ => return None,
        };
        self.done = true;
        self.transmit.clear();
        Some(outcome)
    }

    /// Time has passed: [`RegistrationOutcome::TimedOut`] once the deadline is reached.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<RegistrationOutcome> {
        if self.done || now < self.deadline {
            return None;
        }
        self.done = true;
        self.transmit.clear();
        Some(RegistrationOutcome::TimedOut)
    }
}

impl Registered {
    /// The largest frame to read from the gateway: the larger of the default and the
    /// gateway's own limit, since the gateway may send frames as large as it accepts.
    pub fn read_max_frame(&self) -> usize {
        DEFAULT_MAX_FRAME_BYTES.max(self.limits.max_frame_bytes as usize)
    }
}

/// The largest frame the gateway accepts from us, by its `RegisterOk` limits (the default
/// when it did not say).
pub fn peer_max_frame(limits: &Limits) -> usize {
    match limits.max_frame_bytes {
        0 => DEFAULT_MAX_FRAME_BYTES,
        n => n as usize,
    }
}

/// The gateway side of the handshake: the first frame must be `Register`, within the register
/// timeout.
///
/// ```
/// use std::time::{Duration, Instant};
/// use wsgate_proto::link::{AwaitRegister, FirstFrame};
/// use wsgate_proto::v1::{envelope::Body, Envelope, Register};
///
/// let admission = AwaitRegister::new(Instant::now(), Duration::from_secs(10));
/// let first = Envelope {
///     request_id: 3,
///     body: Some(Body::Register(Register::default())),
///     ..Default::default()
/// };
/// assert!(matches!(admission.handle_frame(first), FirstFrame::Register { request_id: 3, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct AwaitRegister {
    deadline: Instant,
    timeout: Duration,
}

/// What the first frame of a link means for the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum FirstFrame {
    /// A `Register` to check and answer (`RegisterOk`, or an `Error` echoing `request_id`).
    Register {
        /// The id to echo in the answer.
        request_id: u64,
        /// What the business process asks for.
        register: Register,
    },
    /// Anything else: send this `Error` (`NOT_REGISTERED`) and close the link. (Boxed: an
    /// envelope is large, and this is the rare case.)
    Reject(Box<Envelope>),
}

impl AwaitRegister {
    /// A link accepted at `now`, which must register within `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            deadline: now + timeout,
            timeout,
        }
    }

    /// When the link must have sent its `Register`.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// The first frame arrived.
    pub fn handle_frame(&self, envelope: Envelope) -> FirstFrame {
        match envelope.body {
            Some(Body::Register(register)) => FirstFrame::Register {
                request_id: envelope.request_id,
                register,
            },
            _ => FirstFrame::Reject(Box::new(frames::error(
                envelope.request_id,
                ErrorCode::NotRegistered,
                "the first frame on a worker link must be Register; closing this link",
            ))),
        }
    }

    /// The `Error` to send when nothing arrived by the deadline.
    pub fn timed_out(&self) -> Envelope {
        frames::error(
            0,
            ErrorCode::NotRegistered,
            format!(
                "no Register within {:?}; send Register as the first frame",
                self.timeout
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Ping, RegisterOk};

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn frame(request_id: u64, body: Body) -> Envelope {
        Envelope {
            request_id,
            body: Some(body),
            ..Default::default()
        }
    }

    fn register() -> Register {
        Register {
            name: "chat".into(),
            protocol_version: crate::PROTOCOL_VERSION,
            ..Register::default()
        }
    }

    #[test]
    fn register_goes_first_and_register_ok_ends_it() {
        let t0 = Instant::now();
        let mut reg = Registration::new(register(), 5, t0, secs(10));
        assert_eq!(reg.poll_timeout(), Some(t0 + secs(10)));
        let sent = reg.poll_transmit().expect("the Register");
        assert_eq!(sent.request_id, 5);
        assert!(matches!(sent.body, Some(Body::Register(r)) if r.name == "chat"));
        assert_eq!(reg.poll_transmit(), None);

        let limits = Limits {
            max_frame_bytes: 1024,
            ..Limits::default()
        };
        let ok = RegisterOk {
            node_id: "gw1".into(),
            protocol_version: 1,
            limits: Some(limits),
        };
        let outcome = reg.handle_frame(frame(5, Body::RegisterOk(ok)));
        let Some(RegistrationOutcome::Registered(registered)) = outcome else {
            panic!("registered, got {outcome:?}")
        };
        assert_eq!(registered.node_id, "gw1");
        assert_eq!(registered.limits, limits);
        assert_eq!(reg.poll_timeout(), None, "ended");
        assert_eq!(reg.handle_timeout(t0 + secs(20)), None);
    }

    #[test]
    fn pings_are_answered_and_other_frames_ignored_while_waiting() {
        let t0 = Instant::now();
        let mut reg = Registration::new(register(), 1, t0, secs(10));
        reg.poll_transmit();
        assert_eq!(reg.handle_frame(frame(9, Body::Ping(Ping {}))), None);
        let pong = reg.poll_transmit().expect("a Pong");
        assert_eq!(pong, frames::pong(9));
        let early = Body::Result(v1::Result::default());
        assert_eq!(reg.handle_frame(frame(1, early)), None);
        assert_eq!(reg.poll_transmit(), None);
        assert_eq!(reg.handle_timeout(t0 + secs(9)), None);
    }

    #[test]
    fn an_error_refuses_and_silence_times_out() {
        let t0 = Instant::now();
        let mut reg = Registration::new(register(), 1, t0, secs(10));
        let refusal = v1::Error {
            code: ErrorCode::Unauthenticated as i32,
            message: "wrong worker token".into(),
        };
        assert_eq!(
            reg.handle_frame(frame(1, Body::Error(refusal.clone()))),
            Some(RegistrationOutcome::Refused(refusal))
        );

        let mut reg = Registration::new(register(), 1, t0, secs(10));
        assert_eq!(
            reg.handle_timeout(t0 + secs(10)),
            Some(RegistrationOutcome::TimedOut)
        );
        assert_eq!(reg.poll_transmit(), None, "nothing is sent after the end");
        assert_eq!(reg.handle_frame(frame(1, Body::Ping(Ping {}))), None);
    }

    #[test]
    fn frame_limits_default_when_the_gateway_says_nothing() {
        let unknown = Registered {
            node_id: String::new(),
            protocol_version: 1,
            limits: Limits::default(),
        };
        assert_eq!(unknown.read_max_frame(), DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(peer_max_frame(&unknown.limits), DEFAULT_MAX_FRAME_BYTES);
        let small = Limits {
            max_frame_bytes: 1024,
            ..Limits::default()
        };
        assert_eq!(peer_max_frame(&small), 1024);
        let large = Registered {
            limits: Limits {
                max_frame_bytes: u32::MAX,
                ..Limits::default()
            },
            ..unknown
        };
        assert_eq!(large.read_max_frame(), u32::MAX as usize);
    }

    #[test]
    fn the_gateway_wants_register_first() {
        let t0 = Instant::now();
        let admission = AwaitRegister::new(t0, secs(10));
        assert_eq!(admission.poll_timeout(), t0 + secs(10));
        assert_eq!(
            admission.handle_frame(frame(4, Body::Register(register()))),
            FirstFrame::Register {
                request_id: 4,
                register: register()
            }
        );
        let FirstFrame::Reject(reply) = admission.handle_frame(frame(8, Body::Ping(Ping {})))
        else {
            panic!("a command before Register is refused")
        };
        assert_eq!(reply.request_id, 8);
        assert!(
            matches!(&reply.body, Some(Body::Error(e)) if e.code == ErrorCode::NotRegistered as i32)
        );
        let late = admission.timed_out();
        assert_eq!(late.request_id, 0);
        let Some(Body::Error(e)) = late.body else {
            panic!("an Error frame")
        };
        assert_eq!(e.code, ErrorCode::NotRegistered as i32);
        assert!(
            e.message.contains("no Register within 10s"),
            "{}",
            e.message
        );
    }
}
