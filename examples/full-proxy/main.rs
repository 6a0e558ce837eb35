//! sixgate's full proxy: the IPv4/IPv6 front end of an IPv6-only hosting network.
//!
//! Clients arrive on the listeners; the proxy peeks the TLS SNI or HTTP Host (never decrypting),
//! picks one of the route's backends by weight, connects to it, sends a PROXY header if the
//! route asks for one, and relays bytes both ways.
//!
//! ```text
//! full-proxy                          self-contained demo on loopback
//! full-proxy --config FILE            run
//! full-proxy --config FILE --check    validate and exit (0 valid, 1 with every error and its line)
//! ```
//! Signals: SIGHUP reloads the file (a bad file keeps the running configuration); SIGTERM or
//! Ctrl-C stops accepting, lets open connections finish up to `limits.drain_timeout`, exits 0.

// A program has no public API: `pub` here only means "for the other modules".
#![allow(unreachable_pub)]

mod config;
mod demo;
mod listener;
mod metrics;
mod relay;
mod routing;
#[cfg(target_os = "linux")]
mod splice;

use core::net::SocketAddr;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::listener::{Live, Shared, accept_loop};
use crate::metrics::Metrics;

/// The sixgate edge proxy: routes TLS by SNI and HTTP by Host to IPv6 backends, with PROXY
/// protocol, weighted balancing and health checks. Without arguments it runs a self-contained
/// demo on loopback.
#[derive(Parser, Debug)]
#[command(
    name = "full-proxy",
    version,
    after_help = "Signals: SIGHUP reloads the configuration (a bad file keeps the running one); SIGTERM or Ctrl-C drains open connections, then exits 0.\nThe configuration format is documented in examples/full-proxy/sixgate.toml."
)]
struct Args {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit: 0 when valid, 1 with every error and its line.
    #[arg(long, requires = "config")]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("full-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let (config, path) = match &args.config {
        Some(path) => match config::load(path) {
            Ok(config) => {
                if args.check {
                    println!("{}: valid", path.display());
                    return ExitCode::SUCCESS;
                }
                (config, Some(path.clone()))
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{}: {e}", path.display());
                }
                return ExitCode::FAILURE;
            }
        },
        None => match demo::start().await {
            Ok(demo) => {
                println!("{}", demo.instructions());
                (demo.config, None)
            }
            Err(e) => {
                eprintln!("full-proxy: the demo could not start: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match serve(config, path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("full-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs until SIGTERM or Ctrl-C, then drains.
async fn serve(config: config::Config, path: Option<PathBuf>) -> Result<(), String> {
    let epoch = Instant::now();
    let live = Live::new(config, None, epoch)?;
    let metrics = Arc::new(Metrics::default());
    let metrics_task = live
        .config
        .metrics
        .map(|address| tokio::spawn(metrics::serve(address, Arc::clone(&metrics))));
    let shared = Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        metrics,
        epoch,
    });
    let mut accepting: HashMap<SocketAddr, watch::Sender<bool>> = HashMap::new();
    start_listeners(&shared, &mut accepting).await?;

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&shared, path.as_deref(), &mut accepting).await,
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // Drain: no new connections; open ones run on until they end or the deadline passes.
    for stop in accepting.values() {
        let _ = stop.send(true);
    }
    let drain = shared.live.load().config.limits.drain_timeout;
    let open = shared.metrics.active.load(Ordering::SeqCst);
    tracing::info!(
        open,
        "shutting down: waiting up to {drain:?} for open connections"
    );
    let deadline = Instant::now() + drain;
    while shared.metrics.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = shared.metrics.active.load(Ordering::SeqCst);
    tracing::info!(left, "stopped");
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}

/// Binds every listener address not bound yet and stops those no longer configured.
async fn start_listeners(
    shared: &Arc<Shared>,
    accepting: &mut HashMap<SocketAddr, watch::Sender<bool>>,
) -> Result<(), String> {
    let live = shared.live.load_full();
    accepting.retain(|address, stop| {
        let keep = live.listeners.contains_key(address);
        if !keep {
            let _ = stop.send(true);
            tracing::info!(%address, "listener removed");
        }
        keep
    });
    for &address in live.listeners.keys() {
        if accepting.contains_key(&address) {
            continue;
        }
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, address, Arc::clone(shared), stopped));
        tracing::info!(%address, "listening");
        accepting.insert(address, stop);
    }
    Ok(())
}

/// SIGHUP: read the file again; apply it whole or not at all.
async fn reload(
    shared: &Arc<Shared>,
    path: Option<&std::path::Path>,
    accepting: &mut HashMap<SocketAddr, watch::Sender<bool>>,
) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: the demo has no configuration file to reload");
        return;
    };
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            shared
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            for e in errors {
                tracing::error!(
                    "reload refused, keeping the running configuration: {}: {e}",
                    path.display()
                );
            }
            return;
        }
    };
    let old = shared.live.load_full();
    match Live::new(config, Some(&old), shared.epoch) {
        Ok(live) => {
            shared.live.store(Arc::new(live));
            if let Err(e) = start_listeners(shared, accepting).await {
                tracing::error!("reload: {e}");
            }
            shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
            tracing::info!("configuration reloaded from {}", path.display());
        }
        Err(e) => {
            shared
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!("reload refused, keeping the running configuration: {e}");
        }
    }
}
