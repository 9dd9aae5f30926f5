//! The deployment files under deploy/systemd, deploy/container, deploy/kubernetes and
//! deploy/compose: they parse, they refer only to metrics and endpoints the binary
//! serves, the container builds with the README's release command, and the example
//! configurations pass `brevvakt check-config`. Nothing here needs a container engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exposed, metrics_exposition as exposition};
use serde_norway::Value as Yaml;

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const RELEASE_BUILD: &str = "cargo build --release --locked";
const ENDPOINTS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file of this issue (the existing deploy/ files are tested by deploy_files.rs).
fn deploy_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in ["deploy/systemd", "deploy/container", "deploy/kubernetes", "deploy/compose"] {
        walk(&root().join(d), &mut out);
    }
    let mut rel: Vec<String> = out.iter().map(|p| p.strip_prefix(root()).unwrap().display().to_string()).collect();
    rel.sort();
    rel
}

fn yaml_files() -> Vec<String> {
    deploy_files().into_iter().filter(|f| f.ends_with(".yaml") || f.ends_with(".yml")).collect()
}

/// Parses every document of a (multi-document) YAML file.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v: Yaml = serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
        if !v.is_null() {
            docs.push(v);
        }
    }
    assert!(!docs.is_empty(), "{rel} is empty");
    docs
}

// ---- metrics and endpoints ------------------------------------------------------------



/// Every `brevvakt_…` token of a text.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("brevvakt_") {
        let start = i + at;
        let mut end = start + "brevvakt_".len();
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_') {
            end += 1;
        }
        let boundary = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        if boundary && end > start + "brevvakt_".len() {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// HTTP paths a YAML document points at: `path:` under `httpGet`, `metrics_path`, and
/// `prometheus.io/path`.
fn yaml_paths(v: &Yaml, parent_key: &str, out: &mut Vec<String>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, val) in m {
                let key = k.as_str().unwrap_or("");
                if let Some(s) = val.as_str() {
                    if (key == "path" && parent_key == "httpGet") || key == "metrics_path" || key == "prometheus.io/path" {
                        out.push(s.to_string());
                    }
                }
                yaml_paths(val, key, out);
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|x| yaml_paths(x, parent_key, out)),
        _ => {}
    }
}

/// Every place where a deploy file names an endpoint of the binary.
fn referenced_endpoints() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in yaml_files() {
        let mut paths = Vec::new();
        for d in yaml_docs(&f) {
            yaml_paths(&d, "", &mut paths);
        }
        out.entry(f).or_default().extend(paths);
    }
    for f in deploy_files() {
        let text = read(&f);
        for e in ENDPOINTS {
            if text.contains(e) {
                out.entry(f.clone()).or_default().insert(e.to_string());
            }
        }
    }
    out
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Kills the child when dropped, so a failing assertion leaves no process behind.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_metric_the_deploy_files_name_is_exposed() {
    let names = exposed(&exposition());
    let mut checked = 0;
    for f in deploy_files() {
        let refs = referenced_metrics(&read(&f));
        let missing: Vec<_> = refs.difference(&names).collect();
        assert!(missing.is_empty(), "{f} names metrics the binary does not expose: {missing:?}");
        checked += refs.len();
    }
    // The files that carry PromQL are the existing dashboard and rules, which compose
    // mounts: check those mounts point at real files whose metrics are exposed too.
    for f in ["deploy/prometheus/brevvakt-rules.yml", "deploy/grafana/brevvakt-dashboard.json"] {
        let refs = referenced_metrics(&read(f));
        assert!(!refs.is_empty() && refs.is_subset(&names), "{f}: {:?}", refs.difference(&names).collect::<Vec<_>>());
        checked += refs.len();
    }
    assert!(checked > 0);
}

