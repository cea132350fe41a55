/// A JSON document held in memory: the model projections read and build.
///
/// Parsing follows exactly the rules of ``JSONValidator`` (RFC 8259, strict UTF-8, the same depth limit) and
/// fails with the same ``JSONValidator/Failure``, offset and reason included. Serialising writes compact JSON with
/// members in order.
///
/// Numbers keep the exact text they were written with (see ``JSONNumber``), so `12.50` stays `12.50` and money
/// never passes through `Double`.
///
/// Equality is exact and ordered: strings and keys compare by their UTF-8 bytes (not by Unicode canonical
/// equivalence, unlike `String`), numbers by their text (`1.0 != 1`), arrays element by element and objects member
/// by member *in order* (`{"a":1,"b":2} != {"b":2,"a":1}`). So equal values always serialise to the same bytes.
/// Use ``isEquivalent(to:)`` to compare while ignoring the order of object members.
public enum JSONValue: Hashable, Sendable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, kept as its exact text.
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object: members in order, keys unique.
    case object(JSONObject)
}

// MARK: - Equality and hashing

extension JSONValue {
    /// Exact, ordered equality: see the type's documentation.
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: Another value.
    /// - Returns: `true` when both would serialise to the same bytes.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let left), .bool(let right)): return left == right
        case (.number(let left), .number(let right)): return left == right
        case (.string(let left), .string(let right)): return JSONUTF8.equal(left, right)
        case (.array(let left), .array(let right)): return left == right
        case (.object(let left), .object(let right)): return left == right
        default: return false
        }
    }

    /// Hashes the value consistently with ``==(_:_:)``.
    /// - Parameter hasher: The hasher to feed.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0 as UInt8)
        case .bool(let value):
            hasher.combine(1 as UInt8)
            hasher.combine(value)
        case .number(let value):
            hasher.combine(2 as UInt8)
            hasher.combine(value)
        case .string(let value):
            hasher.combine(3 as UInt8)
            JSONUTF8.hash(value, into: &hasher)
        case .array(let value):
            hasher.combine(4 as UInt8)
            hasher.combine(value)
        case .object(let value):
            hasher.combine(5 as UInt8)
            hasher.combine(value)
        }
    }

    /// Whether two values are equal when the order of object members is ignored, at every level.
    ///
    /// Strings and keys still compare by their bytes and numbers by their text; arrays stay ordered.
    /// - Parameter other: The value to compare with.
    /// - Returns: `true` when both hold the same data.
    public func isEquivalent(to other: JSONValue) -> Bool {
        switch (self, other) {
        case (.array(let left), .array(let right)):
            guard left.count == right.count else { return false }
            for index in left.indices where !left[index].isEquivalent(to: right[index]) { return false }
            return true
        case (.object(let left), .object(let right)):
            guard left.count == right.count else { return false }
            for member in left {
                guard let value = right[member.key], member.value.isEquivalent(to: value) else { return false }
            }
            return true
        default:
            return self == other
        }
    }
}

// MARK: - Parsing

extension JSONValue {
    /// Parses one JSON text, with optional white space around it.
    ///
    /// The rules are those of ``JSONValidator``: the parser rejects every input the validator rejects, with the same
    /// failure. In strings, `\uXXXX` escapes are decoded, surrogate pairs are combined, and a lone surrogate
    /// becomes U+FFFD. Duplicate keys are allowed, as RFC 8259 permits: the later value replaces the earlier one
    /// where the key first appeared.
    /// - Parameter bytes: The text, in UTF-8.
    /// - Throws: ``JSONValidator/Failure`` when the bytes are not exactly one valid JSON value.
    public init(parsing bytes: UnsafeBufferPointer<UInt8>) throws(JSONValidator.Failure) {
        self = try JSONParser.parse(bytes)
    }

