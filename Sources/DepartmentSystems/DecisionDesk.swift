import CivilTime
import EventSchemas
import Foundation
import GRDB

/// A request the desk decided.
public struct DecidedRequest: Sendable, Hashable {
    /// The inbox row's event id.
    public var eventId: String
    /// The application.
    public var applicationId: String
    /// The approval item.
    public var item: String
    /// The decision.
    public var decision: Decision
    /// When it was decided.
    public var decidedAt: Date
    /// The applicant's name, for logs (mask it there).
    public var applicantName: String?
}

/// The department's back office: takes `approval_inbox` rows with status `pending` whose
/// processing time has passed on its clock, decides each by the department's ``DecisionPolicy``,
/// and — in one transaction per request — writes the `approval_decisions` row, records a licence
/// the department issues in its own table (so the connector publishes it too: a food business
/// licence, an inspection, a filing, a signboard permit, a business registration), and sets the
/// inbox row `decided`. Running it again decides nothing twice.
public struct DecisionDesk: Sendable {
    /// The department's database.
    public let database: DepartmentDatabase
    /// The department's policy.
    public let policy: DecisionPolicy
    /// The working days.
    public let calendar: WorkingDayCalendar
    /// The desk's clock.
    public let clock: any WallClock

    /// A desk for an approving department.
    /// - Parameters:
    ///   - calendar: the working days, as `Rules/calendar.yaml` holds them (``WorkingDayCalendar/load(from:)``).
    ///   - clock: the desk's time. Default: the system clock.
    /// - Throws: ``DepartmentSimulatorError`` when the department approves nothing.
    public init(
        database: DepartmentDatabase, calendar: WorkingDayCalendar, clock: any WallClock = .system
    ) throws {
        guard let policy = database.system.policy else {
            throw DepartmentSimulatorError("\(database.system.id) answers no approval requests")
        }
        self.database = database
        self.policy = policy
        self.calendar = calendar
        self.clock = clock
    }

    /// When a request that arrived at `received` (as the desk's clock sees it) is decided: from
    /// 09:00 China time on the ``DecisionPolicy/processingDays``-th working day after that day.
    /// - Throws: `WorkingDayCalendarError` when a day counted is outside the calendar's years.
    public func decisionTime(receivedAt received: Date) throws -> Date {
        let day = try calendar.dueDate(receivedAt: received, workingDays: policy.processingDays)
        return day.chinaTime(hour: DecisionPolicy.decisionHour)
    }

    /// Decides every pending request whose time has come, each stamped with the moment it fell due.
    /// - Returns: what was decided, oldest first.
    /// - Throws: a database error, or `WorkingDayCalendarError` for a request whose due date is
    ///   outside the calendar's years; what was decided before it stays decided.
    @discardableResult
    public func decideDue() async throws -> [DecidedRequest] {
        let now = clock.now()
        let pending = try await database.writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT event_id, application_id, item, payload, received_at FROM approval_inbox
                    WHERE status = 'pending' ORDER BY received_at, event_id
                    """
            ).map { row in
                (
                    eventId: row["event_id"] as String, payload: row["payload"] as String?,
                    receivedAt: row["received_at"] as String?
                )
            }
        }
        var decided: [DecidedRequest] = []
        for request in pending {
            let received = request.receivedAt.flatMap(ChinaTime.parse).map(clock.instant(atRealTime:)) ?? now
            let due = try decisionTime(receivedAt: received)
            guard due <= now else { continue }
            // Stamped at the moment it fell due, however late the desk looked (a fast clock looks
            // every half a real second, which can be half a simulated day).
            if let result = try await decide(eventId: request.eventId, payload: request.payload, now: due) {
                decided.append(result)
            }
        }
        return decided
    }

    /// Decides one request in one transaction, unless it is no longer pending.
    private func decide(eventId: String, payload: String?, now: Date) async throws -> DecidedRequest? {
        let policy = self.policy
        let department = database.system.id
        return try await database.writer.write { db -> DecidedRequest? in
            let status = try String.fetchOne(
                db, sql: "SELECT status FROM approval_inbox WHERE event_id = ?", arguments: [eventId])
            guard status == "pending" else { return nil }
            let request = ApprovalRequest(payload: payload)
            let application = request.applicationId ?? "?"
            let item = request.item ?? "?"
            let serial = (try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) + 1 FROM approval_decisions") ?? 1)
            let today = CivilDate.china(now)
            var decision = policy.decide(request, serial: serial, on: today)
            decision.fields = try DecisionFields.establish(department, request, decision, db: db)
            let stamp = ChinaTime.rfc3339(now)
            try db.execute(
                sql: """
                    INSERT INTO approval_decisions
                    (application_id, item, decision, reason, decided_at, decided_by, licence_number)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    application, item, decision.outcome.rawValue, decision.reason, stamp,
                    policy.officer(for: application), decision.licenceNumber,
                ])
            let seq = db.lastInsertedRowID
            for (field, value) in decision.fields.sorted(by: { $0.key < $1.key }) {
                guard let column = DecisionFields.columns[field] else { continue }
                try db.execute(
                    sql: "UPDATE approval_decisions SET \(quoted(column)) = ? WHERE seq = ?", arguments: [value, seq])
            }
            try LicenceRecords.record(
                decision: decision, request: request, department: department, serial: serial,
                now: now, db: db)
            try db.execute(sql: "UPDATE approval_inbox SET status = 'decided' WHERE event_id = ?", arguments: [eventId])
            return DecidedRequest(
                eventId: eventId, applicationId: application, item: item, decision: decision, decidedAt: now,
                applicantName: request.applicantName)
        }
    }
}

