//! The server's [`Phase`]: serving, upgrading, handed over (draining, and as the fallback of a
//! successor on probation, able to take back), or stopping, as one value, with its transitions
//! as pure functions (tested here). It does nothing itself: the controller acts (signals,
//! successors, the drain) and moves the phase along.

use std::mem;

use crate::UpgradeError;

/// Where the server is: one value, so that no impossible combination (an upgrade while handed
/// over, a take-back after a stop) can be written down. Generic over the upgrade `U`, the
/// watched successor `S` and the drain `D` only for the tests of the transitions.
pub(super) enum Phase<U, S, D> {
    /// Serving, no upgrade under way, not asked to stop.
    Serving,
    /// Starting a successor; still serving.
    Upgrading(U),
    /// A successor serves; this process stopped accepting. `drain`: until it ends (then this
    /// process holds no client connection, or its timeout came). `fallback`: as the fallback
    /// of a successor on probation, its watch (the listeners come back should it fail); none
    /// when this process only waits for its drain to stop.
    HandedOver {
        drain: Option<D>,
        fallback: Option<S>,
    },
    /// Asked to stop for good (SIGTERM, SIGINT, SIGQUIT, or actix stopped). `upgrade`: a
    /// successor still being started (stopped as well). `drain`: this process's drain, until it
    /// ends (its pre-stop delay included); none once it ended, or for a forced stop.
    Stopping {
        upgrade: Option<U>,
        drain: Option<D>,
    },
}

impl<U, S, D> Phase<U, S, D> {
    /// Whether this process was asked to stop for good.
    pub(super) fn stopping(&self) -> bool {
        matches!(self, Phase::Stopping { .. })
    }

    /// Why an upgrade cannot start now, if it cannot.
    pub(super) fn refusal(&self) -> Option<UpgradeError> {
        match self {
            Phase::Serving => None,
            Phase::Upgrading(_) => Some(UpgradeError::InProgress),
            Phase::HandedOver { .. } | Phase::Stopping { .. } => Some(UpgradeError::Draining),
        }
    }

    /// Asked to stop for good: an upgrade under way and a drain are kept; a successor's
    /// probation is no longer watched (a process that stops takes nothing back). `drain` is
    /// called for the drain to start when none runs nor ran: not after a handoff, whose drain
    /// runs or ended already. Whether actix is to stop now comes with it: when this stop finds
    /// the drain ended.
    pub(super) fn stop(self, drain: impl FnOnce() -> D) -> (Self, bool) {
        match self {
            Phase::Serving => (
                Phase::Stopping {
                    upgrade: None,
                    drain: Some(drain()),
                },
                false,
            ),
            Phase::Upgrading(upgrade) => (
                Phase::Stopping {
                    upgrade: Some(upgrade),
                    drain: Some(drain()),
                },
                false,
            ),
            Phase::HandedOver { drain, .. } => {
                let ended = drain.is_none();
                let upgrade = None;
                (Phase::Stopping { upgrade, drain }, ended)
            }
            stopping @ Phase::Stopping { .. } => (stopping, false),
        }
    }

    /// Asked to stop at once: no drain (a drain under way is dropped), the upgrade kept to be
    /// stopped.
    pub(super) fn force_stop(self) -> Self {
        let upgrade = match self {
            Phase::Upgrading(upgrade) => Some(upgrade),
            Phase::Stopping { upgrade, .. } => upgrade,
            Phase::Serving | Phase::HandedOver { .. } => None,
        };
        Phase::Stopping {
            upgrade,
            drain: None,
        }
    }

