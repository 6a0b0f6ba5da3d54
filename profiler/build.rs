//! Builds the kernel programs (`profiler-ebpf`) for the BPF target with the
//! nightly toolchain and bpf-linker (see `cargo xtask setup`), so that
//! `src/kernel/loader.rs` can embed the object with `include_bytes_aligned!`.
//! Set `AYA_BUILD_SKIP=1` to build userspace without it (unit tests only).
fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiler-ebpf");
    let root = root
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("profiler-ebpf not found at {}: {e}", root.display()))?;
    let root = root
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", root.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "profiler-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
