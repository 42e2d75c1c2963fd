//! The scheduler examples in `deploy/`: every property an operator relies on, checked on
//! the files as shipped, and that the command accepts the arguments, variables and files
//! they hand it — a configuration loaded from exactly those, secrets from those files,
//! that a run accepts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ca_notify_job::{JobConfig, StoreKind};
use secrecy::ExposeSecret;
use serde_yaml_ng::Value;

use crate::ca_notify;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// Loads the configuration from exactly `env`, as the command does, and checks that a
/// run would accept it.
fn accepted(env: &HashMap<String, String>) -> JobConfig {
    let config = JobConfig::load(None, env).unwrap_or_else(|e| panic!("not loaded: {e}"));
    config
        .validate_for_run()
        .unwrap_or_else(|e| panic!("not runnable: {e}"));
    config
}

/// The command parses `args` (clap checks every argument before it prints the help), and
/// refuses a wrong one the same way, so the check can fail.
fn arguments_accepted(args: &[&str]) {
    let mut with_help: Vec<&str> = args.to_vec();
    with_help.push("--help");
    let out = ca_notify().run(&with_help);
    assert_eq!(out.code, Some(0), "{args:?}: {}", out.all());
    let mut wrong: Vec<&str> = args.to_vec();
    wrong.extend(["--no-such-flag", "--help"]);
    let out = ca_notify().run(&wrong);
    assert_eq!(out.code, Some(2), "a wrong argument passed: {}", out.all());
}

/// Writes a distinct value into each named file under `dir` and returns them.
fn secret_files(dir: &Path, names: &[String]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|name| {
            let value = format!("{name}-value-0123456789");
            std::fs::write(dir.join(name), format!("{value}\n")).expect("secret written");
            (name.clone(), value)
        })
        .collect()
}

/// The value at a dotted path (`a.b.0.c`); the value itself for an empty path.
fn yaml<'a>(value: &'a Value, path: &str) -> &'a Value {
    if path.is_empty() {
        return value;
    }
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn text(value: &Value, path: &str) -> String {
    match yaml(value, path) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{path} is {other:?}"),
    }
}

