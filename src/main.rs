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
            eprintln!("{} (see --help)", one_line(&e.render().to_string()));
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

/// clap's message (everything before its usage block, tips included) folded onto one line: some
/// messages put the essential part — which argument is missing — on the lines after the first.
fn one_line(rendered: &str) -> String {
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
