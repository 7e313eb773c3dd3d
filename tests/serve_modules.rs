//! The service enforces a profile's `allowed_modules` like `stockade run`: a refusal before the run,
//! and the run-time hook's refusals in the verdict (here in a second file the pre-flight analysis
//! does not read).

mod serve_support;

use serde_json::{Value, json};
use serve_support::Server;

fn rules(v: &Value) -> Vec<(String, u64, String)> {
    v["policy"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            f["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("blocked_"))
        })
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn execute_reports_blocked_imports_before_and_during_the_run() {
    let s = Server::start(&[]);
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python_restricted", "code": "import json\nimport os\n"}),
    );
    let v = r.json();
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    assert_eq!(
        rules(&v),
        [(
            "blocked_import".to_string(),
            2,
            "Blocked import: os (not in the profile's allowed_modules)".to_string()
        )]
    );

    let r = s.post(
        "/v1/execute",
        &json!({
            "profile": "python_restricted",
            "files": [
                {"name": "main.py", "content": "import helper\nprint(helper.X)\n"},
                {"name": "helper.py", "content": "import json\ntry:\n    import socket\nexcept ImportError as e:\n    X = str(e)\n"},
            ],
        }),
    );
    // The pre-flight analysis reads every request file (issue 11), so a blocked import moved into
    // a helper module is refused before the run, and the finding names the file. (The run-time
    // guard's refusal in a module the analysis cannot see is tested through the CLI in
    // tests/modules.rs.)
    let v = r.json();
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    assert!(
        rules(&v).contains(&(
            "blocked_import".to_string(),
            3,
            "`helper.py`: Blocked import: socket (not in the profile's allowed_modules)"
                .to_string()
        )),
        "{v}"
    );
    assert_eq!(v["policy"]["safe"], false);
}
