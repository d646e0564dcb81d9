import AccessControl
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import Gateway
import SharedView
import TestSupport
import Testing

/// The gateway over real HTTP (a real port, URLSession) on a real embedded bus.
@Suite(.serialized) struct GatewayTests {
    static let chen = "440604199308220247"

    static func restaurant(_ id: String) -> JSONValue {
        RestaurantExample.application(id: id, submitted: CivilDate("2026-03-02")!.chinaTime(hour: 9, minute: 20))
    }

    @Test func anAcceptedApplicationIsOnTheBusAndValid() async throws {
        let rig = try await GatewayRig()
        let application = Self.restaurant("RA-2026-000101")
        let answer = try await rig.json(
            "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", application))
        #expect(answer.status == 202)
        #expect(answer.body[pointer: "/applicationId"]?.stringValue == "RA-2026-000101")
        #expect(answer.body[pointer: "/topic"]?.stringValue == "application.restaurant.submitted")
        let records = try await readTopic(rig.log, "application.restaurant.submitted")
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record.offset == answer.body[pointer: "/offset"].flatMap { if case .integer(let v) = $0 { v } else { nil } })
        let event = try CloudEventsBinding.event(from: record)
        #expect(event.id == answer.body[pointer: "/eventId"]?.stringValue)
        let validated = try EventValidator(catalog: Repo.catalog).validate(event, topic: record.topic)
        #expect(validated.body == application)  // as sent: 120.0 stays a number, not the integer 120
        await rig.stop()
    }

    /// A submission sent again (a client that did not get its answer: the gateway killed after the
    /// append, a time-out in a broker outage) is the same event, under the same id, which readers
    /// drop as a repeat; another content under the same number is another event. Found by
    /// Tests/ReliabilityTests' broker outage under load: with random ids, a retried POST was a
    /// second application event.
    @Test func aRetriedSubmissionIsTheSameEvent() async throws {
        let rig = try await GatewayRig()
        let application = Self.restaurant("RA-2026-000102")
        var ids: [String?] = []
        for _ in 0..<2 {
            let answer = try await rig.json(
                "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", application))
            #expect(answer.status == 202)
            ids.append(answer.body[pointer: "/eventId"]?.stringValue)
        }
        var changed = application
        changed.set(.integer(30), at: "/business/seats")
        let other = try await rig.json(
            "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", changed))
        #expect(ids[0] != nil && ids[0] == ids[1], "\(ids)")
        #expect(ids[0]?.hasPrefix("restaurant-opening/RA-2026-000102/") == true, "\(ids)")
        #expect(other.body[pointer: "/eventId"]?.stringValue != ids[0])
        await rig.stop()
    }

    /// Submissions arriving together share appends (group commit): each answer still names where
    /// its own record landed, and every record is on the bus once when its 202 comes.
    @Test func concurrentSubmissionsEachLandWhereTheirAnswerSays() async throws {
        let rig = try await GatewayRig()
        let count = 40
        let answers = try await withThrowingTaskGroup(of: (String, Int, JSONValue).self) { group in
            for n in 1...count {
                let id = String(format: "RA-2026-%06d", 300 + n)
                group.addTask {
                    let answer = try await rig.json(
                        "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", Self.restaurant(id)))
                    return (id, answer.status, answer.body)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.1 == 202 }, "\(answers.filter { $0.1 != 202 }.prefix(3))")
        let records = try await readTopic(rig.log, "application.restaurant.submitted")
        #expect(records.count == count)
        var byPosition: [String: String] = [:]
        for record in records {
            let event = try CloudEventsBinding.event(from: record)
            byPosition["\(record.partition)/\(record.offset)"] = event.subject
        }
        for (id, _, body) in answers {
            let partition = body[pointer: "/partition"].flatMap { if case .integer(let v) = $0 { v } else { nil } }
            let offset = body[pointer: "/offset"].flatMap { if case .integer(let v) = $0 { v } else { nil } }
            #expect(body[pointer: "/applicationId"]?.stringValue == id)
            #expect(
                byPosition["\(partition ?? -1)/\(offset ?? -1)"] == id,
                "\(id) answered partition \(partition ?? -1) offset \(offset ?? -1)")
        }
        await rig.stop()
    }

    @Test func refusedSubmissionsNameEachFieldAndRule() async throws {
        let rig = try await GatewayRig()
        // Not JSON: 400.
        let notJSON = try await rig.request("POST", "/applications", key: "desk-key", body: Data("{oops".utf8))
        #expect(notJSON.status == 400)
        let notJSONBody = try JSONValue.parse(notJSON.body)
        #expect(notJSONBody[pointer: "/code"]?.stringValue == "not-json")
        // JSON, but not a submission: 400.
        let shape = try await rig.json("POST", "/applications", key: "desk-key", body: .object(["hello": .string("x")]))
        #expect(shape.status == 400)
        #expect(shape.body[pointer: "/code"]?.stringValue == "bad-request")
        // An unknown workflow: 422 at /workflow.
        let unknown = try await rig.json(
            "POST", "/applications", key: "desk-key", body: submission("pizza-delivery", Self.restaurant("RA-2026-000102")))
        #expect(unknown.status == 422)
        #expect(unknown.body[pointer: "/code"]?.stringValue == "unknown-workflow")
        #expect(pointers(unknown.body) == ["/workflow"])
        // A wrong check character and a missing business: 422, each with its pointer and rule.
        guard case .object(var application) = Self.restaurant("RA-2026-000103"),
            case .object(var applicant)? = application["applicant"]
        else { Issue.record("the example is not an object"); return }
        applicant["residentId"] = .string("440604199308220248")
        application["applicant"] = .object(applicant)
        application["business"] = nil
        let invalid = try await rig.json(
            "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", .object(application)))
        #expect(invalid.status == 422)
        #expect(invalid.body[pointer: "/code"]?.stringValue == "invalid-application")
        let found = pointers(invalid.body)
        #expect(found.contains("/application/applicant/residentId"))
        #expect(found.contains("/application/business"))
        guard case .array(let violations)? = invalid.body[pointer: "/violations"] else { return }
        let rules = violations.compactMap { $0[pointer: "/rule"]?.stringValue }
        #expect(rules.contains("required"))
        #expect(rules.count == found.count)
        // Nothing refused reached the bus.
        #expect(try await readTopic(rig.log, "application.restaurant.submitted").isEmpty)
        await rig.stop()
    }

    @Test func progressAfterTheOrchestratorRan() async throws {
        let rig = try await GatewayRig()
        let id = "RA-2026-000104"
        let submitted = try await rig.json(
            "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", Self.restaurant(id)))
        #expect(submitted.status == 202)
        // Before the orchestrator took it up: submitted, no steps.
        try await rig.gateway.catchUp()
        let early = try await rig.json("GET", "/applications/\(id)", key: "desk-key")
        #expect(early.status == 200)
        #expect(early.body[pointer: "/status"]?.stringValue == "submitted")
        try await rig.runOrchestrator()
        try await rig.gateway.catchUp()
        let progress = try await rig.json("GET", "/applications/\(id)", key: "chen-key")  // the applicant's own key
        #expect(progress.status == 200)
        #expect(progress.body[pointer: "/workflow"]?.stringValue == "restaurant-opening")
        #expect(progress.body[pointer: "/status"]?.stringValue == "in-progress")
        guard case .array(let steps)? = progress.body[pointer: "/steps"] else {
            Issue.record("no steps in \(progress.body)")
            return
        }
        let licence = steps.first { $0[pointer: "/step"]?.stringValue == "business-licence" }
        #expect(licence?[pointer: "/status"]?.stringValue == "requested")
        #expect(licence?[pointer: "/dueBy"]?.stringValue != nil)
        #expect(licence?[pointer: "/overdue"] == .bool(false))
        #expect(steps.count > 1)
        // Another applicant may not read it; an unknown number is 404 for the front desk.
        #expect(try await rig.json("GET", "/applications/\(id)", key: "other-key").status == 403)
        #expect(try await rig.json("GET", "/applications/RA-2026-999999", key: "desk-key").status == 404)
        #expect(try await rig.json("GET", "/applications/RA-2026-999999", key: "chen-key").status == 403)
        await rig.stop()
    }

    @Test func everyRefusalIs401Or403WithCodeAndReasonAndIsCounted() async throws {
        let rig = try await GatewayRig()
        let body = submission("restaurant-opening", Self.restaurant("RA-2026-000105"))
        let cases: [(String, String, String?, JSONValue?, Int, String)] = [
            ("POST", "/applications", nil, body, 401, "no-key"),
            ("POST", "/applications", "wrong-key", body, 401, "unknown-key"),
            ("POST", "/applications", "reader-key", body, 403, "not-granted"),
            ("POST", "/applications", "other-key", body, 403, "not-own-application"),
            ("POST", "/applications", "revoked-key", body, 401, "revoked-key"),
            ("GET", "/applications/RA-2026-000105", nil, nil, 401, "no-key"),
            ("GET", "/applications/RA-2026-000105", "reader-key", nil, 403, "not-granted"),
            ("GET", "/residents/\(Self.chen)/data-usage", nil, nil, 401, "no-key"),
            ("GET", "/applications/RA-2026-000105", "revoked-key", nil, 401, "revoked-key"),
            ("GET", "/residents/\(Self.chen)/data-usage", "other-key", nil, 403, "not-own-application"),
            ("GET", "/residents/\(Self.chen)/data-usage", "desk-key", nil, 403, "not-granted"),
        ]
        for (method, path, key, body, status, code) in cases {
            let answer = try await rig.json(method, path, key: key, body: body)
            #expect(answer.status == status, "\(method) \(path) with \(key ?? "no key")")
            #expect(answer.body[pointer: "/code"]?.stringValue == code, "\(method) \(path) with \(key ?? "no key")")
            #expect(answer.body[pointer: "/reason"]?.stringValue?.isEmpty == false)
        }
        // A body that is not JSON from a caller without a key: the key first.
        let noKeyNotJSON = try await rig.request("POST", "/applications", body: Data("{oops".utf8))
        #expect(noKeyNotJSON.status == 401)
        // "Bearer" is required: another scheme is no key.
        #expect(try await rig.request("GET", "/applications/RA-2026-000105", authorization: "Basic desk-key").status == 401)
        #expect(try await readTopic(rig.log, "application.restaurant.submitted").isEmpty)
        let metrics = String(decoding: try await rig.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains(#"onewindow_gateway_refusals_total{operation="submitApplication",code="no-key"} 2"#))
        #expect(metrics.contains(#"onewindow_gateway_refusals_total{operation="getDataUsage",code="not-granted"} 1"#))
        #expect(metrics.contains(#"onewindow_gateway_refusals_total{operation="getDataUsage",code="not-own-application"} 1"#))
        // Every refusal is in the audit log (the not-JSON and Basic ones too), and the chain holds.
        let audit = try #require(rig.access as? IssuedKeys).audit
        let refused = try await audit.entries().filter { $0.action == .accessRefused }
        #expect(refused.count == cases.count + 2, "\(refused.map(\.details))")
        if case .intact = try await audit.verify() {} else { Issue.record("the audit chain broke: \(try await audit.verify())") }
        await rig.stop()
    }

    @Test func healthIsReadyOnlyWhileTheBusAnswers() async throws {
        let rig = try await GatewayRig()
        let ready = try await rig.json("GET", "/health")
        #expect(ready.status == 200)
        #expect(ready.body[pointer: "/status"]?.stringValue == "ok")
        await rig.log.close()
        let down = try await rig.json("GET", "/health")
        #expect(down.status == 503)
        #expect(down.body[pointer: "/status"]?.stringValue == "unavailable")
        #expect(try await rig.json("GET", "/health/live").status == 200)
        await rig.stop()
    }

    @Test func metricsCountTopicsGroupsApplicationsAndLatencies() async throws {
        let rig = try await GatewayRig()
        for n in 1...2 {
            let id = String(format: "RA-2026-%06d", 200 + n)
            #expect(
                try await rig.json(
                    "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", Self.restaurant(id))
                ).status == 202)
        }
        try await rig.runOrchestrator()
        try await rig.gateway.catchUp()
        // Past every due date: each requested step is overdue.
        await rig.clock.advance(by: .seconds(86_400 * 60))
        let answer = try await rig.request("GET", "/metrics")
        #expect(answer.status == 200)
        #expect(answer.contentType.hasPrefix("text/plain"))
        let text = String(decoding: answer.body, as: UTF8.self)
        #expect(text.contains(#"onewindow_topic_events_in{topic="application.restaurant.submitted"} 2"#))
        #expect(text.contains(#"onewindow_topic_events_out{topic="application.restaurant.submitted",group="onewindow.orchestrator"} 2"#))
        #expect(text.contains(#"onewindow_consumer_lag{group="onewindow.orchestrator",topic="application.restaurant.submitted"} 0"#))
        #expect(text.contains("onewindow_dead_letters 0"))
        #expect(text.contains("onewindow_applications_open 2"))
        #expect(text.contains("onewindow_steps_overdue 2"))  // each application's business licence
        #expect(text.contains(#"onewindow_gateway_request_duration_seconds_count{operation="submitApplication",status="202"} 2"#))
        #expect(text.contains(#"onewindow_gateway_submissions_total{workflow="restaurant-opening",outcome="accepted"} 2"#))
        await rig.stop()
    }

    @Test func whoUsedMyDataIsServedToTheApplicantAndMaskedForOthers() async throws {
        let rig = try await GatewayRig()
        // Before the view exists: 503 with the reason.
        #expect(try await rig.json("GET", "/residents/\(Self.chen)/data-usage", key: "chen-key").status == 503)
        let view = try SharedViewStore(path: rig.viewPath)
        _ = try await view.latestFact(kind: "household-record", subject: Self.chen, reader: "orchestrator", reason: "RA-2026-000106 materials")
        let own = try await rig.json("GET", "/residents/\(Self.chen)/data-usage", key: "chen-key")
        #expect(own.status == 200)
        #expect(own.body[pointer: "/subject"]?.stringValue == Self.chen)
        #expect(own.body[pointer: "/uses/0/reader"]?.stringValue == "orchestrator")
        #expect(own.body[pointer: "/uses/0/reason"]?.stringValue == "RA-2026-000106 materials")
        #expect(own.body[pointer: "/uses/0/kind"]?.stringValue == "household-record")
        // The front desk holds no personal-data grant: someone else's data usage is refused.
        #expect(try await rig.json("GET", "/residents/\(Self.chen)/data-usage", key: "desk-key").status == 403)
        let clerk = try await rig.json("GET", "/residents/\(Self.chen)/data-usage", key: "clerk-key")
        #expect(clerk.body[pointer: "/subject"]?.stringValue == Self.chen)
        await rig.stop()
    }
}