/// The licences departments write into their own tables when they decide, so that their
/// connectors publish them (`foodsafety.licence.issued`, `firesafety.inspection.completed`, …).
enum LicenceRecords {
    static func record(
        decision: Decision, request: ApprovalRequest, department: DepartmentID, serial: Int,
        now: Date, db: Database
    ) throws {
        let today = CivilDate.china(now)
        let local = ChinaTime.local(now)
        let details = request
        var company = Company(
            creditCode: request.applicantCreditCode ?? "", name: DecisionPolicy.businessName(request) ?? "",
            entityTypeCode: "9600",
            legalRepresentative: Person(
                residentId: request.applicantResidentId ?? "", name: request.applicantName ?? "",
                genderCode: "1", birthDate: today,
                mobile: request.body[pointer: "/applicant/mobile"]?.stringValue ?? "",
                householdNumber: "", relationCode: "02", address: "", policeStation: ""),
            address: details.text("address") ?? details.body[pointer: "/details/business/address"]?.stringValue ?? "",
            isRestaurant: request.service == "restaurant-opening", scope: "餐饮服务", capitalFen: 0, established: today)
        var spec: TableSpec?
        var row: [DatabaseValue] = []
        switch department {
        case .marketRegulation where decision.outcome == .approved:
            guard let code = decision.licenceNumber, !company.name.isEmpty else { return }
            company.creditCode = code
            company.entityTypeCode = company.name.contains("公司") ? "1100" : "9600"
            company.capitalFen = Int(details.number("registeredCapitalFen") ?? 10_000_000)
            company.scope = details.text("businessScope") ?? "餐饮服务；食品销售"
            spec = RowFactory.enterprises
            row = RowFactory.enterpriseRow(company, local)
        case .foodSafety where decision.outcome == .approved:
            guard !company.creditCode.isEmpty, let number = decision.licenceNumber else { return }
            spec = RowFactory.foodLicences
            row = RowFactory.foodLicenceRow(
                company, form: "2", area: details.number("areaSquareMetres") ?? 50, number: number, today: today,
                local: local)
        case .fireSafety:
            guard !company.creditCode.isEmpty else { return }
            spec = RowFactory.fireInspections
            row = RowFactory.fireInspectionRow(
                company, passed: decision.outcome == .approved,
                findings: decision.reason.map { [$0] } ?? [],
                inspector: DecisionPolicy.fireSafety.officer(
                    for: request.applicationId ?? ""), serial: serial, today: today, local: local)
        case .environment where decision.outcome == .approved:
            guard !company.creditCode.isEmpty else { return }
            spec = RowFactory.eiaFilings
            row = RowFactory.eiaRow(
                company, purifier: details.flag("fumePurifier") ?? true, serial: serial, today: today,
                local: local)
        case .urbanManagement where decision.outcome == .approved && decision.licenceNumber != nil:
            guard !company.creditCode.isEmpty else { return }
            spec = RowFactory.signboards
            row = RowFactory.signboardRow(
                company, width: details.number("signboardWidthMetres") ?? 6,
                height: details.number("signboardHeightMetres") ?? 1.2,
                serial: serial, today: today, local: local)
        default:
            return
        }
        guard let spec, !company.address.isEmpty else { return }
        try db.execute(sql: spec.insertSQL, arguments: StatementArguments([local.databaseValue] + row))
        if spec.table != "enterprises", try db.columns(in: spec.table).contains(where: { $0.name == "application_id" })
        {
            try db.execute(
                sql: "UPDATE \(quoted(spec.table)) SET application_id = ? WHERE id = ?",
                arguments: [request.applicationId, db.lastInsertedRowID])
        }
    }
}

/// A department simulator that cannot do what it was asked.
public struct DepartmentSimulatorError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    /// An error saying what went wrong.
    public init(_ description: String) {
        self.description = description
    }
}
