//! Fetching ncnn's source distribution from PyPI with pip, sha256-checked
//! against `NCNN_RELEASES`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::{env_var, progress};
use crate::source::Release;

pub fn python() -> String {
    env_var("PYTHON").unwrap_or_else(|| "python3".into())
}

/// Unpacks the ncnn source distribution into `root/src`.
///
/// `pip download` checks the sha256, unpacks the tarball and then fails while
/// generating metadata (ncnn's setup.py stamps today's date as the version);
/// with `--no-clean` and our own TMPDIR the unpacked tree stays behind.
pub fn fetch_source(root: &Path, release: Release) -> Result<PathBuf, String> {
    let Release {
        version,
        sdist_sha256,
    } = release;
    let src = root.join("src");
    if src.join("CMakeLists.txt").is_file() && src.join("src/layer/normalize.cpp").is_file() {
        return Ok(src);
    }
    let tmp = root.join("pip-tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let requirements = tmp.join("requirements.txt");
    fs::write(
        &requirements,
        format!("ncnn=={version} --hash=sha256:{sdist_sha256}\n"),
    )
    .map_err(|e| e.to_string())?;
    progress(&format!("fetching ncnn {version} source with pip"));
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-clean",
            "--no-build-isolation",
            "--require-hashes",
            "-r",
        ])
        .arg(&requirements)
        .arg("-d")
        .arg(tmp.join("dl"))
        .env("TMPDIR", &tmp)
        .output()
        .map_err(|e| format!("cannot run {} -m pip: {e}", python()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("DO NOT MATCH THE HASHES") {
        return Err(format!(
            "ncnn {version} source failed its sha256 check:\n{text}"
        ));
    }
    let unpacked = fs::read_dir(&tmp)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pip-download-"))
        .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.join("CMakeLists.txt").is_file() && p.join("src/net.h").is_file())
        .ok_or_else(|| {
            format!(
                "pip did not leave the ncnn source in {}; pip said:\n{text}",
                tmp.display()
            )
        })?;
    fs::rename(&unpacked, &src).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            unpacked.display(),
            src.display()
        )
    })?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(src)
}
