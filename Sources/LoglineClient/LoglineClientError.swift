import LoglineCore

/// What went wrong with a client call.
public enum LoglineClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered with an error reply (`-CODE message`).
    case server(code: ErrorCode, message: String)
    /// The connection could not be made.
    case connectionFailed(String)
    /// The connection closed before the reply came.
    case connectionClosed
    /// The reply was not of the expected shape.
    case unexpectedReply(String)
    /// The request cannot be sent as given (for example an inline request with a line break).
    case invalidRequest(String)

    /// Reads an error reply (`CODE message`, without the `-`).
    /// - Parameter text: The reply's text.
    init(errorReply text: String) {
        let code = text.split(separator: " ", maxSplits: 1).first.map(String.init) ?? "INTERNAL"
        let message = text.split(separator: " ", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        self = .server(code: ErrorCode(rawValue: code), message: message)
    }

    /// Whether the server dropped a subscription because it read too slowly (`-LAGGING`).
    ///
    /// Resume with ``LoglineClient/subscribe(from:eventTypes:)`` from ``EventSubscription/resumePoint``.
    public var isLagging: Bool { code?.rawValue == "LAGGING" }

    /// The server's error code, when the server answered with an error.
    public var code: ErrorCode? {
        if case .server(let code, _) = self { return code }
        return nil
    }

    /// A one-line message.
    public var description: String {
        switch self {
        case .server(let code, let message): return "\(code) \(message)"
        case .connectionFailed(let reason): return "cannot connect: \(reason)"
        case .connectionClosed: return "the connection closed before the reply came"
        case .unexpectedReply(let reply): return "unexpected reply: \(reply)"
        case .invalidRequest(let reason): return "invalid request: \(reason)"
        }
    }
}
