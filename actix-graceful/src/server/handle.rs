//! [`UpgradeHandle`]: upgrades asked for from code. It only sends the request to the running
//! server's controller and waits for its answer; it must not start or refuse anything itself.

use futures::channel::{mpsc, oneshot};

use crate::UpgradeError;

/// How the controller answers one upgrade asked for through a handle.
pub(super) type Reply = oneshot::Sender<Result<Upgraded, UpgradeError>>;

/// An upgrade that succeeded: the successor serves. Its probation may still roll it back:
/// [`probation`](Self::probation) says how it ended.
///
/// # Examples
///
/// ```no_run
/// async fn deploy(upgrades: actix_graceful::UpgradeHandle) -> Result<(), actix_graceful::UpgradeError> {
///     let upgraded = upgrades.upgrade().await?;
///     println!("successor pid={} serves, on probation", upgraded.pid());
///     upgraded.probation().await?; // Err(UpgradeError::RolledBack { .. }) when it failed
///     println!("the new build passed its probation");
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[must_use = "an Upgraded says which process serves and, awaited, how its probation ended"]
pub struct Upgraded {
    pub(super) pid: u32,
    pub(super) probation: oneshot::Receiver<Result<(), UpgradeError>>,
}

impl Upgraded {
    /// The successor's process id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(upgrades: actix_graceful::UpgradeHandle) -> Result<(), actix_graceful::UpgradeError> {
    /// let pid = upgrades.upgrade().await?.pid();
    /// # Ok(()) }
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves once the successor's probation ended ([`Graceful::probation`]): `Ok` when it
    /// passed (at once when there is none, or when this process was itself on probation and
    /// so handed the watch on to its own fallback), [`UpgradeError::RolledBack`] when it failed
    /// and this process took the listeners back.
    ///
    /// # Errors
    /// [`UpgradeError::RolledBack`], or [`UpgradeError::NotRunning`] when this process stopped
    /// first (asked to stop for good, it no longer watches the successor).
    ///
    /// [`Graceful::probation`]: crate::Graceful::probation
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(upgrades: actix_graceful::UpgradeHandle) {
    /// match upgrades.upgrade().await {
    ///     Ok(upgraded) => match upgraded.probation().await {
    ///         Ok(()) => println!("deployed"),
    ///         Err(rolled_back) => eprintln!("{rolled_back}"),
    ///     },
    ///     Err(not_ready) => eprintln!("still serving the old build: {not_ready}"),
    /// }
    /// # }
    /// ```
    pub async fn probation(self) -> Result<(), UpgradeError> {
        self.probation
            .await
            .unwrap_or(Err(UpgradeError::NotRunning))
    }
}

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
///                         Ok(up) => HttpResponse::Ok().body(format!("successor pid={}", up.pid())),
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
    /// Starts an upgrade, as the upgrade signal does, and resolves once it succeeded (the
    /// successor serves, this process drains; [`Upgraded::probation`] then tells how the
    /// successor's probation ends) or failed (this process keeps serving).
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
    ///         Ok(upgraded) => println!("successor pid={} serves", upgraded.pid()),
    ///         Err(err) => eprintln!("still serving: {err}"),
    ///     }
    /// }
    /// ```
    pub async fn upgrade(&self) -> Result<Upgraded, UpgradeError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .unbounded_send(reply)
            .map_err(|_| UpgradeError::NotRunning)?;
        result.await.unwrap_or(Err(UpgradeError::NotRunning))
    }
}
