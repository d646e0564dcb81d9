import CivilTime
import Connectors
import DepartmentSystems
import EventSchemas
import Foundation
import GRDB
import Logging
import Testing

/// An `approval.requested` body.
func request(
    _ application: String, department: DepartmentID, item: String, service: String = "restaurant-opening",
    residentId: String = "440604199308220247", creditCode: String? = "92440604MA4X8K2Q1R",
    details: JSONObject = [:], materials: [String] = ["经营场所平面图", "租赁合同"]
) -> JSONValue {
    var applicant: JSONObject = ["name": "陈美玲", "residentId": .string(residentId), "mobile": "13802761234"]
    if let creditCode { applicant["creditCode"] = .string(creditCode) }
    return .object([
        "applicationId": .string(application), "service": .string(service), "department": .string(department.rawValue),
        "item": .string(item), "dueBy": "2025-10-20", "applicant": .object(applicant),
        "materials": .array(materials.map { .object(["name": .string($0), "source": "submitted"]) }),
        "details": .object(details), "requestedAt": "2025-09-30T10:00:00+08:00",
    ])
}

/// Puts a request into the inbox as the connector's inbox sink does.
func deliver(_ body: JSONValue, to database: DepartmentDatabase, receivedAt: String) async throws {
    #expect(refusal(of: body, type: "approval.requested") == nil)
    let payload = String(decoding: body.serialized(), as: UTF8.self)
    let eventId = "onewindow/\(body[pointer: "/applicationId"]!.stringValue!)/\(body[pointer: "/item"]!.stringValue!)"
    try await database.writer.write { db in
        try db.execute(
            sql: """
                INSERT INTO approval_inbox
                (event_id, application_id, item, service, due_by, payload, received_at, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (event_id) DO NOTHING
                """,
            arguments: [
                eventId, body[pointer: "/applicationId"]?.stringValue, body[pointer: "/item"]?.stringValue,
                body[pointer: "/service"]?.stringValue, body[pointer: "/dueBy"]?.stringValue, payload, receivedAt,
            ])
    }
}

/// The `approval.decided` body the connector's inbox sink builds from a decisions row.
func decidedBody(_ row: Row, department: DepartmentID) -> JSONValue {
    var body: JSONObject = ["department": .string(department.rawValue)]
    for (field, column) in [
        ("applicationId", "application_id"), ("item", "item"), ("decision", "decision"), ("reason", "reason"),
        ("decidedAt", "decided_at"), ("decidedBy", "decided_by"), ("licenceNumber", "licence_number"),
    ] {
        if let text: String = row[column], !text.isEmpty { body[field] = .string(text) }
    }
    return .object(body)
}

