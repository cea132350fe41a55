import Foundation
import LoglineClient
import LoglineCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A full disk, for real: the `logline` executable runs under a file-size limit (`RLIMIT_FSIZE`) set on the live
/// process just above its data file's size, so that LMDB's writes fail as they do on a full disk (`EFBIG`, or a
/// short write), then the limit is lifted while the server keeps running.
@Suite("Disk full", .serialized, .timeLimit(.minutes(5)))
struct DiskFullTests {
    /// A `logline serve` process on port 0 whose standard error is read all along, so that its log never fills
    /// the pipe.
    ///
    /// It is started with `posix_spawn` rather than `Process`: `Process` hands the child the signal mask of the
    /// thread that starts it, and the test runner's threads block `SIGXFSZ`, which would hide whether the server
    /// survives a write past its file-size limit. Here the child starts with no signal blocked and `SIGXFSZ` at
    /// its default action (terminate), as under a shell or systemd.
    final class ServerProcess {
        /// What the server wrote on standard error so far.
        final class Output: Sendable {
            let text = Mutex("")
        }

        let pid: pid_t
        let port: Int
        let output = Output()
        private var exitStatus: Int32?

        init(data: String, modules: String?) throws {
            var arguments = [try loglineExecutable(), "serve", "--data", data, "--port", "0", "--log-level", "warning"]
            if let modules { arguments += ["--modules", modules] }
            var descriptors: [Int32] = [0, 0]
            guard pipe(&descriptors) == 0 else { throw TestFailure("pipe failed: errno \(errno)") }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, descriptors[1], 2)
            posix_spawn_file_actions_addclose(&actions, descriptors[0])
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            sigaddset(&defaults, SIGXFSZ)
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            let argv = arguments.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid = pid_t()
            let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
            close(descriptors[1])
            guard spawned == 0 else {
                close(descriptors[0])
                throw TestFailure("posix_spawn failed: \(spawned)")
            }
            self.pid = pid
            let handle = FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true)
            let (port, collected) = try readListeningPort(from: handle)
            self.port = port
            let output = self.output
            output.text.withLock { $0 = collected }
            Thread {
                while true {
                    let data = handle.availableData
                    if data.isEmpty { return }
                    output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
                }
            }.start()
        }

        deinit {
            if exitStatus == nil {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }

        var log: String { output.text.withLock { $0 } }

        /// Whether the process is still running (it has not exited or been killed by a signal).
        var isRunning: Bool {
            var status: Int32 = 0
            return exitStatus == nil && waitpid(pid, &status, WNOHANG) == 0
        }

        /// Sets the soft limit on the size of the files the server writes; `nil` for no limit.
        func limitFileSize(to bytes: UInt64?) throws {
            // glibc's prlimit(2) wrapper is not imported into Swift: look it up by name.
            typealias Prlimit =
                @convention(c) (pid_t, Int32, UnsafePointer<rlimit>?, UnsafeMutablePointer<rlimit>?)
                -> Int32
            guard let symbol = dlsym(nil, "prlimit") else { throw TestFailure("no prlimit in libc") }
            let prlimit = unsafeBitCast(symbol, to: Prlimit.self)
            var limit = rlimit(rlim_cur: bytes.map { rlim_t($0) } ?? rlim_t.max, rlim_max: rlim_t.max)
            guard prlimit(pid, Int32(RLIMIT_FSIZE.rawValue), &limit, nil) == 0 else {
                throw TestFailure("prlimit failed: errno \(errno)")
            }
        }

        /// Sends SIGTERM and waits; the exit status, or 128 + the signal that killed it.
        func terminate() -> Int32 {
            if let exitStatus { return exitStatus }
            kill(pid, SIGTERM)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let signal = status & 0x7f
            let result = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            exitStatus = result
            return result
        }
    }

    /// One append, kept so that it can be sent again exactly as it was.
    struct Attempt {
        let stream: StreamName
        let events: [NewEvent]
        let expected: ExpectedVersion

        func send(_ client: LoglineClient) async throws(LoglineClientError) -> [AppendReceipt] {
            if events.count == 1 {
                return [
                    try await client.append(
                        to: stream, eventType: events[0].eventType, data: events[0].data, expectedVersion: expected,
                        eventID: events[0].eventID)
                ]
            }
            return try await client.appendMany(to: stream, events: events, expectedVersion: expected)
        }
    }

    /// A JSON body of about 32 KiB: a handful of them fill the room left under the limit.
    static func payload(_ number: Int) -> String {
        #"{"n":\#(number),"fill":""# + String(repeating: "x", count: 32 << 10) + #""}"#
    }

    /// How the limit is set, relative to the data file's size when it is set.
    struct Limit: Sendable, CustomTestStringConvertible {
        /// `--modules`, or all of them when `nil`: their checkpoints fail to commit too while the disk is full.
        let modules: String?
        /// The room left under the limit.
        let room: UInt64
        /// Whether the room is not a whole number of pages: a write that reaches the limit then always crosses
        /// it, and is cut short, which LMDB reports as `EIO`. With whole pages, the write past the end of the
        /// file starts right at the limit and fails with `EFBIG`, and the kernel raises `SIGXFSZ`.
        var crossesMidPage: Bool { room % 4096 != 0 }

        var testDescription: String { "modules \(modules ?? "all"), \(room) bytes of room" }
    }

    @Test(
        "a full disk refuses appends with DISKFULL, loses nothing acknowledged, and recovers without a restart",
        arguments: [
            Limit(modules: nil, room: 256 << 10), Limit(modules: "none", room: 0),
            Limit(modules: "none", room: (256 << 10) + 100),
        ])
    func fullDiskRefusesAppendsAndRecovers(limit: Limit) async throws {
        let modules = limit.modules
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path, modules: modules)
        let client = try await LoglineClient.connect(port: server.port)
        _ = try await client.send(["GROUP", "CREATE", "g", "TYPE", "filled", "MAXINFLIGHT", "1000"])
        let stream = try StreamName(aggregateType: "disk", aggregateID: "s1")
        var version: StreamVersion = 0
        var acknowledged: [AppendReceipt] = []
        var number = 0
        func nextAttempt() -> Attempt {
            number += 1
            let count = number % 3 == 0 ? 2 : 1  // every third request is an APPENDMANY
            return Attempt(
                stream: stream,
                events: (0..<count).map {
                    NewEvent(eventType: "filled", data: Self.payload(number * 10 + $0), eventID: .random())
                }, expected: .exact(version))
        }
        for _ in 0..<5 {
            let receipts = try await nextAttempt().send(client)
            acknowledged += receipts
            version = receipts.last!.version
        }

        // Leave 256 KiB of room, then append until an append is refused, and send that one again a few times.
        let size = try #require(
            try FileManager.default.attributesOfItem(atPath: directory.path + "/data.mdb")[.size] as? UInt64)
        try server.limitFileSize(to: size + limit.room)
        var refused: Attempt?
        var refusals: [LoglineClientError] = []
        while refusals.count < 4 && number < 1000 {  // 256 KiB hold a few dozen of these events at most
            let attempt = refused ?? nextAttempt()
            do {
                let receipts = try await attempt.send(client)
                #expect(receipts.allSatisfy { !$0.duplicate })
                #expect(receipts.last!.version == version + UInt64(attempt.events.count))
                acknowledged += receipts
                version = receipts.last!.version
                refused = nil
            } catch {
                refusals.append(error)
                refused = attempt
            }
        }
        #expect(server.isRunning, "the server died under the file-size limit: \(server.log)")
        let failed = try #require(refused, "no append was refused under the file-size limit")
        for error in refusals {
            #expect(error.code == .diskFull, "\(error)")
            #expect(error.description.contains("the disk is full, nothing was written"), "\(error)")
            // LMDB says EIO for a short write; the server finds the limit behind it.
            if limit.crossesMidPage { #expect(error.description.contains("a short write"), "\(error)") }
        }
        // An acknowledged append sent again is still recognised: its original receipt, or DISKFULL when its batch
        // shared a commit with writes that found no room; never a second copy.
        do {
            let again = try await client.append(
                to: stream, eventType: "filled", data: Self.payload(10), expectedVersion: .exact(0),
                eventID: acknowledged[0].eventID)
            #expect(again.duplicate && again.position == acknowledged[0].position)
        } catch {
            #expect(error.code == .diskFull, "\(error)")
        }

        // Nothing acknowledged is lost, and nothing refused was written.
        func checkLog() async throws -> [RecordedEvent] {
            let events = try await client.readAll(fromPosition: 1, count: 10_000)
            #expect(events.map(\.position) == Array(1...UInt64(events.count)))
            #expect(events.map(\.version) == Array(1...UInt64(events.count)))
            #expect(try await client.info().lastPosition == UInt64(events.count))
            return events
        }
        let whileFull = try await checkLog()
        #expect(whileFull.map(\.eventID) == acknowledged.map(\.eventID))
        #expect(zip(whileFull, acknowledged).allSatisfy { $0.position == $1.position && $0.version == $1.version })
        let failedIDs = Set(failed.events.compactMap(\.eventID))
        #expect(!whileFull.contains { failedIDs.contains($0.eventID) })
        #expect(server.log.contains("the disk is full"))

        // Room again, on the live process: the refused append, sent as it was, now lands right after the last
        // acknowledged event, at the version it expected. The writer kept no trace of it: no phantom version
        // (EXPECT would fail), no remembered id (it would answer duplicate), no skipped position.
        try server.limitFileSize(to: nil)
        let landed = try await failed.send(client)
        #expect(landed.map(\.position) == (1...UInt64(landed.count)).map { UInt64(acknowledged.count) + $0 })
        #expect(landed.last!.version == version + UInt64(failed.events.count))
        #expect(landed.allSatisfy { !$0.duplicate })
        acknowledged += landed
        version = landed.last!.version
        let resent = try await failed.send(client)
        #expect(resent.allSatisfy { $0.duplicate } && resent.map(\.position) == landed.map(\.position))
        for _ in 0..<5 {
            let receipts = try await nextAttempt().send(client)
            acknowledged += receipts
            version = receipts.last!.version
        }
        let recovered = try await checkLog()
        #expect(recovered.map(\.eventID) == acknowledged.map(\.eventID))

        // The modules and the consumer group, whose commits failed too while the disk was full, carry on.
        if modules == nil {
            try await SagaTests.settle(client)
            guard case .array(let statuses?) = try await client.send(["PROJECTIONS"]) else {
                throw TestFailure("PROJECTIONS is not an array")
            }
            #expect(statuses.count == 4)
            for status in statuses {
                let fields = try SagaTests.json(status)
                #expect(fields["state"] as? String == "running", "\(fields)")
                #expect(fields["parked"] as? Int == 0, "\(fields)")
                #expect(fields["lag"] as? Int == 0, "\(fields)")
            }
        }
        guard case .array(let deliveries?) = try await client.send(["FETCH", "g", "w", "COUNT", "1000"]) else {
            throw TestFailure("FETCH is not an array")
        }
        #expect(deliveries.count == recovered.count)
        await client.close()
        #expect(server.terminate() == 0)

        // The store on disk is consistent.
        let check = try runProgram(try loglineExecutable(), ["check", directory.path])
        #expect(check.status == 0, "\(check.output)\(check.error)")
    }
}
