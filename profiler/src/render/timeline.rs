//! The timeline (`--timeline`): `timeline.svg`, one row per thread with its
//! states over time, and `trace.json`, the same in the Chrome trace-event
//! format that ui.perfetto.dev and chrome://tracing open.
//!
//! The SVG stays small for 500 threads: each row is cut into pixel columns
//! and adjacent columns with the same dominant state become one rectangle,
//! so a row has at most as many rectangles as state changes visible at
//! that width. Hovering a rectangle shows its state, time and syscall.

use std::fmt::Write as _;

use super::Renderer;
use crate::{
    profile::{Profile, Segment},
    units::ns,
};

const STATES: &[(&str, &str)] = &[
    ("running", "#2ca02c"),
    ("runnable", "#ff7f0e"),
    ("sleeping", "#9ecae1"),
    ("blocked", "#d62728"),
    ("stopped", "#7f7f7f"),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `timeline.svg`.
pub struct TimelineSvg;
/// `trace.json`.
pub struct TraceJson;

/// Threads in row order (by tid, then creation) with their segments.
fn rows(p: &Profile) -> Vec<(&crate::profile::Thread, Vec<&Segment>)> {
    let Some(tl) = &p.timeline else {
        return Vec::new();
    };
    // Grouped by tid first: one pass over the segments, not one per thread
    // (2,000 threads × 300,000 segments took 9 s).
    let mut by_tid: std::collections::HashMap<u32, Vec<&Segment>> =
        std::collections::HashMap::new();
    for s in &tl.segments {
        by_tid.entry(s.tid).or_default().push(s);
    }
    let mut threads: Vec<&crate::profile::Thread> = p.threads.iter().collect();
    threads.sort_by_key(|t| (t.tid, t.created_ns));
    threads
        .into_iter()
        .map(|t| {
            let from = t.created_ns.unwrap_or(0);
            let to = t.exited_ns.unwrap_or(u64::MAX);
            // A reused tid: each thread keeps the segments of its lifetime.
            let segs = by_tid
                .get(&t.tid)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|s| s.end_ns > from && s.start_ns < to)
                        .collect()
                })
                .unwrap_or_default();
            (t, segs)
        })
        .collect()
}

impl Renderer for TimelineSvg {
    fn file_name(&self) -> &'static str {
        "timeline.svg"
    }
    fn applies(&self, p: &Profile) -> bool {
        p.timeline.is_some()
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        Ok(svg(p).into_bytes())
    }
}

