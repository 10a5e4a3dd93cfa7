//! `Nginx`: a real nginx on a free loopback port, with a generated configuration, for the tests and the
//! bench. Users meet nginx; this is where Courier meets it too.
//!
//! Locations:
//! - `/FILE`: static files from the root given (sendfile, `ETag`, `Last-Modified`, byte ranges).
//! - `/slow/FILE`: the same files, sent at 40 MB/s (`limit_rate`), so a test can interrupt a
//!   transfer part-way; `/trickle/FILE` at 512 KiB/s, for transfers that last seconds.
//! - `/upload/NAME`: `PUT` stores the body (WebDAV module) in [`Nginx::upload_dir`], read in full.
//! - `/307-upload`: a 307 to `/upload/redirected.bin`.
//! - `/private/FILE`: the static files behind `auth_basic` (realm `nginx-realm`, user `nginx`,
//!   password `secret`).
//! - `/cached/FILE`: the static files with `Cache-Control: max-age=60` (and nginx's `ETag`).
//! - with [`Nginx::start_tls`], the files over HTTPS with HTTP/2 on a second port; that server asks
//!   for a client certificate from the test CA (optionally) and `/mtls/FILE` requires one;
//!   `/posted` answers any method with `posted`.
//! - `/r301` → 301 → `/r302` → 302 (absolute) → `/r307` → 307 → `/hello.txt`.
//!
//! Each request is logged as `METHOD URI "RANGE" STATUS BODY_BYTES_SENT REQUEST_LENGTH`
//! ([`Nginx::access_log`]). nginx stops when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// One request, as nginx logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLine {
    /// The method.
    pub method: String,
    /// The path.
    pub uri: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Body bytes nginx sent.
    pub body_bytes_sent: u64,
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The HTTPS (HTTP/2) port, when started with a certificate.
    tls_port: Option<u16>,
}

impl Nginx {
    /// The nginx binary: `nginx` on `PATH`, or `/usr/sbin/nginx`.
    pub fn binary() -> Option<PathBuf> {
        crate::program::installed("nginx")
    }

    /// Starts nginx serving `root`. `None` when nginx is not installed; the test command installs
    /// it (tests/run.sh), and tests must not pass silently in CI without it.
    ///
    /// # Panics
    /// If nginx is installed but does not start.
    pub fn start(root: &Path) -> Option<Nginx> {
        Nginx::start_with(root, None)
    }

    /// Starts nginx serving `root` over HTTP, and over HTTPS (HTTP/2 and HTTP/1.1) with `ca`'s leaf
    /// certificate on a second port ([`Nginx::tls_url`]).
    pub fn start_tls(root: &Path, ca: &crate::TestCa) -> Option<Nginx> {
        Nginx::start_with(root, Some(ca))
    }

