import AccessControl
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

/// A small but real access policy for the tests (the key store and policy of Sources/AccessControl
/// replace it in the command): keys mapped to principals, and the rules of Access.swift's grants.
struct KeyTable: AccessDeciding {
    var principals: [String: Principal]

    func decide(apiKey: String?, action: AccessAction) async -> AccessDecision {
        guard let apiKey else {
            return .refused(Refusal(status: .unauthenticated, code: "no-key", reason: "send Authorization: Bearer KEY"))
        }
        guard let principal = principals[apiKey] else {
            return .refused(Refusal(status: .unauthenticated, code: "unknown-key", reason: "no such key"))
        }
        let grants = principal.grants
        let allowed: Bool
        var code = "not-granted"
        switch action {
        case .submitApplication(let workflow, let applicant):
            allowed =
                grants.contains { if case .submit(let w) = $0 { w == "*" || w == workflow || workflow.isEmpty } else { false } }
                || (principal.kind == .applicant && (applicant.isEmpty || applicant == principal.subject))
        case .readApplication(let applicant):
            allowed = grants.contains(.progress) || (principal.kind == .applicant && applicant == principal.subject)
            if !allowed && principal.kind == .applicant { code = "not-own-application" }
        case .readDataUsage(let subject):
            allowed = grants.contains(.progress) || principal.subject == subject
        default:
            allowed = false
        }
        return allowed
            ? .allowed(principal)
            : .refused(Refusal(status: .forbidden, code: code, reason: "\(principal.name) may not \(action)"))
    }

    static let standard = KeyTable(principals: [
        "desk-key": Principal(name: "front-desk", kind: .operator, grants: [.submit(workflow: "*"), .progress]),
        "chen-key": Principal(name: "chen", kind: .applicant, subject: "440604199308220247"),
        "other-key": Principal(name: "li", kind: .applicant, subject: "440604198001011237"),
        "reader-key": Principal(name: "tax-datahub", kind: .downstream, grants: [.read(topics: "tax.*")]),
        "clerk-key": Principal(
            name: "clerk", kind: .operator, grants: [.submit(workflow: "*"), .progress, .personalData]),
    ])
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

    init(access: any AccessDeciding = KeyTable.standard, start: Date = CivilDate("2026-03-02")!.chinaTime(hour: 9, minute: 30))
        async throws
    {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-gateway-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        log = try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
        _ = try await log.createTopics(Repo.catalog.topicSpecs)
        clock = TestWallClock(start)
        var logger = Logger(label: "gateway-test")
        logger.logLevel = .warning
        gateway = try Gateway(
            log: log, catalog: Repo.catalog, rules: Repo.rules,
            storePath: directory.appendingPathComponent("gateway.sqlite").path,
            viewPath: directory.appendingPathComponent("view.sqlite").path, access: access,
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
