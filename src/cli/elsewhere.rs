//! Flags whose values the command line did not hold: set by a `RINGSCRAPE_*` variable, or read
//! from the config file found by default. The resume line writes them out, so that pasted into a
//! fresh shell (no variables, another directory) it completes the same run.

use clap::parser::{ArgMatches, ValueSource};
use clap::{Arg, Command};

/// One flag given outside the command line, as the resume line writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenElsewhere {
    /// The long flag, `--ids`.
    pub flag: String,
    pub value: Shown,
}

/// How a value given elsewhere is written into a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// As it was given (quoted for the shell).
    Text(String),
    /// A secret (`RINGSCRAPE_PROXY` may hold a password): a reference to the variable that held
    /// it, `"${RINGSCRAPE_PROXY:?}"`, never its value — one the shell refuses to expand when the
    /// variable is unset, since an empty `--proxy` would quietly go direct.
    Variable(String),
}

impl GivenElsewhere {
    /// `--ids 0..60000`, or `--proxy "${RINGSCRAPE_PROXY:?}"`, for a POSIX shell.
    pub fn shell_words(&self) -> String {
        let value = match &self.value {
            Shown::Text(text) => shell_words::quote(text).into_owned(),
            Shown::Variable(name) => format!("\"${{{name}:?}}\""),
        };
        format!("{} {value}", self.flag)
    }
}

/// The flags of `run` (matched as `sub`) whose values came from the environment, then the
/// config file read without being named (`default_config`), in the order of `run --help`.
pub fn of(
    run: &Command,
    sub: &ArgMatches,
    default_config: Option<&std::path::Path>,
) -> Vec<GivenElsewhere> {
    let mut given: Vec<GivenElsewhere> = run
        .get_arguments()
        .filter(|arg| sub.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable))
        .filter_map(from_environment)
        .collect();
    if let Some(path) = default_config {
        given.push(GivenElsewhere {
            flag: "--config".into(),
            value: Shown::Text(path.display().to_string()),
        });
    }
    given
}

fn from_environment(arg: &Arg) -> Option<GivenElsewhere> {
    let (long, var) = (arg.get_long()?, arg.get_env()?);
    let name = var.to_string_lossy().into_owned();
    let value = if arg.is_hide_env_values_set() {
        Shown::Variable(name)
    } else {
        Shown::Text(std::env::var_os(var)?.to_string_lossy().into_owned())
    };
    Some(GivenElsewhere {
        flag: format!("--{long}"),
        value,
    })
}
