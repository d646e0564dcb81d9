import AccessControl
import Bus
import CivilTime
import EventLog
import EventSchemas
import Foundation
import Hummingbird
import Logging
import NIOCore
import OpenAPIHummingbird
import OpenAPIRuntime
import Orchestrator
import OrchestratorService
import Retrying
import ServiceLifecycle
import SharedView
import Subscriptions
import Synchronization

/// The HTTP gateway (`onewindow gateway`): the front desk, progress, "who used my data", health
/// and metrics, served from the interface swift-openapi-generator made of `openapi.yaml`.
///
/// ```swift
/// let gateway = try Gateway(
///     log: log, catalog: catalog, rules: rules, storePath: "var/gateway.sqlite",
///     viewPath: "var/shared-view.sqlite", access: policy, bus: "embedded:var/onewindow.sqlite", logger: logger)
/// try await ServiceGroup(services: gateway.services(host: "127.0.0.1", port: 8080), logger: logger).run()
/// ```
///
/// Its services: the HTTP server (Hummingbird, stopping gracefully with the group: open SSE
/// streams and long polls end at once, see ``HTTPServer``) and the loop
/// that follows the application and progress topics into the gateway's own store
/// (``ProgressStore``). See Sources/Gateway/README.md.
public struct Gateway: Sendable {
    let api: GatewayAPI
    let tracker: ProgressTracker
    let logger: Logger

    /// - Parameters:
    ///   - storePath: the gateway's own store (SQLite), made when missing.
    ///   - viewPath: the shared data view's store (`view run`), where "who used my data" is read;
    ///     opened when first needed, so the view may start after the gateway.
    ///   - access: who may do what; asked on every request but health and metrics.
    ///   - bus: the bus address, shown by `/health`.
    public init(
        log: any EventLog, catalog: TopicCatalog, rules: RuleBook, storePath: String, viewPath: String?,
        access: any AccessDeciding, bus: String, clock: any WallClock = SystemWallClock(), logger: Logger
    ) throws {
        let store = try ProgressStore(path: storePath)
        let retrier = Retrier(clock: clock, logger: logger)
        self.tracker = ProgressTracker(
            log: log, store: store, rules: rules, catalog: catalog, retrier: retrier, logger: logger)
        self.api = GatewayAPI(
            frontDesk: FrontDesk(publisher: Publisher(log: log, catalog: catalog, name: "onewindow gateway", clock: clock), rules: rules),
            store: store, view: ViewHandle(path: viewPath), access: access, metrics: GatewayMetrics(), log: log,
            bus: bus, deadLetterTopic: catalog.deadLetterTopic, clock: clock,
            subscriptions: SubscriptionHub(log: log, logger: logger))
        self.logger = logger
    }

    /// The gateway's services, for one `ServiceGroup`: the HTTP server on `host:port` (`0`: a free
    /// port, told to `onRunning`) and the progress loop.
    public func services(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> [any Service] {
        let router = Router()
        try api.registerHandlers(
            on: router, serverURL: URL(string: "/")!,
            middlewares: [
                RequestMiddleware(access: api.access, metrics: api.metrics, logger: logger, frontDesk: { [api] in await api.submit($0) })
            ])
        let logger = self.logger
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "onewindow-gateway"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.notice("gateway: serving http://\(host):\(bound) (OpenAPI document: Sources/Gateway/openapi.yaml)")
                await onRunning(bound)
            },
            logger: logger)
        let tracker = self.tracker
        return [
            OrchestratorServices.Loop(name: "gateway progress") { try await tracker.run() },
            HTTPServer(server: app, subscriptions: api.subscriptions),
        ]
    }

    /// Reads what is new on the application and progress topics now (tests; the service does it
    /// every 200 ms).
    public func catchUp() async throws { while try await tracker.readOnce() > 0 {} }
}

/// The HTTP server, which ends every open subscription on the group's graceful shutdown.
///
/// Hummingbird's graceful shutdown stops accepting connections and waits for the responses in
/// progress to finish; an SSE stream's response finishes only when its stream ends, which without
/// this would be at its next keep-alive write after the client left (up to 15 s) or never while
/// the client stays. Ending the subscriptions (``SubscriptionHub/endAll()``) makes each stream
/// end with a comment saying why: its client reconnects with `Last-Event-ID` (to another instance,
/// or this one restarted) and loses nothing; a long poll waiting answers at once with the cursor
/// it has.
struct HTTPServer: Service, CustomStringConvertible {
    let server: any Service
    let subscriptions: SubscriptionHub

    var description: String { "gateway http" }

    func run() async throws {
        let subscriptions = self.subscriptions
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: {
            subscriptions.endAll()
        }
    }
}

/// The shared data view's store, opened the first time it exists.
final class ViewHandle: Sendable {
    let path: String?
    private let opened = Mutex<SharedViewStore?>(nil)

    init(path: String?) { self.path = path }

    /// The view, or `nil` when no path was given or nothing is there yet.
    func store() throws -> SharedViewStore? {
        if let store = opened.withLock({ $0 }) { return store }
        guard let path, FileManager.default.fileExists(atPath: path) else { return nil }
        let store = try SharedViewStore.openExisting(path: path)
        opened.withLock { $0 = store }
        return store
    }
}