    /// Parses one JSON text from any sequence of bytes.
    /// - Parameter bytes: The text, in UTF-8.
    /// - Throws: ``JSONValidator/Failure`` when the bytes are not exactly one valid JSON value.
    public init<Bytes: Sequence>(parsing bytes: Bytes) throws(JSONValidator.Failure) where Bytes.Element == UInt8 {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONValidator.Failure) in try JSONParser.parse(buffer) }
        }
        if let result {
            self = try result.get()
        } else {
            let array = Array(bytes)
            self = try array.withUnsafeBufferPointer { buffer in
                Result { () throws(JSONValidator.Failure) in try JSONParser.parse(buffer) }
            }.get()
        }
    }

    /// Parses one JSON text held in a string.
    /// - Parameter text: The text.
    /// - Throws: ``JSONValidator/Failure`` when the text is not exactly one valid JSON value.
    public init(parsing text: String) throws(JSONValidator.Failure) {
        var text = text
        self = try text.withUTF8 { buffer in
            Result { () throws(JSONValidator.Failure) in try JSONParser.parse(buffer) }
        }.get()
    }
}

// MARK: - Serialising

extension JSONValue {
    /// Appends the value as compact JSON: no white space, object members in order, strings escaped as
    /// ``JSONWriter/appendString(_:to:)`` does, numbers written with their exact text.
    /// - Parameter buffer: Where the JSON goes.
    public func appendJSON(to buffer: inout [UInt8]) {
        JSONSerializer.append(self, to: &buffer)
    }

    /// The value as compact JSON bytes (see ``appendJSON(to:)``).
    public var jsonBytes: [UInt8] {
        JSONSerializer.bytes(self)
    }

    /// The value as compact JSON text (see ``appendJSON(to:)``).
    public var jsonText: String {
        JSONSerializer.text(self)
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text, as ``jsonText``.
    public var description: String { jsonText }
}

// MARK: - Accessors

extension JSONValue {
    /// The value of member `key` when this is an object that has it; `nil` otherwise.
    /// - Parameter key: The member's key.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    /// The element at `index` when this is an array and `index` is in range; `nil` otherwise.
    /// - Parameter index: The element's position, from 0.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// The number as an `Int64`, when this is a number written as an integer (no fraction, no exponent) in range.
    public var int64Value: Int64? {
        guard case .number(let value) = self else { return nil }
        return value.int64Value
    }

    /// The number as the nearest `Double`, when this is a number within `Double`'s finite range.
    public var doubleValue: Double? {
        guard case .number(let value) = self else { return nil }
        return value.doubleValue
    }

