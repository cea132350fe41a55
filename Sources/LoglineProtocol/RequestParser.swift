import LoglineCore
import NIOCore

/// Turns a ``RequestFrame`` into a ``Request``: verbs, arguments, names, ids and JSON are all checked here, so
/// nothing invalid reaches the log.
public struct RequestParser: Sendable {
    /// The default `COUNT` of `READ` and `READALL`.
    public static let defaultCount = 1000
    /// The largest `COUNT` of `READ` and `READALL`.
    public static let maximumCount = 10_000
    /// The largest `data` of one event, in bytes.
    public let maximumDataBytes: Int

    /// Creates a parser.
    /// - Parameter maximumDataBytes: The largest JSON body of one event (1 MiB by default).
    public init(maximumDataBytes: Int = 1 << 20) {
        self.maximumDataBytes = maximumDataBytes
    }

    /// Parses one frame.
    /// - Parameter frame: The framed request.
    /// - Returns: The request.
    /// - Throws: ``RequestError`` with the code for the reply.
    public func parse(_ frame: RequestFrame) throws(RequestError) -> Request {
        var arguments = ArgumentReader(frame)
        guard let verb = arguments.nextKeyword() else { throw RequestError(.badRequest, "empty request") }
        switch verb {
        case "PING":
            let message = arguments.rest()
            try arguments.expectEnd(verb)
            return .ping(message: message)
        case "APPEND": return .append(try parseAppend(&arguments))
        case "APPENDMANY": return .appendMany(try parseAppendMany(&arguments))
        case "READ": return .read(try parseRead(&arguments))
        case "READALL": return .readAll(try parseReadAll(&arguments))
        case "SUBMIT":
            let usage = "SUBMIT <command-name> <json>"
            let command = try name(&arguments, field: "command name", usage: usage)
            guard let body = arguments.rest() else { throw RequestError(.badRequest, "missing body; usage: \(usage)") }
            try arguments.expectEnd(verb)
            try validateDataSize(body)
            if let failure = JSONValidator.validate(body) { throw RequestError(.badJSON, "body: \(failure)") }
            return .submit(command: command, body: body)
        case "GET":
            let usage = "GET <view> <key> [AT <position>]"
            let view = try name(&arguments, field: "view", usage: usage)
            let key = try documentKey(&arguments, usage: usage)
            var command = GetCommand(view: view, key: key, atPosition: nil)
            while let option = arguments.nextKeyword() {
                guard option == "AT" else {
                    throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
                }
                command.atPosition = try number(&arguments, after: "AT")
            }
            return .get(command)
        case "QUERY":
            return .query(try parseQuery(&arguments))
        case "VIEWS":
            try arguments.expectEnd(verb)
            return .views
        case "PROJECTIONS":
            try arguments.expectEnd(verb)
            return .projections
        case "REBUILD", "PARKED":
            let module = try name(&arguments, field: "module", usage: "\(verb) <module>")
            try arguments.expectEnd(verb)
            return verb == "REBUILD" ? .rebuild(module: module) : .parked(module: module)
        case "RETRY", "SKIP":
            let module = try name(&arguments, field: "module", usage: "\(verb) <module> <position>")
            let position = try number(&arguments, after: "\(verb) <module>")
            try arguments.expectEnd(verb)
            return verb == "RETRY"
                ? .retry(module: module, position: position) : .skip(module: module, position: position)
        case "SUBSCRIBE":
            var command = SubscribeCommand(start: .now, eventTypes: [])
            while let option = arguments.nextKeyword() {
                switch option {
                case "FROM": command.start = try start(&arguments)
                case "TYPE":
                    command.eventTypes.append(
                        try name(
                            &arguments, field: "event_type", usage: "SUBSCRIBE [FROM <position>|NOW] [TYPE <t>]..."))
                default:
                    throw RequestError(
                        .badRequest,
                        "unexpected '\(option.prefix(32))'; usage: SUBSCRIBE [FROM <position>|NOW] [TYPE <t>]...")
                }
            }
            return .subscribe(command)
        case "UNSUBSCRIBE":
            _ = arguments.rest()
            return .unsubscribe
        case "GROUP":
            return try parseGroup(&arguments)
        case "GROUPS":
            try arguments.expectEnd(verb)
            return .groups
        case "FETCH":
            let usage = "FETCH <group> <consumer> [COUNT <n>] [BLOCK <ms>]"
            let group = try name(&arguments, field: "group", usage: usage)
            let consumer = try name(&arguments, field: "consumer", usage: usage)
            var command = FetchCommand(group: group, consumer: consumer, count: 10, blockMilliseconds: nil)
            while let option = arguments.nextKeyword() {
                switch option {
                case "COUNT":
                    let count = try number(&arguments, after: "COUNT")
                    guard count >= 1, count <= 1000 else { throw RequestError(.badRequest, "COUNT must be 1 to 1000") }
                    command.count = Int(count)
                case "BLOCK":
                    let block = try number(&arguments, after: "BLOCK")
                    guard block <= 86_400_000 else { throw RequestError(.badRequest, "BLOCK is at most 86400000 ms") }
                    command.blockMilliseconds = block
                default: throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
                }
            }
            return .fetch(command)
        case "ACK", "NACK":
            let usage = "\(verb) <group> <position>..."
            let group = try name(&arguments, field: "group", usage: usage)
            var positions: [LogPosition] = []
            while let bytes = arguments.nextWord() {
                guard let position = Self.parseUnsigned(bytes) else {
                    throw RequestError(.badRequest, "positions are whole numbers; usage: \(usage)")
                }
                positions.append(position)
            }
            guard !positions.isEmpty else { throw RequestError(.badRequest, "missing positions; usage: \(usage)") }
            return verb == "ACK" ? .ack(group: group, positions: positions) : .nack(group: group, positions: positions)
        case "PENDING", "DEAD":
            let group = try name(&arguments, field: "group", usage: "\(verb) <group>")
            try arguments.expectEnd(verb)
            return verb == "PENDING" ? .pending(group: group) : .dead(group: group)
        case "BACKUP":
            guard let directory = arguments.rest(), !directory.isEmpty, directory.count <= 4096,
                !directory.contains(0)
            else { throw RequestError(.badRequest, "usage: BACKUP <directory on the server>") }
            try arguments.expectEnd(verb)
            return .backup(directory: String(decoding: directory, as: UTF8.self))
        case "INFO":
            _ = arguments.rest()  // Redis clients may send `INFO <section>`; Logline has one section.
            return .info
        case "QUIT":
            return .quit
        case "AUTH":
            // Never echo a token back: the messages below name no argument.
            let usage = "AUTH <token> (or AUTH <username> <token>)"
            guard let first = arguments.nextWord() else {
                throw RequestError(.badRequest, "missing token; usage: \(usage)")
            }
            let second = arguments.nextWord()
            guard arguments.peekWord() == nil else {
                throw RequestError(.badRequest, "too many arguments for AUTH; usage: \(usage)")
            }
            return .auth(token: second ?? first)
        case "COMMAND":
            return .redisCompatibility(.command)
        case "CONFIG":
            guard arguments.nextKeyword() == "GET" else {
                throw RequestError(.badRequest, "CONFIG supports only GET")
            }
            let parameter = arguments.nextWord().map { String(decoding: $0, as: UTF8.self).lowercased() } ?? ""
            return .redisCompatibility(.configGet(parameter))
        case "CLIENT", "SELECT":
            return .redisCompatibility(.ok)
        case "ECHO":
            guard let message = arguments.rest() else { throw RequestError(.badRequest, "ECHO needs a message") }
            return .redisCompatibility(.echo(message))
        default:
            throw RequestError(.badRequest, "unknown verb '\(String(verb.prefix(32)))'; see PROTOCOL.md")
        }
    }

