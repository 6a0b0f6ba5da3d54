//! Syscall numbers to names, for the architecture we run on (the
//! `syscalls` crate's table).

/// The name of syscall `nr`, or `syscall_<nr>` when unknown.
pub fn name(nr: u32) -> String {
    syscalls::Sysno::new(nr as usize)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn x86_64_names() {
        assert_eq!(super::name(0), "read");
        assert_eq!(super::name(202), "futex");
        assert_eq!(super::name(230), "clock_nanosleep");
        assert_eq!(super::name(999), "syscall_999");
    }
}
