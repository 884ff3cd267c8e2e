//! The example units of `examples/systemd/`: the unit files themselves (`unit_files`: checked
//! by `systemd-analyze verify`, their command lines run for real) and the units under a real
//! systemd service manager (`manager`; bad builds rolled back, `rollback`).

mod manager;
mod rollback;
mod svc;
mod unit_files;

use std::path::PathBuf;

/// `examples/systemd/`.
fn units_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd")
}

/// The text of the unit file `name` of `examples/systemd/`.
fn unit_text(name: &str) -> String {
    std::fs::read_to_string(units_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
