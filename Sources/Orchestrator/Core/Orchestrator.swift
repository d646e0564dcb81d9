import CivilTime
import EventSchemas
import Foundation

/// A case and what to do after an input: ``Orchestrator/apply(_:_:now:)``'s answer.
public struct Transition: Sendable, Hashable {
    /// The case after the input (unchanged for a no-op).
    public var state: Case
    /// What to do, in order. Empty for a no-op (an exact repeat, a timer of a finished attempt).
    /// The order within a transition: timers cancelled, the notification of the moment, each
    /// request followed by its two timers, the completion record and its notification, and
    /// last the progress update (one per transition that changes the case, timers' aside).
    public var effects: [Effect]
}

/// The orchestrator's pure core: `apply(case, input, now) -> (case', effects)`. No I/O and no clock
/// reading — `now` comes in — so it is tested with tables of inputs and effects.
///
/// ```swift
/// let core = Orchestrator(rules: rules, calendar: calendar)
/// let first = try core.apply(nil, .submitted(submission), now: now)     // received, requests, timers
/// let next = try core.apply(first.state, .decided(decision), now: later)
/// ```
public struct Orchestrator: Sendable {
    /// The workflows, every version a case may be pinned to.
    public let rules: RuleBook
    /// Working days, for due dates, reminders and durations.
    public let calendar: WorkingDayCalendar

    /// Each rule version's bodies' fixed members.
    let templates: [RuleVersion: EffectBodies.Templates]

    public init(rules: RuleBook, calendar: WorkingDayCalendar) {
        self.rules = rules
        self.calendar = calendar
        templates = rules.versions.mapValues(EffectBodies.Templates.init)
    }

    /// Applies an input to a case.
    /// - Parameters:
    ///   - current: the application's case; `nil` before its submission.
    ///   - input: what happened.
    ///   - now: the time of processing (requests' `requestedAt`, due dates, events' times).
    /// - Returns: the case after the input and the effects; a repeat of an input already applied
    ///   (the same submission, a department's exact retry, a timer already handled) returns the
    ///   case unchanged and no effects.
    /// - Throws: ``Rejection`` for an input to dead-letter: for an unknown application, a step never
    ///   requested, a conflicting decision…
    public func apply(_ current: Case?, _ input: Input, now: Date) throws(Rejection) -> Transition {
        switch input {
        case .submitted(let submission):
            if let current {
                guard current.application == submission.application else {
                    throw Rejection(
                        .conflictingSubmission,
                        "application \(current.applicationId) was already submitted with other content")
                }
                return Transition(state: current, effects: [])
            }
            return try submit(submission, now: now)
        case .decided(let decision):
            guard let current else {
                throw Rejection(
                    .unknownApplication,
                    "no application \(decision.applicationId) for the decision of \(decision.department) on \(decision.item)"
                )
            }
            return try decide(current, decision, now: now)
        case .resubmitted(let resubmission):
            guard let current else {
                throw Rejection(
                    .unknownApplication,
                    "no application \(resubmission.applicationId) for the resubmission of \(resubmission.step)")
            }
            return try resubmit(current, resubmission, now: now)
        case .timerFired(let key):
            guard let current else {
                throw Rejection(.unknownApplication, "no application \(key.applicationId) for timer \(key)")
            }
            return try fire(current, key, now: now)
        }
    }

    // MARK: - Inputs

    func submit(_ submission: Submission, now: Date) throws(Rejection) -> Transition {
        guard let workflow = rules.workflow(applicationType: submission.applicationType) else {
            throw Rejection(.unknownWorkflow, "no workflow takes \(submission.applicationType) applications")
        }
        let application = submission.application
        guard !submission.applicationId.isEmpty,
            let submittedAt = application[pointer: "/submittedAt"]?.stringValue.flatMap(ChinaTime.parse)
        else {
            throw Rejection(.invalidInput, "the application has no applicationId or no submittedAt")
        }
        // Steps listing a document nobody holds wait for the applicant to bring it.
        let missingDocuments = workflow.missingDocuments(application: application, facts: submission.facts)
        let missing = Set(missingDocuments.flatMap(\.steps))
        let steps = workflow.steps.map { step in
            StepState(
                id: step.id,
                status: step.condition.map { $0.evaluate(on: application) } == false
                    ? .skipped : missing.contains(step.id) ? .awaitingDocuments : .waiting,
                attempt: 0, requestedAt: nil, requestTimes: [], dueDate: nil, reminderAt: nil, overdueAt: nil,
                reminded: false,
                escalated: false, decisions: [])
        }
        var state = Case(
            applicationId: submission.applicationId, workflow: workflow.id, ruleVersion: workflow.version,
            application: application, submittedAt: submittedAt, status: .inProgress, steps: steps, revision: 0,
            completion: nil, facts: submission.facts)
        var times = TimeTexts(now: now)
        var effects = [
            notification(.received, state, workflow, step: nil, times: times, missing: missingDocuments)
        ]
        try advance(&state, workflow, times: &times, into: &effects)
        return finish(state, &effects, workflow, times: &times)
    }

