//! Fixture with known behaviour, driven line by line on stdin so a test can
//! line its phases up with a recording. Also the demo target.
//!
//! At start it spawns three named threads that park (futex) and prints
//! `ready <pid>`. Each `go` line runs one scenario:
//! - `sleeper` sleeps 300 ms in clock_nanosleep;
//! - `reader` blocks 300 ms in read(2) on a pipe that main writes to after
//!   300 ms;
//! - `burner` burns 300 ms of its own CPU time (thread CPU clock);
//! - main creates `ephemeral-1` and `ephemeral-2`, which sleep 50 ms and
//!   exit;
//!
//! then every thread parks again and `done` is printed. `exit` ends the
//! process; `loop N` runs N scenarios back to back (the demo).

use std::{
    io::{BufRead, Read, Write},
    sync::mpsc,
    thread,
    time::Duration,
};

use profiler_tests::pipe;

const PHASE: Duration = Duration::from_millis(300);

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn burn(d: Duration) -> u64 {
    let start = thread_cpu();
    let mut x = 0u64;
    while thread_cpu() - start < d {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    x
}

/// A parked worker: waits for a job on a channel, runs it, acknowledges.
struct Worker {
    jobs: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

fn worker(name: &str, mut job: impl FnMut() + Send + 'static) -> Worker {
    let (jobs, rx) = mpsc::channel::<()>();
    let (tx, done) = mpsc::channel::<()>();
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Tell main we are about to park.
            let _ = tx.send(());
            while rx.recv().is_ok() {
                job();
                if tx.send(()).is_err() {
                    break;
                }
            }
        })
        .expect("spawn");
    Worker { jobs, done }
}

fn main() {
    let (mut pipe_r, mut pipe_w) = pipe();
    let workers = [
        worker("sleeper", || thread::sleep(PHASE)),
        worker("reader", move || {
            let mut b = [0u8; 1];
            let _ = pipe_r.read(&mut b);
        }),
        worker("burner", || {
            std::hint::black_box(burn(PHASE));
        }),
    ];
    // Let every worker reach its park.
    for w in &workers {
        let _ = w.done.recv();
    }
    thread::sleep(Duration::from_millis(20));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", std::process::id());
    let _ = out.flush();

    let mut scenario = |out: &mut std::io::StdoutLock| {
        for w in &workers {
            let _ = w.jobs.send(());
        }
        let eph: Vec<_> = (1..=2)
            .map(|i| {
                thread::Builder::new()
                    .name(format!("ephemeral-{i}"))
                    .spawn(|| thread::sleep(Duration::from_millis(50)))
                    .expect("spawn")
            })
            .collect();
        thread::sleep(PHASE);
        let _ = pipe_w.write_all(b"x");
        for e in eph {
            let _ = e.join();
        }
        for w in &workers {
            let _ = w.done.recv();
        }
        let _ = writeln!(out, "done");
        let _ = out.flush();
    };

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("go") => scenario(&mut out),
            Some("loop") => {
                let n: u32 = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                for _ in 0..n {
                    scenario(&mut out);
                }
            }
            Some("exit") => std::process::exit(0),
            _ => {}
        }
    }
}
