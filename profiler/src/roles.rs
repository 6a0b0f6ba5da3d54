//! Roles of threads of non-Go processes, from what their names carry
//! (runtimes and libraries name their threads: tokio, the JVM, rayon...).
//! Nothing runtime-specific is claimed beyond what the name says.

use crate::profile::{Profile, RoleShare, ThreadRole};

/// (name prefix, role) of well-known thread names.
const KNOWN: &[(&str, &str)] = &[
    ("tokio-runtime-w", "tokio worker"),
    ("tokio-runtime-b", "tokio blocking-pool thread"),
    ("rayon-", "rayon worker"),
    ("GC Thread", "JVM garbage collector"),
    ("G1 ", "JVM G1 garbage collector"),
    ("C1 CompilerThre", "JVM JIT compiler"),
    ("C2 CompilerThre", "JVM JIT compiler"),
    ("VM Thread", "JVM VM operations"),
    ("VM Periodic", "JVM periodic tasks"),
    ("Signal Dispatch", "JVM signal dispatcher"),
    ("Finalizer", "JVM finalizer"),
    ("Reference Handl", "JVM reference handler"),
    ("Common-Cleaner", "JVM cleaner"),
    ("ForkJoinPool", "JVM fork-join worker"),
    ("node", "Node.js main thread"),
    ("V8 ", "V8 worker"),
    ("libuv-worker", "libuv worker"),
];

/// The role a thread name says, `None` when it says nothing beyond being
/// the process's own name.
pub fn role_from_name(name: &str, process: &str) -> Option<String> {
    if let Some((_, role)) = KNOWN.iter().find(|(p, _)| name.starts_with(p)) {
        return Some((*role).to_string());
    }
    (name != process && !name.is_empty()).then(|| format!("named thread \"{name}\""))
}

/// Gives threads whose names carry a role that role (source: the name).
pub fn annotate_by_name(p: &mut Profile) {
    let process = p.target.comm.clone();
    let pid = p.target.pid;
    for t in &mut p.threads {
        let main = t.tid == pid;
        if let Some(role) = role_from_name(&t.name, &process) {
            t.role = Some(ThreadRole {
                dominant: role.clone(),
                main_thread: main,
                shares: vec![RoleShare {
                    role,
                    ns: t.on_cpu_ns + t.off_cpu_ns,
                    share: 1.0,
                    evidence: vec![format!("thread name \"{}\"", t.name)],
                }],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        use super::role_from_name as r;
        assert_eq!(r("tokio-runtime-w", "app").as_deref(), Some("tokio worker"));
        assert_eq!(
            r("C2 CompilerThre", "java").as_deref(),
            Some("JVM JIT compiler")
        );
        assert_eq!(r("app", "app"), None);
        assert_eq!(
            r("sleeper", "app").as_deref(),
            Some("named thread \"sleeper\"")
        );
    }
}
