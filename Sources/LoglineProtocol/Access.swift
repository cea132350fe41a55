import NIOCore

/// What a request needs of its connection when the server requires authentication.
public enum RequiredAccess: Hashable, Sendable {
    /// Allowed before `AUTH`: `AUTH` itself, `PING`, `QUIT` and the Redis housekeeping verbs.
    case unauthenticated
    /// Reads the log, the views or the consumer groups. Consuming a group (`FETCH`, `ACK`, `NACK`) counts as
    /// reading: it changes only the group's own deliveries, never the log, the views or the set of groups.
    case read
    /// Changes the log (`APPEND`, `APPENDMANY`, `SUBMIT`), the modules (`REBUILD`, `RETRY`, `SKIP`) or the set of
    /// consumer groups (`GROUP CREATE`, `GROUP DELETE`).
    case write
}

extension Request {
    /// What the request needs: nothing, read access or write access.
    ///
    /// The switch has no default on purpose: a new verb does not compile until it is classified here.
    public var requiredAccess: RequiredAccess {
        switch self {
        case .ping, .quit, .auth, .redisCompatibility:
            return .unauthenticated
        case .read, .readAll, .info, .get, .query, .views, .projections, .parked, .subscribe, .unsubscribe, .groups,
            .fetch, .ack, .nack, .pending, .dead:
            return .read
        case .append, .appendMany, .submit, .rebuild, .retry, .skip, .groupCreate, .groupDelete, .backup:
            // BACKUP writes files on the server's machine: only a read-write token may ask for it.
            return .write
        }
    }
}

extension RequestFrame {
    /// The verbs allowed before authentication, upper case: the verbs of the requests whose
    /// ``Request/requiredAccess`` is ``RequiredAccess/unauthenticated``.
    public static let verbsAllowedBeforeAuthentication: Set<String> = [
        "AUTH", "PING", "QUIT", "COMMAND", "CONFIG", "CLIENT", "SELECT", "ECHO",
    ]

    /// The first word of the request, upper case (at most 32 bytes of it), or `nil` when the frame is empty.
    public var verb: String? {
        let word: ByteBuffer?
        switch self {
        case .resp(let arguments):
            word = arguments.first
        case .inline(let line):
            let bytes = line.readableBytesView
            guard let start = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return nil }
            let end = bytes[start...].firstIndex(where: { $0 == 0x20 || $0 == 0x09 }) ?? bytes.endIndex
            word = line.getSlice(at: start, length: end - start)
        }
        guard let word else { return nil }
        // Upper-cased as the parser does (ASCII letters only), so that both read the same verb.
        return word.withUnsafeReadableBytes { ArgumentReader.keyword(UnsafeRawBufferPointer(rebasing: $0.prefix(32))) }
    }

    /// Whether the request may be sent before authentication, judged from its verb alone, so that a server can
    /// refuse an unauthenticated request without parsing (or validating the JSON of) the rest of it.
    public var isAllowedBeforeAuthentication: Bool {
        guard let verb else { return false }
        return Self.verbsAllowedBeforeAuthentication.contains(verb)
    }
}
