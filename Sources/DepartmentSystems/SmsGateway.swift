import CivilTime
import EventModel
import EventSchemas
import Foundation
import GRDB

/// A text message the simulated gateway sent.
public struct SentMessage: Sendable, Hashable {
    /// The `notification.sms.requested` event id.
    public var eventId: String
    /// The phone number (mask it in logs).
    public var mobile: String
    /// The template.
    public var template: String
    /// The text as sent.
    public var text: String
}

/// The simulated SMS gateway: the connector's `table` sink queues each `notification.sms.requested`
/// into `sms_outbox`, with the text the orchestrator rendered from `Rules/notifications.yaml`
/// (`parameters.text`) in its `text` column; the gateway sends that text as it is and marks the
/// row sent (`sent_at`). Only a message that carries no text (a publisher other than the
/// orchestrator) is worded by the gateway from its template (``render(template:parameters:applicationId:)``).
/// Nothing leaves the machine.
public struct SmsGateway: Sendable {
    /// The gateway's database (`sms_outbox`).
    public let database: DepartmentDatabase
    /// The gateway's clock.
    public let clock: any WallClock

    /// A gateway over an `sms-gateway` database.
    /// - Throws: ``DepartmentSimulatorError`` for another department's database.
    public init(database: DepartmentDatabase, clock: any WallClock = .system) throws {
        guard database.system.id == .smsGateway else {
            throw DepartmentSimulatorError("\(database.system.id) is not the SMS gateway")
        }
        self.database = database
        self.clock = clock
    }

    /// The message text of a template: `【禅城区一门式】您申请的我要开餐馆（办件号RA-2025-000123）已办结…`.
    public static func render(template: String?, parameters: [String: String], applicationId: String?) -> String {
        let service = parameters["service"] ?? "政务服务事项"
        let number = parameters["applicationId"] ?? applicationId ?? ""
        let reference = number.isEmpty ? "" : "（办件号\(number)）"
        let body: String
        switch template {
        case "application-received":
            body = "您申请的\(service)\(reference)已受理，可在“禅城一门式”查询办理进度。"
        case "application-completed":
            body = "您申请的\(service)\(reference)已办结，请凭身份证到\(parameters["window"] ?? "禅城区行政服务中心")领取结果或选择邮寄送达。"
        case "more-information-needed":
            body = "您申请的\(service)\(reference)需补充材料：\(parameters["materials"] ?? parameters["reason"] ?? "详见办件进度")。"
        case "life-event-reminder":
            body = "温馨提示：\(parameters["event"] ?? "您家庭的新变化")后可一并办理\(parameters["services"] ?? "相关事项")，无需重复提交材料，详询12345。"
        case "sla-breach-apology":
            body = "您申请的\(service)\(reference)已超出承诺办理时限，我们深表歉意，已督促加快办理。"
        default:
            body = "您有一条政务服务通知\(reference)。"
        }
        return "【禅城区一门式】" + body
    }

    /// Sends every queued message: its queued text (else `parameters.text`, else the template
    /// rendered), which it records in `text`, and marks it sent.
    /// - Returns: the messages sent, in queue order.
    @discardableResult
    public func sendPending() async throws -> [SentMessage] {
        let now = ChinaTime.rfc3339(clock.now())
        return try await database.writer.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT event_id, mobile, template, text, parameters, application_id FROM sms_outbox
                    WHERE sent_at IS NULL ORDER BY queued_at, event_id
                    """)
            var sent: [SentMessage] = []
            for row in rows {
                var parameters: [String: String] = [:]
                if let text: String = row["parameters"],
                    let object = (try? JSONValue.parse(Data(text.utf8)))?.objectValue
                {
                    for (key, value) in object { parameters[key] = value.stringValue }
                }
                let queued: String? = row["text"]
                let text =
                    [queued, parameters["text"]].compactMap { $0 }.first { !$0.isEmpty }
                    ?? SmsGateway.render(
                        template: row["template"], parameters: parameters, applicationId: row["application_id"])
                let eventId: String = row["event_id"]
                try db.execute(
                    sql: "UPDATE sms_outbox SET text = ?, sent_at = ? WHERE event_id = ?",
                    arguments: [text, now, eventId])
                sent.append(
                    SentMessage(
                        eventId: eventId, mobile: row["mobile"] ?? "", template: row["template"] ?? "", text: text))
            }
            return sent
        }
    }
}
