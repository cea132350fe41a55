import LoglineCore

/// A write to one of the log's state tables: the small key-value store that lives beside the events so that
/// modules can commit their views and checkpoints in the same transaction as the events they append.
public struct StateWrite: Hashable, Sendable {
    /// The table's name (no 0 bytes).
    public var table: String
    /// The key's bytes.
    public var key: [UInt8]
    /// The new value, or `nil` to delete the key.
    public var value: [UInt8]?

    /// Creates a write.
    /// - Parameters:
    ///   - table: The table.
    ///   - key: The key.
    ///   - value: The value, or `nil` to delete.
    public init(table: String, key: [UInt8], value: [UInt8]?) {
        self.table = table
        self.key = key
        self.value = value
    }
}

/// A condition on a state table that must hold for a commit to apply: optimistic concurrency for state.
public struct StateCondition: Hashable, Sendable {
    /// The table's name.
    public var table: String
    /// The key's bytes.
    public var key: [UInt8]
    /// The value the key must hold, or `nil` for "absent".
    public var expected: [UInt8]?

    /// Creates a condition.
    /// - Parameters:
    ///   - table: The table.
    ///   - key: The key.
    ///   - expected: The value it must hold, or `nil` for absent.
    public init(table: String, key: [UInt8], expected: [UInt8]?) {
        self.table = table
        self.key = key
        self.expected = expected
    }
}

/// Appends and state writes that commit together, all or nothing, in one durable transaction.
///
/// This is how a module gets exactly-once effects: its new events, its view changes and its checkpoint are one
/// commit unit, guarded by a condition on the checkpoint it started from.
public struct CommitUnit: Hashable, Sendable {
    /// Appends, applied in order (each with its own expectation).
    public var appends: [AppendRequest]
    /// State writes, applied in order after the appends.
    public var writes: [StateWrite]
    /// Conditions checked before anything is written.
    public var conditions: [StateCondition]

    /// Creates a commit unit.
    /// - Parameters:
    ///   - appends: The appends.
    ///   - writes: The state writes.
    ///   - conditions: The conditions.
    public init(appends: [AppendRequest] = [], writes: [StateWrite] = [], conditions: [StateCondition] = []) {
        self.appends = appends
        self.writes = writes
        self.conditions = conditions
    }
}

/// Why a commit unit wrote nothing.
public enum CommitError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The append at `index` failed.
    case append(index: Int, AppendError)
    /// A condition did not hold.
    case conditionFailed(table: String, key: [UInt8])
    /// The log is closed.
    case closed
    /// The storage failed; nothing was written.
    case storage(String)
    /// The disk, a quota or the file-size limit is full; nothing was written.
    case diskFull(String)

    /// A message.
    public var description: String {
        switch self {
        case .append(let index, let error): return "append \(index): \(error)"
        case .conditionFailed(let table, let key):
            return "condition on \(table)/\(String(decoding: key, as: UTF8.self)) did not hold"
        case .closed: return "the log is closed"
        case .storage(let message): return "storage failure, nothing was written: \(message)"
        case .diskFull(let message):
            return "the disk is full, nothing was written (retry once space is freed): \(message)"
        }
    }
}

/// A run of events read for a consumer, and how far the read looked.
public struct EventBatch: Hashable, Sendable {
    /// The matching events, in position order.
    public var events: [RecordedEvent]
    /// The last position examined: a consumer that handled `events` may checkpoint here, even when the
    /// positions after its last event did not match its filter.
    public var scannedThrough: LogPosition

    /// Creates a batch.
    /// - Parameters:
    ///   - events: The events.
    ///   - scannedThrough: The last position examined.
    public init(events: [RecordedEvent], scannedThrough: LogPosition) {
        self.events = events
        self.scannedThrough = scannedThrough
    }
}
