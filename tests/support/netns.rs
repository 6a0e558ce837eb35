//! A network of three namespaces for a translator test, made fresh for each test and deleted by
//! name when dropped:
//!
//! ```text
//!   h6 (IPv6 only)             xl (translator)                          h4 (IPv4 only)
//!   2001:db8:6::10/64 ─veth─ 2001:db8:6::1/64   198.51.100.1/24 ─veth─ 198.51.100.2/24
//!   default via xl           forwarding on, a TUN for the translator   192.0.2.0/24 via xl
//! ```
//!
//! The translator (started by the test) makes the TUN and the test adds the routes into it.
//! Addresses are `nodad` and neighbours static, so the first packet of a test is not lost to
//! DAD or neighbour discovery. Tests in one binary run on parallel threads: every namespace and
//! interface name carries the process id and a counter.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// MAC addresses of the two links, fixed so the neighbours can be static.
const MAC_XL6: &str = "02:00:00:00:06:01";
const MAC_H6: &str = "02:00:00:00:06:10";
const MAC_XL4: &str = "02:00:00:00:04:01";
const MAC_H4: &str = "02:00:00:00:04:02";

/// Says why a test cannot run and returns; under `SIXGATE_REQUIRE_PEERS=1` fails instead: the
/// shared skip, so it shows in the test output and the skipped-tests list.
pub fn skip(why: &str) {
    crate::peers::skip(why);
}

