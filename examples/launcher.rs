//! Run sandboxes from your own tokio program through stockade's launcher.
//!
//! The launcher must be started while the process is still single-threaded, i.e. before the tokio
//! runtime is built. Run with: `cargo run --example launcher -- 'print(6*7)'`.

use stockade::cgroup::CgroupOptions;
use stockade::daemon::launcher::{Event, Job, Launcher};
use stockade::policy::Policy;

fn main() -> std::io::Result<()> {
    let launcher = Launcher::start(CgroupOptions::default())?;
    let code = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "print('hello')".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Four sandboxes at once: each is cloned by its own single-threaded worker.
        let mut tasks = Vec::new();
        for i in 0..4 {
            let launcher = launcher.clone();
            let mut policy = Policy::default();
            policy.argv = vec!["python3".into(), "-c".into(), code.clone()];
            tasks.push(tokio::spawn(async move {
                let mut run = launcher
                    .spawn(Job {
                        policy,
                        ..Job::default()
                    })
                    .await?;
                while let Some(event) = run.next().await {
                    match event {
                        Event::Stdout(b) => print!("[{i}] {}", String::from_utf8_lossy(&b)),
                        Event::Stderr(b) => eprint!("[{i}] {}", String::from_utf8_lossy(&b)),
                        Event::Finished(v) => {
                            println!("[{i}] {} in {} ms", v.status.as_str(), v.wall_ms)
                        }
                    }
                }
                std::io::Result::Ok(())
            }));
        }
        for t in tasks {
            t.await.expect("task")?;
        }
        println!("launcher alive: {}", launcher.alive());
        Ok(())
    })
}
