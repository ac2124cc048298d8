//! Reading and writing a client socket without per-connection buffers.
//!
//! A read lands in a scratch buffer on the stack of the poll (never held across an await, so
//! it is not part of the connection's task) and only the bytes that arrived are copied into
//! the connection's input buffer, which is empty — unallocated — whenever no frame is half
//! received. Writes hand the queued frames to the kernel as they are, many per system call.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes read per system call at most.
const SCRATCH: usize = 16 * 1024;

/// Frames handed to one `writev`.
const MAX_IOV: usize = 64;

/// Reads what is available into `buf`; `Ok(0)` at end of stream.
pub(crate) async fn read_into<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    poll_fn(|cx| {
        // A frame larger than the scratch buffer has room reserved: read straight into it.
        if buf.capacity() - buf.len() >= SCRATCH {
            return tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf);
        }
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH];
        let mut read = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    })
    .await
}

/// Something queued for writing: its unwritten bytes.
pub(crate) trait Chunk {
    fn bytes(&self) -> &[u8];
    fn consume(&mut self, n: usize);
    /// The whole chunk has been written: what of it is kept (handed back by
    /// [`write_frames`]), `None` to drop it.
    fn finish(self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// Writes one frame, then flushes.
pub(crate) async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &[u8],
) -> io::Result<()> {
    stream.write_all(frame).await?;
    stream.flush().await
}

/// Writes every chunk in `frames` (emptying it), then flushes. Empty chunks are not allowed.
/// Written chunks that keep something ([`Chunk::finish`]) go to `kept`.
pub(crate) async fn write_frames<S: AsyncWrite + Unpin, C: Chunk>(
    stream: &mut S,
    frames: &mut VecDeque<C>,
    kept: &mut Vec<C>,
) -> io::Result<()> {
    poll_fn(|cx| {
        while !frames.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let mut n = 0;
                for (slot, frame) in slices.iter_mut().zip(frames.iter()) {
                    *slot = IoSlice::new(frame.bytes());
                    n += 1;
                }
                ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n]))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)));
            }
            advance(frames, written, kept);
        }
        Poll::Ready(Ok(()))
    })
    .await?;
    stream.flush().await
}

/// Drops `n` written bytes from the front of `frames`.
fn advance<C: Chunk>(frames: &mut VecDeque<C>, mut n: usize, kept: &mut Vec<C>) {
    while n > 0 {
        let Some(front) = frames.front_mut() else {
            return;
        };
        let len = front.bytes().len();
        if n < len {
            front.consume(n);
            return;
        }
        n -= len;
        if let Some(keep) = frames.pop_front().and_then(Chunk::finish) {
            kept.push(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, Bytes};

    use super::*;

    impl Chunk for Bytes {
        fn bytes(&self) -> &[u8] {
            self
        }
        fn consume(&mut self, n: usize) {
            self.advance(n);
        }
    }

    #[tokio::test]
    async fn partial_writes_resume_where_they_stopped() {
        // A pipe far smaller than the data forces many short writes.
        let (mut a, mut b) = tokio::io::duplex(7);
        let mut frames: VecDeque<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 13])).collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = BytesMut::new();
            while got.len() < 1300 {
                if read_into(&mut b, &mut got).await.expect("read") == 0 {
                    break;
                }
            }
            got
        });
        write_frames(&mut a, &mut frames, &mut Vec::new())
            .await
            .expect("write");
        assert!(frames.is_empty());
        assert_eq!(reader.await.expect("reader")[..], expected[..]);
    }
}