/// Renders the timeline SVG.
pub fn svg(p: &Profile) -> String {
    let rows = rows(p);
    let n = rows.len().max(1);
    let width = 1200.0_f64;
    let label_w = 260.0;
    let row_h: f64 = if n <= 40 {
        16.0
    } else if n <= 200 {
        6.0
    } else {
        2.0
    };
    let top = 60.0;
    let plot_w = width - label_w - 20.0;
    let height = top + row_h * n as f64 + 60.0;
    let dur = p.window.duration_ns.max(1) as f64;
    let x = |t: u64| label_w + plot_w * (t as f64 / dur);
    let mut o = String::new();
    let _ = write!(
        o,
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"Verdana, sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    );
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"20\" font-size=\"15\" text-anchor=\"middle\">Timeline: {} (pid {}), {}, {} threads</text>",
        width / 2.0,
        esc(&p.target.comm),
        p.target.pid,
        ns(p.window.duration_ns),
        rows.len()
    );
    // Legend.
    let mut lx = label_w;
    for (s, c) in STATES {
        let _ = writeln!(
            o,
            "<rect x=\"{lx}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{c}\"/><text x=\"{}\" y=\"40\">{s}</text>",
            lx + 16.0
        );
        lx += 100.0;
    }
    let _ = writeln!(o, "<text x=\"{lx}\" y=\"40\">▲ created  ▼ exited</text>");
    if let Some(tl) = &p.timeline
        && (tl.lost > 0 || tl.capped > 0)
    {
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"54\" fill=\"#d62728\">incomplete: {} records lost, {} dropped at the --timeline-max cap</text>",
            label_w, tl.lost, tl.capped
        );
    }
    let cols = plot_w.ceil() as usize;
    for (i, (t, segs)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        if row_h >= 6.0 {
            let _ = writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"{}\">{} {}</text>",
                label_w - 6.0,
                y + row_h - 4.0,
                if row_h >= 16.0 { 11 } else { 6 },
                t.tid,
                esc(&t.name)
            );
        }
        // Time per state in each pixel column.
        let mut acc = vec![[0u64; 5]; cols];
        let mut first_sc: Vec<Option<&str>> = vec![None; cols];
        for s in segs {
            let si = STATES.iter().position(|(n, _)| *n == s.state).unwrap_or(2);
            let mut t0 = s.start_ns;
            while t0 < s.end_ns {
                let c = ((t0 as f64 / dur) * cols as f64) as usize;
                if c >= cols {
                    break;
                }
                let col_end = (((c + 1) as f64 / cols as f64) * dur).ceil() as u64;
                let t1 = s.end_ns.min(col_end.max(t0 + 1));
                acc[c][si] += t1 - t0;
                if first_sc[c].is_none() {
                    first_sc[c] = s.syscall.as_deref();
                }
                t0 = t1;
            }
        }
        // Runs of the dominant state.
        let mut c = 0;
        while c < cols {
            let dom = |v: &[u64; 5]| (0..5).max_by_key(|&k| v[k]).filter(|&k| v[k] > 0);
            let Some(d) = dom(&acc[c]) else {
                c += 1;
                continue;
            };
            let start = c;
            let mut total = 0u64;
            let mut sc = first_sc[c];
            while c < cols && dom(&acc[c]) == Some(d) {
                total += acc[c][d];
                sc = sc.or(first_sc[c]);
                c += 1;
            }
            let (name, col) = STATES[d];
            let in_sc = sc
                .filter(|_| d >= 2)
                .map(|s| format!(" in {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{col}\"><title>{} {}: {name}{in_sc} {} (+{})</title></rect>",
                label_w + start as f64,
                (c - start) as f64,
                (row_h - 1.0).max(1.0),
                t.tid,
                esc(&t.name),
                ns(total),
                ns((start as f64 / cols as f64 * dur) as u64)
            );
        }
        if let Some(cr) = t.created_ns {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{}\" text-anchor=\"middle\">▲<title>created at +{}</title></text>",
                x(cr),
                y + row_h - 1.0,
                row_h.max(6.0),
                ns(cr)
            );
        }
        if let Some(ex) = t.exited_ns {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{}\" text-anchor=\"middle\">▼<title>exited at +{}</title></text>",
                x(ex),
                y + row_h - 1.0,
                row_h.max(6.0),
                ns(ex)
            );
        }
    }
    // Time axis.
    let ay = top + row_h * n as f64 + 14.0;
    let _ = writeln!(
        o,
        "<line x1=\"{label_w}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
        ay - 10.0,
        label_w + plot_w,
        ay - 10.0
    );
    for k in 0..=10u64 {
        let t = p.window.duration_ns * k / 10;
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{ay}\" text-anchor=\"middle\">{}</text>",
            x(t),
            ns(t)
        );
    }
    o.push_str("</svg>\n");
    o
}

