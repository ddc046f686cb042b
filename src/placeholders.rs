//! Every placeholder of the request is filled by something, and every source of items fills one:
//! checked once the key files' columns are known, before anything is fetched. A `{date}` that no
//! column fills would be sent as written, and a key file none of whose columns the request uses
//! would only repeat its requests; both are usage errors naming what was typed.

use crate::ids::IdRange;
use crate::job::{Product, RecordFile, RecordFormat};
use crate::redact::{redact_header, redact_url};
use crate::request::RequestSpec;
use crate::suggest::nearest;
use crate::template::{ID_NAME, unfilled};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaceholderError {
    #[error("{given}: nothing fills {{{name}}}, which would be sent as written{hint}; {known}")]
    Unfilled {
        /// The flag and its text as a message may show them (`--url http://…`).
        given: String,
        name: String,
        /// ` (did you mean {day}?)`, or nothing.
        hint: String,
        /// `the placeholders are {id}; {user} from users.csv`.
        known: String,
    },
    #[error(
        "--ids {ids} with {with}: the request does not use {{id}}, so each request would be sent {times} times; put {{id}} in the URL, a header or the body, or drop --ids"
    )]
    UnusedIds {
        ids: IdRange,
        /// `--keys`, or `--urls` (what the user typed, not what it becomes).
        with: &'static str,
        times: u64,
    },
    #[error(
        "{flag} {file}: the request uses none of its columns ({columns}), so its {records} records would only repeat the requests {records} times over; put {first} in the URL, a header or the body, or leave the file out"
    )]
    UnusedKeys {
        /// `--keys`, or `--urls`.
        flag: &'static str,
        file: String,
        columns: String,
        first: String,
        records: u64,
    },
}

/// Refuses a placeholder of `spec` that no name fills (`spec.key_columns` already set from
/// `product`), then a source of items that fills none: `--ids` beside key files when `{id}` is
/// unused, or a key file none of whose columns is used.
pub fn check(spec: &RequestSpec, product: Option<&Product>) -> Result<(), PlaceholderError> {
    let names = spec.names();
    for (flag, text) in spec.templates() {
        if let Some(name) = unfilled(text, &names).first() {
            let hint = nearest(name, names.iter().copied())
                .map(|near| format!(" (did you mean {{{near}}}?)"))
                .unwrap_or_default();
            return Err(PlaceholderError::Unfilled {
                given: shown(flag, text),
                name: (*name).to_string(),
                hint,
                known: known(product),
            });
        }
    }
    let Some(product) = product else {
        // One source: a request without any placeholder is refused when compiled.
        return Ok(());
    };
    let used = spec.used_slots();
    if let Some(ids) = product.ids
        && !used[0]
    {
        return Err(PlaceholderError::UnusedIds {
            ids,
            with: flag_of(&product.files),
            times: ids.len(),
        });
    }
    // Slot 0 is `{id}`; each file's columns take the slots after the files before it.
    let mut slot = 1;
    for file in &product.files {
        let slots = slot..slot + file.columns.len();
        slot = slots.end;
        // A column named like one before it (`id`, another file's) fills no placeholder of its
        // own: the column check refuses it by both names, more to the point than this would.
        let shadowed = file
            .columns
            .iter()
            .any(|c| names[..slots.start].contains(&&*c.name));
        if !shadowed && !used[slots].contains(&true) {
            let columns: Vec<String> = file.columns.iter().map(|c| braced(&c.name)).collect();
            return Err(PlaceholderError::UnusedKeys {
                flag: flag_of(std::slice::from_ref(file)),
                file: file.shown.clone(),
                first: columns.first().cloned().unwrap_or_default(),
                columns: columns.join(", "),
                records: file.records,
            });
        }
    }
    Ok(())
}

/// The flag that gave `text`, and the text as a message may show it (credentials left out; a
/// body not at all, being long).
fn shown(flag: &str, text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match flag {
        "url" => format!("--url {}", redact_url(&text)),
        "header" => format!("--header {:?}", redact_header(&text)),
        "data" => "--data".to_string(),
        _ => format!("--{flag} {text:?}"),
    }
}

