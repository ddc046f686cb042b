//! Entry point: parse the command line, run it, and turn any error into one line on stderr and
//! an exit code (0 done, 1 run failed, 2 bad usage; `run` also 3, 4, 130 and 143: see lib.rs).

use std::process::ExitCode;

use ringscrape::cli::{self, CliError};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            ringscrape::say!("{e} (see --help)");
            return ExitCode::from(ringscrape::EXIT_USAGE);
        }
    };
    match ringscrape::execute(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            ringscrape::say!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
