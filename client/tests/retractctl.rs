//! `retractctl` without a server: help, exit codes of problems found before or at
//! connecting, the config file, completions. (Against a running server: the e2e suite's
//! `cli` module, which runs the binary this test makes cargo build.)

use std::process::{Command, Output};

fn retractctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let config_home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retractctl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RETRACT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", config_home.path())
        .args(args)
        .envs(env.iter().copied());
    cmd.output().expect("retractctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An endpoint nobody listens on.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn help_documents_every_exit_code_and_the_workflow_commands() {
    let out = retractctl(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for code in 0..=9 {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code}  "))),
            "exit code {code} is documented:\n{help}"
        );
    }
    for command in [
        "tenants",
        "domains",
        "grant",
        "verify-domains",
        "deliveries",
        "options",
        "retract",
        "watch",
        "jobs",
        "targets",
        "cancel",
        "restore",
        "audit",
        "completions",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} is listed:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_a_missing_token_exits_5() {
    let out = retractctl(&["retract", "acme"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = retractctl(&["retract", "acme", "<m@x>", "--mode", "gentle"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = retractctl(&["domains", "list", "acme"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no caller token"));
}

#[test]
fn an_unreachable_server_exits_8_and_says_why() {
    let endpoint = dead_endpoint();
    let out = retractctl(
        &["domains", "list", "acme", "--timeout-s", "5"],
        &[("RETRACT_ENDPOINT", &endpoint), ("RETRACT_TOKEN", "t")],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("UNAVAILABLE"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the cause is shown: {stderr}"
    );

    let out = retractctl(
        &["-o", "json", "domains", "list", "acme"],
        &[("RETRACT_ENDPOINT", &endpoint), ("RETRACT_TOKEN", "t")],
    );
    let error: serde_json::Value =
        serde_json::from_str(text(&out.stderr).trim()).expect("a JSON error with --output json");
    assert_eq!(error["error"]["code"], "UNAVAILABLE");
}

#[test]
fn the_config_file_is_used_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-the-file\n").unwrap();
    let endpoint = dead_endpoint();
    std::fs::write(
        &config,
        format!(
            "endpoint = \"{endpoint}\"\ntoken_file = \"{}\"\noutput = \"json\"\n",
            token_file.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = retractctl(&["--config", config, "domains", "list", "acme"], &[]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "the file's token and endpoint are used: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).starts_with('{'),
        "the file's output = json"
    );
    let out = retractctl(
        &["--config", config, "-o", "human", "domains", "list", "acme"],
        &[("RETRACT_ENDPOINT", "not a url")],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the variable wins over the file: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).starts_with("error:"),
        "the flag wins over the file"
    );

    std::fs::write(dir.path().join("bad.toml"), "endpont = \"x\"\n").unwrap();
    let bad = dir.path().join("bad.toml");
    let out = retractctl(&["--config", bad.to_str().unwrap(), "jobs", "acme"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown key is a usage error"
    );
    assert!(
        text(&out.stderr).contains("endpont"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_are_generated_for_the_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = retractctl(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("retractctl") && script.contains("verify-domains"),
            "{shell}"
        );
    }
}

#[test]
fn development_tokens_are_minted_without_a_server() {
    let out = retractctl(
        &["token", "--permission", "retract.read", "--tenant", "acme"],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim().split('.').count(), 3, "a JWT");
}