    /// The Boolean, when this is `true` or `false`.
    public var boolValue: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    /// The object, when this is an object.
    public var objectValue: JSONObject? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    /// The number, when this is a number.
    public var numberValue: JSONNumber? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByStringLiteral {
    /// Creates a string value.
    /// - Parameter value: The string.
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    /// Creates a number value from an integer.
    /// - Parameter value: The integer.
    public init(integerLiteral value: Int64) {
        self = .number(JSONNumber(value))
    }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    /// Creates `true` or `false`.
    /// - Parameter value: The Boolean.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension JSONValue: ExpressibleByArrayLiteral {
    /// Creates an array value.
    /// - Parameter elements: The elements.
    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Creates an object value; members keep the literal's order, and a repeated key replaces the earlier value.
    /// - Parameter elements: The members.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject()
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

extension JSONValue: ExpressibleByNilLiteral {
    /// Creates `null`.
    /// - Parameter nilLiteral: Nothing.
    public init(nilLiteral: ()) {
        self = .null
    }
}

// MARK: - JSONNumber

/// A JSON number, kept as the exact text it was written with.
///
/// Nothing is lost: `12.50` stays `12.50`, `1e400` and 40-digit integers are kept as written. Two numbers are equal
/// when their texts are equal, so `1.0 != 1`. Convert with ``int64Value`` or ``doubleValue``, or hand the text to
/// an exact decimal type.
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible {
    /// The number's text, valid by the JSON number grammar.
    public let text: String

    /// Creates a number from its text, checking the JSON number grammar
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    /// - Parameter text: The text, without white space.
    public init?(_ text: String) {
        var copy = text
        guard copy.withUTF8({ JSONNumber.isValid($0) }) else { return nil }
        self.text = text
    }

    /// Creates a number from an integer.
    /// - Parameter value: The integer.
    public init(_ value: Int64) {
        self.text = String(value)
    }

    /// Creates a number from an integer.
    /// - Parameter value: The integer.
    public init(_ value: Int) {
        self.text = String(value)
    }

    /// Creates a number from a `Double`, written as the shortest text that reads back as the same `Double`.
    /// - Parameter value: The value; `nil` when it is infinite or NaN, which JSON cannot hold.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init(value.description)
    }

    /// Creates a number from text already checked by the parser.
    init(validatedText text: String) {
        self.text = text
    }

    /// The number as an `Int64`, when its text is an integer (no fraction, no exponent) within `Int64`'s range.
    ///
    /// `-0` gives 0; `1.0` and `1e2` give `nil`.
    public var int64Value: Int64? {
        var result: Int64 = 0
        var negative = false
        var sawDigit = false
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-"), !sawDigit, !negative {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            sawDigit = true
            let digit = Int64(byte &- UInt8(ascii: "0"))
            let (shifted, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (next, overflow2) =
                negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            result = next
        }
        return sawDigit ? result : nil
    }

    /// The nearest `Double`, or `nil` when the number is beyond `Double`'s finite range (for example `1e400`).
    public var doubleValue: Double? {
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }

    /// The number's text.
    public var description: String { text }

    /// Whether `bytes` are exactly one number by the JSON grammar.
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty else { return false }
        let scan = JSONLexing.scanNumber(bytes, from: 0)
        return scan.valid && scan.end == bytes.count
    }
}

// MARK: - JSONObject

/// A JSON object: members in insertion order, keys unique.
///
/// Setting a key that is already present replaces its value where it stands; setting `nil` removes the member.
/// Keys compare by their UTF-8 bytes, so `"é"` written precomposed and decomposed are two different keys.
/// Equality is ordered: two objects are equal when they have the same members in the same order
/// (see ``JSONValue/isEquivalent(to:)`` for an order-blind comparison).
///
/// The object is a random-access collection of `(key, value)` members, indexed from 0. Small objects are searched
/// linearly; an object with more than a couple of dozen members keeps a hash index, so building or parsing large
/// objects stays linear.
public struct JSONObject: Sendable {
    /// One member. A struct rather than a tuple: arrays of tuples go through slow generic paths at run time.
    struct Member: Sendable {
        var key: String
        var value: JSONValue
    }

    /// The members, in order; keys unique.
    private(set) var storage: [Member]

    /// Key → position in `storage`, kept only for large objects.
    private var lookup: [JSONKey: Int]?

    /// Objects with more members than this keep a hash index.
    @inline(__always) static var indexThreshold: Int { 24 }

    /// Creates an empty object.
    public init() {
        storage = []
        lookup = nil
    }

    /// Creates an object from members whose keys are known to be unique.
    init(uniqueMembers: [Member]) {
        storage = uniqueMembers
        lookup = nil
        if storage.count > Self.indexThreshold { rebuildLookup() }
    }

    /// Creates an object from members in order; a repeated key replaces the earlier value where it first appeared.
    /// - Parameter members: The members.
    public init<Members: Sequence>(_ members: Members) where Members.Element == (key: String, value: JSONValue) {
        self.init()
        for member in members { updateValue(member.value, forKey: member.key) }
    }

    /// The members in order, as a new array (O(n); iterate the object itself to avoid the copy).
    public var members: [(key: String, value: JSONValue)] { storage.map { (key: $0.key, value: $0.value) } }

