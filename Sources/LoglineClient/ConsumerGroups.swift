import LoglineCore
import NIOCore

/// Consumer groups: durable, shared, acknowledged consumption of the log.
///
/// A group keeps its state in the server, so it survives restarts of the server and of its consumers. Each
/// event of the group's types is delivered to one consumer of the group at a time, at least once: an event that
/// is not acknowledged within the group's ack wait is delivered again, and after its most deliveries it becomes
/// a dead letter.
extension LoglineClient {
    /// `GROUP CREATE`: creates a consumer group.
    /// - Parameters:
    ///   - name: The group's name.
    ///   - from: Where in the log the group starts; `nil` for the server's default, the start of the log.
    ///   - eventTypes: Only these types; all when empty.
    ///   - ackWait: How long a delivery may stay unacknowledged before it is delivered again (whole
    ///     milliseconds, rounded up); the server's default (30 seconds) when `nil`.
    ///   - maxInFlight: The most unacknowledged deliveries per consumer; the server's default (25) when `nil`.
    ///   - maxDeliver: The most deliveries of one event before it becomes a dead letter; the server's default (5)
    ///     when `nil`.
    /// - Throws: ``LoglineClientError``; a group of that name exists already: ``ErrorCode/conflict``.
    public func createGroup(
        _ name: String, from: SubscriptionStart? = nil, eventTypes: [String] = [], ackWait: Duration? = nil,
        maxInFlight: Int? = nil, maxDeliver: Int? = nil
    ) async throws(LoglineClientError) {
        var arguments = ["GROUP", "CREATE", name]
        switch from {
        case nil: break
        case .now: arguments += ["FROM", "NOW"]
        case .position(let position): arguments += ["FROM", String(position)]
        }
        for type in eventTypes { arguments += ["TYPE", type] }
        if let ackWait { arguments += ["ACKWAIT", String(try Self.milliseconds(ackWait))] }
        if let maxInFlight { arguments += ["MAXINFLIGHT", String(maxInFlight)] }
        if let maxDeliver { arguments += ["MAXDELIVER", String(maxDeliver)] }
        try await expectOK(arguments)
    }

    /// `GROUP DELETE`: deletes a consumer group with its pending deliveries and dead letters.
    /// - Parameter name: The group's name.
    /// - Throws: ``LoglineClientError``; no such group: ``ErrorCode/notFound``.
    public func deleteGroup(_ name: String) async throws(LoglineClientError) {
        try await expectOK(["GROUP", "DELETE", name])
    }

    /// `GROUPS`: every consumer group with its figures.
    /// - Returns: The groups.
    /// - Throws: ``LoglineClientError``.
    public func groups() async throws(LoglineClientError) -> [GroupInfo] {
        try await bulkArray(["GROUPS"]).map { (json) throws(LoglineClientError) in try GroupInfo(json: json) }
    }

    /// `FETCH`: hands events of a group to a consumer, and counts them as delivered to it.
    ///
    /// - Important: The connection answers requests in order, so a `FETCH` that blocks holds up every request
    ///   sent after it on this client. ``consume(group:consumer:batch:block:handler:)`` fetches on a connection
    ///   of its own.
    /// - Parameters:
    ///   - group: The group.
    ///   - consumer: The consumer's name (any name; the group remembers the consumers it has seen).
    ///   - count: The most deliveries (1 to 1000).
    ///   - block: `nil` to return at once, possibly with none; otherwise how long to wait for something to
    ///     deliver (whole milliseconds, rounded up). `.zero` waits indefinitely, as `BLOCK 0` does.
    /// - Returns: The deliveries, in position order.
    /// - Throws: ``LoglineClientError``; no such group: ``ErrorCode/notFound``.
    public func fetch(
        group: String, consumer: String, count: Int = 10, block: Duration? = nil
    ) async throws(LoglineClientError) -> [Delivery] {
        var arguments = ["FETCH", group, consumer, "COUNT", String(count)]
        if let block { arguments += ["BLOCK", String(try Self.milliseconds(block))] }
        return try await bulkArray(arguments).map { (json) throws(LoglineClientError) in
            try Delivery(json: json, group: group)
        }
    }

    /// `ACK`: settles deliveries as handled.
    /// - Parameters:
    ///   - group: The group.
    ///   - positions: The events' positions; nothing is sent when empty.
    /// - Returns: How many of them were pending and are now settled.
    /// - Throws: ``LoglineClientError``.
    @discardableResult
    public func ack(group: String, positions: [LogPosition]) async throws(LoglineClientError) -> Int {
        guard !positions.isEmpty else { return 0 }
        return try await integer(["ACK", group] + positions.map { String($0) })
    }

    /// `NACK`: gives deliveries back, to be delivered again now.
    /// - Parameters:
    ///   - group: The group.
    ///   - positions: The events' positions; nothing is sent when empty.
    /// - Returns: How many of them were pending and will be delivered again.
    /// - Throws: ``LoglineClientError``.
    @discardableResult
    public func nack(group: String, positions: [LogPosition]) async throws(LoglineClientError) -> Int {
        guard !positions.isEmpty else { return 0 }
        return try await integer(["NACK", group] + positions.map { String($0) })
    }

    /// `PENDING`: the deliveries of a group that wait for an acknowledgement.
    /// - Parameter group: The group.
    /// - Returns: The pending deliveries.
    /// - Throws: ``LoglineClientError``; no such group: ``ErrorCode/notFound``.
    public func pending(group: String) async throws(LoglineClientError) -> [PendingDelivery] {
        try await bulkArray(["PENDING", group]).map { (json) throws(LoglineClientError) in
            try PendingDelivery(json: json)
        }
    }

