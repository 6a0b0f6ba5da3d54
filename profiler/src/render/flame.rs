//! Flamegraphs: folded stacks (`oncpu.folded`, `offcpu.folded`, the format
//! flamegraph.pl, inferno and speedscope read) and their SVGs rendered with
//! inferno.
//!
//! On-CPU lines are `thread;root;...;leaf samples`. Off-CPU lines are
//! `thread;user frames;[syscall read];kernel frames;[sleeping] µs`: the
//! syscall sits where user code entered the kernel and the reason is the
//! leaf, so "sleeping in read()" reads straight off the graph. Kernel
//! frames carry inferno's `_[k]` annotation. Threads are the root frame
//! (by name, so pools of same-named threads add up) unless merged.

use std::{collections::BTreeMap, fmt::Write as _};

use inferno::flamegraph::{
    self,
    color::{BasicPalette, Palette},
};

use super::Renderer;
use crate::{profile::Profile, units::ns};

/// Options of the flamegraph renderers.
#[derive(Debug, Clone, Default)]
pub struct FlameOptions {
    /// Drop the per-thread root frame. Default: keep it.
    pub merge_threads: bool,
}

fn clean(name: &str) -> String {
    name.replace([';', '\n', '\r'], ":")
}

fn push_frames(line: &mut String, p: &Profile, stack: u32, syscall: Option<&str>) {
    let mut in_kernel = false;
    for f in p.stack_frames(stack) {
        if f.kernel && !in_kernel {
            in_kernel = true;
            if let Some(sc) = syscall {
                let _ = write!(line, ";[syscall {sc}]");
            }
        }
        line.push(';');
        line.push_str(&clean(&f.name));
        if f.kernel {
            line.push_str("_[k]");
        }
    }
    if !in_kernel && let Some(sc) = syscall {
        let _ = write!(line, ";[syscall {sc}]");
    }
}

fn root(p: &Profile, tid: u32, o: &FlameOptions) -> String {
    if o.merge_threads {
        String::new()
    } else {
        clean(p.thread_name(tid))
    }
}

/// Merges equal stacks and renders `stack count` lines, sorted.
fn lines(map: BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    for (stack, n) in map {
        if n > 0 {
            let stack = stack.strip_prefix(';').unwrap_or(&stack);
            let _ = writeln!(out, "{stack} {n}");
        }
    }
    out
}

/// On-CPU folded stacks, weighted by samples.
pub fn oncpu_folded(p: &Profile, o: &FlameOptions) -> String {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.oncpu {
        let mut line = root(p, s.tid, o);
        push_frames(&mut line, p, s.stack, None);
        *m.entry(line).or_default() += s.count;
    }
    lines(m)
}

/// Off-CPU folded stacks, weighted by microseconds off CPU.
pub fn offcpu_folded(p: &Profile, o: &FlameOptions) -> String {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.offcpu {
        let mut line = root(p, s.tid, o);
        push_frames(&mut line, p, s.stack, s.syscall.as_deref());
        let _ = write!(line, ";[{}]", s.reason);
        *m.entry(line).or_default() += s.total_ns / 1000;
    }
    lines(m)
}

/// A small valid SVG saying why there is no graph.
fn empty_svg(title: &str, why: &str) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"80\">\
         <text x=\"600\" y=\"30\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}</text>\
         <text x=\"600\" y=\"60\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\">{}</text></svg>\n",
        esc(title),
        esc(why)
    )
    .into_bytes()
}

fn svg(
    folded: &str,
    title: String,
    subtitle: String,
    count_name: &str,
    palette: Palette,
) -> anyhow::Result<Vec<u8>> {
    if folded.trim().is_empty() {
        return Ok(empty_svg(&title, "no stacks were recorded"));
    }
    let mut opts = flamegraph::Options::default();
    opts.title = title;
    opts.subtitle = Some(subtitle);
    opts.count_name = count_name.to_string();
    opts.colors = palette;
    opts.deterministic = true;
    let mut out = Vec::new();
    flamegraph::from_lines(&mut opts, folded.lines(), &mut out)?;
    Ok(out)
}

fn target_desc(p: &Profile) -> String {
    format!(
        "{} (pid {}), {}",
        p.target.comm,
        p.target.pid,
        ns(p.window.duration_ns)
    )
}

/// Folded stacks of several runs added up, each count divided by the
/// number of runs (so sides with different run counts compare).
fn averaged(profiles: &[Profile], on_cpu: bool) -> String {
    let o = FlameOptions::default();
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for p in profiles {
        let folded = if on_cpu {
            oncpu_folded(p, &o)
        } else {
            offcpu_folded(p, &o)
        };
        for l in folded.lines() {
            if let Some((stack, n)) = l.rsplit_once(' ')
                && let Ok(n) = n.parse::<u64>()
            {
                *sum.entry(stack.to_string()).or_default() += n;
            }
        }
    }
    let runs = profiles.len().max(1) as u64;
    lines(
        sum.into_iter()
            .map(|(k, v)| (format!(";{k}"), v / runs))
            .collect(),
    )
}

/// A differential flamegraph (inferno): the new runs' stacks, red where
/// they grew against the base runs, blue where they shrank.
pub fn differential_svg(
    base: &[Profile],
    new: &[Profile],
    on_cpu: bool,
) -> anyhow::Result<Vec<u8>> {
    let (b, n) = (averaged(base, on_cpu), averaged(new, on_cpu));
    let kind = if on_cpu { "On-CPU" } else { "Off-CPU" };
    let title = format!(
        "{kind} differential: {} base run(s) → {} new run(s)",
        base.len(),
        new.len()
    );
    if b.trim().is_empty() && n.trim().is_empty() {
        return Ok(empty_svg(&title, "no stacks were recorded"));
    }
    let mut folded = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        b.as_bytes(),
        n.as_bytes(),
        &mut folded,
    )?;
    let mut opts = flamegraph::Options::default();
    opts.title = title;
    opts.subtitle = Some("red: grew, blue: shrank (width: new)".into());
    opts.count_name = if on_cpu {
        "samples".into()
    } else {
        "µs".into()
    };
    opts.deterministic = true;
    let mut out = Vec::new();
    flamegraph::from_reader(&mut opts, folded.as_slice(), &mut out)?;
    Ok(out)
}

