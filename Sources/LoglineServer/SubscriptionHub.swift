import LoglineCore
import LoglineLog
import NIOCore
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

/// The tasks one connection has started (commands, waits for views, blocking fetches); cancelled when the
/// connection closes, so that a `FETCH ... BLOCK` of a client that went away takes no more events.
final class ConnectionTasks: Sendable {
    private struct State {
        var next: UInt64 = 0
        var running: [UInt64: Task<Void, Never>] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Starts `body` as a task, unless the connection has closed.
    func start(_ body: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            guard !state.closed else { return }
            let id = state.next
            state.next += 1
            state.running[id] = Task { [weak self] in
                await body()
                self?.finished(id)
            }
        }
    }

    private func finished(_ id: UInt64) {
        _ = state.withLock { $0.running.removeValue(forKey: id) }
    }

    /// Cancels every running task and refuses new ones.
    func cancelAll() {
        let running = state.withLock { state -> [Task<Void, Never>] in
            state.closed = true
            defer { state.running.removeAll() }
            return Array(state.running.values)
        }
        for task in running { task.cancel() }
    }
}

/// Replies that complete on other threads (the log's writer, tasks), gathered so that the event loop is woken
/// once for many of them: a group commit completes hundreds of a connection's appends at once.
final class CompletionInbox: Sendable {
    /// One completed reply: its slot, whether it was an append, and the reply.
    typealias Item = (slot: Int, isAppend: Bool, reply: CompletedReply)

    private let items = Mutex<[Item]>([])

    /// Adds a reply; returns `true` when the inbox was empty, so the caller must schedule a drain.
    func post(_ item: Item) -> Bool {
        items.withLock { items in
            items.append(item)
            return items.count == 1
        }
    }

    /// Takes every reply waiting.
    func drain() -> [Item] {
        items.withLock { items in
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
    }
}

/// The limits every connection is held to.
struct ConnectionLimits: Sendable {
    let maximumConnections: Int
    let idleTimeout: Duration?
}

extension Duration {
    /// The whole duration in nanoseconds (saturating), for NIO's `TimeAmount`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : scaled &+ attoseconds / 1_000_000_000
    }
}
