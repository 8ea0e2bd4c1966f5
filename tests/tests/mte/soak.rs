//! A soak: a fixed mixed load through the real binary for a bounded time, with the
//! relay's resident memory sampled. Memory must be flat once the load has warmed up:
//! whatever a request, a pairing or a refusal allocates is given back.
//!
//! `SOAK_SECS` sets the duration (60 by default, as CI runs it); `scripts/soak.sh`
//! runs it for ten minutes. The figures are printed and recorded in
//! docs/PERFORMANCE.md ("Soak").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use mte_relay_client::RelayClient;
use mte_relay_protocol::header::Mode;
use mte_relay_tests::client::{body_bytes, request, send};
use mte_relay_tests::memory::rss_bytes;
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::{seconds_from_env, within};

use crate::raw::RawClient;
use crate::support::relay_for;

/// Requests of each kind that completed as expected.
#[derive(Default)]
struct Tally {
    mke: AtomicU64,
    mte: AtomicU64,
    pass_through: AtomicU64,
    pairings: AtomicU64,
    refusals: AtomicU64,
}

/// Sends POSTs with a 4 KiB body through `client` until `until`.
async fn encrypted_loop(client: RelayClient, until: Instant, counter: Arc<Tally>, mode: Mode) {
    let payload = Bytes::from(vec![b'p'; 4096]);
    while Instant::now() < until {
        let request = http::Request::post("/soak")
            .header("content-type", "application/octet-stream")
            .body(payload.clone())
            .expect("request");
        let response = within("an encrypted request", client.send(request))
            .await
            .unwrap_or_else(|error| panic!("{mode} request failed: {error:?}"));
        assert_eq!(response.status(), 200, "{mode}");
        within("its body", response.into_body().collect_bytes())
            .await
            .expect("body");
        let count = match mode {
            Mode::Mke => &counter.mke,
            Mode::Mte => &counter.mte,
        };
        count.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_load_leaves_relay_memory_flat() {
    // An upstream that reads each body and forgets it, so the test holds no history.
    let upstream = Upstream::start(|request| async move {
        let _ = request.into_body().collect().await;
        Response::new(full("ok"))
    })
    .await;
    // A short pair lifetime, so pairing churn reaches a steady state (pairs expire and
    // are swept as fast as they are made) and clients replace expired pairs as they go.
    // Likewise a short resend window: every POST leaves a resend token for the window,
    // so the tokens' memory plateaus after one window, long before the samples end.
    let relay = relay_for(
        &upstream.url(),
        &[
            ("PAIR_TTL_SECS", "10"),
            ("RESEND_WINDOW_SECS", "2"),
            ("PASS_THROUGH_ROUTES", "/health"),
        ],
    );
    let duration = seconds_from_env("SOAK_SECS", 60);
    let started = Instant::now();
    let until = started + duration;
    let tally = Arc::new(Tally::default());
    let base = format!("http://{}", relay.addr());

    let mut tasks = Vec::new();
    for mode in [Mode::Mke, Mode::Mke, Mode::Mte] {
        let client = RelayClient::builder(base.clone())
            .pairs(2)
            .mode(mode)
            .build()
            .expect("client builds");
        tasks.push(tokio::spawn(encrypted_loop(
            client,
            until,
            tally.clone(),
            mode,
        )));
    }
    // Pass-through requests, pairing churn under fresh client ids, and bad inputs.
    let raw = RawClient::new(&relay);
    {
        let (raw, tally) = (raw.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let host = raw.host.clone();
            while Instant::now() < until {
                let health = request("GET", &host, "/health")
                    .body(full(Bytes::new()))
                    .expect("request");
                let response = send(raw.addr, health).await;
                assert_eq!(response.status(), 200, "pass-through");
                body_bytes(response).await;
                tally.pass_through.fetch_add(1, Ordering::Relaxed);

                let mut session = raw.session(2).await;
                tally.pairings.fetch_add(1, Ordering::Relaxed);

                // Bad inputs: a forged relay header, a malformed pairing document, and
                // a request on a pair that does not exist for this client.
                let forged = request("GET", &host, "/")
                    .header("x-mte-relay", "garbage")
                    .body(full(Bytes::new()))
                    .expect("request");
                assert_eq!(send(raw.addr, forged).await.status(), 559);
                let malformed = raw.post_pairing(b"{\"pairs\":".to_vec()).await;
                assert_eq!(malformed.status, 567);
                session.client_id = raw.client_id().await;
                let unknown = session
                    .seal(0, &crate::raw::Spec::get("/unknown"))
                    .send(raw.addr)
                    .await;
                assert_eq!(unknown.status, 562, "{unknown:?}");
                tally.refusals.fetch_add(3, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // Sample the relay's memory twice a second while the load runs.
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while Instant::now() < until {
        if let Some(rss) = rss_bytes(relay.pid()) {
            samples.push((started.elapsed(), rss));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for task in tasks {
        within("a load task ending", task).await.expect("load task");
    }

    // Warm-up is the first quarter (pools, caches, the first pair sweeps); after it
    // the peak of the last quarter may not exceed the peak of the second by more than
    // a few MiB, which a leak of even a few bytes a request would pass over a run.
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(at, _)| {
                let share = at.as_secs_f64() / duration.as_secs_f64();
                share >= from && share < to
            })
            .map(|(_, rss)| *rss)
            .max()
            .expect("samples in the window")
    };
    let (warm, late) = (peak(0.25, 0.5), peak(0.75, 1.0));
    let requests = tally.mke.load(Ordering::Relaxed)
        + tally.mte.load(Ordering::Relaxed)
        + tally.pass_through.load(Ordering::Relaxed);
    eprintln!(
        "soak for {duration:?}: {} MKE, {} MTE, {} pass-through requests, {} pairings, {} \
         refusals; relay RSS peak {:.1} MiB after warm-up, {:.1} MiB in the last quarter",
        tally.mke.load(Ordering::Relaxed),
        tally.mte.load(Ordering::Relaxed),
        tally.pass_through.load(Ordering::Relaxed),
        tally.pairings.load(Ordering::Relaxed),
        tally.refusals.load(Ordering::Relaxed),
        warm as f64 / 1048576.0,
        late as f64 / 1048576.0,
    );
    assert!(requests > 0, "the load ran");
    assert!(
        late <= warm + (8 << 20),
        "relay memory grew from {warm} to {late} bytes under a steady load"
    );
}
