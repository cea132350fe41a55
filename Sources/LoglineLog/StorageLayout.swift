import LoglineCore

/// How the LMDB backend lays events out in its databases.
///
/// - `events`: position (8 bytes, big-endian) → event record (below).
/// - `stream_events`: stream key + version (8 bytes, big-endian) → position (8 bytes, big-endian).
/// - `event_ids`: event id (16 bytes) → position (8 bytes, big-endian).
/// - `meta`: the store's format (`format`), its count of streams (`stream_count`), and the position up to which
///   `stream_events` holds every event (`indexed_through`; the entries of later events wait in memory, see
///   ``PendingStreamIndex``).
/// - `state`: the state tables (module views, checkpoints, parked events): table name, a 0 byte, key → value.
///
/// A stream's current version is the greatest version under its prefix in `stream_events`, so no separate
/// table of stream heads has to be rewritten (a random page write) on every append.
///
/// A stream key is `aggregate_type`, a 0 byte, `aggregate_id`, a 0 byte. Names never contain 0, so the key is
/// prefix-free and a cursor can walk one stream's versions in order.
///
/// An event record is: format byte (1), version (8), recorded_at in ms (8), event id (16), the lengths (1 byte
/// each) and bytes of aggregate_type, aggregate_id and event_type, the length (4 bytes) and bytes of the
/// metadata, then the data to the end.
enum StorageLayout {
    static let recordFormat: UInt8 = 1
    /// The format of the store as a whole: 2 since `stream_events` may lag behind `events` (`indexed_through`); 3
    /// since the store may have a write-ahead journal, which a server of format 2 would not know to replay (its
    /// writes would then make the journal refuse the store).
    static let storeFormat: UInt8 = 3
    static let formatKey = Array("format".utf8)
    static let streamCountKey = Array("stream_count".utf8)
    static let indexedThroughKey = Array("indexed_through".utf8)

    /// The key of a state-table entry: the table's name, a 0 byte, the key.
    static func stateKey(_ table: String, _ key: [UInt8]) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(table.utf8.count + 1 + key.count)
        result.append(contentsOf: table.utf8)
        result.append(0)
        result.append(contentsOf: key)
        return result
    }

    static func streamKey(_ stream: StreamName) -> [UInt8] {
        streamKey(aggregateType: stream.aggregateType.utf8, aggregateID: stream.aggregateID.utf8)
    }

    /// A stream's key from the bytes of its names: `aggregate_type`, 0, `aggregate_id`, 0.
    static func streamKey(
        aggregateType: some Collection<UInt8>, aggregateID: some Collection<UInt8>
    ) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(aggregateType.count + aggregateID.count + 2)
        key.append(contentsOf: aggregateType)
        key.append(0)
        key.append(contentsOf: aggregateID)
        key.append(0)
        return key
    }

    static func streamEventKey(_ streamKey: [UInt8], version: StreamVersion) -> [UInt8] {
        var key = streamKey
        appendBigEndian(version, to: &key)
        return key
    }

    static func appendBigEndian(_ value: UInt64, to buffer: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        var buffer = [UInt8]()
        buffer.reserveCapacity(8)
        appendBigEndian(value, to: &buffer)
        return buffer
    }

    static func readBigEndian(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        var value: UInt64 = 0
        for index in offset..<(offset + 8) { value = (value << 8) | UInt64(bytes[index]) }
        return value
    }

    static func encodeRecord(
        eventID: EventID, eventType: String, stream: StreamName, version: StreamVersion, recordedAt: Timestamp,
        data: [UInt8], metadata: [UInt8]
    ) -> [UInt8] {
        var record = [UInt8]()
        let typeBytes = stream.aggregateType.utf8
        let idBytes = stream.aggregateID.utf8
        let eventTypeBytes = eventType.utf8
        record.reserveCapacity(
            40 + typeBytes.count + idBytes.count + eventTypeBytes.count + metadata.count + data.count)
        record.append(recordFormat)
        appendBigEndian(version, to: &record)
        appendBigEndian(UInt64(bitPattern: recordedAt.millisecondsSinceEpoch), to: &record)
        eventID.appendBytes(to: &record)
        record.append(UInt8(typeBytes.count))
        record.append(contentsOf: typeBytes)
        record.append(UInt8(idBytes.count))
        record.append(contentsOf: idBytes)
        record.append(UInt8(eventTypeBytes.count))
        record.append(contentsOf: eventTypeBytes)
        let metadataCount = UInt32(metadata.count)
        for shift in stride(from: 24, through: 0, by: -8) {
            record.append(UInt8(truncatingIfNeeded: metadataCount >> UInt32(shift)))
        }
        record.append(contentsOf: metadata)
        record.append(contentsOf: data)
        return record
    }
}

