//! Facts about how this process was started, recorded once at the crate's first use: the
//! successor is started the same way.

use std::{
    ffi::OsString,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// How this process was started.
#[derive(Debug)]
pub(crate) struct Startup {
    /// The executable as invoked (argv[0] resolved against the start-up directory or `PATH`),
    /// not `/proc/self/exe`: a deploy that replaces the file or re-points a symlink on that path
    /// is what the successor runs.
    pub(crate) exe: PathBuf,
    /// The full argument vector, argv[0] included.
    pub(crate) args: Vec<OsString>,
    /// The working directory at start-up, logical (`$PWD`) when it names the same directory,
    /// so a `current -> releases/N` symlink in it is followed again at upgrade time.
    pub(crate) cwd: PathBuf,
}

static STARTUP: OnceLock<Startup> = OnceLock::new();

/// Records the start-up facts and holds the upgrade signal until the server handles it.
/// Idempotent; called by every entry point of the crate.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        startup();
        crate::signals::hold_early();
        crate::handoff::take_report_fd(crate::inherit::count());
    });
}

/// The start-up facts, recorded at the first call.
pub(crate) fn startup() -> &'static Startup {
    STARTUP.get_or_init(|| {
        let args: Vec<OsString> = std::env::args_os().collect();
        let cwd = logical_cwd();
        let exe = args
            .first()
            .and_then(|argv0| resolve_exe(Path::new(argv0), &cwd, std::env::var_os("PATH")))
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_default();
        log::debug!("started as {} in {}", exe.display(), cwd.display());
        Startup { exe, args, cwd }
    })
}

fn logical_cwd() -> PathBuf {
    let physical = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) else {
        return physical;
    };
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if pwd.is_absolute() && same(&pwd, &physical) {
        pwd
    } else {
        physical
    }
}

/// argv[0] as a path: with a slash, relative to `cwd`; without one, looked up in `PATH` as the
/// shell did.
fn resolve_exe(argv0: &Path, cwd: &Path, path_var: Option<OsString>) -> Option<PathBuf> {
    if argv0.as_os_str().is_empty() {
        return None;
    }
    if argv0.components().count() > 1 || argv0.is_absolute() {
        return Some(cwd.join(argv0));
    }
    std::env::split_paths(&path_var?)
        .map(|dir| cwd.join(dir).join(argv0))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_with_a_slash_is_relative_to_the_startup_dir() {
        let cwd = Path::new("/srv/app/current");
        assert_eq!(
            resolve_exe(Path::new("./bin/hello"), cwd, None),
            Some(PathBuf::from("/srv/app/current/./bin/hello"))
        );
        assert_eq!(
            resolve_exe(Path::new("/usr/bin/hello"), cwd, None),
            Some(PathBuf::from("/usr/bin/hello"))
        );
    }

    #[test]
    fn bare_argv0_is_looked_up_in_path() {
        let found = resolve_exe(
            Path::new("sh"),
            Path::new("/"),
            Some("/nonexistent:/bin".into()),
        );
        assert_eq!(found, Some(PathBuf::from("/bin/sh")));
        assert_eq!(
            resolve_exe(
                Path::new("no-such-binary-here"),
                Path::new("/"),
                Some("/bin".into())
            ),
            None
        );
        assert_eq!(resolve_exe(Path::new(""), Path::new("/"), None), None);
    }
}
