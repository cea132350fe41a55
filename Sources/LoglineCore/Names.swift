/// A gap-free global position in the log: the first event is at position 1.
///
/// Position 0 means "before the first event".
public typealias LogPosition = UInt64

/// A gap-free version within one stream: the first event of a stream has version 1.
///
/// Version 0 means "the stream has no events".
public typealias StreamVersion = UInt64

/// The rules for names: aggregate types, aggregate ids and event types.
///
/// A name is 1 to 200 bytes of `A-Z a-z 0-9 . _ : @ -`. The alphabet needs no escaping in JSON,
/// in RESP or on a command line, and never contains the byte 0, which the log uses as a separator.
public enum Name {
    /// The longest name, in bytes.
    public static let maximumLength = 200

    /// Whether `byte` may appear in a name.
    /// - Parameter byte: A byte of a UTF-8 string.
    /// - Returns: `true` for `A-Z a-z 0-9 . _ : @ -`.
    @inlinable
    public static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
            UInt8(ascii: "@"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Whether `bytes` form a valid name.
    /// - Parameter bytes: The candidate name.
    /// - Returns: `true` when the length is 1 to ``maximumLength`` and every byte is allowed.
    @inlinable
    public static func isValid<Bytes: Collection>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        let count = bytes.count
        guard count >= 1, count <= maximumLength else { return false }
        return bytes.allSatisfy(isNameByte)
    }

    /// Whether `name` is a valid name.
    /// - Parameter name: The candidate name.
    /// - Returns: `true` when it follows the rules above.
    public static func isValid(_ name: String) -> Bool {
        isValid(name.utf8)
    }
}

/// A stream: the events of one aggregate, like a row key of the article's events table.
public struct StreamName: Hashable, Sendable, CustomStringConvertible {
    /// The kind of aggregate, for example `order`.
    public let aggregateType: String
    /// The aggregate's identity within its type, for example an order id.
    public let aggregateID: String

    /// Creates a stream name after checking both parts.
    /// - Parameters:
    ///   - aggregateType: The kind of aggregate.
    ///   - aggregateID: The aggregate's id.
    /// - Throws: ``NameError`` when either part breaks the rules of ``Name``.
    public init(aggregateType: String, aggregateID: String) throws(NameError) {
        guard Name.isValid(aggregateType) else { throw NameError(field: "aggregate_type", value: aggregateType) }
        guard Name.isValid(aggregateID) else { throw NameError(field: "aggregate_id", value: aggregateID) }
        self.aggregateType = aggregateType
        self.aggregateID = aggregateID
    }

    /// Creates a stream name from parts already known to be valid, for example read back from the log.
    /// - Important: The caller vouches for both parts.
    public init(uncheckedType aggregateType: String, id aggregateID: String) {
        self.aggregateType = aggregateType
        self.aggregateID = aggregateID
    }

    /// `aggregate_type/aggregate_id`, for messages.
    public var description: String { "\(aggregateType)/\(aggregateID)" }
}

/// A name that breaks the rules of ``Name``.
public struct NameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The field that holds the bad name, for example `event_type`.
    public let field: String
    /// The rejected value, cut to 64 characters.
    public let value: String

    /// Creates the error.
    /// - Parameters:
    ///   - field: The field that holds the bad name.
    ///   - value: The rejected value.
    public init(field: String, value: String) {
        self.field = field
        self.value = String(value.prefix(64))
    }

    /// A message that says the rule.
    public var description: String {
        "invalid \(field) '\(value)': use 1 to \(Name.maximumLength) bytes of A-Z a-z 0-9 . _ : @ -"
    }
}

/// What an append expects of its stream: optimistic concurrency.
public enum ExpectedVersion: Hashable, Sendable, CustomStringConvertible {
    /// No expectation: append whatever the stream's version.
    case any
    /// The stream must not exist yet (it has no events).
    case noStream
    /// The stream must be at exactly this version (0 also means "no events").
    case exact(StreamVersion)

    /// Whether a stream at `current` meets the expectation.
    /// - Parameter current: The stream's version now (0 when it has no events).
    /// - Returns: `true` when the append may go ahead.
    @inlinable
    public func isSatisfied(by current: StreamVersion) -> Bool {
        switch self {
        case .any: return true
        case .noStream: return current == 0
        case .exact(let version): return version == current
        }
    }

    /// `ANY`, `NONE` or the number, as in the protocol.
    public var description: String {
        switch self {
        case .any: return "ANY"
        case .noStream: return "NONE"
        case .exact(let version): return String(version)
        }
    }
}
