import CivilTime
import EventSchemas
import Foundation
import GRDB
import Orchestrator

/// Supervision of repeat visits (重复跑动), in the store transaction of ``CitizenStore``.
///
/// The subject of an application is the applicant's company by its credit code when the workflow
/// names one (`applicant.creditCode`) and the application carries it, else the applicant's
/// resident ID. A visit is an application of a workflow (its `submittedAt`), or a rejection or
/// request for more information on one of its steps (its `decidedAt`; both send the citizen back).
/// A visit within the window of `Rules/repeat-visits.yaml` after the subject's latest earlier visit
/// for the same workflow (or the same department's item) raises one `supervision.alert.raised`,
/// `repeat-visit` or `rejected-twice`, with both visits' instants and applications. Windows count
/// calendar days in China time. Applications life events start are nobody's visit, and a second
/// event for an application already seen is not a second visit. A decision on an application this
/// store never saw submitted is not counted (its subject is unknown).
extension Transaction {
    mutating func submission(_ workflow: Workflow, _ body: JSONValue, eventId: String) throws {
        guard !rules.startedWorkflows.contains(workflow.id),
            let applicationId = body[pointer: "/applicationId"]?.stringValue,
            let residentId = workflow.applicant.residentId.value(in: body)?.stringValue
        else { return }
        let creditCode = workflow.applicant.creditCode.flatMap { $0.value(in: body)?.stringValue }
        let subject = creditCode ?? residentId
        try db.execute(
            sql: """
                INSERT INTO applications (application_id, workflow, subject, resident_id, credit_code)
                VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """, arguments: [applicationId, workflow.id, subject, residentId, creditCode])
        guard db.changesCount > 0 else { return }  // the same application again: not a second visit
        let at = body[pointer: "/submittedAt"]?.stringValue.flatMap(ChinaTime.parse) ?? now
        try visit(
            kind: "submission", subject: subject, item: workflow.id, at: at, applicationId: applicationId,
            eventId: eventId, residentId: residentId, creditCode: creditCode)
    }

    mutating func decision(_ body: JSONValue, eventId: String) throws {
        guard let decision = body[pointer: "/decision"]?.stringValue, decision != "approved",
            let applicationId = body[pointer: "/applicationId"]?.stringValue,
            let department = body[pointer: "/department"]?.stringValue,
            let item = body[pointer: "/item"]?.stringValue,
            let application = try Row.fetchOne(
                db, sql: "SELECT * FROM applications WHERE application_id = ?", arguments: [applicationId])
        else { return }
        let at = body[pointer: "/decidedAt"]?.stringValue.flatMap(ChinaTime.parse) ?? now
        try visit(
            kind: "rejection", subject: application["subject"], item: "\(department)/\(item)", at: at,
            applicationId: applicationId, eventId: eventId, residentId: application["resident_id"],
            creditCode: application["credit_code"])
    }

    /// Records a visit and raises an alert when the subject's latest earlier visit for the item is
    /// within the window, or when the visit falls within the window before a later one that had no
    /// alert yet (events of different partitions arrive in any order).
    mutating func visit(
        kind: String, subject: String, item: String, at: Date, applicationId: String, eventId: String,
        residentId: String, creditCode: String?
    ) throws {
        let window = kind == "submission" ? rules.repeatVisits.submissionWindowDays : rules.repeatVisits.rejectionWindowDays
        func within(_ earlier: Date, _ later: Date) -> Bool {
            ChinaTime.date(at: earlier).days(until: ChinaTime.date(at: later)) <= window
        }
        let seq = try Int64.fetchOne(
            db,
            sql: "INSERT INTO visits (kind, subject, item, at, application_id, event_id) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            arguments: [kind, subject, item, at.timeIntervalSince1970, applicationId, eventId])!
        let query = "SELECT * FROM visits WHERE kind = ? AND subject = ? AND item = ? AND seq <> ? AND "
        let previous = try Row.fetchOne(
            db, sql: query + "at <= ? ORDER BY at DESC, seq DESC LIMIT 1",
            arguments: [kind, subject, item, seq, at.timeIntervalSince1970])
        let next = try Row.fetchOne(
            db, sql: query + "at > ? ORDER BY at, seq LIMIT 1", arguments: [kind, subject, item, seq, at.timeIntervalSince1970])
        let current = Visit(seq: seq, at: at, applicationId: applicationId, eventId: eventId)
        if let previous, within(Date(timeIntervalSince1970: previous["at"]), at) {
            try alert(kind: kind, item: item, Visit(previous), current, residentId: residentId, creditCode: creditCode)
        }
        if let next, next["alerted"] as Int == 0, within(at, Date(timeIntervalSince1970: next["at"])) {
            try alert(kind: kind, item: item, current, Visit(next), residentId: residentId, creditCode: creditCode)
        }
    }

    struct Visit {
        var seq: Int64
        var at: Date
        var applicationId: String
        var eventId: String

        init(seq: Int64, at: Date, applicationId: String, eventId: String) {
            self.seq = seq
            self.at = at
            self.applicationId = applicationId
            self.eventId = eventId
        }

        init(_ row: Row) {
            self.init(
                seq: row["seq"], at: Date(timeIntervalSince1970: row["at"]), applicationId: row["application_id"],
                eventId: row["event_id"])
        }
    }

    /// The alert of the later visit of two (its id is the later visit's event id: once per occurrence).
    mutating func alert(
        kind: String, item: String, _ earlier: Visit, _ later: Visit, residentId: String, creditCode: String?
    ) throws {
        try db.execute(sql: "UPDATE visits SET alerted = 1 WHERE seq = ?", arguments: [later.seq])
        let rule = kind == "submission" ? "repeat-visit" : "rejected-twice"
        let id = "\(rule)/\(later.eventId)"
        var body: JSONObject = [
            "alertId": .string(id), "rule": .string(rule), "residentId": .string(residentId),
            "item": .string(item.split(separator: "/").last.map(String.init) ?? item),
            "occurrences": .array([.string(ChinaTime.rfc3339(earlier.at)), .string(ChinaTime.rfc3339(later.at))]),
            "applicationIds": .array([.string(earlier.applicationId), .string(later.applicationId)]),
            "raisedAt": .string(ChinaTime.rfc3339(now)),
        ]
        if let creditCode { body["creditCode"] = .string(creditCode) }
        try emit(
            id: id, type: "supervision.alert.raised", topic: "supervision.alert.raised", key: residentId,
            body: .object(body))
        outcome.alerts += 1
    }
}
