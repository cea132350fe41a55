import Foundation
import Logging
import LoglineClient
import LoglineConsumerGroups
import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import LoglineServer
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "logline-test-" + UUID().uuidString
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A real server on port 0 over a real LMDB log in its own temporary directory, inside a ServiceGroup.
final class RunningServer: Sendable {
    let port: Int
    let log: LMDBEventLog
    let directory: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(port: Int, log: LMDBEventLog, directory: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.log = log
        self.directory = directory
        self.group = group
        self.task = task
    }

    /// Starts a server; `directory` defaults to a new temporary one. Its metrics go to `metricsFactory` (by
    /// default the process's `MetricsSystem`, which the tests never bootstrap: no metrics).
    static func start(
        directory: String = TemporaryDirectory().path, modules: [any LoglineModule] = [],
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        configure: (inout LoglineServer.Configuration) -> Void = { _ in }
    ) async throws -> RunningServer {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let log = try LMDBEventLog(directory: directory, logger: logger, metricsFactory: metricsFactory)
        let host = try ProjectionHost(log: log, modules: modules, logger: logger, metricsFactory: metricsFactory)
        var configuration = LoglineServer.Configuration()
        configuration.port = 0
        configure(&configuration)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let groups = try ConsumerGroups(log: log, logger: logger, metricsFactory: metricsFactory)
        let server = LoglineServer(
            configuration: configuration, log: log, host: host, groups: groups, logger: logger,
            metricsFactory: metricsFactory
        ) { address in
            continuation.yield(address.port ?? 0)
            continuation.finish()
        }
        let group = ServiceGroup(services: [host, server], logger: logger)
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            log.close()
            throw TestFailure("server did not start")
        }
        return RunningServer(port: port, log: log, directory: directory, group: group, task: task)
    }

    /// Stops the server gracefully and closes the log; the directory stays for a restart.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        log.close()
    }

    /// A connected client.
    func client() async throws -> LoglineClient {
        try await LoglineClient.connect(port: port)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking TCP connection for sending raw bytes, as netcat would.
final class RawConnection: @unchecked Sendable {
    private let fd: Int32

    /// Connects to the server on loopback.
    /// - Parameters:
    ///   - port: The server's port.
    ///   - receiveBufferBytes: A small receive buffer (set before connecting, so the TCP window stays small), for
    ///     a client that does not read.
    init(port: Int, receiveBufferBytes: Int? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBufferBytes.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestFailure("connect failed")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // A send the server never takes fails after a while, rather than hanging the test.
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw TestFailure("send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Half-closes: the server sees end of input.
    func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads until `count` RESP replies have arrived (or the peer closes), and returns the text.
    func blockingReadReplies(_ count: Int) throws -> String {
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while RawConnection.completeReplies(in: received) < count {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { break }
            received.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the peer closes the connection; returns what came.
    func blockingReadToEnd() -> String {
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { break }
            received.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Whether the peer has closed the connection (a read returns 0 at once).
    func blockingPeerClosed() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// Reads until `count` RESP replies have arrived (or the peer closes), on a thread of its own.
    ///
    /// Every read of a test goes through here rather than blocking in the test's task: a blocked task holds one
    /// of the few threads of Swift's shared concurrency pool, which the in-process servers of the tests running
    /// in parallel need, so two blocked reads could stall every server for the length of the read timeout.
    func readReplies(_ count: Int) async throws -> String {
        try await awaitBlocking { try self.blockingReadReplies(count) }
    }

    /// Reads until the peer closes the connection (or 10 s pass without a byte), on a thread of its own.
    func readToEnd() async -> String {
        (try? await awaitBlocking { self.blockingReadToEnd() }) ?? ""
    }

    /// Whether the peer has closed the connection (a read returns 0 at once), on a thread of its own.
    func peerClosed() async -> Bool {
        (try? await awaitBlocking { self.blockingPeerClosed() }) ?? false
    }

    /// Counts the complete top-level RESP replies at the start of `bytes`.
    static func completeReplies(in bytes: [UInt8]) -> Int {
        var index = 0
        var count = 0
        func line() -> String? {
            guard let end = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            let text = String(decoding: bytes[index..<end], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            index = end + 1
            return text.hasSuffix("\r") ? String(text.dropLast()) : text
        }
        func value() -> Bool {
            guard let header = line(), let marker = header.first else { return false }
            let number = Int(header.dropFirst().trimmingCharacters(in: .init(charactersIn: "\r"))) ?? 0
            switch marker {
            case "$":
                if number < 0 { return true }
                guard index + number + 2 <= bytes.count else { return false }
                index += number + 2
                return true
            case "*":
                if number < 0 { return true }
                for _ in 0..<number where !value() { return false }
                return true
            default:
                return true
            }
        }
        while index < bytes.count {
            let start = index
            guard value() else {
                index = start
                break
            }
            count += 1
        }
        return count
    }
}

/// Runs a program and returns its exit status, standard output and standard error.
@discardableResult
func runProgram(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self)
    )
}

/// The path of a program on PATH, or nil.
func which(_ program: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(directory)/\(program)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// The `logline` executable built beside the test bundle.
func loglineExecutable() throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("logline").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw TestFailure(
        "the logline executable was not found next to \(CommandLine.arguments[0]); run `swift build` first")
}

/// Runs blocking work (a child process, a blocking socket read) on a thread of its own, so that it holds no thread
/// of the shared concurrency pool: the in-process servers of the tests that run in parallel need those threads.
func awaitBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Reads what a `logline serve` process writes on standard error until its "listening on" line (and each of
/// `markers`), and returns the port from that line with everything read so far.
func readListeningPort(from handle: FileHandle, waitingFor markers: [String] = []) throws -> (port: Int, output: String)
{
    var collected = ""
    while !(markers + ["listening on"]).allSatisfy({ collected.contains($0) }) {
        let data = handle.availableData
        guard !data.isEmpty else { throw TestFailure("server exited: \(collected)") }
        collected += String(decoding: data, as: UTF8.self)
    }
    guard let line = collected.split(separator: "\n").first(where: { $0.contains("listening on") }),
        let address = line.split(separator: " ").first(where: { $0.contains(":") && $0.first!.isNumber }),
        let port = Int(address.split(separator: ":").last!.trimmingCharacters(in: .punctuationCharacters))
    else { throw TestFailure("no port in: \(collected)") }
    return (port, collected)
}

/// The whole log, read page by page with `READALL` until an empty page.
func readWholeLog(_ client: LoglineClient) async throws -> [RecordedEvent] {
    var all: [RecordedEvent] = []
    while true {
        let page = try await client.readAll(fromPosition: (all.last?.position ?? 0) + 1, count: 10_000)
        if page.isEmpty { return all }
        all += page
    }
}
