import AccessControl
import EventLog
import Foundation
import OpenAPIRuntime
import Subscriptions

/// The subscription operations (SSE, long poll, commit) over ``SubscriptionHub``; where resume
/// state lives and why a resume neither skips nor repeats: Sources/Subscriptions/README.md.
extension GatewayAPI {
    /// What a subscription request asks for, or the refusal to answer with.
    private enum Asked {
        case ok(principal: Principal, selection: TopicSelection, group: String)
        case refused(Refusal, status: Int)
    }

    /// The selection of `topics` or `pattern`, the principal allowed to read it, and the log's
    /// group (`gateway.<principal>.<group>`: one key cannot move another's bookmark).
    private func ask(_ operation: String, group: String, topics: String?, pattern: String?) async -> Asked {
        let selection: TopicSelection
        switch (topics.map { $0.split(separator: ",").map(String.init).filter { !$0.isEmpty } }, pattern) {
        case (let names?, nil) where !names.isEmpty: selection = .topics(names)
        case (nil, let pattern?) where !pattern.isEmpty: selection = .pattern(pattern)
        default:
            return .refused(
                Refusal(
                    status: .forbidden, code: "bad-request",
                    reason: "name what to read with either `topics` (comma-separated) or `pattern`, not both"),
                status: 400)
        }
        let names: [String]
        do {
            names = try await subscriptions.topics(of: selection).map(\.name)
        } catch let error as LogError where error.code == .unknownTopic {
            return .refused(Refusal(status: .forbidden, code: "not-found", reason: "\(error)"), status: 404)
        } catch {
            return .refused(
                Refusal(status: .forbidden, code: "unavailable", reason: "the bus did not answer (\(error)); try again later"),
                status: 503)
        }
        if names.isEmpty {
            // A pattern that matches no topic: nothing to read, and nothing to decide access on (an
            // empty subscription would be allowed vacuously and then wait or stream forever).
            if case .refused(let refusal) = await access.authenticate(apiKey: RequestScope.apiKey) {
                metrics.refusal(operation: operation, code: refusal.code)
                return .refused(refusal, status: refusal.status.rawValue)
            }
            return .refused(
                Refusal(
                    status: .forbidden, code: "not-found",
                    reason: "the pattern \(pattern ?? "") matches no topic on the bus; a subscription needs at least one (see `onewindow topics list`)"),
                status: 404)
        }
        switch await access.decide(apiKey: RequestScope.apiKey, action: .subscribe(topics: names)) {
        case .allowed(let principal):
            return .ok(principal: principal, selection: selection, group: "gateway.\(principal.name).\(group)")
        case .refused(let refusal):
            metrics.refusal(operation: operation, code: refusal.code)
            return .refused(refusal, status: refusal.status.rawValue)
        }
    }

    /// Asks for each topic that joins a pattern later (a refusal leaves it out).
    private func admit(_ apiKey: String?) -> @Sendable ([String]) async throws -> Void {
        let access = self.access
        return { topics in
            if case .refused(let refusal) = await access.decide(apiKey: apiKey, action: .subscribe(topics: topics)) {
                throw refusal
            }
        }
    }

    private static func body(_ refusal: Refusal) -> Components.Schemas.Refusal {
        Components.Schemas.Refusal(code: refusal.code, reason: refusal.reason)
    }

    /// The refusal of an error of opening, polling or committing, with its status.
    private static func failure(_ error: any Error) -> (Refusal, Int) {
        switch error {
        case let error as CursorError: (Refusal(status: .forbidden, code: "bad-cursor", reason: "\(error)"), 400)
        case let error as LogError where error.code == .unknownTopic:
            (Refusal(status: .forbidden, code: "not-found", reason: "\(error)"), 404)
        case let refusal as Refusal: (refusal, refusal.status.rawValue)
        default:
            (Refusal(status: .forbidden, code: "unavailable", reason: "the bus did not answer (\(error)); try again later"), 503)
        }
    }

