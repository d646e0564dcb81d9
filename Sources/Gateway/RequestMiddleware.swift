import AccessControl
import EventSchemas
import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime

/// What the middleware learnt of the request, for the handlers.
enum RequestScope {
    /// The API key of `Authorization: Bearer KEY` (`nil`: no such header).
    @TaskLocal static var apiKey: String?
    /// The request body as it came, for the front desk: the application is validated from its
    /// own bytes, as `onewindow apply` validates a file (decoded and encoded again, `120.0` would
    /// reach the bus as `120`).
    @TaskLocal static var body: Data?
}

/// Runs around every operation: takes the API key from `Authorization: Bearer KEY` into
/// ``RequestScope/apiKey``, times the request into the latency histogram, and answers what the
/// generated code could not decode (not JSON, not the request's shape, another content type) as
/// a 400 with an ``Components/Schemas/Invalid`` body, after a 401 when the key is refused: the
/// key is checked before the body on every route.
struct RequestMiddleware: ServerMiddleware {
    let access: any AccessDeciding
    let metrics: GatewayMetrics
    let logger: Logger

    /// The largest request body read (an application with its materials' names is a few kB).
    static let largestBody = 4 * 1_048_576

    static func bearerKey(_ request: HTTPRequest) -> String? {
        guard let value = request.headerFields[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let started = ContinuousClock.now
        let key = Self.bearerKey(request)
        var bytes: Data? = nil
        var body = body
        if let given = body, request.method == .post {
            do {
                let collected = try await Data(collecting: given, upTo: Self.largestBody)
                bytes = collected
                body = HTTPBody(collected)
            } catch {
                if let refused = await keyRefused(key, operationID: operationID) { return refused }
                let answer = Self.json(
                    400,
                    Components.Schemas.Invalid(
                        code: .badRequest, reason: "the body could not be read whole (at most \(Self.largestBody / 1_048_576) MiB): \(error)",
                        violations: [Components.Schemas.Violation(pointer: "", rule: "size", message: "\(error)")]))
                metrics.request(operation: operationID, status: 400, duration: ContinuousClock.now - started)
                return answer
            }
        }
        let result: (HTTPResponse, HTTPBody?)
        do {
            result = try await RequestScope.$apiKey.withValue(key) {
                try await RequestScope.$body.withValue(bytes) { [body] in try await next(request, body, metadata) }
            }
        } catch let error as ServerError where error.operationInput == nil && error.httpStatus.code < 500 {
            result = await undecodable(error, key: key, operationID: operationID, body: bytes)
        } catch {
            logger.error("gateway: \(operationID) failed: \(error)")
            result = Self.json(
                500, Components.Schemas.Refusal(code: "internal", reason: "the gateway failed: \(error); please report it"))
        }
        metrics.request(operation: operationID, status: result.0.status.code, duration: ContinuousClock.now - started)
        return result
    }

    /// The 401 for a request whose body cannot be read or decoded, when the key is refused: the
    /// key is checked before the body.
    private func keyRefused(_ key: String?, operationID: String) async -> (HTTPResponse, HTTPBody?)? {
        guard
            case .refused(let refusal) = await access.authenticate(apiKey: key)
        else { return nil }
        metrics.refusal(operation: operationID, code: refusal.code)
        return Self.json(401, Components.Schemas.Refusal(code: refusal.code, reason: refusal.reason))
    }

    /// A request the generated code could not decode: 401 when the key is refused, else 400.
    /// A body the hub's own reader refuses is answered with its pointer and rule (where the
    /// generated decoder only says it failed).
    private func undecodable(_ error: ServerError, key: String?, operationID: String, body: Data?) async
        -> (HTTPResponse, HTTPBody?)
    {
        if let refused = await keyRefused(key, operationID: operationID) { return refused }
        if let body {
            do { _ = try JSONValue.parse(body) } catch let error as JSONParseError {
                return Self.json(400, GatewayAPI.notJSON(error))
            } catch {}
        }
        let why = "\(error.underlyingError)"
        let notJSON = error.underlyingError is DecodingError && why.contains("JSON")
        return Self.json(
            400,
            Components.Schemas.Invalid(
                code: notJSON ? .notJson : .badRequest,
                reason: notJSON
                    ? "the body is not JSON: send a JSON object {\"workflow\": …, \"application\": {…}} as application/json"
                    : "the request is not what \(operationID) takes: \(error.causeDescription)",
                violations: [
                    Components.Schemas.Violation(
                        pointer: "", rule: notJSON ? "json" : "request",
                        message: String(why.prefix(500)))
                ]))
    }

    static func json<T: Encodable>(_ status: Int, _ body: T) -> (HTTPResponse, HTTPBody?) {
        let data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        return (
            HTTPResponse(status: .init(code: status), headerFields: [.contentType: "application/json; charset=utf-8"]),
            HTTPBody(data)
        )
    }
}
