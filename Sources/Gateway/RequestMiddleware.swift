import AccessControl
import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime

/// What the middleware learnt of the request, for the handlers.
enum RequestScope {
    /// The API key of `Authorization: Bearer KEY` (`nil`: no such header).
    @TaskLocal static var apiKey: String?
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
        let result: (HTTPResponse, HTTPBody?)
        do {
            result = try await RequestScope.$apiKey.withValue(key) { try await next(request, body, metadata) }
        } catch let error as ServerError where error.operationInput == nil && error.httpStatus.code < 500 {
            result = await undecodable(error, key: key, operationID: operationID)
        } catch {
            logger.error("gateway: \(operationID) failed: \(error)")
            result = Self.json(
                500, Components.Schemas.Refusal(code: "internal", reason: "the gateway failed: \(error); please report it"))
        }
        metrics.request(operation: operationID, status: result.0.status.code, duration: ContinuousClock.now - started)
        return result
    }

    /// A request the generated code could not decode: 401 when the key is refused, else 400.
    private func undecodable(_ error: ServerError, key: String?, operationID: String) async -> (HTTPResponse, HTTPBody?) {
        if case .refused(let refusal) = await access.decide(
            apiKey: key, action: .submitApplication(workflow: "", applicant: "")), refusal.status == .unauthenticated
        {
            metrics.refusal(operation: operationID, code: refusal.code)
            return Self.json(401, Components.Schemas.Refusal(code: refusal.code, reason: refusal.reason))
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
