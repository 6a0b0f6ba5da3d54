//! Renderers: one per output format, each from a [`Profile`] alone.

pub mod diff;
pub mod flame;
pub mod pprof;
pub mod text;
pub mod timeline;

use crate::profile::Profile;

/// Turns a profile into one output file's bytes.
pub trait Renderer {
    /// File name in the output directory.
    fn file_name(&self) -> &'static str;
    fn render(&self, profile: &Profile) -> anyhow::Result<Vec<u8>>;
    /// Writes the file's bytes to `out`; renderers of big files stream
    /// instead of building them in memory first.
    fn render_to(&self, profile: &Profile, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        out.write_all(&self.render(profile)?)?;
        Ok(())
    }
    /// Whether this profile has what the file shows (default: yes).
    fn applies(&self, _profile: &Profile) -> bool {
        true
    }
}

/// Every output file's renderer, in the order files are written.
pub fn all(text: text::TextOptions, flame: flame::FlameOptions) -> Vec<Box<dyn Renderer>> {
    vec![
        Box::new(Json),
        Box::new(text::Text(text)),
        Box::new(flame::OnCpuFolded(flame.clone())),
        Box::new(flame::OffCpuFolded(flame.clone())),
        Box::new(flame::OnCpuSvg(flame.clone())),
        Box::new(flame::OffCpuSvg(flame)),
        Box::new(pprof::OnCpuPprof),
        Box::new(pprof::OffCpuPprof),
        Box::new(timeline::TimelineSvg),
        Box::new(timeline::TraceJson),
    ]
}

/// `profile.json`, pretty-printed.
pub struct Json;

impl Renderer for Json {
    fn file_name(&self) -> &'static str {
        "profile.json"
    }
    fn render(&self, profile: &Profile) -> anyhow::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.render_to(profile, &mut v)?;
        Ok(v)
    }
    /// Pretty, except with a timeline (hundreds of thousands of segments),
    /// where indentation would double the size: compact then. Streamed: a
    /// timeline profile is hundreds of MB.
    fn render_to(&self, profile: &Profile, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
        if profile.timeline.is_some() {
            serde_json::to_writer(&mut w, profile)?;
        } else {
            serde_json::to_writer_pretty(&mut w, profile)?;
        }
        std::io::Write::write_all(&mut w, b"\n")?;
        std::io::Write::flush(&mut w)?;
        Ok(())
    }
}
