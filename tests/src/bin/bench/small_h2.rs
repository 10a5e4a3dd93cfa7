//! The small GETs over HTTPS with HTTP/2 (`--only small-h2 [--side NAME]`): one connection, 64
//! streams at once, Courier against reqwest on both runtime flavours, and h2load as the ceiling;
//! and the rustls configuration the bench hands reqwest wherever it speaks TLS.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::Session;

use super::median;
use super::report::{Scenario, Side, Target, Unit};
use super::small::{Flavor, WORKERS, drive, uncached};

/// The rustls configuration the bench hands reqwest: ring (as Courier uses), the CA in `pem`
/// as the only root, and HTTP/2 offered first.
pub(crate) fn reqwest_tls(pem: &[u8]) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.expect("CA")).expect("CA");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls
}

/// The same N GETs over HTTPS with HTTP/2 (one connection, 64 streams at once): courier and
/// reqwest (its rustls, configured by the bench with the throwaway CA), each on both runtime
/// flavours, and h2load (`-c 1 -m 64`, nghttp2's load generator) as the ceiling, when installed.
pub(crate) fn run_h2(n: usize, rounds: usize, only_side: Option<&str>) -> Option<Scenario> {
    let ca = courier_tests::TestCa::new();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_rt.block_on(courier_tests::TestServer::https(&ca));
    let url = server.url("/bytes/1024");
    let pem = ca.ca_pem.clone();
    let courier_h2 = |flavor: Flavor| {
        let pem = pem.clone();
        let url = url.clone();
        flavor.runtime().block_on(async move {
            let mut config = uncached();
            config.trust_pem_certificates(pem.as_bytes()).expect("CA");
            let session = Session::new(config).expect("session");
            drive(n, move || {
                let (session, url) = (session.clone(), url.clone());
                async move {
                    let (body, response) = session.data(url.as_str()).await.expect("GET");
                    assert_eq!(response.version(), http::Version::HTTP_2);
                    body.len()
                }
            })
            .await
        })
    };
    let reqwest_h2 = |flavor: Flavor| {
        let url = url.clone();
        let tls = reqwest_tls(pem.as_bytes());
        flavor.runtime().block_on(async move {
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .build()
                .expect("client");
            drive(n, move || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let response = client.get(url.as_str()).send().await.expect("GET");
                    assert_eq!(response.version(), http::Version::HTTP_2);
                    response.bytes().await.expect("body").len()
                }
            })
            .await
        })
    };
    let h2load = || -> Option<f64> {
        let output = std::process::Command::new("h2load")
            .args([
                "-n",
                &n.to_string(),
                "-c",
                "1",
                "-m",
                &WORKERS.to_string(),
                &url,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "finished in 123.45ms, ..." or "finished in 1.23s, ..."
        let took = text.lines().find_map(|l| l.strip_prefix("finished in "))?;
        let took = took.split(',').next()?;
        match took.strip_suffix("ms") {
            Some(ms) => ms.parse::<f64>().ok().map(|v| v / 1e3),
            None => took.strip_suffix('s')?.parse().ok(),
        }
    };
    let flavors = [Flavor::CurrentThread, Flavor::MultiThread];
    // `--side NAME` (for a profile): that side alone, say "courier current-thread".
    if let Some(only) = only_side {
        let sides: [(&str, &dyn Fn(Flavor) -> Duration); 2] =
            [("courier", &courier_h2), ("reqwest", &reqwest_h2)];
        let (run, flavor) = sides
            .iter()
            .flat_map(|(name, run)| flavors.map(|f| (format!("{name} {}", f.name()), run, f)))
            .find_map(|(label, run, f)| (label == only).then_some((run, f)))
            .expect("--side: one of the sides, as printed");
        for round in 0..rounds {
            println!("round {round}: {only} {:.3} s", run(flavor).as_secs_f64());
        }
        return None;
    }
    println!(
        "# {n} GETs of 1 KiB over HTTPS + HTTP/2, {WORKERS} at once; {rounds} interleaved rounds"
    );
    for f in flavors {
        let _ = (courier_h2(f), reqwest_h2(f)); // warm-up
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut ceiling = Vec::new();
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, f) in flavors.iter().enumerate() {
            let c = courier_h2(*f).as_secs_f64();
            let r = reqwest_h2(*f).as_secs_f64();
            line.push_str(&format!(
                "  courier {} {c:.3} s  reqwest {} {r:.3} s",
                f.name(),
                f.name()
            ));
            times[i].push(c);
            times[2 + i].push(r);
        }
        if let Some(t) = h2load() {
            line.push_str(&format!("  h2load {t:.3} s"));
            ceiling.push(t);
        }
        println!("{line}");
    }
    let best_courier = times[..2]
        .iter()
        .map(|t| median(&mut t.clone()))
        .fold(f64::MAX, f64::min);
    let note = if ceiling.is_empty() {
        "h2load (nghttp2-client) is not installed: no ceiling measured".to_owned()
    } else {
        let h = median(&mut ceiling);
        format!(
            "h2load -c 1 -m 64 (the ceiling): {h:.3} s; courier's rate is {:.0}% of h2load's",
            100.0 * h / best_courier
        )
    };
    let side = |label: &str, f: Flavor, t: &Vec<f64>| {
        Side::new(format!("{label} {}", f.name()), t.clone())
    };
    Some(Scenario {
        name: format!("{n} GETs of 1 KiB, {WORKERS} at once, HTTPS + HTTP/2, library"),
        unit: Unit::Seconds,
        courier: vec![
            side("courier", flavors[0], &times[0]),
            side("courier", flavors[1], &times[1]),
        ],
        peers: vec![
            side("reqwest", flavors[0], &times[2]),
            side("reqwest", flavors[1], &times[3]),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note,
    })
}
