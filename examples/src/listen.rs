//! `--listen [NAME=]ADDR` of `hello` and `hello-fixture`: a TCP address or `unix:/path`
//! (`unix:@name` for Linux's abstract namespace), optionally under a systemd fd name.

use actix_graceful::Binding;

/// The listen specs: `given` (the `--listen` flags), else `HELLO_LISTEN` (comma-separated),
/// else `127.0.0.1:8080`.
pub fn specs(given: &[String]) -> Vec<String> {
    if !given.is_empty() {
        return given.to_vec();
    }
    match std::env::var("HELLO_LISTEN") {
        Ok(v) if !v.is_empty() => v.split(',').map(str::to_owned).collect(),
        _ => vec!["127.0.0.1:8080".to_owned()],
    }
}

/// `[NAME=]ADDR` or `[NAME=]unix:/path` as a binding (a `NAME` has neither `:` nor `/`).
pub fn binding(spec: &str) -> Binding {
    let (name, addr) = match spec.split_once('=') {
        Some((name, addr)) if !name.contains(':') && !name.contains('/') => (Some(name), addr),
        _ => (None, spec),
    };
    let binding = match addr.strip_prefix("unix:") {
        Some(path) => Binding::uds(path),
        None => Binding::tcp(addr),
    };
    match name {
        Some(name) => binding.name(name),
        None => binding,
    }
}
