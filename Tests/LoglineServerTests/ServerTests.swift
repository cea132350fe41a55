import Foundation
import LoglineClient
import LoglineCore
import Testing

@Suite("Server over TCP")
struct ServerTests {
    let order = try! StreamName(aggregateType: "order", aggregateID: "o1")

    @Test func appendThenReadReturnsTheEnvelope() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let receipt = try await client.append(to: order, eventType: "order-created", data: #"{"customer_id":"c1"}"#)
        #expect(receipt.position == 1)
        #expect(receipt.version == 1)
        #expect(!receipt.duplicate)
        let events = try await client.read(order)
        #expect(events.count == 1)
        #expect(events.first?.eventID == receipt.eventID)
        #expect(events.first?.eventType == "order-created")
        #expect(events.first?.data == Array(#"{"customer_id":"c1"}"#.utf8))
        #expect(events.first?.metadata == Array("{}".utf8))
        #expect(try await client.ping() == "PONG")
        await client.close()
        await server.stop()
    }

    @Test func wrongExpectationGetsConflictNamingTheActualVersion() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        _ = try await client.append(to: order, eventType: "order-created", data: "{}")
        await #expect {
            _ = try await client.append(to: order, eventType: "order-paid", data: "{}", expectedVersion: .exact(0))
        } throws: { error in
            guard let error = error as? LoglineClientError, error.code == .conflict else { return false }
            return error.description.contains("version 1")
        }
        await #expect(throws: LoglineClientError.self) {
            _ = try await client.append(to: order, eventType: "order-paid", data: "{}", expectedVersion: .noStream)
        }
        let next = try await client.append(to: order, eventType: "order-paid", data: "{}", expectedVersion: .exact(1))
        #expect(next.version == 2)
        #expect(try await client.read(order).count == 2)
        await client.close()
        await server.stop()
    }

    @Test func manyClientsRacingForEachVersionOfOneStreamOverTCPExactlyOneWinsEach() async throws {
        let server = try await RunningServer.start()
        let contenders = 12
        let rounds: UInt64 = 25
        let clients = try await withThrowingTaskGroup(of: LoglineClient.self) { group in
            for _ in 0..<contenders { group.addTask { try await server.client() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let target = try StreamName(aggregateType: "account", aggregateID: "contended")
        var winners: [String] = []
        for round in 0..<rounds {
            let outcomes = await withTaskGroup(of: (name: String, receipt: AppendReceipt?, code: ErrorCode?).self) {
                group in
                for (index, client) in clients.enumerated() {
                    group.addTask {
                        let name = "r\(round)-c\(index)"
                        do throws(LoglineClientError) {
                            let receipt = try await client.append(
                                to: target, eventType: "deposited", data: #"{"by":"\#(name)"}"#,
                                expectedVersion: .exact(round))
                            return (name, receipt, nil)
                        } catch {
                            return (name, nil, error.code)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let won = outcomes.filter { $0.receipt != nil }
            #expect(won.count == 1, "round \(round): \(won.count) winners")
            #expect(won.first?.receipt?.version == round + 1)
            winners += won.map(\.name)
            for outcome in outcomes where outcome.receipt == nil {
                #expect(outcome.code == .conflict)
            }
        }
        let stored = try await clients[0].read(target)
        #expect(stored.map(\.version) == Array(1...rounds))
        #expect(stored.map { String(decoding: $0.data, as: UTF8.self) } == winners.map { #"{"by":"\#($0)"}"# })
        for client in clients { await client.close() }
        await server.stop()
    }

    @Test func eventIDSentTwiceIsStoredOnce() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let id = EventID.random()
        let first = try await client.append(to: order, eventType: "order-created", data: #"{"a":1}"#, eventID: id)
        let second = try await client.append(to: order, eventType: "order-created", data: #"{"a":1}"#, eventID: id)
        #expect(second.position == first.position)
        #expect(second.version == first.version)
        #expect(second.duplicate)
        #expect(try await client.read(order).count == 1)
        await #expect {
            _ = try await client.append(to: order, eventType: "order-created", data: #"{"a":2}"#, eventID: id)
        } throws: { ($0 as? LoglineClientError)?.code == .conflict }
        #expect(try await client.info().eventCount == 1)
        await client.close()
        await server.stop()
    }

    @Test func appendManySentTwiceIsStoredOnceAndSaysSo() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let events = [
            NewEvent(eventType: "order-created", data: #"{"n":1}"#, eventID: .random()),
            NewEvent(eventType: "order-paid", data: #"{"n":2}"#, eventID: .random()),
        ]
        let first = try await client.appendMany(to: order, events: events, expectedVersion: .noStream)
        let second = try await client.appendMany(to: order, events: events, expectedVersion: .noStream)
        #expect(first.allSatisfy { !$0.duplicate })
        #expect(second.allSatisfy { $0.duplicate })
        #expect(second.map(\.position) == first.map(\.position))
        #expect(second.map(\.eventID) == events.compactMap(\.eventID))
        #expect(try await client.info().eventCount == 2)
        await client.close()
        await server.stop()
    }

    @Test func badJSONGetsBadJSONAndStoresNothing() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        for bad in ["{bad", "[1,2", "{\"a\":1}}", "nul", ""] {
            await #expect {
                _ = try await client.send(["APPEND", "order", "o1", "order-created", bad])
            } throws: { error in
                let code = (error as? LoglineClientError)?.code
                return code == .badJSON || (bad.isEmpty && code == .badRequest)
            }
        }
        #expect(try await client.info().eventCount == 0)
        #expect(try await client.ping() == "PONG")
        await client.close()
        await server.stop()
    }

    @Test func badNamesAndUnknownVerbsGetBadRequestAndTheConnectionCarriesOn() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let cases: [[String]] = [
            ["APPEND", "or der", "o1", "x", "{}"],
            ["APPEND", "order", String(repeating: "a", count: 201), "x", "{}"],
            ["APPEND", "order", "o1", "x/y", "{}"],
            ["APPEND", "order", "o1", "x", "ID", "not-a-uuid", "{}"],
            ["APPEND", "order", "o1", "x", "EXPECT", "-1", "{}"],
            ["FLY", "away"],
            ["READ", "order"],
        ]
        for arguments in cases {
            await #expect {
                _ = try await client.send(arguments)
            } throws: { ($0 as? LoglineClientError)?.code == .badRequest }
        }
        #expect(try await client.info().eventCount == 0)
        #expect(try await client.ping() == "PONG")
        await client.close()
        await server.stop()
    }

    @Test func appendManyIsAtomicUnderOneExpectation() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let receipts = try await client.appendMany(
            to: order,
            events: [
                NewEvent(eventType: "order-created", data: #"{"n":1}"#),
                NewEvent(eventType: "order-paid", data: #"{"n":2}"#, metadata: #"{"correlation_id":"x"}"#),
            ], expectedVersion: .noStream)
        #expect(receipts.map(\.version) == [1, 2])
        #expect(receipts.map(\.position) == [1, 2])
        #expect(receipts.allSatisfy { !$0.duplicate })
        await #expect {
            _ = try await client.appendMany(
                to: order, events: [NewEvent(eventType: "a", data: "1"), NewEvent(eventType: "b", data: "2")],
                expectedVersion: .exact(1))
        } throws: { ($0 as? LoglineClientError)?.code == .conflict }
        let events = try await client.read(order)
        #expect(events.count == 2)
        #expect(events[1].metadata == Array(#"{"correlation_id":"x"}"#.utf8))
        await client.close()
        await server.stop()
    }

    @Test func readAllFiltersByTypeAndPages() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        for index in 1...10 {
            let stream = try StreamName(aggregateType: "order", aggregateID: "o\(index % 3)")
            _ = try await client.append(to: stream, eventType: index % 2 == 0 ? "even" : "odd", data: "\(index)")
        }
        let all = try await client.readAll()
        #expect(all.map(\.position) == Array(1...10))
        let page = try await client.readAll(fromPosition: 4, count: 3)
        #expect(page.map(\.position) == [4, 5, 6])
        let even = try await client.readAll(eventTypes: ["even"])
        #expect(even.map(\.position) == [2, 4, 6, 8, 10])
        #expect(even.allSatisfy { $0.eventType == "even" })
        let stream = try await client.read(StreamName(aggregateType: "order", aggregateID: "o1"), fromVersion: 2)
        #expect(stream.map(\.version) == [2, 3, 4])
        #expect(try await client.read(StreamName(aggregateType: "order", aggregateID: "nope")).isEmpty)
        await client.close()
        await server.stop()
    }

    @Test func pipelinedAppendsFromManyTasksGetTheirOwnRepliesInOrder() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let receipts = try await withThrowingTaskGroup(of: (Int, AppendReceipt).self) { group in
            for index in 0..<500 {
                group.addTask {
                    let stream = try StreamName(aggregateType: "order", aggregateID: "p\(index % 7)")
                    return (index, try await client.append(to: stream, eventType: "e", data: "\(index)"))
                }
            }
            var all: [Int: AppendReceipt] = [:]
            for try await (index, receipt) in group { all[index] = receipt }
            return all
        }
        #expect(Set(receipts.values.map(\.position)) == Set(1...500))
        let events = try await client.readAll(count: 1000)
        #expect(events.count == 500)
        for event in events {
            let index = Int(String(decoding: event.data, as: UTF8.self))!
            #expect(receipts[index]?.position == event.position)
            #expect(receipts[index]?.eventID == event.eventID)
        }
        await client.close()
        await server.stop()
    }

    @Test func everythingSurvivesARestart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var server = try await RunningServer.start(directory: directory.path)
        var client = try await server.client()
        for index in 1...20 { _ = try await client.append(to: order, eventType: "e", data: "\(index)") }
        await client.close()
        await server.stop()

        server = try await RunningServer.start(directory: directory.path)
        client = try await server.client()
        let events = try await client.read(order)
        #expect(events.map(\.version) == Array(1...20))
        let next = try await client.append(to: order, eventType: "e", data: "21", expectedVersion: .exact(20))
        #expect(next.position == 21)
        await client.close()
        await server.stop()
    }

    @Test func infoReportsTheFigures() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        _ = try await client.append(to: order, eventType: "e", data: "1")
        _ = try await client.append(
            to: StreamName(aggregateType: "order", aggregateID: "o2"), eventType: "e", data: "2")
        let info = try await client.info()
        #expect(info.lastPosition == 2)
        #expect(info.eventCount == 2)
        #expect(info.streamCount == 2)
        #expect(info.dataDirectory == server.log.directory)
        #expect(!info.version.isEmpty)
        await client.close()
        await server.stop()
    }
}
