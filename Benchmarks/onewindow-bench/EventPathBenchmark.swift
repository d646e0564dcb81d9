import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import TestSupport

// The per-event work of the hub's pure parts, each on its own in one thread (part `eventpath` of
// ONEWINDOW_BENCH_PARTS; ONEWINDOW_BENCH_EVENTPATH_ROUNDS sets the repetitions, default 20,000):
// validating a restaurant application and an approval request against their schemas, parsing and
// serialising a body, reading an event from a log record, the core applying a submission and a
// decision, and the store's case JSON both ways. Timed in the thread's CPU time, so the figures
// hold on a machine others load (wall time would not).

/// One micro-benchmark's result: what, how many times, and the thread CPU time taken.
struct EventPathMeasurement {
    let name: String
    /// A short name for the figures file: `eventpath_<figure>_ns`.
    let figure: String
    let count: Int
    let cpuSeconds: Double
    var nanosecondsEach: Double { cpuSeconds * 1e9 / Double(count) }
    var perSecond: Double { Double(count) / cpuSeconds }
}

/// The CPU time this thread has used so far, in seconds.
func threadCPUSeconds() -> Double { cpuSeconds(CLOCK_THREAD_CPUTIME_ID) }

/// Runs `body` `count` times after a warm-up of a tenth as many, timing it in thread CPU time.
func measureEach(_ name: String, figure: String, count: Int, _ body: (Int) throws -> Void) rethrows
    -> EventPathMeasurement
{
    for index in 0..<max(1, count / 10) { try body(index) }
    let start = threadCPUSeconds()
    for index in 0..<count { try body(index) }
    return EventPathMeasurement(name: name, figure: figure, count: count, cpuSeconds: threadCPUSeconds() - start)
}

/// Keeps a result alive so the optimiser cannot drop the work that made it.
@inline(never)
func consume<T>(_ value: T) { withExtendedLifetime(value) {} }

