import Prometheus

/// The Prometheus side of Logline's metrics: the factory that the composition root bootstraps `MetricsSystem` with
/// (or that a test hands to a server of its own).
public enum LoglineMetrics {
    /// Histogram buckets for timers, in seconds: from 50 µs, about an fsync on a fast disk, to 10 s. A group
    /// commit takes a fraction of a millisecond to a few milliseconds, so the library's default (from 5 ms) would
    /// put nearly every sample in its first bucket.
    public static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10),
    ]

    /// Histogram buckets for counts, such as the requests and events of one group commit.
    public static let valueBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]

    /// A factory whose metrics go to `registry`, with ``durationBuckets`` for timers and ``valueBuckets`` for
    /// recorders that aggregate.
    /// - Parameter registry: The registry the endpoint serves.
    /// - Returns: The factory.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        factory.defaultValueHistogramBuckets = valueBuckets
        return factory
    }
}
