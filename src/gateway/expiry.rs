//! The stateful table's clock: once a second, expire what came due, answer the SYNs held too
//! long with ICMP Port Unreachable (written through the first queue), and pass the mapping log
//! to the observer. Apart from the workers, so sessions expire when no packet arrives.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use nat64_xlat::Translator;
use nat64_xlat::stateful::MappingEvent;

use super::vnet;
use super::worker::Shared;

/// How often the table is looked at.
const EVERY: Duration = Duration::from_secs(1);
/// How often the stop flag is.
const NAP: Duration = Duration::from_millis(100);

pub(crate) fn run(fd: OwnedFd, shared: Arc<Shared>) {
    let Some(sessions) = shared.sessions.as_ref() else {
        return;
    };
    let mut device = std::fs::File::from(fd);
    let mut out = vec![0u8; 1500];
    let mut events: Vec<MappingEvent> = Vec::new();
    let mut waited = Duration::ZERO;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(NAP);
        waited += NAP;
        if waited < EVERY {
            continue;
        }
        waited = Duration::ZERO;
        let settings = shared.settings.load_full();
        let xlat = Translator::new(settings.config(shared.id_key));
        let now = sessions.epoch.elapsed();
        let mut errors: Vec<Vec<u8>> = Vec::new();
        let layout = {
            let mut table = sessions.lock();
            table.expire(&xlat, now, &mut out, |p| errors.push(p.to_vec()));
            events.extend(table.events());
            (!events.is_empty()).then(|| table.layout().clone())
        };
        for e in &errors {
            // One packet per write, behind a plain offload header. A lost ICMP error is no
            // worse than one a rate limit held back.
            let framed = [&[0u8; vnet::LEN][..], e].concat();
            let _ = device.write(&framed);
        }
        if let Some(layout) = layout {
            for e in events.drain(..) {
                if let Some(b) = layout.block(e.block()) {
                    shared.observer.mapping(&e, &b);
                }
            }
        }
    }
}
