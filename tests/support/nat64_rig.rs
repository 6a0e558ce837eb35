//! The NAT64 tests' rig: the translator (full-proxy, or TAYGA to check the rig itself) running in
//! the translator namespace of `netns.rs`, and the traffic tools around it (ping, curl, nginx,
//! UDP sockets, the metrics endpoint).
#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Instant;

use crate::example_binary::example_binary;
use crate::netns::Netns;
use crate::peers::{Scratch, program};

/// The translation prefix. Not the Well-Known Prefix 64:ff9b::/96: RFC 6052 §3.1 forbids it for
/// non-global IPv4 such as the documentation ranges used here, and translators refuse them under
/// it (nat64-xlat's `DEFAULT_NON_GLOBAL`, TAYGA).
pub const POOL6: &str = "2001:db8:46::/96";
/// h4 (198.51.100.2) and xl's IPv4 address (198.51.100.1) as h6 sees them through `POOL6`.
pub const H4_AS_V6: &str = "2001:db8:46::c633:6402";
pub const XL4_AS_V6: &str = "2001:db8:46::c633:6401";
/// The gateway's own addresses: sources of the ICMP errors it makes; it answers echo on them.
pub const OWN_V4: &str = "192.0.2.1";
pub const OWN_V6: &str = "2001:db8:64::1";
/// Explicit address mappings: h6's addresses as IPv4 hosts see them.
pub const EAM_10: Eam = Eam {
    v4: "192.0.2.10",
    v6: "2001:db8:6::10",
};
pub const EAM_11: Eam = Eam {
    v4: "192.0.2.11",
    v6: "2001:db8:6::11",
};
/// In xl's namespace, so free in every test.
pub const METRICS: &str = "127.0.0.1:9464";
pub const HTTP_PORT: u16 = 8080;

#[derive(Clone, Copy)]
pub struct Eam {
    pub v4: &'static str,
    pub v6: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Peer {
    FullProxy,
    Tayga,
}

/// The programs a test runs, found (or built) before any namespace exists.
pub struct Tools {
    pub peer: Peer,
    pub gateway: PathBuf,
    pub ping: PathBuf,
    pub curl: PathBuf,
    pub nginx: PathBuf,
}

/// The network and the tools, or `None` after saying why this machine cannot run the test.
pub fn setup() -> Option<(Netns, Tools)> {
    let peer = match std::env::var("SIXGATE_NAT64_PEER").as_deref() {
        Ok("tayga") => Peer::Tayga,
        _ => Peer::FullProxy,
    };
    let ip = program("ip")?;
    let tools = Tools {
        peer,
        ping: program("ping")?,
        curl: program("curl")?,
        nginx: program("nginx")?,
        gateway: match peer {
            Peer::FullProxy => example_binary(env!("CARGO_MANIFEST_DIR"), "full-proxy"),
            Peer::Tayga => program("tayga")?,
        },
    };
    Some((Netns::new(&ip)?, tools))
}

/// The translator running in xl, with the routes an operator adds into its TUN.
pub struct Gateway<'a> {
    pub net: &'a Netns,
    pub tools: &'a Tools,
    pub dir: Scratch,
    pub pid: u32,
    /// full-proxy's stateful keys, added to its `[nat64]` section.
    pub stateful: Option<String>,
}

