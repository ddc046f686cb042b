//! Command-line definitions (clap derive): `run` (rows as CSV, JSON Lines or Parquet), `merge`,
//! `tune`, `serve`, `completions` and the hidden `worker`; and the config file, which is a
//! layer of `run` flags under the command line.
//!
//! The config file is the one named (`--config`, `RINGSCRAPE_CONFIG`), else the user's own
//! (`$XDG_CONFIG_HOME/ringscrape/config.toml`, else `~/.config/ringscrape/config.toml`) when it
//! exists; never one found in the working directory, which belongs to whatever project the run
//! starts in. It holds flags by their long names (`concurrency = 64`, `headers = [...]` for a
//! repeatable flag, `no_progress = true` for a switch). It is read as if its flags were typed
//! before the command line's, so a flag given on the command line wins (repeatable flags add up),
//! and a flag exists in one place only. Values stay raw here (strings, plain numbers); `config`
//! checks and converts them, so every bad input gets the same one-line error and exit code 2.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod elsewhere;
mod run;
mod values;

pub use commands::{CompletionsArgs, MergeArgs, ServeArgs, TuneArgs, WorkerArgs};
pub use elsewhere::{GivenElsewhere, Shown};
pub use run::{ItemArgs, RunArgs};
pub use values::{Concurrency, KeepArg};

/// The repository's config file, documenting every key; `make run` names it with `--config`
/// (`run` reads no file of the working directory by itself).
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

/// The user's config file, under the XDG base directory: `$XDG_CONFIG_HOME/ringscrape/config.toml`
/// (an absolute path, as the specification asks), else `$HOME/.config/ringscrape/config.toml`.
fn user_config_path(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| {
        var(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let dir = match set("XDG_CONFIG_HOME").filter(|dir| dir.is_absolute()) {
        Some(dir) => dir,
        None => set("HOME")?.join(".config"),
    };
    Some(dir.join("ringscrape").join("config.toml"))
}

#[derive(Parser, Debug)]
#[command(
    name = "ringscrape",
    version,
    about = "Fetch a URL template over a huge id range and stream one row per id (CSV, JSON Lines, Parquet or Arrow)",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scrape URL for every id in a range, writing one row per id (CSV, JSON Lines, Parquet or Arrow)
    #[command(args_override_self = true)]
    Run(RunArgs),
    /// Merge the outputs of a job's nodes (CSV, JSON Lines, Parquet or Arrow) into one, proving that
    /// every id has exactly one row
    /// (exit 0), else naming the missing and duplicated ids (exit 1)
    Merge(MergeArgs),
    /// Find the concurrency to use: short runs at each concurrency, a table of req/s and
    /// latency, the knee marked, the run command printed
    Tune(TuneArgs),
    /// Serve the built-in demo target: a JSON record per id (from `?id=N` or a path `/…/N`), optional delays and faults
    Serve(ServeArgs),
    /// Print a shell completion script (e.g. `ringscrape completions bash > ~/.local/share/bash-completion/completions/ringscrape`)
    Completions(CompletionsArgs),
    /// Internal: one worker process of a run (started by `run`)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Writes the completion script for `shell` to stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "ringscrape", &mut std::io::stdout());
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags, or `--help` / `--version` (which clap reports as errors).
    #[error("{}", one_line(&.0.render().to_string()))]
    Clap(#[from] clap::Error),
    #[error("error: config file {0}: {1}")]
    ConfigFile(PathBuf, String),
}

/// Parses `argv`; for `run`, with the config file's flags placed before the command line's.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, CliError> {
    let cli = Cli::try_parse_from(&argv)?;
    let Command::Run(run) = &cli.command else {
        return Ok(cli);
    };
    let path = match &run.config {
        Some(path) => path.clone(),
        None => match user_config_path(|name| std::env::var_os(name)) {
            Some(path) if path.exists() => path,
            _ => return parse_run(argv, None),
        },
    };
    let named = run.config.is_some();
    let mut layer = config_file_args(&path)?;
    // Precedence is flag, environment variable, config file, default: a file value for a flag
    // whose RINGSCRAPE_* variable is set gives way to it.
    layer.retain(|arg| !set_by_environment(arg));
    // `-d` adds up (its pieces are joined), so the command line's replaces the file's body here,
    // as a flag given once replaces the file's value of any other.
    if !run.data.is_empty() {
        layer.retain(|arg| long_name(arg) != Some("data"));
    }
    let program = argv.first().cloned().unwrap_or_else(|| "ringscrape".into());
    // The file's flags alone first, so that a bad value in it is blamed on the file.
    let alone = [program.clone(), "run".into()]
        .into_iter()
        .chain(layer.iter().cloned());
    Cli::try_parse_from(alone).map_err(|e| {
        // One `error:` for the line, before the file's name, not a second one after it.
        let message = one_line(&e.render().to_string());
        let message = message
            .strip_prefix("error: ")
            .unwrap_or(&message)
            .to_string();
        CliError::ConfigFile(path.clone(), message)
    })?;
    // `argv` is `program run <flags…>`: `run` has no global flags before it.
    let merged = [program, "run".into()]
        .into_iter()
        .chain(layer)
        .chain(argv.into_iter().skip(2));
    parse_run(merged, (!named).then_some(path.as_path()))
}

/// `run`'s final parse, noting the flags given elsewhere than on the command line (see
/// [`elsewhere`]); `default_config` is the config file read without being named.
fn parse_run(
    argv: impl IntoIterator<Item = OsString>,
    default_config: Option<&Path>,
) -> Result<Cli, CliError> {
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(argv)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    if let (Command::Run(run), Some(("run", sub)), Some(flags)) = (
        &mut cli.command,
        matches.subcommand(),
        command.find_subcommand("run"),
    ) {
        run.given_elsewhere = elsewhere::of(flags, sub, default_config);
    }
    Ok(cli)
}

/// The flag a config file's `--name=value` argument stands for.
fn long_name(arg: &OsString) -> Option<&str> {
    arg.to_str()
        .and_then(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a))
}

