import AccessControl
import ArgumentParser
import Bus
import EventLog
import Foundation
import Gateway
import Logging
import ServiceLifecycle

/// `onewindow gateway`: the HTTP gateway (Sources/Gateway, its document Sources/Gateway/openapi.yaml).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Serve the HTTP gateway: the front desk, progress, subscriptions, who used my data, health, metrics.",
        discussion: """
            Serves the operations of Sources/Gateway/openapi.yaml on HOST:PORT: POST /applications \
            (一窗受理), GET /applications/{id}, GET /residents/{subject}/data-usage, \
            GET /subscriptions/{group}/events (SSE) and /batch (long poll, with POST .../commit), /health (ready \
            when the bus answers), /health/live and Prometheus /metrics. Follows the application \
            topics and application.progress.updated into its own store (--store), every \
            partition, so several gateways can run side by side. Every operation but health and \
            metrics takes an API key (Authorization: Bearer KEY). Stops cleanly on SIGTERM or \
            SIGINT; exits 75 when the bus fails for good.
            Examples:
              onewindow gateway --port 8080
              onewindow gateway --bus kafka:localhost:9092 --host 0.0.0.0 --port 8080
              curl -s http://127.0.0.1:8080/health
            """)
    @OptionGroup var options: BusOptions
    @Option(help: "The address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "The port to listen on (0: a free one, logged).") var port: Int = 8080
    @Option(help: "The gateway's own store (SQLite): the applications and progress it has read.")
    var store: String = "var/gateway.sqlite"
    @OptionGroup var view: ViewOption
    @Option(help: "The key store of onewindow grants (SQLite; created empty when missing). Default: $ONEWINDOW_KEYS, else var/access.sqlite.")
    var keys: String?
    @OptionGroup var audit: AuditOptions
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port takes 0 to 65535, not \(port)") }
    }

    func run() async throws {
        _ = bootstrapLogging(logLevel)
        let logger = Logger(label: "onewindow.gateway")
        let catalog = try options.loadCatalog()
        let ruleBook = try loadRules(rules, catalog: catalog)
        let log = try options.openLog(create: true, kafkaLogLevel: max(Logger.Level(rawValue: logLevel) ?? .info, .warning))
        let gateway = try Gateway(
            log: log, catalog: catalog, rules: ruleBook, storePath: store, viewPath: view.view,
            access: try gatewayAccessPolicy(keys: keys, audit: audit), bus: "\(try options.address())", logger: logger)
        try await runServiceGroup(try gateway.services(host: host, port: port), log: log, logger: logger, name: "gateway")
    }
}

/// The access policy the gateway asks: the keys and grants of `onewindow grants` (the key store is
/// created empty when missing, so a gateway started before any key answers 401 to everything but
/// health and metrics), every refusal appended to the audit log.
func gatewayAccessPolicy(keys: String?, audit: AuditOptions) throws -> any AccessDeciding {
    AccessPolicy(keys: try KeyStore(path: KeyStoreOption.path(keys)), audit: try audit.openForAppending())
}
