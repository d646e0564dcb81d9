import Connectors
import Foundation
import Logging
import Retrying
import ServiceLifecycle

/// The orchestrator's services for one `ServiceGroup`: the consumer, the outbox relay, the timer
/// loop, the pass that deletes outbox rows published long ago, and (with a port) the Prometheus
/// endpoint.
///
/// A graceful shutdown (SIGTERM, SIGINT) cancels each loop; the consumer's batch in flight finishes
/// its store transaction and offset commit first (``OrchestratorEngine/runConsumer(maxRecords:)``),
/// and whatever the relay had not published yet stays in the outbox for the next start. An error
/// retrying cannot get past (``ErrorDisposition/fatal``: the bus closed or broken, the store
/// damaged) ends the service that met it with a ``FatalFailure``, which ends the group with it;
/// `orchestrator run` then logs one critical line and exits 75 for a supervisor to restart it,
/// as `connector run` does.
public enum OrchestratorServices {
    /// The services of one orchestrator process.
    /// - Parameters:
    ///   - metricsPort: serve `GET /metrics` on `127.0.0.1:PORT`; `nil`: no endpoint.
    ///   - keepPublished: how long published outbox rows stay in the store before a pass deletes
    ///     them (``OutboxStore/prunePublished(keeping:now:chunk:)``); `nil`: for ever.
    /// - Throws: when the metrics endpoint cannot be made.
    public static func make(
        _ engine: OrchestratorEngine, metricsPort: Int?,
        keepPublished: Duration? = OutboxRetention.defaultKeep
    ) throws -> [any Service] {
        var services: [any Service] = [
            Loop(name: "orchestrator consumer") { try await engine.runConsumer() },
            Loop(name: "orchestrator relay") { try await engine.runRelay() },
            Loop(name: "orchestrator timers") { try await engine.runTimers() },
        ]
        if let keepPublished {
            services.append(
                Loop(name: "orchestrator outbox pruning") {
                    try await pruneOutboxUntilCancelled(
                        engine.store, keeping: keepPublished, service: "orchestrator", logger: engine.logger)
                })
        }
        if let metricsPort {
            // Hummingbird's application as a service of the group: it stops gracefully with it.
            services.append(try ConnectorMetrics.service(on: "127.0.0.1:\(metricsPort)", logger: engine.logger))
        }
        return services
    }

    /// Bootstraps swift-metrics with the Prometheus registry (once per process) before the engine's
    /// counters are created.
    public static func bootstrapMetrics() { ConnectorMetrics.bootstrap() }

    /// A loop as a service that a graceful shutdown cancels (the citizen services' loops too).
    public struct Loop: Service, CustomStringConvertible {
        let name: String
        let body: @Sendable () async throws -> Void

        public init(name: String, body: @escaping @Sendable () async throws -> Void) {
            self.name = name
            self.body = body
        }

        public var description: String { name }

        /// - Throws: a ``FatalFailure`` naming this loop; never `CancellationError` (a stop is not
        ///   a failure, even one that came while an operation was failing).
        public func run() async throws {
            do {
                try await cancelWhenGracefulShutdown { try await body() }
            } catch is CancellationError {
                return
            } catch let failure as FatalFailure {
                throw failure
            } catch {
                throw FatalFailure(part: name, action: "", underlying: error)
            }
        }
    }
}