#[test]
fn every_endpoint_the_deploy_files_name_is_served_by_the_binary() {
    let refs = referenced_endpoints();
    let all: BTreeSet<&String> = refs.values().flatten().collect();
    for p in &all {
        assert!(ENDPOINTS.contains(&p.as_str()), "unknown endpoint {p} in {:?}", refs.iter().filter(|(_, v)| v.contains(*p)).map(|(k, _)| k).collect::<Vec<_>>());
    }
    for e in ENDPOINTS {
        assert!(all.iter().any(|p| *p == e), "no deploy file uses {e}");
    }
    let sts: Vec<String> = refs["deploy/kubernetes/statefulset.yaml"].iter().cloned().collect();
    assert!(sts.contains(&"/readyz".to_string()) && sts.contains(&"/healthz".to_string()), "{sts:?}");

    // Serve them from the real binary: a replay of the sample with the endpoint on an
    // ephemeral port, kept up by --linger.
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["replay", "--quiet", "--metrics-addr", "127.0.0.1:0", "--linger", "30", "--roster"])
        .arg(root().join("samples/roster.csv"))
        .arg("--out")
        .arg(dir.path().join("alerts.jsonl"))
        .arg("--dead-letter")
        .arg(dir.path().join("dead.jsonl"))
        .arg(root().join("samples/week-2026-06-15.jsonl.zst"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("metrics listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(60)).expect("the binary logs `metrics listening on`").parse().unwrap();
    // Wait for the replay to finish (the metrics then hold its figures).
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (status, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "/metrics");
        if body.contains("brevvakt_alerts_total{") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("brevvakt_build_info"), "{body}");
    assert_eq!(http_get(addr, "/healthz").0, 200);
    let (ready, why) = http_get(addr, "/readyz");
    assert!(ready == 200 || ready == 503, "/readyz answered {ready}: {why}");
    assert_eq!(http_get(addr, "/no-such-endpoint").0, 404, "the endpoint check can tell a missing path");
}

// ---- systemd --------------------------------------------------------------------------

/// A unit file as `section → key → values` (keys may repeat; an empty assignment resets).
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut pending = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = if pending.is_empty() { raw.trim().to_string() } else { std::mem::take(&mut pending) + " " + raw.trim() };
        if line.ends_with('\\') {
            pending = line.trim_end_matches('\\').to_string();
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            assert!(line.ends_with(']'), "line {}: bad section header {line:?}", n + 1);
            let name = line[1..line.len() - 1].to_string();
            assert!(!out.contains_key(&name), "section [{name}] twice");
            out.insert(name.clone(), BTreeMap::new());
            section = Some(name);
            continue;
        }
        let sec = section.as_ref().unwrap_or_else(|| panic!("line {}: assignment before any section", n + 1));
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("line {}: not key=value: {line:?}", n + 1));
        let k = k.trim();
        assert!(!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()), "line {}: bad key {k:?}", n + 1);
        out.get_mut(sec).unwrap().entry(k.to_string()).or_default().push(v.trim().to_string());
    }
    assert!(pending.is_empty(), "file ends in a continuation");
    out
}

#[test]
fn the_systemd_unit_parses_and_is_hardened() {
    let text = read("deploy/systemd/brevvakt.service");
    let unit = parse_unit(&text);
    for s in ["Unit", "Service", "Install"] {
        assert!(unit.contains_key(s), "[{s}] missing");
    }
    let svc = &unit["Service"];
    let one = |k: &str| -> String { svc.get(k).and_then(|v| v.last()).cloned().unwrap_or_else(|| panic!("Service.{k} missing")) };
    for (k, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("StateDirectory", "brevvakt"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(k), want, "Service.{k}");
    }
    assert!(svc.get("DynamicUser").and_then(|v| v.last()).is_some_and(|v| v == "yes") || svc.contains_key("User"), "DynamicUser= or a dedicated User=");
    assert_ne!(svc.get("User").and_then(|v| v.last()).map(String::as_str), Some("root"));
    // ExecStart runs `run` with the config in /etc/brevvakt and the state directory.
    let exec = one("ExecStart");
    assert!(exec.contains(" run ") && exec.contains("--config /etc/brevvakt/brevvakt.toml") && exec.contains("--state-dir /var/lib/brevvakt"), "{exec}");
    // Every flag the unit passes to `run` exists.
    let help = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in exec.split_whitespace().filter(|w| w.starts_with("--") && *w != "--log-format") {
        assert!(help.contains(flag), "`brevvakt run` has no {flag}");
    }
    // Stop timeout covers the default shutdown_timeout (25 s).
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(stop > 25, "TimeoutStopSec={stop}");

    // systemd's own verifier, where it is installed (it checks directives and that the
    // executables exist, so point them at the test binary).
    let has_analyze = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemd-analyze").is_file()));
    if has_analyze {
        let dir = tempfile::tempdir().unwrap();
        let unit_path = dir.path().join("brevvakt.service");
        std::fs::write(&unit_path, text.replace("/usr/local/bin/brevvakt", BIN)).unwrap();
        let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&unit_path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    } else {
        eprintln!("systemd-analyze not on PATH: checked the INI structure only");
    }
}

