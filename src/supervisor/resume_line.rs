//! The command line printed to complete an interrupted run: the run's own, `--resume` added
//! once, and the flags that came from elsewhere (environment, a config file found by default)
//! written out, secrets by reference.

use crate::cli::GivenElsewhere;

/// The run's command line, made to resume: `--overwrite` dropped, the flags given elsewhere
/// (environment, default config file) written out, `--resume` last, quoted for a POSIX shell:
/// pasted into a fresh shell, it completes the run.
pub(super) fn resume_command(argv: &[String], given_elsewhere: &[GivenElsewhere]) -> String {
    let args: Vec<String> = argv
        .iter()
        .filter(|a| *a != "--overwrite" && *a != "--resume")
        .cloned()
        .collect();
    // Resume lines land in Slurm .out files and CI logs: no secret in them (a secret variable
    // is written as a reference to it).
    let mut line = shell_words::join(crate::redact::redact_args(&args));
    for given in given_elsewhere {
        line.push(' ');
        line.push_str(&given.shell_words());
    }
    line.push_str(" --resume");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_line_writes_out_flags_from_the_environment_and_secrets_by_reference() {
        use crate::cli::Shown;
        let argv: Vec<String> = [
            "ringscrape",
            "run",
            "-u",
            "http://h/?id={id}",
            "--overwrite",
        ]
        .map(String::from)
        .to_vec();
        let given = [
            GivenElsewhere {
                flag: "--ids".into(),
                value: Shown::Text("0..60000".into()),
            },
            GivenElsewhere {
                flag: "--proxy".into(),
                value: Shown::Variable("RINGSCRAPE_PROXY".into()),
            },
            GivenElsewhere {
                flag: "--config".into(),
                value: Shown::Text("my dir/c.toml".into()),
            },
        ];
        assert_eq!(
            resume_command(&argv, &given),
            "ringscrape run -u 'http://h/?id={id}' --ids 0..60000 --proxy \"${RINGSCRAPE_PROXY:?}\" \
             --config 'my dir/c.toml' --resume"
        );
        let again: Vec<String> = ["ringscrape", "run", "--resume", "-o", "f.csv"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            resume_command(&again, &[]),
            "ringscrape run -o f.csv --resume"
        );
    }
}