    func decide(_ current: Case, _ decision: Decision, now: Date) throws(Rejection) -> Transition {
        let workflow = try self.workflow(of: current)
        guard let step = workflow.step(department: decision.department, item: decision.item) else {
            throw Rejection(
                .unknownStep,
                "\(decision.department) \(decision.item) is no step of \(workflow.id) (application \(current.applicationId))"
            )
        }
        let stepState = current.step(step.id)!
        if stepState.decisions.contains(where: { $0.decision == decision }) {
            return Transition(state: current, effects: [])  // a department's exact retry
        }
        guard stepState.status != .waiting, stepState.status != .skipped, stepState.attempt > 0 else {
            throw Rejection(
                .stepNotRequested,
                "step \(step.id) of \(current.applicationId) was never requested (\(stepState.status.rawValue)); \(decision.department) decided \(decision.outcome.rawValue)"
            )
        }
        guard stepState.status == .requested else {
            let first = stepState.decision?.decision
            throw Rejection(
                .conflictingDecision,
                "step \(step.id) of \(current.applicationId) is already decided (\(first?.outcome.rawValue ?? stepState.status.rawValue) by \(first?.decidedBy ?? "?")); this decision (\(decision.outcome.rawValue) by \(decision.decidedBy)) differs"
            )
        }
        var state = current
        var times = TimeTexts(now: now)
        var effects: [Effect] = [
            .cancelTimer(
                TimerKey(applicationId: state.applicationId, step: step.id, attempt: stepState.attempt, kind: .reminder)
            ),
            .cancelTimer(
                TimerKey(applicationId: state.applicationId, step: step.id, attempt: stepState.attempt, kind: .overdue)),
        ]
        state.update(step.id) { $0.decisions.append(DecisionRecord(attempt: $0.attempt, decision: decision)) }
        switch decision.outcome {
        case .approved:
            state.update(step.id) { $0.status = .approved }
            if state.status == .inProgress { try advance(&state, workflow, times: &times, into: &effects) }
        case .rejected where step.onRejection == .fail:
            state.update(step.id) { $0.status = .rejected }
            if state.status == .inProgress {
                state.status = .failed
                effects.append(notification(.stepRejected, state, workflow, step: step, times: times))
                // No reminders or escalations for a failed application's other steps.
                for other in state.steps where other.status == .requested {
                    for kind in [TimerKey.Kind.reminder, .overdue] {
                        effects.append(
                            .cancelTimer(
                                TimerKey(
                                    applicationId: state.applicationId, step: other.id, attempt: other.attempt,
                                    kind: kind)))
                    }
                }
            }
        case .rejected, .needsMoreInformation:
            state.update(step.id) { $0.status = .awaitingResubmission }
            if state.status == .inProgress {
                effects.append(notification(.resubmissionRequested, state, workflow, step: step, times: times))
            }
        }
        return finish(state, &effects, workflow, times: &times)
    }

    func resubmit(_ current: Case, _ resubmission: Resubmission, now: Date) throws(Rejection) -> Transition {
        let workflow = try self.workflow(of: current)
        guard let stepState = current.step(resubmission.step) else {
            throw Rejection(
                .unknownStep, "\(resubmission.step) is no step of \(workflow.id) (application \(current.applicationId))"
            )
        }
        if let named = resubmission.workflow, named != current.workflow {
            throw Rejection(
                .unknownWorkflow,
                "the resubmission names workflow \(named), but application \(current.applicationId) runs \(current.workflow)"
            )
        }
        if let corrected = resubmission.application,
            corrected[pointer: "/applicationId"]?.stringValue != current.applicationId
        {
            throw Rejection(
                .invalidInput,
                "the corrected application in the resubmission of \(resubmission.step) is not application \(current.applicationId) (its applicationId differs)"
            )
        }
        if stepState.status == .awaitingDocuments, current.status == .inProgress {
            return try supplyDocuments(current, resubmission, workflow, now: now)
        }
        guard stepState.status == .awaitingResubmission, current.status == .inProgress else {
            throw Rejection(
                .notAwaitingResubmission,
                "step \(stepState.id) of \(current.applicationId) does not wait for a resubmission (\(stepState.status.rawValue))"
            )
        }
        var state = current
        if let application = resubmission.application { state.application = application }
        var effects: [Effect] = []
        var times = TimeTexts(now: now)
        try request(workflow.step(stepState.id)!, &state, workflow, times: &times, into: &effects)
        return finish(state, &effects, workflow, times: &times)
    }