    /// The number of members.
    public var count: Int { storage.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { storage.isEmpty }

    /// The keys, in order.
    public var keys: [String] { storage.map(\.key) }

    /// The values, in order.
    public var values: [JSONValue] { storage.map(\.value) }

    /// The value of member `key`, or `nil` when absent. Setting `nil` removes the member (to store a JSON `null`,
    /// set `.null`); setting a value replaces an existing member's value in place, or appends a new member.
    /// - Parameter key: The member's key.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let position = index(forKey: key) else { return nil }
            return storage[position].value
        }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// Whether the object has a member `key`.
    /// - Parameter key: The key.
    /// - Returns: `true` when present.
    public func contains(key: String) -> Bool {
        index(forKey: key) != nil
    }

    /// The position of member `key`.
    /// - Parameter key: The key.
    /// - Returns: The position, from 0, or `nil` when absent.
    public func index(forKey key: String) -> Int? {
        if let lookup { return lookup[JSONKey(key)] }
        let length = key.utf8.count
        for position in storage.indices {
            let candidate = storage[position].key
            if candidate.utf8.count == length, JSONUTF8.equal(candidate, key) { return position }
        }
        return nil
    }

    /// Sets member `key` to `value`: in place when present, else appended at the end.
    /// - Parameters:
    ///   - value: The new value.
    ///   - key: The key.
    /// - Returns: The value replaced, or `nil` when the member is new.
    @discardableResult
    public mutating func updateValue(_ value: JSONValue, forKey key: String) -> JSONValue? {
        if let position = index(forKey: key) {
            let old = storage[position].value
            storage[position].value = value
            return old
        }
        storage.append(Member(key: key, value: value))
        if lookup != nil {
            lookup![JSONKey(key)] = storage.count - 1
        } else if storage.count > Self.indexThreshold {
            rebuildLookup()
        }
        return nil
    }

    /// Removes member `key`, keeping the others in order.
    /// - Parameter key: The key.
    /// - Returns: The value removed, or `nil` when absent.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let position = index(forKey: key) else { return nil }
        let old = storage.remove(at: position).value
        if lookup != nil { rebuildLookup() }
        return old
    }

    /// Removes every member.
    public mutating func removeAll() {
        storage.removeAll()
        lookup = nil
    }

    private mutating func rebuildLookup() {
        guard storage.count > Self.indexThreshold else {
            lookup = nil
            return
        }
        var table: [JSONKey: Int] = [:]
        table.reserveCapacity(storage.count)
        for position in storage.indices { table[JSONKey(storage[position].key)] = position }
        lookup = table
    }
}

extension JSONObject: Hashable {
    /// Ordered equality: the same keys (by bytes) with equal values, in the same order.
    /// - Parameters:
    ///   - lhs: An object.
    ///   - rhs: Another object.
    /// - Returns: `true` when both have the same members in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.storage.count == rhs.storage.count else { return false }
        for position in lhs.storage.indices {
            guard JSONUTF8.equal(lhs.storage[position].key, rhs.storage[position].key),
                lhs.storage[position].value == rhs.storage[position].value
            else { return false }
        }
        return true
    }

    /// Hashes the members in order, consistently with ``==(_:_:)``.
    /// - Parameter hasher: The hasher to feed.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.count)
        for member in storage {
            JSONUTF8.hash(member.key, into: &hasher)
            hasher.combine(member.value)
        }
    }
}

extension JSONObject: RandomAccessCollection {
    /// The position of the first member: 0.
    public var startIndex: Int { 0 }

    /// The position past the last member: ``count``.
    public var endIndex: Int { storage.count }

    /// The member at `position`.
    /// - Parameter position: From 0 to ``count`` - 1.
    public subscript(position: Int) -> (key: String, value: JSONValue) {
        let member = storage[position]
        return (key: member.key, value: member.value)
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// Creates an object in the literal's order; a repeated key replaces the earlier value.
    /// - Parameter elements: The members.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init()
        storage.reserveCapacity(elements.count)
        elements.withUnsafeBufferPointer { elements in
            for index in elements.indices { updateValue(elements[index].1, forKey: elements[index].0) }
        }
    }
}

extension JSONObject: CustomStringConvertible {
    /// The object as compact JSON text.
    public var description: String { JSONValue.object(self).jsonText }
}