    // MARK: - Verbs

    private func parseAppend(_ arguments: inout ArgumentReader) throws(RequestError) -> AppendCommand {
        let usage =
            "APPEND <aggregate_type> <aggregate_id> <event_type> [EXPECT n|ANY|NONE] [ID uuid] [META json] <data>"
        let stream = try streamName(&arguments, usage: usage)
        let eventType = try name(&arguments, field: "event_type", usage: usage)
        var expected = ExpectedVersion.any
        var eventID: EventID?
        var metadata: [UInt8]?
        options: while let option = arguments.peekWord().map(ArgumentReader.keyword) {
            switch option {
            case "EXPECT":
                arguments.skipWord()
                expected = try expectedVersion(&arguments)
            case "ID":
                arguments.skipWord()
                eventID = try self.eventID(&arguments)
            case "META":
                arguments.skipWord()
                metadata = try metadataObject(&arguments)
            default:
                break options
            }
        }
        guard let data = arguments.rest() else { throw RequestError(.badRequest, "missing data; usage: \(usage)") }
        try arguments.expectEnd("APPEND")
        try validateData(data)
        return AppendCommand(
            stream: stream, expectedVersion: expected,
            event: EventSpec(
                eventID: eventID, eventType: eventType, data: data, metadata: metadata ?? Array("{}".utf8)))
    }

