//! A TCP proxy a test can cut: it forwards worker links both ways until told to stop passing
//! the gateway's answers on ([`CutProxy::hold`]) and then to drop every connection
//! ([`CutProxy::cut`]) — a link lost after the gateway read a command and before its `Result`
//! reached the business process, which no real process can be made to do on cue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; it stops when dropped.
pub struct CutProxy {
    pub addr: SocketAddr,
    held: Arc<AtomicBool>,
    /// Bumped by every cut: connections opened before it end.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// A proxy on 127.0.0.1:0 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0);
        let task = tokio::spawn({
            let (held, cuts) = (held.clone(), cuts.clone());
            async move {
                while let Ok((down, _)) = listener.accept().await {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    tokio::spawn(pump(down, up, held.clone(), cuts.subscribe()));
                }
            }
        });
        Self {
            addr,
            held,
            cuts,
            task,
        }
    }

    /// From now on, what the gateway sends is read and thrown away.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Drops every connection open now; later ones are forwarded in full again.
    pub fn cut(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut down: TcpStream,
    mut up: TcpStream,
    held: Arc<AtomicBool>,
    mut cut: watch::Receiver<u64>,
) {
    // Anything read after a cut is thrown away too, even before this task sees the cut.
    let generation = *cut.borrow_and_update();
    let mut cut_seen = cut.clone();
    let (mut down_r, mut down_w) = down.split();
    let (mut up_r, mut up_w) = up.split();
    let upward = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            match down_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) if up_w.write_all(&buf[..n]).await.is_err() => return,
                Ok(_) => {}
            }
        }
    };
    let downward = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            match up_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) if held.load(Ordering::SeqCst) || *cut.borrow() != generation => {}
                Ok(n) if down_w.write_all(&buf[..n]).await.is_err() => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
        _ = cut_seen.changed() => {}
    }
}
