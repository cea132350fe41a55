import LoglineCore
import Synchronization

/// Wakes a module's loop: set by new commits and by operations, consumed by the loop.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Wakes the loop now, or the next time it waits.
    func notify() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at once when notified since the last wait; otherwise waits for a notification or cancellation.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            notify()
        }
    }
}

/// What queries read without going through a module's actor: its checkpoint and active generation, and the
/// queries waiting for the checkpoint to reach a position (`AT`).
final class ModuleHandle: Sendable {
    /// The module's name.
    let name: String
    private let checkpointPosition = Atomic<UInt64>(0)
    private let activeGeneration = Atomic<UInt64>(1)
    private struct Waiter {
        let position: LogPosition
        let continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?
    }

    private let waiters = Mutex<[UInt64: Waiter]>([:])
    private let nextWaiter = Atomic<UInt64>(0)

    init(name: String) {
        self.name = name
    }

    var checkpoint: LogPosition { checkpointPosition.load(ordering: .acquiring) }
    var generation: UInt64 { activeGeneration.load(ordering: .acquiring) }

    func setGeneration(_ generation: UInt64) {
        activeGeneration.store(generation, ordering: .releasing)
    }

    /// Publishes a new checkpoint and wakes the queries waiting for it.
    func advance(to position: LogPosition) {
        checkpointPosition.store(position, ordering: .releasing)
        let ready = waiters.withLock { waiters -> [Waiter] in
            let keys = waiters.filter { $0.value.position <= position }.map(\.key)
            return keys.compactMap { waiters.removeValue(forKey: $0) }
        }
        for waiter in ready {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: true)
        }
    }

    /// Waits until the checkpoint reaches `position`, at most `timeout`.
    /// - Returns: `true` when reached, `false` on timeout.
    func wait(for position: LogPosition, timeout: Duration) async -> Bool {
        if checkpoint >= position { return true }
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        return await withCheckedContinuation { continuation in
            let reached = waiters.withLock { waiters -> Bool in
                if checkpoint >= position { return true }
                waiters[id] = Waiter(position: position, continuation: continuation, timer: nil)
                return false
            }
            if reached {
                continuation.resume(returning: true)
                return
            }
            // The timer starts once the waiter is registered, so it can never miss it.
            let timer = Task { [self] in
                try? await Task.sleep(for: timeout)
                if let waiter = waiters.withLock({ $0.removeValue(forKey: id) }) {
                    waiter.continuation.resume(returning: false)
                }
            }
            let stillWaiting = waiters.withLock { waiters -> Bool in
                guard waiters[id] != nil else { return false }
                waiters[id]?.timer = timer
                return true
            }
            if !stillWaiting { timer.cancel() }
        }
    }
}
