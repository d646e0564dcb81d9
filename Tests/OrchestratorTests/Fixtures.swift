import CivilTime
import EventSchemas
import Foundation
import Orchestrator
import Testing
import TestSupport

let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")

/// The repository's catalog, calendar and rules, loaded once.
enum Fixtures {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let calendar: WorkingDayCalendar = try! WorkingDayCalendar.load(
        from: rulesDirectory.appendingPathComponent("calendar.yaml"))
    static let rules: RuleBook = {
        do {
            return try RuleBook.load(directory: rulesDirectory, catalog: catalog)
        } catch {
            fatalError("the repository's rules do not load:\n\(error)")
        }
    }()
    static let core = Orchestrator(rules: rules, calendar: calendar)

    /// A China-time instant: `at("2026-03-02", 9)`.
    static func at(_ day: String, _ hour: Int = 9, _ minute: Int = 0) -> Date {
        CivilDate(day)!.chinaTime(hour: hour, minute: minute)
    }

    /// A restaurant application; `area`, `seats` and `sign` switch the fire and signboard steps.
    static func restaurant(
        id: String = "RA-2026-000001", submitted: Date = at("2026-03-02", 9, 20), area: Double = 120, seats: Int = 48,
        sign: Bool = true, materials: [String] = ["身份证", "经营场所平面图", "租赁合同", "招牌设计效果图"]
    ) -> Submission {
        let body: JSONValue = .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(submitted)),
            "applicant": .object([
                "name": "陈美玲", "residentId": "440604199308220247", "mobile": "13802761234",
            ]),
            "business": .object([
                "name": "佛山市禅城区粤味轩餐饮店", "address": "佛山市禅城区祖庙路33号首层", "areaSquareMetres": .number(area),
                "seats": .integer(Int64(seats)), "cuisine": "粤菜", "hasOutdoorSignboard": .bool(sign), "usesGas": true,
            ]),
            "materials": .array(
                materials.map { .object(["name": .string($0), "source": $0 == "身份证" ? "shared-data" : "submitted"]) }),
        ])
        return Submission(applicationType: "application.restaurant.submitted", application: body)
    }

    static func house(id: String = "HT-2026-000001", submitted: Date = at("2026-03-02", 10)) -> Submission {
        let body: JSONValue = .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(submitted)),
            "propertyId": "440604003001GB00012F00010123",
            "seller": .object(["name": "何家明", "residentId": "440604197501010357", "mobile": "13923456789"]),
            "buyer": .object(["name": "吴思远", "residentId": "440606199005110481", "mobile": "13600001111"]),
            "contractNumber": "FS2026CC001234", "declaredPriceFen": .integer(150_000_000),
            "materials": .array([
                .object(["name": "不动产权证书", "source": "submitted"]), .object(["name": "身份证", "source": "shared-data"]),
            ]),
        ])
        return Submission(applicationType: "application.house-transfer.submitted", application: body)
    }

    static func decision(
        _ applicationId: String, _ department: String, _ item: String, _ outcome: Decision.Outcome = .approved,
        at: Date, reason: String? = nil, licence: String? = "LIC-0001", fields: JSONObject = [:]
    ) -> Decision {
        Decision(
            applicationId: applicationId, department: department, item: item, outcome: outcome,
            reason: outcome == .approved ? nil : (reason ?? "材料不全，请补充"), decidedAt: at, decidedBy: "XX-0417",
            licenceNumber: outcome == .approved ? licence : nil, fields: fields)
    }

    /// Checks every emission's body against its schema.
    static func expectValid(_ effects: [Effect], sourceLocation: SourceLocation = #_sourceLocation) {
        for effect in effects {
            guard let emission = effect.emission else { continue }
            guard let schema = catalog.schemas[emission.type] else {
                Issue.record("no schema for \(emission.type)", sourceLocation: sourceLocation)
                continue
            }
            let violations = schema.validate(emission.body)
            #expect(violations.isEmpty, "\(emission.id): \(violations)", sourceLocation: sourceLocation)
            #expect(catalog.topic(named: emission.topic) != nil, "\(emission.topic)", sourceLocation: sourceLocation)
        }
    }
}

extension Array where Element == Effect {
    /// The steps requested, in order.
    var requestedSteps: [String] {
        compactMap { if case .requestApproval(let step, _) = $0 { step } else { nil } }
    }
    var requests: [Emission] {
        compactMap { if case .requestApproval(_, let emission) = $0 { emission } else { nil } }
    }
    var moments: [NotificationMoment] {
        compactMap { if case .notify(let moment, _) = $0 { moment } else { nil } }
    }
    func notification(_ moment: NotificationMoment) -> Emission? {
        compactMap { if case .notify(moment, let emission) = $0 { emission } else { nil } }.first
    }
    var completion: CompletionRecord? {
        compactMap { if case .recordCompletion(let record) = $0 { record } else { nil } }.first
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
