import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive lock on a data directory, so that two servers never share one store.
///
/// Uses `flock` on `logline.lock` in the directory; the kernel drops the lock when the process dies, even by
/// `kill -9`, so a crash never leaves a stale lock behind. The file holds the owner's pid for the message.
final class DirectoryLock: Sendable {
    private let descriptor: Int32
    private let released = Atomic<Bool>(false)

    /// Takes the lock or says who holds it.
    init(directory: String) throws(OpenError) {
        let path = directory + "/logline.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw OpenError.io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, 31, 0)
            close(fd)
            let owner = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingSpaces : "unknown"
            throw OpenError.locked(
                "data directory \(directory) is in use by another Logline server (pid \(owner)); "
                    + "stop it or choose another --data directory")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        self.descriptor = fd
    }

    deinit {
        release()
    }

    /// Gives the directory up; safe to call more than once.
    func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.utf8.filter { $0 > 0x20 }.map { Character(UnicodeScalar($0)) })
    }
}

/// Why a log could not be opened.
public enum OpenError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Another server holds the data directory.
    case locked(String)
    /// The directory or the store could not be created or read.
    case io(String)
    /// The store is not one this version understands, or is damaged.
    case corrupt(String)

    /// The message.
    public var description: String {
        switch self {
        case .locked(let message), .io(let message), .corrupt(let message): return message
        }
    }
}
