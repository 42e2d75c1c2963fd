//! Chaos: the built `ca-notify run --until-drained` on a SQLite file against the
//! simulators, killed with SIGKILL at random moments and restarted, facing faulty peers,
//! sharing the file with a second worker, and stopped with SIGTERM. Each ends with the
//! exactly-once invariants of [`World::assert_exactly_once`].

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::{RateLimit, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use ca_notify_integration_tests::{faulty_twilio, faulty_verification, Cli};

use crate::harness::{Kind, World};
use crate::run;

const DEADLINE: &str = "CA_NOTIFY__PIPELINE__DEADLINE_SECS";
const LEASE_MARGIN: &str = "CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS";
/// Every test stops trying after this, well under CI's minute.
const BUDGET: Duration = Duration::from_secs(50);

/// Waits up to `limit` for the child to exit. The waits in this file sleep on the
/// runtime, never the thread: the simulators serve from the same runtime.
async fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `done` holds (then `None`) or the child exits; every `done` here also
/// holds once the test's budget is spent.
async fn wait_until(child: &mut Child, done: impl Fn() -> bool) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return Some(status);
        }
        if done() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the command again until every record has a final outcome, waiting out the
/// leases of killed workers in between.
async fn drain(world: &World, cli: &Cli, started: Instant) -> usize {
    let mut runs = 0;
    while let Some(wait) = world.next_claimable_in() {
        assert!(
            started.elapsed() < BUDGET,
            "not drained in time: {} of {} written",
            world.written(),
            world.people.len()
        );
        tokio::time::sleep(wait).await;
        let out = run(cli, &["run", "--until-drained"]).await;
        assert_eq!(out.code, Some(0), "{}", out.all());
        runs += 1;
    }
    runs
}