    func streamEvents(_ input: Operations.StreamEvents.Input) async throws -> Operations.StreamEvents.Output {
        let asked = await ask(
            "streamEvents", group: input.path.group, topics: input.query.topics, pattern: input.query.pattern)
        let refusal: Refusal
        let status: Int
        switch asked {
        case .ok(let principal, let selection, let group):
            let request = SubscriptionRequest(
                selection: selection, group: group, cursor: input.headers.lastEventID,
                start: input.query.from == .latest ? .latest : .earliest,
                redacted: !principal.grants.contains(.personalData), commitCursorOnOpen: true)
            do {
                let subscription = try await subscriptions.open(request, admit: admit(RequestScope.apiKey))
                let stream = ServerSentEventStream(subscription).map { ArraySlice($0) }
                return .ok(.init(body: .textEventStream(HTTPBody(stream, length: .unknown, iterationBehavior: .single))))
            } catch {
                (refusal, status) = Self.failure(error)
            }
        case .refused(let refused, let code):
            (refusal, status) = (refused, code)
        }
        let body = Self.body(refusal)
        switch status {
        case 400: return .badRequest(.init(body: .json(body)))
        case 401: return .unauthorized(.init(body: .json(body)))
        case 403: return .forbidden(.init(body: .json(body)))
        case 404: return .notFound(.init(body: .json(body)))
        default: return .serviceUnavailable(.init(body: .json(body)))
        }
    }

    func pollEvents(_ input: Operations.PollEvents.Input) async throws -> Operations.PollEvents.Output {
        let asked = await ask("pollEvents", group: input.path.group, topics: input.query.topics, pattern: input.query.pattern)
        let refusal: Refusal
        let status: Int
        switch asked {
        case .ok(let principal, let selection, let group):
            let request = SubscriptionRequest(
                selection: selection, group: group, cursor: input.query.cursor,
                start: input.query.from == .latest ? .latest : .earliest,
                redacted: !principal.grants.contains(.personalData))
            do {
                let wait = Duration.seconds(min(max(input.query.wait ?? 20, 0), 60))
                let max = min(max(input.query.max ?? 100, 1), 1000)
                let batch = try await subscriptions.poll(request, max: max, wait: wait, admit: admit(RequestScope.apiKey))
                let decoded = try JSONDecoder().decode(Components.Schemas.EventBatch.self, from: Data(batch.json))
                return .ok(.init(body: .json(decoded)))
            } catch {
                (refusal, status) = Self.failure(error)
            }
        case .refused(let refused, let code):
            (refusal, status) = (refused, code)
        }
        let body = Self.body(refusal)
        switch status {
        case 400: return .badRequest(.init(body: .json(body)))
        case 401: return .unauthorized(.init(body: .json(body)))
        case 403: return .forbidden(.init(body: .json(body)))
        case 404: return .notFound(.init(body: .json(body)))
        default: return .serviceUnavailable(.init(body: .json(body)))
        }
    }

    func commitCursor(_ input: Operations.CommitCursor.Input) async throws -> Operations.CommitCursor.Output {
        guard case .json(let commit) = input.body else { preconditionFailure("one content type") }
        let asked = await ask("commitCursor", group: input.path.group, topics: input.query.topics, pattern: input.query.pattern)
        let refusal: Refusal
        let status: Int
        switch asked {
        case .ok(_, let selection, let group):
            do {
                let committed = try await subscriptions.commit(group: group, selection: selection, cursor: commit.cursor)
                let offsets = committed.sorted { $0.key < $1.key }.map {
                    Components.Schemas.Committed.OffsetsPayloadPayload(
                        topic: $0.key.topic, partition: Int32($0.key.partition), offset: $0.value)
                }
                return .ok(.init(body: .json(.init(group: input.path.group, offsets: offsets))))
            } catch {
                (refusal, status) = Self.failure(error)
            }
        case .refused(let refused, let code):
            (refusal, status) = (refused, code)
        }
        let body = Self.body(refusal)
        switch status {
        case 400: return .badRequest(.init(body: .json(body)))
        case 401: return .unauthorized(.init(body: .json(body)))
        case 403: return .forbidden(.init(body: .json(body)))
        case 404: return .notFound(.init(body: .json(body)))
        default: return .serviceUnavailable(.init(body: .json(body)))
        }
    }
}
