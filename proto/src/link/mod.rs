//! The worker link's rules as plain state machines, for both ends: the register handshake, the
//! heartbeat, and the table of requests waiting for their answer.
//!
//! Each machine is told what happened (a frame arrived, time passed) together with the
//! current instant, and answers with what to do: a frame to send, the next instant it wants to
//! be woken at (`poll_timeout`), or an outcome. None of them reads a clock, opens a socket or
//! sleeps, in the manner of quinn-proto: the gateway and the SDK own the sockets and the
//! timers, and the rules are tested by passing instants. `docs/protocol.md` (sections 4, 7 and
//! 8) is the prose these follow.
//!
//! - [`body`]: which body is what, and who sends it ([`BodyKind`], [`Sender`]).
//! - [`frames`]: the frames both ends build alike (`Ping`, `Pong`, `Error`).
//! - [`register`]: the business side of the handshake ([`Registration`]: send `Register`,
//!   await `RegisterOk` within a deadline) and the gateway side ([`AwaitRegister`]: the first
//!   frame must be `Register`, within the register timeout).
//! - [`heartbeat`]: when to ping, and when a silent peer counts as gone ([`Heartbeat`]).
//! - [`requests`]: request ids, matching an answer to its waiter, and giving up on one that
//!   takes too long ([`Requests`]).
//! - [`acks`]: acknowledged events: the gateway's window of events written and not yet
//!   acknowledged ([`acks::Unacked`]), the business side's batching of acknowledgements
//!   ([`acks::Acker`]): at-least-once events (`docs/protocol.md`, "Acknowledged events").

pub mod acks;
pub mod body;
pub mod frames;
pub mod heartbeat;
pub mod register;
pub mod requests;

pub use body::{BodyKind, Sender};
pub use heartbeat::{Beat, Heartbeat, SilenceCheck};
pub use register::{
    AwaitRegister, FirstFrame, Registered, Registration, RegistrationOutcome, peer_max_frame,
};
pub use requests::Requests;
