//! The Go X-ray: the role of every OS thread of a Go process, decided from
//! the frames of its stacks (on-CPU samples and off-CPU periods, weighted
//! by time), and a plain-words explanation of why the process has the
//! threads it has.
//!
//! A thread's role can change (an idle M later runs goroutines), so each
//! thread gets its time split by role, with the frames that decided each
//! role as evidence, and a dominant role. Pure: works on a [`Profile`].

use std::collections::BTreeMap;

use crate::{
    profile::{CreatedThread, Profile, RoleShare, Runtime, ThreadRole},
    units::ns,
};

/// What a stack says a Go thread is doing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Sysmon,
    TemplateThread,
    GcWorker,
    Cgo,
    Locked,
    /// In a blocking syscall made by Go code (name).
    Syscall(String),
    Netpoller,
    IdleM,
    RunningGo,
    Unknown,
}

impl Role {
    pub fn label(&self) -> String {
        match self {
            Role::Sysmon => "sysmon".into(),
            Role::TemplateThread => "template thread".into(),
            Role::GcWorker => "GC background worker".into(),
            Role::Cgo => "running cgo / C code".into(),
            Role::Locked => "locked to a goroutine (LockOSThread)".into(),
            Role::Syscall(s) => format!("M blocked in syscall {s}(2)"),
            Role::Netpoller => "netpoller wait".into(),
            Role::IdleM => "idle M (parked, waiting for work)".into(),
            Role::RunningGo => "running Go code".into(),
            Role::Unknown => "unknown".into(),
        }
    }

    /// Short plural-aware label for the explanation.
    fn count_label(&self, n: usize) -> String {
        let s = if n == 1 { "" } else { "s" };
        match self {
            Role::Sysmon => "sysmon".into(),
            Role::TemplateThread => format!("template thread{s}"),
            Role::GcWorker => format!("GC worker{s}"),
            Role::Cgo => format!("thread{s} running cgo / C code"),
            Role::Locked => format!("thread{s} locked to a goroutine"),
            Role::Syscall(sc) => format!("M{s} blocked in {sc}(2)"),
            Role::Netpoller => format!("M{s} waiting in the netpoller"),
            Role::IdleM => format!("idle M{s} parked in futex"),
            Role::RunningGo => "running Go code".to_string(),
            Role::Unknown => format!("thread{s} of unknown role"),
        }
    }
}

const SYSCALL_FRAMES: &[&str] = &[
    "syscall.Syscall",
    "syscall.Syscall6",
    "syscall.RawSyscall",
    "syscall.RawSyscall6",
    "runtime/internal/syscall.Syscall6",
    "internal/runtime/syscall.Syscall6",
    "syscall.rawSyscallNoError",
    "internal/poll.ignoringEINTRIO",
];

/// The role a stack (frame names, root first) shows, and the frame that
/// decided it.
pub fn classify(
    frames: &[&str],
    on_cpu: bool,
    syscall: Option<&str>,
    foreign: bool,
) -> (Role, String) {
    let has = |f: &str| frames.contains(&f);
    let find = |pred: &dyn Fn(&str) -> bool| frames.iter().find(|n| pred(n)).map(|s| s.to_string());
    if has("runtime.sysmon") {
        return (Role::Sysmon, "runtime.sysmon".into());
    }
    if has("runtime.templateThread") {
        return (Role::TemplateThread, "runtime.templateThread".into());
    }
    if has("runtime.gcBgMarkWorker") {
        return (Role::GcWorker, "runtime.gcBgMarkWorker".into());
    }
    if let Some(f) = find(&|n| {
        matches!(
            n,
            "runtime.cgocall" | "runtime.asmcgocall" | "runtime.cgocallback" | "crosscall2"
        ) || n.starts_with("_cgo_")
    }) {
        return (Role::Cgo, f);
    }
    if foreign {
        return (Role::Cgo, "C frames outside the Go binary".into());
    }
    // An M locked to a goroutine parks in stoplockedm until that goroutine
    // can run (startlockedm is the other side: handing the P to it).
    if let Some(f) = find(&|n| matches!(n, "runtime.stoplockedm" | "runtime.LockOSThread")) {
        return (Role::Locked, f);
    }
    if !on_cpu
        && let Some(sc) = syscall
        && let Some(f) = find(&|n| SYSCALL_FRAMES.contains(&n))
    {
        return (Role::Syscall(sc.to_string()), f);
    }
    // The leaf runtime.epollwait is frameless: its caller (netpoll) may be
    // missing from a frame-pointer walk.
    if !on_cpu && let Some(f) = find(&|n| n == "runtime.netpoll" || n == "runtime.epollwait") {
        return (Role::Netpoller, f);
    }
    if !on_cpu && let Some(f) = find(&|n| matches!(n, "runtime.stopm" | "runtime.mPark")) {
        return (Role::IdleM, f);
    }
    if on_cpu {
        let f = frames
            .iter()
            .rev()
            .find(|n| !n.starts_with("runtime.") && !n.contains("[unknown]"))
            .or(frames.last())
            .map(|s| s.to_string())
            .unwrap_or_default();
        return (Role::RunningGo, f);
    }
    if let Some(f) = find(&|n| n.starts_with("main.")) {
        return (Role::RunningGo, f);
    }
    (
        Role::Unknown,
        frames.last().map(|s| s.to_string()).unwrap_or_default(),
    )
}