// ---- example configurations -----------------------------------------------------------

fn check_config(text: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert!(out.status.success(), "check-config {name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_systemd_example_config_passes_check_config() {
    let text = read("deploy/systemd/brevvakt.toml");
    let config: toml::Value = toml::from_str(&text).unwrap();
    let k = &config["kafka"];
    let props = k["properties"].as_table().unwrap();
    assert_eq!(props["sasl.mechanisms"].as_str(), Some("SCRAM-SHA-512"));
    assert_eq!(props["security.protocol"].as_str(), Some("SASL_SSL"));
    assert_eq!(props["sasl.password"].as_str(), Some("${file:/etc/brevvakt/kafka-password}"));
    assert_eq!(config["state"]["dir"].as_str(), Some("/var/lib/brevvakt"));
    assert!(config["roster"]["path"].as_str().is_some());
    let addr: SocketAddr = config["output"]["metrics_addr"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback(), "metrics on loopback");

    // check-config does not read secrets (run does), but point the secret at a real file
    // anyway so the check holds if it ever does.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("kafka-password");
    std::fs::write(&pw, "not-a-real-password\n").unwrap();
    check_config(&text.replace("/etc/brevvakt/kafka-password", &pw.display().to_string()), "brevvakt.toml");
    // …and as written, on a machine without the secret.
    check_config(&text, "as-written.toml");
    // The secret reference resolves the way `run` resolves it.
    assert_eq!(brevvakt::config::resolve_secret("sasl.password", &format!("${{file:{}}}", pw.display())).unwrap(), "not-a-real-password");
}

#[test]
fn the_compose_and_kubernetes_configs_pass_check_config() {
    check_config(&read("deploy/compose/brevvakt.toml"), "compose.toml");
    let cm = yaml_docs("deploy/kubernetes/configmap.yaml").remove(0);
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    check_config(cm["data"]["brevvakt.toml"].as_str().expect("data.brevvakt.toml"), "configmap.toml");
}

// ---- container ------------------------------------------------------------------------

#[test]
fn the_containerfile_builds_with_the_readme_release_command_and_runs_as_non_root() {
    let readme = read("README.md");
    assert!(readme.contains(RELEASE_BUILD), "README.md has no `{RELEASE_BUILD}` line");
    let cf = read("deploy/container/Containerfile");
    let lines: Vec<&str> = cf.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let builds: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("RUN ")).filter(|r| r.contains("cargo build")).collect();
    assert_eq!(builds, [RELEASE_BUILD], "the build command is exactly the README's");
    assert!(lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    assert!(lines.iter().any(|l| l.starts_with("COPY --from=")), "the runtime copies from the build stage");
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("USER");
    assert!(!matches!(user.split(':').next(), Some("root" | "0")), "USER {user}");
    assert!(lines.iter().any(|l| l.starts_with("VOLUME") && l.contains("/var/lib/brevvakt")), "checkpoint volume");
    // Everything the build stage copies exists in the repository.
    for l in &lines {
        if let Some(rest) = l.strip_prefix("COPY ").filter(|r| !r.starts_with("--from")) {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                assert!(root().join(src).exists(), "COPY {src}: not in the repository");
            }
        }
    }
    // The runtime command uses flags `run` has.
    let help = String::from_utf8_lossy(&Command::new(BIN).args(["run", "--help"]).output().unwrap().stdout).to_string();
    let cmd = lines.iter().find_map(|l| l.strip_prefix("CMD ")).expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert_eq!(cmd[0], "run");
    for f in cmd.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(f.as_str()), "`brevvakt run` has no {f}");
    }
}

// ---- YAML: Kubernetes and compose -----------------------------------------------------

