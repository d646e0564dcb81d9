import AccessControl
import CivilTime
import EventLog
import EventSchemas
import Foundation
import OpenAPIRuntime
import Orchestrator
import Subscriptions

/// The operations of `openapi.yaml`, as the generated `APIProtocol` asks for them. Every
/// operation but health and metrics asks ``access`` first, with the key the middleware found.
struct GatewayAPI: APIProtocol {
    let frontDesk: FrontDesk
    let store: ProgressStore
    let view: ViewHandle
    let access: any AccessDeciding
    let metrics: GatewayMetrics
    let log: any EventLog
    let bus: String
    let deadLetterTopic: String
    let clock: any WallClock
    /// The subscriptions of downstream systems (GatewayAPI+Subscriptions.swift).
    let subscriptions: SubscriptionHub

    /// The principal allowed to do `action`, or the refusal (counted) to answer with.
    private func authorize(_ action: AccessAction, operation: String) async -> Result<Principal, Refusal> {
        switch await access.decide(apiKey: RequestScope.apiKey, action: action) {
        case .allowed(let principal): return .success(principal)
        case .refused(let refusal):
            metrics.refusal(operation: operation, code: refusal.code)
            return .failure(refusal)
        }
    }

    private static func refusal(_ refusal: Refusal) -> Components.Schemas.Refusal {
        Components.Schemas.Refusal(code: refusal.code, reason: refusal.reason)
    }

    private static func unavailable(_ error: any Error) -> Components.Schemas.Refusal {
        Components.Schemas.Refusal(
            code: "unavailable", reason: "the bus or a store did not answer (\(error)); try again later")
    }

    // MARK: - The front desk

    /// A submission the generated code decoded. ``RequestMiddleware`` answers the usual request
    /// (an `application/json` body of the submission's shape) from the body's bytes itself, through
    /// ``submit(_:)``, without the generated decoding; what comes here is the rest, which the
    /// generated code could decode. The application is read again from the body's own bytes, as
    /// `onewindow apply` reads a file (decoded and encoded again, `120.0` would reach the bus as `120`).
    func submitApplication(_ input: Operations.SubmitApplication.Input) async throws
        -> Operations.SubmitApplication.Output
    {
        let submission: Components.Schemas.Submission
        switch input.body { case .json(let body): submission = body }
        let application: JSONValue
        if let bytes = RequestScope.body {
            let parsed: JSONValue
            do {
                parsed = try JSONValue.parse(bytes)
            } catch {
                // JSON to Foundation but not to every reader (a member name twice, a lone surrogate, a
                // number no Double holds): a 400 naming the field's pointer and the rule.
                if case .refused(let refusal) = await access.authenticate(apiKey: RequestScope.apiKey) {
                    metrics.refusal(operation: Operations.SubmitApplication.id, code: refusal.code)
                    return .unauthorized(.init(body: .json(Self.refusal(refusal))))
                }
                metrics.submission(workflow: submission.workflow, outcome: "invalid")
                if let error = error as? JSONParseError { return .badRequest(.init(body: .json(Self.notJSON(error)))) }
                return .badRequest(
                    .init(
                        body: .json(
                            Components.Schemas.Invalid(
                                code: .notJson, reason: "the body is not JSON as every reader reads it: \(error)",
                                violations: [Components.Schemas.Violation(pointer: "", rule: "json", message: "\(error)")]))))
            }
            application = parsed[pointer: "/application"] ?? .object([:])
        } else {
            application = try JSONValue.parse(JSONEncoder().encode(submission.application))
        }
        return await submit(FrontDesk.Submission(workflow: submission.workflow, application: application))
    }

