//! ephctrl's Events on env ConfigMaps: phase transitions and failures, through the shared
//! writer of `ephemerator_kit::events` (a reconcile never waits on one).

pub use ephemerator_kit::events::{
    EventSink, EventType, MAX_NOTE_BYTES, QUEUE_CAPACITY, Reporter, WRITERS, cut, event_name,
};

/// The `reportingController` of ephctrl's Events.
pub const REPORTING_CONTROLLER: &str = "ephemerator.tilt.dev/ephctrl";
/// The `action` of ephctrl's Events.
pub const ACTION: &str = "Reconcile";

/// Who ephctrl's Events say recorded them.
pub const REPORTER: Reporter = Reporter {
    controller: REPORTING_CONTROLLER,
    action: ACTION,
    server: "ephctrl",
};

/// ephctrl's sink and its writer (see [`EventSink::new`]).
pub fn sink(
    client: kube::Client,
    namespace: &str,
) -> (
    EventSink,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    EventSink::new(client, namespace, REPORTER)
}
