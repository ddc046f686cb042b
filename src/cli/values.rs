//! Values of flags that are more than a string or a number: `--concurrency`, `--format`,
//! `merge`'s `--keep`, and the duration and size parsers clap calls (so that a bad value, also
//! one from the config file, is reported by clap with the flag's name).

use crate::output::{Format, formats};

/// `--concurrency`: a fixed number of in-flight requests per worker, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

impl Concurrency {
    /// Parsed by clap, so that a bad value in the config file is blamed on the file.
    pub(super) fn parse(text: &str) -> Result<Concurrency, String> {
        match text.trim() {
            "auto" => Ok(Concurrency::Auto),
            n => n
                .parse()
                .map(Concurrency::Fixed)
                .map_err(|_| "expected a whole number of requests per worker, or auto".into()),
        }
    }
}

/// `--format`: a row format by its flag name, among those `output` writes (clap lists them).
pub(super) fn format_arg() -> impl clap::builder::TypedValueParser<Value = &'static dyn Format> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(formats::flags())
        .map(|flag| formats::by_flag(&flag).expect("clap takes only the flag names of formats"))
}

/// `merge --allow-duplicates`: which input's row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepArg {
    /// The row of the input listed first.
    First,
    /// The row of the input listed last.
    Last,
}

/// A duration as wrk, oha and hey take it: a number with a unit (`ms`, `s`, `m`, `h`), or a bare
/// number in the flag's own unit (seconds for most, milliseconds for `--p99-budget`); in units
/// of `bare` seconds. Range checks are `config`'s.
pub(super) fn duration_arg(text: &str, bare: f64) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration such as 30, 500ms, 2.5s or 2m, not {text:?}"))?;
    let unit_secs = match unit {
        "" => bare,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m or h)")),
    };
    Ok(number * unit_secs / bare)
}

/// A size in bytes: a whole number, or one followed by K, M or G (KiB, MiB, GiB; `KiB`, `MB`
/// and lower case are read the same).
pub(super) fn bytes_arg(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size (bytes, or a number with K, M or G)"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (bytes, or a number with K, M or G)"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A duration in seconds (a bare number is seconds).
pub(super) fn seconds_arg(text: &str) -> Result<f64, String> {
    duration_arg(text, 1.0)
}

/// A duration in milliseconds (a bare number is milliseconds).
pub(super) fn millis_arg(text: &str) -> Result<f64, String> {
    duration_arg(text, 1e-3)
}

/// `--max-failed`: a share of rows, as `0.05` or `5%`, from 0 to 1.
pub(super) fn ratio_arg(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent.trim(), 100.0),
        None => (text, 1.0),
    };
    let ratio = number
        .parse::<f64>()
        .map(|n| n / scale)
        .map_err(|_| format!("expected a share such as 0.05 or 5%, not {text:?}"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{text}: a share is from 0 to 1 (0% to 100%)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        for (text, bytes) in [
            ("4096", 4096),
            ("512K", 512 << 10),
            ("16M", 16 << 20),
            ("16 MiB", 16 << 20),
            ("1g", 1 << 30),
        ] {
            assert_eq!(bytes_arg(text), Ok(bytes), "{text}");
        }
        for bad in ["", "M", "1.5M", "-1", "3T", "99999999999999999999G"] {
            assert!(bytes_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_take_units_and_a_bare_number_keeps_the_flags_unit() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        for (text, secs) in [
            ("30", 30.0),
            ("500ms", 0.5),
            ("2.5s", 2.5),
            ("2m", 120.0),
            (" 1h", 3600.0),
        ] {
            assert!(close(seconds_arg(text).expect(text), secs), "{text}");
        }
        assert!(close(millis_arg("200").expect("bare"), 200.0));
        assert!(close(millis_arg("1.5s").expect("s"), 1500.0));
        assert!(
            close(seconds_arg("-1").expect("negative"), -1.0),
            "config refuses it, naming the flag"
        );
        for bad in ["", "fast", "5 parsecs", "5d", "ms"] {
            assert!(seconds_arg(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shares_are_ratios_or_percentages_from_zero_to_one() {
        for (text, ratio) in [
            ("0.05", 0.05),
            ("5%", 0.05),
            ("0", 0.0),
            ("100%", 1.0),
            ("1", 1.0),
        ] {
            assert!(
                (ratio_arg(text).expect(text) - ratio).abs() < 1e-12,
                "{text}"
            );
        }
        for bad in ["", "5", "-0.1", "101%", "NaN", "half"] {
            assert!(ratio_arg(bad).is_err(), "{bad:?}");
        }
    }
}