    /// The front desk's answer to a submission, in the order of checks of the document: the key
    /// (401), the workflow (422), the grant (403), the application (422), then 202 once it is on
    /// the bus (503 when the bus failed).
    func submit(_ submission: FrontDesk.Submission) async -> Operations.SubmitApplication.Output {
        let operation = Operations.SubmitApplication.id
        // The key before anything of the body: a refused key learns nothing about workflows.
        if case .refused(let refusal) = await access.authenticate(apiKey: RequestScope.apiKey) {
            metrics.refusal(operation: operation, code: refusal.code)
            return .unauthorized(.init(body: .json(Self.refusal(refusal))))
        }
        let workflow: Workflow
        do {
            workflow = try frontDesk.workflow(submission.workflow)
        } catch {
            metrics.submission(workflow: submission.workflow, outcome: "invalid")
            return .unprocessableContent(.init(body: .json(Self.invalid(error))))
        }
        let application = submission.application
        let applicant = ProgressTracker.applicant(of: application, in: workflow) ?? ""
        switch await authorize(.submitApplication(workflow: workflow.id, applicant: applicant), operation: operation) {
        case .failure(let refusal) where refusal.status == .unauthenticated:
            return .unauthorized(.init(body: .json(Self.refusal(refusal))))
        case .failure(let refusal):
            return .forbidden(.init(body: .json(Self.refusal(refusal))))
        case .success(let principal):
            do {
                let accepted = try await frontDesk.submit(application, to: workflow, source: "onewindow-gateway/\(principal.name)")
                metrics.submission(workflow: workflow.id, outcome: "accepted")
                return .accepted(
                    .init(
                        body: .json(
                            Components.Schemas.Accepted(
                                applicationId: accepted.applicationId, workflow: accepted.workflow,
                                eventId: accepted.eventId, topic: accepted.position.topic,
                                partition: Int32(accepted.position.partition), offset: accepted.position.offset))))
            } catch let invalid as FrontDesk.Invalid {
                metrics.submission(workflow: workflow.id, outcome: "invalid")
                return .unprocessableContent(.init(body: .json(Self.invalid(invalid))))
            } catch {
                return .serviceUnavailable(.init(body: .json(Self.unavailable(error))))
            }
        }
    }

    /// The 400 for a body the hub's JSON reader refuses: the pointer and rule of the problem.
    static func notJSON(_ error: JSONParseError) -> Components.Schemas.Invalid {
        Components.Schemas.Invalid(
            code: .notJson,
            reason: "the body is not JSON as every reader reads it (RFC 8259: UTF-8, each member name once): \(error)",
            violations: [
                Components.Schemas.Violation(
                    pointer: error.pointer, rule: error.rule.rawValue,
                    message: "\(error.problem) (line \(error.line), column \(error.column))")
            ])
    }

    private static func invalid(_ invalid: FrontDesk.Invalid) -> Components.Schemas.Invalid {
        Components.Schemas.Invalid(
            code: Components.Schemas.Invalid.CodePayload(rawValue: invalid.code.rawValue) ?? .badRequest,
            reason: invalid.reason,
            violations: invalid.violations.map {
                Components.Schemas.Violation(pointer: $0.pointer, rule: $0.rule, message: $0.message)
            })
    }

    // MARK: - Progress

    func getApplicationProgress(_ input: Operations.GetApplicationProgress.Input) async throws
        -> Operations.GetApplicationProgress.Output
    {
        let operation = "getApplicationProgress"
        let id = input.path.applicationId
        let tracked: TrackedApplication?
        do {
            tracked = try await store.application(id)
        } catch {
            return .serviceUnavailable(.init(body: .json(Self.unavailable(error))))
        }
        // An unknown id is asked about as an application of nobody: an applicant learns nothing
        // of which numbers exist (403), the front desk gets its 404.
        switch await authorize(.readApplication(applicant: tracked?.applicant ?? ""), operation: operation) {
        case .failure(let refusal) where refusal.status == .unauthenticated:
            return .unauthorized(.init(body: .json(Self.refusal(refusal))))
        case .failure(let refusal):
            return .forbidden(.init(body: .json(Self.refusal(refusal))))
        case .success:
            guard let tracked else {
                return .notFound(
                    .init(
                        body: .json(
                            Components.Schemas.Refusal(
                                code: "not-found",
                                reason: "no application \(id) has reached the gateway; check the number, or try again in a moment after submitting"
                            ))))
            }
            return .ok(.init(body: .json(Self.progress(tracked, today: ChinaTime.date(at: clock.now())))))
        }
    }

