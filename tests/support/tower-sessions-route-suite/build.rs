//! Copies tower-sessions' `tests/common/mod.rs` of the version in the enclosing Cargo.lock,
//! from the crate cargo unpacked into `$CARGO_HOME/registry/src/`, into `OUT_DIR/common.rs`,
//! writes `OUT_DIR/names.rs` (the `route_suite_tests!` macro: every test of the suite by name)
//! and sets the `route_suite_found` cfg. Not found (a vendored or unusual registry), it warns
//! and the crate's macros become compile errors that say so.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(route_suite_found)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_HOME");
    match copy_route_suite() {
        Ok(source) => {
            println!("cargo::rerun-if-changed={}", source.display());
            println!("cargo::rustc-cfg=route_suite_found");
        }
        Err(why) => println!("cargo::warning=tower-sessions' route suite not copied: {why}"),
    }
}

/// Copies the suite of the tower-sessions version in Cargo.lock; returns where it was found.
fn copy_route_suite() -> Result<PathBuf, String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    // The lock file of the package this crate is a dev-dependency of: the nearest one above.
    let lock_path = (manifest_dir.ancestors())
        .map(|dir| dir.join("Cargo.lock"))
        .find(|path| path.is_file())
        .ok_or("no Cargo.lock above this crate")?;
    println!("cargo::rerun-if-changed={}", lock_path.display());
    let lock = fs::read_to_string(&lock_path).map_err(|e| format!("Cargo.lock: {e}"))?;
    let version =
        locked_version(&lock, "tower-sessions").ok_or("tower-sessions is not in Cargo.lock")?;
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let registries = cargo_home.join("registry").join("src");
    let crate_dir = format!("tower-sessions-{version}");
    let source = fs::read_dir(&registries)
        .map_err(|e| format!("{}: {e}", registries.display()))?
        .filter_map(Result::ok)
        .map(|registry| registry.path().join(&crate_dir).join("tests/common/mod.rs"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no {crate_dir}/tests/common/mod.rs under {}",
                registries.display()
            )
        })?;
    let suite = fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let names = test_names(&suite);
    if names.is_empty() {
        return Err(format!("{} defines no tests", source.display()));
    }
    let list: String = names
        .iter()
        .map(|name| format!("            (\"{name}\", {name}),\n"))
        .collect();
    let write = |name: &str, text: &str| {
        fs::write(out_dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("common.rs", &suite)?;
    let names = format!(
        "/// Every test of `route_tests!`, by name: `&[(&str, fn())]` of the functions the macro\n\
         /// defined where this is used.\n\
         #[macro_export]\n\
         macro_rules! route_suite_tests {{\n    () => {{\n        &[\n{list}        ]\n    }};\n}}\n"
    );
    write("names.rs", &names)?;
    Ok(source)
}

/// The version of `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// The names of the `#[tokio::test] async fn name()` in the suite's `route_tests!` macro.
fn test_names(suite: &str) -> Vec<String> {
    let lines: Vec<&str> = suite.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "#[tokio::test]")
        .filter_map(|pair| {
            let name = pair[1].strip_prefix("async fn ")?.strip_suffix("() {")?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}
