//! Fixture for the stack tests: work in distinctly named functions, so a
//! flamegraph must name them. `stacks MODE`:
//! - `burn`: `spin-alpha` burns 400 ms of CPU in `burn_alpha`, `spin-beta`
//!   200 ms in `burn_beta`;
//! - `wait`: `sleepy` sleeps 300 ms in `sleep_in_nanosleep`, `blocky` blocks
//!   300 ms in `block_in_read` on a pipe main writes to after 300 ms;
//! - `early`: the very first thing main does is create `early-bird`, which
//!   exits at once; main then sleeps 100 ms;
//! - `work N`: burns N x 150 ms of CPU in `burn_work`;
//! - `storm SECONDS`: 4 threads create and join threads as fast as they can,
//!   printing how many;
//! - `exit N`: exits with status N.
//!
//! Built with frame pointers (.cargo/config.toml), so frame-pointer stack
//! walks see these functions.

use std::{
    io::{Read, Write},
    thread,
    time::Duration,
};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[inline(never)]
fn spin(d: Duration) -> u64 {
    let start = thread_cpu();
    let mut x = 1u64;
    while thread_cpu() - start < d {
        for i in 0..20_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

#[inline(never)]
fn burn_alpha() -> u64 {
    std::hint::black_box(spin(Duration::from_millis(400)))
}

#[inline(never)]
fn burn_beta() -> u64 {
    std::hint::black_box(spin(Duration::from_millis(200)))
}

#[inline(never)]
fn burn_work(d: Duration) -> u64 {
    std::hint::black_box(spin(d))
}

#[inline(never)]
fn sleep_in_nanosleep() {
    thread::sleep(Duration::from_millis(300));
    std::hint::black_box(());
}

#[inline(never)]
fn block_in_read(f: &mut std::fs::File) {
    let mut b = [0u8; 1];
    let _ = std::hint::black_box(f.read(&mut b));
}

fn named(name: &str, f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("early") => {
            let t = named("early-bird", || {});
            let _ = t.join();
            thread::sleep(Duration::from_millis(100));
        }
        Some("burn") => {
            let a = named("spin-alpha", || {
                burn_alpha();
            });
            let b = named("spin-beta", || {
                burn_beta();
            });
            let _ = (a.join(), b.join());
        }
        Some("wait") => {
            let (mut r, mut w) = profiler_tests::pipe();
            let s = named("sleepy", sleep_in_nanosleep);
            let b = named("blocky", move || block_in_read(&mut r));
            thread::sleep(Duration::from_millis(300));
            let _ = w.write_all(b"x");
            let _ = (s.join(), b.join());
        }
        Some("work") => {
            // Work scaled by the argument: N x 150 ms of CPU in burn_work.
            let n: u32 = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1);
            std::hint::black_box(burn_work(Duration::from_millis(150) * n));
        }
        Some("storm") => {
            // Threads created and exiting as fast as 4 spawners can go.
            let secs: f64 = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1.0);
            let end = std::time::Instant::now() + Duration::from_secs_f64(secs);
            let spawners: Vec<_> = (0..4)
                .map(|_| {
                    thread::spawn(move || {
                        let mut n = 0u64;
                        while std::time::Instant::now() < end {
                            let _ = thread::spawn(|| std::hint::black_box(1)).join();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let total: u64 = spawners.into_iter().map(|s| s.join().unwrap_or(0)).sum();
            println!("created {total}");
        }
        Some("exit") => {
            let code = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(0);
            std::process::exit(code);
        }
        _ => {
            eprintln!("usage: stacks burn|wait|early|work N|exit N");
            std::process::exit(2);
        }
    }
}
