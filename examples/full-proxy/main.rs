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
//! full-proxy --config FILE --nat64-lookup 203.0.113.16:3040
//!                                     the customer sub-prefix owning a stateful NAT64 address
//!                                     and port (0 owned, 1 owned by no block, 2 error)
//! ```
//! Signals: SIGHUP reloads the file (a bad file keeps the running configuration); SIGTERM or
//! Ctrl-C stops accepting, lets open connections finish up to `limits.drain_timeout`, exits 0.

// A program has no public API: `pub` here only means "for the other modules".
#![allow(unreachable_pub)]

mod config;
mod demo;
mod memory;
mod metrics;
mod nat64;

use core::net::SocketAddrV4;
use core::sync::atomic::Ordering;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sixgate::proxy::Server;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

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
    /// Stateful NAT64: print the customer sub-prefix that owns this pool4 address and port
    /// (the blocks follow from the file's layout alone, so no log is needed), and exit: 0 when a
    /// block owns it, 1 when none does, 2 on a bad file. Starts nothing, needs no privileges.
    /// The running gateway keeps the layout it started with (a reload changing it is refused):
    /// ask with the file that was in force at the time in question.
    #[arg(
        long,
        value_name = "IPv4:PORT",
        requires = "config",
        conflicts_with = "check"
    )]
    nat64_lookup: Option<SocketAddrV4>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let (Some(at), Some(path)) = (args.nat64_lookup, &args.config) {
        return nat64_lookup(path, at);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The control thread: configuration, signals, reloads, metrics and the demo's backends.
    // Connections run on the engine's workers.
    let runtime = match tokio::runtime::Builder::new_current_thread()
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

/// `--nat64-lookup`: reads and checks the file, answers, starts nothing.
fn nat64_lookup(path: &std::path::Path, at: SocketAddrV4) -> ExitCode {
    let config = match config::load(path, true, &[]) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            return ExitCode::from(2);
        }
    };
    let Some(stateful) = config.nat64.and_then(|n| n.settings.stateful) else {
        eprintln!(
            "{}: no stateful NAT64 here: the lookup needs [nat64] with mode = \"stateful\"",
            path.display()
        );
        return ExitCode::from(2);
    };
    match nat64::lookup(&stateful.layout, at) {
        Ok(owner) => {
            println!("{owner}");
            ExitCode::SUCCESS
        }
        Err(none) => {
            println!("{none}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let (config, path) = match &args.config {
        Some(path) => match config::load(path, args.check, &[]) {
            Ok(config) => {
                if args.check {
                    println!("{}: valid", path.display());
                    // The process ends here: freeing 100,000 routes one by one would take a
                    // sixth of the time checking them did.
                    core::mem::forget(config);
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
    let metrics = Arc::new(Metrics::default());
    if let Some(n) = &config.nat64 {
        metrics.gateway.store(Some(Arc::new(nat64::start(n)?)));
    }
    let metrics_task = match config.metrics {
        Some(address) => {
            let listener = std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(TcpListener::from_std)
                .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
            Some(tokio::spawn(metrics::serve(listener, Arc::clone(&metrics))))
        }
        None => None,
    };
    let trimming = tokio::spawn(memory::trim_after_closes_and_reloads(Arc::clone(&metrics)));
    let threads = config.limits.threads;
    let server = Server::start_workers(config.engine(), Arc::clone(&metrics) as _, threads)
        .map_err(|e| e.to_string())?;
    tracing::info!(threads, "workers started");
    let mut running = config;

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&server, &metrics, path.as_deref(), &mut running),
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // The gateway has no connections to drain: packets in flight are the kernel's to drop.
    metrics.gateway.store(None);
    // Drain: no new connections; open ones run on until they end or the deadline passes.
    let drain = running.limits.engine.drain_timeout;
    let open = server.active();
    tracing::info!(
        open,
        "shutting down: waiting up to {drain:?} for open connections"
    );
    let left = server.shutdown().await;
    tracing::info!(left, "stopped");
    trimming.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}

/// SIGHUP: read the file again and apply it whole, or not at all. The gateway takes its part
/// first; the engine builds the new table and binds new listeners before anything of its own
/// changes, and when it refuses, the gateway's previous settings are put back.
fn reload(
    server: &Server,
    metrics: &Metrics,
    path: Option<&std::path::Path>,
    running: &mut config::Config,
) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: the demo has no configuration file to reload");
        return;
    };
    let refuse = |why: &str| {
        metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "reload refused, keeping the running configuration: {}: {why}",
            path.display()
        );
    };
    let config = match config::load(path, false, &running.routes) {
        Ok(c) => c,
        Err(errors) => return errors.iter().for_each(|e| refuse(&e.to_string())),
    };
    if config.limits.threads != running.limits.threads {
        tracing::warn!("limits.threads changed: it takes effect at the next start, not on reload");
    }
    // The gateway first: putting its settings back cannot fail for want of a port, as putting
    // back a listener the engine just closed could.
    if let Err(e) = nat64::reload(&metrics.gateway, config.nat64.as_ref()) {
        return refuse(&e);
    }
    if let Err(e) = server.reload(config.engine()) {
        if let Err(back) = nat64::reload(&metrics.gateway, running.nat64.as_ref()) {
            tracing::error!("the previous [nat64] could not be put back: {back}");
        }
        return refuse(&e.to_string());
    }
    // The routes live on in the engine's table; this copy is only for the next comparison.
    *running = config;
    metrics.reloads.fetch_add(1, Ordering::Relaxed);
    tracing::info!("configuration reloaded from {}", path.display());
}