#[test]
fn every_yaml_file_parses() {
    let files = yaml_files();
    assert!(files.len() >= 7, "{files:?}");
    for f in &files {
        yaml_docs(f);
    }
    for f in deploy_files().iter().filter(|f| f.ends_with(".json")) {
        serde_json::from_str::<serde_json::Value>(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

fn kube_objects() -> Vec<(String, Yaml)> {
    yaml_files().into_iter().filter(|f| f.starts_with("deploy/kubernetes/")).flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d))).collect()
}

#[test]
fn the_kubernetes_manifests_have_a_statefulset_configmap_and_service() {
    let objs = kube_objects();
    for (f, o) in &objs {
        assert!(o["apiVersion"].as_str().is_some() && o["kind"].as_str().is_some() && o["metadata"]["name"].as_str().is_some(), "{f}");
    }
    let find = |kind: &str| objs.iter().find(|(_, o)| o["kind"].as_str() == Some(kind)).map(|(_, o)| o.clone()).unwrap_or_else(|| panic!("no {kind}"));
    let sts = find("StatefulSet");
    let cm = find("ConfigMap");
    let svc = find("Service");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(1), "replicas: 1 with per-pod state volumes");
    let sts_text = read("deploy/kubernetes/statefulset.yaml");
    assert!(sts_text.contains("ReadWriteMany") && sts_text.contains("partition"), "the replicas comment explains that state follows the partition through a shared volume");
    assert_eq!(spec["serviceName"].as_str(), svc["metadata"]["name"].as_str(), "serviceName is the Service");
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some("None"), "headless Service for stable identity");
    // Selector matches the pod labels, and the Service selects the pods.
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
    // Checkpoints on a per-pod volume at the state dir the config names.
    let claim = spec["volumeClaimTemplates"][0]["metadata"]["name"].as_str().expect("volumeClaimTemplates");
    let c = &spec["template"]["spec"]["containers"][0];
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let state_mount = mounts.iter().find(|m| m["name"].as_str() == Some(claim)).expect("the claim is mounted");
    let cfg: toml::Value = toml::from_str(cm["data"]["brevvakt.toml"].as_str().unwrap()).unwrap();
    assert_eq!(state_mount["mountPath"].as_str(), cfg["state"]["dir"].as_str());
    // Every mounted volume is declared, and the ConfigMap is the one mounted.
    let vols = spec["template"]["spec"]["volumes"].as_sequence().unwrap();
    for m in mounts.iter().filter(|m| m["name"].as_str() != Some(claim)) {
        assert!(vols.iter().any(|v| v["name"] == m["name"]), "volume {:?} not declared", m["name"]);
    }
    assert!(vols.iter().any(|v| v["configMap"]["name"] == cm["metadata"]["name"]));
    // Probes on the binary's endpoints, on the named port that is the metrics port.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    let listen: SocketAddr = cfg["output"]["metrics_addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(u64::from(listen.port()), port);
    assert!(listen.ip().is_unspecified(), "probes reach the pod IP only if brevvakt listens on all interfaces");
    // Prometheus scrape annotations, on the pods and the Service.
    for a in [&spec["template"]["metadata"]["annotations"], &svc["metadata"]["annotations"]] {
        assert_eq!(a["prometheus.io/scrape"].as_str(), Some("true"));
        assert_eq!(a["prometheus.io/port"].as_str(), Some(port.to_string().as_str()));
        assert_eq!(a["prometheus.io/path"].as_str(), Some("/metrics"));
    }
    // Non-root, and the grace period covers the drain (shutdown_timeout, 25 s by default).
    assert_eq!(spec["template"]["spec"]["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(spec["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap() > 25);
}