/// A dictionary key that compares strings by their UTF-8 bytes.
private struct JSONKey: Hashable {
    let string: String

    init(_ string: String) {
        self.string = string
    }

    static func == (lhs: JSONKey, rhs: JSONKey) -> Bool {
        JSONUTF8.equal(lhs.string, rhs.string)
    }

    func hash(into hasher: inout Hasher) {
        JSONUTF8.hash(string, into: &hasher)
    }
}

/// Byte-wise comparison and hashing of strings.
enum JSONUTF8 {
    /// Whether two strings have the same UTF-8 bytes.
    @inline(__always)
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        let left = lhs.utf8
        let right = rhs.utf8
        guard left.count == right.count else { return false }
        let fast = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in
                for index in 0..<leftBytes.count where leftBytes[index] != rightBytes[index] { return false }
                return true
            }
        }
        if let fast, let fast { return fast }
        return left.elementsEqual(right)
    }

    /// Feeds the string's UTF-8 bytes and length to `hasher`.
    @inline(__always)
    static func hash(_ string: String, into hasher: inout Hasher) {
        let utf8 = string.utf8
        hasher.combine(utf8.count)
        let done: Void? = utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if done == nil {
            for byte in utf8 { hasher.combine(byte) }
        }
    }
}

// MARK: - Serialiser

/// Writes compact JSON in two passes: the exact size first, then the bytes straight into memory, with no
/// per-byte capacity checks.
enum JSONSerializer {
    /// The number of bytes `value` takes as compact JSON.
    static func size(of value: JSONValue) -> Int {
        switch value {
        case .null: return 4
        case .bool(let flag): return flag ? 4 : 5
        case .number(let number): return number.text.utf8.count
        case .string(let string): return size(of: string)
        case .array(let elements):
            var total = elements.isEmpty ? 2 : 1 + elements.count
            elements.withUnsafeBufferPointer { buffer in
                for index in buffer.indices { total += size(of: buffer[index]) }
            }
            return total
        case .object(let object):
            var total = object.storage.isEmpty ? 2 : 1 + object.storage.count * 2
            object.storage.withUnsafeBufferPointer { buffer in
                for index in buffer.indices { total += size(of: buffer[index].key) + size(of: buffer[index].value) }
            }
            return total
        }
    }

    /// The number of bytes `string` takes as a JSON string literal, quotes included.
    @inline(__always)
    static func size(of string: String) -> Int {
        let utf8 = string.utf8
        let result = utf8.withContiguousStorageIfAvailable { escapedSize($0) }
        if let result { return result }
        var copy = string
        return copy.withUTF8 { escapedSize($0) }
    }

