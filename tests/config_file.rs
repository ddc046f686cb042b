//! Which config file `run` reads: the one named, else the user's (`$XDG_CONFIG_HOME`, else
//! `~/.config`), never one that the working directory happens to hold; and its errors start with
//! `error:` and name the nearest key.

use std::path::Path;

use crate::common::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn a_config_default_toml_of_the_working_directory_is_not_read() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // Another project's config, as a newcomer's repository may hold one.
    write(
        &dir.path().join("config/default.toml"),
        "database = \"postgres://localhost/app\"\nconcurrency = \"many\"\n",
    );
    TestCommand::run(dir.path(), &server.url(), "0..20")
        .output("out.csv")
        .arg("--no-progress")
        .ok();
    assert_one_row_per_id(&read_rows(&dir.path().join("out.csv")), 0, 20);
}

#[test]
fn the_user_config_directory_is_read_xdg_config_home_first_then_home() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        &d.join("xdg/ringscrape/config.toml"),
        "output = \"from-xdg.csv\"\n",
    );
    write(
        &d.join("home/.config/ringscrape/config.toml"),
        "output = \"from-home.csv\"\n",
    );
    TestCommand::run(d, &server.url(), "0..10")
        .env("XDG_CONFIG_HOME", d.join("xdg"))
        .env("HOME", d.join("home"))
        .arg("--no-progress")
        .ok();
    assert_one_row_per_id(&read_rows(&d.join("from-xdg.csv")), 0, 10);
    // An empty XDG_CONFIG_HOME is unset, as the XDG specification says.
    TestCommand::run(d, &server.url(), "0..10")
        .env("XDG_CONFIG_HOME", "")
        .env("HOME", d.join("home"))
        .arg("--no-progress")
        .ok();
    assert_one_row_per_id(&read_rows(&d.join("from-home.csv")), 0, 10);
    // The named file wins over the user's.
    write(&d.join("named.toml"), "output = \"from-named.csv\"\n");
    TestCommand::run(d, &server.url(), "0..10")
        .env("XDG_CONFIG_HOME", d.join("xdg"))
        .env("RINGSCRAPE_CONFIG", "named.toml")
        .arg("--no-progress")
        .ok();
    assert_one_row_per_id(&read_rows(&d.join("from-named.csv")), 0, 10);
}

#[test]
fn a_bad_config_file_is_an_error_line_naming_the_nearest_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(&d.join("typo.toml"), "concurency = 4\n");
    let out = TestCommand::run(d, "http://127.0.0.1:9/{id}", "0..10")
        .args(["--config", "typo.toml", "-o", "out.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: config file typo.toml: unknown key `concurency` (did you mean `concurrency`?"
        ),
        "{err}"
    );
    write(&d.join("bad.toml"), "timeout = 'soon'\n");
    let out = TestCommand::run(d, "http://127.0.0.1:9/{id}", "0..10")
        .args(["--config", "bad.toml", "-o", "out.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: config file bad.toml: invalid value 'soon'"),
        "one error: prefix, first: {err}"
    );
    // The user's own file is the tool's: a key of another tool in it is refused, naming it.
    write(&d.join("xdg/ringscrape/config.toml"), "database = 1\n");
    let out = TestCommand::run(d, "http://127.0.0.1:9/{id}", "0..10")
        .args(["-o", "out.csv"])
        .env("XDG_CONFIG_HOME", d.join("xdg"))
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: config file ")
            && err.contains("xdg/ringscrape/config.toml: unknown key `database`"),
        "{err}"
    );
    assert!(!d.join("out.csv").exists());
}
