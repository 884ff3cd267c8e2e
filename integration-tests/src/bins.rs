//! Locating the binaries under test: the examples' (`hello`, `hello-plain`, ...) and
//! `upgrade-bench`, in the target directory of the running test or tool, built on first use.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The directory holding the binaries of the current profile (`target/<profile>`): derived
/// from the running executable, which is `target/<profile>/deps/<test>-<hash>` for a test, or
/// `target/<profile>/<bin>` for a binary such as `upgrade-bench`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.file_name().map(|n| n == "deps").unwrap_or(false) {
        dir.pop();
    }
    dir
}

/// Path of the example binary `name`, overridable by env var `env_override`. Panics with
/// instructions if it does not exist.
///
/// Unless overridden (or `ITEST_NO_BUILD` is set), the first call in a process runs
/// `cargo build -p examples --bins` for the same profile and target dir when the test runs
/// under cargo (env `CARGO`), so `cargo test` never tests a stale or missing example binary.
pub fn locate(name: &str, env_override: &str) -> PathBuf {
    find(name, env_override).unwrap_or_else(|e| panic!("{e}"))
}

/// [`locate`] without the panic: the path, or one line saying what is missing and the
/// command that builds it (for tools such as `upgrade-bench`).
pub fn find(name: &str, env_override: &str) -> Result<PathBuf, String> {
    find_in("examples", name, env_override)
}

/// The `upgrade-bench` binary (env `UPGRADE_BENCH_BIN` overrides), built like the examples
/// (`cargo build -p upgrade-bench`) on first use. Panics with instructions if it is missing.
pub fn upgrade_bench() -> PathBuf {
    find_in("upgrade-bench", "upgrade-bench", "UPGRADE_BENCH_BIN").unwrap_or_else(|e| panic!("{e}"))
}

/// The binary `name` of the workspace package `package`, as [`find`] says.
fn find_in(package: &str, name: &str, env_override: &str) -> Result<PathBuf, String> {
    let p = match std::env::var_os(env_override) {
        Some(v) => PathBuf::from(v),
        None => {
            build_once(package);
            profile_dir().join(name)
        }
    };
    if p.is_file() {
        return Ok(p);
    }
    let release = if profile_dir().ends_with("release") {
        " --release"
    } else {
        ""
    };
    Err(format!(
        "binary `{name}` not found at {}: build it with `cargo build{release} -p {package} \
         --bin {name}`, or point {env_override} at it",
        p.display()
    ))
}

/// Runs `cargo build -p PACKAGE --bins` once per process and package (see [`locate`]); a
/// second caller meanwhile waits for the first one's build.
fn build_once(package: &str) {
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.insert(package.to_owned()) {
        return;
    }
    let Some(mut cmd) = build_command(package) else {
        return;
    };
    crate::reaper::ensure();
    let since = std::time::Instant::now();
    let child = cmd
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn cargo build -p {package}: {e}"));
    let pid = child.id() as i32;
    drop(child);
    let gone = crate::reaper::wait_gone(pid, since, std::time::Duration::from_secs(1800));
    assert!(
        matches!(gone, Some(crate::reaper::Gone::Reaped(e)) if e.success()),
        "`cargo build -p {package} --bins` failed: {gone:?}"
    );
}

/// `cargo build --quiet -p PACKAGE --bins` for the profile and target dir of the running
/// executable; the examples with their `openssl` feature when this crate has its own. `None`
/// when not run by cargo (env `CARGO`) or with `ITEST_NO_BUILD` set.
fn build_command(package: &str) -> Option<Command> {
    if std::env::var_os("ITEST_NO_BUILD").is_some() {
        return None;
    }
    let cargo = std::env::var_os("CARGO")?;
    let dir = profile_dir();
    let (profile, target_dir) = (dir.file_name()?, dir.parent()?);
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bins", "--target-dir"])
        .arg(target_dir);
    // The same feature set as this test build, so both share one build of the stack.
    if package == "examples" && cfg!(feature = "openssl") {
        cmd.args(["--features", "openssl"]);
    }
    match profile.to_str()? {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // The variables cargo sets for this test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) are
    // ones some build scripts (ring's) declare `rerun-if-env-changed`: passed on, they make
    // this build and the next `cargo test` rebuild each other's TLS stack.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                &*key,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            cmd.env_remove(&*key);
        }
    }
    Some(cmd)
}
