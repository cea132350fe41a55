#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The writer's pass over a group commit's completions, and the work its completions put off to the pass's end.
///
/// A group commit completes the requests of many connections, one completion after another on the writer's thread.
/// A completion that must wake another thread (an event loop, to write its connection's reply) can instead ask for
/// the wake-up at the end of the pass with ``atEnd(_:)``, so that all the replies bound for one event loop share one
/// wake-up: a system call each, taken on the writer's thread between its commits.
public enum CompletionPass {
    private final class Actions {
        var list: [() -> Void] = []
    }

    /// The calling thread's pass, if it is in one.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// Runs `action` at the end of the completion pass that the calling thread is in, or at once when it is in none
    /// (a completion called by another log, or by a test's).
    /// - Parameter action: What to run; it must not block.
    public static func atEnd(_ action: @escaping () -> Void) {
        if let raw = pthread_getspecific(key) {
            Unmanaged<Actions>.fromOpaque(raw).takeUnretainedValue().list.append(action)
        } else {
            action()
        }
    }

    /// Runs `body` (the completions) as a pass, then the actions it put off, in the order they were asked for.
    static func run(_ body: () -> Void) {
        let actions = Actions()
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(actions).toOpaque())
        body()
        pthread_setspecific(key, outer)
        for action in actions.list { action() }
    }
}
