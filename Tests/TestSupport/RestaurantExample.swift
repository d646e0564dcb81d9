import CivilTime
import EventSchemas
import Foundation

/// Bodies of the restaurant workflow (Rules/workflows/restaurant-opening.yaml), shared by the
/// orchestrator's tests and the benchmark: a valid application and a department's decision.
public enum RestaurantExample {
    /// A valid `application.restaurant.submitted` body; `area`, `seats` and `sign` switch the fire
    /// and signboard steps (both on above 150 m² or 50 seats, and with a sign: six steps).
    public static func application(
        id: String, submitted: Date, area: Double = 120, seats: Int = 48, sign: Bool = true
    ) -> JSONValue {
        .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(submitted)),
            "applicant": .object([
                "name": .string("陈美玲"), "residentId": .string("440604199308220247"), "mobile": .string("13802761234"),
            ]),
            "business": .object([
                "name": .string("佛山市禅城区粤味轩餐饮店"), "address": .string("佛山市禅城区祖庙路33号首层"),
                "areaSquareMetres": .number(area), "seats": .integer(Int64(seats)), "cuisine": .string("粤菜"),
                "hasOutdoorSignboard": .bool(sign), "usesGas": .bool(true),
            ]),
            "materials": .array(
                [("身份证", "shared-data"), ("经营场所平面图", "submitted"), ("租赁合同", "submitted"), ("招牌设计效果图", "submitted")].map {
                    .object(["name": .string($0.0), "source": .string($0.1)])
                }),
        ])
    }

    /// A department's `approval.decided` body: approved with a licence number, or rejected (any
    /// other `outcome`) with a reason.
    public static func decision(
        applicationId: String, department: String, item: String, outcome: String = "approved", decidedAt: Date
    ) -> JSONValue {
        var body: JSONObject = [
            "applicationId": .string(applicationId), "department": .string(department), "item": .string(item),
            "decision": .string(outcome), "decidedAt": .string(ChinaTime.rfc3339(decidedAt)),
            "decidedBy": .string("XX-0417"),
        ]
        if outcome == "approved" {
            body["licenceNumber"] = .string("LIC-\(item)")
        } else {
            body["reason"] = .string("材料不全，请补充")
        }
        return .object(body)
    }
}
