import AccessControl
import Audit
import CivilTime
import EmbeddedLog
import EventLog
import EventSchemas
import Foundation
import Gateway
import Logging
import Orchestrator
import OrchestratorService
import ServiceLifecycle
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The repository's catalog, calendar and rules, loaded once.
enum Repo {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")
    static let calendar: WorkingDayCalendar = try! WorkingDayCalendar.load(
        from: rulesDirectory.appendingPathComponent("calendar.yaml"))
    static let rules: RuleBook = try! RuleBook.load(directory: rulesDirectory, catalog: catalog)
    static let document = repositoryRoot.appendingPathComponent("Sources/Gateway/openapi.yaml")
}

/// The real key store and policy of Sources/AccessControl (what `onewindow gateway` runs), in the
/// rig's folder, with a key issued for each of the tests' principals. Tests name keys by short
/// names (`desk-key`), swapped for the issued keys before the policy decides; any other text is
/// presented as it is (an unknown key).
struct IssuedKeys: AccessDeciding {
    let policy: AccessPolicy
    let keys: [String: String]
    let audit: AuditLog

    func decide(apiKey: String?, action: AccessAction) async -> AccessDecision {
        await policy.decide(apiKey: apiKey.map { keys[$0] ?? $0 }, action: action)
    }

    func authenticate(apiKey: String?) async -> AccessDecision {
        await policy.authenticate(apiKey: apiKey.map { keys[$0] ?? $0 })
    }

    static let principals: [String: Principal] = [
        "desk-key": Principal(name: "front-desk", kind: .downstream, grants: [.submit(workflow: "*"), .progress]),
        "chen-key": Principal(name: "chen", kind: .applicant, subject: "440604199308220247"),
        "other-key": Principal(name: "li", kind: .applicant, subject: "440604198001011235"),
        "reader-key": Principal(name: "tax-datahub", kind: .downstream, grants: [.read(topics: "tax.*")]),
        "clerk-key": Principal(name: "clerk", kind: .downstream, grants: [.submit(workflow: "*"), .progress, .personalData]),
        "revoked-key": Principal(name: "former-desk", kind: .downstream, grants: [.submit(workflow: "*"), .progress]),
    ]

    /// Issues keys for `principals` (the tests' names for them → principals) into a new key store
    /// in `directory`, and revokes the keys of the principals named in `revoking`.
    static func issue(
        in directory: URL, principals: [String: Principal] = principals, revoking: [String] = ["former-desk"]
    ) async throws -> IssuedKeys {
        let store = try KeyStore(path: directory.appendingPathComponent("access.sqlite").path)
        let audit = try AuditLog(path: directory.appendingPathComponent("audit.sqlite").path)
        var keys: [String: String] = [:]
        for (name, principal) in principals {
            keys[name] = try await store.create(principal, audit: audit, actor: "test").apiKey
        }
        for name in revoking { try await store.revoke(name, audit: audit, actor: "test") }
        return IssuedKeys(policy: AccessPolicy(keys: store, audit: audit), keys: keys, audit: audit)
    }
}

/// A gateway on an embedded bus in a temporary folder, serving on a free port, with the test
/// policy; an orchestrator engine on the same bus that the test runs step by step.
final class GatewayRig: Sendable {
    let directory: URL
    let log: any EventLog
    let gateway: Gateway
    let clock: TestWallClock
    let port: Int
    private let task: Task<Void, any Error>
    private let group: ServiceGroup

    /// The access policy the gateway asks (``IssuedKeys`` unless a test gives its own).
    let access: any AccessDeciding

    init(access: (any AccessDeciding)? = nil, start: Date = CivilDate("2026-03-02")!.chinaTime(hour: 9, minute: 30))
        async throws
    {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-gateway-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        log = try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
        let policy: any AccessDeciding
        if let access { policy = access } else { policy = try await IssuedKeys.issue(in: directory) }
        self.access = policy
        _ = try await log.createTopics(Repo.catalog.topicSpecs)
        clock = TestWallClock(start)
        var logger = Logger(label: "gateway-test")
        logger.logLevel = .warning
        gateway = try Gateway(
            log: log, catalog: Repo.catalog, rules: Repo.rules,
            storePath: directory.appendingPathComponent("gateway.sqlite").path,
            viewPath: directory.appendingPathComponent("view.sqlite").path, access: policy,
            bus: "embedded:test", clock: clock, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        group = ServiceGroup(
            services: try gateway.services(host: "127.0.0.1", port: 0) { continuation.yield($0) }, logger: logger)
        let group = self.group
        task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw SupportError("the gateway did not start") }
        self.port = port
    }

    /// Stops the gateway (gracefully) and removes the folder.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await log.close()
        try? FileManager.default.removeItem(at: directory)
    }

    var viewPath: String { directory.appendingPathComponent("view.sqlite").path }

    /// One HTTP request to the gateway: its status, body and headers.
    func request(
        _ method: String, _ path: String, key: String? = nil, authorization: String? = nil, body: Data? = nil,
        contentType: String = "application/json"
    ) async throws -> (status: Int, body: Data, contentType: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let authorization = authorization ?? key.map({ "Bearer \($0)" }) {
            request.setValue(authorization, forHTTPHeaderField: "Authorization")
        }
        if let body {
            request.httpBody = body
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return (http.statusCode, data, http.value(forHTTPHeaderField: "Content-Type") ?? "")
    }

    /// A request whose answer is a JSON object.
    func json(_ method: String, _ path: String, key: String? = nil, body: JSONValue? = nil) async throws -> (
        status: Int, body: JSONValue
    ) {
        let answer = try await request(method, path, key: key, body: body?.serialized())
        return (answer.status, try JSONValue.parse(answer.body))
    }

    /// Runs the orchestrator over what is on the bus, as `orchestrator run` would: every input
    /// applied and committed, the outbox relayed.
    func runOrchestrator() async throws {
        let engine = try OrchestratorEngine(
            store: OrchestratorStore(path: directory.appendingPathComponent("orchestrator.sqlite").path),
            rules: Repo.rules, calendar: Repo.calendar, log: log, catalog: Repo.catalog, clock: clock)
        let consumer = try await log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        while true {
            let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(50))
            if records.isEmpty { break }
            _ = try await engine.process(records)
            try await consumer.commit(records)
        }
        await consumer.close()
        while try await engine.relayOnce() > 0 {}
    }
}

/// A submission of `application` for `workflow`.
func submission(_ workflow: String, _ application: JSONValue) -> JSONValue {
    .object(["workflow": .string(workflow), "application": application])
}

/// The pointers of an Invalid answer's violations.
func pointers(_ body: JSONValue) -> [String] {
    guard case .array(let items)? = body[pointer: "/violations"] else { return [] }
    return items.compactMap { $0[pointer: "/pointer"]?.stringValue }
}
