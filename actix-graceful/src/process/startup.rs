//! Facts about how this process was started, recorded once at the crate's first use: the
//! successor is started the same way.

use std::{
    ffi::OsString,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::protocol::env::{self, GENERATION};

/// How this process was started.
#[derive(Debug)]
pub(crate) struct Startup {
    /// The executable as invoked (`argv[0]` resolved against the start-up directory or `PATH`),
    /// not `/proc/self/exe`: a deploy that replaces the file or re-points a symlink on that path
    /// is what the successor runs.
    pub(crate) exe: PathBuf,
    /// The full argument vector, `argv[0]` included.
    pub(crate) args: Vec<OsString>,
    /// The working directory at start-up, logical (`$PWD`) when it names the same directory,
    /// so a `current -> releases/N` symlink in it is followed again at upgrade time.
    pub(crate) cwd: PathBuf,
    /// Which generation of the service this process is: 1 for a process started by anything
    /// else, one more than its predecessor's for a successor.
    pub(crate) generation: u64,
}

static STARTUP: OnceLock<Startup> = OnceLock::new();

/// Records the start-up facts, catches the upgrade signal (process-wide) until the server
/// handles it, and takes the fds a predecessor or keeper handed over besides the listeners.
/// Idempotent; called by every entry point of the crate.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        startup();
        crate::process::signals::catch_early();
        let listen_fds = crate::process::inherit::count();
        crate::process::handoff::claim_channels(listen_fds);
        crate::process::keeper::claim_control_fd(listen_fds);
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
        let generation = generation(
            env::snapshot().generation.clone(),
            env::snapshot().ready_fd.is_some(),
        );
        log::debug!(
            "started as {} in {} (generation {generation})",
            exe.display(),
            cwd.display()
        );
        Startup {
            exe,
            args,
            cwd,
            generation,
        }
    })
}

/// The generation a predecessor announced; 1 when there is no predecessor (the variable is only
/// trusted next to a readiness fd) or the value is not a positive number.
fn generation(announced: Option<OsString>, has_predecessor: bool) -> u64 {
    let Some(value) = announced.filter(|_| has_predecessor) else {
        return 1;
    };
    match value.to_str().and_then(|v| v.parse::<u64>().ok()) {
        Some(n) if n >= 1 => n,
        _ => {
            log::warn!("{GENERATION}={value:?} is not a generation number; taking 1");
            1
        }
    }
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

/// `argv[0]` as a path: with a slash, relative to `cwd`; without one, looked up in `PATH` as the
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
    fn generation_is_trusted_only_from_a_predecessor() {
        assert_eq!(generation(None, true), 1);
        assert_eq!(generation(Some("7".into()), false), 1);
        assert_eq!(generation(Some("7".into()), true), 7);
        assert_eq!(generation(Some("0".into()), true), 1);
        assert_eq!(generation(Some("-3".into()), true), 1);
        assert_eq!(generation(Some("x".into()), true), 1);
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
