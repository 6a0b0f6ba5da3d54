//! Benchmark workload: two threads bounce one byte through two pipes.
//! `pingpong SECONDS [CPU]`: with CPU, both threads are pinned to it (a
//! context switch per message), else they run on any CPU. Prints
//! `ready <pid>`, waits for a line on stdin, runs, prints `ops_per_sec N`.

use std::{
    io::{BufRead, Read, Write},
    time::{Duration, Instant},
};

use profiler_tests::pipe;

fn pin(cpu: Option<usize>) {
    if let Some(c) = cpu {
        // SAFETY: plain cpu_set_t manipulation and syscall on ourselves.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(c, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let cpu: Option<usize> = args.get(2).and_then(|s| s.parse().ok());
    let (mut a_r, mut a_w) = pipe();
    let (mut b_r, mut b_w) = pipe();
    pin(cpu);
    let echo = std::thread::Builder::new()
        .name("pong".into())
        .spawn(move || {
            pin(cpu);
            let mut b = [0u8; 1];
            while a_r.read_exact(&mut b).is_ok() {
                if b[0] == 0 || b_w.write_all(&b).is_err() {
                    break;
                }
            }
        })
        .expect("spawn");
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let d = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut ops = 0u64;
    let mut b = [1u8; 1];
    while start.elapsed() < d {
        for _ in 0..100 {
            a_w.write_all(&[1]).expect("write");
            b_r.read_exact(&mut b).expect("read");
            ops += 1;
        }
    }
    let el = start.elapsed().as_secs_f64();
    let _ = a_w.write_all(&[0]);
    let _ = echo.join();
    println!("ops_per_sec {:.0}", ops as f64 / el);
}