impl<'a> Gateway<'a> {
    pub fn start(net: &'a Netns, tools: &'a Tools, eam: &[Eam]) -> Gateway<'a> {
        Self::start_with(net, tools, eam, None)
    }

    /// full-proxy as a stateful NAT64 with these `[nat64]` keys (`mode = "stateful"` and the
    /// rest); its pool4 must lie in 192.0.2.0/24, which h4 routes to xl and xl into the TUN.
    pub fn start_stateful(net: &'a Netns, tools: &'a Tools, keys: &str) -> Gateway<'a> {
        assert!(
            tools.peer == Peer::FullProxy,
            "only full-proxy is a stateful NAT64"
        );
        Self::start_with(net, tools, &[], Some(keys.to_string()))
    }

    fn start_with(
        net: &'a Netns,
        tools: &'a Tools,
        eam: &[Eam],
        stateful: Option<String>,
    ) -> Gateway<'a> {
        let mut gw = Gateway {
            net,
            tools,
            dir: Scratch::new("nat64-gateway"),
            pid: 0,
            stateful,
        };
        gw.write_config(eam);
        if tools.peer == Peer::Tayga {
            // TAYGA wants its device made first (--mktun) and brought up by the operator.
            let conf = gw.config_path();
            let out = net.exec(&net.xl, &tools.gateway, &["--mktun", "-c", &conf]);
            assert!(out.status.success(), "{out:?}");
            net.ip(&net.xl, &format!("link set {} up mtu 1500", net.tun));
        }
        gw.spawn();
        if tools.peer == Peer::FullProxy {
            gw.wait_for_tun();
        }
        for route in [
            format!("-6 route add {POOL6} dev {}", net.tun),
            format!("-6 route add {OWN_V6}/128 dev {}", net.tun),
            format!("route add 192.0.2.0/24 dev {}", net.tun), // EAM v4 side and own_v4
        ] {
            net.ip(&net.xl, &route);
        }
        gw.wait_answering();
        gw
    }

    pub fn config_path(&self) -> String {
        let file = match self.tools.peer {
            Peer::FullProxy => "sixgate.toml",
            Peer::Tayga => "tayga.conf",
        };
        self.dir.path(file).to_str().unwrap().to_string()
    }

    pub fn write_config(&self, eam: &[Eam]) {
        let tun = &self.net.tun;
        let text = match self.tools.peer {
            Peer::FullProxy => {
                let eam: Vec<String> = eam
                    .iter()
                    .map(|e| format!("{{ v4 = \"{}/32\", v6 = \"{}/128\" }}", e.v4, e.v6))
                    .collect();
                let keys = match &self.stateful {
                    Some(k) => k.clone(),
                    None => format!("eam = [ {} ]\n", eam.join(", ")),
                };
                format!(
                    "[nat64]\ntun = \"{tun}\"\npool6 = \"{POOL6}\"\nown_v4 = \"{OWN_V4}\"\nown_v6 = \"{OWN_V6}\"\n\
                     {keys}mtu = 1500\nlowest_ipv6_mtu = 1280\nudp_zero_checksum = \"drop\"\nqueues = 0\n\n\
                     [metrics]\naddress = \"{METRICS}\"\n"
                )
            }
            Peer::Tayga => {
                let data = self.dir.path("data");
                std::fs::create_dir_all(&data).unwrap();
                let maps: String = eam
                    .iter()
                    .map(|e| format!("map {} {}\n", e.v4, e.v6))
                    .collect();
                format!(
                    "tun-device {tun}\nipv4-addr {OWN_V4}\nipv6-addr {OWN_V6}\nprefix {POOL6}\n{maps}data-dir {}\n",
                    data.display()
                )
            }
        };
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn spawn(&mut self) {
        let conf = self.config_path();
        let args: &[&str] = match self.tools.peer {
            Peer::FullProxy => &["--config", &conf],
            Peer::Tayga => &["--nodetach", "-c", &conf],
        };
        let log = self.dir.path("gateway.log");
        self.pid = self
            .net
            .spawn(&self.net.xl, &self.tools.gateway, args, &log);
    }

    /// Until the program has made its TUN and brought it up with a queue attached (LOWER_UP).
    pub fn wait_for_tun(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let show = self
                .net
                .ip_output(&self.net.xl, &format!("-o link show dev {}", self.net.tun));
            let flags = show.as_deref().and_then(|s| s.split(['<', '>']).nth(1));
            if flags.is_some_and(|f| f.split(',').any(|f| f == "LOWER_UP")) {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} never came up: {show:?}\n{}",
                self.net.tun,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Until the gateway answers a ping to its own address (from xl, through the TUN).
    pub fn wait_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .net
            .exec(
                &self.net.xl,
                &self.tools.ping,
                &["-c", "1", "-W", "0.5", OWN_V6],
            )
            .status
            .success()
        {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the gateway never answered {OWN_V6}:\n{}",
                self.log()
            );
        }
    }

    pub fn assert_running(&self) {
        if let Some(status) = self.net.wait(self.pid, Duration::ZERO) {
            panic!("the gateway exited with {status}:\n{}", self.log());
        }
    }

    /// The new mapping table in force: full-proxy rereads its file on SIGHUP; TAYGA has no
    /// reload, so it is restarted on its persistent TUN (a short gap that TCP rides out).
    pub fn reload(&mut self, eam: &[Eam]) {
        match self.tools.peer {
            Peer::FullProxy => {
                self.write_config(eam);
                self.net.signal(self.pid, libc::SIGHUP);
            }
            Peer::Tayga => {
                self.net.signal(self.pid, libc::SIGTERM);
                self.net.wait(self.pid, Duration::from_secs(5)).unwrap();
                self.write_config(eam);
                self.spawn();
                self.wait_answering();
            }
        }
    }

    /// The TUN's interface index: unchanged as long as the device was not recreated.
    pub fn tun_index(&self) -> String {
        let show = self
            .net
            .ip_output(&self.net.xl, &format!("-o link show dev {}", self.net.tun))
            .unwrap();
        show.split(':').next().unwrap().to_string()
    }

    /// GET /metrics, from inside xl where the address is.
    pub fn metrics(&self) -> String {
        let url = format!("http://{METRICS}/metrics");
        let out = self.net.exec(
            &self.net.xl,
            &self.tools.curl,
            &["-sS", "--fail", "--max-time", "5", &url],
        );
        assert!(out.status.success(), "{out:?}\n{}", self.log());
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path("gateway.log")).unwrap_or_default();
        format!("--- gateway log ---\n{log}")
    }
}