/// True when `arg` (`--name=value` from the config file) is a flag whose environment variable
/// is set.
fn set_by_environment(arg: &OsString) -> bool {
    let Some(name) = long_name(arg) else {
        return false;
    };
    let command = Cli::command();
    let run = command
        .find_subcommand("run")
        .expect("the run subcommand exists");
    run.get_arguments()
        .filter(|a| a.get_long() == Some(name))
        .filter_map(|a| a.get_env())
        .any(|var| std::env::var_os(var).is_some())
}

/// The flags a config file stands for, as `--name=value` arguments in the file's order.
pub fn config_file_args(path: &Path) -> Result<Vec<OsString>, CliError> {
    let fail = |message: String| CliError::ConfigFile(path.to_path_buf(), message);
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(one_line(&e.to_string())))?;
    let command = Cli::command();
    let run = command
        .find_subcommand("run")
        .expect("the run subcommand exists");
    let keys: Vec<&str> = run
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|&long| long != "config")
        .collect();
    let mut args = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let known = run.get_arguments().any(|arg| {
            arg.get_long() == Some(name.as_str())
                || arg
                    .get_all_aliases()
                    .is_some_and(|a| a.contains(&name.as_str()))
        });
        if !known || name == "config" {
            // Named as the file spells its keys (`connect_timeout` or `connect-timeout`).
            let hint = crate::suggest::nearest(&name, keys.iter().copied())
                .map(|near| match key.contains('-') {
                    true => format!("did you mean `{near}`? "),
                    false => format!("did you mean `{}`? ", near.replace('-', "_")),
                })
                .unwrap_or_default();
            return Err(fail(format!(
                "unknown key `{key}` ({hint}keys are the long flags of `ringscrape run --help`)"
            )));
        }
        let values = match value {
            toml::Value::Array(items) => items,
            scalar => vec![scalar],
        };
        for value in values {
            let text = match value {
                toml::Value::Boolean(true) => {
                    args.push(format!("--{name}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => {
                    return Err(fail(format!(
                        "`{key}`: expected a string, number, boolean or a list of them, not {}",
                        other.type_str()
                    )));
                }
            };
            args.push(format!("--{name}={text}").into());
        }
    }
    Ok(args)
}

