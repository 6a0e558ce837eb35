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
mod listener;
mod metrics;
mod nat64;
mod relay;
mod routing;
#[cfg(target_os = "linux")]
mod splice;
mod workers;

use core::net::{SocketAddr, SocketAddrV4};
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
use crate::workers::Workers;

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
    // The control thread: configuration, signals, reloads, health checks, metrics and the demo's
    // backends. Connections run on the workers (`workers.rs`).
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
    let config = match config::load(path) {
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
        Some(path) => match config::load(path) {
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
    let epoch = Instant::now();
    let (live, pending) = Live::new(config, None, epoch)?;
    pending.apply(epoch.elapsed());
    let metrics = Arc::new(Metrics::default());
    if let Some(n) = &live.config.nat64 {
        metrics.gateway.store(Some(Arc::new(nat64::start(n)?)));
    }
    let metrics_task = match live.config.metrics {
        Some(address) => {
            let listener = bind(address, false)
                .and_then(TcpListener::from_std)
                .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
            Some(tokio::spawn(metrics::serve(listener, Arc::clone(&metrics))))
        }
        None => None,
    };
    let threads = match live.config.limits.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let sockets = bind_new(&live, &HashMap::new(), threads)?;
    let workers = Workers::start(threads).map_err(|e| format!("cannot start the workers: {e}"))?;
    tracing::info!(threads, "workers started");
    let shared = Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        metrics,
        epoch,
    });
    let mut accepting = HashMap::new();
    start_accepting(&shared, &workers, sockets, &mut accepting);

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&shared, path.as_deref(), &workers, &mut accepting),
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // The gateway has no connections to drain: packets in flight are the kernel's to drop.
    shared.metrics.gateway.store(None);
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
    let _ = tokio::time::timeout(drain, async {
        while shared.metrics.active.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let left = shared.metrics.active.load(Ordering::SeqCst);
    tracing::info!(left, "stopped");
    workers.stop();
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}

/// A listening socket. IPv6 addresses are bound IPv6-only, so `0.0.0.0:443` and `[::]:443` can
/// both be listed (as an operator expects), and IPv4 clients never appear v4-mapped.
fn bind(address: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One socket per worker on `address`, sharing the port through `SO_REUSEPORT`.
fn bind_group(address: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    if address.port() != 0 {
        // A port another process listens on is an error, not a port silently shared with it:
        // a plain socket cannot join a SO_REUSEPORT group, so this bind fails where it must.
        drop(bind(address, false)?);
    }
    let first = bind(address, true)?;
    let address = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind(address, true)?);
    }
    Ok(group)
}

/// Binds the addresses `live` lists that are not accepting yet, one socket per worker; all of
/// them or none.
fn bind_new(
    live: &Live,
    accepting: &HashMap<SocketAddr, watch::Sender<bool>>,
    workers: usize,
) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, String> {
    live.listeners
        .keys()
        .filter(|a| !accepting.contains_key(a))
        .map(|&a| {
            bind_group(a, workers)
                .map(|group| (a, group))
                .map_err(|e| format!("cannot listen on {a}: {e}"))
        })
        .collect()
}

/// Starts accepting on new sockets and stops the addresses the live configuration dropped.
fn start_accepting(
    shared: &Arc<Shared>,
    workers: &Workers,
    sockets: Vec<(SocketAddr, Vec<std::net::TcpListener>)>,
    accepting: &mut HashMap<SocketAddr, watch::Sender<bool>>,
) {
    let live = shared.live.load_full();
    accepting.retain(|address, stop| {
        let keep = live.listeners.contains_key(address);
        if !keep {
            let _ = stop.send(true);
            tracing::info!(%address, "listener removed");
        }
        keep
    });
    for (address, group) in sockets {
        let (stop, stopped) = watch::channel(false);
        for (worker, listener) in group.into_iter().enumerate() {
            let task = accept_loop(listener, address, Arc::clone(shared), stopped.clone());
            workers.spawn_on(worker, task);
        }
        tracing::info!(%address, "listening");
        accepting.insert(address, stop);
    }
}

/// SIGHUP: read the file again and apply it whole, or not at all: the new listeners are bound
/// and the new pools built before anything running changes.
fn reload(
    shared: &Arc<Shared>,
    path: Option<&std::path::Path>,
    workers: &Workers,
    accepting: &mut HashMap<SocketAddr, watch::Sender<bool>>,
) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: the demo has no configuration file to reload");
        return;
    };
    let refuse = |why: &str| {
        shared
            .metrics
            .reload_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "reload refused, keeping the running configuration: {}: {why}",
            path.display()
        );
    };
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => return errors.iter().for_each(|e| refuse(&e.to_string())),
    };
    let old = shared.live.load_full();
    let (live, pending) = match Live::new(config, Some(&old), shared.epoch) {
        Ok(built) => built,
        Err(e) => return refuse(&e),
    };
    if live.config.limits.threads != old.config.limits.threads {
        tracing::warn!("limits.threads changed: it takes effect at the next start, not on reload");
    }
    let sockets = match bind_new(&live, accepting, workers.len()) {
        Ok(s) => s,
        Err(e) => return refuse(&e),
    };
    // The last step that can fail: a new MTU the kernel refuses, a gateway that cannot start.
    if let Err(e) = nat64::reload(&shared.metrics.gateway, live.config.nat64.as_ref()) {
        return refuse(&e);
    }
    pending.apply(shared.epoch.elapsed());
    shared.live.store(Arc::new(live));
    // The old table is freed here, on the control thread, once no connection being routed holds
    // it: freeing 100,000 routes takes a worker tens of milliseconds away from accepting.
    tokio::spawn(async move {
        while Arc::strong_count(&old) > 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(old);
    });
    start_accepting(shared, workers, sockets, accepting);
    shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
    tracing::info!("configuration reloaded from {}", path.display());
}
