//! The `wsgate` binary: defaults, the `--config` file, `WSGATE_*` variables and flags into
//! [`wsgate::Config`] (each overriding the one before), logs via `RUST_LOG`, `--print-config`,
//! TLS certificate reload on SIGHUP and a graceful drain on SIGINT or SIGTERM.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wsgate::config::Loaded;

#[tokio::main]
async fn main() -> ExitCode {
    let loaded = match Loaded::from_args(std::env::args_os()) {
        Ok(l) => l,
        // Usage errors, --help and --version: clap prints them and picks the exit code.
        Err(wsgate::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("wsgate: {e}");
            return ExitCode::from(2);
        }
    };
    if loaded.print_config {
        return print_config(&loaded);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in log files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
    if let Some(file) = &loaded.file {
        tracing::info!(file = %file.display(), "configuration file read");
    }

    // Listening before the gateway is up, so that a SIGHUP never hits the default (exit).
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    // Likewise SIGTERM and SIGINT: a signal that arrives before `run` first polls its shutdown
    // future must start a drain, not kill the process.
    let term = stop_signals();
    let gateway = match wsgate::Gateway::bind(loaded.config).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("wsgate: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    match hup {
        Ok(hup) => drop(tokio::spawn(reload_on_sighup(hup, gateway.tls_reloader()))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS certificates will not be reloaded")
        }
    }
    gateway.run(shutdown_signal(term)).await;
    ExitCode::SUCCESS
}

/// `--print-config`: the configuration on stdout; exit 0 if the gateway would accept it.
fn print_config(loaded: &Loaded) -> ExitCode {
    match loaded.to_toml() {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("wsgate: cannot print the configuration: {e}");
            return ExitCode::from(2);
        }
    }
    match loaded.config.validate() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate: this configuration would not start: {e}");
            ExitCode::from(2)
        }
    }
}

/// On SIGHUP, reads the TLS certificate and key again; new connections get the new ones,
/// open connections are untouched, and unusable files keep the certificate in service.
/// Without TLS there is nothing to reload, but SIGHUP still does not stop the gateway.
#[cfg(unix)]
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, tls: Option<wsgate::TlsReloader>) {
    while hup.recv().await.is_some() {
        let Some(tls) = tls.clone() else {
            tracing::info!(
                "SIGHUP: nothing to reload (only the TLS certificate and key are re-read, and TLS is off)"
            );
            continue;
        };
        let cert = tls.cert_path().display().to_string();
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(())) => {
                tracing::info!(%cert, "SIGHUP: TLS certificate reloaded; new connections use it")
            }
            Ok(Err(e)) => tracing::error!(
                error = %e,
                "SIGHUP: TLS certificate NOT reloaded; the previous one stays in service"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed"),
        }
    }
}

/// SIGTERM and SIGINT, listened for from the start.
#[cfg(unix)]
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
fn stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("wsgate: cannot listen for {name} ({e}); it will not drain the gateway");
            None
        }
    };
    StopSignals {
        term: listen(SignalKind::terminate(), "SIGTERM"),
        int: listen(SignalKind::interrupt(), "SIGINT"),
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
fn stop_signals() -> StopSignals {
    StopSignals
}

async fn shutdown_signal(signals: StopSignals) {
    #[cfg(unix)]
    {
        async fn recv(signal: Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(signals.term) => {}
            _ = recv(signals.int) => {}
        }
    }
    #[cfg(not(unix))]
    {
        let StopSignals = signals;
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}