    /// The applicant brings documents the shared data view did not hold: a resubmission naming any
    /// step that awaits documents, with the corrected application listing them in its
    /// `materials`. Every step whose documents are now all there waits for its dependencies as
    /// usual (and is requested when they are done); the others keep waiting for theirs.
    func supplyDocuments(_ current: Case, _ resubmission: Resubmission, _ workflow: Workflow, now: Date)
        throws(Rejection) -> Transition
    {
        var state = current
        if let application = resubmission.application { state.application = application }
        let missing = Set(
            workflow.missingDocuments(application: state.application, facts: state.facts ?? []).flatMap(\.steps))
        for step in state.steps where step.status == .awaitingDocuments && !missing.contains(step.id) {
            state.update(step.id) { $0.status = .waiting }
        }
        var effects: [Effect] = []
        var times = TimeTexts(now: now)
        try advance(&state, workflow, times: &times, into: &effects)
        return finish(state, &effects, workflow, times: &times)
    }

    func fire(_ current: Case, _ key: TimerKey, now: Date) throws(Rejection) -> Transition {
        let workflow = try self.workflow(of: current)
        guard let stepState = current.step(key.step), let step = workflow.step(key.step) else {
            throw Rejection(.unknownStep, "timer \(key) names no step of \(workflow.id)")
        }
        // A timer of an attempt that is over, or already handled, changes nothing.
        guard current.status == .inProgress, stepState.status == .requested, stepState.attempt == key.attempt else {
            return Transition(state: current, effects: [])
        }
        var state = current
        var effects: [Effect] = []
        let times = TimeTexts(now: now)
        switch key.kind {
        case .reminder:
            guard !stepState.reminded else { return Transition(state: current, effects: []) }
            state.update(step.id) { $0.reminded = true }
            effects.append(notification(.reminder, state, workflow, step: step, times: times))
        case .overdue:
            guard !stepState.escalated else { return Transition(state: current, effects: []) }
            state.update(step.id) { $0.escalated = true }
            effects.append(alert(state, workflow, step: step, now: now))
            effects.append(notification(.escalation, state, workflow, step: step, times: times))
            effects.append(notification(.overdue, state, workflow, step: step, times: times))
        }
        state.revision += 1
        return Transition(state: state, effects: effects)
    }

    func workflow(of current: Case) throws(Rejection) -> Workflow {
        guard let workflow = rules.workflow(version: current.ruleVersion) else {
            throw Rejection(
                .unknownWorkflow,
                "the rules of \(current.ruleVersion), which application \(current.applicationId) is pinned to, are not loaded"
            )
        }
        return workflow
    }

    // MARK: - Steps

    /// Requests every waiting step whose dependencies are done; completes the case when every step
    /// is done.
    func advance(_ state: inout Case, _ workflow: Workflow, times: inout TimeTexts, into effects: inout [Effect])
        throws(Rejection)
    {
        // The applicant's details and listed materials once, for every request of the transition
        // (the application does not change within it).
        var applicant: JSONValue?
        var listed: ListedMaterials?
        var templates: EffectBodies.Templates?
        // By index: a loop over the steps copied each one, its materials, paths and texts.
        for index in workflow.steps.indices where state.status(of: workflow.steps[index].id)! == .waiting {
            if workflow.steps[index].dependsOn.allSatisfy({ state.isDone($0) }) {
                if applicant == nil {
                    applicant = EffectBodies.applicant(workflow, state.application)
                    listed = ListedMaterials(state.application)
                    templates = self.templates[workflow.version]
                }
                try request(
                    workflow.steps[index], &state, workflow, times: &times, into: &effects, applicant: applicant,
                    listed: listed, template: templates?.requests[index])
            }
        }
        if state.steps.allSatisfy(\.isDone) {
            let record = try completion(state, workflow)
            state.status = .completed
            state.completion = record
            effects.append(.recordCompletion(record))
            effects.append(notification(.completed, state, workflow, step: nil, times: times))
        }
    }

