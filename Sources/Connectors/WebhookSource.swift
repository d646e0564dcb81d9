import Bus
import EventModel
import EventSchemas
import Foundation
import Hummingbird
import NIOCore
import Retrying
import ServiceLifecycle

/// An HTTP endpoint the department POSTs JSON to: `202 Accepted` with where the event landed, or
/// `400 Bad Request` with the validation errors (the body then also goes to the dead-letter topic);
/// `503` with `Retry-After` while the bus is unreachable (nothing was taken: the department retries).
///
/// The event id is the request's `ce-id` header (CloudEvents HTTP binding) or `Idempotency-Key`,
/// so a department that retries a POST does not make a second event. Without either, the id is
/// `<department>/webhook<path>/<fingerprint of the body>`: a retried POST of the same bytes gets the
/// same id too — and so do two distinct POSTs of identical bytes, which a department must tell
/// apart with a key when identical bodies can be distinct facts.
struct WebhookSource: Sendable {
    let configuration: WebhookSourceConfiguration
    let context: ConnectorContext

    var id: String { "webhook:\(configuration.path)" }

    /// The HTTP server as a `Service` of the connector's group. Hummingbird's `Application` is a
    /// service itself: run directly in the group it stops gracefully on SIGTERM (requests in flight
    /// are answered, then the channel closes once). It must not also be cancelled on graceful
    /// shutdown — closing the channel twice is what logged "Server shutdown error: Already closed".
    ///
    /// A request that finds the bus closed or broken (``ErrorDisposition/fatal``) is answered `503`
    /// and stops the connector, so that a supervisor restarts it.
    func service() throws -> ConnectorPart {
        let parts = configuration.listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else {
            throw ConnectorConfigurationError(
                file: context.configuration.file, location: "sources: \(id)",
                problem: "listen '\(configuration.listen)' is not HOST:PORT")
        }
        let host = String(parts[0])
        let (failures, failed) = AsyncStream.makeStream(of: ConnectorFailure.self, bufferingPolicy: .bufferingNewest(1))
        let router = Router()
        let handler = self
        router.post(RouterPath(stringLiteral: configuration.path)) { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            return await handler.accept(Data(buffer: body), headers: request.headers, failed: failed)
        }
        router.get("/health") { _, _ in "ok" }
        let logger = context.logger
        let id = self.id
        let path = configuration.path
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "onewindow-connector"),
            // Said once the port is bound, not before: a port another process holds fails the part
            // (below) instead of leaving a notice that it listens.
            onServerRunning: { _ in logger.notice("\(id): listening on http://\(host):\(port)\(path)") },
            logger: logger)
        return ConnectorPart(name: id) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // However the server ends, the wait for failures below ends with it: when the
                    // server failed to start (its port in use), that wait kept the part, and the
                    // connector, running deaf until it was stopped.
                    defer { failed.finish() }
                    do {
                        try await app.run()
                    } catch {
                        // Names the address: NIO's error ("bind(…): Address already in use") does not.
                        throw ConnectorFailure(part: id, action: "serving http://\(host):\(port)\(path)", underlying: error)
                    }
                }
                group.addTask {
                    for await failure in failures { throw failure }
                }
                try await group.waitForAll()
            }
        }
    }

    func accept(_ data: Data, headers: HTTPFields, failed: AsyncStream<ConnectorFailure>.Continuation? = nil) async
        -> Response
    {
        context.stats.read(1)
        func header(_ name: String) -> String? { headers.first { $0.name.canonicalName == name }?.value }
        let eventId =
            header("ce-id") ?? header("idempotency-key")
            ?? "\(context.configuration.department)/webhook\(configuration.path)/\(ContentFingerprint.hex(data))"
        let subject = header("ce-subject")
        var time = context.clock.now()
        if let text = header("ce-time"), let parsed = Timestamp.parse(text) { time = parsed }
        // A header the event is made of, given twice with different values, is ambiguous (which
        // id, which subject?): refused, naming it, rather than taking the first.
        let repeated = Self.envelopeHeaders.first { name in
            Set(headers.filter { $0.name.canonicalName == name }.map(\.value)).count > 1
        }
        func make(_ body: Data, refusal: ValidationFailure? = nil) -> Publication {
            Publication(
                event: Event(
                    id: eventId, type: configuration.type, source: context.configuration.eventSource, subject: subject,
                    time: time, data: body),
                topic: configuration.topic, refusal: refusal)
        }
        let publication: Publication
        if let repeated {
            let values = headers.filter { $0.name.canonicalName == repeated }.count
            publication = make(
                data,
                refusal: ValidationFailure(
                    .invalidEnvelope, "the request's headers are ambiguous",
                    violations: [
                        SchemaViolation(
                            pointer: repeated, keyword: "once",
                            message: "header \(repeated) is given \(values) times with different values; send it once")
                    ], eventType: configuration.type, eventId: eventId))
        } else {
            do {
                if let rules = configuration.mapping {
                    let document = try JSONValue.parse(data)
                    publication = make(
                        try BodyMapper(rules: rules).body(
                            column: { _ in .null }, path: { document[pointer: $0].map(MappedValue.init(json:)) ?? .null }
                        ).serialized())
                } else {
                    publication = make(data)
                }
            } catch {
                publication = make(
                    data,
                    refusal: ValidationFailure(
                        error is MappingError ? .mappingFailed : .invalidJSON, "\(error)", eventType: configuration.type,
                        eventId: eventId))
            }
        }
        // One try, no retries: the department retries the POST on a 503 (nothing was taken).
        let outcome: PublishOutcome
        do {
            outcome = try await context.publisher.publish([publication], deadLetter: true)[0]
            context.stats.count([outcome])
        } catch {
            switch ErrorDisposition.of(error) {
            case .deadLetter:
                do {
                    outcome = try await context.deadLetterTooLarge(publication, part: id, error: error)
                    context.stats.count([outcome])
                } catch {
                    return unavailable(error, failed: failed)
                }
            default:
                return unavailable(error, failed: failed)
            }
        }
        switch outcome {
        case .published(let position, let event):
            return json(
                .accepted,
                ["id": .string(event.id), "topic": .string(position.topic), "partition": .integer(Int64(position.partition)),
                 "offset": .integer(position.offset)])
        case .deadLettered(let position, let failure):
            context.logger.warning("\(id): refused \(eventId), dead-lettered to \(position): \(failure.reason)")
            var errors: [JSONValue] = failure.violations.map {
                .object(["pointer": .string($0.pointer), "keyword": .string($0.keyword), "message": .string($0.message)])
            }
            if errors.isEmpty { errors = [.object(["message": .string(failure.message)])] }
            return json(
                failure.code == .recordTooLarge ? .contentTooLarge : .badRequest,
                ["id": .string(eventId), "code": .string(failure.code.rawValue), "errors": .array(errors),
                 "deadLetter": .string(position.description)])
        }
    }

    /// The headers an event's attributes come from, each to be given once.
    static let envelopeHeaders = ["ce-id", "idempotency-key", "ce-subject", "ce-time"]

    /// `503` with `Retry-After`: the bus could not take the event. When it never will again (closed
    /// or broken), the connector is told to stop so that a supervisor restarts it.
    private func unavailable(_ error: any Error, failed: AsyncStream<ConnectorFailure>.Continuation?) -> Response {
        if ErrorDisposition.of(error) == .fatal {
            context.logger.error("\(id): the bus cannot take events any more, answering 503 and stopping: \(error)")
            failed?.yield(ConnectorFailure(part: id, action: "publishing a posted event", underlying: error))
        } else {
            context.logger.warning("\(id): the bus refused the append, answering 503: \(error)")
        }
        return json(
            .serviceUnavailable,
            ["error": .string("the bus is unreachable; retry later"), "detail": .string("\(error)")],
            retryAfter: true)
    }

    private func json(_ status: HTTPResponse.Status, _ object: JSONObject, retryAfter: Bool = false) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if retryAfter { headers[.retryAfter] = "5" }
        return Response(
            status: status, headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONValue.object(object).serialized())))
    }
}
