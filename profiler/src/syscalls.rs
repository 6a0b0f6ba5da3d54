//! Syscall numbers to names, for the architecture we run on (the
//! `syscalls` crate's table).

/// The name of syscall `nr`, or `syscall_<nr>` when unknown; borrowed
/// from the static table when known.
pub fn static_name(nr: u32) -> std::borrow::Cow<'static, str> {
    match syscalls::Sysno::new(nr as usize) {
        Some(s) => std::borrow::Cow::Borrowed(s.name()),
        None => std::borrow::Cow::Owned(format!("syscall_{nr}")),
    }
}

/// [`static_name`], owned.
pub fn name(nr: u32) -> String {
    static_name(nr).into_owned()
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
