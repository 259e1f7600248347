//! Every option of every subcommand has a help line, `pretrain` and `evaluate` show their real
//! defaults, and README.md's option tables are generated from `trainer <cmd> -h` so they cannot
//! drift: this test fails when a table is not current (`NLS_BLESS=1` rewrites them).

mod common;

use common::workspace_root;
use std::process::Command;

const COMMANDS: [&str; 7] = [
    "noise",
    "data-info",
    "dist-check",
    "dist-bench",
    "pretrain",
    "evaluate",
    "augment-preview",
];

/// One option as `-h` prints it.
struct Opt {
    names: String,
    help: String,
    default: Option<String>,
    values: Option<String>,
}

fn short_help(cmd: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([cmd, "-h"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Cuts a trailing `[key: value]` off `text`.
fn take_bracket(text: &mut String, key: &str) -> Option<String> {
    let start = text.rfind(&format!("[{key}: "))?;
    let value = text[start + key.len() + 3..]
        .trim_end()
        .strip_suffix(']')?
        .to_string();
    text.truncate(start);
    *text = text.trim_end().to_string();
    Some(value)
}

fn options(cmd: &str) -> Vec<Opt> {
    let text = short_help(cmd);
    let body = text.split("Options:\n").nth(1).unwrap();
    let mut raw: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            // `--name <VALUE>  help` on one line, or the help on the next lines.
            let (names, help) = match trimmed.find("  ") {
                Some(i) => (&trimmed[..i], trimmed[i..].trim()),
                None => (trimmed, ""),
            };
            let names = names
                .split(" <")
                .next()
                .unwrap()
                .split(" [<")
                .next()
                .unwrap();
            raw.push((names.to_string(), help.to_string()));
        } else if let Some(last) = raw.last_mut() {
            last.1 = format!("{} {}", last.1, trimmed).trim().to_string();
        }
    }
    raw.into_iter()
        .filter(|(names, _)| names != "-h, --help")
        .map(|(names, mut help)| {
            let values = take_bracket(&mut help, "possible values");
            let default = take_bracket(&mut help, "default");
            Opt {
                names,
                help,
                default,
                values,
            }
        })
        .collect()
}

fn table(cmd: &str) -> String {
    let mut t = String::from("| option | default | meaning |\n|---|---|---|\n");
    for o in options(cmd) {
        let names: Vec<String> = o.names.split(", ").map(|n| format!("`{n}`")).collect();
        let default = o.default.map_or("—".to_string(), |d| format!("`{d}`"));
        let values = o.values.map_or(String::new(), |v| {
            format!(" (`{}`)", v.replace(", ", "`, `"))
        });
        let meaning = format!("{}{values}", o.help).replace('|', "\\|");
        t.push_str(&format!(
            "| {} | {default} | {meaning} |\n",
            names.join(", ")
        ));
    }
    t
}

fn markers(cmd: &str) -> (String, String) {
    (
        format!("<!-- options: trainer {cmd} -h -->\n"),
        format!("<!-- end options: trainer {cmd} -->"),
    )
}

#[test]
fn every_option_has_help_and_run_options_show_their_config_defaults() {
    for cmd in COMMANDS {
        for o in options(cmd) {
            assert!(
                !o.help.is_empty(),
                "trainer {cmd} {}: no help text",
                o.names
            );
        }
    }
    // The defaults come from the configuration layers: compare with values read in the code
    // by hand (ssl/config.rs, eval/config.rs, losses.rs).
    let default_of = |cmd: &str, name: &str| {
        options(cmd)
            .into_iter()
            .find(|o| o.names.ends_with(name))
            .and_then(|o| o.default)
    };
    for (cmd, name, value) in [
        ("pretrain", "--epochs", "100"),
        ("pretrain", "--warmup-epochs", "10"),
        ("pretrain", "--base-lr", "0.2"),
        ("pretrain", "--optimizer", "lars"),
        ("pretrain", "--seed", "0"),
        ("evaluate", "--lr-head", "0.1"),
        ("evaluate", "--stopping", "20"),
        ("evaluate", "--gce-q", "0.7"),
        ("evaluate", "--noise", "0"),
        ("evaluate", "--train-samples", "0"),
        ("noise", "--kind", "matrix"),
    ] {
        assert_eq!(
            default_of(cmd, name).as_deref(),
            Some(value),
            "{cmd} {name}"
        );
    }
    // Options without a default say what happens instead.
    assert_eq!(default_of("evaluate", "--noise-seed"), None);
    assert_eq!(default_of("pretrain", "--exp-dir"), None);
}

#[test]
fn readme_option_tables_match_the_help() {
    let path = workspace_root().join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let bless = std::env::var_os("NLS_BLESS").is_some();
    for cmd in ["noise", "pretrain", "evaluate"] {
        let (open, close) = markers(cmd);
        let start = readme
            .find(&open)
            .unwrap_or_else(|| panic!("README.md has no {open}"));
        let body = start + open.len();
        let end = body + readme[body..].find(&close).unwrap();
        let expected = table(cmd);
        if bless {
            readme.replace_range(body..end, &expected);
        } else {
            assert_eq!(
                readme[body..end],
                expected,
                "README.md's table for trainer {cmd} is not current: run this test with \
                 NLS_BLESS=1"
            );
        }
    }
    if bless {
        std::fs::write(&path, readme).unwrap();
    }
}

/// `--augment` works as a flag (as the README showed it) and still takes a value.
#[test]
fn augment_is_a_flag_and_takes_a_value() {
    let help = short_help("evaluate");
    assert!(help.contains("--augment [<AUGMENT>]"), "{help}");
    for form in [
        &["--augment"][..],
        &["--augment", "true"],
        &["--augment=false"],
    ] {
        let mut args = vec![
            "evaluate",
            "--data-dir",
            "/nonexistent",
            "--exp-dir",
            "/nonexistent/e",
        ];
        args.extend(form);
        args.extend(["--backbone", "none"]);
        let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Parsing succeeded: the failure is about the missing data, not the arguments.
        assert!(
            !err.contains("unexpected argument") && !err.contains("invalid value"),
            "{form:?}: {err}"
        );
        assert!(err.contains("/nonexistent"), "{form:?}: {err}");
    }
}
