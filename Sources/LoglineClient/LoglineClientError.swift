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
