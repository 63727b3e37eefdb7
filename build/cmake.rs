//! cmake, for building ncnn from source: finding one (`CMAKE`, PATH, or the
//! one from PyPI installed into the cache) and running it with its output in
//! a log file and its progress on the terminal.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::env::{env_var, progress};
use crate::sdist::python;

/// cmake from PyPI when the machine has none (3.x: ncnn 2025 releases need >= 3.10).
const CMAKE_PYPI_VERSION: &str = "3.31.6";

/// `CMAKE`, else `cmake` on PATH, else cmake from PyPI installed into the cache.
pub fn find_cmake(root: &Path) -> Result<PathBuf, String> {
    let cache = root.parent().unwrap_or(root);
    if let Some(cmake) = existing_cmake(cache) {
        return Ok(cmake);
    }
    let tools = cmake_tools_dir(cache);
    let cmake = tools.join("cmake/data/bin/cmake");
    progress(&format!(
        "installing cmake {CMAKE_PYPI_VERSION} from PyPI into {}",
        tools.display()
    ));
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&tools)
        .arg(format!("cmake=={CMAKE_PYPI_VERSION}"))
        .output()
        .map_err(|e| format!("cannot run {} -m pip: {e}", python()))?;
    if !cmake_works(&cmake) {
        return Err(format!(
            "no cmake: none on PATH and `pip install cmake=={CMAKE_PYPI_VERSION}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(cmake)
}

/// `$CMAKE`, a cmake on PATH, or the one an earlier build put in `cache`.
pub fn existing_cmake(cache: &Path) -> Option<PathBuf> {
    if let Some(c) = env_var("CMAKE") {
        return Some(PathBuf::from(c));
    }
    [
        PathBuf::from("cmake"),
        cmake_tools_dir(cache).join("cmake/data/bin/cmake"),
    ]
    .into_iter()
    .find(|c| cmake_works(c))
}

fn cmake_tools_dir(cache: &Path) -> PathBuf {
    cache.join(format!("tools/cmake-{CMAKE_PYPI_VERSION}"))
}

fn cmake_works(cmake: &Path) -> bool {
    Command::new(cmake)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`, appending its output to `log_path` and echoing build progress.
pub fn run_logged(cmd: &mut Command, log_path: &Path, what: &str) -> Result<(), String> {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| e.to_string())?;
    let _ = writeln!(log, "==== {what}: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .spawn()
        .map_err(|e| format!("cannot {what}: {e}"))?;
    let mut last_tens = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout"))
        .lines()
        .map_while(Result::ok)
    {
        let _ = writeln!(log, "{line}");
        // cmake's makefiles prefix lines with "[ 42%]"; report every ten percent.
        let percent = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("%]"))
            .and_then(|(p, _)| p.trim().parse::<u32>().ok());
        if let Some(p) = percent.filter(|p| Some(p / 10) != last_tens) {
            progress(&format!("{what}: {p}%"));
            last_tens = Some(p / 10);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        let tail: Vec<String> = fs::read_to_string(log_path)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(30)
            .map(str::to_string)
            .collect();
        let tail: Vec<String> = tail.into_iter().rev().collect();
        return Err(format!(
            "{what} failed ({status}); log {}:\n{}",
            log_path.display(),
            tail.join("\n")
        ));
    }
    Ok(())
}
