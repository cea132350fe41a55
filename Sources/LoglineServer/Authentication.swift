import LoglineProtocol
import NIOCore

/// A secret that a client presents with `AUTH`, and the role it grants the connection.
///
/// Its `description` never shows the secret, so a token can be logged or printed safely.
public struct AccessToken: Hashable, Sendable, CustomStringConvertible {
    /// What a connection may do once it has authenticated with a token.
    public enum Role: String, Hashable, Sendable, CaseIterable {
        /// Every request.
        case readWrite = "read-write"
        /// Every request that does not change the log, the modules or the set of consumer groups. Consuming a
        /// group (`FETCH`, `ACK`, `NACK`) is allowed: it changes only the group's own deliveries.
        case readOnly = "read-only"

        /// Whether this role allows a request that needs `access`.
        /// - Parameter access: What the request needs (``LoglineProtocol/Request/requiredAccess``).
        /// - Returns: `true` when the request may run.
        public func permits(_ access: RequiredAccess) -> Bool {
            switch (self, access) {
            case (.readWrite, _), (.readOnly, .unauthenticated), (.readOnly, .read): return true
            case (.readOnly, .write): return false
            }
        }
    }

    /// The shortest token accepted, in characters.
    public static let minimumLength = 16

    /// The role the token grants.
    public var role: Role
    /// The secret: 16 or more printable ASCII characters, without spaces.
    public var token: String

    /// Creates a token; ``validate()`` checks it.
    /// - Parameters:
    ///   - role: The role it grants.
    ///   - token: The secret.
    public init(role: Role, token: String) {
        self.role = role
        self.token = token
    }

    /// The role and the length, never the secret.
    public var description: String { "\(role.rawValue) token of \(token.utf8.count) characters" }

    /// Checks that the secret is long enough and made of printable ASCII characters other than space.
    /// - Throws: ``LoglineServer/ConfigurationError`` saying what is wrong, without the secret.
    public func validate() throws(LoglineServer.ConfigurationError) {
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw LoglineServer.ConfigurationError(
                "a token must be printable ASCII characters without spaces")
        }
        guard token.utf8.count >= Self.minimumLength else {
            throw LoglineServer.ConfigurationError(
                "a token must be at least \(Self.minimumLength) characters, this one has \(token.utf8.count)")
        }
    }

    /// Parses a token file: one token a line, as `<role> <token>`, where the role is `read-write` or
    /// `read-only`; a line with only a token grants `read-write`. Blank lines and lines that start with `#` are
    /// ignored.
    ///
    /// ```
    /// # producers
    /// read-write 3f9c1d7e0b5a4c2e8f6a9d1b7c3e5f0a
    /// # dashboards and consumers
    /// read-only  b8e2f4a6c0d1e3f5a7b9c1d3e5f7a9b1
    /// ```
    /// - Parameter contents: The file's text.
    /// - Returns: The tokens, in file order; never empty.
    /// - Throws: ``LoglineServer/ConfigurationError`` for a file with no tokens, a line with an unknown role or
    ///   more than two words, a token shorter than ``minimumLength`` or not printable ASCII, or a token given
    ///   twice. The message names the line, never the secret.
    public static func parseFile(contents: String) throws(LoglineServer.ConfigurationError) -> [AccessToken] {
        var tokens: [AccessToken] = []
        var lineNumbers: [String: Int] = [:]
        for (index, line) in contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .enumerated()
        {
            let number = index + 1
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first, !first.hasPrefix("#") else { continue }
            let token: AccessToken
            switch words.count {
            case 1:
                token = AccessToken(role: .readWrite, token: String(first))
            case 2:
                guard let role = Role(rawValue: String(first)) else {
                    throw LoglineServer.ConfigurationError(
                        "line \(number): unknown role '\(first.prefix(32))'; use read-write or read-only")
                }
                token = AccessToken(role: role, token: String(words[1]))
            default:
                throw LoglineServer.ConfigurationError(
                    "line \(number): expected '<role> <token>', found \(words.count) words")
            }
            do {
                try token.validate()
            } catch {
                throw LoglineServer.ConfigurationError("line \(number): \(error.message)")
            }
            if let previous = lineNumbers[token.token] {
                throw LoglineServer.ConfigurationError("line \(number): the same token as line \(previous)")
            }
            lineNumbers[token.token] = number
            tokens.append(token)
        }
        guard !tokens.isEmpty else {
            throw LoglineServer.ConfigurationError(
                "no tokens: write one '<role> <token>' a line (role: read-write or read-only)")
        }
        return tokens
    }
}

