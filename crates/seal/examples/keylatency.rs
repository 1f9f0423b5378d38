//! Latency of one data-key lookup by where the key is found, against a running key server and
//! memcached (bench/fcgi.py starts them and runs this):
//!
//! ```text
//! KL_URL=https://127.0.0.1:8443 KL_USER=module KL_PASSWORD=... KL_CA=ca.pem \
//! KL_MEMCACHED=127.0.0.1:11211 cargo run --release -p bastion-seal --example keylatency [N]
//! ```
//!
//! Prints the median and 90th percentile, in microseconds, of: a process-cache hit; a memcached
//! hit (data key evicted from the process, master key still cached); a key-server miss
//! (memcached flushed too: the data key server answers, the master key is cached).

use bastion_seal::keyclient::{KeyClient, KeyClientConfig};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mc = env("KL_MEMCACHED");
    let kc = KeyClient::new(KeyClientConfig {
        master_url: env("KL_URL"),
        data_url: env("KL_URL"),
        username: env("KL_USER"),
        password: Zeroizing::new(env("KL_PASSWORD")),
        ca_file: Some(env("KL_CA").into()),
        timeout: Duration::from_secs(5),
        memcached: vec![mc.clone()],
        cache_ttl: Duration::from_secs(300),
        process_cache_capacity: 64,
    })
    .expect("key client");
    let flusher = memcache::connect(format!("memcache://{mc}?timeout=1")).expect("memcached");
    let client = "latency-bench";
    kc.data_key(client, None).expect("first lookup");

    let time = |f: &dyn Fn()| -> f64 {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e6
    };
    let mut process = Vec::new();
    let mut memcached = Vec::new();
    let mut server = Vec::new();
    for _ in 0..n {
        process.push(time(&|| {
            kc.data_key(client, None).expect("lookup");
        }));
        kc.clear_data_keys();
        memcached.push(time(&|| {
            kc.data_key(client, None).expect("lookup");
        }));
        kc.clear_data_keys();
        flusher.flush().expect("flush");
        server.push(time(&|| {
            kc.data_key(client, None).expect("lookup");
        }));
    }
    println!("data-key lookup latency, {n} lookups each (median / p90, microseconds):");
    for (name, v) in [
        ("process cache hit", process),
        ("memcached hit", memcached),
        ("key-server miss", server),
    ] {
        let (m, p) = stats(v);
        println!("{name:<18} {m:>9.1} {p:>9.1}");
    }
}