/// `oncpu.folded`.
pub struct OnCpuFolded(pub FlameOptions);
/// `offcpu.folded`.
pub struct OffCpuFolded(pub FlameOptions);
/// `oncpu.svg`.
pub struct OnCpuSvg(pub FlameOptions);
/// `offcpu.svg`.
pub struct OffCpuSvg(pub FlameOptions);

impl Renderer for OnCpuFolded {
    fn file_name(&self) -> &'static str {
        "oncpu.folded"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        Ok(oncpu_folded(p, &self.0).into_bytes())
    }
}

impl Renderer for OffCpuFolded {
    fn file_name(&self) -> &'static str {
        "offcpu.folded"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        Ok(offcpu_folded(p, &self.0).into_bytes())
    }
}

impl Renderer for OnCpuSvg {
    fn file_name(&self) -> &'static str {
        "oncpu.svg"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        let samples: u64 = p.oncpu.iter().map(|s| s.count).sum();
        svg(
            &oncpu_folded(p, &self.0),
            format!("On-CPU: {}", target_desc(p)),
            format!(
                "{samples} samples at {} Hz; width = time on CPU",
                p.sampling.freq_hz
            ),
            "samples",
            Palette::Basic(BasicPalette::Hot),
        )
    }
}

impl Renderer for OffCpuSvg {
    fn file_name(&self) -> &'static str {
        "offcpu.svg"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        let total: u64 = p.offcpu.iter().map(|s| s.total_ns).sum();
        svg(
            &offcpu_folded(p, &self.0),
            format!("Off-CPU: {}", target_desc(p)),
            format!(
                "{} off CPU; width = time off CPU (µs), leaf = why: [sleeping] [blocked] [runnable]",
                ns(total)
            ),
            "µs",
            Palette::Basic(BasicPalette::Blue),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::*;

    fn profile() -> Profile {
        let f = |n: &str, k: bool| Frame {
            name: n.into(),
            module: if k { "[kernel]".into() } else { "app".into() },
            kernel: k,
        };
        let t = |tid, name: &str| Thread {
            tid,
            pid: 1,
            name: name.into(),
            names: vec![name.into()],
            complete: true,
            ..Thread::default()
        };
        Profile {
            format: FORMAT.into(),
            tool: Tool {
                name: "profiler".into(),
                version: "0".into(),
            },
            target: Target {
                pid: 1,
                comm: "app".into(),
                exe: String::new(),
                cmdline: vec![],
                start_ticks: 0,
            },
            window: Window {
                start_ns: 0,
                end_ns: 1_000_000_000,
                duration_ns: 1_000_000_000,
                start_unix_ns: 0,
                end_reason: "duration".into(),
            },
            totals: Totals::default(),
            lost: Lost::default(),
            threads: vec![t(1, "app"), t(2, "io")],
            execs: vec![],
            command: None,
            runtime: None,
            sampling: Sampling {
                stacks: true,
                freq_hz: 99,
                samples: 12,
                stack_cache_hits: 0,
            },
            frames: vec![
                f("main", false),
                f("work;er", false),
                f("read", false),
                f("pipe_read", true),
                f("schedule", true),
            ],
            stacks: vec![vec![0, 1], vec![0, 2, 3, 4]],
            oncpu: vec![
                OnCpu {
                    tid: 1,
                    stack: 0,
                    count: 10,
                },
                OnCpu {
                    tid: 2,
                    stack: 0,
                    count: 2,
                },
            ],
            offcpu: vec![OffCpu {
                tid: 2,
                stack: 1,
                reason: "sleeping".into(),
                syscall: Some("read".into()),
                total_ns: 300_000_000,
                count: 1,
            }],
            timeline: None,
            overhead: None,
        }
    }

    #[test]
    fn folded_lines_are_rooted_by_thread_and_escape_semicolons() {
        let p = profile();
        assert_eq!(
            oncpu_folded(&p, &FlameOptions::default()),
            "app;main;work:er 10\nio;main;work:er 2\n"
        );
        assert_eq!(
            oncpu_folded(
                &p,
                &FlameOptions {
                    merge_threads: true
                }
            ),
            "main;work:er 12\n"
        );
        assert_eq!(
            offcpu_folded(&p, &FlameOptions::default()),
            "io;main;read;[syscall read];pipe_read_[k];schedule_[k];[sleeping] 300000\n"
        );
    }

    #[test]
    fn svgs_render_with_the_names_and_titles() {
        let p = profile();
        let on = String::from_utf8(OnCpuSvg(FlameOptions::default()).render(&p).unwrap()).unwrap();
        assert!(on.starts_with("<?xml"));
        assert!(
            on.contains("work:er") && on.contains("On-CPU: app (pid 1)"),
            "{on}"
        );
        let off =
            String::from_utf8(OffCpuSvg(FlameOptions::default()).render(&p).unwrap()).unwrap();
        assert!(off.contains("[syscall read]") && off.contains("[sleeping]"));
        let mut empty = p.clone();
        empty.oncpu.clear();
        let e =
            String::from_utf8(OnCpuSvg(FlameOptions::default()).render(&empty).unwrap()).unwrap();
        assert!(e.contains("no stacks were recorded"));
    }
}
