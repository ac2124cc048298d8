//! The plain tokio-tungstenite broadcast hub (work in progress).

fn main() {}