    func request(
        _ step: Step, _ state: inout Case, _ workflow: Workflow, times: inout TimeTexts, into effects: inout [Effect],
        applicant: JSONValue? = nil, listed: ListedMaterials? = nil, template: JSONObject? = nil
    ) throws(Rejection) {
        let now = times.now
        let attempt = state.step(step.id)!.attempt + 1
        let due: CivilDate
        let reminderDay: CivilDate
        do {
            due = try calendar.dueDate(receivedAt: now, workingDays: step.slaWorkingDays)
            let reminderDays = (step.slaWorkingDays * 8 + 9) / 10  // ⌈80 %⌉
            reminderDay = try calendar.dueDate(receivedAt: now, workingDays: reminderDays)
        } catch {
            throw Rejection(
                .outsideCalendar,
                "cannot count \(step.slaWorkingDays) working days for step \(step.id) of \(state.applicationId): \(error)"
            )
        }
        let reminderAt = reminderDay.chinaTime(hour: 9)
        let overdueAt = CivilDate(daysSinceEpoch: due.daysSinceEpoch + 1).chinaTime()
        state.update(step.id) {
            $0.status = .requested
            $0.attempt = attempt
            $0.requestedAt = now
            $0.requestTimes.append(now)
            $0.dueDate = due
            $0.reminderAt = reminderAt
            $0.overdueAt = overdueAt
            $0.reminded = false
            $0.escalated = false
        }
        let body = EffectBodies.approvalRequest(
            step, state, workflow, due: due, applicant: applicant, listed: listed, template: template, times: &times)
        effects.append(
            .requestApproval(
                step: step.id,
                Emission(
                    id: "\(state.applicationId)/request/\(step.id)/\(attempt)", type: "approval.requested",
                    topic: "approval.\(step.department).requested", key: state.applicationId, body: body)))
        effects.append(
            .setTimer(
                TimerKey(applicationId: state.applicationId, step: step.id, attempt: attempt, kind: .reminder),
                at: reminderAt))
        effects.append(
            .setTimer(
                TimerKey(applicationId: state.applicationId, step: step.id, attempt: attempt, kind: .overdue),
                at: overdueAt))
    }

    func completion(_ state: Case, _ workflow: Workflow) throws(Rejection) -> CompletionRecord {
        let decided = state.steps.flatMap(\.decisions).map(\.decision.decidedAt)
        // The last decision, not the processing time: the record is the same whichever of two
        // concurrent decisions is applied last.
        let completedAt = decided.max() ?? state.submittedAt
        var perStep: [String: Int] = [:]
        do {
            for step in state.steps where step.status != .skipped {
                var total = 0
                // Each attempt from its request to its decision.
                for record in step.decisions {
                    let requested =
                        step.requestTimes.indices.contains(record.attempt - 1)
                        ? step.requestTimes[record.attempt - 1] : state.submittedAt
                    total += try calendar.workingDays(
                        after: CivilDate.china(requested), through: CivilDate.china(record.decision.decidedAt))
                }
                perStep[step.id] = total
            }
            let elapsed = try calendar.workingDays(
                after: CivilDate.china(state.submittedAt), through: CivilDate.china(completedAt))
            return CompletionRecord(
                applicationId: state.applicationId, workflow: workflow.id, ruleVersion: workflow.version,
                submittedAt: state.submittedAt, completedAt: completedAt, elapsedWorkingDays: elapsed,
                serialWorkingDays: perStep.values.reduce(0, +), stepWorkingDays: perStep,
                documents: workflow.documentCount(application: state.application, facts: state.facts ?? []))
        } catch {
            throw Rejection(.outsideCalendar, "cannot count the working days of \(state.applicationId): \(error)")
        }
    }

    func finish(_ state: consuming Case, _ effects: inout [Effect], _ workflow: Workflow, times: inout TimeTexts)
        -> Transition
    {
        state.revision += 1
        effects.append(
            .updateProgress(
                EffectBodies.progress(
                    state, workflow, now: times.now, templates: templates[workflow.version]?.progress,
                    times: &times)))
        return Transition(state: state, effects: effects)
    }

    func notification(
        _ moment: NotificationMoment, _ state: Case, _ workflow: Workflow, step: Step?, times: TimeTexts,
        missing: [MissingDocument]? = nil
    ) -> Effect {
        .notify(
            moment: moment,
            EffectBodies.notification(
                moment, state, workflow, step: step, now: times.now, missing: missing, nowText: times.nowText))
    }

    func alert(_ state: Case, _ workflow: Workflow, step: Step, now: Date) -> Effect {
        .raiseAlert(step: step.id, EffectBodies.alert(state, workflow, step: step, now: now))
    }
}