    /// The successor is ready: hand over, draining with `drain`, watching it with `fallback`.
    /// Stopping meanwhile: stays stopping (the successor is stopped by the caller).
    pub(super) fn handed_over(self, drain: D, fallback: Option<S>) -> Self {
        match self {
            Phase::Serving | Phase::Upgrading(_) | Phase::HandedOver { .. } => Phase::HandedOver {
                drain: Some(drain),
                fallback,
            },
            stopping @ Phase::Stopping { .. } => stopping,
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

    /// The drain ended. Whether actix is to stop now: when no successor's verdict is awaited.
    pub(super) fn drained(&mut self) -> bool {
        match self {
            Phase::HandedOver { drain, fallback } => {
                *drain = None;
                fallback.is_none()
            }
            Phase::Stopping { drain, .. } => {
                *drain = None;
                true
            }
            Phase::Serving | Phase::Upgrading(_) => false,
        }
    }

    /// The successor's probation ended: the watch, taken out. Whether actix is to stop now
    /// comes with it: when the drain has ended.
    pub(super) fn take_fallback(&mut self) -> Option<(S, bool)> {
        match self {
            Phase::HandedOver { drain, fallback } => {
                fallback.take().map(|watch| (watch, drain.is_none()))
            }
            _ => None,
        }
    }

    /// A watch taken out by [`take_fallback`](Self::take_fallback) goes back in, while handed
    /// over (the successor passed its probation, and this process still drains).
    pub(super) fn put_back_fallback(&mut self, watch: S) {
        if let Phase::HandedOver { fallback, .. } = self {
            *fallback = Some(watch);
        }
    }

    /// Taking the listeners back: serving again.
    pub(super) fn taken_back(self) -> Self {
        match self {
            Phase::HandedOver { .. } => Phase::Serving,
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

    pub(super) fn drain_mut(&mut self) -> Option<&mut D> {
        match self {
            Phase::HandedOver {
                drain: Some(drain), ..
            }
            | Phase::Stopping {
                drain: Some(drain), ..
            } => Some(drain),
            _ => None,
        }
    }

    pub(super) fn fallback_mut(&mut self) -> Option<&mut S> {
        match self {
            Phase::HandedOver {
                fallback: Some(watch),
                ..
            } => Some(watch),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type P = Phase<&'static str, &'static str, &'static str>;

    #[test]
    fn refusals() {
        assert!(P::Serving.refusal().is_none());
        assert!(matches!(
            P::Upgrading("u").refusal(),
            Some(UpgradeError::InProgress)
        ));
        let handed = P::Serving.handed_over("d", Some("s"));
        assert!(matches!(handed.refusal(), Some(UpgradeError::Draining)));
        // A stop refuses as "draining" even while an upgrade is still under way.
        assert!(matches!(
            P::Upgrading("u").stop(|| "d").0.refusal(),
            Some(UpgradeError::Draining)
        ));
    }

    #[test]
    fn sigterm_mid_upgrade_drains_and_keeps_the_upgrade_to_stop_it() {
        let (mut phase, now) = P::Upgrading("u").stop(|| "d");
        assert!(phase.stopping() && !now);
        assert_eq!(phase.upgrade_mut().copied(), Some("u"));
        assert_eq!(phase.drain_mut().copied(), Some("d"));
        assert_eq!(phase.take_upgrade(), Some("u"));
        assert!(phase.stopping() && phase.upgrade_mut().is_none());
        // The successor got ready meanwhile: still stopping, it is stopped too.
        let phase = phase.handed_over("d2", Some("s"));
        assert!(phase.stopping());
    }

    #[test]
    fn a_failed_upgrade_serves_again() {
        let mut phase = P::Upgrading("u");
        assert_eq!(phase.take_upgrade(), Some("u"));
        assert!(matches!(phase, Phase::Serving));
        assert_eq!(phase.take_upgrade(), None);
    }

    #[test]
    fn a_fallback_stops_only_after_both_the_drain_and_the_verdict() {
        // Drain first, then the verdict.
        let mut phase = P::Upgrading("u").handed_over("d", Some("s"));
        assert!(!phase.drained(), "the verdict is still awaited");
        assert!(phase.drain_mut().is_none() && phase.fallback_mut().is_some());
        assert_eq!(phase.take_fallback(), Some(("s", true)));
        // The verdict first, then the drain.
        let mut phase = P::Upgrading("u").handed_over("d", Some("s"));
        assert_eq!(phase.take_fallback(), Some(("s", false)));
        assert!(phase.drained());
        // Not a fallback: the drain's end stops.
        let mut phase = P::Upgrading("u").handed_over("d", None);
        assert!(phase.drained());
    }

    #[test]
    fn a_take_back_serves_again_and_a_stop_gives_up_the_watch() {
        let phase = P::Upgrading("u").handed_over("d", Some("s"));
        assert!(matches!(phase.taken_back(), Phase::Serving));
        let (mut phase, now) = P::Upgrading("u")
            .handed_over("d", Some("s"))
            .stop(|| unreachable!("a handoff's drain runs already"));
        assert!(phase.stopping() && phase.fallback_mut().is_none() && !now);
        assert_eq!(phase.drain_mut().copied(), Some("d"));
        assert!(phase.take_fallback().is_none());
        // SIGTERM to a fallback whose drain ended: actix stops now; a second SIGTERM changes
        // nothing.
        let mut phase = P::Upgrading("u").handed_over("d", Some("s"));
        assert!(!phase.drained());
        let (phase, now) = phase.stop(|| unreachable!());
        assert!(phase.stopping() && now);
        let (phase, now) = phase.stop(|| unreachable!());
        assert!(phase.stopping() && !now);
    }

    #[test]
    fn a_forced_stop_has_no_drain() {
        let mut phase = P::Serving.stop(|| "d").0.force_stop();
        assert!(phase.stopping() && phase.drain_mut().is_none());
        let mut phase = P::Upgrading("u").force_stop();
        assert_eq!(phase.take_upgrade(), Some("u"));
    }
}
