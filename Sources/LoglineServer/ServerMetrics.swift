import LoglineCore
import LoglineProtocol
import Metrics

/// The server's metrics: connections, requests by verb, error replies by code, reads, live tails, and
/// authentication and TLS failures. Every handle is made once, when the server is created, so recording one
/// is an atomic addition: no lookup by name, no lock.
///
/// Appends are not counted here, once per request, but by the log, once per group commit
/// (`logline_append_requests_total`). Names and meanings are listed in README (Operations, Metrics).
final class ServerMetrics: Sendable {
    /// Open connections now.
    let connections: Meter
    /// Connections accepted since the start.
    let connectionsTotal: Counter
    /// Connections the server closed: over the limit, idle, after failed authentication, lagging subscribers.
    let closedOverLimit: Counter
    let closedIdle: Counter
    let closedAfterFailedAuthentication: Counter
    let closedLagging: Counter
    /// Live tails now.
    let subscriptions: Meter
    /// Failed `AUTH` requests.
    let authenticationFailures: Counter
    /// Failed TLS handshakes.
    let tlsHandshakeFailures: Counter
    /// Events sent in replies to `READ` and `READALL`.
    let readEvents: Counter
    /// Requests by verb, in the order of ``Verb``.
    private let requests: [Counter]
    /// Error replies by code; codes not listed count as `OTHER`.
    private let errors: [String: Counter]
    private let otherErrors: Counter

    /// The verbs counted by `logline_requests_total`: every request but `APPEND` and `APPENDMANY`.
    enum Verb: Int, CaseIterable {
        case ping, read, readAll, info, quit, auth, submit, get, query, views, projections, rebuild, parked, retry
        case skip, subscribe, unsubscribe, groupCreate, groupDelete, groups, fetch, ack, nack, pending, dead, backup
        case redis

        /// The verb as it appears on the wire (`REDIS` for the housekeeping verbs of Redis tools).
        var label: String {
            switch self {
            case .ping: return "PING"
            case .read: return "READ"
            case .readAll: return "READALL"
            case .info: return "INFO"
            case .quit: return "QUIT"
            case .auth: return "AUTH"
            case .submit: return "SUBMIT"
            case .get: return "GET"
            case .query: return "QUERY"
            case .views: return "VIEWS"
            case .projections: return "PROJECTIONS"
            case .rebuild: return "REBUILD"
            case .parked: return "PARKED"
            case .retry: return "RETRY"
            case .skip: return "SKIP"
            case .subscribe: return "SUBSCRIBE"
            case .unsubscribe: return "UNSUBSCRIBE"
            case .groupCreate: return "GROUP CREATE"
            case .groupDelete: return "GROUP DELETE"
            case .groups: return "GROUPS"
            case .fetch: return "FETCH"
            case .ack: return "ACK"
            case .nack: return "NACK"
            case .pending: return "PENDING"
            case .dead: return "DEAD"
            case .backup: return "BACKUP"
            case .redis: return "REDIS"
            }
        }

        /// The verb of a request; `nil` for appends.
        init?(_ request: Request) {
            switch request {
            case .append, .appendMany: return nil
            case .ping: self = .ping
            case .read: self = .read
            case .readAll: self = .readAll
            case .info: self = .info
            case .quit: self = .quit
            case .auth: self = .auth
            case .submit: self = .submit
            case .get: self = .get
            case .query: self = .query
            case .views: self = .views
            case .projections: self = .projections
            case .rebuild: self = .rebuild
            case .parked: self = .parked
            case .retry: self = .retry
            case .skip: self = .skip
            case .subscribe: self = .subscribe
            case .unsubscribe: self = .unsubscribe
            case .groupCreate: self = .groupCreate
            case .groupDelete: self = .groupDelete
            case .groups: self = .groups
            case .fetch: self = .fetch
            case .ack: self = .ack
            case .nack: self = .nack
            case .pending: self = .pending
            case .dead: self = .dead
            case .backup: self = .backup
            case .redisCompatibility: self = .redis
            }
        }
    }

    init(factory: any MetricsFactory) {
        connections = Meter(label: "logline_connections", factory: factory)
        connectionsTotal = Counter(label: "logline_connections_total", factory: factory)
        func closed(_ reason: String) -> Counter {
            Counter(
                label: "logline_connections_closed_by_server_total", dimensions: [("reason", reason)], factory: factory)
        }
        closedOverLimit = closed("limit")
        closedIdle = closed("idle")
        closedAfterFailedAuthentication = closed("auth")
        closedLagging = closed("lagging")
        subscriptions = Meter(label: "logline_subscriptions", factory: factory)
        authenticationFailures = Counter(label: "logline_auth_failures_total", factory: factory)
        tlsHandshakeFailures = Counter(label: "logline_tls_handshake_failures_total", factory: factory)
        readEvents = Counter(label: "logline_read_events_total", factory: factory)
        requests = Verb.allCases.map {
            Counter(label: "logline_requests_total", dimensions: [("verb", $0.label)], factory: factory)
        }
        let codes: [ErrorCode] = [
            .badRequest, .badJSON, .conflict, .notFound, .tooLarge, .noAuth, .internal, .timeout, .rejected,
            .unavailable, ConnectionHandler.noPermission, ConnectionHandler.lagging,
        ]
        errors = Dictionary(
            uniqueKeysWithValues: codes.map {
                (
                    $0.rawValue,
                    Counter(label: "logline_error_replies_total", dimensions: [("code", $0.rawValue)], factory: factory)
                )
            })
        otherErrors = Counter(label: "logline_error_replies_total", dimensions: [("code", "OTHER")], factory: factory)
    }

    /// Counts a request that is about to run; appends are left to the log.
    func count(_ request: Request) {
        guard let verb = Verb(request) else { return }
        requests[verb.rawValue].increment()
    }

    /// Counts an error reply.
    func countError(_ code: ErrorCode) {
        (errors[code.rawValue] ?? otherErrors).increment()
    }
}