/// The three namespaces, their links, and the processes started in them.
#[derive(Debug)]
pub struct Netns {
    ip: PathBuf,
    /// Namespace names.
    pub h6: String,
    pub xl: String,
    pub h4: String,
    /// Interface names: the TUN the translator should make in `xl`, and each end of the links.
    pub tun: String,
    pub xl_to_h6: String,
    pub h6_link: String,
    pub xl_to_h4: String,
    pub h4_link: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Builds the network with `ip` (a path to iproute2's `ip`), or says why it cannot and
    /// returns `None`.
    pub fn new(ip: &Path) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            skip("network namespaces need root");
            return None;
        }
        if !Path::new("/dev/net/tun").exists() {
            skip("/dev/net/tun is missing");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "sg{}n{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = Netns {
            ip: ip.to_path_buf(),
            h6: format!("{tag}-h6"),
            xl: format!("{tag}-xl"),
            h4: format!("{tag}-h4"),
            tun: format!("{tag}t"),
            xl_to_h6: format!("{tag}x6"),
            h6_link: format!("{tag}h6"),
            xl_to_h4: format!("{tag}x4"),
            h4_link: format!("{tag}h4"),
            children: Mutex::new(Vec::new()),
        };
        assert!(net.xl_to_h6.len() < 16, "{} is over IFNAMSIZ", net.xl_to_h6);
        // The first namespace tells whether this machine lets us make any (a container may not).
        let first = Command::new(ip)
            .args(["netns", "add", &net.h6])
            .output()
            .unwrap();
        if !first.status.success() {
            skip(&format!(
                "cannot create a network namespace: {}",
                String::from_utf8_lossy(&first.stderr).trim()
            ));
            return None;
        }
        net.build();
        Some(net)
    }

    fn build(&self) {
        let (h6, xl, h4) = (&self.h6, &self.xl, &self.h4);
        for ns in [xl, h4] {
            self.ip_global(&["netns", "add", ns]);
        }
        for ns in [h6, xl, h4] {
            self.ip(ns, "link set lo up");
            // A new namespace starts from the kernel's defaults; say what the test relies on.
            self.sysctl(ns, "net/ipv6/conf/all/accept_dad", "0");
            self.sysctl(ns, "net/ipv6/conf/default/accept_dad", "0");
        }
        // xl routes between its links and the TUN, which it creates later with the defaults.
        self.sysctl(xl, "net/ipv6/conf/all/forwarding", "1");
        self.sysctl(xl, "net/ipv4/ip_forward", "1");
        // The translator writes packets whose source routes back into the TUN; loose or strict
        // rp_filter (the maximum of `all` and the interface counts) must not judge them.
        for conf in ["all", "default"] {
            self.sysctl(xl, &format!("net/ipv4/conf/{conf}/rp_filter"), "0");
        }

        self.ip(
            xl,
            &format!(
                "link add {} address {MAC_XL6} type veth peer name {} address {MAC_H6} netns {h6}",
                self.xl_to_h6, self.h6_link
            ),
        );
        self.ip(
            xl,
            &format!(
                "link add {} address {MAC_XL4} type veth peer name {} address {MAC_H4} netns {h4}",
                self.xl_to_h4, self.h4_link
            ),
        );

        let (x6, x4, l6, l4) = (&self.xl_to_h6, &self.xl_to_h4, &self.h6_link, &self.h4_link);
        self.ip(xl, &format!("addr add 2001:db8:6::1/64 dev {x6} nodad"));
        self.ip(xl, &format!("addr add 198.51.100.1/24 dev {x4}"));
        self.ip(h6, &format!("addr add 2001:db8:6::10/64 dev {l6} nodad"));
        // A second h6 address for a second EAM entry; deprecated (preferred_lft 0) so the kernel
        // never picks it as a source unless a socket binds it.
        self.ip(
            h6,
            &format!("addr add 2001:db8:6::11/64 dev {l6} nodad preferred_lft 0"),
        );
        self.ip(h4, &format!("addr add 198.51.100.2/24 dev {l4}"));
        for (ns, link) in [(xl, x6), (xl, x4), (h6, l6), (h4, l4)] {
            self.ip(ns, &format!("link set {link} up"));
        }

        self.ip(h6, "-6 route add default via 2001:db8:6::1");
        self.ip(h4, "route add 192.0.2.0/24 via 198.51.100.1");

        for (ns, addr, mac, link) in [
            (xl, "2001:db8:6::10", MAC_H6, x6),
            (xl, "2001:db8:6::11", MAC_H6, x6),
            (xl, "198.51.100.2", MAC_H4, x4),
            (h6, "2001:db8:6::1", MAC_XL6, l6),
            (h4, "198.51.100.1", MAC_XL4, l4),
        ] {
            self.ip(
                ns,
                &format!("neigh replace {addr} lladdr {mac} dev {link} nud permanent"),
            );
        }
    }

    /// `ip -n ns ARGS…` (ARGS split on spaces); panics with ip's message when it fails.
    pub fn ip(&self, ns: &str, args: &str) {
        let mut argv = vec!["-n", ns];
        argv.extend(args.split_whitespace());
        self.ip_global(&argv);
    }

    /// What `ip -n ns ARGS…` prints, or `None` when it fails (e.g. no such device yet).
    pub fn ip_output(&self, ns: &str, args: &str) -> Option<String> {
        let out = Command::new(&self.ip)
            .args(["-n", ns])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ip_global(&self, argv: &[&str]) {
        let out = Command::new(&self.ip).args(argv).output().unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes /proc/sys/KEY inside `ns` (net sysctls are those of the writing thread's namespace).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        self.within(ns, || std::fs::write(format!("/proc/sys/{key}"), value))
            .unwrap_or_else(|e| panic!("sysctl {key}={value} in {ns}: {e}"));
    }

    /// Runs `f` on a thread that has entered `ns`. Sockets keep the namespace they were made in,
    /// so `f` can make sockets there and return them for use on any thread.
    pub fn within<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(format!("/run/netns/{ns}")).unwrap();
                // SAFETY: a valid namespace fd; setns changes only this (short-lived) thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A counter of /proc/net/snmp6 in `ns`, e.g. `Icmp6InPktTooBigs`.
    pub fn snmp6(&self, ns: &str, name: &str) -> u64 {
        let text = self.within(ns, || {
            std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap()
        });
        text.lines()
            .find_map(|l| {
                let (key, value) = l.split_once(char::is_whitespace)?;
                (key == name).then(|| value.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {name} in snmp6"))
    }

    /// Runs a program in `ns` to completion (`ip netns exec`); its output, whatever its status.
    pub fn exec(&self, ns: &str, program: &Path, args: &[&str]) -> Output {
        Command::new(&self.ip)
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts a program in `ns` with stdout and stderr in `log`; returns its pid (`ip netns exec`
    /// execs the program itself). Killed, if still running, when the network is dropped.
    pub fn spawn(&self, ns: &str, program: &Path, args: &[&str], log: &Path) -> u32 {
        let out = File::create(log).unwrap();
        let child = Command::new(&self.ip)
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let pid = child.id();
        self.lock_children().push(child);
        pid
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to a process this network started.
    pub fn signal(&self, pid: u32, signal: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child, so it is not
        // recycled for another process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
    }

    /// The exit status of a process this network started, once it exits; `None` if it is still
    /// running after `within`.
    pub fn wait(&self, pid: u32, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let status = {
                let mut children = self.lock_children();
                let child = children.iter_mut().find(|c| c.id() == pid).unwrap();
                child.try_wait().unwrap()
            };
            if status.is_some() || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes first: a namespace lives on while a process is in it.
        for child in self.lock_children().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Then everything by name (deleting one end of a veth deletes both); a missing name
        // (the translator's own TUN goes with it) is not an error.
        for link in [&self.tun, &self.xl_to_h6, &self.xl_to_h4] {
            let _ = Command::new(&self.ip)
                .args(["-n", &self.xl, "link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
        for ns in [&self.h6, &self.xl, &self.h4] {
            let _ = Command::new(&self.ip)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
