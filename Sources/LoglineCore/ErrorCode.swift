/// The error codes of the protocol: the first word of a `-CODE message` reply.
///
/// A struct rather than an enum so that later versions can add codes without breaking clients.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code as it appears on the wire, for example `CONFLICT`.
    public let rawValue: String

    /// Creates a code from its wire form.
    /// - Parameter rawValue: The code, upper case.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// Syntax error, unknown verb, wrong arguments, bad names or ids.
    public static let badRequest = ErrorCode(rawValue: "BADREQ")
    /// A JSON argument is not valid JSON (or not the JSON kind required).
    public static let badJSON = ErrorCode(rawValue: "BADJSON")
    /// An expected version did not hold, or an event id is already used by another event.
    public static let conflict = ErrorCode(rawValue: "CONFLICT")
    /// The named thing does not exist.
    public static let notFound = ErrorCode(rawValue: "NOTFOUND")
    /// The request, or a value in it, is larger than the server accepts.
    public static let tooLarge = ErrorCode(rawValue: "TOOLARGE")
    /// The connection must authenticate first.
    public static let noAuth = ErrorCode(rawValue: "NOAUTH")
    /// The server failed; the request may or may not have taken effect only where the message says so.
    public static let `internal` = ErrorCode(rawValue: "INTERNAL")
    /// A bounded wait ran out.
    public static let timeout = ErrorCode(rawValue: "TIMEOUT")
    /// A command handler refused a command.
    public static let rejected = ErrorCode(rawValue: "REJECTED")
    /// The server is shutting down or otherwise not accepting the request now.
    public static let unavailable = ErrorCode(rawValue: "UNAVAILABLE")
    /// The disk, a disk quota or the server's file-size limit is full: nothing of the request was written, and
    /// the same request succeeds once space is freed, without a restart.
    public static let diskFull = ErrorCode(rawValue: "DISKFULL")

    /// The wire form.
    public var description: String { rawValue }
}