/// What fills placeholders in this run: `{id}`, and each key file's columns.
fn known(product: Option<&Product>) -> String {
    let files = product.map_or(&[][..], |p| p.files.as_slice());
    if files.is_empty() {
        return format!(
            "the only placeholder is {} (--keys FILE adds a file's columns)",
            braced(ID_NAME)
        );
    }
    let mut known = vec![braced(ID_NAME)];
    for file in files {
        let columns: Vec<String> = file.columns.iter().map(|c| braced(&c.name)).collect();
        known.push(format!("{} from {}", columns.join(", "), file.shown));
    }
    format!("the placeholders are {}", known.join("; "))
}

/// The flag that gave `files`: `--urls` when one of them is a URL list, else `--keys`.
fn flag_of(files: &[RecordFile]) -> &'static str {
    match files.iter().any(|f| f.format == RecordFormat::UrlLines) {
        true => "--urls",
        false => "--keys",
    }
}

fn braced(name: &str) -> String {
    format!("{{{name}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RecordFile, RecordFormat};

    fn spec(url: &str, headers: &[&str], columns: &[&str]) -> RequestSpec {
        RequestSpec {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            key_columns: columns.iter().map(|c| c.to_string()).collect(),
            ..RequestSpec::of_url(url)
        }
    }

    fn product(dir: &std::path::Path, ids: Option<IdRange>, files: &[(&str, &str)]) -> Product {
        let files = files
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).expect("write");
                RecordFile::scan(&path, name, RecordFormat::Csv).expect("scan")
            })
            .collect();
        Product { ids, files }
    }

    #[test]
    fn a_placeholder_nothing_fills_is_named_with_the_ones_there_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = product(
            dir.path(),
            None,
            &[
                ("users.csv", "user,tenant\nann,a\n"),
                ("days.csv", "day\nmon\n"),
            ],
        );
        let names = ["user", "tenant", "day"];
        let url = "http://h/users/{user}/logs?date={date}";
        let err = check(&spec(url, &[], &names), Some(&keys)).expect_err("{date}");
        assert_eq!(
            err.to_string(),
            "--url http://h/users/{user}/logs?date={date}: nothing fills {date}, which would be sent as written (did you mean {day}?); the placeholders are {id}; {user}, {tenant} from users.csv; {day} from days.csv"
        );
        let headers = ["X-Day: {dya}"];
        let err = check(
            &spec("http://h/{user}/{day}", &headers, &names),
            Some(&keys),
        )
        .expect_err("{dya}");
        assert!(
            err.to_string()
                .starts_with("--header \"X-Day: {dya}\": nothing fills {dya}"),
            "{err}"
        );
        let err = check(&spec("http://h/{usr}", &[], &[]), None).expect_err("{usr}");
        assert!(
            err.to_string().contains("nothing fills {usr}")
                && err.to_string().contains("the only placeholder is {id}"),
            "{err}"
        );
        let mut body = spec("http://h/{id}", &[], &[]);
        body.body = Some(br#"{"a": {id}, "b": {"c": 1}}"#.to_vec());
        assert_eq!(check(&body, None), Ok(()), "JSON braces are no placeholder");
    }

    #[test]
    fn a_source_of_items_that_fills_no_placeholder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = [
            ("users.csv", "user,tenant\nann,a\nbob,b\n"),
            ("days.csv", "day\nmon\ntue\nwed\n"),
        ];
        let names = ["user", "tenant", "day"];
        let keys = product(dir.path(), None, &files);
        let err = check(&spec("http://h/{user}", &[], &names), Some(&keys)).expect_err("days");
        assert_eq!(
            err,
            PlaceholderError::UnusedKeys {
                flag: "--keys",
                file: "days.csv".into(),
                columns: "{day}".into(),
                first: "{day}".into(),
                records: 3,
            }
        );
        let tenant = ["X-Tenant: {tenant}"];
        let err = check(&spec("http://h/{day}", &tenant, &names), Some(&keys));
        assert_eq!(err, Ok(()), "one column of a file is enough");
        let clash = product(dir.path(), None, &[("ids.csv", "id\n1\n")]);
        let clash_spec = spec("http://h/{id}", &[], &["id"]);
        assert_eq!(
            check(&clash_spec, Some(&clash)),
            Ok(()),
            "left to the clash check"
        );
        let with_ids = product(dir.path(), Some(IdRange::new(0, 10)), &files);
        let err = check(&spec("http://h/{user}/{day}", &[], &names), Some(&with_ids));
        assert_eq!(
            err,
            Err(PlaceholderError::UnusedIds {
                ids: IdRange::new(0, 10),
                with: "--keys",
                times: 10
            })
        );
    }
}