    private static func escapedSize(_ utf8: UnsafeBufferPointer<UInt8>) -> Int {
        var total = utf8.count + 2
        for byte in utf8 where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x0D, 0x09: total += 1
            default: total += 5
            }
        }
        return total
    }

    /// Appends `value` as compact JSON to `buffer`.
    static func append(_ value: JSONValue, to buffer: inout [UInt8]) {
        let size = size(of: value)
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBufferPointer { memory in
            var writer = Writer(memory.baseAddress! + start)
            writer.write(value)
        }
    }

    /// `value` as compact JSON bytes.
    static func bytes(_ value: JSONValue) -> [UInt8] {
        let size = size(of: value)
        return [UInt8](unsafeUninitializedCapacity: size) { memory, initialized in
            var writer = Writer(memory.baseAddress!)
            writer.write(value)
            initialized = size
        }
    }

    /// `value` as compact JSON text.
    static func text(_ value: JSONValue) -> String {
        let size = size(of: value)
        return String(unsafeUninitializedCapacity: size) { memory in
            var writer = Writer(memory.baseAddress!)
            writer.write(value)
            return size
        }
    }

    /// Appends `string` as a JSON string literal to `buffer`, byte for byte as
    /// ``JSONWriter/appendString(_:to:)`` does.
    static func appendString(_ string: String, to buffer: inout [UInt8]) {
        let size = size(of: string)
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBufferPointer { memory in
            var writer = Writer(memory.baseAddress! + start)
            writer.write(string)
        }
    }

    /// Writes into memory already sized by ``JSONSerializer/size(of:)-(JSONValue)``.
    struct Writer {
        var cursor: UnsafeMutablePointer<UInt8>

        init(_ start: UnsafeMutablePointer<UInt8>) {
            cursor = start
        }

        @inline(__always)
        mutating func put(_ byte: UInt8) {
            cursor.initialize(to: byte)
            cursor += 1
        }

        @inline(__always)
        mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            cursor.initialize(from: base, count: bytes.count)
            cursor += bytes.count
        }

        mutating func write(_ value: JSONValue) {
            switch value {
            case .null:
                put(UInt8(ascii: "n"))
                put(UInt8(ascii: "u"))
                put(UInt8(ascii: "l"))
                put(UInt8(ascii: "l"))
            case .bool(true):
                put(UInt8(ascii: "t"))
                put(UInt8(ascii: "r"))
                put(UInt8(ascii: "u"))
                put(UInt8(ascii: "e"))
            case .bool(false):
                put(UInt8(ascii: "f"))
                put(UInt8(ascii: "a"))
                put(UInt8(ascii: "l"))
                put(UInt8(ascii: "s"))
                put(UInt8(ascii: "e"))
            case .number(let number):
                writeRaw(number.text)
            case .string(let string):
                write(string)
            case .array(let elements):
                put(UInt8(ascii: "["))
                elements.withUnsafeBufferPointer { buffer in
                    for index in buffer.indices {
                        if index != 0 { put(UInt8(ascii: ",")) }
                        write(buffer[index])
                    }
                }
                put(UInt8(ascii: "]"))
            case .object(let object):
                put(UInt8(ascii: "{"))
                object.storage.withUnsafeBufferPointer { buffer in
                    for index in buffer.indices {
                        if index != 0 { put(UInt8(ascii: ",")) }
                        write(buffer[index].key)
                        put(UInt8(ascii: ":"))
                        write(buffer[index].value)
                    }
                }
                put(UInt8(ascii: "}"))
            }
        }

        @inline(__always)
        mutating func writeRaw(_ text: String) {
            let done: Void? = text.utf8.withContiguousStorageIfAvailable { put($0) }
            if done == nil {
                for byte in text.utf8 { put(byte) }
            }
        }

        @inline(__always)
        mutating func write(_ string: String) {
            let done: Void? = string.utf8.withContiguousStorageIfAvailable { writeEscaped($0) }
            if done == nil {
                var copy = string
                copy.withUTF8 { writeEscaped($0) }
            }
        }

        mutating func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
            put(UInt8(ascii: "\""))
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") { continue }
                put(UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                put(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): put(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): put(UInt8(ascii: "\\"))
                case 0x0A: put(UInt8(ascii: "n"))
                case 0x0D: put(UInt8(ascii: "r"))
                case 0x09: put(UInt8(ascii: "t"))
                default:
                    put(UInt8(ascii: "u"))
                    put(UInt8(ascii: "0"))
                    put(UInt8(ascii: "0"))
                    put(Self.hexDigit(byte >> 4))
                    put(Self.hexDigit(byte & 0xF))
                }
            }
            put(UnsafeBufferPointer(rebasing: utf8[runStart...]))
            put(UInt8(ascii: "\""))
        }

        @inline(__always)
        static func hexDigit(_ nibble: UInt8) -> UInt8 {
            nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
        }
    }
}

// MARK: - Parser

/// A stack of values under construction, from which a finished container's elements move into an array of
/// exactly the right size: no array grows element by element, and nothing is retained twice.
struct ParseStack<Element>: ~Copyable {
    private var base: UnsafeMutablePointer<Element>?
    private(set) var count = 0
    private var capacity = 0

    init() {}

    deinit {
        if let base {
            base.deinitialize(count: count)
            base.deallocate()
        }
    }

