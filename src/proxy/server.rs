//! A running proxy: its listening sockets, the tasks accepting on them, and the changes it
//! takes while connections run. Every change is built in full beside the running table (new
//! listeners bound, new pools made), then swapped in one store; a refused change leaves
//! everything as it was.

use core::net::SocketAddr;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::accept::accept_loop;
use super::live::{Live, Shared};
use super::sockets::bind_group;
use super::workers::Workers;
use super::{Config, Error, Observer, Route};

/// A running proxy. Dropping it stops accepting; [`Server::shutdown`] also drains.
pub struct Server {
    shared: Arc<Shared>,
    runs_on: RunsOn,
    /// Held while a change is made: changes come one at a time.
    accepting: Mutex<HashMap<SocketAddr, Accepting>>,
}

/// Where connections run, and where pools' health checks and freed tables go.
enum RunsOn {
    /// The caller's runtime.
    Caller(Handle),
    /// The engine's threads: one runtime per worker, one for the rest.
    Workers { workers: Workers, control: Workers },
}

/// A bound address being accepted on: its accept tasks end when this sends, or is dropped
/// with the server.
struct Accepting {
    stop: watch::Sender<bool>,
}

/// Sockets bound for a change, by the address they are bound to, each registered with the
/// runtime that will accept on it.
type Bound = Vec<(SocketAddr, Vec<tokio::net::TcpListener>)>;

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs())
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds every listener and accepts on the current tokio runtime (which needs its `net`
    /// and `time` drivers); a multi-threaded runtime spreads connections over its threads.
    pub fn start(config: Config, observer: Arc<dyn Observer>) -> Result<Server, Error> {
        let handle = Handle::try_current().map_err(|e| Error::Workers(std::io::Error::other(e)))?;
        Self::launch(config, observer, RunsOn::Caller(handle))
    }

    /// Binds every listener and accepts on `threads` threads of the engine's own (0: one per
    /// CPU), each with a single-threaded runtime and its own socket per address
    /// (`SO_REUSEPORT`). A connection lives and ends on the thread that accepted it: no work
    /// stealing and no cross-thread wake-ups, which were half the proxy's system time under a
    /// new-connection-per-request load on one shared multi-threaded runtime. Needs no runtime.
    pub fn start_workers(
        config: Config,
        observer: Arc<dyn Observer>,
        threads: usize,
    ) -> Result<Server, Error> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let workers = Workers::start(threads, "worker").map_err(Error::Workers)?;
        let control = Workers::start(1, "control").map_err(Error::Workers)?;
        Self::launch(config, observer, RunsOn::Workers { workers, control })
    }

    fn launch(
        mut config: Config,
        observer: Arc<dyn Observer>,
        runs_on: RunsOn,
    ) -> Result<Server, Error> {
        let epoch = Instant::now();
        let sockets = bind_new(&mut config, &HashMap::new(), &runs_on)?;
        let (live, pending) = {
            let _runtime = runs_on.control().enter();
            Live::new(config, None, epoch)?
        };
        let server = Server {
            shared: Arc::new(Shared {
                live: ArcSwap::from_pointee(live),
                observer,
                accepted: Default::default(),
                active: Default::default(),
                epoch,
            }),
            runs_on,
            accepting: Mutex::new(HashMap::new()),
        };
        pending.apply(epoch.elapsed());
        let live = server.shared.live.load_full();
        server.start_accepting(&live, sockets, &mut server.lock());
        Ok(server)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Accepting>> {
        self.accepting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where each configured address is bound, in the configuration's order: port 0 as the
    /// port the system chose. (Each time a configuration with port 0 is loaded, a new free port
    /// is taken; route changes keep the bound ones.)
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let live = self.shared.live.load();
        live.listeners
            .iter()
            .flat_map(|l| l.addresses.clone())
            .collect()
    }

    /// Connections open now.
    pub fn active(&self) -> u64 {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Connections accepted since the start (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// The routes, in order.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.shared.live.load().table.specs().cloned().collect()
    }

    /// Replaces the whole configuration: listeners added are bound, listeners removed stop
    /// accepting (their open connections run on), routes and limits are swapped. Pools whose
    /// backends and settings are unchanged are kept with their health.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let mut accepting = self.lock();
        self.change(&mut accepting, config)
    }

    /// Replaces every route at once.
    pub fn set_routes(
        &self,
        routes: impl IntoIterator<Item = impl Into<Arc<Route>>>,
    ) -> Result<(), Error> {
        let routes = routes.into_iter().map(Into::into).collect();
        self.edit_routes(|_| Ok(routes))
    }

    /// Adds a route after the others.
    pub fn add_route(&self, route: impl Into<Arc<Route>>) -> Result<(), Error> {
        let route = route.into();
        self.edit_routes(|mut routes| {
            routes.push(route);
            Ok(routes)
        })
    }

    /// Removes the route named `name`, and answers it.
    pub fn remove_route(&self, name: &str) -> Result<Arc<Route>, Error> {
        let mut removed = None;
        self.edit_routes(|mut routes| {
            let at = position(&routes, name)?;
            removed = Some(routes.remove(at));
            Ok(routes)
        })?;
        removed.ok_or_else(|| Error::NoSuchRoute(name.to_owned()))
    }

    /// Gives `backend` of route `route` a new weight (0: no new connections). A backend on the
    /// port the client connected to is named with port 0. When the route had its pool to itself,
    /// the pool is updated in place: health and connections in flight are kept. A route that
    /// shared its pool with others gets a pool of its own, whose backends start healthy.
    pub fn reweight(&self, route: &str, backend: SocketAddr, weight: u32) -> Result<(), Error> {
        self.edit_routes(|mut routes| {
            let at = position(&routes, route)?;
            let spec = Arc::make_mut(&mut routes[at]);
            let port = (backend.port() != 0).then_some(backend.port());
            let found = spec
                .backends
                .iter_mut()
                .find(|b| b.ip == backend.ip() && b.port == port)
                .ok_or_else(|| Error::NoSuchBackend {
                    route: route.to_owned(),
                    backend,
                })?;
            found.weight = weight;
            Ok(routes)
        })
    }

    /// A change of the routes alone: `edit` gets the running ones and gives the new ones.
    fn edit_routes(
        &self,
        edit: impl FnOnce(Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, Error>,
    ) -> Result<(), Error> {
        let mut accepting = self.lock();
        let live = self.shared.live.load_full();
        let config = live.with_routes(edit(live.table.specs().cloned().collect())?);
        drop(live);
        self.change(&mut accepting, config)
    }

    fn change(
        &self,
        accepting: &mut HashMap<SocketAddr, Accepting>,
        mut config: Config,
    ) -> Result<(), Error> {
        let old = self.shared.live.load_full();
        let sockets = bind_new(&mut config, accepting, &self.runs_on)?;
        let (live, pending) = {
            let _runtime = self.runs_on.control().enter();
            Live::new(config, Some(&old), self.shared.epoch)?
        };
        pending.apply(self.shared.epoch.elapsed());
        let live = Arc::new(live);
        self.shared.live.store(Arc::clone(&live));
        // The old table is freed on the control runtime, once no connection being routed holds
        // it: freeing 100,000 routes would take a worker tens of milliseconds away from
        // accepting.
        let observer = Arc::clone(&self.shared.observer);
        self.runs_on.control().spawn(async move {
            while Arc::strong_count(&old) > 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            drop(old);
            observer.table_freed();
        });
        self.start_accepting(&live, sockets, accepting);
        Ok(())
    }

    /// Starts accepting on new sockets and stops the addresses `live` dropped.
    fn start_accepting(
        &self,
        live: &Live,
        sockets: Bound,
        accepting: &mut HashMap<SocketAddr, Accepting>,
    ) {
        accepting.retain(|address, a| {
            let keep = live.by_address.contains_key(address);
            if !keep {
                let _ = a.stop.send(true);
                tracing::info!(%address, "listener removed");
            }
            keep
        });
        for (address, group) in sockets {
            let (stop, stopped) = watch::channel(false);
            for (i, socket) in group.into_iter().enumerate() {
                let task = accept_loop(socket, address, Arc::clone(&self.shared), stopped.clone());
                match &self.runs_on {
                    RunsOn::Caller(handle) => drop(handle.spawn(task)),
                    RunsOn::Workers { workers, .. } => workers.spawn_on(i, task),
                }
            }
            tracing::info!(%address, "listening");
            accepting.insert(address, Accepting { stop });
        }
    }

    /// Stops accepting and lets open connections finish for up to the limits' `drain_timeout`.
    /// On the engine's own threads ([`Server::start_workers`]), those still open are then closed,
    /// each recorded with [`Outcome::Shutdown`](super::Outcome::Shutdown); on the caller's runtime
    /// they run on until they end or that runtime is dropped (recorded the same way). Answers
    /// how many were open at the deadline. Needs a tokio runtime with its time driver.
    pub async fn shutdown(self) -> u64 {
        for a in self.lock().values() {
            let _ = a.stop.send(true);
        }
        let drain = self.shared.live.load().limits.drain_timeout;
        let _ = tokio::time::timeout(drain, async {
            while self.active() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let left = self.active();
        if let RunsOn::Workers { workers, control } = self.runs_on {
            // Joining threads blocks: not on the caller's runtime.
            let _ = tokio::task::spawn_blocking(move || {
                workers.stop();
                control.stop();
            })
            .await;
        }
        left
    }
}

/// Binds the addresses of `config` that are not accepting yet (port 0 always: it asks for a new
/// port), all of them or none, registers each socket with the runtime that will accept on it,
/// and writes the bound ports into `config`.
fn bind_new(
    config: &mut Config,
    accepting: &HashMap<SocketAddr, Accepting>,
    runs_on: &RunsOn,
) -> Result<Bound, Error> {
    let mut seen = std::collections::HashSet::new();
    let mut bound = Vec::new();
    for address in config.listeners.iter_mut().flat_map(|l| &mut l.addresses) {
        if address.port() != 0 && !seen.insert(*address) {
            return Err(Error::AddressTwice(*address));
        }
        if address.port() != 0 && accepting.contains_key(address) {
            continue;
        }
        let configured = *address;
        let fail = |source| Error::Bind {
            address: configured,
            source,
        };
        let group = bind_group(*address, runs_on.sockets_per_address()).map_err(fail)?;
        if let Some(port) = group.first().and_then(|s| s.local_addr().ok()) {
            address.set_port(port.port());
        }
        let registered = group
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let _runtime = runs_on.accepting(i).enter();
                tokio::net::TcpListener::from_std(socket)
            })
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        bound.push((*address, registered));
    }
    Ok(bound)
}

impl RunsOn {
    /// The runtime that accepts on an address's socket `index`.
    fn accepting(&self, index: usize) -> &Handle {
        match self {
            RunsOn::Caller(handle) => handle,
            RunsOn::Workers { workers, .. } => workers.handle(index),
        }
    }

    fn sockets_per_address(&self) -> usize {
        match self {
            RunsOn::Caller(_) => 1,
            RunsOn::Workers { workers, .. } => workers.len(),
        }
    }

    fn control(&self) -> &Handle {
        match self {
            RunsOn::Caller(handle) => handle,
            RunsOn::Workers { control, .. } => control.handle(0),
        }
    }
}

fn position(routes: &[Arc<Route>], name: &str) -> Result<usize, Error> {
    routes
        .iter()
        .position(|r| r.name == name)
        .ok_or_else(|| Error::NoSuchRoute(name.to_owned()))
}
