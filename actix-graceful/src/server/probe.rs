//! The self-probe's actix glue ([`Graceful::self_probe`]): before actix starts, its private
//! listener joins the server and the public listeners hide behind placeholders; after actix's
//! first poll, the probe's request, then, once it passed, actix's accept loop is paused, the
//! listeners put back, and the loop resumed. The sockets and the request are `process::probe`'s.
//!
//! [`Graceful::self_probe`]: crate::Graceful::self_probe

use std::{io, time::Duration};

use actix_web::dev::ServerHandle;

use crate::{
    glue::{sealed::Token, HttpServerExt},
    process::probe::{Hidden, Private},
};

/// How long actix's accept loop may take to let go of the placeholders once paused.
const PAUSE_APPLIES_WITHIN: Duration = Duration::from_secs(2);

/// A self-probe prepared before actix starts.
pub(super) struct SelfProbe {
    path: String,
    private: Private,
    hidden: Option<Hidden>,
}

impl SelfProbe {
    /// Adds the private listener to `server` and hides the public ones (Linux).
    ///
    /// # Errors
    /// The private listener cannot be made, or a public listener hidden.
    pub(super) fn prepare<S: HttpServerExt>(path: &str, server: S) -> io::Result<(SelfProbe, S)> {
        let (private, listener) = Private::bind()?;
        let server = server.listen_unix(Token, listener)?;
        let hidden = if cfg!(target_os = "linux") {
            Some(Hidden::hide()?)
        } else {
            log::info!("self-probe: the listeners stay public while it runs (Linux hides them)");
            None
        };
        let probe = SelfProbe {
            path: path.to_owned(),
            private,
            hidden,
        };
        Ok((probe, server))
    }

    /// Runs the probe within `timeout`; once it passed, hands the public listeners to actix.
    ///
    /// # Errors
    /// Why the probe failed (or the listeners could not be put back).
    pub(super) async fn pass(self, handle: &ServerHandle, timeout: Duration) -> Result<(), String> {
        let started = std::time::Instant::now();
        let answer = actix_rt::time::timeout(timeout, self.private.get(&self.path)).await;
        let answer = answer.unwrap_or_else(|_| {
            Err(format!(
                "self-probe: GET {} got no answer within the upgrade timeout ({timeout:?})",
                self.path
            ))
        });
        if let Err(reason) = answer {
            if let Some(hidden) = self.hidden {
                hidden.keep_hidden();
            }
            return Err(reason);
        }
        log::info!(
            "self-probe: GET {} answered 2xx after {:.1} ms",
            self.path,
            started.elapsed().as_secs_f64() * 1000.0
        );
        let Some(hidden) = self.hidden else {
            return Ok(());
        };
        handle.pause().await;
        let revealed = actix_rt::task::spawn_blocking(move || hidden.reveal(PAUSE_APPLIES_WITHIN))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
        handle.resume().await;
        revealed.map_err(|e| format!("self-probe: cannot put the listeners back: {e}"))
    }
}
