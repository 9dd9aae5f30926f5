//! Durable state: a replay killed with SIGKILL at any point and started again with the same
//! arguments ends with exactly the alerts of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const UNTIL: &str = "2026-04-06T00:00:00+02:00";

/// A config that checkpoints often, so kills land between checkpoints.
const CONFIG: &str = r#"
[organisation]
name = "Exempel kommun"
domains = ["exempel.se"]
[reading]
webmail = [{ host = "webmail.exempel.se", path_prefix = "/owa" }]
[classification]
approved_encryption = ["smime", "pgp", "gateway:sefos"]
[pipeline]
batch_size = 256
[state]
checkpoint_records = 3000
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let events = std::fs::File::create(dir.path().join("events.jsonl")).unwrap();
        let status = Command::new(BIN)
            .args(["generate", "--mailboxes", "200", "--days", "21", "--seed", "7", "--start", "2026-03-16"])
            .arg("--roster-out")
            .arg(dir.path().join("roster.csv"))
            .stdout(events)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::write(dir.path().join("brevvakt.toml"), CONFIG).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The replay command writing to `out`, checkpointing in `state`.
    fn replay(&self, out: &str, state: &str) -> Command {
        let mut c = Command::new(BIN);
        c.args(["replay", "--quiet", "--workers", "2", "--until", UNTIL, "--config"])
            .arg(self.path("brevvakt.toml"))
            .arg("--roster")
            .arg(self.path("roster.csv"))
            .arg("--out")
            .arg(self.path(out))
            .arg("--dead-letter")
            .arg(self.path(&format!("{out}.dead")))
            .arg("--state-dir")
            .arg(self.path(state))
            .arg(self.path("events.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_replay_killed_at_ten_points_and_restarted_loses_no_alert_and_duplicates_none() {
    let f = Fixture::new();
    let started = Instant::now();
    assert!(f.replay("reference.jsonl", "reference-state").status().unwrap().success());
    let full_run = started.elapsed();
    let reference = std::fs::read(f.path("reference.jsonl")).unwrap();
    assert!(ids(&f.path("reference.jsonl")).len() > 40);
    let mut interrupted = 0;
    for i in 0..10u32 {
        let (out, state) = (format!("run{i}.jsonl"), format!("state{i}"));
        let mut child = f.replay(&out, &state).spawn().unwrap();
        std::thread::sleep(full_run.mul_f64((f64::from(i) + 0.5) / 10.0));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(f.replay(&out, &state).status().unwrap().success(), "restart {i} failed");
        assert_eq!(std::fs::read(f.path(&out)).unwrap(), reference, "run {i}: alerts differ from the uninterrupted run");
        assert_eq!(std::fs::read(f.path(&format!("{out}.dead"))).unwrap(), std::fs::read(f.path("reference.jsonl.dead")).unwrap());
    }
    assert!(interrupted >= 5, "most kills must land while the replay runs (got {interrupted})");
}

#[test]
fn a_finished_replay_started_again_changes_nothing() {
    let f = Fixture::new();
    assert!(f.replay("out.jsonl", "state").status().unwrap().success());
    let first = std::fs::read(f.path("out.jsonl")).unwrap();
    assert!(f.replay("out.jsonl", "state").status().unwrap().success());
    assert_eq!(std::fs::read(f.path("out.jsonl")).unwrap(), first);
}

#[test]
fn a_checkpoint_of_other_inputs_is_refused() {
    let f = Fixture::new();
    assert!(f.replay("out.jsonl", "state").status().unwrap().success());
    std::fs::copy(f.path("events.jsonl"), f.path("other.jsonl")).unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--quiet", "--roster"])
        .arg(f.path("roster.csv"))
        .arg("--state-dir")
        .arg(f.path("state"))
        .arg(f.path("other.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fresh --state-dir"), "{}", String::from_utf8_lossy(&out.stderr));
}
