//! Micro-benchmark of the userspace pipeline, without the kernel (run by
//! `cargo xtask bench`; `--smoke` for tiny sizes): kernel records, as the
//! ring buffer delivers them, replayed through decoding and aggregation; a
//! stop state with N unique stacks of real code (addresses spread over
//! this very binary's text, so blazesym does real work) symbolized into a
//! profile; then every renderer `--output` runs. Prints a Markdown
//! section with sizes, times and rates.

use std::time::Instant;

use profiler::{
    kernel::decode::decode,
    model::{
        InitialThread, LiveThread, LostCounts, OffReason, Open, RawOffCpu, RawOnCpu, Recorder,
        StackData, StopState, TargetInfo,
    },
    render::{self, flame::FlameOptions, text::TextOptions},
    symbolize::Symbolizer,
};
use profiler_common::{
    EventHeader, SegmentEvent, TaskExitEvent, TaskNewEvent, ThreadFinalEvent, ThreadRec,
    event_kind, reason,
};

/// A `#[repr(C)]` record's bytes, as the ring buffer hands them over.
fn bytes_of<T>(v: &T) -> Vec<u8> {
    // SAFETY: plain integer structs; reading their bytes is always valid.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

fn header(kind: u32, tid: u32, tgid: u32, ts: u64) -> EventHeader {
    EventHeader {
        kind,
        tid,
        tgid,
        cpu: 0,
        ts,
    }
}

/// Text addresses of this executable, `n` of them spread over its code.
fn own_code_addresses(n: usize) -> Vec<u64> {
    let exe = std::fs::read_link("/proc/self/exe").expect("/proc/self/exe");
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let (lo, hi) = maps
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')))
        .filter(|l| l.ends_with(exe.to_str().unwrap_or("?")))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .max_by_key(|(a, b)| b - a)
        .expect("an executable mapping of this binary");
    let step = ((hi - lo) / n as u64).max(1);
    (0..n as u64).map(|i| lo + i * step + 1).collect()
}

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (threads, segments, unique_stacks, addresses) = if smoke {
        (50, 2_000, 200, 400)
    } else {
        (2_000, 300_000, 10_000, 8_000)
    };
    let pid = std::process::id();
    let start = 1_000_000_000u64;
    let ms = 1_000_000u64;

    // Records as they come out of the ring buffer: per thread a creation,
    // an exit and its final counters, plus timeline segments.
    let mut records: Vec<Vec<u8>> = Vec::with_capacity(threads * 3 + segments);
    for i in 0..threads as u32 {
        let tid = pid + 1 + i;
        let ts = start + u64::from(i) * ms / 10;
        // SAFETY: every field is an integer or an integer array.
        let mut new: TaskNewEvent = unsafe { std::mem::zeroed() };
        new.hdr = header(event_kind::TASK_NEW, tid, pid, ts);
        new.parent_tid = pid;
        new.parent_tgid = pid;
        new.comm[..6].copy_from_slice(b"worker");
        new.stack = -1;
        records.push(bytes_of(&new));
        let mut exit: TaskExitEvent = unsafe { std::mem::zeroed() };
        exit.hdr = header(event_kind::TASK_EXIT, tid, pid, ts + 50 * ms);
        records.push(bytes_of(&exit));
        let fin = ThreadFinalEvent {
            hdr: header(event_kind::THREAD_FINAL, tid, pid, ts + 50 * ms),
            rec: ThreadRec {
                tgid: pid,
                on_cpu_ns: 20 * ms,
                sleeping_ns: 30 * ms,
                voluntary: 100,
                ..ThreadRec::default()
            },
        };
        records.push(bytes_of(&fin));
    }
    for i in 0..segments as u64 {
        let tid = pid + 1 + (i % threads as u64) as u32;
        let t = start + i * 1_000;
        let seg = SegmentEvent {
            hdr: header(event_kind::SEGMENT, tid, pid, t + 900),
            on_start: t,
            off_start: t + 300,
            wake: t + 700,
            reason: reason::SLEEPING,
            syscall: 0,
            ustack: (i % unique_stacks as u64) as i32,
            _pad: 0,
        };
        records.push(bytes_of(&seg));
    }
    let record_bytes: usize = records.iter().map(Vec::len).sum();

    let target = TargetInfo {
        pid,
        comm: "pipeline".into(),
        exe: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        cmdline: vec!["pipeline".into()],
        start_ticks: 0,
    };
    let initial = InitialThread {
        tid: pid,
        tgid: pid,
        comm: "pipeline".into(),
        stack: None,
    };
    let mut rec = Recorder::new(target, start, 0, [initial]);
    let mut bad = 0;
    let decode_s = seconds(|| {
        for r in &records {
            match decode(r) {
                Ok(e) => rec.push(e),
                Err(_) => bad += 1,
            }
        }
    });
    assert_eq!(bad, 0, "every synthetic record decodes");

    // The maps read at stop: `unique_stacks` distinct user stacks of 12
    // frames drawn from `addresses` real code addresses, each with on-CPU
    // samples and off-CPU time.
    let code = own_code_addresses(addresses);
    let mut stacks = StackData {
        enabled: true,
        freq_hz: 99,
        ..StackData::default()
    };
    for s in 0..unique_stacks {
        let ips: Vec<u64> = (0..12)
            .map(|d| code[(s * 7 + d * 131 + s / 13 * d) % code.len()])
            .collect();
        stacks.stacks.insert(s as u32, ips);
        let tid = pid + 1 + (s % threads) as u32;
        stacks.oncpu.push(RawOnCpu {
            tid,
            ustack: Some(s as u32),
            kstack: None,
            count: 1 + (s as u64 % 17),
        });
        stacks.offcpu.push(RawOffCpu {
            tid,
            reason: OffReason::Sleeping,
            syscall: Some(0),
            ustack: Some(s as u32),
            kstack: None,
            total_ns: (1 + s as u64 % 29) * ms,
            count: 3,
            attach: false,
        });
    }
    stacks.samples = stacks.oncpu.iter().map(|o| o.count).sum();
    let stop = StopState {
        end_ns: start + 60_000 * ms,
        end_reason: "duration".into(),
        live: vec![LiveThread {
            tid: pid,
            tgid: pid,
            counters: Default::default(),
            open: Open::OnCpu { since_ns: start },
            dead: false,
            ustack: None,
            kstack: None,
            seeded: false,
            on_since: start,
        }],
        syscalls: vec![],
        lost: LostCounts::default(),
        kernel_events: records.len() as u64,
        stacks,
        timeline: Some(Default::default()),
        overhead: None,
    };
    let mut sym = Symbolizer::new();
    sym.capture(pid);
    let mut profile = None;
    let finish_s = seconds(|| profile = Some(rec.finish(stop, &mut sym)));
    let profile = profile.expect("profile");
    let named = profile
        .frames
        .iter()
        .filter(|f| !f.name.starts_with("[unknown]"))
        .count();

    let mut rows = Vec::new();
    let mut render_total = 0.0;
    for r in render::all(TextOptions::default(), FlameOptions::default()) {
        if !r.applies(&profile) {
            continue;
        }
        let mut size = 0;
        let s = seconds(|| size = r.render(&profile).expect("render").len());
        render_total += s;
        rows.push((r.file_name(), s, size));
    }

    let n = records.len() as f64;
    println!(
        "## Userspace pipeline (no kernel){}\n",
        if smoke { " (SMOKE RUN)" } else { "" }
    );
    println!(
        "Synthetic recording: {threads} threads created and exited, {segments} timeline segments, \
         {unique_stacks} unique 12-frame user stacks over {addresses} addresses of this binary's code \
         ({} frames named by blazesym, {} unique frames in all).\n",
        named,
        profile.frames.len()
    );
    println!("| step | time | rate |\n|---|---|---|");
    println!(
        "| decode {} ring-buffer records ({:.1} MB) into the recorder | {:.3} s | {:.0} records/s |",
        records.len(),
        record_bytes as f64 / 1e6,
        decode_s,
        n / decode_s
    );
    println!(
        "| aggregate, symbolize and build the profile ({unique_stacks} unique stacks) | {finish_s:.3} s | {:.0} stacks/s |",
        unique_stacks as f64 / finish_s
    );
    for (name, s, size) in &rows {
        println!(
            "| render {name} ({:.1} MB) | {s:.3} s | |",
            *size as f64 / 1e6
        );
    }
    println!("| all renderers | {render_total:.3} s | |");
    // SAFETY: getrusage on ourselves into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    println!(
        "\nPeak RSS of the whole micro-benchmark (records, profile, largest rendered file): {:.0} MB.",
        ru.ru_maxrss as f64 / 1024.0
    );
}