fn number(value: &Value, path: &str) -> u64 {
    yaml(value, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

#[test]
fn the_kubernetes_cronjob_is_safe_and_its_configuration_is_accepted() {
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&read("kubernetes/cronjob.yaml"))
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let settings = kind("ConfigMap");
    let cron = kind("CronJob");
    assert_eq!(text(cron, "apiVersion"), "batch/v1");
    assert_eq!(text(cron, "spec.concurrencyPolicy"), "Forbid");
    let job = yaml(cron, "spec.jobTemplate.spec");
    assert_eq!(number(job, "backoffLimit"), 0);
    let deadline: u64 = text(settings, "data.CA_NOTIFY__PIPELINE__DEADLINE_SECS")
        .parse()
        .expect("a number");
    let active = number(job, "activeDeadlineSeconds");
    assert!(
        active >= deadline + 30,
        "activeDeadlineSeconds {active} leaves no room after the run's deadline {deadline}"
    );
    let pod = yaml(job, "template.spec");
    assert_eq!(text(pod, "restartPolicy"), "Never");
    assert_eq!(text(pod, "automountServiceAccountToken"), "false");
    assert!(number(pod, "terminationGracePeriodSeconds") >= 10);
    assert_eq!(text(pod, "securityContext.runAsNonRoot"), "true");
    assert_ne!(number(pod, "securityContext.runAsUser"), 0);
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(!text(c, "image").ends_with(":latest"), "pin the image");
    assert_eq!(text(c, "securityContext.readOnlyRootFilesystem"), "true");
    assert_eq!(text(c, "securityContext.allowPrivilegeEscalation"), "false");
    assert_eq!(text(c, "securityContext.runAsNonRoot"), "true");
    assert_eq!(text(c, "securityContext.capabilities.drop.0"), "ALL");
    for resource in ["cpu", "memory"] {
        assert!(
            !text(c, &format!("resources.requests.{resource}")).is_empty(),
            "no {resource} request"
        );
    }

    // Secrets: mounted read-only as files, named by …_FILE; none in a variable.
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let secret_volume = volumes
        .iter()
        .find(|v| !v["secret"].is_null())
        .expect("a secret volume");
    let items: Vec<String> = secret_volume["secret"]["items"]
        .as_sequence()
        .expect("items")
        .iter()
        .map(|i| text(i, "path"))
        .collect();
    let mounts = c["volumeMounts"].as_sequence().expect("mounts");
    let mount = |name: &Value| {
        mounts
            .iter()
            .find(|m| &m["name"] == name)
            .unwrap_or_else(|| panic!("{name:?} not mounted"))
    };
    let secrets_mount = mount(&secret_volume["name"]);
    assert_eq!(text(secrets_mount, "readOnly"), "true");
    let secrets_at = text(secrets_mount, "mountPath");
    let tmp = volumes
        .iter()
        .find(|v| !v["emptyDir"].is_null())
        .expect("a writable scratch volume for the read-only root");
    assert_eq!(text(mount(&tmp["name"]), "mountPath"), "/tmp");

    let dir = tempfile::tempdir().expect("tempdir");
    let values = secret_files(dir.path(), &items);
    let mut env: HashMap<String, String> = settings["data"]
        .as_mapping()
        .expect("data")
        .iter()
        .map(|(k, v)| (text(k, ""), text(v, "")))
        .collect();
    let mut files = 0;
    for var in c["env"].as_sequence().expect("env") {
        let name = text(var, "name");
        assert!(
            var["valueFrom"].is_null(),
            "{name}: secrets come from files, not variables"
        );
        let value = text(var, "value");
        if let Some(_setting) = name.strip_suffix("_FILE") {
            let file = value
                .strip_prefix(&format!("{secrets_at}/"))
                .unwrap_or_else(|| panic!("{name}={value} is not in the secret mount"));
            assert!(
                items.iter().any(|i| i == file),
                "{file} is not a secret item"
            );
            env.insert(name, dir.path().join(file).display().to_string());
            files += 1;
        } else {
            env.insert(name, value);
        }
    }
    assert_eq!(files, items.len(), "every mounted secret is used");
    let config = accepted(&env);
    assert_eq!(config.store.kind, StoreKind::Snowflake);
    let shown = |s: &Option<secrecy::SecretString>| {
        s.as_ref()
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(shown(&config.dedup.secret), values["dedup-secret"]);
    assert_eq!(
        shown(&config.verification.api_key),
        values["verification-api-key"]
    );
    assert_eq!(
        shown(&config.twilio.auth_token),
        values["twilio-auth-token"]
    );
    assert_eq!(
        shown(&config.snowflake.password),
        values["snowflake-password"]
    );
    assert_eq!(config.pipeline.deadline_secs, deadline);

    let args: Vec<String> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| text(a, ""))
        .collect();
    arguments_accepted(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A unit file's directives, by section, in order (a directive may repeat).
fn unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        sections
            .entry(current.clone())
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

fn values<'a>(
    unit: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    unit.get(section)
        .map(|d| {
            d.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn one<'a>(unit: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, key: &str) -> &'a str {
    match values(unit, section, key).as_slice() {
        [one] => one,
        other => panic!("[{section}] {key}: {other:?}"),
    }
}

#[test]
fn the_systemd_units_are_sandboxed_and_their_configuration_is_accepted() {
    let service_text = read("systemd/ca-notify.service");
    let service = unit(&service_text);
    let timer = unit(&read("systemd/ca-notify.timer"));
    for (key, value) in [
        ("Type", "oneshot"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "ca-notify"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(&service, "Service", key), value, "{key}");
    }
    assert_eq!(one(&timer, "Timer", "Unit"), "ca-notify.service");
    assert_eq!(one(&timer, "Timer", "Persistent"), "true");
    assert!(!one(&timer, "Timer", "OnCalendar").is_empty());
    assert_eq!(one(&timer, "Install", "WantedBy"), "timers.target");

    // Secrets: a credential per …_FILE variable, read from $CREDENTIALS_DIRECTORY (%d);
    // the SQLite file in the state directory (%S/<StateDirectory>).
    let credentials: Vec<&str> = values(&service, "Service", "LoadCredential")
        .into_iter()
        .map(|c| c.split_once(':').expect("name:path").0)
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, creds) = (dir.path().join("state"), dir.path().join("credentials"));
    std::fs::create_dir_all(&creds).expect("dirs");
    let names: Vec<String> = credentials.iter().map(|c| (*c).to_owned()).collect();
    let secrets = secret_files(&creds, &names);
    let expand = |v: &str| {
        v.replace("%S", &state.display().to_string())
            .replace("%d", &creds.display().to_string())
    };
    let mut env: HashMap<String, String> = read("systemd/ca-notify.env.example")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let mut used = Vec::new();
    for assignment in values(&service, "Service", "Environment") {
        let (name, value) = assignment.split_once('=').expect("NAME=value");
        if name.ends_with("_FILE") {
            let credential = value.strip_prefix("%d/").expect("a credential");
            assert!(
                credentials.contains(&credential),
                "{credential} is not loaded"
            );
            used.push(credential);
        }
        env.insert(name.to_owned(), expand(value));
    }
    assert_eq!(used.len(), credentials.len(), "every credential is used");
    assert_eq!(
        env["CA_NOTIFY__STORE__PATH"],
        state.join("ca-notify/ca-notify.db").display().to_string()
    );
    let config = accepted(&env);
    assert_eq!(config.store.kind, StoreKind::Sqlite);
    let dedup = config.dedup.secret.as_ref().expect("dedup secret");
    assert_eq!(dedup.expose_secret(), secrets["dedup-secret"]);
    let timeout: u64 = one(&service, "Service", "TimeoutStartSec")
        .parse()
        .expect("seconds");
    assert!(
        timeout >= config.pipeline.deadline_secs + 30,
        "TimeoutStartSec {timeout}"
    );

    let exec = one(&service, "Service", "ExecStart");
    let (program, args) = exec.split_once(' ').expect("program and arguments");
    arguments_accepted(&args.split_whitespace().collect::<Vec<_>>());

    // systemd's own reading of both files, with the built binary in place of the
    // installed one (verify checks that the program exists). A warning fails the test.
    let check = dir.path().join("units");
    std::fs::create_dir_all(&check).expect("dir");
    std::fs::write(
        check.join("ca-notify.service"),
        service_text.replace(program, env!("CARGO_BIN_EXE_ca-notify")),
    )
    .expect("write");
    std::fs::copy(
        deploy("systemd/ca-notify.timer"),
        check.join("ca-notify.timer"),
    )
    .expect("copy");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "ca-notify.service", "ca-notify.timer"])
        .current_dir(&check)
        .output()
        .expect("systemd-analyze runs (.ci/run installs the systemd package)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_azure_functions_app_runs_the_handler_on_a_timer() {
    let host: serde_json::Value =
        serde_json::from_str(&read("azure-functions/host.json")).expect("JSON");
    assert_eq!(host["version"], "2.0");
    let description = &host["customHandler"]["description"];
    assert_eq!(description["defaultExecutablePath"], "ca-notify");
    let args: Vec<&str> = description["arguments"]
        .as_array()
        .expect("arguments")
        .iter()
        .map(|a| a.as_str().expect("text"))
        .collect();
    assert_eq!(args.first(), Some(&"serve-functions"));
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], false);
    // The Consumption plan allows at most 10 minutes.
    let timeout = host["functionTimeout"].as_str().expect("functionTimeout");
    assert!(timeout <= "00:10:00" && timeout.len() == 8, "{timeout}");

    let function: serde_json::Value =
        serde_json::from_str(&read("azure-functions/notify/function.json")).expect("JSON");
    let bindings = function["bindings"].as_array().expect("bindings");
    assert_eq!(bindings.len(), 1, "a timer and no outputs");
    let timer = &bindings[0];
    assert_eq!(timer["type"], "timerTrigger");
    assert_eq!(timer["direction"], "in");
    assert_eq!(timer["runOnStartup"], false);
    let schedule = timer["schedule"].as_str().expect("schedule");
    assert_eq!(
        schedule.split_whitespace().count(),
        6,
        "NCRONTAB has six fields"
    );

    let mut with_help = args.clone();
    with_help.push("--help");
    let out = ca_notify().run(&with_help);
    assert_eq!(out.code, Some(0), "{}", out.all());
}
