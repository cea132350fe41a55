import Metrics

/// The metrics of the event log, made once when the log opens and recorded by the writer thread once per group
/// commit (never once per event or per request).
///
/// Names and meanings are listed in README (Operations, Metrics).
struct LogMetrics: Sendable {
    /// Append requests by outcome.
    let appended: Counter
    let duplicates: Counter
    let conflicts: Counter
    let invalid: Counter
    let failed: Counter
    /// Commit units (modules' batches, consumer groups' state) by outcome.
    let unitsCommitted: Counter
    let unitsRefused: Counter
    /// Events written to the log, from every source.
    let events: Counter
    /// Group commits whose transaction failed: nothing of them was written.
    let commitFailures: Counter
    /// Requests (appends and units) per group commit.
    let requestsPerCommit: Recorder
    /// Events written per group commit.
    let eventsPerCommit: Recorder
    /// A whole group commit: staging the requests, then the durable commit.
    let commitDuration: CoreMetrics.Timer
    /// The durable commit alone: the journal record's write and fsync, then LMDB's commit.
    let syncDuration: CoreMetrics.Timer
    /// The last durable position.
    let head: Gauge
    /// The LMDB map size, which grows by itself.
    let mapSize: Gauge
    /// How often the store's mapped pages were handed back to the page cache.
    let mapReleases: Counter
    /// Journal checkpoints: the data file synced behind the journal, and how long each took.
    let checkpointDuration: CoreMetrics.Timer
    /// Stream-index entries waiting in memory for a bulk write (``PendingStreamIndex``).
    let pendingIndexEntries: Gauge

    init(factory: any MetricsFactory) {
        func requests(_ outcome: String) -> Counter {
            Counter(label: "logline_append_requests_total", dimensions: [("outcome", outcome)], factory: factory)
        }
        appended = requests("appended")
        duplicates = requests("duplicate")
        conflicts = requests("conflict")
        invalid = requests("invalid")
        failed = requests("failed")
        unitsCommitted = Counter(
            label: "logline_commit_units_total", dimensions: [("outcome", "committed")], factory: factory)
        unitsRefused = Counter(
            label: "logline_commit_units_total", dimensions: [("outcome", "refused")], factory: factory)
        events = Counter(label: "logline_appended_events_total", factory: factory)
        commitFailures = Counter(label: "logline_group_commit_failures_total", factory: factory)
        requestsPerCommit = Recorder(label: "logline_group_commit_requests", factory: factory)
        eventsPerCommit = Recorder(label: "logline_group_commit_events", factory: factory)
        commitDuration = CoreMetrics.Timer(label: "logline_group_commit_duration_seconds", factory: factory)
        syncDuration = CoreMetrics.Timer(label: "logline_group_commit_sync_seconds", factory: factory)
        head = Gauge(label: "logline_head_position", factory: factory)
        mapSize = Gauge(label: "logline_map_size_bytes", factory: factory)
        mapReleases = Counter(label: "logline_map_releases_total", factory: factory)
        checkpointDuration = CoreMetrics.Timer(label: "logline_journal_checkpoint_seconds", factory: factory)
        pendingIndexEntries = Gauge(label: "logline_stream_index_pending_entries", factory: factory)
    }
}
