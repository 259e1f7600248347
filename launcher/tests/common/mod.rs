//! Helpers shared by the launcher's integration tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository's sbatch template.
pub fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/sbatch.sh.j2")
}

/// An executable shell script `dir/name` with `body` (stand-ins for srun, sbatch, squeue...).
pub fn fake_bin(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// NUL-separated strings.
pub fn split_nul(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = bytes
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    assert_eq!(v.pop().as_deref(), Some(""), "argv must end with a NUL");
    v
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `out` tells how to start TensorBoard on the experiment folder `exp` (its path taken from
/// `exp`'s parent, the directory the command ran in).
pub fn assert_tensorboard_line(out: &Output, exp: &Path) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logdir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tensorboard --logdir "))
        .unwrap_or_else(|| panic!("no tensorboard line in:\n{stdout}"));
    let logdir = exp.parent().unwrap().join(logdir);
    assert_eq!(
        logdir.canonicalize().unwrap(),
        exp.canonicalize().unwrap(),
        "{stdout}"
    );
}
