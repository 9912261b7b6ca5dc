//! Secrets handed to `pai` through a file or stdin never appear in `/proc/PID/cmdline`, where
//! every local user could read them, and the plain flags' help says so.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Server, PAI};

const TOKEN: &str = "pai_admin_from_a_file_0123456789";
const PROVIDER_KEY: &str = "sk-provider-key-from-a-file";

fn pai(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(PAI)
        .args(args)
        .env("PAI_ADMIN_URL", format!("http://{}", server.admin))
        .env("PAI_ADMIN_TOKEN", TOKEN)
        .env("PAI_DATA_DIR", server.dir.path().join("elsewhere"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pai {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_admin_token_and_a_provider_key_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let server = Server::start(None, &["--admin-token-file", token_file.to_str().unwrap()]);

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN));

    // The CLI authenticates with the token from the file: the server took it.
    let key_file = dir.path().join("openai.key");
    std::fs::write(&key_file, format!("{PROVIDER_KEY}\n")).unwrap();
    let create = [
        "create",
        "model-provider",
        "from-file",
        "--provider",
        "openai",
        "--api-key-file",
        key_file.to_str().unwrap(),
    ];
    pai(&server, &create, None);
    let from_stdin = [
        "create",
        "model-provider",
        "from-stdin",
        "--provider",
        "openai",
        "--api-key",
        "-",
    ];
    pai(&server, &from_stdin, Some(PROVIDER_KEY));
    let secrets = pai(&server, &["get", "secrets"], None);
    assert!(secrets.contains("from-file-api-key"), "{secrets}");
    assert!(secrets.contains("from-stdin-api-key"), "{secrets}");
}

#[test]
fn the_help_of_the_plain_flags_points_at_the_file_forms() {
    let help = |args: &[&str]| {
        let out = Command::new(PAI).args(args).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help(&["serve", "--help"]);
    assert!(serve.contains("--admin-token-file"), "{serve}");
    assert!(serve.contains("process list"), "{serve}");
    let create = help(&["create", "model-provider", "--help"]);
    assert!(create.contains("--api-key-file"), "{create}");
    assert!(create.contains("process list"), "{create}");
}
