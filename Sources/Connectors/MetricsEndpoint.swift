import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// The connector process's metrics in the Prometheus text format: swift-metrics bootstrapped with a
/// Prometheus registry (once per process), and an HTTP endpoint serving it at `/metrics`.
///
/// ```sh
/// onewindow connector run Connectors/tax.yaml --metrics-port 9464
/// curl -s http://127.0.0.1:9464/metrics | grep onewindow_connector
/// ```
public enum ConnectorMetrics {
    private static let shared = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a Prometheus registry the first time it is called in a process;
    /// every call returns that registry. Metrics created before the first call go nowhere, so call it
    /// before creating a ``Connector``.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        shared.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: created))
            registry = created
            return created
        }
    }

    /// The registry's metrics as Prometheus text.
    public static func text() -> String {
        var buffer: [UInt8] = []
        bootstrap().emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Serves `GET /metrics` on `HOST:PORT` as a `Service` of the connector's group (Hummingbird's
    /// `Application`, which stops gracefully with the group — see ``WebhookSource/service()``).
    /// The orchestrator serves its metrics the same way.
    /// - Throws: ``ConnectorConfigurationError`` when `listen` is not HOST:PORT.
    public static func service(on listen: String, logger: Logger) throws -> any Service {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else {
            throw ConnectorConfigurationError(file: "", location: "metrics", problem: "'\(listen)' is not HOST:PORT")
        }
        let registry = bootstrap()
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: "onewindow-connector-metrics"),
            onServerRunning: { _ in logger.notice("metrics: serving Prometheus text at http://\(listen)/metrics") },
            logger: logger)
        return ConnectorPart(name: "metrics") {
            do {
                try await app.run()
            } catch {
                // Names the address: NIO's error ("bind(…): Address already in use") does not.
                throw ConnectorFailure(part: "metrics", action: "serving http://\(listen)/metrics", underlying: error)
            }
        }
    }
}