/// A stored event read in place from the memory map; valid only during the read transaction.
struct StoredEventView {
    let position: LogPosition
    let version: StreamVersion
    let recordedAt: Timestamp
    let eventID: EventID
    let aggregateType: UnsafeRawBufferPointer
    let aggregateID: UnsafeRawBufferPointer
    let eventType: UnsafeRawBufferPointer
    let metadata: UnsafeRawBufferPointer
    let data: UnsafeRawBufferPointer

    /// Decodes a record; `nil` when it is not in a known format (a corrupt store).
    init?(position: LogPosition, record: UnsafeRawBufferPointer) {
        guard record.count >= 33 + 3 + 4, record[0] == StorageLayout.recordFormat else { return nil }
        self.position = position
        self.version = StorageLayout.readBigEndian(record, at: 1)
        self.recordedAt = Timestamp(
            millisecondsSinceEpoch: Int64(bitPattern: StorageLayout.readBigEndian(record, at: 9)))
        self.eventID = EventID(
            high: StorageLayout.readBigEndian(record, at: 17), low: StorageLayout.readBigEndian(record, at: 25))
        var offset = 33
        func slice(_ length: Int) -> UnsafeRawBufferPointer? {
            guard offset + length <= record.count else { return nil }
            defer { offset += length }
            return UnsafeRawBufferPointer(rebasing: record[offset..<(offset + length)])
        }
        guard let typeLength = slice(1).map({ Int($0[0]) }), let aggregateType = slice(typeLength),
            let idLength = slice(1).map({ Int($0[0]) }), let aggregateID = slice(idLength),
            let eventTypeLength = slice(1).map({ Int($0[0]) }), let eventType = slice(eventTypeLength),
            let metadataLengthBytes = slice(4)
        else { return nil }
        let metadataLength = metadataLengthBytes.reduce(0) { ($0 << 8) | Int($1) }
        guard let metadata = slice(metadataLength) else { return nil }
        self.aggregateType = aggregateType
        self.aggregateID = aggregateID
        self.eventType = eventType
        self.metadata = metadata
        self.data = UnsafeRawBufferPointer(rebasing: record[offset...])
    }

    /// The key of the event's stream, as ``StorageLayout/streamKey(_:)`` makes it.
    var streamKey: [UInt8] {
        StorageLayout.streamKey(aggregateType: aggregateType, aggregateID: aggregateID)
    }

    var recordedEvent: RecordedEvent {
        recordedEvent(eventType: String(decoding: eventType, as: UTF8.self))
    }

    /// The envelope, with `eventType` for its type: a string the caller holds already, equal to the stored one,
    /// so that no new one is made for each event.
    func recordedEvent(eventType: String) -> RecordedEvent {
        RecordedEvent(
            eventID: eventID, eventType: eventType,
            stream: StreamName(
                uncheckedType: String(decoding: aggregateType, as: UTF8.self),
                id: String(decoding: aggregateID, as: UTF8.self)),
            version: version, position: position, recordedAt: recordedAt, data: Array(data),
            metadata: Array(metadata))
    }

    /// Whether this stored event is the same event as a proposed one: same stream, type and data.
    func matches(stream: StreamName, eventType proposedType: String, data proposedData: [UInt8]) -> Bool {
        aggregateType.elementsEqual(stream.aggregateType.utf8) && aggregateID.elementsEqual(stream.aggregateID.utf8)
            && eventType.elementsEqual(proposedType.utf8) && data.elementsEqual(proposedData)
    }
}