    @inline(__always)
    mutating func push(_ element: consuming Element) {
        if count == capacity { grow() }
        (base.unsafelyUnwrapped + count).initialize(to: element)
        count += 1
    }

    private mutating func grow() {
        let newCapacity = Swift.max(16, capacity * 2)
        let newBase = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        if let base {
            newBase.moveInitialize(from: base, count: count)
            base.deallocate()
        }
        base = newBase
        capacity = newCapacity
    }

    /// The element at `position`, which must be below `count`.
    subscript(position: Int) -> Element {
        @inline(__always) unsafeAddress { UnsafePointer(base.unsafelyUnwrapped + position) }
        @inline(__always) nonmutating unsafeMutableAddress { base.unsafelyUnwrapped + position }
    }

    /// Moves the elements from `start` to the top into a new array, leaving `start` elements.
    mutating func popArray(from start: Int) -> [Element] {
        let moved = count - start
        guard moved > 0 else { return [] }
        let source = base.unsafelyUnwrapped + start
        // `Array(unsafeUninitializedCapacity:)` looks the element type's metadata up at run time on every call;
        // reserving and appending is specialised and much cheaper.
        var result: [Element] = []
        result.reserveCapacity(moved)
        for offset in 0..<moved { result.append((source + offset).move()) }
        count = start
        return result
    }
}