fn summary(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary written")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_workers_text_each_person_exactly_once() {
    let world = World::start(
        1_000,
        TwilioSimConfig {
            latency: Duration::from_millis(10),
            latency_jitter: Duration::from_millis(30),
            ..TwilioSimConfig::default()
        },
        SimConfig {
            latency: Duration::from_millis(250),
            ..SimConfig::default()
        },
    )
    .await;
    // Short leases: a killed run's records come back at most 5 s after its claim.
    let cli = world.cli().env(DEADLINE, "4").env(LEASE_MARGIN, "1");
    let mut rng = StdRng::seed_from_u64(0xC4A0_5EED);
    let started = Instant::now();
    let mut kills = 0;
    let mut completed_runs = 0;
    while kills < 6 {
        assert!(started.elapsed() < BUDGET, "only {kills} kills in time");
        if world.next_claimable_in().is_none() {
            break;
        }
        if let Some(wait) = world.next_claimable_in() {
            tokio::time::sleep(wait).await;
        }
        let log = format!("run-{kills}-{completed_runs}.log");
        let mut child = cli
            .command(&["run", "--until-drained"])
            .stdout(Stdio::null())
            .stderr(world.log(&log))
            .spawn()
            .expect("ca-notify starts");
        // Alternately a random moment from start-up through the first lookups, and a
        // random point once texts are going out (while other batches are being issued
        // or written back), so both kinds of kill happen whatever the machine's speed.
        let landed = if kills % 2 == 0 {
            let at = Duration::from_millis(rng.random_range(50..600));
            wait_for(&mut child, at).await
        } else {
            let texts = world.verification.ledger().total() + rng.random_range(1..80);
            wait_until(&mut child, || {
                world.verification.ledger().total() >= texts || started.elapsed() > BUDGET
            })
            .await
        };
        match landed {
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
            }
            Some(status) => {
                assert!(status.success(), "{status}: {}", world.log_tail(&log));
                completed_runs += 1;
            }
        }
    }
    assert!(kills >= 5, "only {kills} kills landed mid-run");
    let runs = drain(&world, &cli, started).await;
    eprintln!(
        "{kills} kills, {completed_runs} runs finished between them, {runs} to drain, {:?}",
        started.elapsed()
    );

    world.assert_exactly_once();
    // Kills that landed between issue and write-back. Either the server had answered:
    // the text went out, no record of that phone was written `sent`, and a later run
    // recorded it as already sent. Or the kill cut the server's send short: the person
    // holds a text whose code was deleted, and a later run texted a usable one.
    let state = world.state();
    let ledger = world.verification.ledger();
    let texted_by_killed_runs = world
        .people
        .iter()
        .filter(|p| p.kind == Kind::Mobile)
        .filter(|p| {
            let same_phone = world.people.iter().filter(|q| q.national == p.national);
            let answered = same_phone
                .map(|q| state[&q.id].outcome.as_deref())
                .all(|o| o == Some("already_sent"));
            answered || ledger.dead_texts_to(&p.e164()) > 0
        })
        .count();
    // Kills that landed after lookups but before write-back: looked up again later.
    let looked_up_twice = world
        .people
        .iter()
        .filter(|p| p.kind == Kind::Mobile && world.twilio.requests_of(&p.e164()) > 1)
        .count();
    eprintln!(
        "{texted_by_killed_runs} phones texted by a killed run, {looked_up_twice} looked up again"
    );
    assert!(
        texted_by_killed_runs > 0,
        "no kill landed between issue and write-back"
    );
    assert!(looked_up_twice > 0, "no kill landed after a lookup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_peers_on_sqlite_text_each_person_exactly_once() {
    // Enough batch requests (about 110) that every kind of fault happens.
    let world = World::start(
        1_000,
        TwilioSimConfig {
            latency: Duration::from_millis(5),
            ..faulty_twilio()
        },
        SimConfig {
            latency: Duration::from_millis(20),
            // The client is told 60 000 a minute; the server's limiter answers 429s.
            rate_limit: Some(RateLimit {
                tokens: 15,
                interval: Duration::from_secs(1),
            }),
            ..faulty_verification()
        },
    )
    .await;
    let cli = world.cli().env(DEADLINE, "30").env(LEASE_MARGIN, "2");
    let started = Instant::now();
    let runs = drain(&world, &cli, started).await;
    let stats = world.verification.stats();
    eprintln!("{runs} runs, {:?}, {stats:?}", started.elapsed());
    world.assert_exactly_once();
    // The limiter is on, but the client paces itself from the `X-RateLimit-*` headers,
    // so its 429s come only from requests racing each other: counted (in the line
    // above), not required.
    assert!(
        stats.injected_errors + stats.dropped_connections > 0,
        "500s and dropped connections were injected: {stats:?}"
    );
    assert!(
        stats.already_exists > 0,
        "re-sends after lost answers: {stats:?}"
    );
    assert!(
        world.twilio.stats().injected_faults > 0,
        "{:?}",
        world.twilio.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_in_the_middle_of_the_servers_sends_leave_nobody_with_two_usable_codes() {
    // The server's sends run on the request's context: a worker killed mid-send cancels
    // them. The provider accepts each text 40 ms into a 120 ms send, so a kill in between
    // leaves a text whose code the server then deletes; the person needs, and must get,
    // one usable code. Lost answers and a second worker at the same time, too.
    let world = World::start(
        300,
        TwilioSimConfig {
            latency: Duration::from_millis(5),
            ..faulty_twilio()
        },
        SimConfig {
            latency: Duration::from_millis(120),
            sms_accept_after: Duration::from_millis(40),
            ..faulty_verification()
        },
    )
    .await;
    // A run issues until one request timeout (2 s) before its deadline.
    let cli = world.cli().env(DEADLINE, "8").env(LEASE_MARGIN, "1");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x7207_5EED);
    let mut kills = 0;
    while kills < 3 && world.next_claimable_in().is_some() {
        assert!(started.elapsed() < BUDGET, "only {kills} kills in time");
        if let Some(wait) = world.next_claimable_in() {
            tokio::time::sleep(wait).await;
        }
        let mut victim = cli
            .command(&["run", "--until-drained"])
            .stdout(Stdio::null())
            .stderr(world.log(&format!("killed-{kills}.log")))
            .spawn()
            .expect("ca-notify starts");
        let mut other = cli
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(world.log(&format!("other-{kills}.log")))
            .spawn()
            .expect("a second worker starts");
        let texts = world.verification.ledger().total() + rng.random_range(1..40);
        let landed = wait_until(&mut victim, || {
            world.verification.ledger().total() >= texts || started.elapsed() > BUDGET
        })
        .await;
        if landed.is_none() {
            victim.kill().expect("SIGKILL");
        }
        victim.wait().expect("reaped");
        wait_for(&mut other, BUDGET)
            .await
            .expect("the second worker finishes");
        kills += 1;
    }
    drain(&world, &cli, started).await;
    world.assert_exactly_once();
    let stats = world.verification.stats();
    eprintln!("{kills} kills, {:?}, {stats:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_failed_delete_keeps_are_never_recorded_as_texts() {
    // Failed sends whose row stays behind (the delete fails), a limiter, and two workers
    // at once: a 409 after such a failure must end unconfirmed, never sent. (Lost
    // answers are left out on purpose: a lost answer can hide a failed send, and when
    // that send's delete failed too, the later 409 is taken for the lost 200 — the one
    // double fault the truth table cannot see through; `docs/adapters/verification.md`.)
    let world = World::start(
        400,
        TwilioSimConfig {
            latency: Duration::from_millis(5),
            ..faulty_twilio()
        },
        SimConfig {
            latency: Duration::from_millis(20),
            delete_fails: true,
            rate_limit: Some(RateLimit {
                tokens: 40,
                interval: Duration::from_secs(1),
            }),
            faults: ca_notify_simulators::verification::Faults {
                sms_failure: 0.03,
                ..ca_notify_simulators::verification::Faults::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let cli = world.cli().env(DEADLINE, "10").env(LEASE_MARGIN, "1");
    let started = Instant::now();
    let mut other = cli
        .command(&["run", "--until-drained"])
        .stdout(Stdio::null())
        .stderr(world.log("other.log"))
        .spawn()
        .expect("a second worker starts");
    drain(&world, &cli, started).await;
    let status = wait_for(&mut other, BUDGET)
        .await
        .expect("the second worker finishes");
    assert!(
        status.success(),
        "{status}: {}",
        world.log_tail("other.log")
    );
    let unconfirmed = world.assert_truthful();
    let stats = world.verification.stats();
    eprintln!(
        "{unconfirmed} unconfirmed, {:?}, {stats:?}",
        started.elapsed()
    );
    assert!(stats.failed_deletes > 0, "rows stayed behind: {stats:?}");
    assert!(
        unconfirmed > 0,
        "the 409s after failed sends were judged: {stats:?}"
    );
    assert!(
        unconfirmed as u64 <= stats.failed_deletes,
        "only a row a failed delete kept can make a person unconfirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_file_text_each_person_exactly_once() {
    let world = World::start(
        600,
        TwilioSimConfig {
            latency: Duration::from_millis(5),
            ..TwilioSimConfig::default()
        },
        SimConfig {
            latency: Duration::from_millis(100),
            ..SimConfig::default()
        },
    )
    .await;
    let started = Instant::now();
    let workers: Vec<_> = ["worker-a", "worker-b"]
        .into_iter()
        .map(|name| {
            let json = world.dir.path().join(format!("{name}.json"));
            let child = world
                .cli()
                .env(DEADLINE, "40")
                .env("CA_NOTIFY__WORKER_ID", name)
                .command(&[
                    "run",
                    "--until-drained",
                    "--summary-json",
                    &json.display().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(world.log(&format!("{name}.log")))
                .spawn()
                .expect("ca-notify starts");
            (name, child, json)
        })
        .collect();
    let mut claimed = 0;
    for (name, mut child, json) in workers {
        let status = wait_for(&mut child, BUDGET).await.expect("worker finishes");
        assert!(
            status.success(),
            "{name}: {status}: {}",
            world.log_tail(&format!("{name}.log"))
        );
        let n = summary(&json)["claimed"].as_u64().expect("claimed");
        assert!(n > 0, "{name} did part of the work");
        claimed += n;
    }
    eprintln!("two workers: {:?}", started.elapsed());
    assert_eq!(
        claimed,
        world.people.len() as u64,
        "no record was claimed by both workers"
    );
    world.assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_in_flight_batches_releases_the_rest_and_exits_zero() {
    let world = World::start(
        600,
        TwilioSimConfig {
            latency: Duration::from_millis(5),
            ..TwilioSimConfig::default()
        },
        SimConfig {
            latency: Duration::from_millis(300),
            ..SimConfig::default()
        },
    )
    .await;
    let deadline = Duration::from_secs(30);
    let cli = world.cli().env(DEADLINE, deadline.as_secs().to_string());
    let mut child = cli
        .command(&["run", "--until-drained"])
        .stdout(Stdio::null())
        .stderr(world.log("term.log"))
        .spawn()
        .expect("ca-notify starts");
    let started = Instant::now();
    // Mid-run: some people texted, batches in flight.
    while world.verification.ledger().total() < 30 {
        assert!(started.elapsed() < deadline, "the run never got going");
        assert!(child.try_wait().expect("status").is_none(), "ended early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let signalled = Instant::now();
    let status = wait_for(&mut child, deadline)
        .await
        .expect("exits within the deadline");
    let stopping = signalled.elapsed();
    assert!(status.success(), "{status}: {}", world.log_tail("term.log"));
    assert!(
        std::fs::read_to_string(world.dir.path().join("term.log"))
            .expect("log")
            .contains("Shutdown signal received"),
        "{}",
        world.log_tail("term.log")
    );

    let state = world.state();
    let written = state.values().filter(|r| r.outcome.is_some()).count();
    eprintln!(
        "SIGTERM after {:?}: stopped in {stopping:?}, {written} written",
        signalled - started
    );
    assert!(
        state.values().all(|r| !r.claimed),
        "nothing is left claimed"
    );
    assert!(
        written > 0 && written < world.people.len(),
        "stopped mid-run: {written}"
    );
    // Every text that went out belongs to a batch that was finished and written.
    let ledger = world.verification.ledger();
    for p in world
        .people
        .iter()
        .filter(|p| ledger.texts_to(&p.e164()) > 0)
    {
        assert!(
            world
                .people
                .iter()
                .filter(|q| q.national == p.national)
                .any(|q| state[&q.id].outcome.as_deref() == Some("sent")),
            "{} was texted but its batch was not written",
            p.id
        );
    }

    // Released, not leased: an immediate second run claims everything not finished.
    let json = world.dir.path().join("second.json");
    let second = run(
        &cli,
        &[
            "run",
            "--until-drained",
            "--summary-json",
            &json.display().to_string(),
        ],
    )
    .await;
    assert_eq!(second.code, Some(0), "{}", second.all());
    assert_eq!(
        summary(&json)["claimed"].as_u64(),
        Some((world.people.len() - written) as u64),
        "the second run claimed exactly the unfinished records"
    );
    world.assert_exactly_once();
}