    private func parseAppendMany(_ arguments: inout ArgumentReader) throws(RequestError) -> AppendManyCommand {
        let usage = "APPENDMANY <aggregate_type> <aggregate_id> [EXPECT n|ANY|NONE] <json array of events>"
        let stream = try streamName(&arguments, usage: usage)
        var expected = ExpectedVersion.any
        if let option = arguments.peekWord(), ArgumentReader.keyword(option) == "EXPECT" {
            arguments.skipWord()
            expected = try expectedVersion(&arguments)
        }
        guard let body = arguments.rest() else {
            throw RequestError(.badRequest, "missing the JSON array of events; usage: \(usage)")
        }
        try arguments.expectEnd("APPENDMANY")
        if let failure = JSONValidator.validate(body) {
            throw RequestError(.badJSON, "events: \(failure)")
        }
        let events = try body.withUnsafeBufferPointer { (bytes) throws(RequestError) -> [EventSpec] in
            guard let elements = JSONSlicer.arrayElements(bytes) else {
                throw RequestError(.badJSON, "events must be a JSON array of objects")
            }
            guard !elements.isEmpty else { throw RequestError(.badRequest, "APPENDMANY needs at least one event") }
            var events: [EventSpec] = []
            events.reserveCapacity(elements.count)
            for (index, range) in elements.enumerated() {
                let element = UnsafeBufferPointer(rebasing: bytes[range])
                guard let members = JSONSlicer.objectMembers(element) else {
                    throw RequestError(.badJSON, "event \(index) must be a JSON object")
                }
                var eventType: String?
                var data: [UInt8]?
                var metadata: [UInt8]?
                var eventID: EventID?
                for member in members {
                    let value = UnsafeBufferPointer(rebasing: element[member.value])
                    switch member.key {
                    case "event_type":
                        guard let text = JSONSlicer.decodeString(value), Name.isValid(text) else {
                            throw RequestError(
                                .badRequest,
                                "event \(index): event_type must be a string of 1 to 200 bytes of A-Z a-z 0-9 . _ : @ -"
                            )
                        }
                        eventType = text
                    case "data":
                        data = Array(value)
                    case "metadata":
                        guard value.first == UInt8(ascii: "{") else {
                            throw RequestError(.badJSON, "event \(index): metadata must be a JSON object")
                        }
                        try validateMetadataSize(value.count)
                        metadata = Array(value)
                    case "event_id":
                        guard let text = JSONSlicer.decodeString(value), let id = EventID(text) else {
                            throw RequestError(.badRequest, "event \(index): event_id must be a UUID string")
                        }
                        eventID = id
                    default:
                        throw RequestError(
                            .badRequest,
                            "event \(index): unknown field '\(member.key.prefix(64))' (use event_type, data, event_id, "
                                + "metadata)")
                    }
                }
                guard let eventType else { throw RequestError(.badRequest, "event \(index): event_type is missing") }
                guard let data else { throw RequestError(.badRequest, "event \(index): data is missing") }
                try validateDataSize(data)
                events.append(
                    EventSpec(
                        eventID: eventID, eventType: eventType, data: data, metadata: metadata ?? Array("{}".utf8)))
            }
            return events
        }
        return AppendManyCommand(stream: stream, expectedVersion: expected, events: events)
    }

