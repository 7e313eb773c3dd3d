//! Once a job is planned: the breaker, the cache, admission and drain, the registry of detached
//! runs.

use super::*;

#[tokio::test]
async fn the_breaker_opens_on_set_up_failures_only() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    // The user's code failing says nothing about the host.
    for _ in 0..3 {
        fake.then(Script::Ends("", Status::ExitNonzero));
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap();
    }
    assert_eq!(engine.ready(), Ok(()));
    fake.then(Script::Ends("", Status::SetupFailed));
    let (c, _) = finished(
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap(),
    );
    assert_eq!(c.verdict.status, Status::SetupFailed);
    let msg = c.verdict.message.unwrap();
    assert!(
        msg.contains("request id test"),
        "details stay in the log: {msg}"
    );
    // A worker that dies without a verdict counts as a set-up failure too.
    fake.then(Script::Dies);
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::Internal
    );
    assert_eq!(engine.ready(), Err("sandbox_unavailable"));
    let before = fake.spawned();
    let e = engine
        .submit(&anyone, request("python", "x"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, Kind::SandboxUnavailable);
    assert!(e.retry_after.is_some());
    assert_eq!(fake.spawned(), before, "an open breaker starts nothing");
    assert_eq!(engine.counters.breaker_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_dead_launcher_is_unavailable() {
    let (engine, fake) = engine();
    fake.dead.store(true, Ordering::Relaxed);
    let e = engine
        .submit(&caller(Grant::default()), request("python", "x"))
        .await
        .err()
        .unwrap();
    assert_eq!((e.kind, e.retry_after), (Kind::Unavailable, Some(5)));
    assert_eq!(engine.ready(), Err("launcher_down"));
}

#[tokio::test]
async fn the_cache_runs_identical_requests_once_per_scope() {
    let mut s = settings();
    s.cache = Some(CacheConfig {
        settings: CacheSettings {
            ttl: Duration::from_secs(60),
            max_bytes: 1 << 20,
            max_entry_bytes: 1 << 16,
        },
        profiles: vec!["python".into()],
        mode: CacheMode::Always,
        shared: false,
    });
    let (engine, fake) = engine_with(s);
    let anyone = caller(Grant::default());
    fake.then(Script::Ends("1\n", Status::Ok));
    let (first, status) = finished(
        engine
            .submit(&anyone, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert!(status.unwrap().contains("miss"));
    let (again, status) = finished(
        engine
            .submit(&anyone, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert!(status.unwrap().contains("hit"));
    assert_eq!(again.output, first.output);
    assert_eq!(fake.spawned(), 1);
    // Other code, a caller who bypasses the cache, or a profile not listed: a new run.
    engine
        .submit(&anyone, request("python", "print(2)"))
        .await
        .unwrap();
    let mut bypass = anyone.clone();
    bypass.cache = Some(false);
    let (_, status) = finished(
        engine
            .submit(&bypass, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert_eq!(status, None);
    engine
        .submit(&anyone, request("bash", "echo 1"))
        .await
        .unwrap();
    assert_eq!(fake.spawned(), 4);
}

#[tokio::test]
async fn admission_refuses_beyond_capacity_and_when_draining() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let mut streams = Vec::new();
    for _ in 0..2 {
        fake.then(Script::Hangs);
        let mut r = request("python", "x");
        r.delivery = Delivery::Stream;
        match engine.submit(&anyone, r).await.unwrap() {
            Submitted::Running(run) => streams.push(run),
            _ => panic!("expected a running stream"),
        }
    }
    assert_eq!(engine.gauges().running, 2);
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::QueueFull
    );
    // Dropping a handle kills its sandbox and frees its slot.
    streams.pop();
    engine
        .submit(&anyone, request("python", "x"))
        .await
        .unwrap();
    engine.start_drain();
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::Draining
    );
    // The drain deadline kills what still runs.
    engine.kill_all();
    let e = streams[0].next().await.err().unwrap();
    assert_eq!(e.kind, Kind::Draining);
}

#[tokio::test]
async fn detached_runs_outlive_their_request_in_a_bounded_registry() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let detach = || {
        let mut r = request("python", "x");
        r.delivery = Delivery::Detach;
        r
    };
    fake.then(Script::Ends("done\n", Status::Ok));
    let Submitted::Detached { id, .. } = engine.submit(&anyone, detach()).await.unwrap() else {
        panic!("expected a detached run");
    };
    let state = loop {
        match engine.run_state(id) {
            Some(RunState::Running) => tokio::task::yield_now().await,
            other => break other,
        }
    };
    match state {
        Some(RunState::Finished(c)) => assert_eq!(c.output, b"done\n"),
        _ => panic!("expected the finished run"),
    }
    assert!(
        engine.run_state(id).is_none(),
        "a result is handed out once"
    );
    // Two places: two runs that never end fill the registry and a third is refused.
    fake.then(Script::Hangs);
    fake.then(Script::Hangs);
    engine.submit(&anyone, detach()).await.unwrap();
    engine.submit(&anyone, detach()).await.unwrap();
    assert_eq!(kind_of(&engine, &anyone, detach()).await, Kind::QueueFull);
    assert_eq!(
        fake.spawned(),
        3,
        "a full registry refuses before starting a sandbox"
    );
}

#[tokio::test]
async fn set_up_failures_the_request_caused_do_not_open_the_breaker() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    // The request's own file could not be written: its doing, not the host's.
    for _ in 0..3 {
        fake.then(Script::SetupFails(
            "work files: create /sandbox/main.py: No space left on device",
        ));
        let (c, _) = finished(
            engine
                .submit(&anyone, request("python", "x"))
                .await
                .unwrap(),
        );
        assert_eq!(c.verdict.status, Status::SetupFailed);
    }
    assert_eq!(engine.ready(), Ok(()), "the breaker stays closed");
    // The host cannot clone a sandbox: that counts.
    for _ in 0..2 {
        fake.then(Script::SetupFails("clone3: Operation not permitted"));
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap();
    }
    assert_eq!(engine.ready(), Err("sandbox_unavailable"));
}
