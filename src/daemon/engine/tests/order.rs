//! Lookup, then authorization, then planning: each refusal in its place, nothing refused reaching
//! the spawner.

use super::*;

#[tokio::test]
async fn a_run_goes_through_and_reports_its_output() {
    let (engine, fake) = engine();
    fake.then(Script::Ends("hi\n", Status::Ok));
    let s = engine
        .submit(&caller(Grant::default()), request("py", "print('hi')"))
        .await
        .unwrap();
    let (c, cache) = finished(s);
    assert_eq!(c.verdict.status, Status::Ok);
    assert_eq!(c.output, b"hi\n");
    assert_eq!(cache, None);
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].files.iter().any(|(_, data)| data == b"print('hi')"));
}

#[tokio::test]
async fn lookup_then_authorization_then_planning() {
    let (engine, fake) = engine();
    let only_bash = Grant {
        profiles: Some(vec!["bash".into()]),
        ..Grant::default()
    };
    // An unknown profile is reported as such, whatever else is wrong.
    let mut r = request("cobol", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(only_bash.clone()), r).await,
        Kind::UnknownProfile
    );
    // A profile the caller may not use is forbidden before its limits are even looked at, so a
    // request learns nothing about a profile it may not use.
    let mut r = request("python", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(only_bash), r).await,
        Kind::Forbidden
    );
    // A granted profile gets to planning, which refuses the zero limit.
    let mut r = request("python", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(Grant::default()), r).await,
        Kind::InvalidRequest
    );
    assert_eq!(engine.counters.forbidden.load(Ordering::Relaxed), 1);
    assert_eq!(fake.spawned(), 0, "nothing refused reaches the spawner");
}

#[tokio::test]
async fn grants_cap_the_profile_and_refuse_asks_above_them() {
    let (engine, fake) = engine();
    let grant = Grant {
        max_wall: Some(Duration::from_secs(1)),
        max_output: Some(1000),
        ..Grant::default()
    };
    let mut r = request("python", "print(1)");
    r.ask.limits.wall = Some(Duration::from_secs(2));
    assert_eq!(
        kind_of(&engine, &caller(grant.clone()), r).await,
        Kind::Forbidden
    );
    // Not asked: the profile's own limits are capped at the grant.
    engine
        .submit(&caller(grant), request("python", "print(1)"))
        .await
        .unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs[0].policy.limits.wall, Some(Duration::from_secs(1)));
    assert_eq!(jobs[0].policy.limits.output, 1000);
}

#[tokio::test]
async fn planning_refusals_name_their_reason() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let max = engine
        .profile("python", &Grant::default())
        .unwrap()
        .policy
        .limits
        .memory
        .unwrap();
    let mut r = request("python", "x");
    r.ask.limits.memory = Some(max + 1);
    assert_eq!(
        kind_of(&engine, &anyone, r).await,
        Kind::LimitExceedsProfile
    );
    let mut r = request("python", "x");
    r.ask.env = vec![("A=B".into(), "c".into())];
    assert_eq!(kind_of(&engine, &anyone, r).await, Kind::InvalidRequest);
    // A preset has no interpreter: the command must come in `args`.
    assert_eq!(
        kind_of(&engine, &anyone, request("strict", "x")).await,
        Kind::InvalidRequest
    );
    assert_eq!(fake.spawned(), 0);
}

#[tokio::test]
async fn the_pre_flight_analysis_refuses_and_cannot_be_lowered() {
    let (engine, fake) = engine();
    {
        let mut catalog = Catalog::load(&engine.loader);
        let p = catalog.profile_mut("python").unwrap();
        p.policy.analysis.mode = AnalysisMode::Enforce;
        *engine.catalog.write().unwrap() = Arc::new(catalog);
    }
    let anyone = caller(Grant::default());
    let mut lower = request("python", "print(1)");
    lower.ask.check = Some(AnalysisMode::Warn);
    assert_eq!(
        kind_of(&engine, &anyone, lower.clone()).await,
        Kind::CheckRequired
    );
    // A grant with `skip_check` may lower it.
    let skip = caller(Grant {
        skip_check: true,
        ..Grant::default()
    });
    assert!(engine.submit(&skip, lower).await.is_ok());
    assert_eq!(fake.spawned(), 1);
    let bad = request("python", "import os\nos.system('id')");
    match engine.submit(&anyone, bad).await.unwrap() {
        Submitted::Refused { profile, verdict } => {
            assert_eq!(profile, "python");
            assert_eq!(verdict.status, Status::RejectedByPolicy);
            assert!(verdict.policy.is_some_and(|p| !p.safe));
        }
        _ => panic!("expected a pre-flight refusal"),
    }
    assert_eq!(fake.spawned(), 1, "refused code never reaches the spawner");
}

#[tokio::test]
async fn the_service_output_cap_applies_after_authorization() {
    let (engine, fake) = engine();
    let grant = Grant {
        max_output: Some(100),
        ..Grant::default()
    };
    let mut r = request("python", "x");
    r.output_cap = Some(5000);
    engine.submit(&caller(grant), r).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs[0].policy.limits.output, 100, "never above the grant");
}

#[tokio::test]
async fn presets_compose_and_unknown_ones_are_refused() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let mut r = request("python", "print(1)");
    r.preset = Some("nope".into());
    assert_eq!(
        kind_of(&engine, &anyone, r.clone()).await,
        Kind::InvalidRequest
    );
    r.preset = Some("strict".into());
    engine.submit(&anyone, r).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert!(
        jobs[0].policy.profile.contains("strict"),
        "{}",
        jobs[0].policy.profile
    );
}

#[tokio::test]
async fn lenient_compile_limits_are_lowered_or_dropped_after_authorization() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let max = engine
        .profile("c", &Grant::default())
        .unwrap()
        .policy
        .compile
        .unwrap()
        .limits
        .wall
        .unwrap();
    // A request's own compile limits: refused without a stage, and above the stage's maximum.
    let mut r = request("python", "print(1)");
    r.ask.compile.wall = Some(Duration::from_secs(1));
    assert_eq!(
        kind_of(&engine, &anyone, r.clone()).await,
        Kind::InvalidRequest
    );
    let mut c = request("c", "int main(void) { return 0; }");
    c.ask.compile.wall = Some(max + Duration::from_secs(1));
    assert_eq!(
        kind_of(&engine, &anyone, c.clone()).await,
        Kind::LimitExceedsProfile
    );
    // A client's defaults (Piston): dropped without a stage, lowered to the stage otherwise.
    r.lenient_compile = true;
    c.lenient_compile = true;
    engine.submit(&anyone, r).await.unwrap();
    engine.submit(&anyone, c).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert!(jobs[0].policy.compile.is_none());
    let stage = jobs[1].policy.compile.as_ref().unwrap();
    assert_eq!(stage.limits.wall, Some(max));
}
