//! `pai serve --config FILE` (or `PAI_CONFIG`): the same settings as the flags, from a YAML file.
//!
//! The keys are the flags' long names, exactly as on the command line (`admin-listen`,
//! `trusted-proxy`, `max-body-bytes`, `filename`); a flag that can be repeated takes a list;
//! a flag without a value takes `true` or `false`. The mapping is read from the clap definition
//! of `pai serve` itself, so a new flag is a new setting with no code here:
//!
//! ```yaml
//! listen: 0.0.0.0:8080
//! admin-listen: 0.0.0.0:8081
//! data-dir: /var/lib/pai
//! trusted-proxy: [10.0.0.0/8]
//! prices: /etc/pai/prices/prices.yaml
//! ```
//!
//! A flag given on the command line, or through its environment variable, beats the file; the
//! file beats the built-in defaults. An unknown key is refused with its name and the nearest
//! valid one. Secrets (the admin token, database URLs with a password) belong in environment
//! variables or files (`PAI_ADMIN_TOKEN`, `admin-token-file`, `PAI_STORE_URL`), as the Helm
//! chart passes them, not in this file.
//!
//! How: the file's settings become `--name=value` arguments appended to the command line for
//! every flag that was not given on it or in the environment, and the whole is parsed again by
//! clap, which checks every value as it checks a flag's.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use serde_json::Value;

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Flags that are not settings.
const NOT_SETTINGS: [&str; 3] = ["config", "help", "version"];

/// Read `path` and answer the arguments to append to a `pai serve` command line that `serve`
/// (the subcommand's definition) parsed into `given`.
pub fn arguments(
    path: &Path,
    serve: &Command,
    given: &ArgMatches,
) -> Result<Vec<OsString>, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "--config {}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        ));
    }
    from_text(&text, serve, given).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// The arguments the settings in `text` add; see [`arguments`].
pub fn from_text(text: &str, serve: &Command, given: &ArgMatches) -> Result<Vec<OsString>, String> {
    let settings: BTreeMap<String, Value> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_saphyr::from_str::<Option<BTreeMap<String, Value>>>(text)
            .map_err(|e| format!("not a YAML mapping of setting: value: {e}"))?
            .unwrap_or_default()
    };
    let settings_named: Vec<&str> = serve
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_SETTINGS.contains(l))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &settings {
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_SETTINGS.contains(&key.as_str()))
            .ok_or_else(|| unknown(key, &settings_named))?;
        // The command line and the environment beat the file.
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{key}");
        if !arg.get_action().takes_values() {
            match value {
                Value::Bool(true) => out.push(OsString::from(&flag)),
                Value::Bool(false) => {}
                _ => return Err(format!("{key}: expected true or false")),
            }
            continue;
        }
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            Value::Array(items) if repeatable => items.iter().collect(),
            Value::Array(_) => {
                return Err(format!("{key}: takes one value, not a list"));
            }
            other => vec![other],
        };
        for v in values {
            let v = scalar(v).ok_or_else(|| {
                format!(
                    "{key}: expected a {}",
                    if repeatable {
                        "value or a list of values"
                    } else {
                        "single value (a string or a number)"
                    }
                )
            })?;
            out.push(OsString::from(format!("{flag}={v}")));
        }
    }
    Ok(out)
}

/// A scalar as the command line would spell it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn unknown(key: &str, valid: &[&str]) -> String {
    let nearest = valid
        .iter()
        .min_by_key(|v| distance(key, v))
        .map(|v| format!("; did you mean \"{v}\"?"))
        .unwrap_or_default();
    format!(
        "unknown setting \"{key}\"{nearest} (the settings are the long names of `pai serve`'s flags, e.g. admin-listen)"
    )
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::Cli;

    /// `pai serve ARGS` with the settings in `yaml`, parsed as `main` parses it.
    fn parse(args: &[&str], yaml: &str) -> Result<crate::serve::ServeArgs, String> {
        let mut command = Cli::command();
        command.build();
        let serve = command.find_subcommand("serve").unwrap().clone();
        let mut argv: Vec<OsString> = ["pai", "serve"].iter().map(OsString::from).collect();
        argv.extend(args.iter().map(OsString::from));
        let first = serve
            .clone()
            .try_get_matches_from(&argv[1..])
            .map_err(|e| e.to_string())?;
        argv.extend(from_text(yaml, &serve, &first)?);
        let matches = serve
            .try_get_matches_from(&argv[1..])
            .map_err(|e| e.to_string())?;
        crate::serve::ServeArgs::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_beats_defaults_and_the_command_line_beats_the_file() {
        let yaml = "listen: 0.0.0.0:9000\nadmin-listen: 0.0.0.0:9001\nmax-attempts: 5\n";
        let args = parse(&["--admin-listen", "127.0.0.1:7001"], yaml).unwrap();
        assert_eq!(args.listen, "0.0.0.0:9000");
        assert_eq!(args.admin_listen, "127.0.0.1:7001");
        assert_eq!(args.max_attempts, 5);
        // Not in the file, not given: the default.
        assert_eq!(args.header_timeout, 10);
    }

    #[test]
    fn repeatable_flags_take_lists_and_values_are_checked_like_flags() {
        let yaml = "trusted-proxy: [10.0.0.0/8, 192.168.1.1/32]\nfilename: [a.yaml, b.yaml]\n\
                    provider-endpoint: openai=http://127.0.0.1:9000/v1\n";
        let args = parse(&[], yaml).unwrap();
        assert_eq!(args.trusted_proxies.len(), 2);
        assert_eq!(args.files.len(), 2);
        assert_eq!(args.provider_endpoints.len(), 1);

        let e = parse(&[], "trusted-proxy: [not-a-cidr]\n").unwrap_err();
        assert!(e.contains("not-a-cidr"), "{e}");
        let e = parse(&[], "max-attempts: [1, 2]\n").unwrap_err();
        assert_eq!(e, "max-attempts: takes one value, not a list");
        let e = parse(&[], "max-attempts: many\n").unwrap_err();
        assert!(e.contains("many"), "{e}");
        let e = parse(&[], "listen: {host: a}\n").unwrap_err();
        assert!(e.contains("listen: expected a single value"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_it_and_the_nearest() {
        let e = parse(&[], "admin-listn: 0.0.0.0:8081\n").unwrap_err();
        assert!(e.contains("unknown setting \"admin-listn\""), "{e}");
        assert!(e.contains("did you mean \"admin-listen\"?"), "{e}");
        // snake_case is not the convention: refused, pointing at the kebab-case name.
        let e = parse(&[], "max_body_bytes: 10\n").unwrap_err();
        assert!(e.contains("did you mean \"max-body-bytes\"?"), "{e}");
        // A config file cannot name another.
        let e = parse(&[], "config: other.yaml\n").unwrap_err();
        assert!(e.contains("unknown setting \"config\""), "{e}");
    }

    #[test]
    fn an_empty_file_or_a_non_mapping() {
        assert!(parse(&[], "").is_ok());
        assert!(parse(&[], "# nothing\n").is_ok());
        let e = parse(&[], "- a\n- b\n").unwrap_err();
        assert!(e.contains("not a YAML mapping"), "{e}");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("admin-listn", "admin-listen"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
