import ArgumentParser
import Foundation
import LoglineClient

/// Prints a reply: a bulk string as it is, an array one element per line, nil as `null`, a status as text.
func printReply(_ reply: RESPValue) {
    switch reply {
    case .array(let items?):
        for item in items { printReply(item) }
    case .bulkString(nil), .array(nil):
        printLine("null")
    default:
        printLine(reply.text ?? "\(reply)")
    }
}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a command to its handler, e.g. create-order; prints the result.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The command's name.") var command: String
    @Argument(help: "The command's JSON body.") var body: String

    func run() async throws {
        try await connection.withClient { client in printReply(try await client.send(["SUBMIT", command, body])) }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print one document of a view (null when absent).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The view.") var view: String
    @Argument(help: "The document's key.") var key: String
    @Option(help: "Wait until the view has processed this log position.") var at: UInt64?

    func run() async throws {
        var arguments = ["GET", view, key]
        if let at { arguments += ["AT", String(at)] }
        try await connection.withClient { client in printReply(try await client.send(arguments)) }
    }
}

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print documents of a view in key order, one per line.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The view.") var view: String
    @Option(name: .customLong("where"), parsing: .upToNextOption, help: "An indexed field and its value.")
    var filter: [String] = []
    @Option(help: "The most documents (1 to 1000).") var limit: Int?
    @Option(help: "Start after this key.") var after: String?
    @Option(help: "Wait until the view has processed this log position.") var at: UInt64?

    func validate() throws {
        guard filter.isEmpty || filter.count == 2 else { throw ValidationError("--where takes a field and a value") }
    }

    func run() async throws {
        var arguments = ["QUERY", view]
        if filter.count == 2 { arguments += ["WHERE", filter[0], filter[1]] }
        if let limit { arguments += ["LIMIT", String(limit)] }
        if let after { arguments += ["AFTER", after] }
        if let at { arguments += ["AT", String(at)] }
        try await connection.withClient { client in printReply(try await client.send(arguments)) }
    }
}

struct Views: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the views, one JSON object per line.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.withClient { client in printReply(try await client.send(["VIEWS"])) }
    }
}

struct Projections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the modules with checkpoint, lag, state and parked count, one JSON object per line.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.withClient { client in printReply(try await client.send(["PROJECTIONS"])) }
    }
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild a projector's views from the start of the log into a shadow copy, then swap it in.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The projector's name.") var module: String

    func run() async throws {
        try await connection.withClient { client in printReply(try await client.send(["REBUILD", module])) }
    }
}

struct Parked: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the events a module parked.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The module's name.") var module: String

    func run() async throws {
        try await connection.withClient { client in printReply(try await client.send(["PARKED", module])) }
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Process a parked event again (or resume a faulted module at its failing event).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The module's name.") var module: String
    @Argument(help: "The event's position.") var position: UInt64

    func run() async throws {
        try await connection.withClient { client in
            printReply(try await client.send(["RETRY", module, String(position)]))
        }
    }
}

struct Skip: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop a parked event (or step a faulted module over its failing event).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The module's name.") var module: String
    @Argument(help: "The event's position.") var position: UInt64

    func run() async throws {
        try await connection.withClient { client in
            printReply(try await client.send(["SKIP", module, String(position)]))
        }
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a file of requests, one inline request per line (as typed into netcat), in order.",
        discussion: """
            Blank lines and lines starting with # are skipped. Each reply is printed; an error reply is printed \
            on stderr and counted. Exit code 1 when any request failed. Example: logline load data/orders-sample.txt
            """)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The file of requests.") var file: String
    @Flag(help: "Print only the summary.") var quiet = false

    func run() async throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError("cannot read \(file)")
        }
        var sent = 0
        var failed = 0
        try await connection.withClient { client in
            for line in text.split(whereSeparator: \.isNewline) {
                let request = line.trimmingCharacters(in: .whitespaces)
                guard !request.isEmpty, !request.hasPrefix("#") else { continue }
                let reply = try await client.sendInline(request)
                sent += 1
                if case .error(let message) = reply {
                    failed += 1
                    FileHandle.standardError.write(Data("logline: \(request.prefix(80)): \(message)\n".utf8))
                } else if !quiet {
                    printReply(reply)
                }
            }
        }
        FileHandle.standardError.write(Data("logline: sent \(sent) requests, \(failed) failed\n".utf8))
        if failed > 0 { throw ExitCode(1) }
    }
}