    private func parseRead(_ arguments: inout ArgumentReader) throws(RequestError) -> ReadCommand {
        let usage = "READ <aggregate_type> <aggregate_id> [FROM <version>] [COUNT <n>]"
        let stream = try streamName(&arguments, usage: usage)
        var command = ReadCommand(stream: stream, fromVersion: 1, count: Self.defaultCount)
        while let option = arguments.nextKeyword() {
            switch option {
            case "FROM": command.fromVersion = try number(&arguments, after: "FROM")
            case "COUNT": command.count = try count(&arguments)
            default: throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
            }
        }
        return command
    }

    private func parseReadAll(_ arguments: inout ArgumentReader) throws(RequestError) -> ReadAllCommand {
        let usage = "READALL [FROM <position>] [COUNT <n>] [TYPE <event_type>]..."
        var command = ReadAllCommand(fromPosition: 1, count: Self.defaultCount, eventTypes: [])
        while let option = arguments.nextKeyword() {
            switch option {
            case "FROM": command.fromPosition = try number(&arguments, after: "FROM")
            case "COUNT": command.count = try count(&arguments)
            case "TYPE": command.eventTypes.insert(try name(&arguments, field: "event_type", usage: usage))
            default: throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
            }
        }
        return command
    }

    /// The default `LIMIT` of `QUERY`.
    public static let defaultQueryLimit = 100
    /// The largest `LIMIT` of `QUERY`.
    public static let maximumQueryLimit = 1000