func benchEventPath(rounds: Int) throws -> [EventPathMeasurement] {
    let setup = try OrchestratorSetup.load()
    let catalog = setup.catalog
    let validator = EventValidator(catalog: catalog)
    let core = Orchestrator(rules: setup.rules, calendar: setup.calendar)
    let now = Date(timeIntervalSince1970: 1_780_000_000)  // 2026-05-28, a working day
    let application = RestaurantExample.application(id: "RA-2026-000001", submitted: now, area: 200, seats: 60, sign: true)
    let applicationData = application.serialized()
    guard let applicationSchema = catalog.schemas["application.restaurant.submitted"],
        let requestSchema = catalog.schemas["approval.requested"],
        let progressSchema = catalog.schemas["application.progress.updated"]
    else { throw BenchmarkFailure("the catalog lacks the restaurant, approval or progress schemas") }

    // The core's own outputs: the first transition's request and progress update.
    let submission = Submission(applicationType: "application.restaurant.submitted", application: application)
    let first = try core.apply(nil, .submitted(submission), now: now)
    guard
        let request = first.effects.compactMap({ effect -> Emission? in
            if case .requestApproval(_, let emission) = effect { emission } else { nil }
        }).first,
        let progress = first.effects.compactMap({ effect -> Emission? in
            if case .updateProgress(let emission) = effect { emission } else { nil }
        }).last
    else { throw BenchmarkFailure("the submission's transition emitted no request or no progress update") }
    let requestData = request.body.serialized()
    let decided = RestaurantExample.decision(
        applicationId: "RA-2026-000001", department: request.body[pointer: "/department"]?.stringValue ?? "",
        item: request.body[pointer: "/item"]?.stringValue ?? "", decidedAt: now.addingTimeInterval(3600))
    guard let decision = Decision(body: decided) else { throw BenchmarkFailure("the decision body does not read") }
    let decisionData = decided.serialized()
    for (schema, body, what) in [
        (applicationSchema, application, "application"), (requestSchema, request.body, "request"),
        (progressSchema, progress.body, "progress"),
    ] where !schema.validate(body, now: now).isEmpty {
        throw BenchmarkFailure("the benchmark's \(what) does not validate: \(schema.validate(body, now: now))")
    }
    let requestEvent = Event(
        id: request.id, type: request.type, source: "onewindow-orchestrator", subject: request.key, time: now,
        data: requestData)
    let outgoing = CloudEventsBinding.record(for: requestEvent, topic: request.topic)
    let record = LogRecord(
        topic: outgoing.topic, partition: 0, offset: 1, timestamp: now, key: outgoing.key, value: outgoing.value,
        headers: outgoing.headers)
    let applicationEvent = Event(
        id: "submit-1", type: "application.restaurant.submitted", source: "bench-window", subject: nil, time: now,
        data: applicationData)
    let decisionEvent = Event(
        id: "decided-1", type: "approval.decided", source: "bench", subject: nil, time: now, data: decisionData)
    let stored = first.state.storedJSON()

    var results: [EventPathMeasurement] = []
    results.append(
        try measureEach("validate a restaurant application (parsed)", figure: "validate_application", count: rounds) { _ in
            consume(applicationSchema.validate(application, now: now))
        })
    results.append(
        try measureEach("validate an approval request (parsed)", figure: "validate_request", count: rounds) { _ in
            consume(requestSchema.validate(request.body, now: now))
        })
    results.append(
        try measureEach("validate a progress update (parsed)", figure: "validate_progress", count: rounds) { _ in
            consume(progressSchema.validate(progress.body, now: now))
        })
    results.append(
        try measureEach("parse a restaurant application (JSON text)", figure: "parse_application", count: rounds) { _ in
            consume(try JSONValue.parse(applicationData))
        })
    results.append(
        try measureEach("serialise an approval request (sorted keys)", figure: "serialize_request", count: rounds) { _ in
            consume(request.body.serialized())
        })
    results.append(
        try measureEach("serialise a progress update (sorted keys)", figure: "serialize_progress", count: rounds) { _ in
            consume(progress.body.serialized())
        })
    results.append(
        try measureEach("EventValidator: parse and validate an application event", figure: "event_application", count: rounds) {
            _ in consume(try validator.validate(applicationEvent))
        })
    results.append(
        try measureEach("EventValidator: parse and validate a decision event", figure: "event_decision", count: rounds) {
            _ in consume(try validator.validate(decisionEvent, topic: "approval.\(decision.department).decided"))
        })
    results.append(
        try measureEach("decode a log record (CloudEvents binding, parse, validate)", figure: "decode_record", count: rounds) {
            _ in
            let event = try CloudEventsBinding.event(from: record)
            consume(try validator.validate(event, topic: record.topic))
        })
    results.append(
        try measureEach("CloudEvents record of an event", figure: "encode_record", count: rounds) { _ in
            consume(CloudEventsBinding.record(for: requestEvent, topic: request.topic))
        })
    results.append(
        try measureEach("read a decision body (Decision(body:))", figure: "read_decision", count: rounds) { _ in
            consume(Decision(body: decided))
        })
    results.append(
        try measureEach("core: apply a submission", figure: "apply_submission", count: rounds) { _ in
            consume(try core.apply(nil, .submitted(submission), now: now))
        })
    results.append(
        try measureEach("core: apply a decision", figure: "apply_decision", count: rounds) { _ in
            consume(try core.apply(first.state, .decided(decision), now: now))
        })
    // Every decision of the workflow in turn, each on the case as the one before left it: the
    // business licence's (the fan-out, as above), then each parallel step's; the last completes.
    var state = first.state
    var decisions: [(Case, Decision)] = []
    while state.status == .inProgress, let stepState = state.steps.first(where: { $0.status == .requested }) {
        guard let step = core.rules.workflow(version: state.ruleVersion)?.step(stepState.id),
            let next = Decision(
                body: RestaurantExample.decision(
                    applicationId: state.applicationId, department: step.department, item: step.item,
                    decidedAt: now.addingTimeInterval(3600 * Double(decisions.count + 1))))
        else { throw BenchmarkFailure("no decision for step \(stepState.id) of the benchmark's case") }
        decisions.append((state, next))
        state = try core.apply(state, .decided(next), now: now.addingTimeInterval(3600 * Double(decisions.count))).state
    }
    guard state.status == .completed else { throw BenchmarkFailure("the benchmark's case did not complete") }
    for (index, (before, next)) in decisions.enumerated() {
        results.append(
            try measureEach(
                "core: apply decision \(index + 1) of \(decisions.count) (\(next.item))", figure: "apply_decision_\(index + 1)",
                count: rounds
            ) { _ in consume(try core.apply(before, .decided(next), now: now)) })
    }
    let completedJSON = state.storedJSON()
    results.append(
        try measureEach("completed case to the store's JSON", figure: "completed_case_write", count: rounds) { _ in
            consume(state.storedJSON())
        })
    results.append(
        try measureEach("completed case from the store's JSON", figure: "completed_case_read", count: rounds) { _ in
            consume(try Case(storedJSON: completedJSON))
        })
    results.append(
        try measureEach("case to the store's JSON", figure: "case_write", count: rounds) { _ in
            consume(first.state.storedJSON())
        })
    results.append(
        try measureEach("case from the store's JSON", figure: "case_read", count: rounds) { _ in
            consume(try Case(storedJSON: stored))
        })
    return results
}
