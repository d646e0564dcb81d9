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
///
/// The front desk's usual request (`POST /applications` with an `application/json` body of the
/// submission's shape, an answer in JSON accepted) is answered here from the body's bytes,
/// through ``GatewayAPI/submit(_:)``, without the generated decoding: that decoding built a
/// container of the free-form application only for the front desk to parse the bytes again (a
/// sixth of the time of a submission). The route, its operation id and its answers are still the
/// document's; any other request of the operation (not JSON, not the shape, another content type
/// or `Accept`) goes through the generated code, which says what is wrong as before.
struct RequestMiddleware: ServerMiddleware {
    let access: any AccessDeciding
    let metrics: GatewayMetrics
    let logger: Logger
    /// The front desk, for the requests answered from their bytes (`nil`: every request goes
    /// through the generated code).
    let frontDesk: (@Sendable (FrontDesk.Submission) async -> Operations.SubmitApplication.Output)?

    /// The largest request body read (an application with its materials' names is a few kB).
    static let largestBody = 4 * 1_048_576

    static func bearerKey(_ request: HTTPRequest) -> String? {
        guard let value = request.headerFields[.authorization] else { return nil }
        // On the bytes: Foundation's lowercasing and trimming were a percent of every request.
        let bytes = Array(value.utf8)
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let schemeStart = bytes.firstIndex(where: { !isBlank($0) }) else { return nil }
        let scheme = Array("bearer".utf8)
        let schemeEnd = schemeStart + scheme.count
        guard schemeEnd < bytes.count, bytes[schemeEnd] == UInt8(ascii: " "),
            zip(bytes[schemeStart..<schemeEnd], scheme).allSatisfy({ $0 | 0x20 == $1 })
        else { return nil }
        guard let keyStart = bytes[schemeEnd...].firstIndex(where: { !isBlank($0) }),
            let keyEnd = bytes.lastIndex(where: { !isBlank($0) })
        else { return nil }
        return String(decoding: bytes[keyStart...keyEnd], as: UTF8.self)
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
            if operationID == Operations.SubmitApplication.id, let frontDesk, let bytes, Self.answersJSON(request),
                let submission = FrontDesk.Submission(json: bytes)
            {
                let output = await RequestScope.$apiKey.withValue(key) { await frontDesk(submission) }
                result = Self.response(output)
            } else {
                result = try await RequestScope.$apiKey.withValue(key) {
                    try await RequestScope.$body.withValue(bytes) { [body] in try await next(request, body, metadata) }
                }
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

    /// Whether the request's body is `application/json` and its `Accept` (when given) takes
    /// `application/json`: what the generated code would accept without a word.
    static func answersJSON(_ request: HTTPRequest) -> Bool {
        guard let contentType = request.headerFields[.contentType],
            let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first,
            Self.isMediaType(mediaType, oneOf: ["application/json"])
        else { return false }
        guard let accept = request.headerFields[.accept] else { return true }
        // Media ranges with parameters (`q=`) are left to the generated code.
        return accept.split(separator: ",").contains { range in
            Self.isMediaType(range, oneOf: ["application/json", "application/*", "*/*"])
        }
    }

    /// Whether `text`, without the spaces and tabs around it, is one of `names` (lower-case), compared
    /// without regard to ASCII case: a header's media type, read at every submission without
    /// Foundation's trimming and lower-casing, which cost more than the rest of the check.
    static func isMediaType(_ text: Substring, oneOf names: [StaticString]) -> Bool {
        var utf8 = text.utf8[...]
        while let first = utf8.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { utf8 = utf8.dropFirst() }
        while let last = utf8.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { utf8 = utf8.dropLast() }
        return names.contains { name in
            name.withUTF8Buffer { expected in
                expected.count == utf8.count
                    && zip(expected, utf8).allSatisfy { wanted, byte in
                        wanted == (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte)
                    }
            }
        }
    }

    /// The submission's answer as the generated code would serialize it.
    static func response(_ output: Operations.SubmitApplication.Output) -> (HTTPResponse, HTTPBody?) {
        switch output {
        case .accepted(let accepted):
            switch accepted.body {
            case .json(let body):
                // Built as JSON text directly: the answer the front desk gives most, at every submission.
                let text = JSONValue.object([
                    "applicationId": .string(body.applicationId), "workflow": .string(body.workflow),
                    "eventId": .string(body.eventId), "topic": .string(body.topic),
                    "partition": .integer(Int64(body.partition)), "offset": .integer(body.offset),
                ]).serialized()
                return (
                    HTTPResponse(status: .accepted, headerFields: [.contentType: "application/json; charset=utf-8"]),
                    HTTPBody(text)
                )
            }
        case .badRequest(let answer):
            switch answer.body { case .json(let body): return json(400, body) }
        case .unauthorized(let answer):
            switch answer.body { case .json(let body): return json(401, body) }
        case .forbidden(let answer):
            switch answer.body { case .json(let body): return json(403, body) }
        case .unprocessableContent(let answer):
            switch answer.body { case .json(let body): return json(422, body) }
        case .serviceUnavailable(let answer):
            switch answer.body { case .json(let body): return json(503, body) }
        case .undocumented(let status, let payload):
            return (HTTPResponse(status: .init(code: status), headerFields: payload.headerFields), payload.body)
        }
    }

    static func json<T: Encodable>(_ status: Int, _ body: T) -> (HTTPResponse, HTTPBody?) {
        let data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        return (
            HTTPResponse(status: .init(code: status), headerFields: [.contentType: "application/json; charset=utf-8"]),
            HTTPBody(data)
        )
    }
}