/// Why the runtime created a thread, from its creation stack.
pub fn creation_cause(frames: &[&str]) -> String {
    let has = |f: &str| frames.contains(&f);
    if has("runtime.handoffp") {
        "an M blocked in a syscall handed its P off (runtime.handoffp → startm → newm)".into()
    } else if has("runtime.startTemplateThread") || has("runtime.LockOSThread") {
        "LockOSThread needed the template thread (runtime.startTemplateThread → newm)".into()
    } else if has("runtime.cgocallback") || has("runtime.needm") {
        "a C thread called into Go (cgo callback)".into()
    } else if has("runtime.gcStart") || has("runtime.gcBgMarkStartWorkers") {
        "the garbage collector started (runtime.gcStart)".into()
    } else if has("runtime.wakep") {
        "runnable goroutines and an idle P (runtime.wakep → startm → newm)".into()
    } else if (has("runtime.main") || has("runtime.main.func1")) && has("runtime.newm") {
        "runtime start-up (runtime.main starts sysmon)".into()
    } else if has("runtime.newm") {
        let after = frames
            .iter()
            .rev()
            .skip_while(|n| **n != "runtime.newm")
            .nth(1)
            .copied()
            .unwrap_or("?");
        format!("runtime.newm called from {after}")
    } else if frames.iter().any(|n| {
        matches!(
            *n,
            "clone3" | "clone" | "__clone" | "__clone3" | "pthread_create"
        )
    }) {
        "pthread_create (cgo builds start Ms through libc; Go callers are hidden behind libc frames without frame pointers)".into()
    } else {
        "not created by the Go runtime (no runtime.newm in its creation stack)".into()
    }
}

/// What the session learned about the Go process.
#[derive(Debug, Clone, Default)]
pub struct GoFacts {
    pub go_version: String,
    pub module: String,
    pub gomaxprocs: u32,
    pub gomaxprocs_source: String,
    pub cgo: bool,
    /// Path of the binary (to tell Go frames from C frames).
    pub module_file: String,
}

