//! The connection workers: one thread per core, each with its own single-threaded tokio runtime
//! and its own listening socket per address (`SO_REUSEPORT`: the kernel spreads new connections
//! over them). A connection lives and ends on the thread that accepted it: no work stealing and
//! no cross-thread wake-ups, which were half the proxy's system time (futex) under a
//! new-connection-per-request load on one shared multi-threaded runtime.

use core::future::Future;
use core::time::Duration;
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> io::Result<Workers> {
        let workers = (0..count.max(1))
            .map(|i| {
                let runtime = Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name(format!("worker-{i}"))
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

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Runs `task` on worker `index`'s thread.
    pub fn spawn_on<F>(&self, index: usize, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.workers[index].handle.spawn(task);
    }

    /// Ends every worker; connections still open are dropped (closed).
    pub fn stop(self) {
        for w in self.workers {
            let _ = w.stop.send(());
            let _ = w.thread.join();
        }
    }
}
