//! `profiler`: see `profiler --help`.
fn main() {
    std::process::exit(profiler::cli::main());
}
