//! The gRPC API (127.0.0.1:8083 by default).

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ApiContext;

/// Serves the gRPC API until `stop` fires.
pub(crate) async fn serve(listener: TcpListener, context: ApiContext, stop: CancellationToken) {
    let _ = (listener, context);
    stop.cancelled().await;
}
