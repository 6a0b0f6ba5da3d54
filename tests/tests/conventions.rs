//! CLI conventions: help with examples, shell completions, man page.

use profiler_tests::run_profiler;

#[test]
fn help_shows_examples_for_every_command() {
    for (cmd, needle) in [
        ("attach", "profiler attach --pid"),
        ("record", "profiler record"),
        ("report", "profiler report"),
        ("diff", "profiler diff"),
    ] {
        let res = run_profiler(&[cmd, "--help"]);
        assert_eq!(res.status.code(), Some(0), "{cmd}: {res:?}");
        assert!(
            res.stdout.contains("Example"),
            "{cmd} --help has no examples"
        );
        assert!(res.stdout.contains(needle), "{cmd} --help lacks {needle:?}");
    }
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let bash = run_profiler(&["completions", "bash"]);
    assert!(bash.status.success());
    for w in ["attach", "record", "report", "diff", "--max-increase"] {
        assert!(bash.stdout.contains(w), "bash completion lacks {w}");
    }
    let zsh = run_profiler(&["completions", "zsh"]);
    assert!(zsh.status.success() && zsh.stdout.contains("#compdef profiler"));
    let bad = run_profiler(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    let man = run_profiler(&["man"]);
    assert!(man.status.success());
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH profiler"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}