    /// The answer for one application from what the gateway has read.
    static func progress(_ tracked: TrackedApplication, today: CivilDate) -> Components.Schemas.Progress {
        guard let body = tracked.progress else {
            return Components.Schemas.Progress(
                applicationId: tracked.applicationId, workflow: tracked.workflow, status: .submitted, steps: [],
                submittedAt: tracked.submittedAt)
        }
        var steps: [Components.Schemas.Step] = []
        if case .array(let items)? = body[pointer: "/steps"] {
            for item in items {
                var waitingFor: [String]? = nil
                if case .array(let names)? = item[pointer: "/waitingFor"] { waitingFor = names.compactMap(\.stringValue) }
                steps.append(
                    Components.Schemas.Step(
                        step: item[pointer: "/step"]?.stringValue, title: item[pointer: "/title"]?.stringValue,
                        department: item[pointer: "/department"]?.stringValue ?? "",
                        item: item[pointer: "/item"]?.stringValue ?? "",
                        status: item[pointer: "/status"]?.stringValue.flatMap(Components.Schemas.Step.StatusPayload.init)
                            ?? .waiting,
                        dueBy: item[pointer: "/dueBy"]?.stringValue,
                        requestedAt: item[pointer: "/requestedAt"]?.stringValue.flatMap(ChinaTime.parse),
                        decidedAt: item[pointer: "/decidedAt"]?.stringValue.flatMap(ChinaTime.parse),
                        waitingFor: waitingFor, overdue: ProgressBody.isOverdue(item, today: today)))
            }
        }
        return Components.Schemas.Progress(
            applicationId: tracked.applicationId, workflow: tracked.workflow,
            status: body[pointer: "/status"]?.stringValue.flatMap(Components.Schemas.Progress.StatusPayload.init)
                ?? .submitted,
            steps: steps, submittedAt: tracked.submittedAt,
            updatedAt: body[pointer: "/updatedAt"]?.stringValue.flatMap(ChinaTime.parse))
    }

    // MARK: - Who used my data

    func getDataUsage(_ input: Operations.GetDataUsage.Input) async throws -> Operations.GetDataUsage.Output {
        let subject = input.path.subject
        switch await authorize(.readDataUsage(subject: subject), operation: "getDataUsage") {
        case .failure(let refusal) where refusal.status == .unauthenticated:
            return .unauthorized(.init(body: .json(Self.refusal(refusal))))
        case .failure(let refusal):
            return .forbidden(.init(body: .json(Self.refusal(refusal))))
        case .success(let principal):
            do {
                guard let view = try view.store() else {
                    return .serviceUnavailable(
                        .init(
                            body: .json(
                                Components.Schemas.Refusal(
                                    code: "unavailable",
                                    reason: "the shared data view is not there (\(view.path ?? "no --view given")); start `onewindow view run` or pass --view"
                                ))))
                }
                let uses = try await view.usage(of: subject).reversed().map {
                    Components.Schemas.DataUse(
                        reader: $0.reader, reason: $0.reason, at: $0.at, kind: $0.kind, eventIds: $0.eventIds)
                }
                return .ok(
                    .init(
                        body: .json(
                            Components.Schemas.DataUsageList(
                                subject: PersonalData.disclose(subject, as: .identifier, to: principal), uses: uses))))
            } catch {
                return .serviceUnavailable(.init(body: .json(Self.unavailable(error))))
            }
        }
    }

    // MARK: - Health and metrics

    func getLiveness(_ input: Operations.GetLiveness.Input) async throws -> Operations.GetLiveness.Output {
        .ok(.init(body: .json(Components.Schemas.Health(status: .ok, bus: bus))))
    }

    func getReadiness(_ input: Operations.GetReadiness.Input) async throws -> Operations.GetReadiness.Output {
        let log = self.log
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await log.listTopics() }
                group.addTask {
                    try await Task.sleep(for: .seconds(2))
                    throw LogError(.timedOut, "the bus did not answer within 2 s")
                }
                try await group.next()
                group.cancelAll()
            }
            return .ok(.init(body: .json(Components.Schemas.Health(status: .ok, bus: bus))))
        } catch {
            return .serviceUnavailable(
                .init(body: .json(Components.Schemas.Health(status: .unavailable, bus: bus, reason: "\(error)"))))
        }
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        let text = await metrics.scrape(log: log, store: store, deadLetterTopic: deadLetterTopic, now: clock.now())
        return .ok(.init(body: .plainText(HTTPBody(text))))
    }
}
