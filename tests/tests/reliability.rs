//! Faults and hostile input (issue "trustworthy"): signals, SIGKILL, a
//! dying or stopped target, exec, full maps, two profilers at once, lost
//! output directories, zombies, setuid, sudo ownership. As root.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    process::Command,
    time::{Duration, Instant},
};

use profiler::profile::Profile;
use profiler_tests::{
    Fixture, Profiler, assert_near, profiler_bin, require_root, run_profiler, scratch,
};

const LIFECYCLE: &str = env!("CARGO_BIN_EXE_lifecycle");
const MS: u64 = 1_000_000;

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn load(dir: &std::path::Path) -> Profile {
    serde_json::from_slice(&fs::read(dir.join("profile.json")).expect("profile.json"))
        .expect("parses")
}

#[test]
fn sigint_stops_writes_everything_and_exits_0() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("sigint");
    let prof = Profiler::attach(fx.pid(), &out, &[]);
    std::thread::sleep(Duration::from_millis(300));
    signal(prof.child.id(), libc::SIGINT);
    let res = prof.finish(Duration::from_secs(20));
    assert_eq!(res.status.code(), Some(0), "{res:?}");
    let p = load(&out);
    assert_eq!(p.window.end_reason, "signal");
    for f in [
        "report.txt",
        "oncpu.svg",
        "offcpu.svg",
        "oncpu.folded",
        "offcpu.folded",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn a_second_sigint_aborts_promptly_leaving_only_complete_files() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("sigint2");
    let prof = Profiler::attach(fx.pid(), &out, &[]);
    let t = Instant::now();
    signal(prof.child.id(), libc::SIGINT);
    signal(prof.child.id(), libc::SIGINT);
    let res = prof.finish(Duration::from_secs(20));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(matches!(res.status.code(), Some(0) | Some(130)), "{res:?}");
    if out.join("profile.json").exists() {
        load(&out); // complete, or not there at all
    }
}

/// BPF object ids held by `pid`, from its fdinfo.
fn bpf_ids(pid: u32) -> BTreeSet<(String, u32)> {
    let mut ids = BTreeSet::new();
    for e in fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let Ok(s) = fs::read_to_string(e.path()) else {
            continue;
        };
        for l in s.lines() {
            for key in ["prog_id:", "map_id:"] {
                if let Some(v) = l.strip_prefix(key).and_then(|v| v.trim().parse().ok()) {
                    ids.insert((key.to_string(), v));
                }
            }
        }
    }
    ids
}