    /// `DEAD`: the events a group gave up on.
    /// - Parameter group: The group.
    /// - Returns: The dead letters.
    /// - Throws: ``LoglineClientError``; no such group: ``ErrorCode/notFound``.
    public func dead(group: String) async throws(LoglineClientError) -> [DeadLetter] {
        try await bulkArray(["DEAD", group]).map { (json) throws(LoglineClientError) in try DeadLetter(json: json) }
    }

    /// `RETRY <group> <position>`: moves a dead letter back, to be delivered again.
    /// - Parameters:
    ///   - group: The group.
    ///   - position: The dead letter's position.
    /// - Throws: ``LoglineClientError``; no such group or dead letter: ``ErrorCode/notFound``.
    public func retryDead(group: String, position: LogPosition) async throws(LoglineClientError) {
        try await expectOK(["RETRY", group, String(position)])
    }

    /// Consumes a group until the task is cancelled: fetches, runs `handler` for each delivery in order, and
    /// acknowledges it when the handler returns, or gives it back (`NACK`) when the handler throws.
    ///
    /// It fetches on a connection of its own to the same server, so a blocking `FETCH` holds up no other call;
    /// run several in a task group for several consumers. Delivery is at least once: a handler may see an event
    /// again (its ``Delivery/deliveryCount`` then says so), for example after a crash before the acknowledgement.
    ///
    /// When the task is cancelled, the handler running finishes and is settled, the deliveries of the batch
    /// not yet handled are given back, and the call returns. Cancelled while waiting in `FETCH`, it closes its
    /// connection; a reply in flight then is delivered again after the group's ack wait.
    /// - Parameters:
    ///   - group: The group.
    ///   - consumer: The consumer's name.
    ///   - batch: The most deliveries per `FETCH` (1 to 1000).
    ///   - block: How long one `FETCH` waits for something to deliver.
    ///   - handler: Handles one delivery; throw to have it delivered again.
    /// - Throws: ``LoglineClientError`` when the connection fails or the server refuses (for example
    ///   ``ErrorCode/notFound`` for no such group). Cancellation is not an error.
    public func consume(
        group: String, consumer: String, batch: Int = 10, block: Duration = .seconds(5),
        handler: @Sendable (Delivery) async throws -> Void
    ) async throws {
        let connection = try await LoglineClient.connect(
            host: host, port: port, token: token, tlsContext: tlsContext, eventLoopGroup: eventLoopGroup)
        do {
            try await connection.consumeLoop(
                group: group, consumer: consumer, batch: batch, block: block, handler: handler)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    private func consumeLoop(
        group: String, consumer: String, batch: Int, block: Duration,
        handler: @Sendable (Delivery) async throws -> Void
    ) async throws(LoglineClientError) {
        let channel = self.channel
        while !Task.isCancelled {
            let deliveries: [Delivery]
            do {
                deliveries = try await withTaskCancellationHandler {
                    try await fetch(group: group, consumer: consumer, count: batch, block: block)
                } onCancel: {
                    channel.close(promise: nil)
                }
            } catch {
                if Task.isCancelled { return }
                throw error as? LoglineClientError ?? .connectionFailed("\(error)")
            }
            for (index, delivery) in deliveries.enumerated() {
                if Task.isCancelled {
                    // Give the rest back at once rather than after the ack wait (best effort: the connection
                    // may have closed under a cancelled FETCH whose reply had already come).
                    _ = try? await nack(group: group, positions: deliveries[index...].map(\.position))
                    return
                }
                var handled = true
                do {
                    try await handler(delivery)
                } catch {
                    handled = false
                }
                do {
                    if handled {
                        try await ack(group: group, positions: [delivery.position])
                    } else {
                        try await nack(group: group, positions: [delivery.position])
                    }
                } catch {
                    if Task.isCancelled { return }
                    throw error
                }
            }
        }
    }

    // MARK: - Helpers

    /// Whole milliseconds, rounded up, for `ACKWAIT` and `BLOCK`.
    static func milliseconds(_ duration: Duration) throws(LoglineClientError) -> Int64 {
        guard duration >= .zero else { throw .invalidRequest("a duration must not be negative: \(duration)") }
        let (seconds, attoseconds) = duration.components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Int64.max }
        let rest = attoseconds / perMillisecond + (attoseconds % perMillisecond > 0 ? 1 : 0)
        let (total, overflowAgain) = whole.addingReportingOverflow(rest)
        return overflowAgain ? Int64.max : total
    }

    private func expectOK(_ arguments: [String]) async throws(LoglineClientError) {
        let reply = try await send(arguments)
        guard case .simpleString = reply else { throw .unexpectedReply("\(reply)") }
    }

    private func integer(_ arguments: [String]) async throws(LoglineClientError) -> Int {
        let reply = try await send(arguments)
        guard case .integer(let value) = reply, let count = Int(exactly: value) else {
            throw .unexpectedReply("\(reply)")
        }
        return count
    }

    private func bulkArray(_ arguments: [String]) async throws(LoglineClientError) -> [[UInt8]] {
        let reply = try await send(arguments)
        guard case .array(let items?) = reply else { throw .unexpectedReply("\(reply)") }
        return try items.map { (item) throws(LoglineClientError) in
            guard case .bulkString(let bytes?) = item else { throw .unexpectedReply("\(item)") }
            return bytes
        }
    }
}