    fn start_with(root: &Path, ca: Option<&crate::TestCa>) -> Option<Nginx> {
        let binary = Nginx::binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["logs", "uploads", "body"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("nginx dirs");
        }
        // nginx reads `{PLAIN}` passwords as they are: user `nginx`, password `secret`.
        std::fs::write(dir.path().join("htpasswd"), "nginx:{PLAIN}secret\n").expect("htpasswd");
        if let Some(ca) = ca {
            let (cert, key) = ca.leaf_pem();
            std::fs::write(dir.path().join("leaf.pem"), cert).expect("leaf.pem");
            std::fs::write(dir.path().join("leaf.key"), key).expect("leaf.key");
            std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem).expect("ca.pem");
        }
        let conf_path = dir.path().join("nginx.conf");
        let (child, ports) = crate::program::start_listening(
            if ca.is_some() { 2 } else { 1 },
            |ports| {
                let conf = Nginx::conf(dir.path(), root, ports[0], ports.get(1).copied());
                std::fs::write(&conf_path, conf).expect("write nginx.conf");
                crate::program::spawn(
                    &binary,
                    &[
                        "-p".as_ref(),
                        dir.path().as_os_str(),
                        "-c".as_ref(),
                        conf_path.as_os_str(),
                    ],
                )
            },
            || std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default(),
        );
        Some(Nginx {
            child,
            dir,
            port: ports[0],
            tls_port: ports.get(1).copied(),
        })
    }

    /// nginx's configuration: `root` served on `port`, and over HTTPS on `tls_port` when given
    /// (with the leaf certificate and CA that `dir` holds).
    fn conf(dir: &Path, root: &Path, port: u16, tls_port: Option<u16>) -> String {
        let tls_server = match tls_port {
            Some(tls_port) => {
                // Client certificates are asked for (optional), and required by /mtls/. A
                // connection is closed after 100 requests (nginx's `keepalive_requests`, 1,000
                // unless set; over HTTP/2, a `GOAWAY`): set low, so a test meets it soon.
                format!(
                    "server {{ listen 127.0.0.1:{tls_port} ssl http2; keepalive_requests 100; ssl_certificate {d}/leaf.pem; ssl_certificate_key {d}/leaf.key; ssl_client_certificate {d}/ca.pem; ssl_verify_client optional; root {root}; location /mtls/ {{ if ($ssl_client_verify != SUCCESS) {{ return 403; }} alias {root}/; }} location = /posted {{ return 200 \"posted\\n\"; }} }}",
                    d = dir.display(),
                    root = root.display()
                )
            }
            None => String::new(),
        };
        let d = dir.display();
        let root = root.display();
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let user = if is_root { "user root;" } else { "" };
        format!(
            r#"
daemon off;
master_process off;
{user}
error_log {d}/logs/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format courier '$request_method $uri "$http_range" $status $body_bytes_sent $request_length';
    access_log {d}/logs/access.log courier;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/body;
    fastcgi_temp_path {d}/body;
    uwsgi_temp_path {d}/body;
    scgi_temp_path {d}/body;
    sendfile on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /slow/ {{ alias {root}/; limit_rate 40m; }}
        location /trickle/ {{ alias {root}/; limit_rate 512k; }}
        # Compressed on the fly whenever the client accepts it, as many sites serve text.
        location /gzip/ {{ alias {root}/; gzip on; gzip_types *; gzip_min_length 1; limit_rate 2m; }}
        location /upload/ {{
            alias {d}/uploads/;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }}
        location = /307-upload {{ return 307 /upload/redirected.bin; }}
        location /private/ {{
            alias {root}/;
            auth_basic "nginx-realm";
            auth_basic_user_file {d}/htpasswd;
        }}
        location /cached/ {{ alias {root}/; add_header Cache-Control "max-age=60"; }}
        location = /r301 {{ return 301 /r302; }}
        location = /r302 {{ return 302 http://127.0.0.1:{port}/r307; }}
        location = /r307 {{ return 307 /hello.txt; }}
    }}
    {tls_server}
}}
"#
        )
    }

    /// A URL on this nginx.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// A URL on this nginx's HTTPS port (named `localhost`, as the certificate says).
    ///
    /// # Panics
    /// If nginx was not started with a certificate.
    pub fn tls_url(&self, path: &str) -> String {
        let port = self.tls_port.expect("started with start_tls");
        format!("https://localhost:{port}{path}")
    }

    /// Where `PUT /upload/NAME` stores its body.
    pub fn upload_dir(&self) -> PathBuf {
        self.dir.path().join("uploads")
    }

    /// The access log once it holds at least `n` requests (nginx writes a line just after the
    /// response has gone out, so a client can finish before its line is there). Waits up to 10 s.
    pub fn access_log_of(&self, n: usize) -> Vec<AccessLine> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.access_log();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every request logged so far.
    pub fn access_log(&self) -> Vec<AccessLine> {
        std::fs::read_to_string(self.dir.path().join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(parse_line)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_line(line: &str) -> Option<AccessLine> {
    let (method, rest) = line.split_once(' ')?;
    let (uri, rest) = rest.split_once(" \"")?;
    let (range, rest) = rest.split_once("\" ")?;
    let mut fields = rest.split(' ');
    let status = fields.next()?.parse().ok()?;
    let body_bytes_sent = fields.next()?.parse().ok()?;
    Some(AccessLine {
        method: method.to_owned(),
        uri: uri.to_owned(),
        range: (range != "-").then(|| range.to_owned()),
        status,
        body_bytes_sent,
    })
}

/// Writes `len` pseudo-random bytes (xorshift, from `seed`) to `path`, quickly.
pub fn write_random_file(path: &Path, len: usize, seed: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut x = seed | 1;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut left = len;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        out.write_all(&block[..n])?;
        left -= n;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_parse() {
        let l = parse_line(r#"GET /slow/big.bin "bytes=100-" 206 900 134"#).unwrap();
        assert_eq!(l.range.as_deref(), Some("bytes=100-"));
        assert_eq!((l.status, l.body_bytes_sent), (206, 900));
        let l = parse_line(r#"PUT /upload/x "-" 201 0 1048700"#).unwrap();
        assert_eq!(l.range, None);
    }
}
