//! Benchmark workload: what a real service does, in fixed proportions.
//! `mixed SECONDS`: four worker threads each repeat one operation: burn
//! ~20 µs of CPU, then, in turn, bounce a byte off an echo thread through
//! pipes (two blocking reads), sleep 50 µs, or (one op in 16) start a
//! short-lived thread that burns a little and is joined (thread churn).
//! Prints `ready <pid>`, waits for a line on stdin, runs, prints
//! `ops_per_sec N` (operations of all workers per second).

use std::{
    hint::black_box,
    io::{BufRead, Read, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use profiler_tests::pipe;

const WORKERS: usize = 4;

/// A fixed amount of arithmetic (~20 µs on the bench machines).
#[inline(never)]
fn burn(rounds: u64) -> u64 {
    let mut x = black_box(1u64);
    for i in 0..rounds {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    x
}

fn worker(stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let (mut to_echo_r, mut to_echo_w) = pipe();
    let (mut from_echo_r, mut from_echo_w) = pipe();
    let echo = std::thread::Builder::new()
        .name("echo".into())
        .spawn(move || {
            let mut b = [0u8; 1];
            while to_echo_r.read_exact(&mut b).is_ok() && b[0] != 0 {
                if from_echo_w.write_all(&b).is_err() {
                    break;
                }
            }
        })
        .expect("spawn echo");
    let mut n = 0u64;
    let mut b = [1u8; 1];
    while !stop.load(Ordering::Relaxed) {
        black_box(burn(20_000));
        match n % 16 {
            15 => {
                let t = std::thread::Builder::new()
                    .name("churn".into())
                    .spawn(|| black_box(burn(5_000)))
                    .expect("spawn churn");
                let _ = t.join();
            }
            k if k % 2 == 0 => {
                to_echo_w.write_all(&[1]).expect("write");
                from_echo_r.read_exact(&mut b).expect("read");
            }
            _ => std::thread::sleep(Duration::from_micros(50)),
        }
        n += 1;
    }
    ops.fetch_add(n, Ordering::Relaxed);
    let _ = to_echo_w.write_all(&[0]);
    let _ = echo.join();
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (stop, ops) = (stop.clone(), ops.clone());
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker(stop, ops))
                .expect("spawn worker")
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let el = start.elapsed().as_secs_f64();
    println!("ops_per_sec {:.0}", ops.load(Ordering::Relaxed) as f64 / el);
}