#[test]
fn the_compose_stack_has_broker_brevvakt_generator_prometheus_and_grafana() {
    let dir = root().join("deploy/compose");
    let compose = yaml_docs("deploy/compose/compose.yaml").remove(0);
    let services = compose["services"].as_mapping().expect("services");
    for s in ["tansu", "brevvakt", "generator", "prometheus", "grafana"] {
        assert!(services.contains_key(s), "service {s}");
    }
    let svc = |s: &str| &compose["services"][s];
    // Every bind mount and build context points at something that exists.
    for (name, s) in services {
        let name = name.as_str().unwrap();
        for v in s["volumes"].as_sequence().into_iter().flatten() {
            let src = v.as_str().unwrap().split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(dir.join(src).exists(), "{name}: {src} does not exist");
            } else {
                assert!(compose["volumes"].as_mapping().unwrap().contains_key(src), "{name}: volume {src} not declared");
            }
        }
        if let Some(ctx) = s["build"]["context"].as_str() {
            let df = s["build"]["dockerfile"].as_str().unwrap_or("Dockerfile");
            assert!(dir.join(ctx).join(df).is_file(), "{name}: {ctx}/{df}");
        }
        for dep in s["depends_on"].as_sequence().map(|d| d.iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>()).unwrap_or_else(|| s["depends_on"].as_mapping().map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect()).unwrap_or_default()) {
            assert!(services.contains_key(dep.as_str()), "{name} depends on unknown {dep}");
        }
    }
    // brevvakt is built with the Containerfile and consumes the broker.
    assert_eq!(svc("brevvakt")["build"]["dockerfile"].as_str(), Some("deploy/container/Containerfile"));
    let cfg: toml::Value = toml::from_str(&read("deploy/compose/brevvakt.toml")).unwrap();
    assert!(cfg["kafka"]["brokers"].as_str().unwrap().starts_with("tansu:"));
    // The broker is tansu built with the test suite's patch, by the same script, from a
    // build context that holds it; the topic job runs that image too.
    assert_eq!(svc("tansu")["build"]["dockerfile"].as_str(), Some("deploy/compose/tansu.Containerfile"));
    assert_eq!(svc("topics")["image"], svc("tansu")["image"]);
    assert!(read("deploy/compose/tansu.Containerfile").contains("RUN bash /src/tansu/install"));
    assert!(read("deploy/compose/tansu.Containerfile.dockerignore").lines().any(|l| l == "!.ci/tansu/"));
    // The generator pipes `brevvakt generate` into the broker, to a topic brevvakt reads,
    // with produce.py (Debian 12's kcat cannot talk to tansu 0.6).
    let gen = svc("generator")["command"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap()).collect::<Vec<_>>().join(" ");
    let topic = cfg["kafka"]["topics"][0]["name"].as_str().unwrap();
    assert!(gen.contains("brevvakt generate") && gen.contains(&format!("produce.py tansu:9092 {topic}")), "{gen}");
    assert!(read("deploy/compose/generator.Containerfile").contains("COPY produce.py /usr/local/bin/produce.py"));
    let gen_flags = String::from_utf8_lossy(&Command::new(BIN).args(["generate", "--help"]).output().unwrap().stdout).to_string();
    for f in gen.split_whitespace().skip_while(|w| *w != "generate").take_while(|w| *w != "|").filter(|w| w.starts_with("--")) {
        assert!(gen_flags.contains(f), "`brevvakt generate` has no {f}");
    }
    // Prometheus scrapes brevvakt as job "brevvakt" (what the rules expect) with the rules.
    let prom = yaml_docs("deploy/compose/prometheus/prometheus.yml").remove(0);
    let job = &prom["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("brevvakt"));
    assert_eq!(job["static_configs"][0]["targets"][0].as_str(), Some("brevvakt:9898"));
    let rules_in_container = prom["rule_files"][0].as_str().unwrap();
    let mounts: Vec<&str> = svc("prometheus")["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(mounts.iter().any(|m| m.starts_with("../prometheus/brevvakt-rules.yml:") && m.contains(rules_in_container)), "{mounts:?}");
    // Grafana provisions the data source and the dashboard from deploy/grafana/.
    let gmounts: Vec<&str> = svc("grafana")["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let dash_mount = gmounts.iter().find(|m| m.starts_with("../grafana/brevvakt-dashboard.json:")).expect("dashboard mounted");
    let dash_dir = Path::new(dash_mount.split(':').nth(1).unwrap()).parent().unwrap().to_str().unwrap().to_string();
    let provider = yaml_docs("deploy/compose/grafana/provisioning/dashboards/brevvakt.yaml").remove(0);
    assert_eq!(provider["providers"][0]["options"]["path"].as_str(), Some(dash_dir.as_str()));
    let ds = yaml_docs("deploy/compose/grafana/provisioning/datasources/prometheus.yaml").remove(0);
    assert_eq!(ds["datasources"][0]["type"].as_str(), Some("prometheus"));
    assert_eq!(ds["datasources"][0]["url"].as_str(), Some("http://prometheus:9090"));
}
