//! A download from a distant server: nginx over HTTPS (HTTP/2) behind a delay line that holds
//! every byte 20 ms each way (40 ms round trips, no bandwidth cap). What bounds such a download is
//! its flow-control window, and how soon it is large, as on a real long path; over loopback, where
//! the other download scenarios run, a round trip takes microseconds and any window is enough.
//! Courier's library against curl and reqwest on both runtime flavours, each a fresh process.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::report::{Report, Scenario, Side, Target, Unit};
use super::transfers::{child, curl_download, megabytes, take_output, value};

/// The delay each way.
const ONE_WAY: Duration = Duration::from_millis(20);

/// Starts the delay line in front of `upstream`, on a runtime thread of its own; its address.
fn delay_line(upstream: SocketAddr) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("delay line runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    runtime.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (client_in, client_out) = client.into_split();
                let (server_in, server_out) = server.into_split();
                tokio::join!(
                    delayed(client_in, server_out),
                    delayed(server_in, client_out)
                );
            });
        }
    });
    (runtime, addr)
}

/// Copies `from` to `to`, each chunk written [`ONE_WAY`] after it was read; reading goes on
/// meanwhile, so the line holds whatever is in flight, as a long path does.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx
                .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((read_at, data)) = rx.recv().await {
            tokio::time::sleep_until(read_at + ONE_WAY).await;
            if to.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

/// `size` bytes from nginx over HTTPS + HTTP/2 through the delay line, `pairs` interleaved rounds.
pub(crate) fn distant_download(report: &mut Report, pairs: usize, size: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    courier_tests::write_random_file(&root.join("file.bin"), size, 7).expect("the file");
    let ca = courier_tests::TestCa::new();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, &ca.ca_pem).expect("CA file");
    let Some(nginx) = courier_tests::Nginx::start_tls(&root, &ca) else {
        println!("# distant download: skipped (no nginx)");
        return;
    };
    let direct: http::Uri = nginx.tls_url("/").parse().expect("nginx's URL");
    let port = direct.port_u16().expect("nginx's port");
    let (_line, line) = delay_line(SocketAddr::from(([127, 0, 0, 1], port)));
    // `localhost`, as the certificate names it.
    let url = format!("https://localhost:{}/file.bin", line.port());
    let out = dir.path().join("out.bin");
    let (out_arg, ca_arg) = (
        out.to_str().expect("a UTF-8 path"),
        ca_pem.to_str().expect("a UTF-8 path"),
    );
    let run_courier = || -> (f64, f64) {
        let (took, printed) = child(&["download-once", &url, out_arg, ca_arg]);
        take_output(&out, size);
        (took, value(&printed, "peak_rss_kib"))
    };
    let run_reqwest = |flavor: &str| -> f64 {
        let (took, _) = child(&["download-once-reqwest", &url, out_arg, flavor, ca_arg]);
        take_output(&out, size);
        took
    };
    let run_curl = || curl_download(&url, &out, Some(&ca_pem), size);
    let what = megabytes(size);
    println!("# {what} download over HTTPS + HTTP/2, 40 ms round trips; {pairs} interleaved pairs");
    let _ = (run_courier(), run_curl()); // warm-up: the file in the page cache
    let (mut ours, mut peaks, mut theirs, mut ct, mut mt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, peak) = run_courier();
        let k = run_curl();
        let r = run_reqwest("current-thread");
        let m = run_reqwest("multi-thread");
        println!(
            "round {i:2}: courier {c:.3} s (peak RSS {:.1} MiB)  curl {k:.3} s  reqwest {r:.3} s \
             (multi-thread {m:.3} s)",
            peak / 1024.0
        );
        ours.push(c);
        peaks.push(peak / 1024.0);
        theirs.push(k);
        ct.push(r);
        mt.push(m);
    }
    report.add(Scenario {
        name: format!("{what} download to a file, HTTPS, HTTP/2, 40 ms round trips"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier library (current-thread)", ours)],
        peers: vec![
            Side::new("curl -o", theirs),
            Side::new("reqwest current-thread", ct),
            Side::new("reqwest multi-thread", mt),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note: format!(
            "nginx behind a delay line holding every byte 20 ms each way, no bandwidth cap: the \
             flow-control window bounds the rate; Courier's peak RSS {:.1} MiB (median)",
            super::median(&mut peaks)
        ),
    });
}
