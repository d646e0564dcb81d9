import Connectors
import Foundation
import Logging
import ServiceLifecycle

/// The services of `onewindow view run` for one `ServiceGroup`: the consumer and (with a port) the
/// Prometheus endpoint. A graceful shutdown (SIGTERM, SIGINT) cancels the consumer; the batch in
/// flight finishes its transaction and offset commit first.
public enum SharedViewServices {
    /// - Parameter metricsPort: serve `GET /metrics` on `127.0.0.1:PORT`; `nil`: no endpoint.
    /// - Throws: when the metrics endpoint cannot be made.
    public static func make(_ engine: SharedViewEngine, metricsPort: Int?) throws -> [any Service] {
        var services: [any Service] = [Consumer(engine: engine)]
        if let metricsPort {
            services.append(try ConnectorMetrics.service(on: "127.0.0.1:\(metricsPort)", logger: engine.logger))
        }
        return services
    }

    /// Bootstraps swift-metrics with the Prometheus registry (once per process) before the engine's
    /// counters are created.
    public static func bootstrapMetrics() { ConnectorMetrics.bootstrap() }

    struct Consumer: Service, CustomStringConvertible {
        let engine: SharedViewEngine
        var description: String { "shared view consumer" }
        func run() async throws {
            do {
                try await cancelWhenGracefulShutdown { try await engine.runConsumer() }
            } catch is CancellationError {
                return  // a stop, even one that came while an operation was failing, is not a failure
            }
        }
    }
}
