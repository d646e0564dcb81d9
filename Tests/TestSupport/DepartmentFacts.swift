import CivilTime
import EventSchemas
import Foundation

/// Valid bodies of the departments' facts, as their schemas in Topics/schemas require: what the
/// shared view's tests and the orchestrator's zero-document tests publish through the validating
/// `Publisher` and the view ingests. One builder per event type, shared rather than copied.
public enum DepartmentFacts {
    /// `household.move.registered`: `id` moved into a Chancheng household.
    public static func move(_ id: String, name: String, household: String, at time: Date) -> JSONValue {
        .object(fields([
            "residentId": id, "name": name, "direction": "in", "toAddress": "佛山市禅城区季华五路22号",
            "reason": "graduate", "householdNumber": household, "registeredAt": ChinaTime.rfc3339(time),
        ]))
    }

    /// `household.member.changed`: `id` added to the household `household`.
    public static func memberChanged(_ id: String, name: String, household: String, at time: Date) -> JSONValue {
        .object(fields([
            "householdNumber": household, "change": "member-added", "residentId": id, "name": name,
            "relationToHead": "child", "changedAt": ChinaTime.rfc3339(time),
        ]))
    }

    /// `household.death.registered`: `id` died on `day` (registered that afternoon).
    public static func death(_ id: String, name: String, household: String, on day: String) -> JSONValue {
        .object(fields([
            "residentId": id, "name": name, "dateOfDeath": day, "householdNumber": household,
            "registeredAt": ChinaTime.rfc3339(CivilDate(day)!.chinaTime(hour: 15, minute: 0)),
            "registrationOffice": "佛山市公安局禅城分局石湾派出所",
        ]))
    }

    /// `socialsecurity.enrolment.registered`: `id` enrolled in `scheme` by `employer`, effective `from`.
    public static func enrolment(
        _ id: String, name: String, scheme: String = "employee-pension", employer: String, from day: String,
        at time: Date
    ) -> JSONValue {
        .object(fields([
            "residentId": id, "name": name, "scheme": scheme, "employerCreditCode": employer, "effectiveFrom": day,
            "registeredAt": ChinaTime.rfc3339(time),
        ]))
    }

    /// `socialsecurity.contribution.paid`: `id`'s employee pension contribution for `period`.
    public static func contribution(_ id: String, period: String, paid time: Date) -> JSONValue {
        var body = fields([
            "residentId": id, "scheme": "employee-pension", "period": period, "paidAt": ChinaTime.rfc3339(time),
        ])
        body["employeeFen"] = .integer(54400)
        body["employerFen"] = .integer(95200)
        return .object(body)
    }

    /// `socialsecurity.pension.certified`: `id` certified for 2026 by face recognition.
    public static func pension(_ id: String, name: String, certified time: Date) -> JSONValue {
        var body = fields([
            "residentId": id, "name": name, "method": "face-recognition", "certifiedAt": ChinaTime.rfc3339(time),
        ])
        body["year"] = .integer(2026)
        return .object(body)
    }

    /// `realestate.registration.completed`: `property` registered to `id`.
    public static func property(_ id: String, name: String, property: String, at time: Date) -> JSONValue {
        var body = fields([
            "propertyId": property, "certificateNumber": "粤(2026)佛禅不动产权第\(property.suffix(7))号",
            "registeredAt": ChinaTime.rfc3339(time),
        ])
        body["owner"] = .object(fields(["name": name, "residentId": id]))
        return .object(body)
    }

    /// `tax.clearance.issued`: `id`'s tax clearance for the transfer of `property`.
    public static func clearance(_ id: String, property: String, at time: Date) -> JSONValue {
        var body = fields([
            "taxpayerId": id, "certificateNumber": "2440662503\(property.suffix(8))", "purpose": "house-transfer",
            "propertyId": property, "issuedAt": ChinaTime.rfc3339(time),
        ])
        body["amountFen"] = .integer(8_625_000)
        return .object(body)
    }

    /// `market.business.registered`: the limited company `creditCode`, represented by `representative`.
    public static func business(
        _ creditCode: String, name: String, representative: (name: String, residentId: String), at time: Date
    ) -> JSONValue {
        var body = fields([
            "creditCode": creditCode, "businessName": name, "entityType": "limited-company",
            "address": "佛山市禅城区季华五路22号", "businessScope": "软件开发", "registeredAt": ChinaTime.rfc3339(time),
        ])
        body["legalRepresentative"] = .object(
            fields(["name": representative.name, "residentId": representative.residentId]))
        return .object(body)
    }

    private static func fields(_ members: [String: String]) -> JSONObject {
        JSONObject(uniqueKeysWithValues: members.map { ($0.key, JSONValue.string($0.value)) })
    }
}
