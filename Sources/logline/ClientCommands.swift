import ArgumentParser
import Foundation
import LoglineClient
import LoglineCore

/// The server a client subcommand talks to: its address, the token, and TLS.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "The server's address.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The server's port.")
    var port: Int = 7480

    @Option(
        name: .long,
        help: "The access token, when the server requires one (default: $LOGLINE_TOKEN, which keeps it out of ps).")
    var token: String?

    @Flag(
        name: .long,
        help: "Connect over TLS, checking the server's certificate against the system's trust roots (or --tls-ca).")
    var tls = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Connect over TLS, trusting only the certificates of this PEM file (a private CA, or the server's own "
                + "self-signed certificate). Implies --tls.",
            valueName: "file"))
    var tlsCA: String?

    /// The TLS settings of `--tls` and `--tls-ca`, or `nil` for plain TCP.
    var clientTLS: ClientTLS? {
        guard tls || tlsCA != nil else { return nil }
        return ClientTLS(caFile: tlsCA)
    }

    /// `--token`, else a non-empty `LOGLINE_TOKEN`, else none.
    var effectiveToken: String? {
        if let token { return token }
        guard let fromEnvironment = ProcessInfo.processInfo.environment["LOGLINE_TOKEN"], !fromEnvironment.isEmpty
        else { return nil }
        return fromEnvironment
    }

    /// Connects (and authenticates with the token, if any), runs `body`, closes; prints a failure as one line and
    /// exits 1.
    func withClient(_ body: (LoglineClient) async throws -> Void) async throws {
        do {
            let client = try await LoglineClient.connect(
                host: host, port: port, token: effectiveToken, tls: clientTLS)
            do {
                try await body(client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        } catch let error as LoglineClientError {
            // A server on a TLS port closes a plain connection without a reply.
            let hint = error == .connectionClosed && clientTLS == nil ? " (does the server need --tls?)" : ""
            FileHandle.standardError.write(Data("logline: error: \(error)\(hint)\n".utf8))
            throw ExitCode(1)
        } catch let error as NameError {
            FileHandle.standardError.write(Data("logline: error: BADREQ \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Parses `--expect`.
func parseExpectation(_ text: String?) throws -> ExpectedVersion {
    guard let text else { return .any }
    switch text.uppercased() {
    case "ANY": return .any
    case "NONE": return .noStream
    default:
        guard let version = UInt64(text) else { throw ValidationError("--expect takes a version, ANY or NONE") }
        return .exact(version)
    }
}

/// Prints one line to standard output.
func printLine(_ text: String) {
    print(text)
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the server answers.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.withClient { client in printLine(try await client.ping()) }
    }
}

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append one event; prints its event_id, position and version once it is on disk.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The aggregate type, e.g. order.") var aggregateType: String
    @Argument(help: "The aggregate id, e.g. o1.") var aggregateID: String
    @Argument(help: "The event type, e.g. order-created.") var eventType: String
    @Argument(help: "The event's data: any JSON value.") var data: String
    @Option(help: "The stream's expected version: a number, ANY or NONE.") var expect: String?
    @Option(help: "The event's id (a UUID), for idempotent retries.") var id: String?
    @Option(help: "Metadata: a JSON object.") var meta: String?

    func run() async throws {
        let expected = try parseExpectation(expect)
        let eventID = try id.map { text -> EventID in
            guard let id = EventID(text) else { throw ValidationError("--id must be a UUID") }
            return id
        }
        try await connection.withClient { client in
            let stream = try StreamName(aggregateType: aggregateType, aggregateID: aggregateID)
            let receipt = try await client.append(
                to: stream, eventType: eventType, data: data, expectedVersion: expected, eventID: eventID,
                metadata: meta)
            printLine(receipt.json)
        }
    }
}

struct AppendMany: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "appendmany",
        abstract: "Append several events to one stream atomically.",
        discussion: #"EVENTS is a JSON array such as '[{"event_type":"a","data":{}},{"event_type":"b","data":1}]'."#)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The aggregate type.") var aggregateType: String
    @Argument(help: "The aggregate id.") var aggregateID: String
    @Argument(help: "A JSON array of {event_type, data, event_id?, metadata?}.") var events: String
    @Option(help: "The stream's expected version: a number, ANY or NONE.") var expect: String?

    func run() async throws {
        let expected = try parseExpectation(expect)
        try await connection.withClient { client in
            _ = try StreamName(aggregateType: aggregateType, aggregateID: aggregateID)
            var arguments = ["APPENDMANY", aggregateType, aggregateID]
            if expected != .any { arguments += ["EXPECT", expected.description] }
            arguments.append(events)
            let reply = try await client.send(arguments)
            printLine(reply.text ?? "\(reply)")
        }
    }
}

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a stream's events, oldest first, one JSON envelope per line.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The aggregate type.") var aggregateType: String
    @Argument(help: "The aggregate id.") var aggregateID: String
    @Option(help: "The first version to print.") var from: UInt64?
    @Option(help: "The most events to print (1 to 10000).") var count: Int?

    func run() async throws {
        try await connection.withClient { client in
            let stream = try StreamName(aggregateType: aggregateType, aggregateID: aggregateID)
            for event in try await client.read(stream, fromVersion: from ?? 1, count: count) {
                printLine(event.json)
            }
        }
    }
}

struct ReadAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "readall", abstract: "Print the log in position order, one JSON envelope per line.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "The first position to print.") var from: UInt64?
    @Option(help: "The most events to print (1 to 10000).") var count: Int?
    @Option(name: .customLong("type"), help: "Only events of this type (repeatable).") var types: [String] = []

    func run() async throws {
        try await connection.withClient { client in
            for event in try await client.readAll(fromPosition: from ?? 1, count: count, eventTypes: types) {
                printLine(event.json)
            }
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the server's figures as JSON.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.withClient { client in printLine(try await client.info().json) }
    }
}
