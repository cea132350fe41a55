import LoglineCore
import Metrics

/// The metrics of one projector or reactor, each with the dimension `module`: recorded once per batch (and the
/// lag once per group commit), never once per event.
///
/// Names and meanings are listed in README (Operations, Metrics).
struct ModuleMetrics: Sendable {
    /// The last position the module has processed (its checkpoint).
    let checkpoint: Gauge
    /// How many positions the module is behind the log's head.
    let lag: Gauge
    /// Events the module has processed (applied, reacted to, or parked); events of types it does not handle are
    /// not counted.
    let processed: Counter
    /// One live batch: reading its events, running the module, and the commit of its effects and checkpoint.
    let batchDuration: CoreMetrics.Timer
    /// The module's parked events now.
    let parked: Gauge
    /// 1 while the module is stopped before a failing event (policy `.stop`), else 0.
    let faulted: Gauge

    init(module: String, factory: any MetricsFactory) {
        let dimensions = [("module", module)]
        checkpoint = Gauge(label: "logline_module_checkpoint_position", dimensions: dimensions, factory: factory)
        lag = Gauge(label: "logline_module_lag_events", dimensions: dimensions, factory: factory)
        processed = Counter(label: "logline_module_events_processed_total", dimensions: dimensions, factory: factory)
        batchDuration = CoreMetrics.Timer(
            label: "logline_module_batch_duration_seconds", dimensions: dimensions, factory: factory)
        parked = Gauge(label: "logline_module_parked_events", dimensions: dimensions, factory: factory)
        faulted = Gauge(label: "logline_module_faulted", dimensions: dimensions, factory: factory)
    }

    /// Records a checkpoint and the lag behind `head`.
    func record(checkpoint position: LogPosition, head: LogPosition) {
        checkpoint.record(Int64(truncatingIfNeeded: position))
        lag.record(Int64(truncatingIfNeeded: head > position ? head - position : 0))
    }
}
