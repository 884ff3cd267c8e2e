//! [`UpgradeHandle`]: upgrades asked for from code. It only sends the request to the running
//! server's controller and waits for its answer; it must not start or refuse anything itself.

use futures::channel::{mpsc, oneshot};

use crate::UpgradeError;

/// How the controller answers one upgrade asked for through a handle.
pub(super) type Reply = oneshot::Sender<Result<u32, UpgradeError>>;

/// Triggers upgrades from code. Cloneable and `Send`: hand it to an admin endpoint.
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Graceful, GracefulBind as _};
/// use actix_web::{web, App, HttpResponse, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let graceful = Graceful::new();
///     let upgrades = graceful.handle();
///     let server = HttpServer::new(move || {
///         let upgrades = upgrades.clone();
///         App::new().wrap(actix_graceful::LameDuck).route(
///             "/admin/upgrade",
///             web::post().to(move || {
///                 let upgrades = upgrades.clone();
///                 async move {
///                     match upgrades.upgrade().await {
///                         Ok(pid) => HttpResponse::Ok().body(format!("successor pid={pid}")),
///                         Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
///                     }
///                 }
///             }),
///         )
///     })
///     .graceful_bind("127.0.0.1:8080")?;
///     graceful.run(server).await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeHandle {
    pub(super) tx: mpsc::UnboundedSender<Reply>,
}

impl UpgradeHandle {
    /// Starts an upgrade, as the upgrade signal does, and resolves once it succeeded (to the
    /// successor's pid; this process then drains) or failed (this process keeps serving).
    ///
    /// # Errors
    /// Why there is no successor: see [`UpgradeError`]. The error is returned, not logged (the
    /// server's log says only that the upgrade failed or was refused): report it once, here.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// async fn upgrade(upgrades: actix_graceful::UpgradeHandle) {
    ///     match upgrades.upgrade().await {
    ///         Ok(pid) => println!("successor pid={pid} serves"),
    ///         Err(err) => eprintln!("still serving: {err}"),
    ///     }
    /// }
    /// ```
    pub async fn upgrade(&self) -> Result<u32, UpgradeError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .unbounded_send(reply)
            .map_err(|_| UpgradeError::NotRunning)?;
        result.await.unwrap_or(Err(UpgradeError::NotRunning))
    }
}
