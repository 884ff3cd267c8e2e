//! The server's [`Phase`]: serving, upgrading, handed over and draining, or stopping, as one
//! value, with its transitions as pure functions (tested here). It does nothing itself: the
//! controller acts (signals, successors, the drain task) and moves the phase along.

use std::mem;

use futures::{
    channel::oneshot,
    future::{Fuse, FusedFuture as _},
};

use super::controller::Upgrade;
use crate::UpgradeError;

/// A successor that died during the drain: its pid and exit status.
pub(super) type Back = (i32, String);

/// Resolves when the successor died during the drain and this process took the listeners back;
/// terminated once the drain can no longer take back.
pub(super) type TakeBack = Fuse<oneshot::Receiver<Back>>;

/// Where the server is: one value, so that no impossible combination (an upgrade while handed
/// over, a take-back after a forced stop) can be written down. Generic over the upgrade only
/// for the tests of the transitions.
pub(super) enum Phase<U = Upgrade> {
    /// Serving, no upgrade under way, not asked to stop.
    Serving,
    /// Starting a successor; still serving.
    Upgrading(U),
    /// Handed over to `successor`: draining, and taking back should it die.
    Draining { successor: i32, take_back: TakeBack },
    /// Asked to stop for good (SIGTERM, SIGINT, SIGQUIT, a newer generation under the keeper,
    /// or actix stopped). `upgrade`: a successor still being started (stopped as well). `drain`:
    /// this process's drain, once started (its pre-stop delay included), with the take-back of
    /// a successor handed over to before the stop; none for actix's forced stop.
    Stopping {
        upgrade: Option<U>,
        drain: Option<TakeBack>,
    },
}

impl<U> Phase<U> {
    /// Whether this process's drain is under way (from its pre-stop delay on).
    pub(super) fn draining(&self) -> bool {
        matches!(
            self,
            Phase::Draining { .. } | Phase::Stopping { drain: Some(_), .. }
        )
    }

    pub(super) fn stopping(&self) -> bool {
        matches!(self, Phase::Stopping { .. })
    }

    /// Why an upgrade cannot start now, if it cannot.
    pub(super) fn refusal(&self) -> Option<UpgradeError> {
        match self {
            Phase::Serving => None,
            Phase::Upgrading(_) => Some(UpgradeError::InProgress),
            Phase::Draining { .. } | Phase::Stopping { .. } => Some(UpgradeError::Draining),
        }
    }

    /// Asked to stop for good: an upgrade under way and a drain (with its take-back) are kept.
    pub(super) fn stop(self) -> Self {
        match self {
            Phase::Serving => Phase::Stopping {
                upgrade: None,
                drain: None,
            },
            Phase::Upgrading(upgrade) => Phase::Stopping {
                upgrade: Some(upgrade),
                drain: None,
            },
            Phase::Draining { take_back, .. } => Phase::Stopping {
                upgrade: None,
                drain: Some(take_back),
            },
            stopping @ Phase::Stopping { .. } => stopping,
        }
    }

    /// Stopping, the drain started: with its take-back.
    pub(super) fn stop_drained(self, take_back: TakeBack) -> Self {
        match self {
            Phase::Stopping {
                upgrade,
                drain: None,
            } => Phase::Stopping {
                upgrade,
                drain: Some(take_back),
            },
            other => other,
        }
    }

    /// The upgrade under way, taken out: back to serving, or still stopping without it.
    pub(super) fn take_upgrade(&mut self) -> Option<U> {
        match mem::replace(self, Phase::Serving) {
            Phase::Upgrading(upgrade) => Some(upgrade),
            Phase::Stopping { upgrade, drain } => {
                *self = Phase::Stopping {
                    upgrade: None,
                    drain,
                };
                upgrade
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// The drain ended with a take-back: serving again, or (asked to stop meanwhile) stopping
    /// with no drain, for a new one to start.
    pub(super) fn taken_back(self) -> Self {
        match self {
            Phase::Draining { .. } => Phase::Serving,
            Phase::Stopping { upgrade, .. } => Phase::Stopping {
                upgrade,
                drain: None,
            },
            other => other,
        }
    }

    pub(super) fn upgrade_mut(&mut self) -> Option<&mut U> {
        match self {
            Phase::Upgrading(upgrade)
            | Phase::Stopping {
                upgrade: Some(upgrade),
                ..
            } => Some(upgrade),
            _ => None,
        }
    }

    pub(super) fn take_back_mut(&mut self) -> Option<&mut TakeBack> {
        match self {
            Phase::Draining { take_back, .. }
            | Phase::Stopping {
                drain: Some(take_back),
                ..
            } => Some(take_back).filter(|t| !t.is_terminated()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    type P = Phase<&'static str>;

    fn handed_over() -> (P, oneshot::Sender<Back>) {
        let (tx, rx) = oneshot::channel();
        let phase = Phase::Draining {
            successor: 42,
            take_back: rx.fuse(),
        };
        (phase, tx)
    }

    #[test]
    fn refusals() {
        assert!(P::Serving.refusal().is_none());
        assert!(matches!(
            P::Upgrading("u").refusal(),
            Some(UpgradeError::InProgress)
        ));
        assert!(matches!(
            handed_over().0.refusal(),
            Some(UpgradeError::Draining)
        ));
        // A stop refuses as "draining" even while an upgrade is still under way.
        assert!(matches!(
            P::Upgrading("u").stop().refusal(),
            Some(UpgradeError::Draining)
        ));
    }

    #[test]
    fn sigterm_mid_upgrade_keeps_the_upgrade_to_stop_it() {
        let mut phase = P::Upgrading("u").stop();
        assert!(phase.stopping() && !phase.draining());
        assert_eq!(phase.upgrade_mut().copied(), Some("u"));
        phase = phase.stop_drained(Fuse::terminated());
        assert!(phase.draining());
        assert_eq!(phase.take_upgrade(), Some("u"));
        assert!(phase.stopping() && phase.draining() && phase.upgrade_mut().is_none());
        assert!(
            phase.take_back_mut().is_none(),
            "no successor to take back from"
        );
    }

    #[test]
    fn a_failed_upgrade_serves_again() {
        let mut phase = P::Upgrading("u");
        assert_eq!(phase.take_upgrade(), Some("u"));
        assert!(matches!(phase, Phase::Serving));
        assert_eq!(phase.take_upgrade(), None);
    }

    #[test]
    fn take_back_serves_again_or_drains_anew_when_stopping() {
        let (mut phase, _tx) = handed_over();
        assert!(phase.draining() && !phase.stopping());
        assert!(phase.take_back_mut().is_some());
        assert!(matches!(phase.taken_back(), Phase::Serving));

        // SIGTERM while handed over: the drain and its take-back stay.
        let (phase, _tx) = handed_over();
        let mut phase = phase.stop();
        assert!(phase.stopping() && phase.draining());
        assert!(phase.take_back_mut().is_some());
        let phase = phase.taken_back();
        assert!(
            phase.stopping() && !phase.draining(),
            "a new drain is to start"
        );
    }

    #[test]
    fn a_forced_stop_has_no_drain_and_a_drain_only_once() {
        let phase = P::Serving.stop();
        assert!(phase.stopping() && !phase.draining());
        let phase = phase.stop_drained(Fuse::terminated()).stop();
        assert!(phase.draining(), "stop keeps the drain");
    }
}