impl Renderer for TraceJson {
    fn file_name(&self) -> &'static str {
        "trace.json"
    }
    fn applies(&self, p: &Profile) -> bool {
        p.timeline.is_some()
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.render_to(p, &mut v)?;
        Ok(v)
    }
    /// Streamed as events (no JSON tree, and no buffer of the file, in
    /// memory: a timeline has hundreds of thousands of them).
    fn render_to(&self, p: &Profile, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        use std::io::Write as _;
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let mut o = std::io::BufWriter::with_capacity(1 << 16, out);
        o.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
        write!(
            o,
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{pid},\"args\":{{\"name\":{}}}}}",
            q(&format!("{} (pid {})", p.target.comm, p.target.pid)),
            pid = p.target.pid
        )?;
        let mut stacks: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
        for (t, segs) in rows(p) {
            let role = t
                .role
                .as_ref()
                .map(|r| format!(" [{}]", r.dominant))
                .unwrap_or_default();
            write!(
                o,
                ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":{}}}}}",
                t.pid,
                t.tid,
                q(&format!("{} {}{role}", t.tid, t.name))
            )?;
            for s in segs {
                write!(
                    o,
                    ",\n{{\"name\":{},\"cat\":\"thread_state\",\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\"pid\":{},\"tid\":{},\"args\":{{",
                    q(&s.state),
                    s.start_ns as f64 / 1000.0,
                    (s.end_ns - s.start_ns) as f64 / 1000.0,
                    t.pid,
                    t.tid
                )?;
                let mut sep = "";
                if let Some(sc) = &s.syscall {
                    write!(o, "\"syscall\":{}", q(sc))?;
                    sep = ",";
                }
                if let Some(st) = s.stack {
                    let text = stacks.entry(st).or_insert_with(|| {
                        let frames: Vec<&str> = p
                            .stack_frames(st)
                            .iter()
                            .rev()
                            .take(8)
                            .map(|f| f.name.as_str())
                            .collect();
                        q(&frames.join(" ← "))
                    });
                    write!(o, "{sep}\"stack\":{text}")?;
                }
                o.write_all(b"}}")?;
            }
        }
        o.write_all(b"\n]}\n")?;
        o.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Thread, Timeline};

    fn profile(threads: usize) -> Profile {
        let mut p = crate::diff::tests::mk(1, 1, 0);
        p.window.duration_ns = 1_000_000_000;
        p.threads = (0..threads as u32)
            .map(|i| Thread {
                tid: 100 + i,
                pid: 100,
                name: format!("t{i}"),
                names: vec![format!("t{i}")],
                complete: true,
                created_ns: (i == 1).then_some(100_000_000),
                ..Thread::default()
            })
            .collect();
        let mut segs = Vec::new();
        for i in 0..threads as u32 {
            // 2,000 short alternating segments per thread.
            for k in 0..2_000u64 {
                let s = k * 500_000;
                segs.push(Segment {
                    tid: 100 + i,
                    start_ns: s,
                    end_ns: s + 500_000,
                    state: if k % 2 == 0 {
                        "running".into()
                    } else {
                        "sleeping".into()
                    },
                    syscall: (k % 2 == 1).then(|| "futex".into()),
                    stack: None,
                });
            }
        }
        p.timeline = Some(Timeline {
            segments: segs,
            lost: 0,
            capped: 0,
        });
        p
    }

    #[test]
    fn svg_is_bounded_and_valid_for_5_and_500_threads() {
        for n in [5, 500] {
            let s = svg(&profile(n));
            assert!(s.starts_with("<?xml") && s.trim_end().ends_with("</svg>"));
            assert!(s.contains("running") && s.contains("sleeping") && s.contains("in futex"));
            // Bounded: at most one rect per pixel column per row (+ legend).
            let rects = s.matches("<rect").count();
            assert!(rects <= n * 920 + 10, "{n} threads: {rects} rects");
            assert!(s.len() < 60 * 1024 * 1024, "{n} threads: {} bytes", s.len());
        }
        assert!(svg(&profile(5)).contains("▲"));
    }

    #[test]
    fn trace_has_one_track_per_thread() {
        let p = profile(3);
        let v: serde_json::Value = serde_json::from_slice(&TraceJson.render(&p).unwrap()).unwrap();
        let ev = v["traceEvents"].as_array().unwrap();
        let names = ev.iter().filter(|e| e["name"] == "thread_name").count();
        assert_eq!(names, 3);
        let x: Vec<_> = ev.iter().filter(|e| e["ph"] == "X").collect();
        // t1 was created at 100 ms: its 200 earlier segments are not its own.
        assert_eq!(x.len(), 3 * 2_000 - 200);
        assert_eq!(x[1]["args"]["syscall"], "futex");
    }
}