impl Tools {
    /// Tests of full-proxy's own features return early (saying so) against TAYGA.
    pub fn lacks(&self, feature: &str) -> bool {
        let tayga = self.peer == Peer::Tayga;
        if tayga {
            eprintln!("SKIPPED: TAYGA has no {feature}");
        }
        tayga
    }
}

/// One `ping -c 1` in `ns`; what it printed (replies and ICMP errors alike).
pub fn ping(net: &Netns, tools: &Tools, ns: &str, args: &[&str]) -> String {
    let mut argv = vec!["-c", "1", "-W", "2"];
    argv.extend(args);
    let out = net.exec(ns, &tools.ping, &argv);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `curl URL` in `ns`; the body, after asserting success.
pub fn curl(net: &Netns, tools: &Tools, ns: &str, url: &str, gw: &Gateway<'_>) -> Vec<u8> {
    let out = net.exec(
        ns,
        &tools.curl,
        &["-sS", "--fail", "-g", "--max-time", "15", url],
    );
    assert!(
        out.status.success(),
        "curl {url}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    out.stdout
}

/// A UDP socket bound in `ns`, with a short read timeout (a lost datagram is a failure, fast).
pub fn udp(net: &Netns, ns: &str, addr: &str) -> UdpSocket {
    let sock = net.within(ns, || UdpSocket::bind(addr)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock
}

/// The next datagram and its source, or `None` when none came within the read timeout.
pub fn recv(sock: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0; 65536];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some((buf, from))
}

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// Source address and port only: a V6 source's flow info is no concern here.
pub fn endpoint(a: SocketAddr) -> (IpAddr, u16) {
    (a.ip(), a.port())
}

pub fn assert_same_bytes(got: &[u8], want: &[u8]) {
    let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_difference.is_none(),
        "got {} bytes, want {}; first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}

/// The sum over queues of a counter's series whose labels include `label` (all when empty).
pub fn counter(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then_some(())?;
            labels
                .contains(label)
                .then(|| value.parse::<f64>().unwrap() as u64)
        })
        .sum()
}

/// nginx serving `files` on port 8080 in `ns`, logging only each client's address.
pub struct Nginx {
    pub dir: Scratch,
}

impl Nginx {
    pub fn start(net: &Netns, tools: &Tools, ns: &str, files: &[(&str, &[u8])]) -> Nginx {
        let dir = Scratch::new("nat64-nginx");
        let www = dir.path("www");
        std::fs::create_dir_all(&www).unwrap();
        for (name, bytes) in files {
            std::fs::write(www.join(name), bytes).unwrap();
        }
        let d = dir.0.display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format client '$remote_addr';\n  access_log {d}/access.log client;\n\
               log_format ports '$remote_addr $remote_port';\n  access_log {d}/ports.log ports;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{ listen {HTTP_PORT}; listen [::]:{HTTP_PORT} ipv6only=on; root {d}/www; }}\n}}\n"
        );
        let conf = dir.write("nginx.conf", &config);
        let prefix = format!("{d}/");
        let error_log = format!("{d}/error.log");
        net.spawn(
            ns,
            &tools.nginx,
            &[
                "-p",
                &prefix,
                "-c",
                conf.to_str().unwrap(),
                "-e",
                &error_log,
            ],
            &dir.path("nginx.out"),
        );
        let nginx = Nginx { dir };
        nginx.wait_listening(net, ns);
        nginx
    }

    pub fn wait_listening(&self, net: &Netns, ns: &str) {
        let local = addr("127.0.0.1", HTTP_PORT);
        let up = net.within(ns, || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&local, Duration::from_millis(100)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        });
        assert!(up, "nginx never listened:\n{}", self.read("error.log"));
    }

    /// The clients' addresses, one per request, once nginx has logged `n` requests (it logs
    /// after the response has left, so curl can be done first).
    pub fn clients(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.read("access.log");
            let lines: Vec<String> = log.lines().map(String::from).collect();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Each client's address and port, once nginx has logged `n` requests.
    pub fn client_ports(&self, n: usize) -> Vec<(String, u16)> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.read("ports.log");
            let lines: Vec<(String, u16)> = log
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(a, p)| (a.to_string(), p.parse().unwrap()))
                .collect();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path(file)).unwrap_or_default()
    }
}