/// Fills `profile.runtime` and every thread's `role`.
pub fn annotate(p: &mut Profile, facts: &GoFacts) {
    let hz = p.sampling.freq_hz.max(1);
    // tid -> role -> (ns, evidence)
    let mut per: BTreeMap<u32, BTreeMap<Role, (u64, Vec<String>)>> = BTreeMap::new();
    let names = |p: &Profile, stack: u32| -> Vec<String> {
        p.stack_frames(stack)
            .iter()
            .filter(|f| !f.kernel)
            .map(|f| f.name.clone())
            .collect()
    };
    let foreign = |p: &Profile, stack: u32| -> bool {
        // A user leaf in a library while the binary links C code.
        facts.cgo
            && p.stack_frames(stack)
                .iter()
                .rev()
                .find(|f| !f.kernel)
                .is_some_and(|f| {
                    !f.module.is_empty()
                        && f.module != facts.module_file
                        && !f.name.starts_with("runtime.")
                })
    };
    let mut handoff = false;
    for s in &p.oncpu {
        let n = names(p, s.stack);
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        handoff |= refs.contains(&"runtime.handoffp");
        let (role, ev) = classify(&refs, true, None, foreign(p, s.stack));
        let e = per.entry(s.tid).or_default().entry(role).or_default();
        e.0 += s.count * 1_000_000_000 / hz;
        if !ev.is_empty() && !e.1.contains(&ev) {
            e.1.push(ev);
        }
    }
    for s in &p.offcpu {
        let n = names(p, s.stack);
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        handoff |=
            refs.contains(&"runtime.handoffp") || refs.contains(&"runtime.entersyscallblock");
        // Preempted: it was running whatever its stack shows.
        let runnable = s.reason == "runnable";
        let (role, ev) = classify(&refs, runnable, s.syscall.as_deref(), foreign(p, s.stack));
        let e = per.entry(s.tid).or_default().entry(role).or_default();
        e.0 += s.total_ns;
        if !ev.is_empty() && !e.1.contains(&ev) {
            e.1.push(ev);
        }
    }
    let mut created = Vec::new();
    for t in &p.threads {
        if let (Some(c), Some(_)) = (t.creation_stack, t.created_ns) {
            let n = names(p, c);
            let refs: Vec<&str> = n.iter().map(String::as_str).collect();
            handoff |= refs.contains(&"runtime.handoffp");
            created.push(CreatedThread {
                tid: t.tid,
                cause: creation_cause(&refs),
            });
        }
    }
    let pid = p.target.pid;
    for t in &mut p.threads {
        let roles = per.remove(&t.tid).unwrap_or_default();
        let total: u64 = roles.values().map(|v| v.0).sum();
        // Shares under 1% are noise (a single sample, a stale frame).
        let mut shares: Vec<RoleShare> = roles
            .into_iter()
            .filter(|(_, (ns, _))| *ns > 0 && *ns * 100 >= total)
            .map(|(role, (ns, evidence))| RoleShare {
                role: role.label(),
                ns,
                share: if total == 0 {
                    0.0
                } else {
                    ns as f64 / total as f64
                },
                evidence,
            })
            .collect();
        shares.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.role.cmp(&b.role)));
        let dominant = shares
            .first()
            .map(|s| s.role.clone())
            .unwrap_or_else(|| Role::Unknown.label());
        t.role = Some(ThreadRole {
            main_thread: t.tid == pid,
            dominant,
            shares,
        });
    }
    let explanation = explain(p, facts, handoff, &created);
    p.runtime = Some(Runtime {
        kind: "go".into(),
        go_version: facts.go_version.clone(),
        module: facts.module.clone(),
        gomaxprocs: facts.gomaxprocs,
        gomaxprocs_source: facts.gomaxprocs_source.clone(),
        cgo: facts.cgo,
        handoff_seen: handoff,
        created,
        explanation,
    });
}

/// The role (as a [`Role`]) a label came from, for counting.
fn role_of_label(label: &str) -> Role {
    for r in [
        Role::Sysmon,
        Role::TemplateThread,
        Role::GcWorker,
        Role::Cgo,
        Role::Locked,
        Role::Netpoller,
        Role::IdleM,
        Role::RunningGo,
    ] {
        if r.label() == label {
            return r;
        }
    }
    label
        .strip_prefix("M blocked in syscall ")
        .and_then(|s| s.strip_suffix("(2)"))
        .map(|s| Role::Syscall(s.to_string()))
        .unwrap_or(Role::Unknown)
}