/// A recursive-descent parser over a byte buffer that follows ``JSONValidator``'s rules and failures exactly.
struct JSONParser: ~Copyable {
    typealias Failure = JSONValidator.Failure

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    /// Reused for strings that contain escapes.
    var scratch: [UInt8] = []
    /// Elements of the arrays being parsed.
    var elements = ParseStack<JSONValue>()
    /// Members of the objects being parsed.
    var members = ParseStack<JSONObject.Member>()

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        if parser.index != bytes.count {
            throw Failure(offset: parser.index, reason: "unexpected data after the JSON value")
        }
        return value
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count, JSONValidator.isWhitespace(bytes[index]) { index += 1 }
    }

    func fail(_ reason: String) -> Failure {
        Failure(offset: index, reason: reason)
    }

    mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard index < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return .object(try object(depth: depth + 1))
        case UInt8(ascii: "["): return .array(try array(depth: depth + 1))
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    @inline(__always)
    mutating func literal(_ word: StaticString) throws(Failure) {
        guard JSONLexing.matches(word, in: bytes, at: index) else { throw fail("invalid literal") }
        index += word.utf8CodeUnitCount
    }

    mutating func object(depth: Int) throws(Failure) -> JSONObject {
        guard depth <= JSONValidator.maximumDepth else { throw fail("JSON nested too deeply") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return JSONObject()
        }
        let start = members.count
        // Past the threshold, members go into an object with a hash index, so duplicates are found in O(1).
        var large: JSONObject?
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw fail("expected a string key")
            }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try value(depth: depth)
            if large != nil {
                large!.updateValue(value, forKey: key)
            } else if let position = memberPosition(of: key, from: start) {
                members[position].value = value
            } else {
                members.push(JSONObject.Member(key: key, value: value))
                if members.count - start > JSONObject.indexThreshold {
                    large = JSONObject(uniqueMembers: members.popArray(from: start))
                }
            }
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return large ?? JSONObject(uniqueMembers: members.popArray(from: start))
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    /// Where `key` already is among the members pushed since `start`.
    @inline(__always)
    func memberPosition(of key: String, from start: Int) -> Int? {
        let length = key.utf8.count
        var position = start
        while position < members.count {
            if members[position].key.utf8.count == length, JSONUTF8.equal(members[position].key, key) {
                return position
            }
            position += 1
        }
        return nil
    }

    mutating func array(depth: Int) throws(Failure) -> [JSONValue] {
        guard depth <= JSONValidator.maximumDepth else { throw fail("JSON nested too deeply") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return []
        }
        let start = elements.count
        while true {
            elements.push(try value(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return elements.popArray(from: start)
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    /// Moves `index` past bytes that need no attention in a string (ASCII other than `"`, `\` and controls),
    /// eight at a time.
    @inline(__always)
    mutating func skipPlainStringBytes() {
        guard let base = bytes.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while index &+ 8 <= bytes.count {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let quote = word ^ (ones &* 0x22)
            let backslash = word ^ (ones &* 0x5C)
            // The top bit of a byte ends up set when the byte is below 0x20, is a quote or a backslash (zero after
            // the XOR, so the subtraction borrows), or is not ASCII. Borrows only run upwards, so the lowest bit set
            // marks the first such byte exactly.
            let special = ((word &- ones &* 0x20) | (quote &- ones) | (backslash &- ones) | word) & highs
            if special != 0 {
                index &+= special.trailingZeroBitCount >> 3
                return
            }
            index &+= 8
        }
    }

    mutating func string() throws(Failure) -> String {
        index += 1
        let start = index
        while true {
            skipPlainStringBytes()
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            } else if byte == UInt8(ascii: "\\") {
                return try escapedString(from: start)
            } else if byte < 0x20 {
                throw fail("control character in string")
            } else if byte < 0x80 {
                index += 1
            } else {
                try utf8Sequence()
            }
        }
    }

    /// Finishes a string that has an escape at `index`, decoding into `scratch`.
    mutating func escapedString(from start: Int) throws(Failure) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while true {
            let runStart = index
            skipPlainStringBytes()
            if runStart < index { scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: scratch, as: UTF8.self)
            } else if byte == UInt8(ascii: "\\") {
                index += 1
                guard index < bytes.count else { throw fail("unterminated string") }
                switch bytes[index] {
                case UInt8(ascii: "\""): scratch.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): scratch.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    try unicodeEscape()
                    continue
                default:
                    throw fail("invalid escape")
                }
                index += 1
            } else if byte < 0x20 {
                throw fail("control character in string")
            } else if byte < 0x80 {
                scratch.append(byte)
                index += 1
            } else {
                let sequenceStart = index
                try utf8Sequence()
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[sequenceStart..<index]))
            }
        }
    }

    /// Decodes `\uXXXX` with `index` on the `u`, combining a surrogate pair written as two escapes; a lone
    /// surrogate becomes U+FFFD.
    mutating func unicodeEscape() throws(Failure) {
        // Like the validator: four hex digits and at least one byte after them.
        guard index + 4 < bytes.count, let code = hex4(at: index + 1) else { throw fail("invalid \\u escape") }
        index += 5
        var scalar = code
        if code >= 0xD800, code <= 0xDBFF {
            if index + 5 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                let low = hex4(at: index + 2), low >= 0xDC00, low <= 0xDFFF
            {
                scalar = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                index += 6
            } else {
                scalar = 0xFFFD
            }
        } else if code >= 0xDC00, code <= 0xDFFF {
            scalar = 0xFFFD
        }
        appendUTF8(scalar)
    }

    @inline(__always)
    mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(truncatingIfNeeded: scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(truncatingIfNeeded: 0xC0 | scalar >> 6))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(truncatingIfNeeded: 0xE0 | scalar >> 12))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(truncatingIfNeeded: 0xF0 | scalar >> 18))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
        }
    }

    @inline(__always)
    func hex4(at start: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<4 {
            let byte = bytes[start + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte &- UInt8(ascii: "A") &+ 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// One multi-byte UTF-8 sequence, rejecting overlong forms, surrogates and code points past U+10FFFF.
    @inline(__always)
    mutating func utf8Sequence() throws(Failure) {
        guard let length = JSONLexing.utf8SequenceLength(bytes, at: index) else { throw fail("invalid UTF-8") }
        index += length
    }

    mutating func number() throws(Failure) -> JSONNumber {
        let start = index
        let scan = JSONLexing.scanNumber(bytes, from: index)
        index = scan.end
        guard scan.valid else { throw fail("invalid number") }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        return JSONNumber(validatedText: text)
    }
}
