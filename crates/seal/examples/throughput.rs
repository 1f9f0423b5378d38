//! Cipher engine throughput on one core: `cargo run --release -p bastion-seal --example
//! throughput [MiB]` encrypts and decrypts a buffer with AES-256-CTR and AES-256-GCM (64 KiB
//! segments) through the streaming API the module uses, in 64 KiB pushes, and prints GB/s.

use bastion_seal::{CipherSuite, DataKey, Decryptor, Encryptor, Header, KeyId};
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let data = vec![0x5au8; 1 << 20];
    let key = DataKey::generate().expect("random key");
    let id = KeyId::new("bench", 1).expect("key id");
    println!("{mib} MiB per run, 64 KiB pushes, best of 3 runs");
    for cipher in [CipherSuite::Aes256Ctr, CipherSuite::Aes256Gcm] {
        let (mut enc_best, mut dec_best) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            // Timed: encryption into a reused buffer, as the module does per record.
            let mut e = Encryptor::new(&key, id.clone(), cipher).expect("encryptor");
            let mut out = Vec::with_capacity(80 * 1024);
            let t = Instant::now();
            for _ in 0..mib {
                for chunk in data.chunks(64 * 1024) {
                    out.clear();
                    e.push_into(chunk, &mut out).expect("encrypt");
                }
            }
            e.finish().expect("finish");
            enc_best = enc_best.min(t.elapsed().as_secs_f64());
            // Untimed: one whole object to decrypt.
            let mut e = Encryptor::new(&key, id.clone(), cipher).expect("encryptor");
            let mut obj = Vec::with_capacity(mib * (1 << 20) + (1 << 20));
            for _ in 0..mib {
                e.push_into(&data, &mut obj).expect("encrypt");
            }
            obj.extend(e.finish().expect("finish"));

            let (h, used) = Header::parse(&obj).expect("header");
            let mut d = Decryptor::new(&key, &h);
            let mut out = Vec::with_capacity(80 * 1024);
            let t = Instant::now();
            let mut total = 0usize;
            for chunk in obj[used..].chunks(64 * 1024) {
                out.clear();
                d.push_into(chunk, &mut out).expect("decrypt");
                total += out.len();
            }
            total += d.finish().expect("verify").len();
            dec_best = dec_best.min(t.elapsed().as_secs_f64());
            assert_eq!(total, mib << 20);
        }
        let gb = (mib << 20) as f64 / 1e9;
        println!(
            "{:<12} encrypt {:>6.2} GB/s   decrypt {:>6.2} GB/s",
            cipher.name(),
            gb / enc_best,
            gb / dec_best
        );
    }
}