fn explain(p: &Profile, f: &GoFacts, handoff: bool, created: &[CreatedThread]) -> String {
    let mut counts: BTreeMap<Role, Vec<u32>> = BTreeMap::new();
    let mut m0 = None;
    for t in &p.threads {
        let role = t
            .role
            .as_ref()
            .map(|r| role_of_label(&r.dominant))
            .unwrap_or(Role::Unknown);
        if t.tid == p.target.pid {
            m0 = Some(role.clone());
        }
        counts.entry(role).or_default().push(t.tid);
    }
    let mut parts = Vec::new();
    for (role, tids) in &counts {
        let n = tids.len();
        let mut s = format!("{n} {}", role.count_label(n));
        if let Role::Syscall(_) = role {
            let blocked: u64 = p
                .offcpu
                .iter()
                .filter(|o| tids.contains(&o.tid) && o.syscall.is_some())
                .filter(|o| role.label().contains(o.syscall.as_deref().unwrap_or("")))
                .map(|o| o.total_ns)
                .max()
                .unwrap_or(0);
            s.push_str(&format!(" for up to {}", ns(blocked)));
            if handoff {
                s.push_str(" (the runtime handed the P off)");
            }
        }
        if m0.as_ref() == Some(role) {
            s.push_str(" (including M0, the main thread)");
        }
        parts.push(s);
    }
    let cgo = if f.cgo {
        "links C code (cgo)"
    } else {
        "no cgo"
    };
    let mut out = format!(
        "Go program ({}, module {}), GOMAXPROCS={} ({}), {}. {} OS threads: {}.",
        f.go_version,
        if f.module.is_empty() { "?" } else { &f.module },
        f.gomaxprocs,
        f.gomaxprocs_source,
        cgo,
        p.threads.len(),
        parts.join(", ")
    );
    if f.gomaxprocs > 0 && (p.threads.len() as u32) > f.gomaxprocs {
        out.push_str(
            " More threads than GOMAXPROCS: GOMAXPROCS limits the threads running Go code at once, \
             not the threads: sysmon runs without a P, and Ms blocked in syscalls or parked idle keep \
             their threads.",
        );
    }
    if !created.is_empty() {
        let mut by_cause: BTreeMap<&str, usize> = BTreeMap::new();
        for c in created {
            *by_cause.entry(c.cause.as_str()).or_default() += 1;
        }
        let causes: Vec<String> = by_cause
            .iter()
            .map(|(c, n)| format!("{n} because {c}"))
            .collect();
        out.push_str(&format!(
            " {} of these threads were created during the recording: {}.",
            created.len(),
            causes.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_runtime_stacks() {
        let c = |f: &[&str], on: bool, sc: Option<&str>| classify(f, on, sc, false).0;
        assert_eq!(
            c(
                &["runtime.mstart", "runtime.sysmon", "runtime.usleep"],
                false,
                Some("nanosleep")
            ),
            Role::Sysmon
        );
        assert_eq!(
            c(
                &[
                    "runtime.mstart",
                    "runtime.schedule",
                    "runtime.findRunnable",
                    "runtime.stopm",
                    "runtime.futexsleep"
                ],
                false,
                Some("futex")
            ),
            Role::IdleM
        );
        assert_eq!(
            c(
                &[
                    "runtime.goexit",
                    "main.blockInRead",
                    "syscall.read",
                    "syscall.Syscall",
                    "syscall.RawSyscall6"
                ],
                false,
                Some("read")
            ),
            Role::Syscall("read".into())
        );
        assert_eq!(
            c(
                &[
                    "runtime.findRunnable",
                    "runtime.netpoll",
                    "runtime.epollwait"
                ],
                false,
                Some("epoll_pwait")
            ),
            Role::Netpoller
        );
        assert_eq!(
            c(&["runtime.gcBgMarkWorker", "runtime.gcDrain"], true, None),
            Role::GcWorker
        );
        assert_eq!(
            c(&["runtime.main", "main.main", "main.burnGo"], true, None),
            Role::RunningGo
        );
        assert_eq!(
            c(
                &["main.main", "runtime.cgocall", "runtime.asmcgocall"],
                false,
                Some("nanosleep")
            ),
            Role::Cgo
        );
        assert_eq!(
            c(
                &["runtime.schedule", "runtime.stoplockedm"],
                false,
                Some("futex")
            ),
            Role::Locked
        );
        assert_eq!(
            c(
                &["runtime.templateThread", "runtime.notesleep"],
                false,
                Some("futex")
            ),
            Role::TemplateThread
        );
        assert_eq!(c(&["x"], false, None), Role::Unknown);
        assert_eq!(
            classify(&["main.f", "runtime.asmcgocall"], true, None, false).1,
            "runtime.asmcgocall"
        );
        for r in [
            Role::Sysmon,
            Role::IdleM,
            Role::Syscall("read".into()),
            Role::Netpoller,
            Role::GcWorker,
        ] {
            assert_eq!(role_of_label(&r.label()), r);
        }
    }

    #[test]
    fn creation_causes() {
        assert!(
            creation_cause(&[
                "runtime.sysmon",
                "runtime.retake",
                "runtime.handoffp",
                "runtime.startm",
                "runtime.newm"
            ])
            .contains("handed its P off")
        );
        assert!(
            creation_cause(&["runtime.main", "runtime.main.func1", "runtime.newm"])
                .contains("start-up")
        );
        assert!(
            creation_cause(&[
                "runtime.schedule",
                "runtime.wakep",
                "runtime.startm",
                "runtime.newm"
            ])
            .contains("wakep")
        );
        assert!(
            creation_cause(&["main.main", "pthread_create", "clone3"]).contains("pthread_create")
        );
        assert!(creation_cause(&["main.main"]).contains("not created by the Go runtime"));
    }
}
