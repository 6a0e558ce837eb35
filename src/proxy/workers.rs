//! Threads with a single-threaded tokio runtime each, that run what is spawned on them until
//! stopped (see [`super::Server::start_workers`]).

use core::future::Future;
use core::time::Duration;
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub(crate) struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Workers {
    /// Starts `count` workers (at least one), their threads named `name-0`, `name-1`...
    pub(crate) fn start(count: usize, name: &str) -> io::Result<Workers> {
        let workers = (0..count.max(1))
            .map(|i| {
                let runtime = Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        // Spawned tasks run while this waits; `stop` (or its drop) ends it.
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                        // What still runs after the drain is cut off here.
                        runtime.shutdown_timeout(Duration::from_secs(1));
                    })?;
                Ok(Worker {
                    handle,
                    stop,
                    thread,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Workers { workers })
    }

    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn handle(&self, index: usize) -> &Handle {
        &self.workers[index].handle
    }

    /// Runs `task` on worker `index`'s thread.
    pub(crate) fn spawn_on<F>(&self, index: usize, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.workers[index].handle.spawn(task);
    }

    /// Ends every worker; connections still open are dropped (closed).
    pub(crate) fn stop(self) {
        for w in self.workers {
            let _ = w.stop.send(());
            let _ = w.thread.join();
        }
    }
}
