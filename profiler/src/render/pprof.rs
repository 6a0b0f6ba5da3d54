//! pprof export (`profile.pb.gz` for on-CPU, `offcpu.pb.gz` for off-CPU):
//! the gzipped protobuf format `go tool pprof`, Pyroscope and Grafana read,
//! with the thread name, tid, role, reason and syscall as sample labels.
//!
//! The protobuf encoding is written here (a few dozen lines for the
//! handful of messages pprof has) rather than pulling a protobuf compiler
//! into the build.

use std::{collections::HashMap, io::Write};

use super::Renderer;
use crate::profile::Profile;

/// Protobuf wire encoding of one message.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }
    /// An int field (omitted when zero, as proto3 does).
    fn int(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn msg(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
    fn packed(&mut self, field: u32, vs: &[u64]) {
        let mut m = Msg::default();
        for &v in vs {
            m.varint(v);
        }
        self.bytes(field, &m.0);
    }
}

/// The string table (index 0 is "").
struct Strings {
    all: Vec<String>,
    idx: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            all: vec![String::new()],
            idx: HashMap::from([(String::new(), 0)]),
        }
    }
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.idx.get(s) {
            return i;
        }
        let i = self.all.len() as i64;
        self.all.push(s.to_string());
        self.idx.insert(s.to_string(), i);
        i
    }
}

struct SampleIn {
    tid: u32,
    stack: u32,
    count: u64,
    ns: u64,
    extra: Vec<(&'static str, String)>,
}

fn encode(p: &Profile, samples: &[SampleIn], kind: &str) -> Vec<u8> {
    let mut st = Strings::new();
    let mut prof = Msg::default();
    // sample_type: [count, nanoseconds]
    for (t, u) in [("samples", "count"), (kind, "nanoseconds")] {
        let mut vt = Msg::default();
        vt.int(1, st.id(t));
        vt.int(2, st.id(u));
        prof.msg(1, vt);
    }
    let mut used_frames: Vec<u32> = Vec::new();
    let mut seen: HashMap<u32, ()> = HashMap::new();
    for s in samples {
        let frames = p.stacks.get(s.stack as usize).cloned().unwrap_or_default();
        // Leaf first.
        let locs: Vec<u64> = frames.iter().rev().map(|&f| u64::from(f) + 1).collect();
        for &f in &frames {
            if seen.insert(f, ()).is_none() {
                used_frames.push(f);
            }
        }
        let mut m = Msg::default();
        m.packed(1, &locs);
        m.packed(2, &[s.count, s.ns]);
        let t = p.threads.iter().rev().find(|t| t.tid == s.tid);
        let mut labels: Vec<(&str, String)> = vec![("thread", p.thread_name(s.tid).to_string())];
        if let Some(r) = t.and_then(|t| t.role.as_ref()) {
            labels.push(("role", r.dominant.clone()));
        }
        labels.extend(s.extra.iter().map(|(k, v)| (*k, v.clone())));
        for (k, v) in labels {
            let mut l = Msg::default();
            l.int(1, st.id(k));
            l.int(2, st.id(&v));
            m.msg(3, l);
        }
        let mut l = Msg::default();
        l.int(1, st.id("tid"));
        l.int(3, i64::from(s.tid));
        m.msg(3, l);
        prof.msg(2, m);
    }
    used_frames.sort_unstable();
    for f in &used_frames {
        let frame = &p.frames[*f as usize];
        let id = u64::from(*f) + 1;
        let mut line = Msg::default();
        line.int(1, id as i64);
        let mut loc = Msg::default();
        loc.int(1, id as i64);
        loc.msg(4, line);
        prof.msg(4, loc);
        let mut func = Msg::default();
        func.int(1, id as i64);
        let name = if frame.kernel {
            format!("{} [kernel]", frame.name)
        } else {
            frame.name.clone()
        };
        func.int(2, st.id(&name));
        func.int(3, st.id(&frame.name));
        func.int(4, st.id(&frame.module));
        prof.msg(5, func);
    }
    let strings = std::mem::take(&mut st.all);
    for s in &strings {
        prof.bytes(6, s.as_bytes());
    }
    // Indices into the table built above are stable; the comment and
    // period type need ids from the finished table.
    let mut st = Strings {
        idx: strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as i64))
            .collect(),
        all: strings,
    };
    let before = st.all.len();
    let cpu = st.id("cpu");
    let nanos = st.id("nanoseconds");
    let comment = st.id(&format!(
        "profiler {} of pid {} ({})",
        kind, p.target.pid, p.target.comm
    ));
    for s in &st.all[before..] {
        prof.bytes(6, s.as_bytes());
    }
    prof.int(9, p.window.start_unix_ns as i64);
    prof.int(10, p.window.duration_ns as i64);
    let mut pt = Msg::default();
    pt.int(1, cpu);
    pt.int(2, nanos);
    prof.msg(11, pt);
    if let Some(period) = 1_000_000_000u64.checked_div(p.sampling.freq_hz) {
        prof.int(12, period as i64);
    }
    prof.packed(13, &[comment as u64]);
    prof.int(14, st.id(kind));
    prof.0
}

fn gzip(b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b)?;
    Ok(e.finish()?)
}

/// `profile.pb.gz`: on-CPU samples.
pub struct OnCpuPprof;
/// `offcpu.pb.gz`: off-CPU time.
pub struct OffCpuPprof;

impl Renderer for OnCpuPprof {
    fn file_name(&self) -> &'static str {
        "profile.pb.gz"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        let per = 1_000_000_000 / p.sampling.freq_hz.max(1);
        let samples: Vec<SampleIn> = p
            .oncpu
            .iter()
            .map(|s| SampleIn {
                tid: s.tid,
                stack: s.stack,
                count: s.count,
                ns: s.count * per,
                extra: vec![],
            })
            .collect();
        gzip(&encode(p, &samples, "cpu"))
    }
}

impl Renderer for OffCpuPprof {
    fn file_name(&self) -> &'static str {
        "offcpu.pb.gz"
    }
    fn render(&self, p: &Profile) -> anyhow::Result<Vec<u8>> {
        let samples: Vec<SampleIn> = p
            .offcpu
            .iter()
            .map(|s| {
                let mut extra = vec![("reason", s.reason.clone())];
                if let Some(sc) = &s.syscall {
                    extra.push(("syscall", sc.clone()));
                }
                SampleIn {
                    tid: s.tid,
                    stack: s.stack,
                    count: s.count,
                    ns: s.total_ns,
                    extra,
                }
            })
            .collect();
        gzip(&encode(p, &samples, "offcpu"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, vec![0xac, 0x02]);
        let mut m = Msg::default();
        m.int(1, 150);
        assert_eq!(m.0, vec![0x08, 0x96, 0x01]);
        let mut m = Msg::default();
        m.int(1, 0);
        assert!(m.0.is_empty());
    }

    #[test]
    fn renders_gzip() {
        let p = crate::diff::tests::mk(10, 20, 0);
        let b = OnCpuPprof.render(&p).unwrap();
        assert_eq!(&b[..2], &[0x1f, 0x8b]);
    }
}