/// clap's message (everything before its usage block, tips included) folded onto one line: some
/// messages put the essential part — which argument is missing — on the lines after the first.
pub fn one_line(rendered: &str) -> String {
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        // We add our own pointer to --help.
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    if message.is_empty() {
        "error: invalid arguments".to_string()
    } else {
        message.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn run_args(argv: &[&str]) -> RunArgs {
        let argv = argv.iter().map(OsString::from).collect();
        match parse(argv).expect("valid flags").command {
            Command::Run(run) => run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_file_is_a_layer_under_the_command_line() {
        let (_dir, path) =
            file("concurrency = 64\nshards = 3\ntimeout = 5.5\nno_progress = true\noutput = '-'\n");
        let config = path.to_str().expect("utf-8 path");
        let run = run_args(&["rs", "run", "--config", config, "-c", "128"]);
        assert_eq!(run.concurrency, Concurrency::Fixed(128), "flag wins");
        assert_eq!(run.shards, Some(3), "file value when no flag");
        assert_eq!(run.timeout, 5.5);
        assert_eq!(run.connect_timeout, 10.0, "default when neither");
        assert!(run.no_progress, "a switch from the file");
        assert_eq!(
            run.output,
            PathBuf::from("-"),
            "a value that looks like a flag"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_blamed_on_the_file() {
        let (_dir, path) = file("concurency = 5\n");
        let err = config_file_args(&path).expect_err("unknown key");
        assert!(
            err.to_string().starts_with("error: config file ")
                && err.to_string().contains(
                    "unknown key `concurency` (did you mean `concurrency`? keys are the long flags"
                ),
            "{err}"
        );
        let (_dir, path) = file("connect-timout = 5\ndatabase = 'postgres://db'\n");
        let err = config_file_args(&path).expect_err("unknown key");
        assert!(err.to_string().contains("`connect-timeout`?"), "{err}");
        let (_dir, path) = file("database = 'postgres://db'\n");
        let err = config_file_args(&path).expect_err("unknown key");
        assert!(
            err.to_string()
                .contains("unknown key `database` (keys are the long flags"),
            "{err}"
        );
        let (_dir, path) = file("concurrency = 'many'\n");
        let argv = ["rs", "run", "--config", path.to_str().expect("utf-8")];
        let err = parse(argv.iter().map(OsString::from).collect()).expect_err("bad value");
        assert!(matches!(err, CliError::ConfigFile(..)), "{err}");
        assert!(err.to_string().contains("'many'"), "{err}");
        assert_eq!(err.to_string().matches("error:").count(), 1, "{err}");
    }

    #[test]
    fn the_user_config_is_under_xdg_config_home_else_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let both = env(&[("XDG_CONFIG_HOME", "/x/conf"), ("HOME", "/home/ann")]);
        assert_eq!(
            user_config_path(both),
            Some(PathBuf::from("/x/conf/ringscrape/config.toml"))
        );
        let home = PathBuf::from("/home/ann/.config/ringscrape/config.toml");
        let relative = env(&[("XDG_CONFIG_HOME", "conf"), ("HOME", "/home/ann")]);
        assert_eq!(user_config_path(relative), Some(home.clone()), "ignored");
        let empty = env(&[("XDG_CONFIG_HOME", ""), ("HOME", "/home/ann")]);
        assert_eq!(user_config_path(empty), Some(home));
        assert_eq!(user_config_path(env(&[])), None);
    }

    #[test]
    fn duration_flags_take_units() {
        let run = run_args(&["rs", "run", "--timeout", "500ms", "--grace", "1m"]);
        assert!((run.timeout - 0.5).abs() < 1e-9 && (run.grace - 60.0).abs() < 1e-9);
    }

    #[test]
    fn the_shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let args = config_file_args(&path).expect("config/default.toml is valid");
        assert!(
            args.contains(&OsString::from("--concurrency=256")),
            "{args:?}"
        );
    }
}
