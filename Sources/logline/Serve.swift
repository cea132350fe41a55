import ArgumentParser
import Foundation
import Logging
import LoglineConsumerGroups
import LoglineLog
import LoglineMetricsEndpoint
import LoglineModuleAPI
import LoglineProjectionHost
import LoglineServer
import Metrics
import NIOPosix
import Prometheus
import ServiceLifecycle

/// `logline serve`: opens the log in a data directory and serves it on a TCP port.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server on a data directory (created if missing).")

    @Option(name: .long, help: "The data directory; one server per directory.")
    var data: String = "data/store"

    @Option(name: .long, help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The port to listen on (0 picks a free one).")
    var port: Int = 7480

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://<host>:<port>/metrics, on the address of --host (0 picks a free "
                + "port). Off when not given.",
            valueName: "port"))
    var metricsPort: Int?

    @Option(
        name: .long,
        help: "The largest request in bytes (at least 1024); larger ones get -TOOLARGE and the connection closes.")
    var maxRequestBytes: Int = 1 << 20

    @Option(
        name: .long,
        help: "The most requests of one connection in flight or waiting; past it the server stops reading from it.")
    var maxPipelined: Int = 1024

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Comma-separated module groups to run: \(ModuleRegistry.groups.map(\.name).joined(separator: ", ")); all; none.",
            valueName: "groups"))
    var modules: String = "all"

    @Option(name: .long, help: "The credit each customer starts with (payment module).")
    var initialCredit: String = "1000.00"

    @Option(
        name: .long, help: "How many events a live subscriber that does not read may fall behind before it is dropped.")
    var maxSubscriberLag: UInt64 = 100_000

    @Option(name: .long, help: "The most open connections; one more gets -UNAVAILABLE.")
    var maxConnections: Int = 10_000

    @Option(
        name: .long,
        help: "Seconds a connection may stay silent with nothing in flight before it is closed (0: never).")
    var idleTimeout: Int = 300

    @Option(
        name: .long,
        help: "Seconds a graceful shutdown (SIGTERM, SIGINT) waits for connections to be answered and closed.")
    var shutdownTimeout: Int = 10

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How many stream-index entries wait in memory before the group commits write them to the store in "
                + "bulk, --stream-index-chunk a commit (1: each commit's go in the next). Larger writes fewer pages "
                + "per event and holds more in memory (about 100 bytes an entry).",
            valueName: "entries"))
    var streamIndexBatch: Int = LMDBEventLog.Configuration().streamIndexBatch

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The most stream-index entries of a bulk write that one group commit writes: what bounds the time it "
                + "adds to that commit.",
            valueName: "entries"))
    var streamIndexChunk: Int = LMDBEventLog.Configuration().streamIndexChunk

    @Option(
        name: .long,
        help: ArgumentHelp(
            "About how many streams' current versions stay in memory once their stream-index entries are written "
                + "(about 80 bytes each; 0: none), so that appends to them need not read the stream index.",
            valueName: "streams"))
    var streamHeadCache: Int = LMDBEventLog.Configuration().streamHeadCacheCapacity

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The resident memory, in MiB, under which the store's pages read through its memory map stay mapped. Past "
                + "it they are handed back to the page cache (at most 16 MiB of them stay), and read again from "
                + "there when needed. Higher keeps more of the store's indexes at hand.",
            valueName: "MiB"))
    var residentTarget: Int = 96

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Threads that serve connections. The default, one fewer than the cores (at least 1), leaves a core to "
                + "the log's writer and the modules.",
            valueName: "threads"))
    var eventLoopThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A file of access tokens, one '<role> <token>' a line (role: read-write or read-only; a token alone is "
                + "read-write; # comments). Clients must then send AUTH <token>.",
            valueName: "file"))
    var authTokenFile: String?

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Allow listening on a non-loopback address without --auth-token-file: anyone who can reach the port "
                + "may read and write."))
    var insecure = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Speak TLS (1.2 or later) on the port with this PEM certificate chain (the server's certificate first); "
                + "needs --tls-key. Plain TCP is then refused.",
            valueName: "file"))
    var tlsCert: String?

    @Option(
        name: .long,
        help: ArgumentHelp("The PEM private key of --tls-cert (unencrypted).", valueName: "file"))
    var tlsKey: String?

    /// Prints `logline: error: <message>` on stderr and fails with exit code 1.
    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("logline: error: \(message)\n".utf8))
        return ExitCode(1)
    }

    /// The tokens of `--auth-token-file`, or none.
    private func loadTokens() throws -> [AccessToken] {
        guard let path = authTokenFile else { return [] }
        let contents: String
        do {
            contents = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw fail("cannot read --auth-token-file \(path): \((error as NSError).localizedDescription)")
        }
        let tokens: [AccessToken]
        do {
            tokens = try AccessToken.parseFile(contents: contents)
        } catch {
            throw fail("--auth-token-file \(path): \(error)")
        }
        if let permissions = try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int,
            permissions & 0o077 != 0
        {
            FileHandle.standardError.write(
                Data("logline: warning: --auth-token-file \(path) is readable by other users; chmod 600 it\n".utf8))
        }
        return tokens
    }

    /// The TLS settings of `--tls-cert` and `--tls-key`, or none.
    private func loadTLS() throws -> ServerTLS? {
        switch (tlsCert, tlsKey) {
        case (nil, nil):
            return nil
        case (.some, nil):
            throw fail("--tls-cert needs --tls-key")
        case (nil, .some):
            throw fail("--tls-key needs --tls-cert")
        case (let certificate?, let key?):
            do {
                return try ServerTLS(certificateChainFile: certificate, privateKeyFile: key)
            } catch {
                throw fail("\(error)")
            }
        }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "logline")
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be 0 to 65535")
        }
        // Metrics cost nothing when off: MetricsSystem stays the no-op factory unless --metrics-port is given.
        // Bootstrapped once, here, before anything makes a metric; the libraries take MetricsSystem.factory.
        let registry: PrometheusCollectorRegistry? = metricsPort == nil ? nil : PrometheusCollectorRegistry()
        if let registry { MetricsSystem.bootstrap(LoglineMetrics.makeFactory(registry: registry)) }
        guard let credit = ExactDecimal(initialCredit), !credit.isNegative else {
            throw ValidationError("--initial-credit must be a plain decimal such as 1000.00")
        }
        var configuration = LoglineServer.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.maximumRequestBytes = maxRequestBytes
        configuration.maximumPipelinedRequests = maxPipelined
        configuration.maximumSubscriberLag = maxSubscriberLag
        guard idleTimeout >= 0, shutdownTimeout >= 0 else {
            throw ValidationError("--idle-timeout and --shutdown-timeout must be at least 0")
        }
        guard streamIndexBatch >= 1, streamIndexChunk >= 1 else {
            throw ValidationError("--stream-index-batch and --stream-index-chunk must be at least 1")
        }
        guard streamHeadCache >= 0 else { throw ValidationError("--stream-head-cache must be 0 or more") }
        guard residentTarget >= 16 && residentTarget <= 1 << 30 else {
            throw ValidationError("--resident-target must be between 16 and 1073741824 MiB")
        }
        guard (1...1024).contains(eventLoopThreads) else {
            throw ValidationError("--event-loop-threads must be between 1 and 1024")
        }
        configuration.shutdownGracePeriod = .seconds(shutdownTimeout)
        configuration.maximumConnections = maxConnections
        configuration.idleTimeout = idleTimeout == 0 ? nil : .seconds(idleTimeout)
        configuration.tokens = try loadTokens()
        configuration.insecure = insecure
        configuration.tls = try loadTLS()
        do {
            try configuration.validate()
        } catch {
            throw fail("\(error)")
        }
        if configuration.tokens.isEmpty && !LoglineServer.Configuration.isLoopback(host) {
            FileHandle.standardError.write(
                Data(
                    "logline: warning: --insecure: anyone who can reach \(host) may read and write, without a token\n"
                        .utf8))
        } else if configuration.tls == nil && !LoglineServer.Configuration.isLoopback(host) {
            FileHandle.standardError.write(
                Data(
                    ("logline: warning: tokens travel in clear text to \(host): give --tls-cert and --tls-key, or use "
                        + "a TLS tunnel\n").utf8))
        }
        let groupNames = modules.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let selectedModules = try ModuleRegistry.modules(
            named: groupNames, settings: ModuleRegistry.Settings(initialCredit: credit))

        logger.info(
            "starting",
            metadata: [
                "version": "\(LoglineServer.version)", "data": "\(data)", "modules": "\(modules)",
                "address": "\(host):\(port)", "metrics_port": "\(metricsPort.map { "\($0)" } ?? "off")",
                "authentication": "\(configuration.tokens.isEmpty ? "off" : "on")",
                "tls": "\(configuration.tls == nil ? "off" : "on")",
            ])
        let log: LMDBEventLog
        do {
            var logConfiguration = LMDBEventLog.Configuration()
            logConfiguration.streamIndexBatch = streamIndexBatch
            logConfiguration.streamIndexChunk = streamIndexChunk
            logConfiguration.streamHeadCacheCapacity = streamHeadCache
            // The server's one store: its mapped pages stay while the resident set is under its target, and never
            // more than 16 MB of them when it is over.
            logConfiguration.residentMapLimit = 16 << 20
            logConfiguration.residentSetTarget = residentTarget << 20
            log = try LMDBEventLog(directory: data, configuration: logConfiguration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("logline: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        defer { log.close() }

        let projectionHost: ProjectionHost
        do {
            projectionHost = try ProjectionHost(log: log, modules: selectedModules, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("logline: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let groups: ConsumerGroups
        do {
            groups = try ConsumerGroups(log: log, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("logline: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let directory = log.directory
        let host = self.host
        let tls = configuration.tls == nil ? "" : ", TLS"
        // Its own group rather than NIO's singleton (one thread a core): on two cores, two event loops and the
        // writer thread took turns on the cores, and unpipelined GETs ran a third slower than with one loop.
        // Not shut down: appends still in the writer's queue when the server stops complete onto these loops until
        // the log closes, as the process exits (NIO's singleton, used before, was never shut down either).
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: eventLoopThreads)
        let server = LoglineServer(
            configuration: configuration, log: log, host: projectionHost, groups: groups, eventLoopGroup: eventLoops,
            logger: logger
        ) {
            address in
            let text =
                "logline: listening on \(address.ipAddress ?? host):\(address.port ?? port), data in \(directory)\(tls)\n"
            FileHandle.standardError.write(Data(text.utf8))
        }
        // In dependency order: on shutdown the later ones stop first (metrics, then the server), then the modules
        // finish their batch.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: projectionHost), .init(service: server),
        ]
        if let registry, let metricsPort {
            // A thread of its own: rendering a scrape on a connection loop would hold up that loop's clients.
            let endpoint = MetricsEndpoint(
                registry: registry, host: host, port: metricsPort,
                eventLoopGroup: MultiThreadedEventLoopGroup(numberOfThreads: 1), logger: logger
            ) {
                address in
                let text =
                    "logline: metrics on http://\(address.ipAddress ?? host):\(address.port ?? metricsPort)/metrics\n"
                FileHandle.standardError.write(Data(text.utf8))
            }
            services.append(.init(service: endpoint))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("stopped with an error", metadata: ["error": "\(error)"])
            FileHandle.standardError.write(Data("logline: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
