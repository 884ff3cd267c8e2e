//! The integration tests: one test binary, one module per feature, so the test stack (rustls,
//! h2, tokio, ureq, tungstenite) is linked once. They run the example apps as real processes
//! with real signals and sockets (the harness is the `integration_tests` library).
//!
//! Select by module path: `cargo test -p integration-tests --test it upgrade::` runs one
//! feature, `... --test it systemd::manager -- --nocapture` one file with its output.
//!
//! Every test runs in this one process, on cargo's test threads:
//! - a test that must not share the machine with another heavy one holds
//!   `integration_tests::heavy_lock()` (a process-wide mutex) for its whole run;
//! - there is one child reaper for the process (`integration_tests::reaper`): no test waits for
//!   a child itself;
//! - no test changes what the process shares: its environment, working directory, signal
//!   dispositions, limits; every descriptor the harness or a test opens is close-on-exec (it
//!   would leak into every process another test starts meanwhile), and `free_port` never hands
//!   out a port twice.

mod bench;
mod concurrency;
mod deploy;
mod environment;
mod errors;
mod exhaustion;
mod faults;
mod flags;
mod h2;
mod h2_goaway;
mod inherited_fds;
mod keeper;
mod listeners;
mod notify;
mod pooled;
mod proxy;
mod safe_deploys;
mod settings;
mod soak;
mod socket_activation;
mod stop;
mod streams;
mod systemd;
mod terminal;
mod tls;
mod upgrade;
