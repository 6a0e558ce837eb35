//! Apache httpd 2.4 (Debian's `apache2`) as a test peer: one process in the foreground (`-X`:
//! no children to outlive a kill), a generated `httpd.conf`, and every file it writes (pid,
//! mutexes, logs, shared memory) in the test's scratch directory. Virtual hosts listen on
//! `[::1]`, each with its own access log in a format that shows what `mod_remoteip` decided.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use core::net::SocketAddr;
use core::time::Duration;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::peers::{Running, Scratch};

/// Where Debian's package puts the modules.
const MODULES: &str = "/usr/lib/apache2/modules";

/// The access log format: `%a` is the client address after `mod_remoteip` (the PROXY header's
/// source, when there was one), `%{remote}p` its port, `%{c}a` the peer of the TCP connection
/// (the proxy), `%>s` the status, `"%r"` the request line; then the SNI on TLS hosts, the Host
/// header on the others.
const LOG_FORMAT: &str = r#"%a %{remote}p %{c}a %>s \"%r\""#;

/// One `<VirtualHost>` on `[::1]:port`. It serves `/hello.txt`, whose body is `apache <name>\n`,
/// and logs to `<name>-access.log`.
#[derive(Debug)]
pub struct Vhost<'a> {
    pub name: &'a str,
    pub port: u16,
    /// `RemoteIPProxyProtocol On`: every connection must start with a PROXY header (v1 or v2).
    pub proxy_protocol: bool,
    /// mod_ssl with this certificate and key.
    pub tls: Option<(&'a Path, &'a Path)>,
}

/// A running Apache; killed when dropped (before its scratch directory, which the test holds).
pub struct Apache {
    running: Running,
    dir: PathBuf,
}

impl Apache {
    /// Writes the configuration for `vhosts` into `dir`, starts Apache, and waits until `ready`
    /// (one of the ports; preferably one without PROXY, whose probe leaves no log line) accepts.
    pub fn start(apache: &Path, dir: &Scratch, vhosts: &[Vhost<'_>], ready: SocketAddr) -> Apache {
        let d = dir.0.display();
        let mut config = format!(
            "ServerRoot {d}\nServerName localhost\nPidFile {d}/httpd.pid\nDefaultRuntimeDir {d}\n\
             Mutex file:{d} default\nErrorLog {d}/error.log\nLogLevel warn remoteip:debug ssl:info core:debug\n\
             LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n\
             LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
             LoadModule remoteip_module {MODULES}/mod_remoteip.so\n\
             LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so\n\
             LoadModule ssl_module {MODULES}/mod_ssl.so\n\
             SSLSessionCache shmcb:{d}/ssl_scache(512000)\n\
             {user}\
             LogFormat \"{LOG_FORMAT} %{{Host}}i\" plain\n\
             LogFormat \"{LOG_FORMAT} %{{SSL_TLS_SNI}}x\" tls\n\
             <Directory {d}>\n  Require all granted\n</Directory>\n",
            user = run_as()
        );
        for host in vhosts {
            let (name, port) = (host.name, host.port);
            let docs = dir.path(&format!("htdocs-{name}"));
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join("hello.txt"), format!("apache {name}\n")).unwrap();
            let (listen, format, ssl) = match host.tls {
                Some((cert, key)) => (
                    " https",
                    "tls",
                    format!(
                        "  SSLEngine on\n  SSLCertificateFile {}\n  SSLCertificateKeyFile {}\n",
                        cert.display(),
                        key.display()
                    ),
                ),
                None => ("", "plain", String::new()),
            };
            let proxy = if host.proxy_protocol {
                "  RemoteIPProxyProtocol On\n"
            } else {
                ""
            };
            config += &format!(
                "Listen [::1]:{port}{listen}\n<VirtualHost [::1]:{port}>\n  ServerName {name}.apache\n\
                 DocumentRoot {docs}\n  CustomLog {d}/{name}-access.log {format}\n{proxy}{ssl}</VirtualHost>\n",
                docs = docs.display()
            );
        }
        let conf = dir.write("httpd.conf", &config);
        let running = Running::start(
            apache,
            &["-f", conf.to_str().unwrap(), "-X"],
            dir.path("apache.out"),
            ready,
        );
        Apache {
            running,
            dir: dir.0.clone(),
        }
    }

    /// The lines of vhost `name`'s access log once it has `count` of them: Apache writes a line
    /// after the response has gone, so a client that has its answer may be ahead of the log.
    pub fn access_log(&self, name: &str, count: usize) -> Vec<String> {
        let path = self.dir.join(format!("{name}-access.log"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(String::from).collect();
            if lines.len() >= count || Instant::now() > deadline {
                assert_eq!(
                    lines.len(),
                    count,
                    "{name}-access.log:\n{text}\nerror.log:\n{}",
                    self.error_log()
                );
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// As root, Apache must be told whom to become (it refuses to serve as root); Debian's package
/// created `www-data` for that. Otherwise it stays who it is, and the lines are not needed.
fn run_as() -> &'static str {
    // /proc/self belongs to the process's effective user.
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => "User www-data\nGroup www-data\n",
        _ => "",
    }
}