@Suite struct DecisionTests {
    @Test func decidesAfterThreeWorkingDaysAcrossNationalDay() async throws {
        let database = try temporaryDatabase(.environment)
        let clock = TestWallClock(china("2025-09-30 10:00:00"))
        let desk = try DecisionDesk(database: database, calendar: calendar, clock: clock)
        #expect(desk.policy.processingDays == 3)
        try await deliver(
            request(
                "RA-2025-000123", department: .environment, item: "environmental-filing",
                details: ["fumePurifier": true, "address": "佛山市禅城区祖庙路33号首层"]),
            to: database, receivedAt: "2025-09-30T02:00:00.000Z")
        #expect(try desk.decisionTime(receivedAt: china("2025-09-30 10:00:00")) == china("2025-10-11 09:00:00"))
        for moment in [
            "2025-09-30 18:00:00", "2025-10-01 09:00:00", "2025-10-08 17:00:00", "2025-10-10 17:00:00",
            "2025-10-11 08:59:59",
        ] {
            await clock.advance(to: china(moment))
            #expect(try await desk.decideDue().isEmpty, "decided too early at \(moment)")
        }
        #expect(try database.count("approval_decisions") == 0)
        await clock.advance(to: china("2025-10-11 09:00:00"))
        let decided = try await desk.decideDue()
        #expect(decided.count == 1)
        #expect(decided.first?.decision.outcome == .approved)
        // Idempotent: nothing is decided twice.
        await clock.advance(to: china("2025-10-20 09:00:00"))
        #expect(try await desk.decideDue().isEmpty)
        #expect(try database.count("approval_decisions") == 1)
        try await database.writer.read { db in
            #expect(try String.fetchOne(db, sql: "SELECT status FROM approval_inbox") == "decided")
            let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM approval_decisions"))
            #expect((row["decided_at"] as String) == "2025-10-11T09:00:00+08:00")
            let licence: String = row["licence_number"]
            #expect(licence.hasPrefix("2025440604") && licence.count == 18)
            #expect(refusal(of: decidedBody(row, department: .environment), type: "approval.decided") == nil)
            // The filing is now in the department's own table, for its connector to publish.
            #expect(
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM eia_filings WHERE application_id = 'RA-2025-000123'")
                    == 1)
        }
    }

    @Test func foodSafetyRejectsSmallPremisesAndMissingFloorPlansAndLicensesTheRest() async throws {
        let database = try temporaryDatabase(.foodSafety)
        let clock = TestWallClock(china("2025-02-17 10:05:00"))
        let desk = try DecisionDesk(database: database, calendar: calendar, clock: clock)
        try await deliver(
            request(
                "RA-2025-000001", department: .foodSafety, item: "food-business-licence",
                details: ["areaSquareMetres": 15, "address": "佛山市禅城区祖庙路33号首层"]),
            to: database, receivedAt: "2025-02-17T10:05:00+08:00")
        try await deliver(
            request(
                "RA-2025-000002", department: .foodSafety, item: "food-business-licence",
                details: ["areaSquareMetres": 120], materials: ["租赁合同"]),
            to: database, receivedAt: "2025-02-17T10:05:00+08:00")
        try await deliver(
            request(
                "RA-2025-000003", department: .foodSafety, item: "food-business-licence",
                details: ["areaSquareMetres": 120.5, "seats": 48, "address": "佛山市禅城区祖庙路33号首层"]),
            to: database, receivedAt: "2025-02-17T10:05:00+08:00")
        await clock.advance(to: china("2025-02-21 17:00:00"))
        #expect(try await desk.decideDue().isEmpty)
        await clock.advance(to: china("2025-02-24 09:30:00"))
        let decided = Dictionary(
            uniqueKeysWithValues: try await desk.decideDue().map { ($0.applicationId, $0.decision) })
        #expect(decided["RA-2025-000001"]?.outcome == .rejected)
        #expect(decided["RA-2025-000001"]?.reason?.contains("20平方米") == true)
        #expect(decided["RA-2025-000002"]?.outcome == .rejected)
        #expect(decided["RA-2025-000002"]?.reason?.contains("平面图") == true)
        #expect(decided["RA-2025-000003"]?.outcome == .approved)
        let licence = try #require(decided["RA-2025-000003"]?.licenceNumber)
        #expect(licence.wholeMatch(of: /JY2440604[0-9]{7}/) != nil)
        let configuration = try ConnectorFiles.configuration(for: .foodSafety)
        let source = try #require(ConnectorFiles.tableSources(configuration).first)
        try await database.writer.read { db in
            for row in try Row.fetchAll(db, sql: "SELECT * FROM approval_decisions") {
                #expect(refusal(of: decidedBody(row, department: .foodSafety), type: "approval.decided") == nil)
            }
            let licences = try Row.fetchAll(db, sql: "SELECT * FROM food_licences")
            #expect(licences.count == 1)
            #expect((licences[0]["licence_no"] as String) == licence)
            #expect(refusal(of: licences[0], mapper: BodyMapper(rules: source.mapping), type: source.type) == nil)
        }
    }

    @Test func everyDepartmentDecidesByItsRules() async throws {
        let cases: [(DepartmentID, JSONObject, Decision.Outcome)] = [
            (.householdRegistry, ["toAddress": "长沙市芙蓉区五一大道98号"], .rejected),
            (.householdRegistry, ["toAddress": "佛山市禅城区季华五路22号", "degree": "bachelor"], .approved),
            (.socialSecurity, ["insured": false], .rejected),
            (.socialSecurity, ["insured": true], .approved),
            (.tax, ["declaredPriceFen": 60_000_000, "assessedPriceFen": 150_000_000], .rejected),
            (.tax, ["declaredPriceFen": 150_000_000, "assessedPriceFen": 152_000_000], .approved),
            (.realEstate, ["mortgaged": true], .rejected),
            (.realEstate, ["mortgaged": false], .approved),
            (.marketRegulation, ["businessName": "中国粤味轩餐饮店"], .rejected),
            (.marketRegulation, ["businessName": "佛山市禅城区粤味轩餐饮店", "address": "佛山市禅城区祖庙路33号首层"], .approved),
            (.fireSafety, ["fireExits": 0, "address": "佛山市禅城区祖庙路33号首层"], .rejected),
            (.fireSafety, ["seats": 240, "fireExits": 1], .rejected),
            (.fireSafety, ["seats": 48, "fireExits": 2, "address": "佛山市禅城区祖庙路33号首层"], .approved),
            (.environment, ["fumePurifier": false], .rejected),
            (.urbanManagement, ["hasOutdoorSignboard": true, "signboardWidthMetres": 12], .rejected),
            (
                .urbanManagement, ["hasOutdoorSignboard": true, "signboardWidthMetres": 6, "address": "佛山市禅城区祖庙路33号"],
                .approved
            ),
        ]
        for (index, (department, details, expected)) in cases.enumerated() {
            let database = try temporaryDatabase(department)
            let clock = TestWallClock(china("2025-03-03 10:00:00"))
            let desk = try DecisionDesk(database: database, calendar: calendar, clock: clock)
            let application = "RA-2025-\(pad6(100 + index))"
            try await deliver(
                request(application, department: department, item: "item-\(department.rawValue)", details: details),
                to: database, receivedAt: "2025-03-03T10:00:00+08:00")
            await clock.advance(to: china("2025-03-31 10:00:00"))
            let decided = try await desk.decideDue()
            #expect(decided.first?.decision.outcome == expected, "\(department) \(details)")
            try await database.writer.read { db in
                for row in try Row.fetchAll(db, sql: "SELECT * FROM approval_decisions") {
                    let problem = refusal(of: decidedBody(row, department: department), type: "approval.decided")
                    #expect(problem == nil, "\(department): \(problem ?? "")")
                }
                // Licences the department recorded map to valid events of its own.
                for source in DepartmentSystem.named(department).sourceTables {
                    let configuration = try ConnectorFiles.configuration(for: department)
                    let table = try #require(
                        ConnectorFiles.tableSources(configuration).first { $0.table == source.name })
                    for row in try Row.fetchAll(db, sql: "SELECT * FROM \(source.name)") {
                        let problem = refusal(of: row, mapper: BodyMapper(rules: table.mapping), type: table.type)
                        #expect(problem == nil, "\(source.name): \(problem ?? "")")
                    }
                }
            }
        }
    }

    @Test func aDueDateOutsideTheCalendarIsAnErrorNotAGuess() async throws {
        let database = try temporaryDatabase(.environment)
        let clock = TestWallClock(china("2027-12-30 10:00:00"))
        let desk = try DecisionDesk(database: database, calendar: calendar, clock: clock)
        try await deliver(
            request("RA-2027-000001", department: .environment, item: "environmental-filing"),
            to: database, receivedAt: "2027-12-30T10:00:00+08:00")
        // Three working days after Thursday 2027-12-30 run into 2028, which Rules/calendar.yaml lacks.
        let error = await #expect(throws: WorkingDayCalendarError.self) { try await desk.decideDue() }
        #expect(error?.date == CivilDate("2028-01-01"))
        #expect(error?.description.contains("2025–2027") == true)
    }

    @Test func theSimulatorReadsItsCalendarFromTheRulesFolder() async throws {
        var options = DepartmentSimulator.Options()
        options.decide = true
        #expect(options.calendarFile.path.hasSuffix("/Rules/calendar.yaml"), "by default under the working directory")
        options.calendarFile = URL(fileURLWithPath: "/nonexistent/rules/calendar.yaml")
        let simulator = DepartmentSimulator(
            database: try temporaryDatabase(.environment), options: options, logger: Logger(label: "test"))
        let error = await #expect(throws: WorkingDayCalendarError.self) { try await simulator.run() }
        #expect(error?.code == .unreadable)
        #expect(error?.description.contains("/nonexistent/rules/calendar.yaml") == true)
    }

    @Test func aWrongApplicantIdIsRejected() {
        let policy = DepartmentSystem.named(.tax).policy!
        let decision = policy.decide(
            ApprovalRequest(
                body: request(
                    "HT-2025-000045", department: .tax, item: "tax-clearance",
                    residentId: "440604199308220248")),
            serial: 1, on: CivilDate("2025-03-03")!)
        #expect(decision.outcome == .rejected)
        #expect(decision.reason?.contains("公民身份号码") == true)
    }

    @Test func theValuationAndTheTaxTravelInTheDecisionsFields() async throws {
        let realEstate = try temporaryDatabase(.realEstate)
        try await realEstate.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO properties (unit_no, location, building_area, usage, reference_unit_price)
                    VALUES ('440604003001GB00012F00010999', '佛山市禅城区季华五路18号', '96.50', '住宅', '16800')
                    """)
        }
        let clock = TestWallClock(china("2025-03-03 10:00:00"))
        let valuer = try DecisionDesk(database: realEstate, calendar: calendar, clock: clock)
        for (application, unit) in [
            ("HT-2025-000045", "440604003001GB00012F00010123"), ("HT-2025-000046", "440604003001GB00012F00010999"),
        ] {
            try await deliver(
                request(
                    application, department: .realEstate, item: "valuation", service: "house-transfer",
                    creditCode: nil, details: ["propertyId": .string(unit), "declaredPriceFen": .integer(150_000_000)]),
                to: realEstate, receivedAt: "2025-03-03T02:00:00.000Z")
        }
        await clock.advance(to: china("2025-03-04 09:00:00"))
        #expect(try await valuer.decideDue().map(\.decision.fields) == [
            // No reference price: the batch model, 1.06 × the declared price for this unit number.
            ["assessedPriceFen": 159_000_000],
            // 96.50 m² × ¥16,800.
            ["assessedPriceFen": 162_120_000],
        ])
        let stored = try await realEstate.writer.read { db in
            try Int64.fetchAll(db, sql: "SELECT assessed_price_fen FROM approval_decisions ORDER BY seq")
        }
        #expect(stored == [159_000_000, 162_120_000])

        let tax = try temporaryDatabase(.tax)
        let assessor = try DecisionDesk(database: tax, calendar: calendar, clock: clock)
        try await deliver(
            request(
                "HT-2025-000045", department: .tax, item: "tax-assessment-clearance", service: "house-transfer",
                creditCode: nil,
                details: ["declaredPriceFen": .integer(150_000_000), "assessedPriceFen": .integer(159_000_000)]),
            to: tax, receivedAt: "2025-03-04T02:00:00.000Z")
        await clock.advance(to: china("2025-03-05 09:00:00"))
        // Deed tax, 3 % of the higher price.
        #expect(try await assessor.decideDue().map(\.decision.fields) == [["assessedTaxFen": 4_770_000]])
    }

    @Test func smsGatewaySendsTheTextTheOrchestratorRendered() async throws {
        let database = try temporaryDatabase(.smsGateway)
        let rendered = "【禅城区一门式】陈美玲您好，您申请的我要开餐馆（办件号RA-2025-000123）已办结，用时10个工作日（逐项办理需45个工作日），请凭身份证领取结果或选择邮寄送达。"
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO sms_outbox
                    (event_id, mobile, template, text, application_id, queued_at, resident_id, parameters)
                    VALUES ('n-2', '13802761234', 'application-completed', ?, 'RA-2025-000123',
                            '2025-02-26T07:05:00.000Z', '440604199308220247', ?)
                    """,
                arguments: [
                    rendered,
                    String(decoding: JSONValue.object(["text": .string(rendered), "service": "我要开餐馆"]).serialized(), as: UTF8.self),
                ])
        }
        let gateway = try SmsGateway(database: database, clock: TestWallClock(china("2025-02-26 15:05:00")))
        #expect(try await gateway.sendPending().map(\.text) == [rendered])
        let stored = try await database.writer.read { db in try String.fetchOne(db, sql: "SELECT text FROM sms_outbox") }
        #expect(stored == rendered)
    }

    @Test func smsGatewayRendersQueuedMessagesOnce() async throws {
        let database = try temporaryDatabase(.smsGateway)
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO sms_outbox
                    (event_id, mobile, template, application_id, queued_at, resident_id, parameters)
                    VALUES ('n-1', '13802761234', 'application-completed', 'RA-2025-000123', '2025-02-26T07:05:00.000Z',
                            '440604199308220247', '{"service":"我要开餐馆","applicationId":"RA-2025-000123"}')
                    """)
        }
        let gateway = try SmsGateway(database: database, clock: TestWallClock(china("2025-02-26 15:05:00")))
        let sent = try await gateway.sendPending()
        #expect(sent.count == 1)
        #expect(sent.first?.text.contains("我要开餐馆（办件号RA-2025-000123）已办结") == true)
        #expect(try await gateway.sendPending().isEmpty)
    }
}

func pad6(_ value: Int) -> String { String(repeating: "0", count: max(0, 6 - String(value).count)) + String(value) }