    private func parseQuery(_ arguments: inout ArgumentReader) throws(RequestError) -> QueryCommand {
        let usage = "QUERY <view> [WHERE <field> <value>] [LIMIT <n>] [AFTER <key>] [AT <position>]"
        let view = try name(&arguments, field: "view", usage: usage)
        var command = QueryCommand(
            view: view, filter: nil, limit: Self.defaultQueryLimit, afterKey: nil, atPosition: nil)
        while let option = arguments.nextKeyword() {
            switch option {
            case "WHERE":
                guard let field = arguments.nextWord(), !field.isEmpty, field.count <= 64,
                    let value = arguments.nextWord()
                else { throw RequestError(.badRequest, "WHERE needs a field and a value; usage: \(usage)") }
                command.filter = QueryFilter(
                    field: String(decoding: field, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
            case "LIMIT":
                let limit = try number(&arguments, after: "LIMIT")
                guard limit >= 1, limit <= UInt64(Self.maximumQueryLimit) else {
                    throw RequestError(.badRequest, "LIMIT must be 1 to \(Self.maximumQueryLimit)")
                }
                command.limit = Int(limit)
            case "AFTER": command.afterKey = try documentKey(&arguments, usage: usage)
            case "AT": command.atPosition = try number(&arguments, after: "AT")
            default: throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
            }
        }
        return command
    }

    private func parseGroup(_ arguments: inout ArgumentReader) throws(RequestError) -> Request {
        let usage =
            "GROUP CREATE <group> [FROM <position>|NOW] [TYPE <t>]... [ACKWAIT <ms>] [MAXINFLIGHT <n>] [MAXDELIVER <n>]"
            + " | GROUP DELETE <group>"
        guard let subcommand = arguments.nextKeyword() else {
            throw RequestError(.badRequest, "usage: \(usage)")
        }
        let group = try name(&arguments, field: "group", usage: usage)
        switch subcommand {
        case "DELETE":
            try arguments.expectEnd("GROUP DELETE")
            return .groupDelete(group: group)
        case "CREATE":
            var command = GroupCreateCommand(
                group: group, start: nil, eventTypes: [], ackWaitMilliseconds: nil, maxInFlight: nil, maxDeliver: nil)
            while let option = arguments.nextKeyword() {
                switch option {
                case "FROM": command.start = try start(&arguments)
                case "TYPE": command.eventTypes.append(try name(&arguments, field: "event_type", usage: usage))
                case "ACKWAIT": command.ackWaitMilliseconds = try positive(&arguments, after: "ACKWAIT")
                case "MAXINFLIGHT": command.maxInFlight = try positive(&arguments, after: "MAXINFLIGHT")
                case "MAXDELIVER": command.maxDeliver = try positive(&arguments, after: "MAXDELIVER")
                default: throw RequestError(.badRequest, "unexpected '\(option.prefix(32))'; usage: \(usage)")
                }
            }
            return .groupCreate(command)
        default:
            throw RequestError(.badRequest, "unknown GROUP subcommand '\(subcommand.prefix(32))'; usage: \(usage)")
        }
    }

    private func start(_ arguments: inout ArgumentReader) throws(RequestError) -> StartPosition {
        guard let bytes = arguments.nextWord() else { throw RequestError(.badRequest, "FROM needs a position or NOW") }
        if ArgumentReader.keyword(bytes) == "NOW" { return .now }
        guard let position = Self.parseUnsigned(bytes) else {
            throw RequestError(.badRequest, "FROM needs a position or NOW")
        }
        return .position(position)
    }

    private func positive(_ arguments: inout ArgumentReader, after option: String) throws(RequestError) -> UInt64 {
        let value = try number(&arguments, after: option)
        guard value >= 1, value <= 1_000_000_000 else {
            throw RequestError(.badRequest, "\(option) must be 1 to 1000000000")
        }
        return value
    }

    // MARK: - Arguments

    private func documentKey(_ arguments: inout ArgumentReader, usage: String) throws(RequestError) -> String {
        let key = try arguments.withNextWord { (bytes) throws(RequestError) -> String in
            guard !bytes.isEmpty, bytes.count <= 200, !bytes.contains(0) else {
                throw RequestError(.badRequest, "a key is 1 to 200 bytes")
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let key else { throw RequestError(.badRequest, "missing key; usage: \(usage)") }
        return key
    }

    private func name(_ arguments: inout ArgumentReader, field: String, usage: String) throws(RequestError) -> String {
        let name = try arguments.withNextWord { (bytes) throws(RequestError) -> String in
            guard Name.isValid(bytes) else {
                throw RequestError(
                    .badRequest,
                    NameError(field: field, value: String(decoding: bytes.prefix(64), as: UTF8.self)).description)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let name else { throw RequestError(.badRequest, "missing \(field); usage: \(usage)") }
        return name
    }

    private func streamName(_ arguments: inout ArgumentReader, usage: String) throws(RequestError) -> StreamName {
        let type = try name(&arguments, field: "aggregate_type", usage: usage)
        let id = try name(&arguments, field: "aggregate_id", usage: usage)
        return StreamName(uncheckedType: type, id: id)
    }

    private func expectedVersion(_ arguments: inout ArgumentReader) throws(RequestError) -> ExpectedVersion {
        guard let bytes = arguments.nextWord() else {
            throw RequestError(.badRequest, "EXPECT needs a version, ANY or NONE")
        }
        let text = ArgumentReader.keyword(bytes)
        switch text {
        case "ANY": return .any
        case "NONE": return .noStream
        default:
            guard let version = Self.parseUnsigned(bytes) else {
                throw RequestError(
                    .badRequest, "EXPECT needs a version (0 or more), ANY or NONE, not '\(text.prefix(32))'")
            }
            return .exact(version)
        }
    }

    private func eventID(_ arguments: inout ArgumentReader) throws(RequestError) -> EventID {
        guard let bytes = arguments.nextWord() else { throw RequestError(.badRequest, "ID needs a UUID") }
        guard let id = EventID(utf8: bytes) else {
            throw RequestError(
                .badRequest,
                "invalid event_id '\(String(decoding: bytes.prefix(64), as: UTF8.self))': use a UUID such as "
                    + "7c9e6679-7425-40de-944b-e07fc1f90ae7")
        }
        return id
    }

    private func metadataObject(_ arguments: inout ArgumentReader) throws(RequestError) -> [UInt8] {
        switch arguments.nextJSON() {
        case .none: throw RequestError(.badRequest, "META needs a JSON object")
        case .some(.failure(let failure)): throw RequestError(.badJSON, "metadata: \(failure)")
        case .some(.success(let bytes)):
            if let failure = JSONValidator.validateObject(bytes) {
                throw RequestError(.badJSON, "metadata: \(failure)")
            }
            try validateMetadataSize(bytes.count)
            return bytes
        }
    }

    private func number(_ arguments: inout ArgumentReader, after option: String) throws(RequestError) -> UInt64 {
        guard let bytes = arguments.nextWord(), let value = Self.parseUnsigned(bytes) else {
            throw RequestError(.badRequest, "\(option) needs a whole number")
        }
        return value
    }

    private func count(_ arguments: inout ArgumentReader) throws(RequestError) -> Int {
        let value = try number(&arguments, after: "COUNT")
        guard value >= 1, value <= UInt64(Self.maximumCount) else {
            throw RequestError(.badRequest, "COUNT must be 1 to \(Self.maximumCount)")
        }
        return Int(value)
    }

    /// The largest metadata object of one event, in bytes.
    public static let maximumMetadataBytes = 64 * 1024

    private func validateMetadataSize(_ count: Int) throws(RequestError) {
        guard count <= Self.maximumMetadataBytes else {
            throw RequestError(.tooLarge, "metadata is \(count) bytes, the limit is \(Self.maximumMetadataBytes)")
        }
    }

    private func validateDataSize(_ data: [UInt8]) throws(RequestError) {
        guard data.count <= maximumDataBytes else {
            throw RequestError(.tooLarge, "data is \(data.count) bytes, the limit is \(maximumDataBytes)")
        }
    }

    private func validateData(_ data: [UInt8]) throws(RequestError) {
        try validateDataSize(data)
        if let failure = JSONValidator.validate(data) {
            throw RequestError(.badJSON, "data: \(failure)")
        }
    }

    /// Parses a decimal unsigned 64-bit number with no sign.
    /// - Parameter bytes: The digits.
    /// - Returns: The number, or `nil` when not all digits or too large.
    public static func parseUnsigned<Bytes: Collection>(_ bytes: Bytes) -> UInt64? where Bytes.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = added
        }
        return value
    }
}

/// Reads a request's arguments the same way whether it came as RESP or as an inline line.
///
/// In the inline form, words are separated by spaces or tabs; ``rest()`` takes the rest of the line, so a final
/// JSON argument may contain spaces, and ``nextJSON()`` takes one JSON value that is followed by more words.
struct ArgumentReader {
    private let frame: RequestFrame
    private var index = 0
    private let bytes: [UInt8]

    init(_ frame: RequestFrame) {
        self.frame = frame
        switch frame {
        case .resp: self.bytes = []
        case .inline(let line): self.bytes = Array(line.readableBytesView)
        }
    }

    private func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    private func wordRange() -> Range<Int>? {
        var start = index
        while start < bytes.count, isSpace(bytes[start]) { start += 1 }
        guard start < bytes.count else { return nil }
        var end = start
        while end < bytes.count, !isSpace(bytes[end]) { end += 1 }
        return start..<end
    }

    /// The next word (or RESP argument) without consuming it.
    func peekWord() -> [UInt8]? {
        switch frame {
        case .resp(let arguments):
            return index < arguments.count ? Array(arguments[index].readableBytesView) : nil
        case .inline:
            return wordRange().map { Array(bytes[$0]) }
        }
    }

    /// Runs `body` over the next word (or RESP argument) in place, without copying it out, and consumes it.
    /// - Returns: What `body` returned, or `nil` when there is no next word (`body` is not called).
    mutating func withNextWord<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result? {
        let word: Swift.Result<Result, Failure>?
        switch frame {
        case .resp(let arguments):
            guard index < arguments.count else { return nil }
            word = arguments[index].withUnsafeReadableBytes { bytes in
                do throws(Failure) { return .success(try body(bytes)) } catch { return .failure(error) }
            }
            index += 1
        case .inline:
            guard let range = wordRange() else { return nil }
            index = range.upperBound
            word = bytes.withUnsafeBytes { all in
                let bytes = UnsafeRawBufferPointer(rebasing: all[range])
                do throws(Failure) { return .success(try body(bytes)) } catch { return .failure(error) }
            }
        }
        return try word?.get()
    }

    /// The next word (or RESP argument) as a keyword (``keyword(_:)-(UnsafeRawBufferPointer)``).
    mutating func nextKeyword() -> String? {
        withNextWord { Self.keyword($0) }
    }

    /// A verb or an option as compared: its ASCII letters in upper case, its other bytes as they are. Verbs and
    /// options are ASCII; any other byte makes the word unknown, and is echoed as it came in the error.
    static func keyword(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { keyword in
            for (index, byte) in bytes.enumerated() {
                keyword[index] = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
            }
            return bytes.count
        }
    }

    /// ``keyword(_:)-(UnsafeRawBufferPointer)`` of a word already copied out.
    static func keyword(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { keyword($0) }
    }

    /// Consumes the next word.
    mutating func skipWord() {
        _ = nextWord()
    }

    /// The next word (or RESP argument).
    mutating func nextWord() -> [UInt8]? {
        switch frame {
        case .resp(let arguments):
            guard index < arguments.count else { return nil }
            defer { index += 1 }
            return Array(arguments[index].readableBytesView)
        case .inline:
            guard let range = wordRange() else { return nil }
            index = range.upperBound
            return Array(bytes[range])
        }
    }

    /// The next RESP argument, or the rest of the inline line with surrounding white space removed.
    mutating func rest() -> [UInt8]? {
        switch frame {
        case .resp:
            return nextWord()
        case .inline:
            var start = index
            while start < bytes.count, isSpace(bytes[start]) { start += 1 }
            var end = bytes.count
            while end > start, isSpace(bytes[end - 1]) { end -= 1 }
            index = bytes.count
            return start < end ? Array(bytes[start..<end]) : nil
        }
    }

    /// The next RESP argument, or one JSON value from the inline line.
    mutating func nextJSON() -> Result<[UInt8], JSONValidator.Failure>? {
        switch frame {
        case .resp:
            return nextWord().map { .success($0) }
        case .inline:
            guard let range = wordRange() else { return nil }
            let start = range.lowerBound
            let result = bytes.withUnsafeBufferPointer { JSONValidator.endOfValue(in: $0, from: start) }
            switch result {
            case .success(let end):
                index = end
                return .success(Array(bytes[start..<end]))
            case .failure(let failure):
                index = bytes.count
                return .failure(JSONValidator.Failure(offset: failure.offset - start, reason: failure.reason))
            }
        }
    }

    /// Fails when arguments are left over.
    func expectEnd(_ verb: String) throws(RequestError) {
        switch frame {
        case .resp(let arguments):
            if index < arguments.count {
                throw RequestError(.badRequest, "too many arguments for \(verb)")
            }
        case .inline:
            if wordRange() != nil { throw RequestError(.badRequest, "too many arguments for \(verb)") }
        }
    }
}
