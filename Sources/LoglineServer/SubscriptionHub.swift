import LoglineCore
import LoglineLog
import Synchronization

/// Tells live subscriptions that the log has grown: each registers a wake-up, called after every commit that
/// moves the head.
final class SubscriptionHub: Sendable {
    let log: any EventLog
    private let listeners = Mutex<[UInt64: @Sendable () -> Void]>([:])
    private let nextID = Atomic<UInt64>(0)

    init(log: any EventLog) {
        self.log = log
        log.onCommit { [weak self] _ in self?.notifyAll() }
    }

    /// Registers a wake-up; returns its id, for ``unregister(_:)``.
    func register(_ wake: @escaping @Sendable () -> Void) -> UInt64 {
        let id = nextID.add(1, ordering: .relaxed).newValue
        listeners.withLock { $0[id] = wake }
        return id
    }

    func unregister(_ id: UInt64) {
        _ = listeners.withLock { $0.removeValue(forKey: id) }
    }

    private func notifyAll() {
        for wake in listeners.withLock({ Array($0.values) }) { wake() }
    }
}

/// Coalesces wake-ups from other threads into at most one scheduled pump at a time.
final class PumpTrigger: Sendable {
    private let scheduled = Atomic<Bool>(false)

    /// Returns `true` when the caller should schedule a pump (none is scheduled yet).
    func claim() -> Bool { !scheduled.exchange(true, ordering: .acquiringAndReleasing) }

    /// Called by the pump when it starts, so that later wake-ups schedule another.
    func release() { scheduled.store(false, ordering: .releasing) }
}