#[test]
fn sigkill_leaves_no_programs_or_maps_in_the_kernel() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let mut prof = Profiler::start(&["attach", "-p", &fx.pid().to_string()]);
    prof.wait_recording(Duration::from_secs(60));
    let ids = bpf_ids(prof.child.id());
    assert!(
        ids.iter().filter(|(k, _)| k == "prog_id:").count() >= 6,
        "{ids:?}"
    );
    signal(prof.child.id(), libc::SIGKILL);
    let _ = prof.finish(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let progs: BTreeSet<u32> = aya::programs::loaded_programs()
            .filter_map(|p| p.ok().map(|p| p.id()))
            .collect();
        let maps: BTreeSet<u32> = aya::maps::loaded_maps()
            .filter_map(|m| m.ok().map(|m| m.id()))
            .collect();
        let left: Vec<_> = ids
            .iter()
            .filter(|(k, id)| {
                if k == "prog_id:" {
                    progs.contains(id)
                } else {
                    maps.contains(id)
                }
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still in the kernel after SIGKILL: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stopped_target_is_reported_as_stopped() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("sigstop");
    let prof = Profiler::attach(fx.pid(), &out, &["-d", "1500ms"]);
    std::thread::sleep(Duration::from_millis(200));
    signal(fx.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(400));
    signal(fx.pid(), libc::SIGCONT);
    let res = prof.finish(Duration::from_secs(20));
    assert!(res.status.success(), "{res:?}");
    let p = load(&out);
    let main = p.threads.iter().find(|t| t.tid == fx.pid()).unwrap();
    assert_near(
        "main thread stopped",
        main.stopped_ns,
        400 * MS,
        0.15,
        20 * MS,
    );
    assert!(
        fs::read_to_string(out.join("report.txt"))
            .unwrap()
            .contains("stopped")
    );
}

/// `profiler record -- sh -c SCRIPT` into scratch dir `name`; its profile.
fn record_sh(name: &str, script: &str) -> Profile {
    let out = scratch(name);
    let res = run_profiler(&[
        "record",
        "-q",
        "-o",
        out.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert!(res.status.success(), "{res:?}");
    load(&out)
}

/// The rescue directory an exit-6 error message names.
fn rescue_dir_named(stderr: &str) -> &str {
    stderr
        .split("saved in ")
        .nth(1)
        .and_then(|s| s.split(" instead").next())
        .unwrap_or_else(|| panic!("stderr names no rescue dir: {stderr}"))
}

#[test]
fn exec_is_followed_and_reported() {
    require_root();
    let p = record_sh("exec", "exec sleep 0.3");
    assert!(
        p.execs.iter().any(|e| e.filename.ends_with("/sleep")),
        "{:?}",
        p.execs
    );
    assert_eq!(p.target.comm, "sleep");
    let t = p.threads.iter().find(|t| t.tid == p.target.pid).unwrap();
    assert!(
        t.names.contains(&"sh".to_string()) && t.names.contains(&"sleep".to_string()),
        "{:?}",
        t.names
    );
}

#[test]
fn child_processes_are_followed_through_the_bystander_filter() {
    require_root();
    // `sh` forks two `sleep` processes: new thread-group ids, which the
    // kernel side lets through its bystander filter when it starts
    // tracing them. Missed, their switches would not be seen at all.
    let p = record_sh("children", "sleep 0.3 & sleep 0.2; wait");
    let sleeps: Vec<_> = p
        .threads
        .iter()
        .filter(|t| t.name == "sleep" && t.pid != p.target.pid)
        .collect();
    assert_eq!(sleeps.len(), 2, "{:?}", p.threads);
    let mut slept: Vec<u64> = sleeps.iter().map(|t| t.sleeping_ns).collect();
    slept.sort();
    for (got, want) in slept.iter().zip([200 * MS, 300 * MS]) {
        assert!(
            *got >= want - 20 * MS && *got <= want + 50 * MS,
            "slept {got} ns, expected about {want}: {:?}",
            sleeps
        );
    }
    for t in &sleeps {
        assert!(t.voluntary_switches >= 1, "{t:?}");
        assert!(
            t.syscalls
                .iter()
                .any(|s| s.name == "clock_nanosleep" || s.name == "nanosleep"),
            "{t:?}"
        );
    }
}

#[test]
fn a_full_thread_map_is_counted_and_flagged() {
    require_root();
    let mut fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("mapfull");
    // 4 threads exist; the 2 ephemeral ones do not fit.
    let prof = Profiler::attach(fx.pid(), &out, &["-d", "1500ms", "--max-threads", "4"]);
    fx.send("go");
    fx.expect_line("done", Duration::from_secs(10));
    let res = prof.finish(Duration::from_secs(20));
    assert!(res.status.success(), "{res:?}");
    let p = load(&out);
    assert_eq!(p.lost.threads_map_full, 2, "{:?}", p.lost);
    // Plus, under load, a rare failed stack walk (counted as such).
    assert_eq!(p.totals.lost_events - p.lost.stacks, 2, "{:?}", p.lost);
    let report = fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(
        report
            .lines()
            .take(4)
            .any(|l| l.contains("WARNING") && l.contains("2 threads not traced, thread map full")),
        "{report}"
    );
}

#[test]
fn two_profilers_on_one_target_both_work() {
    require_root();
    let mut fx = Fixture::start(LIFECYCLE, &[]);
    let (a, b) = (scratch("two-a"), scratch("two-b"));
    let mut pa = Profiler::start(&[
        "attach",
        "-p",
        &fx.pid().to_string(),
        "-d",
        "2s",
        "-o",
        a.to_str().unwrap(),
    ]);
    let mut pb = Profiler::start(&[
        "attach",
        "-p",
        &fx.pid().to_string(),
        "-d",
        "2s",
        "-o",
        b.to_str().unwrap(),
    ]);
    pa.wait_recording(Duration::from_secs(60));
    pb.wait_recording(Duration::from_secs(60));
    fx.send("go");
    fx.expect_line("done", Duration::from_secs(10));
    assert!(pa.finish(Duration::from_secs(20)).status.success());
    assert!(pb.finish(Duration::from_secs(20)).status.success());
    let (pa, pb) = (load(&a), load(&b));
    for p in [&pa, &pb] {
        assert_eq!(p.totals.threads_seen, 6);
        assert_eq!(p.totals.lost_events, p.lost.stacks, "{:?}", p.lost);
    }
    let sw = |p: &Profile, n: &str| {
        p.threads
            .iter()
            .find(|t| t.name == n)
            .map(|t| t.voluntary_switches)
            .unwrap()
    };
    for n in ["sleeper", "reader", "burner"] {
        assert_eq!(sw(&pa, n), sw(&pb, n), "{n}");
    }
}

#[test]
fn a_removed_output_directory_sends_the_profile_to_a_rescue_directory() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("removed").join("out");
    let prof = Profiler::attach(fx.pid(), &out, &["-d", "1s"]);
    fs::remove_dir_all(&out).unwrap();
    let res = prof.finish(Duration::from_secs(20));
    assert_eq!(res.status.code(), Some(6), "{res:?}");
    let rescue = rescue_dir_named(&res.stderr);
    let p = load(std::path::Path::new(rescue));
    assert_eq!(p.target.pid, fx.pid());
    fs::remove_dir_all(rescue).unwrap();
}

/// A tmpfs of `kib` KiB mounted at `dir`, unmounted when dropped.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: std::path::PathBuf, kib: u32) -> SmallFs {
        fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "mounting a {kib} KiB tmpfs at {}",
            dir.display()
        );
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_sends_the_profile_to_a_rescue_directory() {
    require_root();
    // A real ENOSPC. 8 KiB: the first file, profile.json, fails while it
    // is streamed to disk; 32 KiB: a later file fails after some were
    // written. Either way everything goes to a rescue directory.
    for (kib, failing) in [(8, Some("profile.json")), (32, None)] {
        let small = SmallFs::mount(scratch(&format!("diskfull{kib}")).join("fs"), kib);
        let out = small.0.join("out");
        let fx = Fixture::start(LIFECYCLE, &[]);
        let prof = Profiler::attach(fx.pid(), &out, &["-d", "1s"]);
        let res = prof.finish(Duration::from_secs(20));
        assert_eq!(res.status.code(), Some(6), "{kib} KiB: {res:?}");
        assert!(
            res.stderr.contains("No space left on device"),
            "{}",
            res.stderr
        );
        if let Some(f) = failing {
            assert!(
                res.stderr
                    .contains(&format!("writing {}/{f}", out.display())),
                "{}",
                res.stderr
            );
        }
        let rescue = rescue_dir_named(&res.stderr);
        let p = load(std::path::Path::new(rescue));
        assert_eq!(p.target.pid, fx.pid());
        assert!(std::path::Path::new(rescue).join("report.txt").exists());
        fs::remove_dir_all(rescue).unwrap();
        // No half-written temporary file is left behind on the full disk.
        let left: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{kib} KiB: {left:?}");
    }
}

#[test]
fn a_zombie_is_refused() {
    require_root();
    // sh forks a child that exits at once, then becomes sleep, which never
    // reaps it.
    let mut sh = Command::new("sh")
        .args(["-c", "sleep 0 & echo $!; exec sleep 5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sh.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let zpid = line.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fs::read_to_string(format!("/proc/{zpid}/stat"))
        .unwrap_or_default()
        .contains(") Z")
    {
        assert!(Instant::now() < deadline, "no zombie");
        std::thread::sleep(Duration::from_millis(20));
    }
    let res = run_profiler(&["attach", "-p", &zpid, "-d", "1s"]);
    let _ = sh.kill();
    let _ = sh.wait();
    assert_eq!(res.status.code(), Some(3), "{res:?}");
    assert!(res.stderr.contains("zombie"), "{}", res.stderr);
}

#[test]
fn setuid_is_refused() {
    require_root();
    let dir = scratch("setuid");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("profiler");
    fs::copy(profiler_bin(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).unwrap();
    let mut parent = dir.parent();
    while let Some(p) = parent {
        // Let nobody reach the binary.
        let m = fs::metadata(p).unwrap().permissions().mode();
        if m & 0o001 == 0 {
            fs::set_permissions(p, fs::Permissions::from_mode(m | 0o001)).unwrap();
        }
        parent = p.parent();
    }
    use std::os::unix::process::CommandExt;
    let out = Command::new(&bin)
        .args(["attach", "-p", "1", "-d", "1s"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("refuses to run setuid"), "{stderr}");
}

#[test]
fn files_belong_to_the_sudo_user() {
    require_root();
    let src = scratch("sudo-src");
    let res = run_profiler(&["record", "-q", "-o", src.to_str().unwrap(), "--", "true"]);
    assert!(res.status.success(), "{res:?}");
    let out = scratch("sudo-out").join("new");
    let status = Command::new(profiler_bin())
        .args([
            "report",
            src.join("profile.json").to_str().unwrap(),
            "-q",
            "-o",
            out.to_str().unwrap(),
        ])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for p in [out.clone(), out.join("profile.json"), out.join("oncpu.svg")] {
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
    }
    assert_eq!(
        fs::metadata(out.join("profile.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The directory now holds a profile: not overwritten without --force.
    let res = run_profiler(&[
        "report",
        src.join("profile.json").to_str().unwrap(),
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(6), "{res:?}");
    assert!(res.stderr.contains("--force"));
    let res = run_profiler(&[
        "report",
        src.join("profile.json").to_str().unwrap(),
        "-q",
        "--force",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{res:?}");
}

#[test]
fn a_thread_creation_storm_is_recorded_or_its_losses_counted() {
    require_root();
    let out = scratch("storm");
    let res = run_profiler(&[
        "record",
        "-o",
        out.to_str().unwrap(),
        "--",
        env!("CARGO_BIN_EXE_stacks"),
        "storm",
        "1",
    ]);
    assert!(res.status.success(), "{res:?}");
    let created: u64 = res
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("created "))
        .and_then(|n| n.trim().parse().ok())
        .expect("fixture reports its count");
    assert!(
        created >= 1000,
        "storm too small to mean anything: {created} threads"
    );
    let p = load(&out);
    // Every thread the fixture made (plus its 4 spawners) is in the profile,
    // or counted as lost: nothing silent.
    let lost = p.lost.threads_map_full + p.lost.ringbuf_full;
    assert!(
        p.totals.threads_created + lost >= created + 4,
        "created {created}+4, profile has {} (+{lost} lost)",
        p.totals.threads_created
    );
    assert!(
        p.totals.threads_exited >= p.totals.threads_created,
        "every created thread exited"
    );
    if lost > 0 {
        assert!(
            fs::read_to_string(out.join("report.txt"))
                .unwrap()
                .contains("WARNING")
        );
    }
}