/// Comparisons whose duration does not depend on the bytes compared.
public enum ConstantTime {
    /// Whether two byte strings are equal, in a time that depends on their lengths only.
    ///
    /// Every byte position up to the longer length is compared, the shorter string reading as zeros past its
    /// end; the differences are accumulated with XOR and OR, the length difference included, and there is no
    /// early exit, so the time says nothing about where, or whether, the strings differ.
    /// - Parameters:
    ///   - lhs: One byte string.
    ///   - rhs: The other.
    /// - Returns: `true` when both have the same length and the same bytes.
    @inline(never)
    public static func equals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        let length = max(lhs.count, rhs.count)
        var difference = UInt64(truncatingIfNeeded: lhs.count ^ rhs.count)
        lhs.withUnsafeBufferPointer { left in
            rhs.withUnsafeBufferPointer { right in
                for index in 0..<length {
                    let a = index < left.count ? left[index] : 0
                    let b = index < right.count ? right[index] : 0
                    difference |= UInt64(a ^ b)
                }
            }
        }
        return difference == 0
    }
}

/// The tokens a server accepts, as bytes, with the role each grants.
struct TokenTable: Sendable {
    private let entries: [(role: AccessToken.Role, bytes: [UInt8])]

    init(_ tokens: [AccessToken]) {
        entries = tokens.map { ($0.role, Array($0.token.utf8)) }
    }

    /// Whether connections must authenticate.
    var isEnabled: Bool { !entries.isEmpty }

    /// The role granted by a presented token, or `nil`. The token is compared with every configured token, each
    /// in constant time, so the time depends on neither which token matched nor how much of one did.
    func role(for presented: [UInt8]) -> AccessToken.Role? {
        var granted: AccessToken.Role?
        for entry in entries where ConstantTime.equals(entry.bytes, presented) {
            granted = entry.role
        }
        return granted
    }
}

extension LoglineServer {
    /// A configuration the server refuses to run with: a bad token file, a bad token, or a non-loopback address
    /// without tokens.
    public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong, in one line; never a secret.
        public let message: String

        /// Creates an error.
        /// - Parameter message: What is wrong.
        public init(_ message: String) {
            self.message = message
        }

        /// The message.
        public var description: String { message }
    }
}

extension LoglineServer.Configuration {
    /// Whether `host` is a loopback address, reachable from this machine only: `localhost`, an IPv4 address in
    /// 127.0.0.0/8, `::1`, or an IPv4-mapped IPv6 address in 127.0.0.0/8. Host names other than `localhost` are
    /// not resolved, and count as not loopback.
    /// - Parameter host: An address as given to `--host`.
    /// - Returns: `true` for a loopback address.
    public static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        guard let address = try? SocketAddress(ipAddress: host, port: 0), let text = address.ipAddress else {
            return false
        }
        switch address {
        case .v4: return text.hasPrefix("127.")
        case .v6: return text == "::1" || text.lowercased().hasPrefix("::ffff:127.")
        case .unixDomainSocket: return false
        }
    }

    /// The smallest ``maximumRequestBytes`` accepted: below it, ordinary requests would not fit.
    public static let minimumRequestBytes = 1024

    /// Checks that the server may run with this configuration: every limit is in range, every token is valid and
    /// given once, and the server listens on a loopback address unless it has tokens or ``insecure`` is set.
    /// - Throws: ``LoglineServer/ConfigurationError`` saying what is wrong.
    public func validate() throws(LoglineServer.ConfigurationError) {
        guard maximumRequestBytes >= Self.minimumRequestBytes else {
            throw LoglineServer.ConfigurationError(
                "--max-request-bytes must be at least \(Self.minimumRequestBytes), not \(maximumRequestBytes)")
        }
        guard maximumPipelinedRequests >= 1 else {
            throw LoglineServer.ConfigurationError(
                "--max-pipelined must be at least 1, not \(maximumPipelinedRequests)")
        }
        guard maximumConnections >= 1 else {
            throw LoglineServer.ConfigurationError(
                "--max-connections must be at least 1, not \(maximumConnections)")
        }
        if let idleTimeout, idleTimeout <= .zero {
            throw LoglineServer.ConfigurationError("--idle-timeout must be positive (0 on the command line: none)")
        }
        var seen = Set<String>()
        for token in tokens {
            try token.validate()
            guard seen.insert(token.token).inserted else {
                throw LoglineServer.ConfigurationError("a token is given twice")
            }
        }
        if tokens.isEmpty && !insecure && !Self.isLoopback(host) {
            throw LoglineServer.ConfigurationError(
                "refusing to listen on \(host) without authentication: give --auth-token-file FILE, or --insecure "
                    + "to let anyone who can reach the port read and write")
        }
    }
}
