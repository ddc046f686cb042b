//! Entry point: parse the command line, run it, and turn any error into one line on stderr and
//! an exit code (0 done, 1 run failed, 2 bad usage).

use std::process::ExitCode;

use clap::Parser;
use ringscrape::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(ringscrape::EXIT_USAGE);
        }
    };
    match ringscrape::execute(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
